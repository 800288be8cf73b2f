//! The Arrow Flight destination: each input's scored record batches go to a Flight
//! server with `DoPut`, as Arrow IPC — no serialization to JSON.
//!
//! Each request (a chunk of up to `indexer.bulk_max_docs` records) is one `DoPut` call
//! on the descriptor path `indexer.flight.descriptor`; its first message carries
//! `app_metadata` `{"uri", "etag", "first_row", "rows"}` so a server can tell inputs
//! and resumed ranges apart. [`Indexer::index`] returns only once the server closed the
//! call's `PutResult` stream without error, so a checkpoint or an acknowledgement
//! always follows the server's answer. A broken stream or an unavailable server is
//! transient (the input is retried from its checkpoint: a resumed input sends its rows
//! after the checkpoint again, so delivery is at least once); `UNAUTHENTICATED`,
//! `PERMISSION_DENIED`, `INVALID_ARGUMENT`, `NOT_FOUND`, `UNIMPLEMENTED` and a server
//! certificate that `indexer.flight.ca_cert` does not vouch for are permanent.

mod config;

pub use config::FlightSinkConfig;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use bytes::Bytes;
use futures::TryStreamExt;
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{DocBatch, IndexOutcome, Indexer, IndexerFactory};
use pf_types::{Secret, WorkItem};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The destination's name in logs, errors and the summary.
const NAME: &str = "flight";

/// One channel to the Flight server, shared by every pipeline thread's indexer.
pub struct FlightIndexerFactory {
    runtime: Arc<tokio::runtime::Runtime>,
    channel: Channel,
    descriptor: FlightDescriptor,
    token: Option<Secret>,
    rows_sent: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
}

impl FlightIndexerFactory {
    /// Connects (lazily: the first `DoPut` opens the connection) to `config.endpoint`.
    pub fn build(config: &FlightSinkConfig) -> Result<Self> {
        config.validate()?;
        let endpoint = config.endpoint.as_deref().unwrap_or_default();
        let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
        let key = "indexer.flight.endpoint";
        let http = match scheme {
            "grpc" | "grpc+tcp" | "http" => format!("http://{rest}"),
            "grpc+tls" | "https" => format!("https://{rest}"),
            _ => {
                return Err(PfError::config(
                    key,
                    format!("`{endpoint}`: expected grpc://host:port or grpc+tls://host:port"),
                ));
            }
        };
        let mut builder = Endpoint::from_shared(http)
            .map_err(|e| PfError::config(key, format!("`{endpoint}`: {e}")))?
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.timeout_secs));
        if scheme.ends_with("tls") || scheme == "https" {
            let mut tls = ClientTlsConfig::new();
            if let Some(path) = &config.ca_cert {
                let pem = pf_error::read_setting_file("indexer.flight.ca_cert", path)?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            builder = builder
                .tls_config(tls)
                .map_err(|e| PfError::config(key, format!("TLS set-up: {e}")))?;
        }
        let runtime = pf_traits::io_runtime("pf-flight", 1, "the Flight client runtime")?;
        let channel = {
            let _context = runtime.enter();
            builder.connect_lazy()
        };
        let token = std::env::var(&config.token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        Ok(FlightIndexerFactory {
            runtime: Arc::new(runtime),
            channel,
            descriptor: FlightDescriptor::new_path(vec![config.descriptor.clone()]),
            token,
            rows_sent: Arc::default(),
            calls: Arc::default(),
        })
    }
}

impl IndexerFactory for FlightIndexerFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Result<Box<dyn Indexer>> {
        let mut client = FlightClient::new(self.channel.clone());
        if let Some(token) = &self.token {
            client
                .add_header("authorization", &format!("Bearer {}", token.expose()))
                .map_err(|e| status_error(&e))?;
        }
        Ok(Box::new(FlightIndexer {
            runtime: self.runtime.clone(),
            client,
            descriptor: self.descriptor.clone(),
            rows_sent: self.rows_sent.clone(),
            calls: self.calls.clone(),
        }))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("flight_do_put_calls", self.calls.load(Ordering::Relaxed)),
            ("flight_rows_sent", self.rows_sent.load(Ordering::Relaxed)),
        ]
    }
}

/// One pipeline thread's Flight client (its calls share the factory's channel).
struct FlightIndexer {
    runtime: Arc<tokio::runtime::Runtime>,
    client: FlightClient,
    descriptor: FlightDescriptor,
    rows_sent: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
}

impl Indexer for FlightIndexer {
    fn index(&mut self, item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome> {
        let rows: u64 = docs.iter().map(|d| d.num_rows() as u64).sum();
        if rows == 0 {
            return Ok(IndexOutcome::default());
        }
        let metadata = serde_json::json!({
            "uri": item.uri,
            "etag": item.etag,
            "first_row": docs[0].ordinal(0),
            "rows": rows,
        });
        let batches: Vec<std::result::Result<RecordBatch, FlightError>> =
            docs.iter().map(|d| Ok(d.batch.clone())).collect();
        let stream = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(self.descriptor.clone()))
            .with_metadata(Bytes::from(metadata.to_string()))
            .build(futures::stream::iter(batches));
        let client = &mut self.client;
        self.runtime
            .block_on(async {
                let results = client.do_put(stream).await?;
                results.try_collect::<Vec<_>>().await
            })
            .map_err(|e| flight_error(&e, &item.uri))?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows_sent.fetch_add(rows, Ordering::Relaxed);
        Ok(IndexOutcome {
            indexed: rows,
            failures: Vec::new(),
        })
    }
}

/// The class of a failed call: statuses that will answer the same again are
/// permanent, and so is a server certificate the configured CA does not vouch for (the
/// next connection is refused the same way); a broken stream, a timeout or an
/// unavailable server is transient.
fn flight_error(e: &FlightError, uri: &str) -> PfError {
    let (class, what) = match e {
        FlightError::Tonic(status) if refused_certificate(status) => (
            ErrorClass::Permanent,
            format!(
                "{}: the server's certificate is not trusted; check indexer.flight.ca_cert (the CA that signed it) and the endpoint's host name",
                status_text(status)
            ),
        ),
        FlightError::Tonic(status) => (status_class(status.code()), status_text(status)),
        FlightError::Arrow(_) | FlightError::NotYetImplemented(_) => {
            (ErrorClass::Permanent, e.to_string())
        }
        _ => (ErrorClass::Transient, e.to_string()),
    };
    PfError::Indexer {
        destination: NAME,
        class,
        message: format!("DoPut of {uri}: {what}"),
    }
}

fn status_class(code: Code) -> ErrorClass {
    match code {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::NotFound
        | Code::Unimplemented => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}

/// True when the connection failed because TLS refused the server's certificate: a
/// `rustls` certificate error somewhere in the status's cause chain (inside an
/// `io::Error` on the way, whose `source()` skips the error it wraps).
fn refused_certificate(status: &tonic::Status) -> bool {
    let is_refusal = |e: &(dyn std::error::Error + 'static)| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        )
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(e) = cause {
        if is_refusal(e)
            || e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| is_refusal(inner))
        {
            return true;
        }
        cause = e.source();
    }
    false
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn status_error(e: &FlightError) -> PfError {
    PfError::config("indexer.flight.token_env", format!("unusable token: {e}"))
}
