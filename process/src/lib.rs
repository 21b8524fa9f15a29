//! What every Simpul binary does as a process, in one place so that the gateway, the warehouse stand-in and the
//! binaries still to come (relay, agent, console) behave alike: they stop cleanly on SIGINT and SIGTERM, log to the
//! journal under systemd and to standard error elsewhere ([`logging`]), check a config file with exactly the checks
//! they start with and answer in one shape ([`config`]), and ask for secrets on the terminal without echoing them.

pub mod config;
pub mod exit;
pub mod logging;

use std::future::Future;
use std::io::{self, BufRead, IsTerminal};

/// Installs the SIGINT (Ctrl-C) and SIGTERM (systemd, `docker stop`) handlers at once, and completes on either.
///
/// The handlers must be in place before a binary says it is ready, so that a signal sent right after is never the
/// default (fatal) action, which would leave behind what a clean stop removes (the gateway's nftables table, its
/// socket). That is why this is not an `async fn`: one would install them only when first polled. Needs a Tokio
/// runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Windows: Ctrl-C (and the console's close, which Windows delivers as Ctrl-C to console programs).
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
    Ok(async move {
        ctrl_c.recv().await;
    })
}

/// Reads one secret line. On a terminal, through `rpassword`: the prompt and the answer on the controlling terminal,
/// with echo off (and back on however the read ends). Otherwise (a pipe, a file: scripts and tests) the prompt goes to
/// standard error and the line is read from standard input. The line ending is removed; nothing else is.
pub fn read_hidden_line(prompt: &str) -> io::Result<String> {
    if io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt);
    }
    eprint!("{prompt}");
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
