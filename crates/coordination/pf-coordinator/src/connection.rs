//! A small pool of blocking Valkey connections that reconnects with backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics::histogram;

use pf_error::{ErrorClass, PfError, Result};
use pf_types::Backoff;
use redis::{Client, Connection, IntoConnectionInfo, RedisError, RedisResult, RetryMethod};

use crate::ValkeyConfig;

/// The environment variable a Valkey password is read from when the URL has none.
pub const VALKEY_PASSWORD_ENV: &str = "VALKEY_PASSWORD";

/// Reconnect delays while Valkey is unreachable: 50 ms doubling to 2 s, with jitter.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// Server answers that mean "not now" rather than "never": a replica not (yet) writable
/// or a primary failing over (READONLY, MASTERDOWN), a restart loading its data
/// (LOADING), a script still running (BUSY), a cluster resharding or recovering
/// (TRYAGAIN, CLUSTERDOWN), memory full until keys expire (OOM).
const TRANSIENT_CODES: &[&str] = &[
    "READONLY",
    "MASTERDOWN",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "OOM",
];

/// Whether `e` may go away by reconnecting or waiting (network, restart, failover,
/// loading, memory pressure).
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.retry_method(),
            RetryMethod::Reconnect
                | RetryMethod::ReconnectFromInitialConnections
                | RetryMethod::WaitAndRetry
                | RetryMethod::RetryImmediately
        )
}

/// Connections to one server, reused across calls and threads, replaced after errors.
pub(crate) struct ValkeyPool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    config: ValkeyConfig,
    /// Set while calls are failing, so recovery is logged once.
    down: AtomicBool,
    target: String,
}

impl ValkeyPool {
    /// Validates the URL; connects lazily (a first connection is tried by callers that
    /// want to fail fast).
    pub(crate) fn new(config: &ValkeyConfig) -> Result<Self> {
        let config_error = |m: String| PfError::config("coordinator.valkey.url", m);
        let url = config
            .url
            .as_ref()
            .ok_or_else(|| config_error("is not set".to_owned()))?;
        let mut info = url
            .expose()
            .into_connection_info()
            .map_err(|e| config_error(format!("not a Valkey URL: {e}")))?;
        if info.redis_settings().password().is_none()
            && let Some(pw) = &config.password
        {
            let settings = info.redis_settings().clone().set_password(pw.expose());
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(|e| config_error(e.to_string()))?;
        Ok(ValkeyPool {
            client,
            idle: Mutex::new(Vec::new()),
            target: url.masked(),
            config: config.clone(),
            down: AtomicBool::new(false),
        })
    }

    pub(crate) fn config(&self) -> &ValkeyConfig {
        &self.config
    }

    /// The server's address, credentials masked, for messages.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.config.io_timeout())?;
        con.set_read_timeout(Some(self.config.io_timeout()))?;
        con.set_write_timeout(Some(self.config.io_timeout()))?;
        Ok(con)
    }

