//! A small pool of blocking Valkey connections that reconnects with backoff.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pf_error::{ErrorClass, PfError, Result};
use redis::{Client, Connection, IntoConnectionInfo, RedisError, RedisResult, RetryMethod};

/// How to reach Valkey and how long to keep trying through an outage.
#[derive(Clone, PartialEq, Eq)]
pub struct ValkeyOptions {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS) or `valkey://…`.
    pub url: String,
    /// Password used when the URL carries none (e.g. from `VALKEY_PASSWORD`).
    pub password: Option<String>,
    /// Prefix of every key this process writes (default `pf:`), so several
    /// deployments can share one server.
    pub key_prefix: String,
    /// Lifetime of job, item and window keys since their last update.
    pub ttl: Duration,
    /// A holder silent for this long is presumed dead: its item may be claimed by
    /// another worker and `pf status` lists it as stale.
    pub stale_after: Duration,
    /// How long one call keeps retrying while Valkey is unreachable before it fails
    /// with a transient error.
    pub outage_limit: Duration,
    /// Connect timeout and per-command read/write timeout.
    pub io_timeout: Duration,
}

impl std::fmt::Debug for ValkeyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyOptions")
            .field("url", &mask_userinfo(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("stale_after", &self.stale_after)
            .field("outage_limit", &self.outage_limit)
            .field("io_timeout", &self.io_timeout)
            .finish()
    }
}

impl ValkeyOptions {
    /// Defaults for `url`: prefix `pf:`, keys kept 7 days, stale after 120 s, outages
    /// ridden out for 10 minutes, 10 s I/O timeout.
    pub fn new(url: impl Into<String>) -> Self {
        ValkeyOptions {
            url: url.into(),
            password: None,
            key_prefix: "pf:".to_owned(),
            ttl: Duration::from_secs(7 * 24 * 3600),
            stale_after: crate::DEFAULT_STALE_AFTER,
            outage_limit: Duration::from_secs(600),
            io_timeout: Duration::from_secs(10),
        }
    }
}

impl ValkeyOptions {
    /// [`new`](Self::new), with the password from [`VALKEY_PASSWORD_ENV`] when set (used
    /// only if the URL carries none).
    pub fn from_url_and_env(url: impl Into<String>) -> Self {
        ValkeyOptions {
            password: std::env::var(VALKEY_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty()),
            ..Self::new(url)
        }
    }
}

/// The environment variable a Valkey password is read from when the URL has none.
pub const VALKEY_PASSWORD_ENV: &str = "VALKEY_PASSWORD";

/// `scheme://***@host…` when the URL has userinfo; for log lines.
pub(crate) fn mask_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Whether `e` may go away by reconnecting or waiting (network, restart, loading).
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
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
    options: ValkeyOptions,
    /// Set while calls are failing, so recovery is logged once.
    down: AtomicBool,
    target: String,
}

impl ValkeyPool {
    /// Validates the URL; connects lazily (a first connection is tried by callers that
    /// want to fail fast).
    pub(crate) fn new(options: ValkeyOptions) -> Result<Self> {
        let config_error = |m: String| PfError::config("coordinator.valkey.url", m);
        let mut info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| config_error(format!("not a Valkey URL: {e}")))?;
        if info.redis_settings().password().is_none()
            && let Some(pw) = &options.password
        {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(|e| config_error(e.to_string()))?;
        Ok(ValkeyPool {
            client,
            idle: Mutex::new(Vec::new()),
            target: mask_userinfo(&options.url),
            options,
            down: AtomicBool::new(false),
        })
    }

    pub(crate) fn options(&self) -> &ValkeyOptions {
        &self.options
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.options.io_timeout)?;
        con.set_read_timeout(Some(self.options.io_timeout))?;
        con.set_write_timeout(Some(self.options.io_timeout))?;
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
        operation: &str,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = self.take().and_then(|mut con| {
                let r = op(&mut con);
                if r.is_ok() {
                    self.give_back(con);
                }
                r
            });
            match result {
                Ok(v) => {
                    if attempt > 0 && self.down.swap(false, Ordering::Relaxed) {
                        tracing::warn!(target: "valkey", server = %self.target, operation, attempts = attempt + 1, "Valkey reachable again");
                    }
                    return Ok(v);
                }
                Err(e) if is_transient(&e) && started.elapsed() < self.options.outage_limit => {
                    attempt += 1;
                    let delay =
                        Duration::from_millis(50u64 << attempt.min(6)).min(Duration::from_secs(2));
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

fn describe_wait(started: Instant) -> String {
    format!("after {:.1} s", started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(
            mask_userinfo("rediss://:pw@cache:6380/0"),
            "rediss://***@cache:6380/0"
        );
        assert_eq!(mask_userinfo("redis://cache:6379"), "redis://cache:6379");
        let o = ValkeyOptions {
            password: Some("secret".into()),
            ..ValkeyOptions::new("redis://u:secret@h:1")
        };
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn bad_url_is_a_config_error() {
        let e = ValkeyPool::new(ValkeyOptions::new("http://nope"))
            .err()
            .expect("rejected");
        assert!(e.to_string().contains("coordinator.valkey.url"), "{e}");
    }
}
