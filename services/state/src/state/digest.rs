//! The state's digest: one BLAKE3 hash over every view in a fixed order,
//! and the canonical bytes of a view it (and persistence) is built from.

use skyclaw_log_format::event::Hash32;

use super::State;

/// How many bytes of encoded views the digest gathers before it hashes
/// them: BLAKE3 hashes whole 1 KiB chunks side by side (up to 16 with
/// AVX-512) only within one `update`, so views handed over one by one,
/// a few hundred bytes each, would be hashed a 64-byte block at a time.
const DIGEST_BUFFER: usize = 64 * 1024;

impl State {
    /// A BLAKE3 hash over the cluster id and every host, key and job view
    /// in a fixed order (a cluster without keys hashes as before keys), then
    /// what retirement took, once it took anything. Replicas (and auditors)
    /// that applied the same events agree on it.
    pub fn digest(&self) -> Hash32 {
        let mut digest = Digest::new();
        digest.bytes(b"skyclaw.state.digest.v1\0");
        let cluster_id = self.cluster_id.as_deref().unwrap_or("");
        digest.bytes(&(cluster_id.len() as u64).to_be_bytes());
        digest.bytes(cluster_id.as_bytes());
        for host in self.hosts.values() {
            digest.view(b'h', host);
        }
        for key in self.keys.values() {
            digest.view(b'k', key);
        }
        for id in self.by_order.values() {
            digest.view(b'j', &self.jobs[id]);
        }
        // A state no retirement touched hashes as before retirement.
        let retirement = self.retirement();
        if retirement.before > 0 {
            digest.view(b'r', &retirement);
        }
        digest.finish()
    }
}

/// The canonical bytes of a view, for the digest and for persistence.
pub fn encode_view<T: serde::Serialize>(view: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(view).expect("views encode")
}

/// The digest's input, gathered in a buffer and hashed a buffer at a time:
/// the hash is that of the bytes in order, however they were split.
struct Digest {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            hasher: blake3::Hasher::new(),
            buffer: Vec::with_capacity(DIGEST_BUFFER + 1024),
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        self.flush_full();
    }

    /// Adds `tag ‖ len: u64 ‖ encode_view(view)`, encoding the view in
    /// place and writing its length before it once known.
    fn view<T: serde::Serialize>(&mut self, tag: u8, view: &T) {
        self.buffer.push(tag);
        let len_at = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 8]);
        rmp_serde::encode::write_named(&mut self.buffer, view).expect("views encode");
        let len = (self.buffer.len() - len_at - 8) as u64;
        self.buffer[len_at..len_at + 8].copy_from_slice(&len.to_be_bytes());
        self.flush_full();
    }

    fn flush_full(&mut self) {
        if self.buffer.len() >= DIGEST_BUFFER {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    fn finish(mut self) -> Hash32 {
        self.hasher.update(&self.buffer);
        Hash32(*self.hasher.finalize().as_bytes())
    }
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

    /// The digest as first defined: each piece handed to BLAKE3 as it
    /// comes. Gathering them in a buffer must not change a bit of it.
    fn digest_piece_by_piece(state: &State) -> Hash32 {
        fn view<T: serde::Serialize>(hasher: &mut blake3::Hasher, tag: u8, view: &T) {
            let bytes = encode_view(view);
            hasher.update(&[tag]);
            hasher.update(&(bytes.len() as u64).to_be_bytes());
            hasher.update(&bytes);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"skyclaw.state.digest.v1\0");
        let cluster_id = state.cluster_id().unwrap_or("");
        hasher.update(&(cluster_id.len() as u64).to_be_bytes());
        hasher.update(cluster_id.as_bytes());
        for host in state.hosts() {
            view(&mut hasher, b'h', host);
        }
        for key in state.keys() {
            view(&mut hasher, b'k', key);
        }
        for job in state.jobs_from_order(0) {
            view(&mut hasher, b'j', job);
        }
        let retirement = state.retirement();
        if retirement.before > 0 {
            view(&mut hasher, b'r', &retirement);
        }
        Hash32(*hasher.finalize().as_bytes())
    }

    #[test]
    fn a_buffered_digest_hashes_the_same_bytes() {
        let mut state = leased();
        assert_eq!(state.digest(), digest_piece_by_piece(&state));
        // Enough jobs to fill the buffer several times over, so views
        // straddle its flushes.
        for n in 0..2_000 {
            enqueue(&mut state, spec(&format!("job-{n}")), 200 + n);
        }
        assert_eq!(state.digest(), digest_piece_by_piece(&state));
    }
}