    fn take(&self) -> RedisResult<Connection> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, con: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
    }

    /// Runs `op` on a pooled connection. Transient failures (connection refused or
    /// dropped, timeouts, a server still loading) drop the connection and retry with
    /// exponential backoff (50 ms doubling to 2 s) until `outage_limit` has passed; then,
    /// or at once for other errors, the call fails with a `valkey` service error.
    ///
    /// `op` must be safe to repeat: every state change is one Lua script that checks
    /// the current state first, so a retry after a lost reply changes nothing twice.
    pub(crate) fn run<T>(
        &self,
        operation: &'static str,
        op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_within(operation, self.config.outage_limit(), op)
    }

    /// [`run_within`](Self::run_within) with two connections at once, for work that
    /// keeps one transaction open on each (a `WATCH` belongs to its connection). Both go
    /// back to the pool only when `op` succeeds.
    pub(crate) fn run_pair<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        mut op: impl FnMut(&mut Connection, &mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_within(operation, limit, |first| {
            let mut second = self.take()?;
            let r = op(first, &mut second);
            if r.is_ok() {
                self.give_back(second);
            }
            r
        })
    }

    /// [`run`](Self::run), giving up on an unreachable server after `limit` instead of
    /// `outage_limit` (heartbeats: a late heartbeat is worth less than the next one).
    pub(crate) fn run_within<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let call = Instant::now();
            let result = self.take().and_then(|mut con| {
                let r = op(&mut con);
                if r.is_ok() {
                    self.give_back(con);
                }
                r
            });
            let outcome = if result.is_ok() { "ok" } else { "error" };
            histogram!(VALKEY_CALL_DURATION, "operation" => operation, "outcome" => outcome)
                .record(call.elapsed().as_secs_f64());
            match result {
                Ok(v) => {
                    if attempt > 0 && self.down.swap(false, Ordering::Relaxed) {
                        tracing::warn!(target: "valkey", server = %self.target, operation, attempts = attempt + 1, "Valkey reachable again");
                    }
                    return Ok(v);
                }
                Err(e) if is_transient(&e) && started.elapsed() < limit => {
                    attempt += 1;
                    let delay = RECONNECT.delay(attempt);
                    if !self.down.swap(true, Ordering::Relaxed) || attempt % 10 == 1 {
                        tracing::warn!(target: "valkey", server = %self.target, operation, attempt, retry_in = ?delay, error = %e, "Valkey unreachable; retrying");
                    }
                    std::thread::sleep(delay);
                }
                Err(e) => {
                    let class = if is_transient(&e) {
                        ErrorClass::Transient
                    } else {
                        ErrorClass::Permanent
                    };
                    return Err(PfError::Service {
                        service: "valkey",
                        operation: operation.to_owned(),
                        class,
                        message: format!("{} ({}): {e}", self.target, describe_wait(started)),
                    });
                }
            }
        }
    }
}

/// Histogram by `operation` and `outcome`, seconds: one Valkey call (connecting when
/// needed, the command or script, its reply), every attempt.
pub const VALKEY_CALL_DURATION: &str = "paraflow_valkey_call_duration_seconds";

/// Describes the Valkey metrics to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        VALKEY_CALL_DURATION,
        metrics::Unit::Seconds,
        "One Valkey call (connect when needed, command or script, reply), every attempt, by operation and outcome (ok or error)."
    );
    metrics::describe_counter!(
        crate::window::WINDOW_CONFLICTS,
        "Shared-window transactions refused because another worker changed their slot group between the read and the write (each is read and applied again)."
    );
}

fn describe_wait(started: Instant) -> String {
    format!("after {:.1} s", started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let o = ValkeyConfig {
            password: Some(pf_types::Secret::new("secret")),
            ..ValkeyConfig::for_url("redis://u:secret@h:1")
        };
        assert!(!format!("{o:?}").contains("secret"));
    }

    /// Every "not now" answer is transient, whatever its text; a wrong command is not.
    /// (OOM and READONLY are also produced on a real server in `tests/error_classes.rs`.)
    #[test]
    fn server_answers_that_mean_not_now_are_transient() {
        let answer = |reply: &str| {
            redis::parse_redis_value(format!("-{reply}\r\n").as_bytes())
                .and_then(redis::Value::extract_error)
                .expect_err("an error reply")
        };
        for reply in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "LOADING Valkey is loading the dataset in memory",
            "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "OOM command not allowed when used memory > 'maxmemory'.",
        ] {
            assert!(is_transient(&answer(reply)), "{reply}");
        }
        for reply in [
            "ERR unknown command 'NOPE'",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ] {
            assert!(!is_transient(&answer(reply)), "{reply}");
        }
    }

    #[test]
    fn bad_url_is_a_config_error() {
        let e = ValkeyPool::new(&ValkeyConfig::for_url("http://nope"))
            .err()
            .expect("rejected");
        assert!(e.to_string().contains("coordinator.valkey.url"), "{e}");
    }
}
