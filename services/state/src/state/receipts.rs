//! Checking a host's receipt against the state it completes a job in: the
//! host that holds the lease must have signed exactly what the completion
//! records, about the payload it was leased. `decide` refuses a completion
//! whose receipt does not hold; an auditor replaying the log checks every
//! recorded receipt the same way before applying it.

use skyclaw_log_format::{Completion, Receipt, ReceiptSeal};

use super::State;

impl State {
    /// Checks the receipt `done` carries (or lacks) against the host that
    /// reports it and the job it completes, as they stand before `done`
    /// applies. A host with a key must send one; a host without cannot.
    pub fn check_receipt(&self, done: &Completion) -> Result<(), String> {
        let host = self
            .host(&done.host_id)
            .ok_or_else(|| format!("host {} is not registered", done.host_id))?;
        let seal: &ReceiptSeal = match (&host.public_key, &done.receipt) {
            (None, None) => return Ok(()),
            (None, Some(_)) => {
                return Err(format!(
                    "host {} has no key to sign a receipt with",
                    done.host_id
                ))
            }
            (Some(_), None) => {
                return Err(format!(
                    "host {} has a key, so its completion must carry a signed receipt",
                    done.host_id
                ))
            }
            (Some(_), Some(seal)) => seal,
        };
        let job = self
            .job(&done.job_id)
            .ok_or_else(|| format!("job {} not found", done.job_id))?;
        if seal.payload_hash != job.payload.digest() {
            return Err(format!(
                "the receipt's payload hash is not that of job {}'s payload",
                done.job_id
            ));
        }
        if seal.finished_at < seal.started_at {
            return Err("the receipt finishes before it starts".into());
        }
        let cluster_id = self.cluster_id().unwrap_or_default();
        let key = host.public_key.expect("matched above");
        Receipt::of(cluster_id, done, seal)
            .verify(&key, &seal.signature)
            .map_err(|e| format!("{e} (host {})", done.host_id))
    }
}
