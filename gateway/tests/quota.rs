//! The quota ledger on a real database on disk: concurrent spenders, reopening, and a process killed with SIGKILL
//! in the middle of spending.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};

use chrono::NaiveDate;
use simpul_gateway::limits::{Charge, QuotaError, QuotaLedger, Subject};

/// Set in the child process to the database it should spend from; see `crash_helper_spends_until_killed`.
const CRASH_DB_ENV: &str = "SIMPUL_QUOTA_CRASH_DB";
/// How many spends the child attempts at most, so a child whose parent failed before killing it still ends.
const CRASH_HELPER_MAX_SPENDS: u64 = 2_000;

const DINSOS: Subject<'static> = Subject::Institution("DINSOS");
const BUDI: Subject<'static> = Subject::User("budi");

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

fn open(path: &Path) -> (sled::Db, QuotaLedger) {
    let db = simpul_ledger::database::open(path).unwrap();
    let ledger = QuotaLedger::new(&db, simpul_ledger::Flusher::new(&db)).unwrap();
    (db, ledger)
}

#[test]
fn concurrent_spenders_get_exactly_the_quota() {
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 50;
    const LIMIT: u64 = 137;
    let dir = tempfile::tempdir().unwrap();
    let (_db, ledger) = open(dir.path());
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ledger, start) = (ledger.clone(), start.clone());
            std::thread::spawn(move || {
                let user = format!("user{t}");
                let charges =
                    [Charge { subject: DINSOS, limit: LIMIT }, Charge { subject: Subject::User(&user), limit: 40 }];
                start.wait();
                let mut granted = 0;
                for _ in 0..ATTEMPTS {
                    match ledger.spend(day(), &charges) {
                        Ok(_) => granted += 1,
                        Err(QuotaError::Exhausted { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                granted
            })
        })
        .collect();
    let granted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(granted, LIMIT);
    assert_eq!(ledger.used(day(), DINSOS).unwrap(), LIMIT);
    let users: u64 = (0..THREADS).map(|t| ledger.used(day(), Subject::User(&format!("user{t}"))).unwrap()).sum();
    assert_eq!(users, LIMIT, "every granted spend charged its user, and no refused one did");
}

#[test]
fn counts_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let charges = [Charge { subject: DINSOS, limit: 10 }, Charge { subject: BUDI, limit: 4 }];
    {
        let (_db, ledger) = open(dir.path());
        for _ in 0..3 {
            ledger.spend(day(), &charges).unwrap();
        }
    }
    let (_db, ledger) = open(dir.path());
    assert_eq!(ledger.used(day(), DINSOS).unwrap(), 3);
    assert_eq!(ledger.used(day(), BUDI).unwrap(), 3);
    assert_eq!(ledger.spend(day(), &charges).unwrap().remaining, [6, 0]);
    assert!(matches!(ledger.spend(day(), &charges), Err(QuotaError::Exhausted { index: 1, .. })));
}

/// Not a test on its own: the child process of `a_kill_9_loses_no_acknowledged_spend`. It spends from the database
/// named in the environment and prints `spent N` after each spend returned, until it is killed.
#[test]
#[ignore = "run by a_kill_9_loses_no_acknowledged_spend in a child process"]
fn crash_helper_spends_until_killed() {
    let Some(path) = std::env::var_os(CRASH_DB_ENV) else { return };
    let (_db, ledger) = open(Path::new(&path));
    let charges = [Charge { subject: DINSOS, limit: u64::MAX }, Charge { subject: BUDI, limit: u64::MAX }];
    for i in 1..=CRASH_HELPER_MAX_SPENDS {
        ledger.spend(day(), &charges).unwrap();
        // Rust's stdout is line-buffered, so the line is out before the next spend starts.
        println!("spent {i}");
    }
}

/// Kills the child when the test fails before it could.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_kill_9_loses_no_acknowledged_spend() {
    let dir = tempfile::tempdir().unwrap();
    // What the database held when a round started: the child adds to it.
    let mut before = 0;
    // Several rounds on the same database, killed after different numbers of spends, so that the kill lands at
    // different points of the spend-flush cycle and each round also reopens what the previous one left.
    for (round, kill_after) in [25, 70, 1, 40].into_iter().enumerate() {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_helper_spends_until_killed", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CRASH_DB_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut acknowledged = 0;
        let mut killed = false;
        for line in stdout.lines() {
            // The harness's "test crash_helper... " has no line end of its own, so the first count shares its line.
            let line = line.unwrap();
            let Some((_, n)) = line.rsplit_once("spent ") else { continue };
            let n: u64 = n.parse().unwrap();
            assert_eq!(n, acknowledged + 1);
            acknowledged = n;
            if n == kill_after && !killed {
                // Child::kill sends SIGKILL on Unix: no destructors, no flush on the way out.
                child.0.kill().unwrap();
                killed = true;
            }
            // Lines the child printed before it died are acknowledged spends too; keep reading to the end of the pipe.
        }
        let status = child.0.wait().unwrap();
        assert!(killed && !status.success(), "the child ran {acknowledged} spends and exited with {status}");
        assert!(acknowledged < CRASH_HELPER_MAX_SPENDS, "the child was killed before it ran out of spends");

        let (_db, ledger) = open(dir.path());
        let used = ledger.used(day(), DINSOS).unwrap();
        let message = format!("round {round}: {before} before, {acknowledged} acknowledged, {used} counted");
        assert!(used >= before + acknowledged, "{message}");
        // At most one spend was done but not yet acknowledged when the kill came.
        assert!(used <= before + acknowledged + 1, "{message}");
        assert_eq!(ledger.used(day(), BUDI).unwrap(), used, "a spend is both charges or neither");
        before = used;
    }
}
