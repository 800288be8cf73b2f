//! The in-process [`WindowStore`]: sharded by key hash, one lock per shard per batch.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::Array;
use arrow::buffer::BooleanBuffer;
use pf_error::PfError;

use super::{WindowAlert, WindowOutcome, WindowRequest, WindowStore};

/// Limits of a [`MemoryWindowStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryWindowOptions {
    /// Lock shards per rule (at least 1). More shards, less contention between threads.
    pub shards: usize,
    /// Keys kept per rule; beyond it the least recently used keys are dropped (see the
    /// [module docs](crate::window)). A key costs about 100 bytes (one cache line of
    /// window state with one event, plus its text), and 24 bytes per event beyond one.
    pub max_keys: usize,
    /// How far behind the newest event of its key an event may arrive and still count.
    pub allowed_lateness: Duration,
    /// Events kept per key (the oldest go first); guards against one hot key.
    pub max_events_per_key: usize,
}

impl Default for MemoryWindowOptions {
    fn default() -> Self {
        MemoryWindowOptions {
            shards: 64,
            max_keys: 1_000_000,
            allowed_lateness: Duration::from_secs(300),
            max_events_per_key: 10_000,
        }
    }
}

/// Sizes of a [`MemoryWindowStore`], for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStoreStats {
    /// Keys held, over all rules.
    pub keys: usize,
    /// Events held, over all rules.
    pub events: usize,
    /// Keys dropped by the `max_keys` cap so far.
    pub evicted_keys: u64,
    /// Distinct source URIs referred to by the stored events (per shard).
    pub sources: usize,
}

/// In-process window state with the semantics of the [module docs](crate::window).
///
/// Per rule, keys are spread over [`MemoryWindowOptions::shards`] shards by a hash of the
/// key; a batch takes each shard's lock once and processes that shard's rows in batch
/// order, so threads working on different keys rarely wait for each other.
///
/// Keys are identified by their 128-bit xxh3 hash (their text is kept only to name
/// alerts); the chance that two keys collide is negligible (below 10⁻²⁰ for a billion
/// keys). A key with at most one event in reach costs one 64-byte cache line plus its
/// text; events beyond that 24 bytes each; event sources are stored once per file.
#[derive(Debug, Default)]
pub struct MemoryWindowStore {
    options: MemoryWindowOptions,
    rules: RwLock<HashMap<String, Arc<RuleState>>>,
    /// When the state-size gauges were last set (ms since the Unix epoch).
    size_sampled_ms: AtomicU64,
}

/// Gauge: keys held by the in-process window store, over all rules.
pub const WINDOW_KEYS: &str = "paraflow_window_keys";
/// Gauge: events held by the in-process window store, over all rules.
pub const WINDOW_EVENTS: &str = "paraflow_window_events";

/// How often the state-size gauges are refreshed: [`MemoryWindowStore::stats`] visits
/// every shard, too much for every batch.
const STATE_SIZE_PERIOD: Duration = Duration::from_secs(1);

impl MemoryWindowStore {
    /// A store with the default limits.
    pub fn new() -> Self {
        Self::with_options(MemoryWindowOptions::default())
    }

    /// A store with these limits.
    pub fn with_options(options: MemoryWindowOptions) -> Self {
        MemoryWindowStore {
            options: MemoryWindowOptions {
                shards: options.shards.max(1),
                max_keys: options.max_keys.max(1),
                max_events_per_key: options.max_events_per_key.max(1),
                ..options
            },
            rules: RwLock::default(),
            size_sampled_ms: AtomicU64::new(0),
        }
    }

    /// Sets the state-size gauges, at most once per [`STATE_SIZE_PERIOD`] over all threads.
    fn sample_state_size(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.size_sampled_ms.load(Ordering::Relaxed);
        if now < last.saturating_add(STATE_SIZE_PERIOD.as_millis() as u64)
            || self
                .size_sampled_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stats = self.stats();
        metrics::gauge!(WINDOW_KEYS).set(stats.keys as f64);
        metrics::gauge!(WINDOW_EVENTS).set(stats.events as f64);
    }

