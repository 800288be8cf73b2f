//! Sliding-window rule state in Valkey, shared by every worker of a deployment.
//!
//! The cost model (server work per event, events/s per node, nodes for a fleet) is in
//! `DESIGN.md` beside this crate.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use arrow::array::Array;
use arrow::buffer::BooleanBuffer;
use pf_error::{PfError, Result};
use pf_traits::{WindowAlert, WindowOutcome, WindowRequest, WindowStore};
use redis::Script;

use crate::ValkeyConfig;
use crate::connection::ValkeyPool;

/// Slot groups per rule: a key's state lives under the hash tag `{<rule>:<group>}`, so
/// one script call touches one hash slot (a Valkey Cluster requirement) and a batch is
/// at most this many calls, all sent in one pipeline (one round trip to one node).
pub const SLOT_GROUPS: u64 = 64;

/// Events per script call at most: a larger group is split into several calls, run in
/// order, so no single call blocks the server for long (and its keys fit one `MGET`
/// from Lua, whose stack takes about 8 000 arguments).
const EVENTS_PER_CALL: usize = 4096;

/// The semantics of `pf_rules::window`, per event, atomically, over a compact state per
/// key: one string holding, msgpack-encoded, `{newest, uris, T, U, R, alerted}` — the
/// event times `T` (sorted), the source uri index `U` and row `R` of each event, and the
/// times whose alert was raised. A call costs one MGET, and each key one SET, whatever
/// its number of events; each event a few binary searches in Lua.
///
/// Every alert the call raises is also appended, in the same script (so atomically with
/// the state that marks it raised), to the list of the item's undelivered alerts, one
/// element `t_end,count,row,late,key length,` + key + uri each.
///
/// KEYS: the state of each key of the call, then the item's undelivered-alert list (in
/// the same hash slot). ARGV: 1 window µs, 2 lateness µs, 3 min count, 4 ttl ms, 5 max
/// events per key, 6 uri, 7 the length of the state keys' prefix (before the key
/// itself), then for each key: its event count n, then n × (time µs, row), in batch
/// order. Returns {row flags as '0'/'1' in argument order, late count, {key index, t_end,
/// count, uri, row, late}…}.
const OBSERVE: &str = r#"
local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2]); local MIN = tonumber(ARGV[3])
local TTL = ARGV[4]; local MAXE = tonumber(ARGV[5]); local URI = ARGV[6]
local PREFIX = tonumber(ARGV[7]); local NK = #KEYS - 1; local PENDING = KEYS[#KEYS]
local flags, alerts, late, a = {}, {}, 0, 8
local floor = math.floor
-- First index i in 1..n+1 with T[i] > x (upper) or T[i] >= x (lower).
local function upper(T, n, x)
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if T[mid] <= x then lo = mid + 1 else hi = mid end
  end
  return lo
end
local function lower(T, n, x)
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if T[mid] < x then lo = mid + 1 else hi = mid end
  end
  return lo
end
-- Calls f(i, tau, count) for every distinct time tau in [t, t + W] (the windows an
-- event at t is in): i is the first event at tau, count the events in [tau - W, tau].
local function each_window(T, n, t, f)
  local i, last = lower(T, n, t), upper(T, n, t + W) - 1
  while i <= last do
    local tau, k = T[i], i
    while k < last and T[k + 1] == tau do k = k + 1 end
    f(i, tau, k + 1 - lower(T, n, tau - W))
    i = k + 1
  end
end
-- Adds the alert of the window ending at tau to the reply; j is an event at tau.
local function push_alert(ki, uris, U, R, tau, count, j, is_late)
  local m = #alerts
  alerts[m + 1] = ki; alerts[m + 2] = tau; alerts[m + 3] = count
  alerts[m + 4] = uris[U[j]]; alerts[m + 5] = R[j]; alerts[m + 6] = is_late
