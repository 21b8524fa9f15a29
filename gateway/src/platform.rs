//! What differs between operating systems, in one place. The appliance runs on Linux; on other systems these are
//! the nearest harmless equivalent, so that code shared with the agent (which will run on Windows) still builds.

/// Lowers the scheduling priority of the calling thread (nice 10 on Linux, where a thread's nice value is its own),
/// for work that may take every CPU it is given but must not delay answers: password hashing under a flood.
#[cfg(unix)]
pub fn background_thread() {
    if let Err(e) = rustix::process::nice(10) {
        tracing::warn!("could not lower a background thread's priority: {e}");
    }
}

/// Windows: the thread keeps its priority (the bound on concurrent checks still holds).
#[cfg(not(unix))]
pub fn background_thread() {}
