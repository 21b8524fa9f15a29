//! The audit log's benchmark: durable records per second through the real writer (group commit) at 1, 16 and 64
//! concurrent requests, against the anchor of the same record written durably one by one (a sled insert and a flush
//! per record, what a log without group commit does); flushes per record; CPU microseconds per record spent on
//! encoding and hashing, and per checkpoint on signing. One JSON line per figure (design/TESTING.md).
//!
//! `cargo bench -p simpul-ledger --bench audit_log` (release build, 5 s per run, 3 runs). Under `cargo test` it runs
//! once, briefly, so the suite keeps it compiling and working without timing anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use simpul_core::audit::checkpoint::{Checkpoint, Signer};
use simpul_core::audit::merkle;
use simpul_core::audit::record::{AuditRecord, Entry, Outcome, RequestRecord, Source};
use simpul_core::element::{Element, ElementSet};
use simpul_core::wire::method::Method;
use simpul_integration::bench::{median, BenchLine};
use simpul_ledger::{notary, AdminEvent, AdminOutbox, AuditLog, Auditor, Flusher, Identifier, Notary, PersonalData};

/// No admin changes in these runs.
struct NoAdmin;

impl AdminOutbox for NoAdmin {
    fn events_after(&self, _: u64) -> Result<Vec<(u64, AdminEvent)>, String> {
        Ok(Vec::new())
    }
}

/// A database with the log in it, as an owner opens it: (database, its flusher, the log).
fn open(dir: &std::path::Path) -> (sled::Db, Arc<Flusher>, Arc<AuditLog>) {
    let db = simpul_ledger::database::open(dir.join("db")).unwrap();
    let flusher = Flusher::new(&db);
    let log = Arc::new(AuditLog::open(&db, flusher.clone(), &dir.join("audit.tip"), None).unwrap());
    (db, flusher, log)
}

fn request(i: u64) -> RequestRecord {
    RequestRecord {
        request_id: format!("{i:016x}"),
        institution: Some("DINSOS-3374".into()),
        user: Some(format!("operator{}", i % 8)),
        device: format!("laptop-{}", i % 8),
        tunnel_source: format!("10.77.0.{}", 2 + i % 200),
        ip_claim: None,
        route: "/dukcapil/get_json/DINSOS_3374/CALL_NIK".into(),
        method: Some(Method::CallNik),
        elements_requested: [Element::Nik].into_iter().collect(),
        elements_returned: Element::ALL.iter().copied().take(12).collect::<ElementSet>(),
        outcome: Outcome::Data,
        source: Source::Upstream,
        quota_charged: true,
        latency_us: 1500,
        bytes_in: 75,
        bytes_out: 971,
        subjects: Vec::new(),
    }
}

fn nik(i: u64) -> Identifier {
    Identifier::Nik(format!("33740410038{:05}", i % 50_000))
}

/// Records per second and flushes per record through the real writer with `clients` concurrent callers.
fn writer(clients: usize, seconds: f64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (_db, flusher, log) = open(dir.path());
        let personal = Arc::new(PersonalData::open([7; 32], dir.path().join("audit-days")).unwrap());
        let auditor = Auditor::start(log, NoAdmin, personal, chrono_tz::Asia::Jakarta).unwrap();
        let (count, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (auditor, count, stop) = (auditor.clone(), count.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = c as u64 * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        auditor.record(Utc::now(), request(i), vec![nik(i)]).await.expect("a durable record");
                        count.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let records = count.load(Ordering::Relaxed) as f64;
        let flushes = flusher.flushes() as f64;
        auditor.close();
        (records / elapsed, flushes / records.max(1.0))
    })
}

/// Milliseconds from an answer (its record durable) until a signed checkpoint covers it, sampled while 16 callers keep
/// the log busy and the notary signs every second: (median, max).
fn checkpoint_lag(seconds: f64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (_db, _flusher, log) = open(dir.path());
        let notary = Arc::new(Notary::open(notary::signer([3; 32], None).unwrap(), log.clone()).unwrap());
        let signing = tokio::spawn(notary.clone().run());
        let personal = Arc::new(PersonalData::open([7; 32], dir.path().join("audit-days")).unwrap());
        let auditor = Auditor::start(log.clone(), NoAdmin, personal, chrono_tz::Asia::Jakarta).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = (0..16u64)
            .map(|c| {
                let (auditor, stop) = (auditor.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = c * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        auditor.record(Utc::now(), request(i), vec![nik(i)]).await.expect("a durable record");
                        i += 1;
                    }
                })
            })
            .collect();
        let mut lags = Vec::new();
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut i = 99_000_000;
        while Instant::now() < until {
            let seq = auditor.record(Utc::now(), request(i), vec![]).await.expect("a durable record");
            let answered = Instant::now();
            while log.latest_checkpoint().unwrap().is_none_or(|(size, _)| size <= seq) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lags.push(answered.elapsed().as_secs_f64() * 1e3);
            i += 1;
            // Samples spread over the signing period rather than each just after a signature.
            tokio::time::sleep(Duration::from_millis(i * 389 % 1000)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }
        signing.abort();
        auditor.close();
        let max = lags.iter().copied().fold(0.0, f64::max);
        (median(lags), max)
    })
}

