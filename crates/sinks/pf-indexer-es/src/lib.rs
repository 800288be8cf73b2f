//! Elasticsearch bulk indexer: Arrow rows serialized straight into `_bulk` bodies, with
//! exact per-item accounting.
//!
//! * Documents are written from Arrow arrays into one reused buffer per thread
//!   ([`BatchEncoder`]); requests are cut by documents and by bytes.
//! * Every document gets a deterministic `_id` (a configured column, else a hash of the
//!   file's uri and etag plus the row's ordinal), so a file processed twice overwrites
//!   instead of duplicating; with `op_type: create` a `409` means "already there".
//! * Items answered `429` or `5xx` inside a `200` response are sent again, alone, with
//!   exponential backoff and jitter, up to `max_retries` rounds; other `4xx` items
//!   (mapping and parse errors) become record failures with Elasticsearch's error type
//!   and reason. A request that fails as a whole (refused, timed out, `5xx`) is retried
//!   the same way and then reported as a transient failure, so the file goes back to
//!   the queue and resumes from its checkpoint.
//! * [`EsCounters`] add up exactly: `sent = indexed + rejected + abandoned`, where
//!   abandoned documents belong to files that will be retried.

mod alerts;
mod client;
mod config;
mod encode;
mod metrics;
mod server;
mod settings;

pub use alerts::EsAlertSink;
pub use config::{ElasticsearchConfig, OpType};
pub use encode::{BatchEncoder, DocOptions};
pub use metrics::describe_metrics;
pub use server::ServerInfo;
pub use settings::{EsAuth, IndexName, IndexSetup, IndexTemplate};

use settings::Resolved;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};

use pf_error::{ErrorClass, Result};
use pf_traits::{BulkLimits, DocBatch, IndexOutcome, Indexer, IndexerFactory};
use pf_types::{RecordFailure, Stage, WorkItem};

use client::{Client, RequestTimes, error_reason, indexer_error};
use metrics::ItemResult;

/// Exact counters over every indexer of a factory.
#[derive(Debug, Default)]
pub struct EsCounters {
    /// Documents put into a bulk request for the first time.
    pub sent: AtomicU64,
    /// Documents Elasticsearch accepted (including `409` on `create`).
    pub indexed: AtomicU64,
    /// Of `indexed`, `create` items that already existed (`409`).
    pub already_indexed: AtomicU64,
    /// Item re-sends after a `429` or `5xx` item status.
    pub retried: AtomicU64,
    /// Documents Elasticsearch rejected on their own (`4xx` items).
    pub rejected: AtomicU64,
    /// Documents handed back for the record DLQ: `rejected` plus documents that could
    /// not be built (null id, no time for the index name).
    pub dlq: AtomicU64,
    /// Documents whose request failed as a whole after every retry; their file is
    /// retried from its checkpoint.
    pub abandoned: AtomicU64,
    /// HTTP `_bulk` requests, every attempt counted.
    pub requests: AtomicU64,
    /// Whole-request retries (refused, timed out, `5xx`).
    pub request_retries: AtomicU64,
    /// Body bytes before compression.
    pub body_bytes: AtomicU64,
    /// Bytes on the wire (after compression).
    pub wire_bytes: AtomicU64,
    /// Time spent serializing documents, ns.
    pub serialize_ns: AtomicU64,
    /// Time spent compressing bodies, ns.
    pub compress_ns: AtomicU64,
    /// Time spent in HTTP round trips (send, server time, response), ns.
    pub http_ns: AtomicU64,
    /// Time spent parsing responses, ns.
    pub parse_ns: AtomicU64,
    /// Time spent waiting in backoff, ns.
    pub backoff_ns: AtomicU64,
}

