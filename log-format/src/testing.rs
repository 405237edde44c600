//! Helpers shared by the unit tests of several modules.

use crate::record::{ChainHead, Origin, Record};

/// A valid chain of `len` records for `cluster_id`, continuing after `anchor`.
pub(crate) fn chain(cluster_id: &str, anchor: ChainHead, len: u64) -> Vec<Record> {
    let mut prev = anchor.hash;
    (anchor.seq + 1..=anchor.seq + len)
        .map(|seq| {
            let record = Record::seal(
                cluster_id,
                seq,
                1_000 + seq,
                Origin {
                    term: 1,
                    index: seq + 3,
                },
                prev,
                format!("event {seq}").into_bytes(),
            );
            prev = record.hash;
            record
        })
        .collect()
}
