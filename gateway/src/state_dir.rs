//! The state directory and the gateway's WireGuard private key in it. The directory is 0700 and every key 0600 (see
//! `simpul_files`): the key is the gateway's identity to every operator laptop, and the database beside it holds the
//! private keys of the devices whose key pairs the gateway generated.

use std::path::Path;

use simpul_files::FileError;
use simpul_tunnel::PrivateKey;

pub const PRIVATE_KEY: &str = "private.key";
pub const DATABASE: &str = "db";
pub const CONTROL_SOCKET: &str = "control.sock";
/// The key that seals personal data in the database (see `crate::seal`).
pub const STORE_KEY: &str = "store.key";

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory: {0}")]
    File(#[from] FileError),
    #[error("key {0} is not a WireGuard private key")]
    Malformed(std::path::PathBuf),
}

/// Creates the directory 0700 if it is missing, and refuses one that others can read.
pub fn prepare(dir: &Path) -> Result<(), StateDirError> {
    Ok(simpul_files::prepare_dir(dir)?)
}

/// Loads the gateway's private key, generating it on first start.
pub fn load_or_generate_key(dir: &Path) -> Result<PrivateKey, StateDirError> {
    let path = dir.join(PRIVATE_KEY);
    let text = simpul_files::read_or_create_secret(&path, || PrivateKey::generate().to_base64())?;
    text.trim().parse().map_err(|_| StateDirError::Malformed(path.clone()))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_generated_once_kept_private_and_in_the_form_wg_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let first = load_or_generate_key(&dir).unwrap();
        assert_eq!(mode(&dir.join(PRIVATE_KEY)), 0o600);
        let again = load_or_generate_key(&dir).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        let text = fs::read_to_string(dir.join(PRIVATE_KEY)).unwrap();
        assert_eq!(text.trim(), first.to_base64());
        fs::set_permissions(dir.join(PRIVATE_KEY), fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_generate_key(&dir).unwrap_err().to_string();
        assert!(error.contains("0644") && error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn a_damaged_key_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare(&dir).unwrap();
        simpul_files::create_private(&dir.join(PRIVATE_KEY), b"nonsense").unwrap();
        assert!(matches!(load_or_generate_key(&dir), Err(StateDirError::Malformed(_))));
    }
}
