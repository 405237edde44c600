//! The state's digest: one BLAKE3 hash over every view in a fixed order,
//! and the canonical bytes of a view it (and persistence) is built from.

use skyclaw_log_format::event::Hash32;

use super::State;

impl State {
    /// A BLAKE3 hash over the cluster id and every host, key and job view
    /// in a fixed order (a cluster without keys hashes as before keys), then
    /// what retirement took, once it took anything. Replicas (and auditors) that applied the same events
    /// agree on it.
    pub fn digest(&self) -> Hash32 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"skyclaw.state.digest.v1\0");
        let cluster_id = self.cluster_id.as_deref().unwrap_or("");
        hasher.update(&(cluster_id.len() as u64).to_be_bytes());
        hasher.update(cluster_id.as_bytes());
        // One buffer for every view: the digest covers millions of them.
        let mut bytes = Vec::with_capacity(512);
        for host in self.hosts.values() {
            digest_view(&mut hasher, &mut bytes, b'h', host);
        }
        for key in self.keys.values() {
            digest_view(&mut hasher, &mut bytes, b'k', key);
        }
        for id in self.by_order.values() {
            digest_view(&mut hasher, &mut bytes, b'j', &self.jobs[id]);
        }
        // A state no retirement touched hashes as before retirement.
        let retirement = self.retirement();
        if retirement.before > 0 {
            digest_view(&mut hasher, &mut bytes, b'r', &retirement);
        }
        Hash32(*hasher.finalize().as_bytes())
    }
}

/// The canonical bytes of a view, for the digest and for persistence.
pub fn encode_view<T: serde::Serialize>(view: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(view).expect("views encode")
}

/// Adds `tag ‖ len: u64 ‖ encode_view(view)` to the digest, encoding into
/// `buffer`.
fn digest_view<T: serde::Serialize>(
    hasher: &mut blake3::Hasher,
    buffer: &mut Vec<u8>,
    tag: u8,
    view: &T,
) {
    buffer.clear();
    rmp_serde::encode::write_named(buffer, view).expect("views encode");
    hasher.update(&[tag]);
    hasher.update(&(buffer.len() as u64).to_be_bytes());
    hasher.update(buffer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixture::*;

    #[test]
    fn the_digest_covers_every_view() {
        let mut state = leased();
        let before = state.digest();
        assert_eq!(before, state.clone().digest());
        run(&mut state, renew("h", &[("j", 1)]), 100 + LEASE_MS).unwrap();
        assert_ne!(state.digest(), before);
        let before = state.digest();
        register(&mut state, "h", &["shell"], 2);
        assert_ne!(state.digest(), before);
        assert_ne!(cluster().digest(), State::new().digest());
    }
}
