//! A host's key without the host daemon: the signed registration a keyed
//! host sends, for tests and the benchmark that act as hosts themselves.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use skyclaw_api::{
    registration_message, Challenge, CompleteRequest, Job, RegisterHostRequest, SignedReceipt,
};
use skyclaw_log_format::{BlobRef, Receipt};
use skyclaw_state::{host_id_for, Hash32};

/// An ed25519 key made from a one-byte seed (tests want them repeatable),
/// and the host id it gives.
pub struct HostKey {
    signing: SigningKey,
    pub id: String,
    /// Base64url without padding, as the API carries it.
    pub public_key: String,
}

impl HostKey {
    pub fn from_seed(seed: u8) -> HostKey {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let public = signing.verifying_key().to_bytes();
        HostKey {
            id: host_id_for(&Hash32(public)),
            public_key: URL_SAFE_NO_PAD.encode(public),
            signing,
        }
    }

    /// `request` as this host registers it in answer to `challenge`: its
    /// key, the challenge and the signature filled in, signing receipts.
    pub fn sign(
        &self,
        challenge: &Challenge,
        mut request: RegisterHostRequest,
    ) -> RegisterHostRequest {
        request.signs_receipts = Some(true);
        self.sign_as_is(challenge, request)
    }

    /// As [`HostKey::sign`], for a host from before receipts: it does not
    /// say it signs them.
    pub fn sign_as_is(
        &self,
        challenge: &Challenge,
        mut request: RegisterHostRequest,
    ) -> RegisterHostRequest {
        request.public_key = Some(self.public_key.clone());
        request.challenge = Some(challenge.challenge.clone());
        let message = registration_message(
            &challenge.cluster_id,
            &self.id,
            &self.public_key,
            &challenge.challenge,
            &request,
        );
        request.signature = Some(URL_SAFE_NO_PAD.encode(self.signing.sign(&message).to_bytes()));
        request
    }

    /// This host's receipt for `receipt`, signed.
    pub fn sign_receipt(&self, receipt: &Receipt) -> SignedReceipt {
        SignedReceipt::of(
            &receipt
                .sign(&self.signing)
                .expect("test ids hold no line breaks"),
        )
    }

    /// A successful completion of `job` under lease `lease_epoch` that
    /// printed `stdout`, with its signed receipt, in cluster `cluster_id`.
    pub fn complete(
        &self,
        cluster_id: &str,
        job: &Job,
        lease_epoch: u32,
        stdout: &str,
    ) -> CompleteRequest {
        let receipt = Receipt {
            cluster_id: cluster_id.to_string(),
            job_id: job.id.clone(),
            lease_epoch,
            payload_hash: job.payload.digest(),
            exit_code: Some(0),
            started_at: 1_000,
            finished_at: 1_010,
            stdout: BlobRef::of(stdout.as_bytes()),
            stderr: BlobRef::of(b""),
            host_id: self.id.clone(),
        };
        CompleteRequest {
            host_id: self.id.clone(),
            success: true,
            duration_ms: 10,
            exit_code: Some(0),
            stdout: stdout.to_string(),
            stderr: String::new(),
            error: None,
            lease_epoch: Some(lease_epoch),
            receipt: Some(self.sign_receipt(&receipt)),
        }
    }
}
