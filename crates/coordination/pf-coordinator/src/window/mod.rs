//! Sliding-window rule state in Valkey, shared by every worker of a deployment.
//!
//! The cost model (server work per event, events/s per node, nodes for a fleet) is in
//! `DESIGN.md` beside this crate.

mod routing;
mod state;

#[doc(hidden)]
pub use state::fuzz_stored_state;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::array::Array;
use arrow::buffer::BooleanBuffer;
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{WindowAlert, WindowOutcome, WindowRequest, WindowStore};
use redis::Value;

use crate::ValkeyConfig;
use crate::connection::ValkeyPool;
use routing::Routing;
use state::{KeyWindow, Observed, Params};

/// Slot groups per rule: the states of a rule's keys live in one hash per group, under
/// the hash tag `{<rule>:<group>}`, so one transaction touches one hash slot (a Valkey
/// Cluster requirement) and a batch is at most this many transactions.
pub const SLOT_GROUPS: u64 = 64;

/// Transactions of one slot group that found its hash changed by another worker, in
/// a row, before a batch gives up (as a transient error: the batch is retried).
const MAX_CONFLICTS: u32 = 100;

/// Times a batch reads the cluster's slots again after a `MOVED` or `ASK` answer before
/// it fails (as transient: a slot migration still under way).
const MAX_REDIRECTS: u32 = 5;

/// How long a call waits for one unreachable node of a Valkey Cluster before the store
/// reads the slots again (from any node that answers): after a kill or a crash the
/// cluster promotes the node's replica, and only the new slot map leads there. The
/// store keeps trying, node and map in turn, until `outage_limit_secs`.
const NODE_PATIENCE: Duration = Duration::from_secs(2);

/// Counter: window transactions aborted because another worker changed the slot
/// group's states between their read and their write (each is read and applied again).
pub const WINDOW_CONFLICTS: &str = "paraflow_window_conflicts_total";

/// Limits of a [`ValkeyWindowStore`]; the same meaning as `pf_rules::MemoryWindowOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValkeyWindowOptions {
    /// How far behind the newest event of its key an event may arrive and still count.
    pub allowed_lateness: Duration,
    /// Events kept per key (the oldest go first); guards against one hot key.
    pub max_events_per_key: usize,
}

impl Default for ValkeyWindowOptions {
    fn default() -> Self {
        ValkeyWindowOptions {
            allowed_lateness: Duration::from_secs(300),
            max_events_per_key: 10_000,
        }
    }
}

/// A [`WindowStore`] in Valkey: every worker sees every other worker's events, so the
/// set of `(rule, key, t_end)` alerts is the one a single worker would raise, each
/// raised once (the alerted times are part of the key's state, which changes only
/// through a transaction that fails if another worker changed it first).
///
/// State: `<prefix>windows:{<rule>:<group>}`, one hash per rule and slot group (a stable
/// hash of the key modulo [`SLOT_GROUPS`]), a field per key holding its compact state and
/// expiring `ttl` after the key's last event (hash field expiry: Valkey ≥ 9.0). The
/// worker applies the events: per slot group a batch costs `WATCH` + `HMGET`, then
/// `MULTI` / `HSETEX` / `EXEC`; when `EXEC` finds the hash changed by another worker,
/// the group is read and applied again. Consecutive groups share a round trip (the
/// next group's read goes with this group's write), so a batch costs about one round
/// trip per group touched.
///
/// On a Valkey Cluster (the configured server reports `cluster_enabled:1`), each
/// group's transaction goes to the primary owning its hash slot (`CLUSTER SLOTS`), the
/// nodes of one batch in parallel; a `MOVED` or `ASK` answer (slots moved since), or a
/// node unreachable for 2 s (its replica may be taking over), makes the
/// store read the slots again, from any node that answers, and send the groups not yet
/// done to their node by the new map.
///
/// Alerts raised and not yet delivered: `<prefix>winheld:{<rule>:<group>}:<item>`, a list
/// per slot group and work item, appended in the transaction that raises them and
/// deleted once the worker has flushed them ([`WindowStore::delivered`]); a worker
/// taking the item over reads them back ([`WindowStore::undelivered`]).
pub struct ValkeyWindowStore {
    config: ValkeyConfig,
    routing: RwLock<Arc<Routing>>,
    options: ValkeyWindowOptions,
    /// Per item: the undelivered-alert lists this process has appended to (or read back)
    /// since the item's last delivery.
    held: Mutex<HashMap<String, HashSet<String>>>,
    /// Transactions refused so far because another worker changed their slot group.
    conflicts: AtomicU64,
}

