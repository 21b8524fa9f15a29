//! An owner's own writes riding in the audit writer's batches (`BatchWrites`): in the database once the record whose
//! batch took them is acknowledged, or once a batch of their own is, and what is still pending at close written before
//! the writer ends; a batch that fails leaves them pending, for the next.

use std::sync::{Arc, Mutex};

use simpul_ledger::log::AuditLog;
use simpul_ledger::personal::PersonalData;
use simpul_ledger::{Auditor, BatchWrites, Flusher, Identifier, Write};

mod common;
use common::{at, request, Outbox};

/// A counter the owner keeps in memory, durable through the batches: (value, changed since last written).
struct Counter {
    tree: sled::Tree,
    state: Mutex<(u64, bool)>,
}

impl Counter {
    fn set(&self, value: u64) {
        *self.state.lock().unwrap() = (value, true);
    }

    fn unwritten(&self) -> bool {
        self.state.lock().unwrap().1
    }
}

impl BatchWrites for Counter {
    fn pending(&self) -> Vec<Write> {
        let (value, unwritten) = *self.state.lock().unwrap();
        let write =
            Write { tree: self.tree.clone(), key: "n".into(), value: Some(value.to_be_bytes().to_vec().into()) };
        if unwritten {
            vec![write]
        } else {
            Vec::new()
        }
    }

    fn durable(&self, written: &[Write]) {
        let mut state = self.state.lock().unwrap();
        if written.iter().any(|w| w.value.as_deref() == Some(&state.0.to_be_bytes()[..])) {
            state.1 = false;
        }
    }
}

fn stored(tree: &sled::Tree) -> Option<u64> {
    tree.get("n").unwrap().map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owners_writes_are_durable_with_the_batch_that_takes_them_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = simpul_ledger::database::open(&path).unwrap();
    let flusher = Flusher::new(&db);
    let log = Arc::new(AuditLog::open(&db, flusher, &path.with_extension("tip"), None).unwrap());
    let personal = Arc::new(PersonalData::open([3; 32], dir.path().join("days")).unwrap());
    let counter = Arc::new(Counter { tree: db.open_tree("owner").unwrap(), state: Mutex::new((0, false)) });
    let writes: Arc<dyn BatchWrites> = counter.clone();
    let auditor =
        Auditor::start_with(log.clone(), Outbox::default(), personal, chrono_tz::Asia::Jakarta, Some(writes)).unwrap();

    counter.set(5);
    assert_eq!(stored(&counter.tree), None, "nothing is written before a batch takes it");
    let seq = auditor.record(at(0), request(0), Vec::new()).await.unwrap();
    assert_eq!(stored(&counter.tree), Some(5), "written with record {seq}");
    assert!(!counter.unwritten());

    // A batch of no record at all, when the owner asks for one.
    counter.set(6);
    auditor.commit_writes().await.unwrap();
    assert_eq!(stored(&counter.tree), Some(6));
    assert_eq!(log.size(), 1, "no record was added for it");

    // Changed after its last batch and before close: the writer writes it on its way out.
    counter.set(7);
    auditor.close();
    assert_eq!(stored(&counter.tree), Some(7));
    assert!(!counter.unwritten());
    log.verify().unwrap();
    // sled keeps the directory locked while any handle (a tree included) is alive.
    drop((auditor, log, counter, db));

    // The reopened database holds the last value.
    let db = simpul_ledger::database::open(&path).unwrap();
    assert_eq!(stored(&db.open_tree("owner").unwrap()), Some(7));
}

/// A batch whose building fails (a record's person needs a day key that cannot be made) writes nothing: the owner's
/// writes it took stay pending, not marked durable, and the next batch writes them.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_leaves_the_owners_writes_pending_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = simpul_ledger::database::open(&path).unwrap();
    let log = Arc::new(AuditLog::open(&db, Flusher::new(&db), &path.with_extension("tip"), None).unwrap());
    let days = dir.path().join("days");
    let personal = Arc::new(PersonalData::open([3; 32], days.clone()).unwrap());
    let counter = Arc::new(Counter { tree: db.open_tree("owner").unwrap(), state: Mutex::new((0, false)) });
    let writes: Arc<dyn BatchWrites> = counter.clone();
    let auditor =
        Auditor::start_with(log.clone(), Outbox::default(), personal, chrono_tz::Asia::Jakarta, Some(writes)).unwrap();
    let person = || vec![Identifier::Nik("3374000000100200".into())];

    // No day key can be made where the day keys go: a file stands there instead of the directory.
    std::fs::remove_dir(&days).unwrap();
    std::fs::write(&days, b"").unwrap();
    counter.set(5);
    auditor.record(at(0), request(0), person()).await.unwrap_err();
    assert_eq!(log.size(), 0);
    assert_eq!(stored(&counter.tree), None);
    assert!(counter.unwritten(), "a failed batch did not make the write durable");

    std::fs::remove_file(&days).unwrap();
    simpul_files::prepare_dir(&days).unwrap();
    let seq = auditor.record(at(1), request(1), person()).await.unwrap();
    assert_eq!(seq, 0);
    assert_eq!(stored(&counter.tree), Some(5), "written with the next batch");
    assert!(!counter.unwritten());
    auditor.close();
    log.verify().unwrap();
}
