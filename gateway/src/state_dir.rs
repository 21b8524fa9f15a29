//! The state directory and the gateway's WireGuard private key in it. The directory is 0700 and the key 0600: the key
//! is the gateway's identity to every operator laptop, and the database beside it holds the private keys of the
//! devices whose key pairs the gateway generated.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use simpul_tunnel::PrivateKey;

pub const PRIVATE_KEY: &str = "private.key";
pub const DATABASE: &str = "db";
pub const CONTROL_SOCKET: &str = "control.sock";
/// The Ed25519 seed that signs audit checkpoints.
pub const AUDIT_KEY: &str = "audit.key";
/// The secret behind the personal-data lookup keys (see `audit::personal`).
pub const SUBJECT_KEY: &str = "subject.key";
/// One key per day of personal-data use, deleted at retention (see `audit::personal`).
pub const AUDIT_DAYS: &str = "audit-days";

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {0}: {1}")]
    Dir(PathBuf, io::Error),
    #[error(
        "{path} has mode {mode:04o}, which gives its group or other users access; fix it with `chmod {want:o} {path}`"
    )]
    Permissions { path: PathBuf, mode: u32, want: u32 },
    #[error("key {0}: {1}")]
    Key(PathBuf, io::Error),
    #[error("key {0} is not 32 bytes in base64")]
    Malformed(PathBuf),
}

/// Creates the directory 0700 if it is missing, and refuses one that others can read: a key and device secrets live
/// in it.
pub fn prepare(dir: &Path) -> Result<(), StateDirError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| StateDirError::Dir(dir.to_owned(), e))?;
    check_mode(dir, 0o700)
}

fn check_mode(path: &Path, want: u32) -> Result<(), StateDirError> {
    let mode = fs::metadata(path).map_err(|e| StateDirError::Dir(path.to_owned(), e))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StateDirError::Permissions { path: path.to_owned(), mode, want });
    }
    Ok(())
}

/// Loads the gateway's private key, generating it on first start. A key file others can read is refused rather than
/// silently fixed: the admin should know it may have leaked.
pub fn load_or_generate_key(dir: &Path) -> Result<PrivateKey, StateDirError> {
    let path = dir.join(PRIVATE_KEY);
    let text = read_or_create_secret(&path, || PrivateKey::generate().to_base64())?;
    text.trim().parse().map_err(|_| StateDirError::Malformed(path.clone()))
}

/// Loads a 32-byte secret (base64) kept in `dir/name`, generating it on first start, with the same care as the
/// private key: the audit log's signing key and the key that hides whose data a record concerns.
pub fn load_or_generate_secret(dir: &Path, name: &str) -> Result<[u8; 32], StateDirError> {
    use base64::Engine as _;
    use rand::RngCore;
    let path = dir.join(name);
    let text = read_or_create_secret(&path, || {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        base64::engine::general_purpose::STANDARD.encode(secret)
    })?;
    decode_secret(&path, &text)
}

/// Reads a secret [`load_or_generate_secret`] made, without making one: `None` when there is none.
pub fn read_secret(dir: &Path, name: &str) -> Result<Option<[u8; 32]>, StateDirError> {
    let path = dir.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateDirError::Key(path, e)),
    };
    check_mode(&path, 0o600)?;
    decode_secret(&path, &text).map(Some)
}

fn decode_secret(path: &Path, text: &str) -> Result<[u8; 32], StateDirError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim());
    bytes.ok().and_then(|b| b.try_into().ok()).ok_or_else(|| StateDirError::Malformed(path.to_owned()))
}

fn read_or_create_secret(path: &Path, generate: impl FnOnce() -> String) -> Result<String, StateDirError> {
    let key_error = |e| StateDirError::Key(path.to_owned(), e);
    match fs::read_to_string(path) {
        Ok(text) => {
            check_mode(path, 0o600)?;
            Ok(text)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let text = generate();
            // create_new with the mode set at open: the key never exists with wider permissions, not even briefly.
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(key_error)?;
            file.write_all(format!("{text}\n").as_bytes()).map_err(key_error)?;
            file.sync_all().map_err(key_error)?;
            Ok(text)
        }
        Err(e) => Err(key_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_generated_once_and_kept_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let first = load_or_generate_key(&dir).unwrap();
        assert_eq!(mode(&dir.join(PRIVATE_KEY)), 0o600);
        let again = load_or_generate_key(&dir).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        // The file holds the form `wg` reads.
        let text = fs::read_to_string(dir.join(PRIVATE_KEY)).unwrap();
        assert_eq!(text.trim(), first.to_base64());
    }

    #[test]
    fn loose_permissions_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare(&dir).unwrap();
        load_or_generate_key(&dir).unwrap();
        let key = dir.join(PRIVATE_KEY);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_generate_key(&dir).unwrap_err().to_string();
        assert!(error.contains("0644") && error.contains("chmod 600"), "{error}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let error = prepare(&dir).unwrap_err().to_string();
        assert!(error.contains("0755") && error.contains("chmod 700"), "{error}");
    }

    #[test]
    fn a_damaged_key_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare(&dir).unwrap();
        let key = dir.join(PRIVATE_KEY);
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).unwrap().write_all(b"nonsense").unwrap();
        assert!(matches!(load_or_generate_key(&dir), Err(StateDirError::Malformed(_))));
    }
}
