//! The host's stable id: made up once, kept in `<state_dir>/host-id`, so a
//! restarted host is the same host to the coordinator.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{Error, HostConfig, Result};

const HOST_ID_FILE: &str = "host-id";

/// The id to register under: the configured one, else the kept one, else a
/// new one, which is kept for next time.
pub fn load_or_create(config: &HostConfig) -> Result<String> {
    if let Some(id) = &config.host_id {
        check_host_id(id)?;
        return Ok(id.clone());
    }
    let path = config.state_dir.join(HOST_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            check_host_id(&id)?;
            Ok(id)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("host-{}", uuid::Uuid::new_v4().simple());
            write_atomically(&config.state_dir, &path, &id)?;
            Ok(id)
        }
        Err(source) => Err(Error::Identity { path, source }),
    }
}

/// Ids travel in URL paths and logs: keep them short and plain.
pub fn check_host_id(id: &str) -> Result<()> {
    // The coordinator's own rule, so a host never starts with an id it
    // would refuse.
    skyclaw_api::limits::id("host id", id)
        .map_err(|invalid| Error::Config(format!("{id:?}: {invalid}")))
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written id behind.
fn write_atomically(dir: &Path, path: &Path, id: &str) -> Result<()> {
    let io_error = |source| Error::Identity {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io_error)?;
    let temporary = dir.join(format!(".{HOST_ID_FILE}.tmp"));
    let mut file = fs::File::create(&temporary).map_err(io_error)?;
    file.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error)?;
    fs::rename(&temporary, path).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: dir.path().join("host"),
            ..HostConfig::default()
        };
        let first = load_or_create(&config).unwrap();
        let second = load_or_create(&config).unwrap();
        assert_eq!(first, second);
        assert!(first.starts_with("host-"));
        let kept = fs::read_to_string(dir.path().join("host").join(HOST_ID_FILE)).unwrap();
        assert_eq!(kept.trim(), first);
    }

    #[test]
    fn a_configured_id_wins_and_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: dir.path().to_path_buf(),
            host_id: Some("laptop-1".into()),
            ..HostConfig::default()
        };
        assert_eq!(load_or_create(&config).unwrap(), "laptop-1");
        assert!(!dir.path().join(HOST_ID_FILE).exists());
    }

    #[test]
    fn a_damaged_id_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(HOST_ID_FILE), "not/an id").unwrap();
        let config = HostConfig {
            state_dir: dir.path().to_path_buf(),
            ..HostConfig::default()
        };
        assert!(load_or_create(&config).is_err());
    }
}