impl std::fmt::Debug for ValkeyWindowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyWindowStore")
            .field("connection", &self.config)
            .field("options", &self.options)
            .finish()
    }
}

impl ValkeyWindowStore {
    /// Connects (to every primary, on a cluster), and checks that the servers answer and
    /// know `HSETEX` (hash field expiry, which the per-key state needs: Valkey ≥ 9.0).
    pub fn connect(connection: &ValkeyConfig, options: ValkeyWindowOptions) -> Result<Self> {
        let routing = Routing::discover(connection)?;
        for node in routing.nodes() {
            let known: Vec<Value> = node.run("check the server's commands", |c| {
                redis::cmd("COMMAND").arg("INFO").arg("HSETEX").query(c)
            })?;
            if known.first().is_none_or(|v| *v == Value::Nil) {
                return Err(PfError::config(
                    "coordinator.valkey.windows",
                    format!(
                        "shared windows need hash field expiry (HSETEX, Valkey 9.0 or later), \
                         which the server at {} lacks: upgrade it, or set `windows: local` \
                         (exact only when each key's events are in one file)",
                        node.target()
                    ),
                ));
            }
        }
        Ok(ValkeyWindowStore {
            config: connection.clone(),
            routing: RwLock::new(Arc::new(routing)),
            options,
            held: Mutex::new(HashMap::new()),
            conflicts: AtomicU64::new(0),
        })
    }

    fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the cluster's slots again (from any node that answers), after a node
    /// answered that a slot moved or could not be reached.
    fn refresh_routing(&self) -> Result<()> {
        let limit = self.node_patience();
        let routing = Arc::new(self.routing().rediscover(&self.config, limit)?);
        *self.routing.write().unwrap_or_else(|p| p.into_inner()) = routing;
        Ok(())
    }

    /// How long one call waits for an unreachable node: on a cluster only
    /// [`NODE_PATIENCE`], since another node may hold its slots by now.
    fn node_limit(&self, routing: &Routing) -> Duration {
        if routing.is_cluster() {
            self.node_patience()
        } else {
            self.config.outage_limit()
        }
    }

    /// [`NODE_PATIENCE`], or the whole outage limit when that is shorter.
    fn node_patience(&self) -> Duration {
        NODE_PATIENCE.min(self.config.outage_limit())
    }

    /// Whether a call that failed with `error` on a cluster, `started` ago, goes on
    /// with the slots read again: a transient failure (a node down, `CLUSTERDOWN`
    /// while its replica takes over) within `outage_limit_secs`.
    fn reroute(&self, routing: &Routing, error: &PfError, started: Instant) -> bool {
        if !routing.is_cluster()
            || !error.is_transient()
            || started.elapsed() >= self.config.outage_limit()
        {
            return false;
        }
        tracing::warn!(target: "valkey", %error, "a Valkey Cluster node failed; reading the slots again");
        if let Err(e) = self.refresh_routing() {
            tracing::warn!(target: "valkey", error = %e, "cannot read the Valkey Cluster's slots yet");
        }
        true
    }

    /// Runs `call` with the current slot map and its per-node wait; on a cluster, a
    /// transient failure reads the slots again and runs it again (see
    /// [`reroute`](Self::reroute)). `call` must be safe to repeat.
    fn rerouted<T>(&self, mut call: impl FnMut(&Routing, Duration) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        loop {
            let routing = self.routing();
            match call(&routing, self.node_limit(&routing)) {
                Err(e) if self.reroute(&routing, &e, started) => {}
                result => return result,
            }
        }
    }

