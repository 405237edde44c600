//! The snapshot file: a snapshot's meta, then its content framed a view at
//! a time, so it is written from a RocksDB snapshot without ever being
//! whole in memory, and an install reads it a frame at a time. Members
//! send each other the file byte for byte, and the one received is kept
//! as it is once installed.

// Format:
//   "skyclaw snapshot 2\n"
//   meta length: u32 BE ‖ SnapshotMeta (MessagePack)
//   frames, each  kind: u8 ‖ key length: u32 BE ‖ key ‖ value length: u32 BE ‖ value
//     'H'  first, once: the Header (MessagePack); no key
//     'V'  a view as the `views` family stores it: its key and value
//     'B'  a blob: its hash and content
//   BLAKE3 of every byte before it: 32 bytes

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use skyclaw_log_format::event::Hash32;
use skyclaw_log_format::{ChainHead, Tree};
use skyclaw_state::state::Retirement;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use crate::raft::SnapshotMeta;
use crate::store;

const MAGIC: &[u8] = b"skyclaw snapshot 2\n";
const HASH_BYTES: u64 = 32;
const HEADER: u8 = b'H';
const VIEW: u8 = b'V';
const BLOB: u8 = b'B';

/// What a snapshot holds besides views and blobs.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    pub cluster_id: Option<String>,
    pub last_at: u64,
    pub last_stamp: u64,
    pub head: ChainHead,
    /// The Merkle tree's edge at `head`.
    pub tree: Tree,
    pub retirement: Retirement,
}

/// One frame after the header.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// A view's key and value, as stored.
    View(Vec<u8>, Vec<u8>),
    Blob(Hash32, Vec<u8>),
}

/// Passes what it reads or writes through BLAKE3 on the way.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// How much is written before the disk is asked to start writing it out.
/// The build then waits for the chunk before to be on disk, so at most two
/// chunks are ever queued ahead of the log's own syncs, and the final sync
/// has no burst of dirty pages to push out.
const WRITEBACK_BYTES: u64 = 1 << 20;

/// Writes a snapshot file, frame by frame.
pub(crate) struct Writer {
    out: BufWriter<Hashing<File>>,
    written: u64,
    /// What the disk was asked to write out so far, and where the last
    /// chunk asked for began.
    handed: u64,
    last: u64,
}

impl Writer {
    /// Creates (or truncates) `path` and writes the meta and the header.
    pub fn create(path: &Path, meta: &SnapshotMeta, header: &Header) -> io::Result<Writer> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let hashing = Hashing {
            inner: file,
            hasher: blake3::Hasher::new(),
        };
        let mut writer = Writer {
            out: BufWriter::with_capacity(WRITEBACK_BYTES as usize, hashing),
            written: 0,
            handed: 0,
            last: 0,
        };
        writer.put(MAGIC)?;
        let meta = store::encode(meta);
        writer.put(&length(meta.len())?)?;
        writer.put(&meta)?;
        writer.frame(HEADER, &[], &store::encode(header))?;
        Ok(writer)
    }

    pub fn view(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.frame(VIEW, key, value)
    }

    pub fn blob(&mut self, hash: &Hash32, content: &[u8]) -> io::Result<()> {
        self.frame(BLOB, &hash.0, content)
    }

    fn frame(&mut self, kind: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[kind])?;
        self.put(&length(key.len())?)?;
        self.put(key)?;
        self.put(&length(value.len())?)?;
        self.put(value)?;
        if self.written - self.handed >= WRITEBACK_BYTES {
            self.out.flush()?;
            let file = &self.out.get_ref().inner;
            write_out(file, self.handed, self.written, false)?;
            write_out(file, self.last, self.handed, true)?;
            (self.last, self.handed) = (self.handed, self.written);
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Ends the file with its hash and syncs it; answers it, open.
    pub fn finish(self) -> io::Result<File> {
        let Hashing { mut inner, hasher } = self.out.into_inner().map_err(|e| e.into_error())?;
        inner.write_all(hasher.finalize().as_bytes())?;
        inner.sync_all()?;
        Ok(inner)
    }
}

fn length(len: usize) -> io::Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| io::Error::other(format!("a snapshot frame of {len} bytes is too large")))
}

