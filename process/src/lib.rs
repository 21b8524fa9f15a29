//! What every Simpul binary does as a process, in one place so that the gateway, the warehouse stand-in and the
//! binaries still to come (relay, agent, console) behave alike: they stop cleanly on SIGINT and SIGTERM, and ask
//! for secrets on the terminal without echoing them.

use std::future::Future;
use std::io::{self, BufRead};

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

/// Prints `prompt` on standard error and reads one line from standard input, with the terminal's echo turned off
/// (through `stty`) when standard input is a terminal. The line ending is removed; nothing else is.
pub fn read_hidden_line(prompt: &str) -> io::Result<String> {
    eprint!("{prompt}");
    let echo_off = std::io::IsTerminal::is_terminal(&io::stdin()) && stty("-echo");
    let mut line = String::new();
    let read = io::stdin().lock().read_line(&mut line);
    if echo_off {
        stty("echo");
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `stty ARG` on the terminal standard input is; whether it worked (there is no `stty` on Windows).
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}