end
-- Raises the alert for `tau` unless the key's `done` list has it.
local function alert(ki, done, uris, U, R, tau, count, j, is_late)
  for d = 1, #done do if done[d] == tau then return end end
  done[#done + 1] = tau
  push_alert(ki, uris, U, R, tau, count, j, is_late)
end
local blobs = redis.call('MGET', unpack(KEYS, 1, NK))
for ki = 1, NK do
  local nw, uris, T, U, R, done
  if blobs[ki] then
    local s = cmsgpack.unpack(blobs[ki])
    nw, uris, T, U, R, done = s[1], s[2], s[3], s[4], s[5], s[6]
  else
    nw, uris, T, U, R, done = false, {}, {}, {}, {}, {}
  end
  -- This call's uri index, found (or added) when first needed.
  local ui = false
  for i = 1, #uris do if uris[i] == URI then ui = i end end
  local n, again = #T, {}
  local events = tonumber(ARGV[a]); a = a + 1
  for _ = 1, events do
    local t = tonumber(ARGV[a]); local row = tonumber(ARGV[a + 1]); a = a + 2
    local f = '0'
    if nw and t < nw - W - L then
      late = late + 1
    else
      local pos = upper(T, n, t)
      local j, replay = pos - 1, false
      while ui and j >= 1 and T[j] == t do
        if U[j] == ui and R[j] == row then replay = true; break end
        j = j - 1
      end
      if replay then
        -- A re-processed record: not counted again. The alerts of the windows holding
        -- it are raised again (once per call), since their first raise may have been
        -- lost with a crashed worker; alert ids are deterministic, so a destination
        -- keyed by them absorbs the repeat.
        if pos - lower(T, n, t - W) >= MIN then f = '1' end
        each_window(T, n, t, function(i, tau, count)
          if count >= MIN and not again[tau] then
            again[tau] = true
            push_alert(ki, uris, U, R, tau, count, i, tau == t and 0 or 1)
          end
        end)
      else
        if not ui then ui = #uris + 1; uris[ui] = URI end
        if pos > n then
          n = n + 1; T[n] = t; U[n] = ui; R[n] = row
        else
          table.insert(T, pos, t); table.insert(U, pos, ui); table.insert(R, pos, row)
          n = n + 1
        end
        if (not nw) or t > nw then
          -- The common case, a new newest event: only its own window can change.
          nw = t
          local count = n - lower(T, n, t - W) + 1
          if count >= MIN then f = '1'; alert(ki, done, uris, U, R, t, count, n, 0) end
        else
          -- Not the newest: re-check every distinct time whose window it is in.
          each_window(T, n, t, function(i, tau, count)
            if count >= MIN then
              if tau == t then f = '1' end
              alert(ki, done, uris, U, R, tau, count, i, tau == t and 0 or 1)
            end
          end)
        end
      end
    end
    flags[#flags + 1] = f
  end
  -- Drop what no window can reach any more (older than newest − window − lateness: an
  -- event arriving within the lateness never looks below that), cap the events per
  -- key (oldest first), forget unused uris, and store with a fresh TTL.
  if nw then
    local horizon = nw - W - L
    local first = lower(T, n, horizon)
    if MAXE > 0 and n - first + 1 > MAXE then first = n - MAXE + 1 end
    if first > 1 then
      local T2, U2, R2, uris2, remap = {}, {}, {}, {}, {}
      for i = first, n do
        local u = U[i]
        if not remap[u] then remap[u] = #uris2 + 1; uris2[#uris2 + 1] = uris[u] end
        local m = i - first + 1
        T2[m] = T[i]; U2[m] = remap[u]; R2[m] = R[i]
      end
      T, U, R, uris = T2, U2, R2, uris2
    end
    local stale = false
    for d = 1, #done do if done[d] < horizon then stale = true end end
    if stale then
      local keep = {}
      for d = 1, #done do if done[d] >= horizon then keep[#keep + 1] = done[d] end end
      done = keep
    end
    redis.call('SET', KEYS[ki], cmsgpack.pack({nw, uris, T, U, R, done}), 'PX', TTL)
  end
end
if #alerts > 0 then
  local held = {}
  for m = 1, #alerts, 6 do
    local key = string.sub(KEYS[alerts[m]], PREFIX + 1)
    held[#held + 1] = string.format('%.0f,%.0f,%.0f,%.0f,%.0f,', alerts[m + 1], alerts[m + 2],
      alerts[m + 4], alerts[m + 5], #key) .. key .. alerts[m + 3]
  end
  redis.call('RPUSH', PENDING, unpack(held))
  redis.call('PEXPIRE', PENDING, TTL)
end
return {table.concat(flags), late, alerts}
"#;

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
/// raised once (the alerted times are checked and set in the same script as the event).
///
/// Keys: `<prefix>win:{<rule>:<group>}:<key>`, one string per rule and key holding its
/// compact state, expiring `ttl` after its last event; `<group>` is a stable hash of the
/// key modulo [`SLOT_GROUPS`]. A batch costs one pipeline (one round trip) per rule, of
/// at most [`SLOT_GROUPS`] script calls, each within one hash slot.
///
/// Alerts raised and not yet delivered: `<prefix>winheld:{<rule>:<group>}:<item>`, a list
/// per slot group and work item, appended by the script that raises them and deleted
/// once the worker has flushed them ([`WindowStore::delivered`]); a worker taking the
/// item over reads them back ([`WindowStore::undelivered`]).
pub struct ValkeyWindowStore {
    pool: ValkeyPool,
    script: Script,
    options: ValkeyWindowOptions,
    /// Per item: the undelivered-alert lists this process has appended to (or read back)
    /// since the item's last delivery.
    held: Mutex<HashMap<String, HashSet<String>>>,
}

impl std::fmt::Debug for ValkeyWindowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyWindowStore")
            .field("connection", self.pool.config())
            .field("options", &self.options)
            .finish()
    }
}

impl ValkeyWindowStore {
    /// Connects and checks the server answers.
    pub fn connect(connection: &ValkeyConfig, options: ValkeyWindowOptions) -> Result<Self> {
        let pool = ValkeyPool::new(connection)?;
        pool.run("ping", |c| redis::cmd("PING").query::<String>(c))?;
        Ok(ValkeyWindowStore {
            pool,
            script: Script::new(OBSERVE),
            options,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn state_prefix(&self, rule: &str, group: u64) -> String {
        format!("{}win:{{{rule}:{group}}}:", self.pool.config().key_prefix)
    }

    fn held_key(&self, rule: &str, group: u64, item: &str) -> String {
        format!(
            "{}winheld:{{{rule}:{group}}}:{item}",
            self.pool.config().key_prefix
        )
    }

    /// Runs the script calls `commands` in one pipeline and returns their replies in
    /// order. A call answered with an error is sent again (and only it): on `NOSCRIPT`
    /// (first use, or a restart emptied the script cache) once the script is loaded, on
    /// a transient error by the pool's retry. A call that ran is never sent twice, even
    /// when another worker loads the script while this pipeline is half run, so each
    /// alert is raised once. Only a reply lost with the connection can make a call run
    /// twice; the script treats that as a replay (events not counted again). The second
    /// value is true when the pipeline was sent again after such a failure: a call may
    /// then have run unseen, and its alerts are only in the item's held lists.
    fn run_calls(&self, commands: &[redis::Cmd]) -> Result<(Vec<WindowReply>, bool)> {
        let mut replies: Vec<Option<WindowReply>> = vec![None; commands.len()];
        let mut sends = 0u32;
        self.pool.run("window observe", |con| {
            sends += 1;
            let mut loads = 0;
            loop {
                let pending: Vec<usize> = (0..commands.len())
                    .filter(|&i| replies[i].is_none())
                    .collect();
                if pending.is_empty() {
                    return Ok(());
                }
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for &i in &pending {
                    pipe.add_command(commands[i].clone());
                }
                let results: Vec<redis::RedisResult<WindowReply>> = pipe.query(con)?;
                let mut missing_script = false;
                let mut failure = None;
                for (i, result) in pending.into_iter().zip(results) {
                    match result {
                        Ok(reply) => replies[i] = Some(reply),
                        Err(e)
                            if e.kind()
                                == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                        {
                            missing_script = true;
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                if missing_script {
                    // Bounded: a cache emptied again and again (SCRIPT FLUSH in a loop)
                    // ends as an error, not a spin.
                    loads += 1;
                    if loads > 8 {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Server(redis::ServerErrorKind::NoScript),
                            "the window script was unloaded again after each of 8 loads",
                        )));
                    }
                    self.script.load(con)?;
                }
            }
        })?;
        Ok((replies.into_iter().flatten().collect(), sends > 1))
    }

    /// The alerts in the held lists `keys`, and which of those lists hold any.
    fn read_held(
        &self,
        operation: &'static str,
        keys: Vec<String>,
    ) -> std::result::Result<(Vec<WindowAlert>, Vec<String>), PfError> {
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("LRANGE").arg(k).arg(0).arg(-1);
        }
        let lists: Vec<Vec<Vec<u8>>> = self.pool.run(operation, |con| pipe.query(con))?;
        let mut alerts = Vec::new();
        let mut found = Vec::new();
        for (key, list) in keys.into_iter().zip(lists) {
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

/// One element of an undelivered-alert list (see [`OBSERVE`]); `None` if malformed.
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

/// The reply of one script call: row flags, late count, raised alerts (see [`OBSERVE`]).
type WindowReply = (String, u64, Vec<redis::Value>);

/// One script call: the keys of one slot group and their events in batch order.
#[derive(Default)]
struct Call<'k> {
    keys: Vec<&'k str>,
    index: HashMap<&'k str, usize>,
    /// Per key (same order as `keys`): (time µs, row ordinal, batch row).
    events: Vec<Vec<(i64, u64, usize)>>,
    len: usize,
}

impl<'k> Call<'k> {
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
        self.len += 1;
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
        // Per slot group, the calls in order (a group past EVENTS_PER_CALL gets another).
        let mut groups: HashMap<u64, Vec<Call<'_>>> = HashMap::new();
        for row in 0..rows {
            if request.keys.is_null(row) || request.times.is_null(row) {
                continue;
            }
            let key = request.keys.value(row);
            let calls = groups.entry(slot_group(key)).or_default();
            if calls.last().is_none_or(|c| c.len >= EVENTS_PER_CALL) {
                calls.push(Call::default());
            }
            if let Some(call) = calls.last_mut() {
                call.push(
                    key,
                    (request.times.value(row), request.meta.ordinal(row), row),
                );
            }
        }
        let mut fired = vec![false; rows];
        let mut alerts = Vec::new();
        let mut late_dropped = 0u64;
        if groups.is_empty() {
            return Ok(WindowOutcome {
                fired: BooleanBuffer::from(fired),
                alerts,
                late_dropped,
            });
        }
        let calls: Vec<(u64, Call<'_>)> = groups
            .into_iter()
            .flat_map(|(g, calls)| calls.into_iter().map(move |c| (g, c)))
            .collect();
        let o = self.pool.config();
        let window_us = i64::try_from(request.seconds)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        let lateness_us = i64::try_from(self.options.allowed_lateness.as_micros()).unwrap_or(0);
        let ttl_ms = o.ttl_secs.max(1).saturating_mul(1000);
        let commands: Vec<redis::Cmd> = calls
            .iter()
            .map(|(group, call)| {
                let prefix = self.state_prefix(request.rule, *group);
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.script.get_hash()).arg(call.keys.len() + 1);
                for k in &call.keys {
                    cmd.arg(format!("{prefix}{k}"));
                }
                cmd.arg(self.held_key(request.rule, *group, request.meta.item))
                    .arg(window_us)
                    .arg(lateness_us)
                    .arg(request.min_count)
                    .arg(ttl_ms)
                    .arg(self.options.max_events_per_key)
                    .arg(request.meta.uri)
                    .arg(prefix.len());
                for events in &call.events {
                    cmd.arg(events.len());
                    for &(t, ordinal, _) in events {
                        cmd.arg(t).arg(ordinal);
                    }
                }
                cmd
            })
            .collect();
        let (replies, resent) = self.run_calls(&commands)?;
        self.hold(
            request.meta.item,
            calls
                .iter()
                .zip(&replies)
                .filter(|(_, (_, _, raised))| !raised.is_empty())
                .map(|((group, _), _)| self.held_key(request.rule, *group, request.meta.item)),
        );
        for ((_, call), (flags, late, raised)) in calls.iter().zip(replies) {
            late_dropped += late;
            let rows_in_order = call.events.iter().flatten().map(|e| e.2);
            for (row, f) in rows_in_order.zip(flags.bytes()) {
                fired[row] = f == b'1';
            }
            for a in raised.chunks(6) {
                let [ki, tau, count, uri, row, is_late] = a else {
                    continue;
                };
                let num = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).unwrap_or(0);
                let key = usize::try_from(num(ki))
                    .ok()
                    .and_then(|i| call.keys.get(i.wrapping_sub(1)))
                    .copied()
                    .unwrap_or_default();
                alerts.push(WindowAlert {
                    key: key.to_owned(),
                    window_end: num(tau),
                    count: u32::try_from(num(count)).unwrap_or(u32::MAX),
                    uri: redis::from_redis_value_ref(uri).unwrap_or_default(),
                    row: u64::try_from(num(row)).unwrap_or(0),
                    late: num(is_late) != 0,
                });
            }
        }
        if resent {
            // A call may have run before its reply was lost with the connection. Sent
            // again, it is a replay, which raises again only the alerts whose events are
            // still within the lateness bound of the key's newest event — and that
            // newest event now includes this whole batch. Every alert the first run
            // raised was recorded with it in the item's held lists, so take them from
            // there (a repeat of one already returned is absorbed by its key).
            let keys: BTreeSet<String> = calls
                .iter()
                .map(|(group, _)| self.held_key(request.rule, *group, request.meta.item))
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
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("DEL").arg(k).ignore();
        }
        let result = self
            .pool
            .run("release delivered alerts", |con| pipe.query::<()>(con));
        if result.is_err() {
            // Still held: the next delivery retries (at worst a takeover sends them again).
            self.hold(item, keys);
        }
        result
    }
}
