//! `coordinator.valkey`: the one declaration of the Valkey connection's settings, and
//! the stores built from it.

use std::sync::Arc;
use std::time::Duration;

use pf_error::{PfError, Result};
use pf_traits::{MetadataStore, WindowStore};
use pf_types::{Secret, SecretUrl};
use serde::{Deserialize, Serialize};

use crate::{
    MemoryMetadataStore, VALKEY_PASSWORD_ENV, ValkeyMetadataStore, ValkeyWindowOptions,
    ValkeyWindowStore,
};

/// `coordinator.valkey`: the Valkey server holding status, attempts, checkpoints and
/// (optionally) the shared fraud windows. Without `url` everything stays in process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValkeyConfig {
    /// `url`: `redis://[user:password@]host:port[/db]` (also `rediss://` for TLS,
    /// `valkey://`); its userinfo is masked in output. Default `null`: in-memory
    /// metadata, which only suits a single worker process.
    pub url: Option<SecretUrl>,
    /// `password`: used when the URL carries none (secret). Default `null`: the
    /// `VALKEY_PASSWORD` environment variable, if set.
    pub password: Option<Secret>,
    /// `key_prefix`: prefix of every key, so deployments can share a server. Default
    /// `pf:`.
    pub key_prefix: String,
    /// `ttl_secs`: keys expire this many seconds after their last update, so old jobs go
    /// away. Default `604800` (7 days).
    pub ttl_secs: u64,
    /// `stale_after_secs`: a holder without a heartbeat for this many seconds is presumed
    /// dead; its item is listed as stale and may be claimed by another worker. Keep it
    /// well above the heartbeat period (half the queue's visibility timeout, else 10 s).
    /// Default `120`.
    pub stale_after_secs: u64,
    /// `outage_limit_secs`: how long a call waits for an unreachable Valkey
    /// (reconnecting with backoff) before it fails, seconds. Default `600`.
    pub outage_limit_secs: u64,
    /// `timeout_ms`: connect and per-command timeout, milliseconds. Default `10000`.
    pub timeout_ms: u64,
    /// `windows`: where fraud-rule windows live. `shared` (or `true`): in Valkey, so
    /// every worker sees every worker's events, exact whatever the split of the data.
    /// `local` (or `false`): in each process, with no Valkey traffic, exact only when
    /// every key's events are in one file (input partitioned by key). Default `shared`.
    pub windows: WindowPlacement,
    /// `windows_url`: the Valkey holding the shared windows when it is not `url`, in the
    /// same form and with the same credentials: for example a node of a Valkey Cluster
    /// (the store finds the other primaries and sends each slot group to the node that
    /// owns its hash slot), while metadata, whose scripts need one server, stays on
    /// `url`. Needs Valkey 9.0 or later. Default `null`: `url`.
    pub windows_url: Option<SecretUrl>,
    /// `window_lateness_secs`: how far (in event time, seconds) behind the newest event
    /// of its key an event may arrive and still count, for shared and in-process windows
    /// alike. Threads and workers reading different parts of time-ordered data at the
    /// same time (other files, or other ranges of one split file) need it to cover how far
    /// apart in event time they are; window state grows with it. Default `300`.
    pub window_lateness_secs: u64,
}

impl Default for ValkeyConfig {
    fn default() -> Self {
        ValkeyConfig {
            url: None,
            password: None,
            key_prefix: "pf:".to_owned(),
            ttl_secs: 7 * 24 * 3600,
            stale_after_secs: crate::DEFAULT_STALE_AFTER.as_secs(),
            outage_limit_secs: 600,
            timeout_ms: 10_000,
            windows: WindowPlacement::Shared,
            windows_url: None,
            window_lateness_secs: 300,
        }
    }
}

impl ValkeyConfig {
    /// The defaults with `url`, as tests and tools start from.
    pub fn for_url(url: impl Into<String>) -> Self {
        ValkeyConfig {
            url: Some(SecretUrl::new(url)),
            ..ValkeyConfig::default()
        }
    }

