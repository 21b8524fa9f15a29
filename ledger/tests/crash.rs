//! Acknowledged appends survive a crash: a child process appends records to a real log on disk, says so once the
//! appends returned, and is killed with SIGKILL (no destructor, no clean drop of sled, whose background flush is off
//! in the child), so what the reopened log holds is what the append's own flush and tip made durable.

use std::path::Path;

use simpul_core::audit::merkle;
use simpul_core::audit::record::{AuditRecord, Entry};
use simpul_integration::crash::{acknowledge_and_wait, kill_once_acknowledged};
use simpul_ledger::log::AuditLog;
use simpul_ledger::Flusher;

mod common;
use common::{at, request};

/// Set in the child process to the directory of the log it appends to; see `crash_helper_appends`.
const CRASH_DIR_ENV: &str = "SIMPUL_LEDGER_CRASH_DIR";
/// Records in batches of 1, 2, 3... up to this many.
const RECORDS: u64 = 55;

fn record(seq: u64) -> Vec<u8> {
    AuditRecord::new(seq, at(seq), Entry::Request(request(seq))).canonical()
}

/// Not a test on its own: the child process of `acknowledged_appends_survive_a_kill_9`.
#[test]
#[ignore = "run by acknowledged_appends_survive_a_kill_9 in a child process"]
fn crash_helper_appends() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else { return };
    let dir = Path::new(&dir);
    let db = sled::Config::new().path(dir.join("db")).flush_every_ms(None).open().unwrap();
    let log = AuditLog::open(&db, Flusher::new(&db), &dir.join("audit.tip"), None).unwrap();
    let mut next = 0;
    for batch in 1.. {
        let records: Vec<Vec<u8>> = (next..RECORDS.min(next + batch)).map(record).collect();
        next = log.append(&records).unwrap().end;
        if next == RECORDS {
            break;
        }
    }
    acknowledge_and_wait("appended");
}

#[test]
fn acknowledged_appends_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    kill_once_acknowledged("crash_helper_appends", (CRASH_DIR_ENV, dir.path().as_os_str()), "appended");
    let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
    // Opening checks the database against the tip the appends synced: every acknowledged record must be there.
    let log = AuditLog::open(&db, Flusher::new(&db), &dir.path().join("audit.tip"), None).unwrap();
    assert_eq!(log.size(), RECORDS);
    let leaves: Vec<merkle::Hash> = (0..RECORDS).map(|seq| merkle::leaf_hash(&record(seq))).collect();
    assert_eq!(log.root(RECORDS).unwrap(), merkle::root(&leaves));
    assert_eq!(log.record(RECORDS - 1).unwrap(), Some(record(RECORDS - 1)));
    log.verify().unwrap();
}
