//! Opening an owner's sled database: sled holds an exclusive lock on the `db` file inside its directory while a
//! handle is open, and releases it only when its background threads let go of a dropped handle, a moment after
//! the drop. An owner that is closed and opened again in one process (a test, an upgrade) waits for that moment;
//! a lock this process never took is another process's, named at once as such, not as a damaged database.

use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a lock this process took may stay held after its handle is dropped before the holder is taken for
/// another process.
const RELEASE: Duration = Duration::from_secs(10);

/// The databases this process has opened: only their locks are worth waiting for.
static OPENED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn opened_here(path: &Path) -> bool {
    let opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    opened.as_ref().is_some_and(|set| set.contains(&canonical(path)))
}

fn remember(path: &Path) {
    OPENED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).insert(canonical(path));
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{} is in use by another process (is a gateway already running with this state directory?)", .0.display())]
    InUse(PathBuf),
    #[error("{}: its files are damaged ({why})", path.display())]
    Damaged { path: PathBuf, why: &'static str },
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
}

/// Holds the lock on the database at `path` (a directory sled made) until dropped, waiting up to [`RELEASE`] for
/// a handle this process dropped to let go of it. `None` when there is no database there yet.
pub fn lock(path: &Path) -> Result<Option<File>, DatabaseError> {
    lock_within(path, RELEASE)
}

fn lock_within(path: &Path, wait: Duration) -> Result<Option<File>, DatabaseError> {
    let file = match File::open(path.join("db")) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatabaseError::Io { path: path.join("db"), error: e }),
    };
    let deadline = Instant::now() + if opened_here(path) { wait } else { Duration::ZERO };
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(TryLockError::WouldBlock) => return Err(DatabaseError::InUse(path.to_owned())),
            Err(TryLockError::Error(e)) => return Err(DatabaseError::Io { path: path.join("db"), error: e }),
        }
    }
}

/// Opens (or creates) the database at `path`. sled 0.34 panics on some damaged files rather than answering an
/// error: that is reported as [`DatabaseError::Damaged`] too.
pub fn open(path: impl AsRef<Path>) -> Result<sled::Db, DatabaseError> {
    open_within(path.as_ref(), RELEASE)
}

fn open_within(path: &Path, wait: Duration) -> Result<sled::Db, DatabaseError> {
    drop(lock_within(path, wait)?);
    match catch_unwind(AssertUnwindSafe(|| sled::open(path))) {
        Ok(Ok(db)) => {
            remember(path);
            Ok(db)
        }
        Ok(Err(sled::Error::Corruption { .. })) => {
            Err(DatabaseError::Damaged { path: path.to_owned(), why: "sled reports corruption" })
        }
        // Another process took the lock between the wait and sled's own attempt.
        Ok(Err(sled::Error::Io(_))) if matches!(lock_now(path), Err(TryLockError::WouldBlock)) => {
            Err(DatabaseError::InUse(path.to_owned()))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(DatabaseError::Damaged { path: path.to_owned(), why: "sled panicked reading them" }),
    }
}

fn lock_now(path: &Path) -> Result<(), TryLockError> {
    File::open(path.join("db")).map_err(TryLockError::Error)?.try_lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_reopened_at_once_in_this_process_waits_for_the_dropped_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        for round in 0..20u64 {
            let db = open(&path).unwrap();
            db.insert(round.to_be_bytes(), &b"x"[..]).unwrap();
            db.flush().unwrap();
            assert_eq!(db.len(), round as usize + 1);
        }
    }

    #[test]
    fn a_held_database_is_named_in_use_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = open(&path).unwrap();
        let err = open_within(&path, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(&err, DatabaseError::InUse(p) if p == &path), "{err:?}");
        assert!(err.to_string().contains("in use by another process"), "{err}");
        assert!(matches!(lock_within(&path, Duration::ZERO), Err(DatabaseError::InUse(_))));
        drop(db);
        assert!(lock(&path).unwrap().is_some());
    }

    #[test]
    fn a_lock_this_process_never_took_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::create_dir(&path).unwrap();
        // Another process's lock, as far as this module knows: taken outside it.
        let held = File::create(path.join("db")).unwrap();
        held.lock().unwrap();
        assert!(!opened_here(&path));
        assert!(matches!(open(&path), Err(DatabaseError::InUse(_))));
        drop(held);
        open(&path).unwrap();
        assert!(opened_here(&path));
    }
}
