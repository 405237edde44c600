//! Segments: a portable run of consecutive records, the one shape in which
//! the log leaves a node (export files, auditor fetches, tailing). A segment
//! names its cluster and the chain head it continues from, frames each
//! record, and ends with a trailer restating where the chain ended. The
//! reader verifies the chain as it goes and tells a cut-short segment
//! ([`Error::Truncated`]) apart from a tampered one.

use std::io::{self, Read, Write};

use crate::chain::ChainVerifier;
use crate::event::Hash32;
use crate::record::{be_u64, genesis_hash, hash_at, ChainHead, Record, RECORD_HEADER_LEN};
use crate::{Error, Result};

/// The first eight bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SKYCLAW\0";

/// The segment format version, written right after the magic.
pub const SEGMENT_VERSION: u32 = 1;

/// The largest record (header and event) a segment frames. Events are small
/// (job output lives in the blob store); the bound lets a reader reject a
/// corrupted length before trusting it.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// Domain-separation prefix of the header check.
const HEADER_DOMAIN: &[u8] = b"skyclaw.log.segment.header.v1";

const RECORD_TAG: u8 = b'R';
const TRAILER_TAG: u8 = b'T';
/// Tag and length: the bytes before every frame body.
const FRAME_HEAD_LEN: usize = 1 + 4;
const TRAILER_BODY_LEN: usize = 8 + 32 + 8;

/// Where a segment's records pick up the chain.
// Format: { magic: [u8; 8] = "SKYCLAW\0", version: u32 = 1,
//           cluster_id_len: u16, cluster_id: [u8; cluster_id_len] (UTF-8),
//           first_seq: u64, prev_hash: [u8; 32],
//           check: [u8; 32] = BLAKE3("skyclaw.log.segment.header.v1" ‖ every byte before it) },
//         integers big-endian
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub cluster_id: String,
    /// The seq of the first record, or of the record that would come first
    /// if the segment is empty.
    pub first_seq: u64,
    /// The hash of record `first_seq - 1` (the genesis hash when `first_seq`
    /// is 1).
    pub prev_hash: Hash32,
}

impl SegmentHeader {
    /// The chain head this segment continues from.
    pub fn anchor(&self) -> ChainHead {
        ChainHead {
            seq: self.first_seq.saturating_sub(1),
            hash: self.prev_hash,
        }
    }

    /// Checks that this segment continues `cluster_id`'s chain right after
    /// `head`: what a reader tailing a log, or an auditor that fetched
    /// `from = head.seq + 1`, must check before trusting the records.
    pub fn check_continues(&self, cluster_id: &str, head: ChainHead) -> Result<()> {
        if self.cluster_id != cluster_id {
            return Err(Error::ClusterMismatch {
                seq: self.first_seq,
                expected: cluster_id.to_owned(),
                found: self.cluster_id.clone(),
            });
        }
        if self.first_seq != head.next_seq() {
            return Err(Error::SeqGap {
                expected: head.next_seq(),
                found: self.first_seq,
            });
        }
        if self.prev_hash != head.hash {
            return Err(Error::ChainBroken {
                seq: self.first_seq,
            });
        }
        Ok(())
    }

    /// Rejects headers no valid log has: a start at seq 0, or a start at
    /// seq 1 that does not follow the cluster's genesis.
    fn validate(&self) -> Result<()> {
        if self.cluster_id.len() > usize::from(u16::MAX) {
            return Err(Error::ClusterIdTooLong {
                len: self.cluster_id.len(),
            });
        }
        if self.first_seq == 0 {
            return Err(Error::Corrupt {
                seq: None,
                reason: "segment header starts at seq 0; seqs start at 1".into(),
            });
        }
        if self.first_seq == 1 && self.prev_hash != genesis_hash(&self.cluster_id) {
            return Err(Error::ChainBroken { seq: 1 });
        }
        Ok(())
    }

    /// Magic, version and header, as they start a segment. The caller has
    /// validated the header, so the cluster id's length fits its prefix.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 4 + 2 + self.cluster_id.len() + 8 + 32 + 32);
        bytes.extend_from_slice(&SEGMENT_MAGIC);
        bytes.extend_from_slice(&SEGMENT_VERSION.to_be_bytes());
        bytes.extend_from_slice(&(self.cluster_id.len() as u16).to_be_bytes());
        bytes.extend_from_slice(self.cluster_id.as_bytes());
        bytes.extend_from_slice(&self.first_seq.to_be_bytes());
        bytes.extend_from_slice(&self.prev_hash.0);
        let check = header_check(&bytes);
        bytes.extend_from_slice(&check.0);
        bytes
    }
}

