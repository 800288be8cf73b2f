//! A **protocol test server** for the Elasticsearch `_bulk` API, with fault injection.
//!
//! It is not Elasticsearch: it speaks the documented request and response formats that
//! a bulk client depends on — NDJSON `_bulk` bodies (`index`, `create`, `update`,
//! `delete`), the `{"took","errors","items":[{"index":{"_index","_id","status",
//! "error":{"type","reason"}}}]}` response, `filter_path`, gzip request bodies, basic /
//! API-key `Authorization` — and keeps documents in memory by index and `_id`, so tests
//! can check that every document arrived exactly once. It has no search, no mappings
//! enforcement and no cluster.
//!
//! Faults are what production clusters do to bulk clients, injected on demand
//! ([`Faults`]): item-level `429` inside a `200` response for a share of documents (by
//! id hash) on their first attempts, `400` mapping errors for documents matching a
//! [`RejectRule`], whole-request `503`, slow responses, connections closed without a
//! response, and a period of being down (connections refused).
//!
//! Besides `_bulk` it answers what clients ask at start-up or tests ask afterwards:
//! `GET /`, `PUT/HEAD/GET /{index}`, `PUT/GET/HEAD /_index_template/{name}`,
//! `/{index}/_count`, `GET /{index}/_doc/{id}` and `/_refresh`.
//!
//! ```no_run
//! let server = pf_bulk_test_server::BulkTestServer::start().unwrap();
//! println!("bulk endpoint at {}", server.url());
//! // … index into it …
//! assert_eq!(server.count("transactions"), 0);
//! ```

mod bulk;
/// The HTTP/1.1 request reader the server uses, shared with the other test servers.
pub mod http;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How often idle loops look at the stop and down flags.
const POLL: Duration = Duration::from_millis(20);
/// The longest a client may take to send the rest of a request once it started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Which documents are rejected with a `400 mapper_parsing_exception`.
#[derive(Debug, Clone, PartialEq)]
pub enum RejectRule {
    /// The document's source text contains this substring.
    SourceContains(String),
    /// The document's top-level `field` (a string, or a number or boolean as its JSON
    /// text) is one of `values`.
    FieldIn {
        /// Top-level field name.
        field: String,
        /// Values that are rejected.
        values: HashSet<String>,
    },
}

/// Faults to inject; the default injects none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Share (0–1) of document ids, chosen by a hash of index and id, whose bulk items
    /// answer `429 es_rejected_execution_exception` …
    pub throttle_fraction: f64,
    /// … on their first this many attempts (then they succeed).
    pub throttle_attempts: u32,
    /// Documents answered `400 mapper_parsing_exception` on every attempt.
    pub reject: Option<RejectRule>,
    /// The next this many `_bulk` requests are answered `503` as a whole.
    pub fail_requests: u32,
    /// The next this many `_bulk` requests are read, then their connection is closed
    /// without a response.
    pub drop_connections: u32,
    /// Added before every `_bulk` response.
    pub delay: Duration,
}

impl Faults {
    /// Throttles `fraction` of the documents on their first attempt and rejects those
    /// whose `transaction_id` is one of `rejected`.
    pub fn throttle_once_and_reject(fraction: f64, rejected: HashSet<String>) -> Faults {
        Faults {
            throttle_fraction: fraction,
            throttle_attempts: 1,
            reject: Some(RejectRule::FieldIn {
                field: "transaction_id".into(),
                values: rejected,
            }),
            ..Faults::default()
        }
    }
}

/// How the server behaves apart from faults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Faults in effect from the start.
    pub faults: Faults,
    /// When set, every request must carry exactly this `Authorization` header value
    /// (e.g. `Basic ZWxhc3RpYzpzZWNyZXQ=` or `ApiKey …`); others get `401`.
    pub auth: Option<String>,
    /// Keep each document's source (for [`BulkTestServer::doc`]); off for very large
    /// runs, where only a hash of each source is kept.
    pub keep_sources: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            faults: Faults::default(),
            auth: None,
            keep_sources: true,
        }
    }
}

/// What the server saw, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    /// HTTP requests of any kind.
    pub requests: u64,
    /// `_bulk` requests, including failed ones.
    pub bulk_requests: u64,
    /// `_bulk` requests whose body was gzip-compressed (`Content-Encoding: gzip`).
    pub gzip_bulk_requests: u64,
    /// The most `_bulk` requests being handled at the same time (from receipt to reply,
    /// the injected delay included).
    pub max_bulk_in_flight: u64,
    /// Bulk items received, every attempt counted.
    pub items: u64,
    /// Items that created a document.
    pub items_created: u64,
    /// Items that overwrote an existing document (`index` of a known `_id`).
    pub items_updated: u64,
    /// Items answered `429` (injected throttling).
    pub items_throttled: u64,
    /// Items answered `400` (reject rule, invalid source).
    pub items_rejected: u64,
    /// `create` items answered `409` because the `_id` existed.
    pub items_conflicts: u64,
    /// `_bulk` requests answered `503` by injection.
    pub requests_failed: u64,
    /// `_bulk` requests whose connection was closed without a response by injection.
    pub connections_dropped: u64,
    /// Requests refused with `401`.
    pub unauthorized: u64,
    /// Every distinct `Authorization` header value seen (none is `""`).
    pub authorization_seen: BTreeSet<String>,
    /// Every distinct `filter_path` query value seen on `_bulk`.
    pub filter_paths: BTreeSet<String>,
}