impl EsCounters {
    /// The counters by stable name, for the run summary and metrics.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) / 1_000_000;
        vec![
            ("sent", g(&self.sent)),
            ("indexed", g(&self.indexed)),
            ("already_indexed", g(&self.already_indexed)),
            ("retried", g(&self.retried)),
            ("rejected", g(&self.rejected)),
            ("dlq", g(&self.dlq)),
            ("abandoned", g(&self.abandoned)),
            ("requests", g(&self.requests)),
            ("request_retries", g(&self.request_retries)),
            ("body_bytes", g(&self.body_bytes)),
            ("wire_bytes", g(&self.wire_bytes)),
            ("serialize_ms", ms(&self.serialize_ns)),
            ("compress_ms", ms(&self.compress_ns)),
            ("http_ms", ms(&self.http_ns)),
            ("parse_ms", ms(&self.parse_ns)),
            ("backoff_ms", ms(&self.backoff_ns)),
        ]
    }

    /// Counts `n` bulk items that ended in `result`, here and in the metrics.
    fn settled(&self, result: ItemResult, n: u64) {
        match result {
            ItemResult::Indexed => add(&self.indexed, n),
            ItemResult::AlreadyIndexed => {
                add(&self.indexed, n);
                add(&self.already_indexed, n);
            }
            ItemResult::Retried => add(&self.retried, n),
            ItemResult::Rejected => {
                add(&self.rejected, n);
                add(&self.dlq, n);
            }
            ItemResult::Abandoned => add(&self.abandoned, n),
        }
        metrics::items(result, n);
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn add_time(a: &AtomicU64, d: Duration) {
    a.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
}

/// Builds one [`EsIndexer`] per pipeline thread over one shared connection.
pub struct EsIndexerFactory {
    settings: Arc<Resolved>,
    options: Arc<DocOptions>,
    client: Arc<Client>,
    counters: Arc<EsCounters>,
}

impl EsIndexerFactory {
    /// Builds the sink of `config` with requests cut at `bulk`; connects lazily
    /// (nothing is sent until the first request or [`Self::setup`]).
    pub fn build(config: &ElasticsearchConfig, bulk: BulkLimits) -> Result<Self> {
        let settings = Resolved::new(config, bulk)?;
        let client = Arc::new(Client::new(config)?);
        metrics::register();
        let options = Arc::new(DocOptions {
            index: settings.index.clone(),
            id_field: config.id_field.clone(),
            op_type: config.op_type,
        });
        Ok(EsIndexerFactory {
            settings: Arc::new(settings),
            options,
            client,
            counters: Arc::default(),
        })
    }

    /// The counters over every indexer built by this factory.
    pub fn counters(&self) -> Arc<EsCounters> {
        self.counters.clone()
    }

    /// An alert sink writing to `alerts_index` over the same connection.
    pub fn alert_sink(&self) -> EsAlertSink {
        EsAlertSink::new(self.client.clone(), self.settings.clone())
    }

    /// Asks the server what it is (`GET /`) and logs its flavour and version. A server
    /// that does not say, or cannot be reached yet, is a warning, not an error: the bulk
    /// requests decide whether the destination works.
    pub fn identify_server(&self) -> Option<ServerInfo> {
        match self
            .client
            .request(Method::Get, "/", &[], None, HeaderMap::new())
        {
            Ok((200, body)) => {
                let info = ServerInfo::from_root(&body);
                match &info {
                    Some(i) => tracing::info!(
                        flavour = %i.flavour,
                        version = %i.version,
                        "elasticsearch destination: the server is {} {}",
                        i.flavour,
                        i.version
                    ),
                    None => tracing::warn!(
                        "elasticsearch destination: GET / did not give a version.number"
                    ),
                }
                info
            }
            Ok((status, body)) => {
                tracing::warn!(
                    status,
                    reason = %error_reason(&body),
                    "elasticsearch destination: GET / did not identify the server"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "elasticsearch destination: GET / failed");
                None
            }
        }
    }

    /// Creates the index (fixed name) or an index template (templated name) with the
    /// configured mappings and settings. Idempotent: an existing index is left alone,
    /// a template is overwritten with the same content.
    pub fn setup(&self) -> Result<()> {
        let Some(setup) = &self.settings.config.index_setup() else {
            return Ok(());
        };
        let mut body = serde_json::Map::new();
        if let Some(s) = &setup.settings {
            body.insert("settings".into(), s.clone());
        }
        if let Some(m) = &setup.mappings {
            body.insert("mappings".into(), m.clone());
        }
        let json_headers = || {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h
        };
        let setup_error = |what: &str, status: u16, body: &[u8]| {
            let class = if status == 429 || status >= 500 {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            };
            indexer_error(
                class,
                format!(
                    "index set-up: {what} answered HTTP {status}: {}",
                    error_reason(body)
                ),
            )
        };
        match &self.settings.index {
            IndexName::Fixed(name) => {
                let (status, resp) =
                    self.client
                        .request(Method::Head, name, &[], None, HeaderMap::new())?;
                match status {
                    200 => {
                        tracing::info!(index = %name, "index exists; set-up leaves it unchanged");
                        return Ok(());
                    }
                    404 => {}
                    s => return Err(setup_error(&format!("HEAD /{name}"), s, &resp)),
                }
                let payload = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                let (status, resp) =
                    self.client
                        .request(Method::Put, name, &[], Some(payload), json_headers())?;
                let exists = status == 400
                    && error_reason(&resp).starts_with("resource_already_exists_exception");
                if !(200..300).contains(&status) && !exists {
                    return Err(setup_error(&format!("PUT /{name}"), status, &resp));
                }
                tracing::info!(index = %name, "index created");
            }
            IndexName::Template(t) => {
                let name = format!(
                    "paraflow-{}",
                    t.pattern
                        .split('{')
                        .next()
                        .unwrap_or("index")
                        .trim_end_matches(['-', '_', '.'])
                );
                let template = serde_json::json!({
                    "index_patterns": [self.settings.index.wildcard()],
                    "template": body,
                    "_meta": {"created_by": "paraflow", "pattern": t.pattern},
                });
                let payload = Bytes::from(serde_json::to_vec(&template).unwrap_or_default());
                let path = format!("_index_template/{name}");
                let (status, resp) =
                    self.client
                        .request(Method::Put, &path, &[], Some(payload), json_headers())?;
                if !(200..300).contains(&status) {
                    return Err(setup_error(&format!("PUT /{path}"), status, &resp));
                }
                tracing::info!(template = %name, pattern = %self.settings.index.wildcard(), "index template put");
            }
        }
        Ok(())
    }
}

impl IndexerFactory for EsIndexerFactory {
    fn name(&self) -> &'static str {
        "elasticsearch"
    }

    fn create(&self) -> Result<Box<dyn Indexer>> {
        Ok(Box::new(EsIndexer {
            settings: self.settings.clone(),
            options: self.options.clone(),
            client: self.client.clone(),
            counters: self.counters.clone(),
            // Buffers grow on first use: a thread whose chunks (or files) fit one
            // request never allocates the others.
            requests: (0..self.settings.config.max_in_flight.max(1))
                .map(|_| Request::default())
                .collect(),
            filling: 0,
            path: match &self.settings.index {
                IndexName::Fixed(name) => format!("{name}/_bulk"),
                IndexName::Template(_) => "_bulk".to_owned(),
            },
        }))
    }

    fn requests_per_chunk(&self) -> usize {
        self.settings.config.max_in_flight.max(1)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counters.snapshot()
    }
}