    /// Transactions refused so far because another worker changed their slot group
    /// between the read and the write (each was read and applied again).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    fn states_key(&self, rule: &str, group: u64) -> String {
        format!("{}windows:{{{rule}:{group}}}", self.config.key_prefix)
    }

    fn held_key(&self, rule: &str, group: u64, item: &str) -> String {
        format!(
            "{}winheld:{{{rule}:{group}}}:{item}",
            self.config.key_prefix
        )
    }

    /// Applies every group's events in its own transaction (see the type's docs) and
    /// returns what each did, in order: each node's groups in parallel, and after a
    /// `MOVED` or `ASK` answer, once the slots are read again, the groups not yet done.
    /// The second value is true when a transaction may have been applied with its reply
    /// lost (see [`transact`](Self::transact)).
    fn apply(
        &self,
        request: &WindowRequest<'_>,
        groups: &[Group<'_>],
    ) -> Result<(Vec<GroupOutcome>, bool)> {
        let job = Job {
            request,
            groups,
            params: Params {
                window: i64::try_from(request.seconds)
                    .unwrap_or(i64::MAX / 2_000_000)
                    .saturating_mul(1_000_000),
                lateness: i64::try_from(self.options.allowed_lateness.as_micros()).unwrap_or(0),
                min_count: request.min_count as usize,
                max_events: self.options.max_events_per_key,
            },
            ttl_ms: self.config.ttl_secs.max(1).saturating_mul(1000),
            hashes: groups
                .iter()
                .map(|g| self.states_key(request.rule, g.id))
                .collect(),
            held: groups
                .iter()
                .map(|g| self.held_key(request.rule, g.id, request.meta.item))
                .collect(),
        };
        let mut done: Vec<Option<GroupOutcome>> = groups.iter().map(|_| None).collect();
        let mut resent = false;
        let mut redirects = 0;
        let started = Instant::now();
        loop {
            let routing = self.routing();
            let limit = self.node_limit(&routing);
            let pending = (0..done.len()).filter(|&g| done[g].is_none());
            let work: Vec<(&ValkeyPool, Vec<usize>)> =
                by_node(&routing, pending, |&g| routing.node_index(&job.hashes[g]))
                    .map(|(pool, picks)| (pool.as_ref(), picks))
                    .collect();
            let runs: Vec<NodeRun> = match work.as_slice() {
                [] => Vec::new(),
                [(pool, picks)] => vec![self.transact(pool, limit, &job, picks)],
                _ => std::thread::scope(|s| {
                    let job = &job;
                    let threads: Vec<_> = work
                        .iter()
                        .map(|(pool, picks)| {
                            s.spawn(move || self.transact(pool, limit, job, picks))
                        })
                        .collect();
                    threads
                        .into_iter()
                        .map(|t| {
                            t.join().unwrap_or_else(|_| NodeRun {
                                done: Vec::new(),
                                resent: false,
                                moved: false,
                                conflicted: false,
                                result: Err(PfError::Service {
                                    service: "valkey",
                                    operation: "window observe".to_owned(),
                                    class: ErrorClass::Transient,
                                    message: "a window transaction thread panicked".to_owned(),
                                }),
                            })
                        })
                        .collect()
                }),
            };
            let mut failure = None;
            let (mut moved, mut conflicted) = (false, false);
            for run in runs {
                for (g, outcome) in run.done {
                    done[g] = Some(outcome);
                }
                resent |= run.resent;
                moved |= run.moved;
                conflicted |= run.conflicted;
                if let Err(e) = run.result {
                    failure.get_or_insert(e);
                }
            }
            match failure {
                None => break,
                Some(_) if moved && redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    // A group whose transaction may have run is then a replay.
                    resent = true;
                    self.refresh_routing()?;
                }
                // A node that cannot be reached: its replica may be taking over.
                Some(e) if !moved && !conflicted && self.reroute(&routing, &e, started) => {
                    resent = true;
                }
                Some(e) => return Err(e),
            }
        }
        Ok((done.into_iter().flatten().collect(), resent))
    }

    /// Runs the transactions of the groups `picks` on one node. Two connections take
    /// turns, so the server runs one group's write and the next group's read while the
    /// worker applies another group's events. A transient error is retried by the pool
    /// with new connections, for the groups not yet done; `resent` then says that a
    /// transaction may have been applied with its reply lost, its alerts only in the
    /// item's held lists. `moved` says the node answered that a slot is elsewhere.
    fn transact(
        &self,
        pool: &ValkeyPool,
        limit: Duration,
        job: &Job<'_, '_>,
        picks: &[usize],
    ) -> NodeRun {
        let Job {
            request,
            groups,
            params,
            ttl_ms,
            ref hashes,
            ref held,
        } = *job;
        let read = |out: &mut Vec<u8>, i: usize| {
            resp(out, &[b"WATCH", hashes[i].as_bytes()], NONE);
            let keys = groups[i].keys.iter().map(|k| k.as_bytes());
            resp(
                out,
                &[b"HMGET", hashes[i].as_bytes()],
                (groups[i].keys.len(), keys),
            );
        };
        let mut done: Vec<Option<GroupOutcome>> = groups.iter().map(|_| None).collect();
        let mut conflicts = vec![0u32; groups.len()];
        let mut sends = 0u32;
        let mut moved = false;
        let mut gave_up = None;
        let result = pool.run_pair("window observe", limit, |a, b| {
            sends += 1;
            let mut lanes_run = || -> redis::RedisResult<()> {
                let mut queue: VecDeque<usize> = picks
                    .iter()
                    .copied()
                    .filter(|&i| done[i].is_none())
                    .collect();
                let mut lanes = [Lane::new(a), Lane::new(b)];
                let mut turn = 0;
                while !queue.is_empty() || lanes.iter().any(Lane::busy) {
                    let lane = &mut lanes[turn];
                    turn = 1 - turn;
                    if let Some((g, outcome, replies)) = lane.writing.take() {
                        let mut exec = Value::Nil;
                        for _ in 0..replies {
                            exec = lane.con.recv_response()?.extract_error()?;
                        }
                        match exec {
                            Value::Array(results) => {
                                for r in results {
                                    r.extract_error()?;
                                }
                                done[g] = Some(outcome);
                            }
                            Value::Nil => {
                                // Another worker changed the group between the read and the
                                // write: read and apply it again.
                                metrics::counter!(WINDOW_CONFLICTS).increment(1);
                                self.conflicts.fetch_add(1, Ordering::Relaxed);
                                conflicts[g] += 1;
                                if conflicts[g] > MAX_CONFLICTS {
                                    // An error, not a reply, so that both connections
                                    // (replies still under way, a WATCH open) are
                                    // dropped rather than given back to the pool.
                                    gave_up = Some(groups[g].id);
                                    return Err(redis::RedisError::from((
                                        redis::ErrorKind::Client,
                                        "a slot group kept changing",
                                    )));
                                }
                                queue.push_back(g);
                            }
                            other => return Err(unexpected("EXEC", &other)),
                        }
                    }
                    let mut out = Vec::new();
                    if let Some(g) = lane.reading.take() {
                        lane.con.recv_response()?.extract_error()?; // WATCH
                        let states = hmget_reply(lane.con.recv_response()?.extract_error()?)?;
                        let (outcome, writes) = groups[g].apply(states, request.meta.uri, &params);
                        let mut replies = 2;
                        resp(&mut out, &[b"MULTI"], NONE);
                        if !writes.is_empty() {
                            let ttl = ttl_ms.to_string();
                            let count = writes.len().to_string();
                            let head = [
                                b"HSETEX".as_slice(),
                                hashes[g].as_bytes(),
                                b"PX",
                                ttl.as_bytes(),
                                b"FIELDS",
                                count.as_bytes(),
                            ];
                            let fields = writes
                                .iter()
                                .flat_map(|(k, state)| [k.as_bytes(), state.as_slice()]);
                            resp(&mut out, &head, (2 * writes.len(), fields));
                            replies += 1;
                        }
                        if !outcome.alerts.is_empty() {
                            let elements: Vec<Vec<u8>> =
                                outcome.alerts.iter().map(held_element).collect();
                            let list = (elements.len(), elements.iter().map(Vec::as_slice));
                            resp(&mut out, &[b"RPUSH", held[g].as_bytes()], list);
                            let ttl = ttl_ms.to_string();
                            resp(
                                &mut out,
                                &[b"PEXPIRE", held[g].as_bytes(), ttl.as_bytes()],
                                NONE,
                            );
                            replies += 2;
                        }
                        resp(&mut out, &[b"EXEC"], NONE);
                        lane.writing = Some((g, outcome, replies));
                    }
                    if let Some(next) = queue.pop_front() {
                        read(&mut out, next);
                        lane.reading = Some(next);
                    }
                    if !out.is_empty() {
                        lane.con.send_packed_command(&out)?;
                    }
                }
                Ok(())
            };
            let r = lanes_run();
            if let Err(e) = &r {
                moved |= matches!(e.code(), Some("MOVED" | "ASK"));
            }
            r
        });
        let result = match (result, gave_up) {
            (Err(_), Some(group)) => Err(PfError::Service {
                service: "valkey",
                operation: "window observe".to_owned(),
                class: ErrorClass::Transient,
                message: format!(
                    "the window states of rule `{}` slot group {group} were changed by other \
                     workers before each of {MAX_CONFLICTS} writes; the batch will be retried",
                    request.rule
                ),
            }),
            (result, _) => result,
        };
        NodeRun {
            done: done
                .into_iter()
                .enumerate()
                .filter_map(|(g, d)| Some((g, d?)))
                .collect(),
            resent: sends > 1,
            moved,
            conflicted: gave_up.is_some(),
            result,
        }
    }

    /// The alerts in the held lists `keys`, and which of those lists hold any.
    fn read_held(
        &self,
        operation: &'static str,
        keys: Vec<String>,
    ) -> std::result::Result<(Vec<WindowAlert>, Vec<String>), PfError> {
        let lists = self.rerouted(|routing, limit| {
            let mut lists: Vec<(String, Vec<Vec<u8>>)> = Vec::with_capacity(keys.len());
            for (node, keys) in by_node(routing, keys.iter(), |k| routing.node_index(k)) {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("LRANGE").arg(*k).arg(0).arg(-1);
                }
                let got: Vec<Vec<Vec<u8>>> =
                    node.run_within(operation, limit, |con| pipe.query(con))?;
                lists.extend(keys.into_iter().cloned().zip(got));
            }
            Ok(lists)
        })?;
        let mut alerts = Vec::new();
        let mut found = Vec::new();
        for (key, list) in lists {
            if !list.is_empty() {
                found.push(key);
            }
            // A malformed element (written by another version) is skipped: it can
            // only cost an alert a second delivery, never a wrong one.
            alerts.extend(list.iter().filter_map(|e| parse_held(e)));
        }
        Ok((alerts, found))
    }

    fn hold(&self, item: &str, keys: impl IntoIterator<Item = String>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.entry(item.to_owned()).or_default().extend(keys);
    }
}

