//! Text a coordinator signs so that it, and any other coordinator of its
//! cluster, can tell it made it: `<body>.<MAC>`, the MAC a keyed BLAKE3 of
//! the body under a key derived, for one purpose, from the secret the
//! coordinators share. Nothing sealed is stored.

use subtle::ConstantTimeEq;

pub struct Seal {
    key: [u8; 32],
}

impl Seal {
    /// A seal for `purpose` (a different key for each purpose).
    pub fn new(purpose: &str, shared_secret: &[u8]) -> Seal {
        Seal {
            key: blake3::derive_key(purpose, shared_secret),
        }
    }

    pub fn seal(&self, body: &str) -> String {
        format!("{body}.{}", self.mac(body))
    }

    /// The body of `text`, if this seal made it (compared in constant time).
    pub fn open<'a>(&self, text: &'a str) -> Option<&'a str> {
        let (body, mac) = text.rsplit_once('.')?;
        bool::from(self.mac(body).as_bytes().ct_eq(mac.as_bytes())).then_some(body)
    }

    fn mac(&self, body: &str) -> String {
        blake3::keyed_hash(&self.key, body.as_bytes())
            .to_hex()
            .to_string()
    }
}