/// One stored document.
#[derive(Debug, Clone)]
struct Doc {
    source: Option<Box<[u8]>>,
    source_hash: u64,
    /// How many times it was written (1 = indexed exactly once).
    writes: u32,
}

#[derive(Debug, Default)]
struct Index {
    docs: HashMap<String, Doc>,
    settings: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    indices: BTreeMap<String, Index>,
    templates: BTreeMap<String, Value>,
    /// Attempts per throttled `index/id`.
    throttle_attempts: HashMap<String, u32>,
    faults: Faults,
    stats: ServerStats,
    /// `_bulk` requests being handled now.
    bulk_in_flight: u64,
    seq_no: u64,
    auto_id: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    auth: Option<String>,
    keep_sources: bool,
    stop: AtomicBool,
    down_until: Mutex<Option<Instant>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking connection thread must not take every later test assertion down.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_down(&self) -> bool {
        let mut d = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match *d {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *d = None;
                false
            }
            None => false,
        }
    }
}

/// A running protocol test server; stops when dropped.
pub struct BulkTestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl BulkTestServer {
    /// Starts on a free loopback port with default options.
    pub fn start() -> std::io::Result<Self> {
        Self::start_local(ServerOptions::default())
    }

    /// Starts on a free loopback port with `options`.
    pub fn start_local(options: ServerOptions) -> std::io::Result<Self> {
        Self::start_with("127.0.0.1:0".parse().expect("literal address"), options)
    }

    /// Starts on `addr` (port 0 picks a free one) with `options`.
    pub fn start_with(addr: SocketAddr, options: ServerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                faults: options.faults,
                ..Inner::default()
            }),
            auth: options.auth,
            keep_sources: options.keep_sources,
            stop: AtomicBool::new(false),
            down_until: Mutex::new(None),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("bulk-test-accept".into())
            .spawn(move || accept_loop(listener, addr, s))?;
        Ok(BulkTestServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the faults in effect (attempt counts of throttled ids are kept).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Refuses connections (the listening socket is closed) and closes open ones for
    /// `period`, then listens again on the same port.
    pub fn go_down_for(&self, period: Duration) {
        *self
            .shared
            .down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + period);
    }

    /// Whether a down period is in effect.
    pub fn is_down(&self) -> bool {
        self.shared.is_down()
    }

    /// Documents stored in indices whose name matches `pattern` (`*` wildcards,
    /// comma-separated alternatives).
    pub fn count(&self, pattern: &str) -> u64 {
        let inner = self.shared.lock();
        count_matching(&inner, pattern)
    }

    /// The `_id` of every document stored in indices whose name matches `pattern` (as
    /// for [`count`](Self::count)).
    pub fn ids(&self, pattern: &str) -> BTreeSet<String> {
        let inner = self.shared.lock();
        inner
            .indices
            .iter()
            .filter(|(name, _)| pattern.split(',').any(|p| glob(p.trim(), name)))
            .flat_map(|(_, i)| i.docs.keys().cloned())
            .collect()
    }

    /// Names of the indices that hold documents or were created.
    pub fn indices(&self) -> Vec<String> {
        self.shared.lock().indices.keys().cloned().collect()
    }

    /// The stored source of a document (when sources are kept).
    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        let inner = self.shared.lock();
        let doc = inner.indices.get(index)?.docs.get(id)?;
        serde_json::from_slice(doc.source.as_deref()?).ok()
    }

    /// `(ids written more than once, highest write count)` over every index: `(0, 1)`
    /// means every document was written exactly once.
    pub fn rewrites(&self) -> (u64, u32) {
        let inner = self.shared.lock();
        let mut n = 0;
        let mut max = 0;
        for d in inner.indices.values().flat_map(|i| i.docs.values()) {
            if d.writes > 1 {
                n += 1;
            }
            max = max.max(d.writes);
        }
        (n, max)
    }

    /// A hash over every stored `(index, id, source)`, independent of arrival order;
    /// equal digests mean identical contents.
    pub fn digest(&self) -> u64 {
        let inner = self.shared.lock();
        let mut acc = 0u64;
        for (name, index) in &inner.indices {
            let ih = bulk::fnv1a(name.as_bytes());
            for (id, d) in &index.docs {
                acc = acc.wrapping_add(bulk::mix(ih ^ bulk::fnv1a(id.as_bytes()) ^ d.source_hash));
            }
        }
        acc
    }

    /// Settings/mappings bodies of created indices and the stored index templates.
    pub fn setup_requests(&self) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
        let inner = self.shared.lock();
        let indices = inner
            .indices
            .iter()
            .filter_map(|(n, i)| i.settings.clone().map(|s| (n.clone(), s)))
            .collect();
        (indices, inner.templates.clone())
    }

    /// What the server saw so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.lock().stats.clone()
    }
}