/// One document in the current request body.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    source_start: usize,
    end: usize,
    ordinal: u64,
}

/// One bulk request being built or settled: its body and the document spans in it.
#[derive(Default)]
struct Request {
    body: Vec<u8>,
    retry_body: Vec<u8>,
    spans: Vec<Span>,
}

impl Request {
    fn clear(&mut self) {
        self.body.clear();
        self.spans.clear();
    }
}

/// What settling one request needs, shared by the requests sent together.
struct Sender<'a> {
    settings: &'a Resolved,
    options: &'a DocOptions,
    client: &'a Client,
    counters: &'a EsCounters,
    path: &'a str,
}

/// One pipeline thread's indexer: `max_in_flight` reused request buffers, filled in turn
/// and sent together.
pub struct EsIndexer {
    settings: Arc<Resolved>,
    options: Arc<DocOptions>,
    client: Arc<Client>,
    counters: Arc<EsCounters>,
    requests: Vec<Request>,
    /// The request being filled; those before it are full and wait to be sent.
    filling: usize,
    path: String,
}

impl Indexer for EsIndexer {
    fn index(&mut self, item: &WorkItem, docs: &[DocBatch]) -> Result<IndexOutcome> {
        let mut outcome = IndexOutcome::default();
        for r in &mut self.requests {
            r.clear();
        }
        self.filling = 0;
        let started = Instant::now();
        let mut flushing = Duration::ZERO;
        let options = self.options.clone();
        let result = (|| {
            for d in docs {
                let mut enc = BatchEncoder::new(&options, item, &d.batch)?;
                for row in 0..d.num_rows() {
                    let ordinal = d.ordinal(row);
                    let req = &mut self.requests[self.filling];
                    let start = req.body.len();
                    if let Err(reason) = enc.write_row(row, ordinal, &mut req.body) {
                        let mut record = Vec::new();
                        enc.write_source(row, &mut record);
                        add(&self.counters.dlq, 1);
                        outcome.failures.push(RecordFailure {
                            uri: item.uri.clone(),
                            line: None,
                            row: Some(ordinal),
                            stage: Stage::Index,
                            class: ErrorClass::Record,
                            error: format!("cannot index into elasticsearch: {reason}"),
                            record: Some(String::from_utf8_lossy(&record).into_owned()),
                        });
                        continue;
                    }
                    let source_start = start + newline_at(&req.body[start..]) + 1;
                    req.spans.push(Span {
                        start,
                        source_start,
                        end: req.body.len(),
                        ordinal,
                    });
                    if req.spans.len() >= self.settings.bulk.max_docs
                        || req.body.len() >= self.settings.bulk.max_bytes
                    {
                        self.filling += 1;
                        if self.filling == self.requests.len() {
                            let t = Instant::now();
                            let r = self.flush(item, &mut outcome);
                            flushing += t.elapsed();
                            r?;
                        }
                    }
                }
            }
            let t = Instant::now();
            let r = self.flush(item, &mut outcome);
            flushing += t.elapsed();
            r
        })();
        add_time(
            &self.counters.serialize_ns,
            started.elapsed().saturating_sub(flushing),
        );
        result.map(|()| outcome)
    }
}

