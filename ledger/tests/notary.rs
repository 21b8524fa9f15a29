//! The notary's cadence, on tokio's paused clock: a checkpoint is signed at the half-second tick after the log grew,
//! not before it and not again while the log rests. The clock moves only when every task waits, and not while the
//! notary signs on its blocking thread, so each look below sees every tick before it complete.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use simpul_core::audit::checkpoint::{self, Signer};
use simpul_core::audit::record::{AuditRecord, Entry};
use simpul_ledger::log::AuditLog;
use simpul_ledger::notary::{self, Notary};
use simpul_ledger::Flusher;
use tokio::time::{sleep_until, Instant};

mod common;
use common::{at, request};

const SEED: [u8; 32] = [0x5e; 32];
const ORIGIN: &str = "simpul.gateway/TEST-3374";

fn append(log: &AuditLog, seqs: Range<u64>) {
    let records: Vec<Vec<u8>> =
        seqs.clone().map(|seq| AuditRecord::new(seq, at(seq), Entry::Request(request(seq))).canonical()).collect();
    assert_eq!(log.append(&records).unwrap(), seqs);
}

#[tokio::test(start_paused = true)]
async fn checkpoints_are_signed_every_half_second_while_the_log_grows_and_not_while_it_rests() {
    let dir = tempfile::tempdir().unwrap();
    let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
    let flusher = Flusher::new(&db);
    let log = Arc::new(AuditLog::open(&db, flusher.clone(), &dir.path().join("audit.tip"), None).unwrap());
    let notary = Arc::new(Notary::open(notary::signer(SEED, Some(ORIGIN)).unwrap(), log.clone()).unwrap());
    // The sizes of the stored checkpoints, each checked against the key an auditor pins and the log's own root.
    let verifier = Signer::new(ORIGIN, SEED).unwrap().verifier();
    let signed = || -> Vec<u64> {
        let checkpoints = log.checkpoints().map(|stored| {
            let (size, note) = stored.unwrap();
            let (checkpoint, _) = checkpoint::open(&note, &verifier).unwrap();
            assert_eq!((checkpoint.size, checkpoint.root), (size, log.root(size).unwrap()));
            size
        });
        checkpoints.collect()
    };

    // The notary ticks at 0, 500, 1000... ms; the test looks and appends a quarter period off the ticks.
    let start = Instant::now();
    let ms = |ms| start + Duration::from_millis(ms);
    let running = tokio::spawn(notary.clone().run());
    sleep_until(ms(250)).await;
    assert_eq!(signed(), [0u64; 0], "an empty log has nothing to sign");
    append(&log, 0..2);
    sleep_until(ms(400)).await;
    assert_eq!(signed(), [0u64; 0], "nothing is signed before the next tick");
    sleep_until(ms(750)).await;
    assert_eq!(signed(), [2], "the tick at 500 ms signed the grown log");
    let flushes = flusher.flushes();
    sleep_until(ms(1750)).await;
    assert_eq!(signed(), [2], "the ticks at 1000 and 1500 ms found the log at rest");
    assert_eq!(flusher.flushes(), flushes, "and wrote nothing, not even the same checkpoint again");
    append(&log, 2..5);
    sleep_until(ms(2250)).await;
    assert_eq!(signed(), [2, 5], "the tick at 2000 ms signed the grown log");
    running.abort();
}