    /// Current sizes.
    pub fn stats(&self) -> WindowStoreStats {
        let rules: Vec<Arc<RuleState>> = read(&self.rules).values().cloned().collect();
        let mut stats = WindowStoreStats::default();
        for rule in rules {
            for shard in rule.shards.iter() {
                let shard = lock(shard);
                stats.keys += shard.map.len();
                stats.events += shard.events;
                stats.evicted_keys += shard.evicted;
                stats.sources += shard.sources.len();
            }
        }
        stats
    }

    fn rule(&self, name: &str) -> Arc<RuleState> {
        if let Some(r) = read(&self.rules).get(name) {
            return r.clone();
        }
        let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
        rules
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(RuleState {
                    shards: (0..self.options.shards)
                        .map(|_| Mutex::new(Shard::default()))
                        .collect(),
                })
            })
            .clone()
    }
}

/// A panic while holding a lock leaves consistent data (every update is a single
/// push/pop), so poisoning is ignored rather than spreading the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct RuleState {
    shards: Box<[Mutex<Shard>]>,
}

/// A key's identity: its 128-bit xxh3 hash. Two different keys sharing one would share
/// a window; the odds (about n² / 2¹²⁹ for n keys, below 10⁻²⁰ for a billion keys) are
/// far below those of a hardware fault, and in exchange no key text is touched on the
/// hot path. Two `u64`s rather than a `u128` keep it 8-byte aligned, so a map entry
/// (id and [`KeyState`]) is exactly one 64-byte cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct KeyId(u64, u64);

impl std::hash::Hash for KeyId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The low half; the high half chose the shard.
        state.write_u64(self.0);
    }
}

fn key_id(key: &str) -> KeyId {
    let h = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    KeyId(h as u64, (h >> 64) as u64)
}

fn shard_of(id: KeyId, shards: usize) -> usize {
    ((u128::from(id.1) * shards as u128) >> 64) as usize
}

/// The map hasher: ids are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `KeyId`s are hashed (through `write_u64`); this keeps the type total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<KeyId, V, BuildHasherDefault<PassThrough>>;

#[derive(Debug, Default)]
struct Shard {
    map: IdMap<KeyState>,
    /// Key text by id, read only to name alerts.
    names: IdMap<Box<str>>,
    sources: Sources,
    /// Batches that have touched this shard: the clock of least-recently-used eviction.
    tick: u32,
    events: usize,
    evicted: u64,
}

/// The source URIs of the stored events, each kept once with a count of the events that
/// refer to it, so an event costs a 4-byte id instead of a string.
#[derive(Debug, Default)]
struct Sources {
    slots: Vec<(Option<Arc<str>>, u32)>,
    free: Vec<u32>,
    index: HashMap<Arc<str>, u32>,
}