fn newline_at(b: &[u8]) -> usize {
    b.iter().position(|&c| c == b'\n').unwrap_or(b.len())
}

impl EsIndexer {
    /// Sends the filled requests, up to `max_in_flight` at once, and returns when every
    /// document in them has a final outcome (or the first failure, the chunk then failing
    /// as a whole). Outcomes are merged in request order.
    fn flush(&mut self, item: &WorkItem, outcome: &mut IndexOutcome) -> Result<()> {
        let used = (self.filling + 1).min(self.requests.len());
        self.filling = 0;
        let sender = Sender {
            settings: &self.settings,
            options: &self.options,
            client: &self.client,
            counters: &self.counters,
            path: &self.path,
        };
        let requests = &mut self.requests[..used];
        let result = match requests {
            [] => Ok(()),
            [only] => sender.settle(item, only, outcome),
            [first, rest @ ..] => std::thread::scope(|scope| {
                let others: Vec<_> = rest
                    .iter_mut()
                    .map(|r| {
                        let sender = &sender;
                        scope.spawn(move || {
                            let mut o = IndexOutcome::default();
                            sender.settle(item, r, &mut o).map(|()| o)
                        })
                    })
                    .collect();
                let mut result = sender.settle(item, first, outcome);
                for handle in others {
                    let settled = handle.join().unwrap_or_else(|_| {
                        Err(indexer_error(
                            ErrorClass::Transient,
                            "a bulk request thread panicked".to_owned(),
                        ))
                    });
                    match settled {
                        Ok(o) if result.is_ok() => {
                            outcome.indexed += o.indexed;
                            outcome.failures.extend(o.failures);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if result.is_ok() {
                                result = Err(e);
                            }
                        }
                    }
                }
                result
            }),
        };
        for r in requests {
            r.clear();
        }
        result
    }
}

