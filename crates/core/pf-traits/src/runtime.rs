//! The runtime a component backed by an async client blocks on.

use pf_error::{PfError, Result};

/// A multi-thread tokio runtime of `threads` I/O threads named `name`, on which the
/// pipeline threads block on an async client's calls (the runtime only drives sockets
/// and timers); `what` names it in the error when it cannot start.
pub fn io_runtime(name: &str, threads: usize, what: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| PfError::io(what, e))
}