    /// With `password` from [`VALKEY_PASSWORD_ENV`] when neither it nor the URL is set.
    pub fn with_env_password(mut self) -> Self {
        if self.password.is_none() {
            self.password = std::env::var(VALKEY_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new);
        }
        self
    }

    /// Lifetime of job, item and window keys since their last update.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// Heartbeat silence after which a holder is presumed dead.
    pub fn stale_after(&self) -> Duration {
        Duration::from_secs(self.stale_after_secs)
    }

    /// How long one call keeps retrying while Valkey is unreachable.
    pub fn outage_limit(&self) -> Duration {
        Duration::from_secs(self.outage_limit_secs)
    }

    /// Connect timeout and per-command read/write timeout.
    pub fn io_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks ranges; errors name the key and never echo the URL (it may hold a
    /// password).
    pub fn validate(&self) -> Result<()> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let scheme_ok = url
            .expose()
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
        if !scheme_ok {
            return Err(PfError::config(
                "coordinator.valkey.url",
                "must be a URL such as redis://host:6379 (or rediss://, valkey://); \
                 null keeps metadata in memory",
            ));
        }
        if self.key_prefix.is_empty() {
            return Err(PfError::config(
                "coordinator.valkey.key_prefix",
                "must not be empty",
            ));
        }
        for (key, value) in [
            ("coordinator.valkey.ttl_secs", self.ttl_secs),
            ("coordinator.valkey.stale_after_secs", self.stale_after_secs),
            ("coordinator.valkey.timeout_ms", self.timeout_ms),
        ] {
            if value == 0 {
                return Err(PfError::config(key, "must be greater than 0"));
            }
        }
        Ok(())
    }

    /// The metadata store: in Valkey (connected and checked) with a `url`, else in
    /// memory.
    pub fn metadata_store(&self) -> Result<Arc<dyn MetadataStore>> {
        if self.url.is_none() {
            return Ok(Arc::new(MemoryMetadataStore::new(self.stale_after())));
        }
        let config = self.clone().with_env_password();
        tracing::info!(store = ?config, "metadata in Valkey");
        Ok(Arc::new(ValkeyMetadataStore::connect(&config)?))
    }

    /// How far behind the newest event of its key a window event may arrive.
    pub fn window_lateness(&self) -> Duration {
        Duration::from_secs(self.window_lateness_secs)
    }

    /// The shared window store with a `url` and `windows: shared`; `None` keeps window
    /// state in process.
    pub fn window_store(&self) -> Result<Option<Arc<dyn WindowStore>>> {
        if self.url.is_none() || self.windows == WindowPlacement::Local {
            return Ok(None);
        }
        let mut config = self.clone().with_env_password();
        if let Some(url) = &self.windows_url {
            config.url = Some(url.clone());
        }
        tracing::info!(store = ?config.url, "shared windows in Valkey");
        Ok(Some(Arc::new(ValkeyWindowStore::connect(
            &config,
            ValkeyWindowOptions {
                allowed_lateness: self.window_lateness(),
                ..ValkeyWindowOptions::default()
            },
        )?)))
    }
}

/// `coordinator.valkey.windows`: where fraud-rule windows live when Valkey is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowPlacement {
    /// In Valkey, shared by every worker: the alert set is exact for any split of the
    /// data over threads, workers and files.
    Shared,
    /// In each process: no Valkey traffic; exact only when each key's events are all in
    /// one file (input partitioned by key), since no process sees another's events.
    Local,
}

/// Accepts `shared` / `local`, and the booleans earlier versions used (`true` is
/// `shared`, `false` is `local`).
impl<'de> Deserialize<'de> for WindowPlacement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Bool(bool),
            Name(String),
        }
        match Form::deserialize(d)? {
            Form::Bool(true) => Ok(WindowPlacement::Shared),
            Form::Bool(false) => Ok(WindowPlacement::Local),
            Form::Name(n) => match n.as_str() {
                "shared" => Ok(WindowPlacement::Shared),
                "local" => Ok(WindowPlacement::Local),
                other => Err(serde::de::Error::custom(format!(
                    "unknown window placement `{other}`: expected `shared` or `local`"
                ))),
            },
        }
    }
}
