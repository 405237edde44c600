//! Checking a host's receipt against the state it completes a job in: the
//! host that holds the lease must have signed exactly what the completion
//! records, about the payload it was leased.
//!
//! The check is in two parts. [`State::receipt_claim`] is everything the
//! state can tell (a host with a key sends a receipt and one without does
//! not, the payload is the job's, the times are in order) and names the
//! statement and key whose signature is left to check; `decide` refuses a
//! completion whose claim fails. The signature itself, the costly part, is
//! checked by the coordinator before it proposes the completion, outside
//! the state's lock and off the apply thread. [`State::check_receipt`] does
//! both; an auditor replaying the log does both before each completion,
//! with each host's key decoded once ([`Claim::verify_with`]).

use skyclaw_log_format::{
    Completion, Hash32, Receipt, ReceiptError, ReceiptKey, ReceiptSeal, Sig64,
};

use super::State;

/// A receipt whose signature is still to be checked: the statement, the key
/// of the host that must have signed it, and the signature.
#[derive(Clone, Debug)]
pub struct Claim {
    pub receipt: Receipt,
    pub key: Hash32,
    pub signature: Sig64,
}

impl Claim {
    pub fn verify(&self) -> Result<(), String> {
        let key = ReceiptKey::decode(&self.key).map_err(|e| self.refusal(e))?;
        self.verify_with(&key)
    }

    /// [`Claim::verify`] with [`Claim::key`] decoded beforehand.
    pub fn verify_with(&self, key: &ReceiptKey) -> Result<(), String> {
        self.receipt
            .verify_with(key, &self.signature)
            .map_err(|e| self.refusal(e))
    }

    /// Why the claim does not hold, naming its host.
    pub fn refusal(&self, error: ReceiptError) -> String {
        format!("{error} (host {})", self.receipt.host_id)
    }
}

impl State {
    /// Checks everything about the receipt `done` carries (or lacks) that
    /// the state, as it stands before `done` applies, can tell; the
    /// signature left to check, for a host with a key.
    pub fn receipt_claim(&self, done: &Completion) -> Result<Option<Claim>, String> {
        let host = self
            .host(&done.host_id)
            .ok_or_else(|| format!("host {} is not registered", done.host_id))?;
        let (key, seal): (Hash32, &ReceiptSeal) = match (host.public_key, &done.receipt) {
            (None, None) => return Ok(None),
            (None, Some(_)) => {
                return Err(format!(
                    "host {} has no key to sign a receipt with",
                    done.host_id
                ))
            }
            (Some(_), None) if host.signs_receipts => {
                return Err(format!(
                    "host {} signs receipts, so its completion must carry one",
                    done.host_id
                ))
            }
            // A keyed host from before receipts completes as it did.
            (Some(_), None) => return Ok(None),
            (Some(key), Some(seal)) => (key, seal),
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
        Ok(Some(Claim {
            receipt: Receipt::of(cluster_id, done, seal),
            key,
            signature: seal.signature,
        }))
    }

    /// [`State::receipt_claim`], and the signature: the whole check.
    pub fn check_receipt(&self, done: &Completion) -> Result<(), String> {
        match self.receipt_claim(done)? {
            Some(claim) => claim.verify(),
            None => Ok(()),
        }
    }
}