impl Sender<'_> {
    /// Sends one request until each of its documents has a final outcome.
    fn settle(&self, item: &WorkItem, req: &mut Request, outcome: &mut IndexOutcome) -> Result<()> {
        if req.spans.is_empty() {
            return Ok(());
        }
        let c = self.counters;
        add(&c.sent, req.spans.len() as u64);
        add(&c.body_bytes, req.body.len() as u64);
        // Indices into `spans` of documents still waiting for a final outcome.
        let mut pending: Vec<usize> = (0..req.spans.len()).collect();
        let mut round = 0u32;
        loop {
            let payload: &[u8] = if round == 0 {
                &req.body
            } else {
                req.retry_body.clear();
                for &i in &pending {
                    let s = req.spans[i];
                    req.retry_body.extend_from_slice(&req.body[s.start..s.end]);
                }
                &req.retry_body
            };
            let response =
                match send_with_retries(self.client, self.settings, c, self.path, payload) {
                    Ok(r) => r,
                    Err(e) => {
                        c.settled(ItemResult::Abandoned, pending.len() as u64);
                        return Err(e);
                    }
                };
            if response.items.len() != pending.len() {
                c.settled(ItemResult::Abandoned, pending.len() as u64);
                return Err(indexer_error(
                    ErrorClass::Transient,
                    format!(
                        "_bulk response has {} items for {} documents",
                        response.items.len(),
                        pending.len()
                    ),
                ));
            }
            if !response.errors {
                // Every item succeeded; no need to look at them one by one.
                c.settled(ItemResult::Indexed, pending.len() as u64);
                outcome.indexed += pending.len() as u64;
                break;
            }
            let mut again = Vec::new();
            let (mut indexed, mut already, mut rejected) = (0, 0, 0);
            for (&i, env) in pending.iter().zip(&response.items) {
                let r = &env.index;
                match r.status {
                    200..=299 => indexed += 1,
                    409 if self.options.op_type == OpType::Create => already += 1,
                    429 | 500..=599 => again.push(i),
                    status => {
                        rejected += 1;
                        let s = req.spans[i];
                        let source = &req.body[s.source_start..s.end.saturating_sub(1)];
                        let why = r
                            .error
                            .as_ref()
                            .map_or_else(|| "no error details".to_owned(), |e| e.describe());
                        outcome.failures.push(RecordFailure {
                            uri: item.uri.clone(),
                            line: None,
                            row: Some(s.ordinal),
                            stage: Stage::Index,
                            class: ErrorClass::Record,
                            error: format!(
                                "elasticsearch rejected the document (HTTP {status}): {why}"
                            ),
                            record: Some(String::from_utf8_lossy(source).into_owned()),
                        });
                        continue;
                    }
                }
                if (200..300).contains(&r.status) || r.status == 409 {
                    outcome.indexed += 1;
                }
            }
            c.settled(ItemResult::Indexed, indexed);
            c.settled(ItemResult::AlreadyIndexed, already);
            c.settled(ItemResult::Rejected, rejected);
            if again.is_empty() {
                break;
            }
            round += 1;
            if round > self.settings.config.max_retries {
                c.settled(ItemResult::Abandoned, again.len() as u64);
                return Err(indexer_error(
                    ErrorClass::Transient,
                    format!(
                        "{} documents still answered 429/5xx after {} retries",
                        again.len(),
                        self.settings.config.max_retries
                    ),
                ));
            }
            c.settled(ItemResult::Retried, again.len() as u64);
            let wait = self.settings.retry.delay(round);
            tracing::debug!(
                documents = again.len(),
                round,
                wait_ms = wait.as_millis() as u64,
                "retrying throttled bulk items"
            );
            std::thread::sleep(wait);
            add_time(&c.backoff_ns, wait);
            pending = again;
        }
        Ok(())
    }
}

/// One body, retried as a whole while the failure is transient.
fn send_with_retries(
    client: &Client,
    s: &Resolved,
    c: &EsCounters,
    path: &str,
    payload: &[u8],
) -> Result<client::BulkResponse> {
    let mut attempt = 0;
    loop {
        let mut times = RequestTimes::default();
        let mut wire = 0;
        add(&c.requests, 1);
        let result = client.bulk(path, payload, &mut times, &mut wire);
        add(&c.wire_bytes, wire);
        add_time(&c.compress_ns, times.compress);
        add_time(&c.http_ns, times.http);
        add_time(&c.parse_ns, times.parse);
        metrics::request(result.is_ok(), times.http, wire);
        match result {
            Ok(r) => return Ok(r),
            Err(e) if e.is_transient() && attempt < s.config.max_retries => {
                attempt += 1;
                add(&c.request_retries, 1);
                let wait = s.retry.delay(attempt);
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "bulk request failed; retrying");
                std::thread::sleep(wait);
                add_time(&c.backoff_ns, wait);
            }
            Err(e) => return Err(e),
        }
    }
}