/// Restates where the segment's chain ended, so a reader can tell a complete
/// segment from one whose last records were lost.
// Format: { tag: u8 = 'T', len: u32 = 48, last_seq: u64, head_hash: [u8; 32],
//           record_count: u64 }, integers big-endian
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentTrailer {
    /// The seq of the last record, or `first_seq - 1` if there are none.
    pub last_seq: u64,
    /// The hash of the last record, or the header's `prev_hash` if there are none.
    pub head_hash: Hash32,
    pub record_count: u64,
}

impl SegmentTrailer {
    fn encode(&self) -> [u8; FRAME_HEAD_LEN + TRAILER_BODY_LEN] {
        let mut bytes = [0u8; FRAME_HEAD_LEN + TRAILER_BODY_LEN];
        bytes[0] = TRAILER_TAG;
        bytes[1..5].copy_from_slice(&(TRAILER_BODY_LEN as u32).to_be_bytes());
        bytes[5..13].copy_from_slice(&self.last_seq.to_be_bytes());
        bytes[13..45].copy_from_slice(&self.head_hash.0);
        bytes[45..53].copy_from_slice(&self.record_count.to_be_bytes());
        bytes
    }

    fn decode(body: &[u8]) -> SegmentTrailer {
        SegmentTrailer {
            last_seq: be_u64(&body[0..8]),
            head_hash: hash_at(&body[8..40]),
            record_count: be_u64(&body[40..48]),
        }
    }
}

fn header_check(header_bytes: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HEADER_DOMAIN);
    hasher.update(header_bytes);
    Hash32(*hasher.finalize().as_bytes())
}

/// A whole segment read into memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub header: SegmentHeader,
    pub records: Vec<Record>,
    pub trailer: SegmentTrailer,
}

impl Segment {
    /// The chain head after the segment's last record.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.trailer.last_seq,
            hash: self.trailer.head_hash,
        }
    }
}

/// Writes a segment record by record. Records are verified before they are
/// written, so a node never ships a segment a reader would reject. Dropping
/// the writer without [`finish`](SegmentWriter::finish) leaves a segment
/// without its trailer, which readers report as truncated.
pub struct SegmentWriter<W: Write> {
    output: W,
    verifier: ChainVerifier,
}

impl<W: Write> SegmentWriter<W> {
    /// Starts a segment of `cluster_id`'s log whose first record will be
    /// `first_seq`, following the record whose hash is `prev_hash` (the
    /// genesis hash when `first_seq` is 1). Writes the header.
    pub fn new(
        mut output: W,
        cluster_id: &str,
        first_seq: u64,
        prev_hash: Hash32,
    ) -> Result<SegmentWriter<W>> {
        let header = SegmentHeader {
            cluster_id: cluster_id.to_owned(),
            first_seq,
            prev_hash,
        };
        header.validate()?;
        output.write_all(&header.encode())?;
        Ok(SegmentWriter {
            output,
            verifier: ChainVerifier::new(cluster_id, header.anchor()),
        })
    }

    /// Appends the next record.
    // Format: { tag: u8 = 'R', len: u32, record: [u8; len] (Record::encode) }
    pub fn push(&mut self, record: &Record) -> Result<()> {
        let len = RECORD_HEADER_LEN as u64 + record.event.len() as u64;
        if len > u64::from(MAX_RECORD_LEN) {
            return Err(Error::RecordTooLarge {
                seq: record.seq,
                len,
            });
        }
        self.verifier.verify_next(record)?;
        let mut frame_head = [RECORD_TAG, 0, 0, 0, 0];
        frame_head[1..].copy_from_slice(&(len as u32).to_be_bytes());
        self.output.write_all(&frame_head)?;
        self.output.write_all(&record.encode_header())?;
        self.output.write_all(&record.event)?;
        Ok(())
    }

    /// The chain head after the records pushed so far.
    pub fn head(&self) -> ChainHead {
        self.verifier.head()
    }

    /// Writes the trailer, flushes, and hands back the output.
    pub fn finish(mut self) -> Result<W> {
        let head = self.verifier.head();
        let trailer = SegmentTrailer {
            last_seq: head.seq,
            head_hash: head.hash,
            record_count: self.verifier.verified(),
        };
        self.output.write_all(&trailer.encode())?;
        self.output.flush()?;
        Ok(self.output)
    }
}

/// Writes `records`, which continue `cluster_id`'s chain at `first_seq`
/// after `prev_hash`, as one segment.
pub fn write_segment(
    cluster_id: &str,
    first_seq: u64,
    prev_hash: Hash32,
    records: &[Record],
) -> Result<Vec<u8>> {
    let mut writer = SegmentWriter::new(Vec::new(), cluster_id, first_seq, prev_hash)?;
    for record in records {
        writer.push(record)?;
    }
    writer.finish()
}

