//! Files that hold secrets or evidence: keys, the audit log's tip. A directory that holds them is 0700 and each file
//! 0600 from the moment it exists (the mode is set when the file is created, never fixed up afterwards); a file
//! others can read is refused rather than silently repaired, since the secret may have leaked and the admin should
//! know. A created file, and its name, survive a crash once the call returns.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    #[error(
        "{path} has mode {mode:04o}, which gives its group or other users access; fix it with `chmod {want:o} {path}`"
    )]
    Permissions { path: PathBuf, mode: u32, want: u32 },
    #[error("{0} is not a 32-byte secret in base64")]
    Malformed(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |e| FileError::Io(path.to_owned(), e)
}

/// Creates the directory 0700 if it is missing, and refuses one that others can read.
pub fn prepare_dir(dir: &Path) -> Result<(), FileError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
    check_mode(dir, 0o700)
}

/// Refuses `path` if its group or others have any access; `want` is the mode the message suggests.
pub fn check_mode(path: &Path, want: u32) -> Result<(), FileError> {
    let mode = fs::metadata(path).map_err(io_error(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::Permissions { path: path.to_owned(), mode, want });
    }
    Ok(())
}

/// Makes the directory entries of `dir` durable (a created, renamed or removed file's name).
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

/// Opens (creating if missing) a 0600 file for reading and writing in place; an existing file others can read is
/// refused.
pub fn open_private(path: &Path) -> Result<File, FileError> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path);
    let file = file.map_err(io_error(path))?;
    check_mode(path, 0o600)?;
    Ok(file)
}

/// Creates `path` 0600 with `contents`, durably; fails if it exists.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_error(path))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_error(path))?;
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads a private file: `None` when it does not exist; refused when others can read it.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(bytes) => {
            check_mode(path, 0o600)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::Io(path.to_owned(), e)),
    }
}

/// Reads the text secret in `path`, creating it first from `generate` when it does not exist.
pub fn read_or_create_secret(path: &Path, generate: impl FnOnce() -> String) -> Result<String, FileError> {
    if let Some(bytes) = read_private(path)? {
        return String::from_utf8(bytes).map_err(|_| FileError::Malformed(path.to_owned()));
    }
    let text = generate();
    create_private(path, format!("{text}\n").as_bytes())?;
    Ok(text)
}

/// Loads a 32-byte secret (base64, one line) kept in `path`, generating it on first use.
pub fn load_or_generate_secret(path: &Path) -> Result<[u8; 32], FileError> {
    use rand::RngCore;
    let text = read_or_create_secret(path, || {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        BASE64.encode(secret)
    })?;
    decode_secret(path, &text)
}

/// Reads a secret [`load_or_generate_secret`] made, without making one: `None` when there is none.
pub fn read_secret(path: &Path) -> Result<Option<[u8; 32]>, FileError> {
    match read_private(path)? {
        None => Ok(None),
        Some(bytes) => decode_secret(path, &String::from_utf8_lossy(&bytes)).map(Some),
    }
}

fn decode_secret(path: &Path, text: &str) -> Result<[u8; 32], FileError> {
    let bytes = BASE64.decode(text.trim());
    bytes.ok().and_then(|b| b.try_into().ok()).ok_or_else(|| FileError::Malformed(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_made_once_private_and_refused_when_loose() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join("a.key");
        assert_eq!(read_secret(&path).unwrap(), None);
        let first = load_or_generate_secret(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load_or_generate_secret(&path).unwrap(), first);
        assert_eq!(read_secret(&path).unwrap(), Some(first));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_secret(&path).unwrap_err().to_string();
        assert!(error.contains("0640") && error.contains("chmod 600"), "{error}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(prepare_dir(&dir).unwrap_err().to_string().contains("chmod 700"));
        fs::write(dir.join("bad.key"), "nonsense").unwrap();
        fs::set_permissions(dir.join("bad.key"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read_secret(&dir.join("bad.key")), Err(FileError::Malformed(_))));
    }
}
