//! Where a binary's log lines go, decided the same way for every binary: to the systemd journal, with their levels
//! and fields, when standard error is the journal's own stream (a systemd unit with the default
//! `StandardError=journal`); to standard error as text otherwise (a terminal, a test, a script, a unit whose standard
//! error is a file). `RUST_LOG` chooses what is logged; without it, the binary's default.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Where [`init`] sends log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr,
}

/// Installs the process's logger: `RUST_LOG`'s filter (or `default_filter`, e.g. `"simpul_gateway=info"`, when it is
/// unset or unreadable), writing to the journal or to standard error (see the module). Call once, first thing in
/// `main`; says where the lines go.
pub fn init(default_filter: &str) -> Sink {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), default_filter);
    let registry = tracing_subscriber::registry().with(filter);
    // The journal may still be unreachable (a container without journald's socket): then standard error, which
    // systemd collects as plain lines anyway.
    let journal = stderr_is_journal(std::env::var_os("JOURNAL_STREAM").as_deref())
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journal {
        Some(journal) => {
            registry.with(journal).init();
            Sink::Journal
        }
        None => {
            registry.with(fmt::layer().with_writer(io::stderr).with_ansi(io::stderr().is_terminal())).init();
            Sink::Stderr
        }
    }
}

/// `rust_log` when it is a filter, else `default_filter`.
fn filter(rust_log: Option<&str>, default_filter: &str) -> EnvFilter {
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter))
}

/// Whether standard error is the stream systemd connected to the journal. systemd names it in `JOURNAL_STREAM` as
/// `DEVICE:INODE` (systemd.exec(5)); the variable is inherited by children whose standard error was redirected
/// elsewhere (a script run by a unit, piping a test's output), so the stream itself is compared, not the variable's
/// presence.
fn stderr_is_journal(journal_stream: Option<&OsStr>) -> bool {
    let Some(named) = journal_stream.and_then(OsStr::to_str) else { return false };
    let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() else { return false };
    File::from(stderr).metadata().is_ok_and(|m| names(named, m.dev(), m.ino()))
}

/// Whether a `JOURNAL_STREAM` value names the stream with this device and inode.
fn names(journal_stream: &str, device: u64, inode: u64) -> bool {
    journal_stream.split_once(':').is_some_and(|(d, i)| d.parse() == Ok(device) && i.parse() == Ok(inode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn journal_stream_names_one_device_and_inode() {
        for (value, named) in [
            ("8:1234", true),
            ("8:1235", false),
            ("9:1234", false),
            ("8", false),
            ("8:", false),
            (":1234", false),
            ("8:1234:0", false),
            ("0x8:1234", false),
            ("", false),
        ] {
            assert_eq!(names(value, 8, 1234), named, "{value:?}");
        }
    }

    #[test]
    fn the_journal_is_chosen_only_when_standard_error_is_its_stream() {
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned().unwrap()).metadata().unwrap();
        let this = format!("{}:{}", stderr.dev(), stderr.ino());
        let other = format!("{}:{}", stderr.dev(), stderr.ino() + 1);
        assert!(stderr_is_journal(Some(OsStr::new(&this))));
        assert!(!stderr_is_journal(Some(OsStr::new(&other))), "a unit's variable, inherited by a redirected child");
        assert!(!stderr_is_journal(None), "not under systemd");
    }

    /// What a subscriber with `filter(rust_log, "info")` lets through of one info and one warning line.
    fn logged(rust_log: Option<&str>) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(filter(rust_log, "info"))
            .with(fmt::layer().with_writer(move || writer.clone()).with_ansi(false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("progress");
            tracing::warn!("trouble");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn rust_log_chooses_what_is_logged_and_the_default_stands_in_for_it() {
        let both = logged(None);
        assert!(both.contains("progress") && both.contains("trouble"), "the default, info: {both}");
        let warnings = logged(Some("warn"));
        assert!(!warnings.contains("progress") && warnings.contains("trouble"), "RUST_LOG=warn: {warnings}");
        let off = logged(Some("off"));
        assert!(off.is_empty(), "RUST_LOG=off: {off}");
        let unreadable = logged(Some("=[{"));
        assert!(unreadable.contains("progress"), "an unreadable RUST_LOG falls back to the default: {unreadable}");
    }
}