/// One element of an undelivered-alert list (see [`held_element`]); `None` if malformed.
fn parse_held(element: &[u8]) -> Option<WindowAlert> {
    let mut fields = [0i64; 5];
    let mut rest = element;
    for f in &mut fields {
        let comma = rest.iter().position(|&b| b == b',')?;
        *f = std::str::from_utf8(&rest[..comma]).ok()?.parse().ok()?;
        rest = &rest[comma + 1..];
    }
    let [window_end, count, row, late, key_len] = fields;
    let (key, uri) = rest.split_at_checked(usize::try_from(key_len).ok()?)?;
    Some(WindowAlert {
        key: String::from_utf8(key.to_vec()).ok()?,
        window_end,
        count: u32::try_from(count).ok()?,
        uri: String::from_utf8(uri.to_vec()).ok()?,
        row: u64::try_from(row).ok()?,
        late: late != 0,
    })
}

/// The element of an undelivered-alert list for `a` (read back by [`parse_held`]).
fn held_element(a: &WindowAlert) -> Vec<u8> {
    let mut e = format!(
        "{},{},{},{},{},",
        a.window_end,
        a.count,
        a.row,
        u8::from(a.late),
        a.key.len()
    )
    .into_bytes();
    e.extend_from_slice(a.key.as_bytes());
    e.extend_from_slice(a.uri.as_bytes());
    e
}