/// Reads and verifies a whole segment.
pub fn read_segment(input: impl Read) -> Result<Segment> {
    let mut reader = SegmentReader::new(input)?;
    let mut records = Vec::new();
    loop {
        match reader.read_frame()? {
            Frame::Record(record) => records.push(record),
            Frame::End(trailer) => {
                return Ok(Segment {
                    header: reader.header,
                    records,
                    trailer,
                })
            }
        }
    }
}

/// Reads a segment record by record, verifying the chain as it goes.
///
/// Iterating yields each record once it is verified, then ends after a
/// trailer that agrees with the records; on the first error it yields the
/// error and ends. The header is taken on trust, except that a segment
/// starting at seq 1 must follow the genesis hash; to check that a segment
/// continues a chain you already hold, use [`SegmentHeader::check_continues`].
/// Reads are small, so wrap a file or socket in a `BufReader`.
pub struct SegmentReader<R: Read> {
    input: R,
    header: SegmentHeader,
    verifier: ChainVerifier,
    /// Bytes consumed so far, for error messages.
    offset: u64,
    trailer: Option<SegmentTrailer>,
    done: bool,
}

enum Frame {
    Record(Record),
    End(SegmentTrailer),
}

impl<R: Read> SegmentReader<R> {
    /// Reads and checks magic, version and header.
    pub fn new(mut input: R) -> Result<SegmentReader<R>> {
        let mut raw = Vec::with_capacity(128);
        let truncated = |raw: &Vec<u8>| Error::Truncated {
            offset: raw.len() as u64,
            after_seq: None,
        };

        read_up_to(&mut input, &mut raw, SEGMENT_MAGIC.len())?;
        if !SEGMENT_MAGIC.starts_with(&raw) {
            return Err(Error::BadMagic);
        }
        if raw.len() < SEGMENT_MAGIC.len() {
            return Err(truncated(&raw));
        }

        if read_up_to(&mut input, &mut raw, 4)? < 4 {
            return Err(truncated(&raw));
        }
        let version = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        if version != SEGMENT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "segment",
                version,
            });
        }

        if read_up_to(&mut input, &mut raw, 2)? < 2 {
            return Err(truncated(&raw));
        }
        let cluster_id_len = usize::from(u16::from_be_bytes([raw[12], raw[13]]));
        let rest = cluster_id_len + 8 + 32 + 32;
        if read_up_to(&mut input, &mut raw, rest)? < rest {
            return Err(truncated(&raw));
        }
        let (covered, check) = raw.split_at(raw.len() - 32);
        if header_check(covered).0 != check {
            return Err(Error::Corrupt {
                seq: None,
                reason: "segment header does not match its check".into(),
            });
        }
        let fields = &raw[14..];
        let cluster_id = std::str::from_utf8(&fields[..cluster_id_len])
            .map_err(|_| Error::Corrupt {
                seq: None,
                reason: "cluster id in the segment header is not UTF-8".into(),
            })?
            .to_owned();
        let fields = &fields[cluster_id_len..];
        let header = SegmentHeader {
            cluster_id,
            first_seq: be_u64(&fields[..8]),
            prev_hash: hash_at(&fields[8..40]),
        };
        header.validate()?;

        Ok(SegmentReader {
            input,
            verifier: ChainVerifier::new(&header.cluster_id, header.anchor()),
            header,
            offset: raw.len() as u64,
            trailer: None,
            done: false,
        })
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The last verified record, or the header's anchor before any.
    pub fn head(&self) -> ChainHead {
        self.verifier.head()
    }

    /// The trailer, once the whole segment has been read and verified.
    pub fn trailer(&self) -> Option<&SegmentTrailer> {
        self.trailer.as_ref()
    }

    fn truncated(&self) -> Error {
        Error::Truncated {
            offset: self.offset,
            after_seq: Some(self.verifier.head().seq),
        }
    }

    fn corrupt(&self, seq: u64, reason: String) -> Error {
        Error::Corrupt {
            seq: Some(seq),
            reason,
        }
    }

    fn read_frame(&mut self) -> Result<Frame> {
        let frame_offset = self.offset;
        let next_seq = self.verifier.head().next_seq();

        let mut frame_head = [0u8; FRAME_HEAD_LEN];
        let got = read_full(&mut self.input, &mut frame_head)?;
        self.offset += got as u64;
        if got < FRAME_HEAD_LEN {
            return Err(self.truncated());
        }
        let tag = frame_head[0];
        let len = u32::from_be_bytes([frame_head[1], frame_head[2], frame_head[3], frame_head[4]]);

        match tag {
            RECORD_TAG => {
                if !(RECORD_HEADER_LEN as u32..=MAX_RECORD_LEN).contains(&len) {
                    return Err(self.corrupt(
                        next_seq,
                        format!(
                            "record frame at byte {frame_offset} claims {len} bytes; \
                             a record takes {RECORD_HEADER_LEN} to {MAX_RECORD_LEN}"
                        ),
                    ));
                }
                // Header and event are read apart, the event straight into
                // the record's own buffer.
                let mut header = [0u8; RECORD_HEADER_LEN];
                let mut event = vec![0u8; len as usize - RECORD_HEADER_LEN];
                let got = read_full(&mut self.input, &mut header)?;
                self.offset += got as u64;
                if got < RECORD_HEADER_LEN {
                    return Err(self.truncated());
                }
                let got = read_full(&mut self.input, &mut event)?;
                self.offset += got as u64;
                if got < event.len() {
                    return Err(self.truncated());
                }
                let record = Record::from_parts(&header, event).map_err(|e| {
                    self.corrupt(
                        next_seq,
                        format!("frame at byte {frame_offset} does not hold a record: {e}"),
                    )
                })?;
                self.verifier.verify_next(&record)?;
                Ok(Frame::Record(record))
            }
            TRAILER_TAG => {
                if len as usize != TRAILER_BODY_LEN {
                    return Err(self.corrupt(
                        next_seq,
                        format!(
                            "trailer at byte {frame_offset} claims {len} bytes; \
                             a trailer is {TRAILER_BODY_LEN}"
                        ),
                    ));
                }
                let mut body = [0u8; TRAILER_BODY_LEN];
                let got = read_full(&mut self.input, &mut body)?;
                self.offset += got as u64;
                if got < TRAILER_BODY_LEN {
                    return Err(self.truncated());
                }
                let trailer = SegmentTrailer::decode(&body);
                self.check_trailer(&trailer)?;
                let mut extra = [0u8; 1];
                if read_full(&mut self.input, &mut extra)? != 0 {
                    return Err(self.corrupt(
                        trailer.last_seq,
                        format!("bytes follow the trailer at byte {}", self.offset),
                    ));
                }
                Ok(Frame::End(trailer))
            }
            other => Err(self.corrupt(
                next_seq,
                format!("unknown frame tag {other:#04x} at byte {frame_offset}"),
            )),
        }
    }

    fn check_trailer(&self, trailer: &SegmentTrailer) -> Result<()> {
        let head = self.verifier.head();
        if trailer.last_seq > head.seq {
            return Err(self.corrupt(
                head.next_seq(),
                format!(
                    "record {} is missing: the trailer ends the segment at record {}, \
                     the records end at {}",
                    head.next_seq(),
                    trailer.last_seq,
                    head.seq
                ),
            ));
        }
        if trailer.last_seq < head.seq {
            return Err(self.corrupt(
                head.seq,
                format!(
                    "the trailer ends the segment at record {}, the records run to {}",
                    trailer.last_seq, head.seq
                ),
            ));
        }
        if trailer.head_hash != head.hash {
            return Err(self.corrupt(
                head.seq,
                format!(
                    "the trailer's head hash is not the hash of record {}",
                    head.seq
                ),
            ));
        }
        if trailer.record_count != self.verifier.verified() {
            return Err(self.corrupt(
                head.seq,
                format!(
                    "the trailer counts {} records, the segment holds {}",
                    trailer.record_count,
                    self.verifier.verified()
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for SegmentReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        match self.read_frame() {
            Ok(Frame::Record(record)) => Some(Ok(record)),
            Ok(Frame::End(trailer)) => {
                self.trailer = Some(trailer);
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

/// Appends up to `n` bytes from `input` to `buf`; fewer only at end of input.
/// Grows `buf` as bytes arrive, so a corrupted length cannot make it
/// allocate more than the input holds.
fn read_up_to<R: Read>(input: &mut R, buf: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    input.by_ref().take(n as u64).read_to_end(buf)
}

/// Fills `buf` from `input`; returns how many bytes it got before end of input.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;
    use crate::testing::chain;
    use proptest::prelude::*;

    /// A segment's bytes assembled frame by frame, bypassing the writer's
    /// checks, so tests can build the broken segments a writer refuses to.
    fn assemble(header: &SegmentHeader, records: &[Record], trailer: SegmentTrailer) -> Vec<u8> {
        let mut bytes = header.encode();
        for record in records {
            let encoded = record.encode();
            bytes.push(RECORD_TAG);
            bytes.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&encoded);
        }
        bytes.extend_from_slice(&trailer.encode());
        bytes
    }

    fn header(cluster_id: &str, anchor: ChainHead) -> SegmentHeader {
        SegmentHeader {
            cluster_id: cluster_id.into(),
            first_seq: anchor.next_seq(),
            prev_hash: anchor.hash,
        }
    }

    fn trailer_for(anchor: ChainHead, records: &[Record]) -> SegmentTrailer {
        let head = records.last().map_or(anchor, Record::head);
        SegmentTrailer {
            last_seq: head.seq,
            head_hash: head.hash,
            record_count: records.len() as u64,
        }
    }

    fn encode(cluster_id: &str, anchor: ChainHead, records: &[Record]) -> Vec<u8> {
        write_segment(cluster_id, anchor.next_seq(), anchor.hash, records).unwrap()
    }

    /// The seq an error names: the record it is about, or for a truncation
    /// the first record that did not arrive.
    fn named_seq(error: &Error) -> Option<u64> {
        match error {
            Error::HashMismatch { seq }
            | Error::ChainBroken { seq }
            | Error::ClusterMismatch { seq, .. }
            | Error::RecordTooLarge { seq, .. } => Some(*seq),
            Error::SeqGap { expected, .. } => Some(*expected),
            Error::Truncated { after_seq, .. } => after_seq.map(|seq| seq + 1),
            Error::Corrupt { seq, .. } => *seq,
            _ => None,
        }
    }

    /// Where each record's frame starts and ends in `bytes`, and where the
    /// trailer starts.
    fn frame_spans(bytes: &[u8], records: &[Record]) -> (Vec<(usize, usize)>, usize) {
        let trailer_start = bytes.len() - (FRAME_HEAD_LEN + TRAILER_BODY_LEN);
        let frames_len: usize = records
            .iter()
            .map(|r| FRAME_HEAD_LEN + RECORD_HEADER_LEN + r.event.len())
            .sum();
        let mut start = trailer_start - frames_len;
        let spans = records
            .iter()
            .map(|r| {
                let end = start + FRAME_HEAD_LEN + RECORD_HEADER_LEN + r.event.len();
                let span = (start, end);
                start = end;
                span
            })
            .collect();
        (spans, trailer_start)
    }

    #[test]
    fn round_trips_from_genesis() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 5);
        let segment = read_segment(&encode("alpha", anchor, &records)[..]).unwrap();
        assert_eq!(segment.records, records);
        assert_eq!(segment.header.first_seq, 1);
        assert_eq!(segment.head(), records[4].head());
        assert_eq!(segment.trailer.record_count, 5);
    }

    #[test]
    fn an_empty_segment_is_valid() {
        for anchor in [
            ChainHead::genesis("alpha"),
            ChainHead {
                seq: 41,
                hash: Hash32([3; 32]),
            },
        ] {
            let segment = read_segment(&encode("alpha", anchor, &[])[..]).unwrap();
            assert!(segment.records.is_empty());
            assert_eq!(segment.header.anchor(), anchor);
            assert_eq!(segment.head(), anchor);
            assert_eq!(segment.trailer.record_count, 0);
        }
    }

    #[test]
    fn reader_streams_records_then_exposes_the_trailer() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 3);
        let bytes = encode("alpha", anchor, &records);
        let mut reader = SegmentReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().cluster_id, "alpha");
        assert!(reader.trailer().is_none());
        let read: Vec<Record> = reader.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(read, records);
        assert_eq!(reader.head(), records[2].head());
        assert_eq!(reader.trailer().unwrap().last_seq, 3);
        assert!(reader.next().is_none());
    }

    #[test]
    fn reader_stops_after_the_first_error() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 3);
        let mut bytes = encode("alpha", anchor, &records);
        let (spans, _) = frame_spans(&bytes, &records);
        bytes[spans[1].1 - 1] ^= 1;
        let mut reader = SegmentReader::new(&bytes[..]).unwrap();
        assert!(reader.next().unwrap().is_ok());
        assert!(matches!(
            reader.next(),
            Some(Err(Error::HashMismatch { seq: 2 }))
        ));
        assert!(reader.next().is_none());
        assert!(reader.trailer().is_none());
    }

    #[test]
    fn layout_is_as_documented() {
        let anchor = ChainHead::genesis("ab");
        let records = chain("ab", anchor, 1);
        let bytes = encode("ab", anchor, &records);
        assert_eq!(&bytes[0..8], b"SKYCLAW\0");
        assert_eq!(bytes[8..12], 1u32.to_be_bytes());
        assert_eq!(bytes[12..14], 2u16.to_be_bytes());
        assert_eq!(&bytes[14..16], b"ab");
        assert_eq!(bytes[16..24], 1u64.to_be_bytes());
        assert_eq!(bytes[24..56], anchor.hash.0);
        let mut covered = HEADER_DOMAIN.to_vec();
        covered.extend_from_slice(&bytes[..56]);
        assert_eq!(bytes[56..88], *blake3::hash(&covered).as_bytes());
        let record = records[0].encode();
        assert_eq!(bytes[88], b'R');
        assert_eq!(bytes[89..93], (record.len() as u32).to_be_bytes());
        assert_eq!(bytes[93..93 + record.len()], record[..]);
        let trailer = &bytes[93 + record.len()..];
        assert_eq!(trailer[0], b'T');
        assert_eq!(trailer[1..5], 48u32.to_be_bytes());
        assert_eq!(trailer[5..13], 1u64.to_be_bytes());
        assert_eq!(trailer[13..45], records[0].hash.0);
        assert_eq!(trailer[45..53], 1u64.to_be_bytes());
        assert_eq!(trailer.len(), 53);
    }

    #[test]
    fn every_flipped_bit_is_detected_and_names_its_record() {
        let anchor = ChainHead {
            seq: 9,
            hash: Hash32([5; 32]),
        };
        for records in [chain("alpha", anchor, 3), vec![]] {
            let bytes = encode("alpha", anchor, &records);
            let (spans, trailer_start) = frame_spans(&bytes, &records);
            let cluster_id_len_at = 12..14;
            for at in 0..bytes.len() {
                for mask in [0x01, 0x10, 0x80, 0xff] {
                    let mut flipped = bytes.clone();
                    flipped[at] ^= mask;
                    let error = read_segment(&flipped[..]).expect_err("flip went unnoticed");
                    let frame = spans
                        .iter()
                        .position(|&(start, end)| (start..end).contains(&at));
                    let in_a_length = cluster_id_len_at.contains(&at)
                        || spans
                            .iter()
                            .any(|&(start, _)| (start + 1..start + 5).contains(&at));
                    if matches!(error, Error::Truncated { .. }) {
                        // Only an altered length can point past the end,
                        // and then it cannot be told from a cut.
                        assert!(in_a_length, "byte {at}: {error}");
                    }
                    if let Some(index) = frame {
                        assert_eq!(
                            named_seq(&error),
                            Some(records[index].seq),
                            "byte {at} mask {mask:#x}: {error}"
                        );
                    } else if at >= trailer_start {
                        let last = anchor.seq + records.len() as u64;
                        assert!(
                            matches!(named_seq(&error), Some(seq) if seq == last || seq == last + 1),
                            "byte {at} mask {mask:#x}: {error}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_truncated_tail_is_reported_as_truncated_at_every_offset() {
        let anchor = ChainHead::genesis("alpha");
        for records in [chain("alpha", anchor, 3), vec![]] {
            let bytes = encode("alpha", anchor, &records);
            let (spans, trailer_start) = frame_spans(&bytes, &records);
            let header_end = spans.first().map_or(trailer_start, |span| span.0);
            for len in 0..bytes.len() {
                let error = read_segment(&bytes[..len]).unwrap_err();
                let complete = spans.iter().filter(|span| span.1 <= len).count() as u64;
                let expected_after = (len >= header_end).then_some(anchor.seq + complete);
                assert!(
                    matches!(
                        error,
                        Error::Truncated { offset, after_seq }
                            if offset == len as u64 && after_seq == expected_after
                    ),
                    "cut at {len}: {error}"
                );
            }
        }
    }

    #[test]
    fn the_stream_keeps_every_record_before_a_cut() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 4);
        let bytes = encode("alpha", anchor, &records);
        let (spans, _) = frame_spans(&bytes, &records);
        let cut = spans[2].0 + 10;
        let read: Vec<Result<Record>> = SegmentReader::new(&bytes[..cut]).unwrap().collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].as_ref().unwrap(), &records[0]);
        assert_eq!(read[1].as_ref().unwrap(), &records[1]);
        assert!(matches!(
            read[2],
            Err(Error::Truncated {
                after_seq: Some(2),
                ..
            })
        ));
    }

    #[test]
    fn dropped_duplicated_and_reordered_records_are_named() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 5);
        let head = header("alpha", anchor);
        let check = |feed: Vec<Record>| {
            read_segment(&assemble(&head, &feed, trailer_for(anchor, &records))[..]).unwrap_err()
        };

        let dropped = [&records[..2], &records[3..]].concat();
        assert!(matches!(
            check(dropped),
            Error::SeqGap {
                expected: 3,
                found: 4
            }
        ));

        let error = check(records[..4].to_vec());
        assert!(
            matches!(error, Error::Corrupt { seq: Some(5), .. }),
            "{error}"
        );
        assert!(error.to_string().contains("record 5 is missing"), "{error}");

        let duplicated = [&records[..3], &records[2..]].concat();
        assert!(matches!(
            check(duplicated),
            Error::SeqGap {
                expected: 4,
                found: 3
            }
        ));

        let mut reordered = records.clone();
        reordered.swap(3, 4);
        assert!(matches!(
            check(reordered),
            Error::SeqGap {
                expected: 4,
                found: 5
            }
        ));

        let mut extra = records.clone();
        extra.push(chain("alpha", records[4].head(), 1).remove(0));
        assert!(matches!(check(extra), Error::Corrupt { seq: Some(6), .. }));
    }

    #[test]
    fn an_altered_and_resealed_record_breaks_the_link_after_it() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 4);
        let head = header("alpha", anchor);
        for target in [1, 3] {
            let mut forged = records.clone();
            let old = &records[target];
            forged[target] = Record::seal(
                "alpha",
                old.seq,
                old.at,
                old.origin,
                old.prev_hash,
                b"forged".to_vec(),
            );
            let error = read_segment(&assemble(&head, &forged, trailer_for(anchor, &records))[..])
                .unwrap_err();
            if target + 1 < records.len() {
                assert!(matches!(error, Error::ChainBroken { seq: 3 }), "{error}");
            } else {
                assert!(
                    matches!(error, Error::Corrupt { seq: Some(4), .. }),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn records_from_another_cluster_are_detected() {
        let ours = chain("alpha", ChainHead::genesis("alpha"), 4);
        let theirs = chain("beta", ChainHead::genesis("beta"), 4);
        let anchor = ChainHead::genesis("alpha");

        let mut spliced = ours.clone();
        spliced[2] = theirs[2].clone();
        let bytes = assemble(
            &header("alpha", anchor),
            &spliced,
            trailer_for(anchor, &ours),
        );
        assert!(matches!(
            read_segment(&bytes[..]),
            Err(Error::HashMismatch { seq: 3 })
        ));

        // Their whole segment, relabelled as ours, fails at its first record.
        let relabelled = assemble(
            &header("alpha", anchor),
            &theirs,
            trailer_for(anchor, &theirs),
        );
        assert!(matches!(
            read_segment(&relabelled[..]),
            Err(Error::HashMismatch { seq: 1 })
        ));

        // Their genuine segment, fetched where ours was expected.
        let bytes = encode("beta", ChainHead::genesis("beta"), &theirs);
        let segment = read_segment(&bytes[..]).unwrap();
        assert!(matches!(
            segment.header.check_continues("alpha", anchor),
            Err(Error::ClusterMismatch { seq: 1, .. })
        ));
    }

    #[test]
    fn check_continues_names_what_does_not_follow() {
        let records = chain("alpha", ChainHead::genesis("alpha"), 6);
        let bytes = encode("alpha", records[2].head(), &records[3..]);
        let segment = read_segment(&bytes[..]).unwrap();
        segment
            .header
            .check_continues("alpha", records[2].head())
            .unwrap();
        assert!(matches!(
            segment.header.check_continues("alpha", records[1].head()),
            Err(Error::SeqGap {
                expected: 3,
                found: 4
            })
        ));
        let wrong_hash = ChainHead {
            hash: Hash32([0; 32]),
            ..records[2].head()
        };
        assert!(matches!(
            segment.header.check_continues("alpha", wrong_hash),
            Err(Error::ChainBroken { seq: 4 })
        ));
    }

    #[test]
    fn a_segment_from_seq_one_must_follow_genesis() {
        let forged = ChainHead {
            seq: 0,
            hash: Hash32([1; 32]),
        };
        assert!(matches!(
            SegmentWriter::new(Vec::new(), "alpha", 1, forged.hash),
            Err(Error::ChainBroken { seq: 1 })
        ));
        let bytes = assemble(&header("alpha", forged), &[], trailer_for(forged, &[]));
        assert!(matches!(
            read_segment(&bytes[..]),
            Err(Error::ChainBroken { seq: 1 })
        ));
    }

    #[test]
    fn the_writer_refuses_what_a_reader_would_reject() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 3);
        let mut writer = SegmentWriter::new(Vec::new(), "alpha", 1, anchor.hash).unwrap();
        writer.push(&records[0]).unwrap();
        assert!(matches!(
            writer.push(&records[2]),
            Err(Error::SeqGap {
                expected: 2,
                found: 3
            })
        ));
        let other = chain("beta", ChainHead::genesis("beta"), 2);
        assert!(matches!(
            writer.push(&other[1]),
            Err(Error::HashMismatch { seq: 2 })
        ));
        writer.push(&records[1]).unwrap();
        assert_eq!(writer.head(), records[1].head());
        let segment = read_segment(&writer.finish().unwrap()[..]).unwrap();
        assert_eq!(segment.records, records[..2]);

        assert!(matches!(
            SegmentWriter::new(Vec::new(), "alpha", 0, Hash32::default()),
            Err(Error::Corrupt { .. })
        ));
        let long_id = "x".repeat(usize::from(u16::MAX) + 1);
        assert!(matches!(
            SegmentWriter::new(Vec::new(), &long_id, 5, Hash32::default()),
            Err(Error::ClusterIdTooLong { .. })
        ));

        let huge = Record::seal(
            "alpha",
            1,
            0,
            Origin::default(),
            anchor.hash,
            vec![0; MAX_RECORD_LEN as usize],
        );
        let mut writer = SegmentWriter::new(Vec::new(), "alpha", 1, anchor.hash).unwrap();
        assert!(matches!(
            writer.push(&huge),
            Err(Error::RecordTooLarge { seq: 1, .. })
        ));
    }

    #[test]
    fn an_unfinished_segment_reads_as_truncated() {
        let anchor = ChainHead::genesis("alpha");
        let records = chain("alpha", anchor, 2);
        let mut output = Vec::new();
        {
            let mut writer = SegmentWriter::new(&mut output, "alpha", 1, anchor.hash).unwrap();
            for record in &records {
                writer.push(record).unwrap();
            }
        }
        assert!(matches!(
            read_segment(&output[..]),
            Err(Error::Truncated {
                after_seq: Some(2),
                ..
            })
        ));
    }

    #[test]
    fn bytes_after_the_trailer_are_rejected() {
        let anchor = ChainHead::genesis("alpha");
        let mut bytes = encode("alpha", anchor, &chain("alpha", anchor, 2));
        bytes.push(0);
        assert!(matches!(
            read_segment(&bytes[..]),
            Err(Error::Corrupt { seq: Some(2), .. })
        ));
    }

    #[test]
    fn garbage_is_a_clean_error() {
        assert!(matches!(
            read_segment(&b""[..]),
            Err(Error::Truncated {
                offset: 0,
                after_seq: None
            })
        ));
        assert!(matches!(
            read_segment(&br#"{"seq": 1, "hash": "00"}"#[..]),
            Err(Error::BadMagic)
        ));
        assert!(matches!(
            read_segment(&b"SKY"[..]),
            Err(Error::Truncated { .. })
        ));
        let mut future = SEGMENT_MAGIC.to_vec();
        future.extend_from_slice(&2u32.to_be_bytes());
        assert!(matches!(
            read_segment(&future[..]),
            Err(Error::UnsupportedVersion {
                what: "segment",
                version: 2
            })
        ));
    }

    fn anchors() -> impl Strategy<Value = (String, ChainHead)> {
        ("[a-z0-9-]{0,24}", 0u64..1_000, any::<[u8; 32]>()).prop_map(|(cluster_id, seq, hash)| {
            let anchor = if seq == 0 {
                ChainHead::genesis(&cluster_id)
            } else {
                ChainHead {
                    seq,
                    hash: Hash32(hash),
                }
            };
            (cluster_id, anchor)
        })
    }

    fn sealed_chain(
        cluster_id: &str,
        anchor: ChainHead,
        events: Vec<(u64, u64, Vec<u8>)>,
    ) -> Vec<Record> {
        let mut prev = anchor;
        events
            .into_iter()
            .map(|(at, term, event)| {
                let record = Record::seal(
                    cluster_id,
                    prev.next_seq(),
                    at,
                    Origin {
                        term,
                        index: prev.seq * 2,
                    },
                    prev.hash,
                    event,
                );
                prev = record.head();
                record
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn segments_round_trip(
            (cluster_id, anchor) in anchors(),
            events in proptest::collection::vec(
                (any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..6,
            ),
        ) {
            let records = sealed_chain(&cluster_id, anchor, events);
            let bytes = encode(&cluster_id, anchor, &records);
            let segment = read_segment(&bytes[..]).unwrap();
            prop_assert_eq!(&segment.records, &records);
            prop_assert_eq!(segment.header.anchor(), anchor);
            segment.header.check_continues(&cluster_id, anchor).unwrap();
            let streamed: Vec<Record> =
                SegmentReader::new(&bytes[..]).unwrap().collect::<Result<_>>().unwrap();
            prop_assert_eq!(streamed, records);
        }

        #[test]
        fn any_flipped_byte_is_detected(
            (cluster_id, anchor) in anchors(),
            events in proptest::collection::vec(
                (any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..5,
            ),
            position: prop::sample::Index,
            mask in 1u8..=255,
        ) {
            let records = sealed_chain(&cluster_id, anchor, events);
            let mut bytes = encode(&cluster_id, anchor, &records);
            let at = position.index(bytes.len());
            bytes[at] ^= mask;
            prop_assert!(read_segment(&bytes[..]).is_err(), "flip at byte {} went unnoticed", at);
        }

        #[test]
        fn random_bytes_are_a_clean_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(read_segment(&bytes[..]).is_err());
        }

        #[test]
        fn random_frames_after_a_valid_header_are_a_clean_error(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            tag in prop::sample::select(vec![RECORD_TAG, TRAILER_TAG]),
            len in 0u32..200,
        ) {
            let anchor = ChainHead::genesis("alpha");
            let mut bytes = header("alpha", anchor).encode();
            bytes.push(tag);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&tail);
            prop_assert!(read_segment(&bytes[..]).is_err());
        }
    }
}
