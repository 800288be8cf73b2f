//! Fraud alerts into their own index, over the indexer's connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pf_error::{ErrorClass, Result};
use pf_traits::AlertSink;
use pf_types::Alert;

use crate::client::{Client, indexer_error};
use crate::settings::Resolved;
use crate::{EsCounters, send_with_retries};

/// Alerts are buffered up to this many body bytes before a request is sent.
const ALERT_BATCH_BYTES: usize = 1 << 20;

/// Writes alerts to `alerts_index`, one document per alert with `_id` = a hash of the
/// alert's `key`, so a file processed twice (or by two workers) does not raise an alert
/// twice.
pub struct EsAlertSink {
    client: Arc<Client>,
    settings: Arc<Resolved>,
    buf: Mutex<Vec<u8>>,
    /// Held while a body is posted, so a flush returns only once every alert sent
    /// before it is stored: a flush that finds the buffer emptied by another thread's
    /// post in flight waits for that post (and, should it fail, posts its body again).
    posting: Mutex<()>,
    counters: EsCounters,
    /// Alerts Elasticsearch rejected (4xx items), logged and counted only: an alert is
    /// derived data, the record itself is indexed.
    rejected: AtomicU64,
}

impl EsAlertSink {
    pub(crate) fn new(client: Arc<Client>, settings: Arc<Resolved>) -> Self {
        EsAlertSink {
            client,
            settings,
            buf: Mutex::new(Vec::new()),
            posting: Mutex::new(()),
            counters: EsCounters::default(),
            rejected: AtomicU64::new(0),
        }
    }

    /// `(alerts indexed, alerts rejected)` so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.counters.indexed.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
        )
    }

    /// Posts `body`; when that fails, puts it back in front of the buffer, so the alerts
    /// go out with the next flush (ids are deterministic: what did get indexed is only
    /// overwritten).
    fn post_or_keep(&self, body: Vec<u8>) -> Result<()> {
        let result = self.post(&body);
        if result.is_err() {
            let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            let newer = std::mem::replace(&mut *buf, body);
            buf.extend_from_slice(&newer);
        }
        result
    }

    fn post(&self, body: &[u8]) -> Result<()> {
        if body.is_empty() {
            return Ok(());
        }
        let path = format!("{}/_bulk", self.settings.alerts_index);
        let response =
            send_with_retries(&self.client, &self.settings, &self.counters, &path, body)?;
        let mut retry = 0;
        for item in &response.items {
            match item.index.status {
                200..=299 => {
                    self.counters.indexed.fetch_add(1, Ordering::Relaxed);
                }
                429 | 500..=599 => retry += 1,
                status => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(status, error = ?item.index.error.as_ref().map(|e| e.describe()), "elasticsearch rejected an alert");
                }
            }
        }
        if retry > 0 {
            // Alert ids are deterministic, so retrying the file re-sends them harmlessly.
            return Err(indexer_error(
                ErrorClass::Transient,
                format!("{retry} alerts answered 429/5xx"),
            ));
        }
        Ok(())
    }
}

impl AlertSink for EsAlertSink {
    fn send(&self, alerts: &[Alert]) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let full = {
            let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            for a in alerts {
                let id = xxhash_rust::xxh3::xxh3_128(a.key.as_bytes());
                buf.extend_from_slice(
                    format!("{{\"index\":{{\"_id\":\"{id:032x}\"}}}}\n").as_bytes(),
                );
                serde_json::to_writer(&mut *buf, a).map_err(|e| {
                    indexer_error(
                        ErrorClass::Permanent,
                        format!("cannot serialize an alert: {e}"),
                    )
                })?;
                buf.push(b'\n');
            }
            buf.len() >= ALERT_BATCH_BYTES
        };
        if full { self.flush() } else { Ok(()) }
    }

    fn flush(&self) -> Result<()> {
        let _posting = self.posting.lock().unwrap_or_else(|p| p.into_inner());
        let body = std::mem::take(&mut *self.buf.lock().unwrap_or_else(|p| p.into_inner()));
        self.post_or_keep(body)
    }
}