impl Sources {
    fn id(&mut self, uri: &str) -> u32 {
        if let Some(&id) = self.index.get(uri) {
            return id;
        }
        let uri: Arc<str> = Arc::from(uri);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push((None, 0));
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = (Some(uri.clone()), 0);
        }
        self.index.insert(uri, id);
        id
    }

    fn retain(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.1 += 1;
        }
    }

    fn release(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                self.forget(id);
            }
        }
    }

    /// Drops `id` if no event refers to it.
    fn forget(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize)
            && slot.1 == 0
            && let Some(uri) = slot.0.take()
        {
            self.index.remove(&uri);
            self.free.push(id);
        }
    }

    fn uri(&self, id: u32) -> &str {
        self.slots
            .get(id as usize)
            .and_then(|s| s.0.as_deref())
            .unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Event {
    t: i64,
    row: u64,
    /// The source URI, as an id in the shard's [`Sources`].
    src: u32,
    /// On the first event of each distinct time: its alert has been raised.
    alerted: bool,
}

/// More than one event of a key, sorted by time (equal times in arrival order): a
/// vector whose start moves on eviction and is compacted now and then.
#[derive(Debug)]
struct Spill {
    buf: Vec<Event>,
    start: usize,
}

/// A key's window state. Most keys hold at most one event within window + lateness, so
/// one event is kept in line and only busier keys spill to the heap; with the id that
/// makes one cache line per key on the hot path.
#[derive(Debug)]
struct KeyState {
    /// Latest event time ever seen for the key (kept when its events are evicted).
    newest: i64,
    /// The shard's tick when last touched (wrapping).
    touched: u32,
    /// Events held in line (0 or 1) while not spilled.
    inline: u32,
    first: Event,
    spill: Option<Box<Spill>>,
}

/// Calls `f(first event at tau, tau, count)` for every distinct event time `tau` in
/// `[t, t + window]` (the windows an event at `t` is in), `count` being the events in
/// `[tau − window, tau]`. `events` are in time order.
fn each_window_holding(
    events: &mut [Event],
    t: i64,
    p: &Params,
    mut f: impl FnMut(&mut Event, i64, usize),
) {
    let until = t.saturating_add(p.window);
    let mut i = events.partition_point(|e| e.t < t);
    while i < events.len() && events[i].t <= until {
        let tau = events[i].t;
        let next = i + events[i..].partition_point(|e| e.t <= tau);
        let from = tau.saturating_sub(p.window);
        let count = next - events.partition_point(|e| e.t < from);
        f(&mut events[i], tau, count);
        i = next;
    }
}

/// The alert of the window ending at `at` (an event of key `id`), raised while
/// processing an event at `t` (late when `t` is not `at`'s time).
fn window_alert(
    (names, id): (&IdMap<Box<str>>, KeyId),
    sources: &Sources,
    at: &Event,
    count: usize,
    t: i64,
) -> WindowAlert {
    WindowAlert {
        key: names.get(&id).map_or_else(String::new, |n| n.to_string()),
        window_end: at.t,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        uri: sources.uri(at.src).to_owned(),
        row: at.row,
        late: at.t != t,
    }
}

/// Window parameters of one request, in µs.
struct Params {
    window: i64,
    lateness: i64,
    min_count: usize,
    max_events: usize,
}

enum Observed {
    Late,
    Event { fired: bool },
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            newest: i64::MIN,
            touched: 0,
            inline: 0,
            first: Event::default(),
            spill: None,
        }
    }

    fn events(&self) -> &[Event] {
        match &self.spill {
            Some(s) => s.buf.get(s.start..).unwrap_or_default(),
            None if self.inline > 0 => std::slice::from_ref(&self.first),
            None => &[],
        }
    }

    fn events_mut(&mut self) -> &mut [Event] {
        match &mut self.spill {
            Some(s) => s.buf.get_mut(s.start..).unwrap_or_default(),
            None if self.inline > 0 => std::slice::from_mut(&mut self.first),
            None => &mut [],
        }
    }

    fn insert_event(&mut self, at: usize, e: Event) {
        match &mut self.spill {
            Some(s) => {
                if s.start > 0 && s.buf.len() == s.buf.capacity() && s.start * 4 >= s.buf.len() {
                    // Reuse the evicted front instead of growing, so a key's buffer
                    // follows its live events: a long lateness keeps every key spilled,
                    // and grown buffers made 40,000 keys 13% slower and 20 MB larger.
                    // At least a quarter is evicted, so the move stays amortized O(1).
                    s.buf.drain(..s.start);
                    s.start = 0;
                }
                let at = (s.start + at).min(s.buf.len());
                s.buf.insert(at, e);
            }
            None if self.inline == 0 => {
                self.first = e;
                self.inline = 1;
            }
            None => {
                let mut buf = Vec::with_capacity(8);
                buf.push(self.first);
                buf.insert(at.min(1), e);
                self.spill = Some(Box::new(Spill { buf, start: 0 }));
                self.inline = 0;
            }
        }
    }

    fn pop_event(&mut self) -> Option<Event> {
        let Some(s) = &mut self.spill else {
            if self.inline == 0 {
                return None;
            }
            self.inline = 0;
            return Some(self.first);
        };
        let e = *s.buf.get(s.start)?;
        s.start += 1;
        let live = s.buf.len() - s.start;
        if live <= 1 {
            // Back in line.
            let last = s.buf.last().copied();
            self.spill = None;
            if let (1, Some(last)) = (live, last) {
                self.first = last;
                self.inline = 1;
            }
        } else if s.start >= 64 && s.start * 2 >= s.buf.len() {
            // Compact now and then, so evicting from the front stays amortized O(1).
            s.buf.drain(..s.start);
            s.start = 0;
        }
        Some(e)
    }

    fn horizon(&self, p: &Params) -> i64 {
        self.newest
            .saturating_sub(p.window)
            .saturating_sub(p.lateness)
    }

    /// Adds one event, raising the alerts it completes; returns the row's flag. `delta`
    /// gets the change in stored events. The key's text (looked up only for alerts) is
    /// `names[id]`.
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        (names, id): (&IdMap<Box<str>>, KeyId),
        t: i64,
        src: u32,
        row: u64,
        p: &Params,
        sources: &mut Sources,
        alerts: &mut Vec<WindowAlert>,
        delta: &mut isize,
    ) -> Observed {
        if self.newest != i64::MIN && t < self.horizon(p) {
            return Observed::Late;
        }
        let events = self.events();
        let lo = events.partition_point(|e| e.t < t);
        let hi = lo + events[lo..].partition_point(|e| e.t <= t);
        if events[lo..hi].iter().any(|e| e.row == row && e.src == src) {
            let from = t.saturating_sub(p.window);
            let fired = hi - events.partition_point(|e| e.t < from) >= p.min_count;
            let key = names.get(&id).map_or("", |n| n.as_ref());
            each_window_holding(self.events_mut(), t, p, |e, tau, count| {
                let raised = alerts.iter().any(|a| a.window_end == tau && a.key == key);
                if count >= p.min_count && !raised {
                    alerts.push(window_alert((names, id), sources, e, count, t));
                }
            });
            return Observed::Event { fired };
        }
        // Evict what the new event pushes out of reach before inserting it: a key whose
        // old event expires as a new one arrives then never leaves its in-line slot.
        self.newest = self.newest.max(t);
        let horizon = self.horizon(p);
        let mut evicted = 0;
        while self.events().first().is_some_and(|e| e.t < horizon) {
            self.pop_front(sources);
            evicted += 1;
        }
        let at = hi.saturating_sub(evicted);
        self.insert_event(
            at,
            Event {
                t,
                row,
                src,
                alerted: false,
            },
        );
        sources.retain(src);
        *delta += 1 - evicted as isize;
        while self.events().len() > p.max_events {
            self.pop_front(sources);
            *delta -= 1;
        }
        // Re-check every distinct time the new event can be in the window of: its own
        // and those up to `window` after it (only more than one for late arrivals).
        let mut fired = false;
        each_window_holding(self.events_mut(), t, p, |e, tau, count| {
            let qualifies = count >= p.min_count;
            if tau == t {
                fired = qualifies;
            }
            if qualifies && !e.alerted {
                e.alerted = true;
                alerts.push(window_alert((names, id), sources, e, count, t));
            }
        });
        Observed::Event { fired }
    }

    /// Drops the oldest event, handing its "alert raised" mark to a remaining event of
    /// the same time so the alert is not raised twice.
    fn pop_front(&mut self, sources: &mut Sources) {
        if let Some(old) = self.pop_event() {
            sources.release(old.src);
            if old.alerted
                && let Some(next) = self.events_mut().first_mut()
                && next.t == old.t
            {
                next.alerted = true;
            }
        }
    }
}

