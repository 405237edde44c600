//! Challenges a host signs to register with its key:
//! `c1.<issued at>.<nonce>.<MAC>`, made by any coordinator and checked by
//! any other of the cluster (their MAC key derives from a secret they
//! share), good for a minute. That a challenge is used once is the state's
//! to enforce: each registration of a host must name a later challenge
//! than its last.

use super::seal::Seal;

const PREFIX: &str = "c1.";
/// How long a challenge may be signed and sent after it was issued.
pub const CHALLENGE_TTL_MS: u64 = 60_000;
/// How far ahead of this node's clock another node's may be.
const SKEW_MS: u64 = 5_000;

pub struct Challenges {
    seal: Seal,
}

impl Challenges {
    pub fn new(shared_secret: &[u8]) -> Challenges {
        Challenges {
            seal: Seal::new("skyclaw host challenge v1", shared_secret),
        }
    }

    pub fn issue(&self, now: u64) -> String {
        let nonce = hex::encode(super::random_bytes::<16>());
        self.seal.seal(&format!("{PREFIX}{now}.{nonce}"))
    }

    /// When `challenge` was issued, if a coordinator of this cluster made
    /// it and it is still fresh at `now`.
    pub fn check(&self, challenge: &str, now: u64) -> Result<u64, String> {
        let body = self
            .seal
            .open(challenge)
            .ok_or("this challenge was not issued by this cluster")?;
        if !body.starts_with(PREFIX) {
            return Err("malformed challenge".into());
        }
        let issued_at: u64 = body[PREFIX.len()..]
            .split('.')
            .next()
            .and_then(|at| at.parse().ok())
            .ok_or("malformed challenge")?;
        if issued_at > now + SKEW_MS || now.saturating_sub(issued_at) > CHALLENGE_TTL_MS {
            return Err("the challenge expired: ask for a new one".into());
        }
        Ok(issued_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_good_for_a_minute_and_only_in_its_cluster() {
        let challenges = Challenges::new(b"secret");
        let challenge = challenges.issue(10_000);
        assert_eq!(challenges.check(&challenge, 10_000), Ok(10_000));
        assert_eq!(
            challenges.check(&challenge, 10_000 + CHALLENGE_TTL_MS),
            Ok(10_000)
        );
        assert!(challenges
            .check(&challenge, 10_001 + CHALLENGE_TTL_MS)
            .is_err());
        assert!(Challenges::new(b"other").check(&challenge, 10_000).is_err());
        let altered = challenge.replacen("c1.10000", "c1.20000", 1);
        assert!(challenges.check(&altered, 20_000).is_err());
    }
}