/// What every node's transactions of one batch and rule share.
struct Job<'r, 'k> {
    request: &'r WindowRequest<'r>,
    groups: &'r [Group<'k>],
    params: Params,
    ttl_ms: u64,
    /// Per group: its states hash and the item's held-alerts list.
    hashes: Vec<String>,
    held: Vec<String>,
}

/// What [`ValkeyWindowStore::transact`] did on one node.
struct NodeRun {
    /// The groups done (by index) and what they did.
    done: Vec<(usize, GroupOutcome)>,
    /// The pool sent again after an error: a transaction may have run unseen.
    resent: bool,
    /// The node answered `MOVED` or `ASK`: the slots must be read again.
    moved: bool,
    /// A slot group kept changing under other workers: the batch gives up for now.
    conflicted: bool,
    result: Result<()>,
}

/// `items` grouped by the index of the node holding each (`node`), in their order.
fn by_node<T>(
    routing: &Routing,
    items: impl IntoIterator<Item = T>,
    node: impl Fn(&T) -> usize,
) -> impl Iterator<Item = (&Arc<ValkeyPool>, Vec<T>)> {
    let mut groups: Vec<Vec<T>> = std::iter::repeat_with(Vec::new)
        .take(routing.nodes().len())
        .collect();
    for item in items {
        groups[node(&item)].push(item);
    }
    routing
        .nodes()
        .iter()
        .zip(groups)
        .filter(|(_, keys)| !keys.is_empty())
}

