//! A keyed host's session: the credential it gets when it registers with
//! its key, sent on its own routes until it expires. It is signed, not
//! stored: `hs1.<host id>.<expires at>.<MAC>`, the MAC a keyed BLAKE3 over
//! the rest with a key every coordinator of the cluster derives alike, so
//! any of them checks it, and revoking the host ends every session it has
//! (each request checks the host's state).

use super::seal::Seal;

const PREFIX: &str = "hs1.";

pub struct Sessions {
    seal: Seal,
    ttl_ms: u64,
}

impl Sessions {
    pub fn new(shared_secret: &[u8], ttl_ms: u64) -> Sessions {
        Sessions {
            seal: Seal::new("skyclaw host session v1", shared_secret),
            ttl_ms,
        }
    }

    /// A session for `host_id`, made at `now`, and when it expires.
    pub fn issue(&self, host_id: &str, now: u64) -> (String, u64) {
        let expires_at = now + self.ttl_ms;
        let session = self.seal.seal(&format!("{PREFIX}{host_id}.{expires_at}"));
        (session, expires_at)
    }

    /// `None` if `credential` is not a session at all; otherwise the host
    /// it names, or why it is refused.
    pub fn host_of(&self, credential: &[u8], now: u64) -> Option<Result<String, super::Refusal>> {
        let text = std::str::from_utf8(credential).ok()?;
        if !text.starts_with(PREFIX) {
            return None;
        }
        let refused = |why: &str| Some(Err(super::Refusal::Unauthenticated(why.into())));
        let Some(body) = self.seal.open(text) else {
            return refused("invalid host session");
        };
        let rest = &body[PREFIX.len()..];
        let Some((host_id, expires_at)) = rest.rsplit_once('.') else {
            return refused("malformed host session");
        };
        match expires_at.parse::<u64>() {
            Ok(expires_at) if now < expires_at => Some(Ok(host_id.to_string())),
            _ => refused("host session expired: register again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_names_its_host_until_it_expires() {
        let sessions = Sessions::new(b"secret", 1_000);
        let (session, expires_at) = sessions.issue("h1", 5_000);
        assert_eq!(expires_at, 6_000);
        let host = |at| sessions.host_of(session.as_bytes(), at).unwrap();
        assert_eq!(host(5_999), Ok("h1".to_string()));
        assert!(host(6_000).is_err());
    }

    #[test]
    fn a_session_cannot_be_altered_or_made_elsewhere() {
        let sessions = Sessions::new(b"secret", 1_000);
        let (session, _) = sessions.issue("h1", 0);
        let other_host = session.replacen("h1", "h2", 1);
        let longer = session.replacen(".1000.", ".9999999.", 1);
        let foreign = Sessions::new(b"another cluster", 1_000).issue("h1", 0).0;
        for forged in [other_host, longer, foreign] {
            assert!(
                sessions.host_of(forged.as_bytes(), 1).unwrap().is_err(),
                "{forged}"
            );
        }
        assert!(sessions.host_of(b"not a session", 1).is_none());
    }
}
