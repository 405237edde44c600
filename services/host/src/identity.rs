//! Who the host is to the coordinator. By default, its own ed25519 key,
//! made on first start and kept in `<state_dir>/host.key` (the 32-byte
//! seed in hex, mode 0600): its id is the key's (`skyclaw_state::host_id_for`,
//! the hex SHA-256 of the public key, as OpenClaw derives a device id), so
//! no one else can register under it, and it registers by signing a
//! challenge. Pointed at its OpenClaw identity file
//! (`~/.openclaw/identity/device.json`), it uses that key instead, so its
//! id is its OpenClaw device id. With a configured id (`SKYCLAW_HOST_ID`)
//! it is the MVP's kind of host instead: no key, trusted as the holder of
//! the admin token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use skyclaw_log_format::{Receipt, ReceiptSeal};
use skyclaw_state::{host_id_for, Hash32};

use crate::{Error, HostConfig, Result};

const KEY_FILE: &str = "host.key";
/// The id the key gives, written beside it for people and scripts (it is
/// not secret): what `skyclaw hosts approve` takes.
const HOST_ID_FILE: &str = "host-id";

/// How the host is known.
pub enum Identity {
    /// An id given in the configuration; no key.
    Named(String),
    Keyed(Box<HostKey>),
}

impl Identity {
    pub fn host_id(&self) -> &str {
        match self {
            Identity::Named(id) => id,
            Identity::Keyed(key) => &key.host_id,
        }
    }
}

/// The host's key pair and what derives from it.
pub struct HostKey {
    signing: SigningKey,
    pub host_id: String,
    /// The public key, base64url without padding, as the API carries it.
    pub public_key: String,
}

impl HostKey {
    fn from_seed(seed: [u8; 32]) -> HostKey {
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        HostKey {
            host_id: host_id_for(&Hash32(public)),
            public_key: URL_SAFE_NO_PAD.encode(public),
            signing,
        }
    }

    /// The receipt, signed: `None` when one of its fields holds a line
    /// break (which the coordinator's ids never do).
    pub fn sign_receipt(&self, receipt: &Receipt) -> Option<ReceiptSeal> {
        receipt.sign(&self.signing)
    }

    /// The signature of `message`, base64url without padding.
    pub fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.sign(message).to_bytes())
    }
}

/// The configured id, else the OpenClaw identity's key, else the kept
/// key, else a new key, which is kept.
pub fn load_or_create(config: &HostConfig) -> Result<Identity> {
    if let Some(id) = &config.host_id {
        check_host_id(id)?;
        return Ok(Identity::Named(id.clone()));
    }
    if let Some(path) = &config.openclaw_identity {
        let seed = openclaw_seed(path)?;
        return keyed(config, seed);
    }
    let path = config.state_dir.join(KEY_FILE);
    let io_error = |source| Error::Identity {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path)?;
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| {
                Error::Config(format!(
                    "{} does not hold a key (64 hex digits)",
                    path.display()
                ))
            })?;
            keyed(config, seed)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| io_error(e.into()))?;
            write_private(&config.state_dir, KEY_FILE, &hex::encode(seed)).map_err(io_error)?;
            keyed(config, seed)
        }
        Err(source) => Err(Error::Identity { path, source }),
    }
}

/// The DER prefix of an ed25519 private key in PKCS #8 (RFC 8410), before
/// its 32-byte seed: what OpenClaw's `privateKeyPem` holds.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The seed of the key in an OpenClaw device identity file
/// (`{version, deviceId, publicKeyPem, privateKeyPem, createdAtMs}`),
/// after checking that its `deviceId` is the key's.
fn openclaw_seed(path: &Path) -> Result<[u8; 32]> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DeviceIdentity {
        device_id: String,
        private_key_pem: String,
    }
    let bad = |why: String| Error::Config(format!("{}: {why}", path.display()));
    let text = fs::read_to_string(path).map_err(|source| Error::Identity {
        path: path.to_path_buf(),
        source,
    })?;
    check_private(path)?;
    let identity: DeviceIdentity =
        serde_json::from_str(&text).map_err(|e| bad(format!("not an OpenClaw identity: {e}")))?;
    let body: String = identity
        .private_key_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| bad("privateKeyPem is not PEM".into()))?;
    let seed: [u8; 32] = der
        .strip_prefix(&PKCS8_ED25519_PREFIX[..])
        .and_then(|seed| seed.try_into().ok())
        .ok_or_else(|| bad("privateKeyPem is not an ed25519 key".into()))?;
    let key = HostKey::from_seed(seed);
    if key.host_id != identity.device_id {
        return Err(bad(format!(
            "deviceId {} is not the id of its key ({})",
            identity.device_id, key.host_id
        )));
    }
    Ok(seed)
}

