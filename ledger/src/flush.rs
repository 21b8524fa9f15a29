//! Making sled writes durable, one flush at a time. sled 0.34.7 (the pinned stable line) can deadlock when flushes
//! run concurrently (spacejam/sled#1308: a transaction waits for flushers that wait for a log write that waits for
//! the transaction), which froze the gateway under 8 concurrent requests. So every durable write in the gateway goes
//! through one `Flusher`: one flush runs at a time, and a caller whose write an earlier flush already covered returns
//! without flushing again (group commit), which also makes concurrent writers share one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Flusher {
    db: sled::Db,
    /// Writes announced so far (each caller's number, in order).
    written: AtomicU64,
    /// Writes known durable; held while flushing, so flushes never overlap.
    durable: Mutex<u64>,
    /// Flushes done, for the benchmarks' flushes-per-record figure.
    flushes: AtomicU64,
}

impl Flusher {
    pub fn new(db: &sled::Db) -> Arc<Self> {
        Arc::new(Flusher {
            db: db.clone(),
            written: AtomicU64::new(0),
            durable: Mutex::new(0),
            flushes: AtomicU64::new(0),
        })
    }

    /// Returns once every write the caller made before calling is on disk. Blocking: call it off async threads.
    pub fn flush(&self) -> sled::Result<()> {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut durable = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if *durable >= mine {
            return Ok(());
        }
        // Every write numbered up to here was made before its number was taken, so this flush covers it.
        let upto = self.written.load(Ordering::SeqCst);
        self.db.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        *durable = upto;
        Ok(())
    }

    /// How many flushes reached the disk so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use simpul_integration::crash::{acknowledge_and_wait, kill_once_acknowledged};

    use super::*;

    /// Set in the child process to the database it writes; see `crash_helper_writes_and_flushes`.
    const CRASH_DB_ENV: &str = "SIMPUL_FLUSH_CRASH_DB";
    const THREADS: u32 = 16;
    const WRITES: u32 = 50;

    /// Not a test on its own: the child process of `concurrent_writes_are_durable_once_their_flush_returns`.
    #[test]
    #[ignore = "run by concurrent_writes_are_durable_once_their_flush_returns in a child process"]
    fn crash_helper_writes_and_flushes() {
        let Some(path) = std::env::var_os(CRASH_DB_ENV) else { return };
        // sled's background flush is off: only the flushes under test can make a write durable.
        let db = sled::Config::new().path(Path::new(&path)).flush_every_ms(None).open().unwrap();
        let flusher = Flusher::new(&db);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (db, flusher) = (db.clone(), flusher.clone());
                scope.spawn(move || {
                    for i in 0..WRITES {
                        db.insert(format!("{t}/{i}"), &i.to_be_bytes()).unwrap();
                        flusher.flush().unwrap();
                    }
                });
            }
        });
        acknowledge_and_wait("flushed");
    }

    #[test]
    fn concurrent_writes_are_durable_once_their_flush_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        kill_once_acknowledged(
            "flush::tests::crash_helper_writes_and_flushes",
            (CRASH_DB_ENV, path.as_os_str()),
            "flushed",
        );
        let db = crate::database::open(&path).unwrap();
        assert_eq!(db.len(), (THREADS * WRITES) as usize);
    }
}
