//! Segment files as a source: one file, or a directory of them taken in the
//! order of their first seq, each required to continue the one before. The
//! segment reader verifies framing and the chain as it reads; this module
//! feeds what it verified to the pass and keeps the progress bar moving.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use skyclaw_log_format::SegmentReader;

use crate::finding::{classify, Stop};
use crate::pass::{Pass, Unit};
use crate::Error;

/// Read buffer for segment files: large reads keep the reader's per-frame
/// reads cheap.
const BUFFER: usize = 1 << 18;

/// Verifies one segment file.
pub(crate) fn verify_file(path: &Path, pass: &mut Pass<'_>) -> Result<(), Stop> {
    let size = file_size(path)?;
    pass.show_progress(size, Unit::Bytes);
    read_file(path, pass, &Rc::new(Cell::new(0)))
}

/// Verifies every segment file in `dir` (hidden files aside) as one log.
pub(crate) fn verify_dir(dir: &Path, pass: &mut Pass<'_>) -> Result<(), Stop> {
    let listing =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut files = Vec::new();
    let mut total = 0;
    for entry in listing {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !path.is_file() {
            continue;
        }
        let header = SegmentReader::new(open(&path)?)
            .map_err(|error| classify(&path.display().to_string(), error))?
            .header()
            .clone();
        total += file_size(&path)?;
        files.push((header.first_seq, path));
    }
    if files.is_empty() {
        return Err(Error::NotALog {
            name: dir.display().to_string(),
            reason: "the directory holds no segment files".into(),
        }
        .into());
    }
    files.sort();
    pass.show_progress(total, Unit::Bytes);
    let consumed = Rc::new(Cell::new(0));
    for (_, path) in files {
        read_file(&path, pass, &consumed)?;
    }
    Ok(())
}

fn read_file(path: &Path, pass: &mut Pass<'_>, consumed: &Rc<Cell<u64>>) -> Result<(), Stop> {
    let name = path.display().to_string();
    let input = Counted {
        inner: open(path)?,
        consumed: consumed.clone(),
    };
    let mut reader = SegmentReader::new(BufReader::with_capacity(BUFFER, input))
        .map_err(|error| classify(&name, error))?;
    pass.begin(&name, reader.header())?;
    for (index, item) in reader.by_ref().enumerate() {
        let record = item.map_err(|error| classify(&name, error))?;
        pass.accept(&record)?;
        if index % 4096 == 0 {
            pass.set_progress(consumed.get());
        }
    }
    pass.set_progress(consumed.get());
    Ok(())
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

fn file_size(path: &Path) -> Result<u64, Error> {
    std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// Counts the bytes read through it, for the progress bar.
struct Counted {
    inner: File,
    consumed: Rc<Cell<u64>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + read as u64);
        Ok(read)
    }
}