/// The anchor: the same canonical records made durable one at a time (insert, flush), `clients` threads taking
/// turns (sled 0.34 must not flush concurrently).
fn one_by_one(clients: usize, seconds: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
    let tree = db.open_tree("records").unwrap();
    let (next, stop, turn) = (AtomicU64::new(0), AtomicBool::new(false), Mutex::new(()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _turn = turn.lock().unwrap();
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let record = AuditRecord::new(seq, Utc::now(), Entry::Request(request(seq)));
                    tree.insert(seq.to_be_bytes(), record.canonical()).unwrap();
                    db.flush().unwrap();
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    next.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// CPU µs per record to encode and hash it (leaf and its share of inner nodes), and per checkpoint to sign.
fn cpu_per_record(records: u64) -> (f64, f64) {
    let started = Instant::now();
    let mut leaves = Vec::with_capacity(records as usize);
    for seq in 0..records {
        let record = AuditRecord::new(seq, Utc::now(), Entry::Request(request(seq)));
        leaves.push(merkle::leaf_hash(&record.canonical()));
    }
    let root = merkle::root(&leaves);
    let hashing = started.elapsed().as_secs_f64() * 1e6 / records as f64;
    let signer = Signer::new("simpul.gateway/bench", [9; 32]).unwrap();
    let signs = 1000;
    let started = Instant::now();
    for size in 0..signs {
        signer.sign(&Checkpoint { origin: "simpul.gateway/bench".into(), size, root, extensions: vec![] }).unwrap();
    }
    (hashing, started.elapsed().as_secs_f64() * 1e6 / signs as f64)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (runs, seconds) = if measuring { (3, 5.0) } else { (1, 0.3) };
    for clients in [1usize, 16, 64] {
        let mut ours = Vec::new();
        let mut flushes = Vec::new();
        let mut anchor = Vec::new();
        for _ in 0..runs {
            let (rate, per) = writer(clients, seconds);
            ours.push(rate);
            flushes.push(per);
            anchor.push(one_by_one(clients, seconds));
        }
        let notes = format!(
            "{clients} concurrent callers, each waiting for its record to be durable (sled 0.34.7 flush); the writer \
             batches whatever waits into one transaction and one flush; {:.3} flushes per record",
            median(flushes.clone())
        );
        BenchLine::new(
            "audit_log",
            &format!("durable records/s, {clients} callers"),
            median(ours),
            "one flush per record",
            median(anchor),
            runs,
            &notes,
        )
        .print();
        BenchLine::new(
            "audit_log",
            &format!("flushes per record, {clients} callers"),
            median(flushes),
            "one flush per record",
            1.0,
            runs,
            "lower is better",
        )
        .print();
    }
    let (hashing, signing) = cpu_per_record(if measuring { 200_000 } else { 2_000 });
    let sha_only = {
        let record = AuditRecord::new(1, Utc::now(), Entry::Request(request(1))).canonical();
        let started = Instant::now();
        let n = if measuring { 200_000 } else { 2_000 };
        for _ in 0..n {
            std::hint::black_box(merkle::leaf_hash(std::hint::black_box(&record)));
        }
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let (lag, worst) = checkpoint_lag(if measuring { 10.0 } else { 1.5 });
    let notes = format!("median; worst {worst:.0} ms; 16 callers writing meanwhile; the notary signs every 500 ms");
    let metric = "ms from an answer to a signed checkpoint covering it";
    BenchLine::new("audit_log", metric, lag, "the 1 s target", 1000.0, 1, &notes).print();
    BenchLine::new(
        "audit_log",
        "CPU µs per record: encode + leaf + tree hashing",
        hashing,
        "SHA-256 of the encoded record alone",
        sha_only,
        1,
        "single thread",
    )
    .print();
    BenchLine::new(
        "audit_log",
        "CPU µs per checkpoint signature (Ed25519)",
        signing,
        "encode + hash one record",
        hashing,
        1,
        "one checkpoint per second covers every record of that second",
    )
    .print();
}