impl Shard {
    /// Drops the least recently touched keys until at most `cap · 0.9` remain, so that
    /// the sort is paid once per many new keys.
    fn evict(&mut self, cap: usize) {
        if self.map.len() <= cap {
            return;
        }
        let target = cap - cap / 10;
        let now = self.tick;
        // Oldest first: the largest wrapping distance from now.
        let mut keys: Vec<(u32, KeyId)> = self
            .map
            .iter()
            .map(|(id, k)| (u32::MAX - now.wrapping_sub(k.touched), *id))
            .collect();
        keys.sort_unstable();
        let excess = self.map.len() - target;
        for (_, id) in keys.into_iter().take(excess) {
            if let Some(state) = self.map.remove(&id) {
                self.names.remove(&id);
                self.events -= state.events().len();
                self.evicted += 1;
                for e in state.events() {
                    self.sources.release(e.src);
                }
            }
        }
    }
}

/// One event row of a request, sorted by shard.
#[derive(Debug, Clone, Copy, Default)]
struct Item {
    id: KeyId,
    t: i64,
    row: u32,
}

impl WindowStore for MemoryWindowStore {
    fn observe(&self, request: &WindowRequest<'_>) -> Result<WindowOutcome, PfError> {
        let rows = request.rows()?;
        if u32::try_from(rows).is_err() {
            return Err(PfError::Schema {
                location: request.meta.uri.to_owned(),
                message: format!(
                    "window rule `{}`: a batch of {rows} rows is too large",
                    request.rule
                ),
            });
        }
        let params = Params {
            window: i64::try_from(request.seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000),
            lateness: i64::try_from(self.options.allowed_lateness.as_micros()).unwrap_or(i64::MAX),
            min_count: request.min_count as usize,
            max_events: self.options.max_events_per_key,
        };
        let rule = self.rule(request.rule);
        let shards = rule.shards.len();

        // Counting sort of the event rows by shard, keeping batch order within a shard, with
        // what the shard needs copied alongside, so each shard reads its rows in sequence.
        let mut shard_of_row = vec![u32::MAX; rows];
        let mut ids = vec![KeyId::default(); rows];
        let mut per_shard = vec![0usize; shards + 1];
        for row in 0..rows {
            if request.keys.is_null(row) || request.times.is_null(row) {
                continue;
            }
            let id = key_id(request.keys.value(row));
            let s = shard_of(id, shards);
            ids[row] = id;
            shard_of_row[row] = s as u32;
            per_shard[s + 1] += 1;
        }
        for s in 0..shards {
            per_shard[s + 1] += per_shard[s];
        }
        let mut next = per_shard.clone();
        let mut order = vec![Item::default(); per_shard[shards]];
        for (row, &s) in shard_of_row.iter().enumerate() {
            if s != u32::MAX {
                order[next[s as usize]] = Item {
                    id: ids[row],
                    t: request.times.value(row),
                    row: row as u32,
                };
                next[s as usize] += 1;
            }
        }
        drop(ids);

        let cap = self.options.max_keys.div_ceil(shards).max(1);
        let mut fired = vec![false; rows];
        let mut alerts = Vec::new();
        let mut late_dropped = 0u64;
        for s in 0..shards {
            let rows_here = &order[per_shard[s]..per_shard[s + 1]];
            if rows_here.is_empty() {
                continue;
            }
            let mut guard = lock(&rule.shards[s]);
            let shard = &mut *guard;
            shard.tick = shard.tick.wrapping_add(1);
            let tick = shard.tick;
            let src = shard.sources.id(request.meta.uri);
            // Pinned for the batch: an event of this batch may evict the last stored
            // event of the same uri, and a freed id would be handed to the next uri
            // while the events stored here still carry it (alerts would then name the
            // wrong file, and that file's rows could pass for replays).
            shard.sources.retain(src);
            // Touch every key's state first in a tight loop: the cache misses (state
            // larger than L2 is hit at random) then overlap instead of stalling the
            // per-event work one at a time.
            let mut warm = 0i64;
            for item in rows_here {
                if let Some(k) = shard.map.get(&item.id) {
                    // An entry can straddle two cache lines: touch fields at both ends.
                    warm ^= k.newest ^ i64::from(k.inline) ^ i64::from(k.spill.is_some());
                }
            }
            std::hint::black_box(warm);
            let mut delta = 0isize;
            for item in rows_here {
                let row = item.row as usize;
                let ordinal = request.meta.ordinal(row);
                let state = match shard.map.entry(item.id) {
                    Entry::Occupied(o) => o.into_mut(),
                    Entry::Vacant(v) => {
                        shard.names.insert(item.id, request.keys.value(row).into());
                        v.insert(KeyState::new())
                    }
                };
                state.touched = tick;
                let seen = state.observe(
                    (&shard.names, item.id),
                    item.t,
                    src,
                    ordinal,
                    &params,
                    &mut shard.sources,
                    &mut alerts,
                    &mut delta,
                );
                match seen {
                    Observed::Late => late_dropped += 1,
                    Observed::Event { fired: f } => fired[row] = f,
                }
            }
            shard.sources.release(src);
            shard.events = shard.events.saturating_add_signed(delta);
            shard.evict(cap);
        }
        self.sample_state_size();
        Ok(WindowOutcome {
            fired: BooleanBuffer::from(fired),
            alerts,
            late_dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<(KeyId, KeyState)>(), 64);
        assert_eq!(std::mem::size_of::<Event>(), 24);
    }

    #[test]
    fn a_sliding_key_reuses_its_evicted_front() {
        let mut sources = Sources::default();
        let src = sources.id("u");
        let mut k = KeyState::new();
        let mut model: Vec<i64> = Vec::new();
        for t in 0..10_000_i64 {
            // Every third event arrives late, between the two newest held ones.
            let t = if t % 3 == 2 { t * 10 - 15 } else { t * 10 };
            let at = model.partition_point(|&m| m <= t);
            model.insert(at, t);
            k.insert_event(
                at,
                Event {
                    t,
                    row: t as u64,
                    src,
                    alerted: false,
                },
            );
            sources.retain(src);
            while model.len() > 6 {
                model.remove(0);
                k.pop_front(&mut sources);
            }
            assert_eq!(k.events().iter().map(|e| e.t).collect::<Vec<_>>(), model);
        }
        let capacity = k.spill.as_ref().map_or(0, |s| s.buf.capacity());
        assert!(
            capacity <= 16,
            "the buffer follows the live events: {capacity}"
        );
    }

    #[test]
    fn spilled_events_return_in_line() {
        let mut sources = Sources::default();
        let src = sources.id("u");
        let mut k = KeyState::new();
        for t in 0..5 {
            k.insert_event(
                k.events().len(),
                Event {
                    t,
                    row: t as u64,
                    src,
                    alerted: false,
                },
            );
            sources.retain(src);
        }
        assert!(k.spill.is_some());
        assert_eq!(
            k.events().iter().map(|e| e.t).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        for _ in 0..4 {
            k.pop_front(&mut sources);
        }
        assert!(k.spill.is_none());
        assert_eq!(k.events().iter().map(|e| e.t).collect::<Vec<_>>(), [4]);
        k.pop_front(&mut sources);
        assert!(k.events().is_empty());
        assert_eq!(
            sources.len(),
            0,
            "the source is forgotten with its last event"
        );
        assert!(k.pop_event().is_none());
    }

    /// The last stored event of a file evicted by that file's own next event: the file
    /// keeps its id, so a later file's events neither take over its alerts nor pass for
    /// replays of its rows.
    #[test]
    fn a_file_whose_last_event_is_evicted_by_its_own_batch_keeps_its_uri() {
        use arrow::array::{StringArray, TimestampMicrosecondArray};
        use pf_traits::{BatchMeta, WindowRequest, WindowStore};
        const S: i64 = 1_000_000;
        let store = MemoryWindowStore::with_options(MemoryWindowOptions {
            allowed_lateness: std::time::Duration::from_secs(300),
            ..MemoryWindowOptions::default()
        });
        let observe = |uri: &str, first_row: u64, secs: &[i64]| {
            let keys = StringArray::from(vec!["k"; secs.len()]);
            let times =
                TimestampMicrosecondArray::from(secs.iter().map(|s| s * S).collect::<Vec<_>>());
            let meta = BatchMeta::contiguous(uri, first_row);
            store
                .observe(&WindowRequest {
                    rule: "rapid",
                    keys: &keys,
                    times: &times,
                    seconds: 10,
                    min_count: 3,
                    meta: &meta,
                })
                .unwrap()
        };
        // File A: an event at 0 s, then (past window and lateness) events at 1000 s and
        // 1001 s; the first of those evicts the 0 s event, A's last stored one.
        assert!(observe("a", 0, &[0]).alerts.is_empty());
        assert!(observe("a", 1, &[1000, 1001]).alerts.is_empty());
        // File B, row 1, late at 999 s: the window ending at A's 1001 s event (row 2)
        // now holds three events.
        let o = observe("b", 1, &[999]);
        let alerts: Vec<(&str, u64, i64)> = o
            .alerts
            .iter()
            .map(|a| (a.uri.as_str(), a.row, a.window_end / S))
            .collect();
        assert_eq!(alerts, [("a", 2, 1001)], "the alert names A's row");
        // B's row 1 at 1000 s is a new event, not a replay of A's row 1 at 1000 s: it
        // completes the window ending at 1000 s, whose first event is A's row 1.
        let o = observe("b", 1, &[1000]);
        assert_eq!(o.fired.iter().collect::<Vec<_>>(), [true]);
        assert_eq!(
            o.alerts
                .iter()
                .map(|a| (a.uri.as_str(), a.row, a.window_end / S, a.count))
                .collect::<Vec<_>>(),
            [("a", 1, 1000, 3)]
        );
    }
}
