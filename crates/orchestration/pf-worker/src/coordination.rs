//! The metadata and window stores a config asks for: in memory, or shared in Valkey.

use std::sync::Arc;
use std::time::Duration;

use pf_config::ValkeyConfig;
use pf_coordinator::{
    MemoryMetadataStore, VALKEY_PASSWORD_ENV, ValkeyMetadataStore, ValkeyOptions,
    ValkeyWindowOptions, ValkeyWindowStore,
};
use pf_error::Result;
use pf_traits::{MetadataStore, WindowStore};

/// Connection options from `coordinator.valkey`, or `None` without a URL.
pub fn valkey_options(config: &ValkeyConfig) -> Option<ValkeyOptions> {
    let url = config.url.as_ref()?;
    let password = config
        .password
        .clone()
        .or_else(|| std::env::var(VALKEY_PASSWORD_ENV).ok())
        .filter(|p| !p.is_empty());
    Some(ValkeyOptions {
        url: url.clone(),
        password,
        key_prefix: config.key_prefix.clone(),
        ttl: Duration::from_secs(config.ttl_secs),
        stale_after: Duration::from_secs(config.stale_after_secs),
        outage_limit: Duration::from_secs(config.outage_limit_secs),
        io_timeout: Duration::from_millis(config.timeout_ms),
    })
}

/// The metadata store of `coordinator.valkey` (connected and checked), or the
/// in-memory one without a URL.
pub fn metadata_store(config: &ValkeyConfig) -> Result<Arc<dyn MetadataStore>> {
    Ok(match valkey_options(config) {
        Some(options) => {
            tracing::info!(store = ?options, "metadata in Valkey");
            Arc::new(ValkeyMetadataStore::connect(options)?)
        }
        None => Arc::new(MemoryMetadataStore::new(Duration::from_secs(
            config.stale_after_secs,
        ))),
    })
}

/// The shared window store when Valkey is configured with `windows: true`; `None`
/// keeps window state in process.
pub(crate) fn window_store(config: &ValkeyConfig) -> Result<Option<Arc<dyn WindowStore>>> {
    match valkey_options(config) {
        Some(options) if config.windows => Ok(Some(Arc::new(ValkeyWindowStore::connect(
            options,
            ValkeyWindowOptions {
                allowed_lateness: Duration::from_secs(config.window_lateness_secs),
                ..ValkeyWindowOptions::default()
            },
        )?))),
        _ => Ok(None),
    }
}
