//! Files that hold secrets or evidence: keys, the audit log's tip. A directory that holds them is 0700 and each file
//! 0600 from the moment it exists (the mode is set when the file is created, never fixed up afterwards); a file
//! others can read is refused rather than silently repaired, since the secret may have leaked and the admin should
//! know. Replacing a file's contents is not a repair: the new contents go into a new file, 0600 from its creation,
//! renamed over the old one, so whatever others could read of the old file, they never see the new contents. A
//! created or replaced file, and its name, survive a crash once the call returns.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
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

/// Replaces `path` (or creates it) with `contents`, 0600 whatever the mode of the file it replaces, durably: a
/// temporary file beside it is created 0600, written and synced, then renamed over `path`. A crash leaves either the
/// old contents or the new, never a mix.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let name = path.file_name().ok_or_else(|| FileError::Io(path.to_owned(), io::ErrorKind::InvalidInput.into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = parent(path).join(tmp_name);
    // A leftover of an interrupted replace may have any mode, and opening an existing file keeps it: remove it, then
    // create the file anew, failing rather than writing into one that reappeared in between.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(FileError::Io(tmp, e)),
        _ => {}
    }
    create_private(&tmp, contents)?;
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads a private file: `None` when it does not exist; refused when others can read it. The mode is that of the
/// opened file, so it is the mode of what is read even if the path is swapped in between.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::Io(path.to_owned(), e)),
    };
    let mode = file.metadata().map_err(io_error(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::Permissions { path: path.to_owned(), mode, want: 0o600 });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok(Some(bytes))
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

    #[test]
    fn replacing_makes_a_private_file_whatever_was_there() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("device.conf");
        replace_private(&path, b"first").unwrap();
        assert_eq!((fs::read(&path).unwrap(), mode(&path)), (b"first".to_vec(), 0o600));

        // A file others could read is replaced, not written into: the new contents never were in a loose file, and
        // one who opened the old file before still reads the old contents only.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut opened_before = File::open(&path).unwrap();
        replace_private(&path, b"second").unwrap();
        assert_eq!((fs::read(&path).unwrap(), mode(&path)), (b"second".to_vec(), 0o600));
        let mut old = String::new();
        opened_before.read_to_string(&mut old).unwrap();
        assert_eq!(old, "first");

        // A leftover temporary file of any mode is not reused.
        let stale = tmp.path().join(".device.conf.tmp");
        fs::write(&stale, "left over by an interrupted replace").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o666)).unwrap();
        replace_private(&path, b"third").unwrap();
        assert_eq!((fs::read(&path).unwrap(), mode(&path)), (b"third".to_vec(), 0o600));
        assert!(!stale.exists());
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["device.conf"]);
    }

    #[test]
    fn a_private_read_checks_the_mode_of_what_it_read() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.pem");
        assert_eq!(read_private(&path).unwrap(), None);
        replace_private(&path, b"secret").unwrap();
        assert_eq!(read_private(&path).unwrap(), Some(b"secret".to_vec()));
        for loose in [0o640, 0o604, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            let error = read_private(&path).unwrap_err();
            assert!(matches!(&error, FileError::Permissions { mode, want: 0o600, .. } if *mode == loose), "{error}");
            assert!(error.to_string().contains(&format!("chmod 600 {}", path.display())), "{error}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_private(&path).unwrap(), Some(b"secret".to_vec()));
    }
}
