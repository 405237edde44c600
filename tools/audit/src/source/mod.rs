//! Where a log comes from: a coordinator over HTTP, a segment file, a
//! directory of segment files, or a stopped coordinator's data directory.
//! [`Source::parse`] tells them apart from one argument; each submodule
//! reads one kind and feeds verified records to the pass.

#[cfg(feature = "rocksdb")]
pub mod data_dir;
pub mod remote;
pub(crate) mod segments;

use std::path::{Path, PathBuf};

use crate::Error;

/// A log to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Coordinators of one cluster, any of which may answer.
    Coordinator(Vec<String>),
    SegmentFile(PathBuf),
    /// Every segment file in the directory, ordered by first seq.
    SegmentDir(PathBuf),
    /// A stopped coordinator's RocksDB directory, opened read-only.
    DataDir(PathBuf),
}

impl Source {
    /// An `http://` URL (or a comma-separated list of them) is a
    /// coordinator; a directory holding RocksDB's `CURRENT` file is a data
    /// directory; any other directory holds segment files; a file is a
    /// segment.
    pub fn parse(text: &str) -> Result<Source, Error> {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            let urls = text
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
            return Ok(Source::Coordinator(urls));
        }
        let path = PathBuf::from(text);
        let meta = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if meta.is_file() {
            Ok(Source::SegmentFile(path))
        } else if is_data_dir(&path) {
            Ok(Source::DataDir(path))
        } else {
            Ok(Source::SegmentDir(path))
        }
    }

    /// The source in a few words, for the report.
    pub fn describe(&self) -> String {
        match self {
            Source::Coordinator(urls) => format!("coordinator {}", urls.join(", ")),
            Source::SegmentFile(path) => format!("segment file {}", path.display()),
            Source::SegmentDir(path) => format!("segment directory {}", path.display()),
            Source::DataDir(path) => format!("data directory {}", path.display()),
        }
    }
}

fn is_data_dir(path: &Path) -> bool {
    path.join("CURRENT").is_file()
}