/// Asks the kernel to write out `[from, to)` of `file`; with `wait`, waits
/// until it is.
#[cfg(target_os = "linux")]
fn write_out(file: &File, from: u64, to: u64, wait: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed.
    let done = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn write_out(_file: &File, _from: u64, _to: u64, _wait: bool) -> io::Result<()> {
    Ok(())
}

fn corrupt(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file: {what}"))
}

/// The meta at the start of a snapshot file; `None` when the file is not
/// a snapshot of this version (one kept by an earlier version).
pub(crate) fn meta(file: File) -> io::Result<Option<SnapshotMeta>> {
    Ok(Reader::start(file)?.map(|(meta, _)| meta))
}

/// A frame as read, before its kind is looked at.
struct Raw {
    kind: u8,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Reads a snapshot file frame by frame; the last frame is answered only
/// once the file's hash is found right.
pub(crate) struct Reader {
    input: BufReader<Hashing<io::Take<File>>>,
    /// Bytes left before the hash.
    left: u64,
}

impl Reader {
    /// Opens a snapshot file at its start: its meta, its header, and a
    /// reader of its frames.
    pub fn open(file: File) -> io::Result<(SnapshotMeta, Header, Reader)> {
        let (meta, mut reader) =
            Reader::start(file)?.ok_or_else(|| corrupt("not a snapshot of this version"))?;
        let header = match reader.frame()? {
            Some(Raw {
                kind: HEADER,
                value,
                ..
            }) => store::decode(&value).map_err(|e| corrupt(format!("header: {e}")))?,
            _ => return Err(corrupt("no header")),
        };
        Ok((meta, header, reader))
    }

    /// Reads the magic and the meta; `None` when the magic is not this
    /// version's.
    fn start(mut file: File) -> io::Result<Option<(SnapshotMeta, Reader)>> {
        file.seek(SeekFrom::Start(0))?;
        let hashed = file.metadata()?.len().saturating_sub(HASH_BYTES);
        let mut reader = Reader {
            input: BufReader::with_capacity(
                WRITEBACK_BYTES as usize,
                Hashing {
                    inner: file.take(hashed),
                    hasher: blake3::Hasher::new(),
                },
            ),
            left: hashed,
        };
        let mut magic = [0u8; MAGIC.len()];
        if reader.left < MAGIC.len() as u64 {
            return Ok(None);
        }
        reader.read(&mut magic)?;
        if magic != MAGIC {
            return Ok(None);
        }
        let meta = store::decode(&reader.sized()?).map_err(|e| corrupt(format!("meta: {e}")))?;
        Ok(Some((meta, reader)))
    }

    /// The next view or blob; `None` at the end, once the hash is checked.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let Some(Raw { kind, key, value }) = self.frame()? else {
            return Ok(None);
        };
        match kind {
            VIEW => Ok(Some(Frame::View(key, value))),
            BLOB => {
                let hash = <[u8; 32]>::try_from(key.as_slice())
                    .map_err(|_| corrupt("a blob's hash is not 32 bytes"))?;
                Ok(Some(Frame::Blob(Hash32(hash), value)))
            }
            kind => Err(corrupt(format!("a frame of unknown kind {kind}"))),
        }
    }

    fn frame(&mut self) -> io::Result<Option<Raw>> {
        if self.left == 0 {
            self.check()?;
            return Ok(None);
        }
        let mut kind = [0u8];
        self.read(&mut kind)?;
        let key = self.sized()?;
        let value = self.sized()?;
        Ok(Some(Raw {
            kind: kind[0],
            key,
            value,
        }))
    }

    fn sized(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.read(&mut len)?;
        let len = u32::from_be_bytes(len);
        if u64::from(len) > self.left {
            return Err(corrupt(format!(
                "a length of {len} bytes runs past the end"
            )));
        }
        let mut bytes = vec![0u8; len as usize];
        self.read(&mut bytes)?;
        Ok(bytes)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() as u64 > self.left {
            return Err(corrupt("cut short"));
        }
        self.input.read_exact(buf)?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    /// Compares the hash of what was read with the one that ends the file.
    fn check(&mut self) -> io::Result<()> {
        let hashing = self.input.get_mut();
        let mut stored = [0u8; HASH_BYTES as usize];
        hashing.inner.get_mut().read_exact(&mut stored)?;
        if hashing.hasher.finalize().as_bytes() != &stored {
            return Err(corrupt("its hash does not match its content"));
        }
        Ok(())
    }
}

/// A snapshot file as openraft reads (to send) and writes (to receive) it.
/// One being received is removed when dropped, unless it was installed.
pub struct SnapshotFile {
    file: tokio::fs::File,
    receiving: Option<PathBuf>,
    /// Where the next write lands.
    position: u64,
    /// No write may reach past this many bytes.
    limit: u64,
}

impl SnapshotFile {
    /// A built or kept snapshot, to be read.
    pub(crate) fn kept(file: File) -> SnapshotFile {
        SnapshotFile {
            file: tokio::fs::File::from_std(file),
            receiving: None,
            position: 0,
            limit: u64::MAX,
        }
    }

    /// A new, empty file at `path` to receive a snapshot into, which may
    /// grow to half the space then free on its file system: a larger one
    /// could not be installed anyway (the install writes its views into
    /// the store again), and a peer may not fill the disk the log needs.
    pub(crate) async fn receive(path: PathBuf) -> io::Result<SnapshotFile> {
        let directory = path.parent().unwrap_or(Path::new("."));
        let space = nix::sys::statvfs::statvfs(directory)?;
        let free = space.blocks_available() as u64 * space.fragment_size() as u64;
        SnapshotFile::receive_within(path, free / 2).await
    }

    /// [`SnapshotFile::receive`] with the bound given.
    pub(crate) async fn receive_within(path: PathBuf, limit: u64) -> io::Result<SnapshotFile> {
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(SnapshotFile {
            file,
            receiving: Some(path),
            position: 0,
            limit,
        })
    }

    /// The path of a received file, which from now on stays when this is
    /// dropped: whoever takes it keeps or removes it.
    pub(crate) fn take_received(&mut self) -> Option<PathBuf> {
        self.receiving.take()
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if let Some(path) = self.receiving.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let end = self.position.saturating_add(buf.len() as u64);
        if end > self.limit {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "a snapshot may take at most {} bytes here (half the free space \
                     when it began), and this write would end at byte {end}",
                    self.limit
                ),
            )));
        }
        let written = std::task::ready!(Pin::new(&mut self.file).poll_write(cx, buf))?;
        self.position += written as u64;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let position = std::task::ready!(Pin::new(&mut self.file).poll_complete(cx))?;
        self.position = position;
        Poll::Ready(Ok(position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::{header, meta};

    fn write(path: &Path) {
        let mut out = Writer::create(path, &meta(9), &header()).unwrap();
        out.view(b"jone", b"first view").unwrap();
        out.blob(&Hash32([7; 32]), &[1u8; 3 << 20]).unwrap();
        out.view(b"htwo", b"").unwrap();
        out.finish().unwrap();
    }

    fn read_all(path: &Path) -> io::Result<(SnapshotMeta, Header, Vec<Frame>)> {
        let (meta, header, mut reader) = Reader::open(File::open(path)?)?;
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame()? {
            frames.push(frame);
        }
        Ok((meta, header, frames))
    }

    #[test]
    fn frames_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write(&path);
        let (read_meta, read_header, frames) = read_all(&path).unwrap();
        assert_eq!(read_meta, meta(9));
        assert_eq!(read_header, header());
        assert_eq!(
            frames,
            [
                Frame::View(b"jone".to_vec(), b"first view".to_vec()),
                Frame::Blob(Hash32([7; 32]), vec![1u8; 3 << 20]),
                Frame::View(b"htwo".to_vec(), Vec::new()),
            ]
        );
        assert_eq!(
            super::meta(File::open(&path).unwrap()).unwrap(),
            Some(meta(9))
        );
    }

    #[test]
    fn any_changed_byte_or_a_cut_is_an_error_before_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write(&path);
        let good = std::fs::read(&path).unwrap();
        let damaged = dir.path().join("d");
        // A byte of the magic, the meta, the header, a view, a blob, the hash.
        for at in [0, 25, 60, good.len() / 2, good.len() - 40, good.len() - 1] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&damaged, &bytes).unwrap();
            assert!(
                read_all(&damaged).is_err(),
                "a change at byte {at} went unseen"
            );
        }
        for len in [0, 10, 40, good.len() / 2, good.len() - 1] {
            std::fs::write(&damaged, &good[..len]).unwrap();
            assert!(
                read_all(&damaged).is_err(),
                "a cut at byte {len} went unseen"
            );
        }
        // A length longer than the file is refused before it is allocated.
        let mut bytes = good[..MAGIC.len()].to_vec();
        bytes.extend(u32::MAX.to_be_bytes());
        bytes.extend([0u8; 64]);
        std::fs::write(&damaged, &bytes).unwrap();
        let error = read_all(&damaged).err().unwrap();
        assert!(error.to_string().contains("runs past the end"), "{error}");
    }

    /// openraft writes each chunk at the offset the sender names: neither
    /// a long write nor a seek past the bound gets a byte beyond it.
    #[tokio::test]
    async fn a_received_file_takes_no_write_past_its_bound() {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let mut received = SnapshotFile::receive_within(path.clone(), 10)
            .await
            .unwrap();
        received.write_all(b"12345678").await.unwrap();
        let error = received.write_all(b"9abc").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("at most 10 bytes"), "{error}");
        received.seek(SeekFrom::Start(1 << 40)).await.unwrap();
        assert!(received.write_all(b"x").await.is_err());
        received.seek(SeekFrom::Start(9)).await.unwrap();
        assert!(received.write_all(b"xy").await.is_err());
        // Rewriting what is within the bound is fine.
        received.seek(SeekFrom::Start(0)).await.unwrap();
        received.write_all(b"abcdefghij").await.unwrap();
        received.flush().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghij");
    }

    #[tokio::test]
    async fn a_received_file_may_take_half_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let space = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        let size = space.blocks() as u64 * space.fragment_size() as u64;
        let received = SnapshotFile::receive(dir.path().join("r")).await.unwrap();
        assert!(
            received.limit > 0 && received.limit <= size / 2,
            "{}",
            received.limit
        );
        let kept = SnapshotFile::kept(File::open(dir.path().join("r")).unwrap());
        assert_eq!(kept.limit, u64::MAX);
    }
}