impl Drop for BulkTestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn count_matching(inner: &Inner, pattern: &str) -> u64 {
    inner
        .indices
        .iter()
        .filter(|(name, _)| pattern.split(',').any(|p| glob(p.trim(), name)))
        .map(|(_, i)| i.docs.len() as u64)
        .sum()
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.is_down() {
            // Closing the socket makes new connections fail with "connection refused",
            // as they would against a stopped node.
            listener = None;
            std::thread::sleep(POLL);
            continue;
        }
        let Some(l) = &listener else {
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => listener = Some(l),
                Err(_) => std::thread::sleep(POLL),
            }
            continue;
        };
        match l.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("bulk-test-conn".into())
                    .spawn(move || serve_connection(stream, s));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    loop {
        // Wait for the next request while watching the stop and down flags.
        let _ = reader.get_ref().set_read_timeout(Some(POLL));
        loop {
            if shared.stop.load(Ordering::SeqCst) || shared.is_down() {
                return;
            }
            match reader.fill_buf() {
                Ok([]) => return,
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
        let _ = reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT));
        let req = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        // A request that arrived while the thread was waiting, after the server went
        // down, is not answered: a stopped node answers nothing.
        if shared.is_down() {
            return;
        }
        match handle(&shared, req) {
            Reply::Respond {
                status,
                body,
                head_only,
            } => {
                if http::write_response(&mut writer, status, &body, head_only).is_err() {
                    return;
                }
            }
            Reply::Drop => {
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

enum Reply {
    Respond {
        status: u16,
        body: Vec<u8>,
        head_only: bool,
    },
    Drop,
}

fn json_reply(status: u16, v: &Value) -> Reply {
    Reply::Respond {
        status,
        body: serde_json::to_vec(v).unwrap_or_default(),
        head_only: false,
    }
}

fn error_reply(status: u16, kind: &str, reason: &str) -> Reply {
    json_reply(
        status,
        &json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status}),
    )
}

fn handle(shared: &Shared, req: http::Request) -> Reply {
    let auth = req.header("authorization").unwrap_or("").to_owned();
    {
        let mut inner = shared.lock();
        inner.stats.requests += 1;
        inner.stats.authorization_seen.insert(auth.clone());
        if let Some(expected) = &shared.auth
            && *expected != auth
        {
            inner.stats.unauthorized += 1;
            drop(inner);
            return error_reply(
                401,
                "security_exception",
                "missing or wrong authentication credentials for REST request",
            );
        }
    }
    let head = req.method == "HEAD";
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let reply = match (req.method.as_str(), segments.as_slice()) {
        ("GET" | "HEAD", []) => json_reply(
            200,
            &json!({
                "name": "pf-bulk-test-server",
                "cluster_name": "pf-bulk-test-server",
                "version": {"number": "9.1.0", "build_flavor": "protocol-test-server"},
                "tagline": "A protocol test server for the _bulk API, not Elasticsearch",
            }),
        ),
        ("POST" | "PUT", ["_bulk"]) => bulk_request(shared, &req, None),
        ("POST" | "PUT", [index, "_bulk"]) => bulk_request(shared, &req, Some(index)),
        ("PUT" | "POST", ["_index_template", name]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if !body.is_object() {
                return error_reply(400, "parse_exception", "request body is required");
            }
            shared.lock().templates.insert((*name).to_owned(), body);
            json_reply(200, &json!({"acknowledged": true}))
        }
        ("GET" | "HEAD", ["_index_template", name]) => {
            let inner = shared.lock();
            match inner.templates.get(*name) {
                Some(t) => json_reply(
                    200,
                    &json!({"index_templates": [{"name": name, "index_template": t}]}),
                ),
                None => error_reply(
                    404,
                    "resource_not_found_exception",
                    &format!("index template matching [{name}] not found"),
                ),
            }
        }
        ("POST" | "GET", ["_refresh"] | [_, "_refresh"]) => json_reply(
            200,
            &json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}),
        ),
        ("GET" | "POST", [index, "_count"]) => {
            let inner = shared.lock();
            json_reply(200, &json!({"count": count_matching(&inner, index)}))
        }
        ("GET", [index, "_doc", id]) => {
            let inner = shared.lock();
            match inner.indices.get(*index).and_then(|i| i.docs.get(*id)) {
                Some(d) => {
                    let source: Value = d
                        .source
                        .as_deref()
                        .and_then(|s| serde_json::from_slice(s).ok())
                        .unwrap_or(Value::Null);
                    json_reply(
                        200,
                        &json!({"_index": index, "_id": id, "_version": d.writes, "found": true, "_source": source}),
                    )
                }
                None => json_reply(404, &json!({"_index": index, "_id": id, "found": false})),
            }
        }
        ("PUT", [index]) if !index.starts_with('_') => {
            let mut inner = shared.lock();
            if inner.indices.contains_key(*index) {
                drop(inner);
                error_reply(
                    400,
                    "resource_already_exists_exception",
                    &format!("index [{index}] already exists"),
                )
            } else {
                let settings = if req.body.is_empty() {
                    json!({})
                } else {
                    match serde_json::from_slice::<Value>(&req.body) {
                        Ok(v) => v,
                        Err(e) => {
                            drop(inner);
                            return error_reply(400, "parse_exception", &e.to_string());
                        }
                    }
                };
                inner.indices.insert(
                    (*index).to_owned(),
                    Index {
                        docs: HashMap::new(),
                        settings: Some(settings),
                    },
                );
                json_reply(
                    200,
                    &json!({"acknowledged": true, "shards_acknowledged": true, "index": index}),
                )
            }
        }
        ("GET" | "HEAD", [index]) if !index.starts_with('_') => {
            let inner = shared.lock();
            match inner.indices.get(*index) {
                Some(i) => json_reply(
                    200,
                    &json!({ *index: i.settings.clone().unwrap_or(json!({})) }),
                ),
                None => error_reply(
                    404,
                    "index_not_found_exception",
                    &format!("no such index [{index}]"),
                ),
            }
        }
        _ => error_reply(
            405,
            "illegal_argument_exception",
            &format!("no handler for {} {}", req.method, req.path),
        ),
    };
    match reply {
        Reply::Respond { status, body, .. } if head => Reply::Respond {
            status,
            body,
            head_only: true,
        },
        r => r,
    }
}