/// One of the two connections of [`ValkeyWindowStore::transact`], with what it has sent
/// and not yet read back.
struct Lane<'c> {
    con: &'c mut redis::Connection,
    /// The group whose `WATCH` and `HMGET` are under way.
    reading: Option<usize>,
    /// The group whose transaction is under way, its outcome if it succeeds, and the
    /// replies to read (the last is `EXEC`'s).
    writing: Option<(usize, GroupOutcome, usize)>,
}

impl<'c> Lane<'c> {
    fn new(con: &'c mut redis::Connection) -> Self {
        Lane {
            con,
            reading: None,
            writing: None,
        }
    }

    fn busy(&self) -> bool {
        self.reading.is_some() || self.writing.is_some()
    }
}

/// Appends one command, in the protocol's encoding, to `out`: the arguments `head`,
/// then the `tail_len` arguments `tail`.
fn resp<'a>(
    out: &mut Vec<u8>,
    head: &[&'a [u8]],
    (tail_len, tail): (usize, impl IntoIterator<Item = &'a [u8]>),
) {
    out.extend_from_slice(format!("*{}\r\n", head.len() + tail_len).as_bytes());
    for a in head.iter().copied().chain(tail) {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// No further arguments, for [`resp`].
const NONE: (usize, [&[u8]; 0]) = (0, []);

/// A reply this store cannot read: a server it was not built for, so not retried.
fn unexpected(command: &'static str, reply: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "unexpected reply",
        format!("{command}: {reply:?}"),
    ))
}

/// The fields of an `HMGET` reply: a state per key, `None` for a key without one.
fn hmget_reply(reply: Value) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
    match reply {
        Value::Array(fields) => Ok(fields
            .into_iter()
            .map(|f| match f {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect()),
        other => Err(unexpected("HMGET", &other)),
    }
}

/// One slot group's share of a batch: its distinct keys in order of first appearance,
/// each with its events in batch order.
struct Group<'k> {
    id: u64,
    keys: Vec<&'k str>,
    index: HashMap<&'k str, usize>,
    /// Per key (same order as `keys`): (time µs, row ordinal, batch row).
    events: Vec<Vec<(i64, u64, usize)>>,
}

/// What a group's events did once applied.
struct GroupOutcome {
    /// (batch row, flag) per event.
    fired: Vec<(usize, bool)>,
    alerts: Vec<WindowAlert>,
    late: u64,
}

impl<'k> Group<'k> {
    fn new(id: u64) -> Self {
        Group {
            id,
            keys: Vec::new(),
            index: HashMap::new(),
            events: Vec::new(),
        }
    }

    fn push(&mut self, key: &'k str, event: (i64, u64, usize)) {
        let next = self.keys.len();
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.keys.push(key);
            self.events.push(Vec::new());
        }
        if let Some(list) = self.events.get_mut(i) {
            list.push(event);
        }
    }

    /// Applies the events to the keys' `states` (as read, one per key) and returns what
    /// they did with the states to write back.
    fn apply(
        &self,
        states: Vec<Option<Vec<u8>>>,
        uri: &str,
        params: &Params,
    ) -> (GroupOutcome, Vec<(&'k str, Vec<u8>)>) {
        let mut outcome = GroupOutcome {
            fired: Vec::with_capacity(self.events.iter().map(Vec::len).sum()),
            alerts: Vec::new(),
            late: 0,
        };
        let mut writes = Vec::with_capacity(self.keys.len());
        let mut again = Vec::new();
        let states = states.into_iter().chain(std::iter::repeat(None));
        for ((&key, events), state) in self.keys.iter().zip(&self.events).zip(states) {
            let mut window = state.as_deref().map(KeyWindow::decode).unwrap_or_default();
            again.clear();
            for &(t, row, batch_row) in events {
                match window.observe((key, uri, t, row), params, &mut again, &mut outcome.alerts) {
                    Observed::Late => {
                        outcome.late += 1;
                        outcome.fired.push((batch_row, false));
                    }
                    Observed::Event { fired } => outcome.fired.push((batch_row, fired)),
                }
            }
            if window.is_live() {
                window.trim(params);
                writes.push((key, window.encode()));
            }
        }
        (outcome, writes)
    }
}

/// The slot group of a key: stable across processes and versions (every worker must
/// agree on where a key lives).
fn slot_group(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % SLOT_GROUPS
}

impl WindowStore for ValkeyWindowStore {
    fn observe(&self, request: &WindowRequest<'_>) -> std::result::Result<WindowOutcome, PfError> {
        let rows = request.rows()?;
        let mut by_id: HashMap<u64, Group<'_>> = HashMap::new();
        for row in 0..rows {
            if request.keys.is_null(row) || request.times.is_null(row) {
                continue;
            }
            let key = request.keys.value(row);
            let id = slot_group(key);
            by_id.entry(id).or_insert_with(|| Group::new(id)).push(
                key,
                (request.times.value(row), request.meta.ordinal(row), row),
            );
        }
        let mut fired = vec![false; rows];
        let mut alerts = Vec::new();
        let mut late_dropped = 0u64;
        if by_id.is_empty() {
            return Ok(WindowOutcome {
                fired: BooleanBuffer::from(fired),
                alerts,
                late_dropped,
            });
        }
        let mut groups: Vec<Group<'_>> = by_id.into_values().collect();
        groups.sort_unstable_by_key(|g| g.id);
        let (outcomes, resent) = self.apply(request, &groups)?;
        self.hold(
            request.meta.item,
            groups
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| !o.alerts.is_empty())
                .map(|(g, _)| self.held_key(request.rule, g.id, request.meta.item)),
        );
        for outcome in outcomes {
            late_dropped += outcome.late;
            for (row, f) in outcome.fired {
                fired[row] = f;
            }
            alerts.extend(outcome.alerts);
        }
        if resent {
            // A transaction may have been applied before its reply was lost with the
            // connection. Applied again, its events are replays, which raises again only the alerts whose events are
            // still within the lateness bound of the key's newest event — and that
            // newest event now includes this whole batch. Every alert the first run
            // raised was recorded with it in the item's held lists, so take them from
            // there (a repeat of one already returned is absorbed by its key).
            let keys: BTreeSet<String> = groups
                .iter()
                .map(|g| self.held_key(request.rule, g.id, request.meta.item))
                .collect();
            let (held, found) =
                self.read_held("read alerts of a resent batch", keys.into_iter().collect())?;
            self.hold(request.meta.item, found);
            let returned: HashSet<(String, i64)> = alerts
                .iter()
                .map(|a| (a.key.clone(), a.window_end))
                .collect();
            alerts.extend(
                held.into_iter()
                    .filter(|a| !returned.contains(&(a.key.clone(), a.window_end))),
            );
        }
        Ok(WindowOutcome {
            fired: BooleanBuffer::from(fired),
            alerts,
            late_dropped,
        })
    }

    fn undelivered(
        &self,
        rule: &str,
        item: &str,
    ) -> std::result::Result<Vec<WindowAlert>, PfError> {
        let keys: Vec<String> = (0..SLOT_GROUPS)
            .map(|g| self.held_key(rule, g, item))
            .collect();
        let (alerts, found) = self.read_held("read undelivered alerts", keys)?;
        // Sent again by this process: held until its own delivery.
        self.hold(item, found);
        Ok(alerts)
    }

    fn delivered(&self, item: &str) -> std::result::Result<(), PfError> {
        let keys = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            match held.remove(item) {
                Some(keys) if !keys.is_empty() => keys,
                _ => return Ok(()),
            }
        };
        let result = self.rerouted(|routing, limit| {
            by_node(routing, keys.iter(), |k| routing.node_index(k)).try_for_each(|(node, keys)| {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("DEL").arg(*k).ignore();
                }
                node.run_within("release delivered alerts", limit, |con| {
                    pipe.query::<()>(con)
                })
            })
        });
        if result.is_err() {
            // Still held: the next delivery retries (at worst a takeover sends them again).
            self.hold(item, keys);
        }
        result
    }
}
