//! `worker`: the one declaration of the worker process's settings.

use std::num::NonZeroUsize;
use std::time::Duration;

use pf_error::{PfError, Result, require_at_least_one};
use pf_types::Backoff;
use serde::{Deserialize, Serialize};

use crate::{ProgressMode, WorkerSettings, default_worker_id};

/// `worker`: thread pool, retries, shutdown and progress display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// `threads`: pipeline threads, each processing one file at a time. Default `null`:
    /// one per CPU core.
    pub threads: Option<usize>,
    /// `id`: name recorded in Valkey and dead-letter attributes for the files this
    /// worker holds, so stale items can be traced to a machine. Default `null`:
    /// `<hostname>-<pid>`.
    pub id: Option<String>,
    /// `max_attempts`: how many times a file is attempted before it goes to the queue
    /// DLQ. Default `5`.
    pub max_attempts: u32,
    /// `retry_base_ms`: first delay of the exponential backoff (with jitter) after a
    /// transient failure, milliseconds. Default `500`.
    pub retry_base_ms: u64,
    /// `retry_max_ms`: ceiling of the backoff delay, milliseconds. Default `60000`.
    pub retry_max_ms: u64,
    /// `idle_exit_secs`: stop once the queue has stayed empty this many seconds, for
    /// batch runs that should end when the backlog is drained. Default `null`: run until
    /// stopped (or until a stdin/memory queue is closed).
    pub idle_exit_secs: Option<u64>,
    /// `shutdown_grace_secs`: after SIGINT/SIGTERM, how long in-flight files may finish
    /// before they are released back to the queue, seconds. Default `30`.
    pub shutdown_grace_secs: u64,
    /// `progress`: `auto` (a bar on a terminal, log lines otherwise), `always` or
    /// `never`. Default `auto`.
    pub progress: ProgressMode,
    /// `split_size_mib`: a whole Parquet or uncompressed NDJSON file larger than this
    /// many MiB is cut into ranges of this size when it arrives, which go back to the
    /// queue so every thread (and, on SQS, every worker) can take one; only when there
    /// is more than one thread or the queue is shared. gzip/zstd NDJSON is read whole.
    /// Default `null` (off): ranges of a time-ordered file are read at once, so window
    /// rules count exactly only when `coordinator.valkey.window_lateness_secs` covers
    /// the event-time span of the ranges in flight (with the default 300 s, splitting
    /// the generated 2,000,000-row file lost 42% of rapid_activity firings).
    pub split_size_mib: Option<u64>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            threads: None,
            id: None,
            max_attempts: 5,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            idle_exit_secs: None,
            shutdown_grace_secs: 30,
            progress: ProgressMode::Auto,
            split_size_mib: None,
        }
    }
}

impl WorkerConfig {
    /// The effective thread count: `threads`, else the number of CPU cores (1 when the
    /// platform cannot tell).
    pub fn thread_count(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(NonZeroUsize::get)
                .unwrap_or(1)
        })
    }

    /// The effective worker id: `id`, else `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        self.id.clone().unwrap_or_else(default_worker_id)
    }

    /// Checks ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.threads == Some(0) {
            return Err(PfError::config(
                "worker.threads",
                "must be at least 1 (null uses one thread per CPU core)",
            ));
        }
        if self.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err(PfError::config(
                "worker.id",
                "must not be empty (null uses <hostname>-<pid>)",
            ));
        }
        if self.split_size_mib == Some(0) {
            return Err(PfError::config(
                "worker.split_size_mib",
                "must be at least 1 (null keeps every file whole)",
            ));
        }
        require_at_least_one("worker.max_attempts", self.max_attempts)?;
        Backoff::from_config("worker", self.retry_base_ms, self.retry_max_ms)?;
        Ok(())
    }

    /// The worker's run-time settings; `stale_after` is the metadata store's staleness
    /// period (`coordinator.valkey.stale_after_secs`), which the heartbeat must beat.
    pub fn settings(&self, stale_after: Duration) -> WorkerSettings {
        let stale_secs = stale_after.as_secs();
        WorkerSettings {
            threads: self.thread_count(),
            worker_id: self.worker_id(),
            max_attempts: self.max_attempts,
            retry: Backoff::new(
                Duration::from_millis(self.retry_base_ms),
                Duration::from_millis(self.retry_max_ms),
            ),
            idle_exit: self.idle_exit_secs.map(Duration::from_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            split_size: self.split_size_mib.map(|mib| mib.saturating_mul(1 << 20)),
            // An item held by a live worker is looked at again once its holder could
            // have gone stale, so a crashed holder's work is taken over promptly.
            held_elsewhere_delay: Duration::from_secs(stale_secs.clamp(1, 30)),
            // Several heartbeats per staleness period, so a live holder never looks
            // stale (queues with a visibility timeout beat at half of it instead).
            heartbeat_interval: Duration::from_millis((stale_secs * 1000 / 4).clamp(100, 10_000)),
            ..WorkerSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live holder beats at least four times per staleness period, however the
    /// staleness is set (within 100 ms … 10 s), independently of any queue visibility.
    #[test]
    fn heartbeats_come_at_least_four_times_per_staleness_period() {
        for stale_secs in [1u64, 2, 3, 10, 30, 40, 120, 600] {
            let stale = Duration::from_secs(stale_secs);
            let interval = WorkerConfig::default().settings(stale).heartbeat_interval;
            assert!(interval * 4 <= stale, "{stale_secs} s: {interval:?}");
            assert!(interval >= Duration::from_millis(100), "{stale_secs} s");
        }
    }
}