/// Refuses a key file others may read: the key would no longer be the
/// host's alone.
fn check_private(path: &Path) -> Result<()> {
    let mode = fs::metadata(path)
        .map_err(|source| Error::Identity {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{} is readable by others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// The identity of the key `seed` makes, its id written beside it.
fn keyed(config: &HostConfig, seed: [u8; 32]) -> Result<Identity> {
    let key = Box::new(HostKey::from_seed(seed));
    let path = config.state_dir.join(HOST_ID_FILE);
    let written = fs::read_to_string(&path).ok();
    if written.as_deref().map(str::trim) != Some(key.host_id.as_str()) {
        write_private(&config.state_dir, HOST_ID_FILE, &key.host_id)
            .map_err(|source| Error::Identity { path, source })?;
    }
    Ok(Identity::Keyed(key))
}

/// Ids travel in URL paths and logs: keep them short and plain.
pub fn check_host_id(id: &str) -> Result<()> {
    // The coordinator's own rule, so a host never starts with an id it
    // would refuse.
    skyclaw_api::limits::id("host id", id)
        .map_err(|invalid| Error::Config(format!("{id:?}: {invalid}")))
}

/// Writes `dir/name`, readable by its owner only, through a temporary
/// file and a rename, so a crash never leaves half a key behind.
fn write_private(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let path = dir.join(name);
    fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, &path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(config: &HostConfig) -> HostKey {
        match load_or_create(config).unwrap() {
            Identity::Keyed(key) => *key,
            Identity::Named(id) => panic!("named {id}"),
        }
    }

    #[test]
    fn a_key_is_made_once_kept_private_and_names_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: dir.path().join("host"),
            ..HostConfig::default()
        };
        let first = keyed(&config);
        let second = keyed(&config);
        assert_eq!(first.host_id, second.host_id);
        assert_eq!(first.host_id.len(), 64);
        let file = dir.path().join("host").join(KEY_FILE);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let id = fs::read_to_string(dir.path().join("host").join(HOST_ID_FILE)).unwrap();
        assert_eq!(id.trim(), first.host_id);
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: dir.path().to_path_buf(),
            ..HostConfig::default()
        };
        keyed(&config);
        let file = dir.path().join(KEY_FILE);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(&config).is_err());
    }

    /// An identity file as OpenClaw writes one for `seed`.
    fn openclaw_file(dir: &Path, seed: [u8; 32], device_id: &str) -> std::path::PathBuf {
        let der = [&PKCS8_ED25519_PREFIX[..], &seed[..]].concat();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        let path = dir.join("device.json");
        let identity = serde_json::json!({
            "version": 1, "deviceId": device_id, "publicKeyPem": "unused",
            "privateKeyPem": pem, "createdAtMs": 0,
        });
        fs::write(&path, identity.to_string()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn an_openclaw_identity_gives_its_key_and_device_id() {
        let dir = tempfile::tempdir().unwrap();
        let seed = [3u8; 32];
        let device_id = HostKey::from_seed(seed).host_id;
        let config = HostConfig {
            state_dir: dir.path().join("host"),
            openclaw_identity: Some(openclaw_file(dir.path(), seed, &device_id)),
            ..HostConfig::default()
        };
        assert_eq!(keyed(&config).host_id, device_id);
        assert!(!dir.path().join("host").join(KEY_FILE).exists());
        let lying = HostConfig {
            openclaw_identity: Some(openclaw_file(dir.path(), seed, "0000")),
            ..config
        };
        assert!(load_or_create(&lying).is_err());
    }

    #[test]
    fn a_configured_id_is_a_host_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = HostConfig {
            state_dir: dir.path().to_path_buf(),
            host_id: Some("laptop-1".into()),
            ..HostConfig::default()
        };
        assert_eq!(load_or_create(&config).unwrap().host_id(), "laptop-1");
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        let config = HostConfig {
            state_dir: dir.path().to_path_buf(),
            ..HostConfig::default()
        };
        assert!(load_or_create(&config).is_err());
    }
}