/// Counts a `_bulk` request as in flight until dropped.
struct BulkInFlight<'a>(&'a Shared);

impl Drop for BulkInFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.bulk_in_flight = inner.bulk_in_flight.saturating_sub(1);
    }
}

fn bulk_request(shared: &Shared, req: &http::Request, default_index: Option<&str>) -> Reply {
    let started = Instant::now();
    let _in_flight = BulkInFlight(shared);
    let (delay, fail, drop_conn) = {
        let mut inner = shared.lock();
        inner.bulk_in_flight += 1;
        inner.stats.max_bulk_in_flight = inner.stats.max_bulk_in_flight.max(inner.bulk_in_flight);
        inner.stats.bulk_requests += 1;
        if req.is_gzip() {
            inner.stats.gzip_bulk_requests += 1;
        }
        if let Some(fp) = req.query("filter_path") {
            inner.stats.filter_paths.insert(fp.to_owned());
        }
        let f = &mut inner.faults;
        let drop_conn = f.drop_connections > 0;
        let fail = !drop_conn && f.fail_requests > 0;
        if drop_conn {
            f.drop_connections -= 1;
            inner.stats.connections_dropped += 1;
        } else if fail {
            f.fail_requests -= 1;
            inner.stats.requests_failed += 1;
        }
        (inner.faults.delay, fail, drop_conn)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    if drop_conn {
        return Reply::Drop;
    }
    if fail {
        return error_reply(
            503,
            "unavailable_shards_exception",
            "injected by the test server: primary shard is not active",
        );
    }
    let body = if req.is_gzip() {
        let mut out = Vec::new();
        let mut dec = flate2::read::MultiGzDecoder::new(req.body.as_slice());
        if let Err(e) = dec.read_to_end(&mut out) {
            return error_reply(400, "parse_exception", &format!("bad gzip body: {e}"));
        }
        out
    } else {
        req.body.clone()
    };
    let mut inner = shared.lock();
    match bulk::apply(&mut inner, shared.keep_sources, default_index, &body) {
        Ok(mut response) => {
            drop(inner);
            if let bulk::Node::Obj(fields) = &mut response {
                fields[0].1 = bulk::Node::Num(started.elapsed().as_millis() as u64);
            }
            let response = match req.query("filter_path") {
                Some(fp) => bulk::filter_path(response, fp),
                None => response,
            };
            let mut body = Vec::with_capacity(64 * 1024);
            response.write(&mut body);
            Reply::Respond {
                status: 200,
                body,
                head_only: false,
            }
        }
        Err((kind, reason)) => {
            drop(inner);
            error_reply(400, kind, &reason)
        }
    }
}
