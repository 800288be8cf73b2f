//! The HTTP side: the official client's transport on a shared Tokio runtime, driven
//! from the (blocking) pipeline threads, and the `_bulk` response.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::http::{Method, Url};
use serde::Deserialize;

use pf_error::{ErrorClass, PfError, Result};

use crate::config::ElasticsearchConfig;
use crate::settings::EsAuth;

/// Keeps only what maps each item back to its document. Every item has a `status`, so
/// no item is filtered out of the array and positions still match the request order.
pub(crate) const BULK_FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// A `_bulk` response reduced by [`BULK_FILTER_PATH`].
#[derive(Debug, Deserialize)]
pub(crate) struct BulkResponse {
    #[serde(default)]
    pub errors: bool,
    #[serde(default)]
    pub items: Vec<ItemEnvelope>,
}

/// `{"index": {...}}` (or `create`, `update`, `delete`).
#[derive(Debug, Deserialize)]
pub(crate) struct ItemEnvelope {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    pub index: ItemResult,
}

/// One item's outcome.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemResult {
    pub status: u16,
    #[serde(default)]
    pub error: Option<ItemError>,
}

/// Elasticsearch's error object (`type`, `reason`, optional `caused_by`).
#[derive(Debug, Deserialize)]
pub(crate) struct ItemError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub caused_by: Option<Box<ItemError>>,
}

impl ItemError {
    /// `type: reason (caused by type: reason)`.
    pub fn describe(&self) -> String {
        let mut s = self.kind.clone();
        if let Some(r) = &self.reason {
            s.push_str(": ");
            s.push_str(r);
        }
        if let Some(c) = &self.caused_by {
            s.push_str(" (caused by ");
            s.push_str(&c.describe());
            s.push(')');
        }
        s
    }
}

/// How long one request took, by part.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestTimes {
    pub compress: Duration,
    pub http: Duration,
    pub parse: Duration,
}

/// A connection to the cluster shared by every pipeline thread.
pub(crate) struct Client {
    transport: Transport,
    runtime: Arc<tokio::runtime::Runtime>,
    compression: bool,
}

pub(crate) fn indexer_error(class: ErrorClass, message: impl Into<String>) -> PfError {
    PfError::Indexer {
        destination: "elasticsearch",
        class,
        message: message.into(),
    }
}

impl Client {
    /// Builds the transport: node pool, credentials, CA, timeout. Compression is done
    /// here rather than by the transport so it can use a fast level.
    pub fn new(s: &ElasticsearchConfig) -> Result<Self> {
        let urls = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Url::parse(e.expose()).map_err(|err| {
                    PfError::config(format!("indexer.elasticsearch.endpoints[{i}]"), err)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut builder = match urls.len() {
            0 => {
                return Err(PfError::config(
                    "indexer.elasticsearch.endpoints",
                    "needs at least one URL",
                ));
            }
            1 => TransportBuilder::new(SingleNodeConnectionPool::new(urls[0].clone())),
            _ => TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None)),
        };
        builder = builder
            .timeout(s.timeout())
            .disable_proxy()
            .enable_meta_header(false);
        builder = match &s.auth() {
            EsAuth::None => builder,
            EsAuth::Basic { username, password } => builder.auth(Credentials::Basic(
                username.clone(),
                password.expose().to_owned(),
            )),
            EsAuth::ApiKey(key) => {
                builder.auth(Credentials::EncodedApiKey(key.expose().to_owned()))
            }
        };
        if let Some(path) = &s.ca_cert {
            let pem = pf_error::read_setting_file("indexer.elasticsearch.ca_cert", path)?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                PfError::config(
                    "indexer.elasticsearch.ca_cert",
                    format!("{} is not a PEM certificate: {e}", path.display()),
                )
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder.build().map_err(|e| {
            PfError::config(
                "indexer.elasticsearch",
                format!("cannot build the HTTP client: {e}"),
            )
        })?;
        // One I/O thread is plenty: requests are issued by the pipeline threads through
        // block_on, the runtime only drives sockets.
        let runtime = pf_traits::io_runtime("es-io", 1, "tokio runtime")?;
        Ok(Client {
            transport,
            runtime: Arc::new(runtime),
            compression: s.compression,
        })
    }

    /// Sends one request and returns `(status, body)`; transport failures are transient.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
        headers: HeaderMap,
    ) -> Result<(u16, Bytes)> {
        self.runtime.block_on(async {
            let resp = self
                .transport
                .send(method, path, headers, Some(query), body, None)
                .await
                .map_err(|e| {
                    indexer_error(
                        ErrorClass::Transient,
                        format!("{} {path}: {}", method_name(method), describe_transport(&e)),
                    )
                })?;
            let status = resp.status_code().as_u16();
            let bytes = resp.bytes().await.map_err(|e| {
                indexer_error(
                    ErrorClass::Transient,
                    format!("reading the response of {path}: {}", describe_transport(&e)),
                )
            })?;
            Ok((status, bytes))
        })
    }

    /// One `_bulk` request with `body` (NDJSON, uncompressed); `Err` classifies a
    /// failure of the request as a whole.
    pub fn bulk(
        &self,
        path: &str,
        body: &[u8],
        times: &mut RequestTimes,
        wire_bytes: &mut u64,
    ) -> Result<BulkResponse> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        let t = Instant::now();
        let payload = if self.compression {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            // Level 1: bulk bodies are repetitive, so most of the gain comes cheaply.
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            enc.write_all(body)
                .and_then(|()| enc.finish())
                .map(Bytes::from)
                .map_err(|e| indexer_error(ErrorClass::Transient, format!("gzip: {e}")))?
        } else {
            Bytes::copy_from_slice(body)
        };
        times.compress += t.elapsed();
        *wire_bytes += payload.len() as u64;
        let t = Instant::now();
        let result = self.request(
            Method::Post,
            path,
            &[("filter_path", BULK_FILTER_PATH)],
            Some(payload),
            headers,
        );
        times.http += t.elapsed();
        let (status, bytes) = result?;
        let t = Instant::now();
        let parsed = classify_bulk(status, &bytes);
        times.parse += t.elapsed();
        parsed
    }
}

fn method_name(m: Method) -> String {
    format!("{m:?}").to_uppercase()
}

fn describe_transport(e: &elasticsearch::Error) -> String {
    // The source chain says "connection refused" / "operation timed out"; the top-level
    // message alone only says "error sending request".
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    if e.is_timeout() {
        s.push_str(" (timeout)");
    }
    s
}

/// The reason Elasticsearch gave for a failed request, from its error body.
pub(crate) fn error_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Some(serde_json::Value::Object(e)),
        }) => {
            let kind = e.get("type").and_then(|v| v.as_str()).unwrap_or("error");
            let reason = e.get("reason").and_then(|v| v.as_str()).unwrap_or("");
            format!("{kind}: {reason}")
        }
        Ok(ErrorBody {
            error: Some(serde_json::Value::String(s)),
        }) => s,
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            text.trim().to_owned()
        }
    }
}

/// Whole-request status → outcome: 2xx parses the items; 408/429/5xx are worth
/// retrying; other 4xx (auth, bad request, too large) will fail every time.
fn classify_bulk(status: u16, body: &[u8]) -> Result<BulkResponse> {
    match status {
        200..=299 => serde_json::from_slice(body).map_err(|e| {
            // A proxy's HTML page or a truncated body: the request may not have been
            // executed as we think, so sending it again is the safe reading.
            indexer_error(
                ErrorClass::Transient,
                format!("unreadable _bulk response (HTTP {status}): {e}"),
            )
        }),
        408 | 429 | 500..=599 => Err(indexer_error(
            ErrorClass::Transient,
            format!("_bulk answered HTTP {status}: {}", error_reason(body)),
        )),
        401 | 403 => Err(indexer_error(
            ErrorClass::Permanent,
            format!(
                "_bulk answered HTTP {status} (check indexer.elasticsearch username/password or api_key): {}",
                error_reason(body)
            ),
        )),
        413 => Err(indexer_error(
            ErrorClass::Permanent,
            format!(
                "_bulk answered HTTP 413: the request is too large for the cluster; lower indexer.bulk_max_bytes ({})",
                error_reason(body)
            ),
        )),
        _ => Err(indexer_error(
            ErrorClass::Permanent,
            format!("_bulk answered HTTP {status}: {}", error_reason(body)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_request_statuses_are_classified() {
        let ok = classify_bulk(200, br#"{"errors":true,"items":[{"index":{"status":201}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}]}"#).unwrap();
        assert!(ok.errors);
        assert_eq!(ok.items[1].index.status, 429);
        assert_eq!(
            ok.items[1].index.error.as_ref().unwrap().describe(),
            "es_rejected_execution_exception: busy"
        );
        let e = classify_bulk(503, br#"{"error":{"type":"unavailable_shards_exception","reason":"no primary"},"status":503}"#).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.to_string().contains("no primary"));
        assert_eq!(
            classify_bulk(401, b"{}").unwrap_err().class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_bulk(200, b"<html>").unwrap_err().class(),
            ErrorClass::Transient
        );
    }
}
