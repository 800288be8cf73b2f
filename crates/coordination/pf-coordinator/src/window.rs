//! Sliding-window rule state in Valkey, shared by every worker of a deployment.

use std::collections::HashMap;
use std::time::Duration;

use arrow::array::Array;
use arrow::buffer::BooleanBuffer;
use pf_error::{PfError, Result};
use pf_traits::{WindowAlert, WindowOutcome, WindowRequest, WindowStore};
use redis::Script;

use crate::ValkeyConfig;
use crate::connection::ValkeyPool;

/// Events per script call: a batch of 65,536 rows becomes 16 calls sent in one pipeline
/// (one round trip), and no single call blocks the server for long.
const EVENTS_PER_CALL: usize = 4096;

/// The semantics of `pf_rules::window`, per event, atomically. KEYS: one sorted set per
/// distinct key in the call (member `row|uri`, score = time µs); `<key>:a` holds the
/// times whose alert was raised. ARGV: 1 window µs, 2 lateness µs, 3 min count, 4 ttl s,
/// 5 uri, 6 max events per key, then (key index, time µs, row) per event.
/// Returns {row flags as '0'/'1', late count, {key index, t_end, count, member, late}…}.
const OBSERVE: &str = r#"
local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2]); local MIN = tonumber(ARGV[3])
local ttl = ARGV[4]; local uri = ARGV[5]; local MAXE = tonumber(ARGV[6])
local function fmt(x) return string.format('%.0f', x) end
local fired, alerts, late, newest = {}, {}, 0, {}
local function alert(ki, tau, count, member, is_late)
  if redis.call('ZADD', KEYS[ki] .. ':a', 'NX', fmt(tau), fmt(tau)) == 1 then
    table.insert(alerts, ki); table.insert(alerts, fmt(tau))
    table.insert(alerts, count); table.insert(alerts, member)
    table.insert(alerts, is_late)
  end
end
local n = (#ARGV - 6) / 3
for i = 0, n - 1 do
  local ki = tonumber(ARGV[7 + 3 * i]); local t = tonumber(ARGV[8 + 3 * i])
  local row = ARGV[9 + 3 * i]
  local z = KEYS[ki]
  local nw = newest[ki]
  if nw == nil then
    local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
    nw = top[2] and tonumber(top[2]) or false
  end
  local f = '0'
  if nw and t < nw - W - L then
    late = late + 1
  else
    local member = row .. '|' .. uri
    if redis.call('ZADD', z, 'NX', fmt(t), member) == 0 then
      -- A replay (re-processed file): not counted again, nothing raised.
      if redis.call('ZCOUNT', z, fmt(t - W), fmt(t)) >= MIN then f = '1' end
    elseif (not nw) or t > nw then
      -- The common case, a new newest event: only its own window can change.
      nw = t
      local count = redis.call('ZCOUNT', z, fmt(t - W), fmt(t))
      if count >= MIN then
        f = '1'
        alert(ki, t, count, member, 0)
      end
    else
      -- Not the newest: re-check every distinct time whose window it is in.
      local ev = redis.call('ZRANGEBYSCORE', z, fmt(t), fmt(t + W), 'WITHSCORES')
      local j = 1
      while j <= #ev do
        local tau = tonumber(ev[j + 1])
        local k = j + 2
        while k <= #ev and tonumber(ev[k + 1]) == tau do k = k + 2 end
        local count = redis.call('ZCOUNT', z, fmt(tau - W), fmt(tau))
        if count >= MIN then
          if tau == t then f = '1' end
          alert(ki, tau, count, ev[j], tau == t and 0 or 1)
        end
        j = k
      end
    end
  end
  newest[ki] = nw
  fired[#fired + 1] = f
end
-- Once per key: drop what no window can reach any more (older than newest − window −
-- lateness; an event arriving within the lateness never looks below that), cap the
-- events per key, and refresh the TTL.
for ki = 1, #KEYS do
  local nw = newest[ki]
  if nw then
    local horizon = '(' .. fmt(nw - W - L)
    redis.call('ZREMRANGEBYSCORE', KEYS[ki], '-inf', horizon)
    redis.call('ZREMRANGEBYSCORE', KEYS[ki] .. ':a', '-inf', horizon)
    if MAXE > 0 and redis.call('ZCARD', KEYS[ki]) > MAXE then
      redis.call('ZREMRANGEBYRANK', KEYS[ki], 0, -(MAXE + 1))
    end
  end
  redis.call('EXPIRE', KEYS[ki], ttl)
  redis.call('EXPIRE', KEYS[ki] .. ':a', ttl)
end
return {table.concat(fired), late, alerts}
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
/// raised once (the `:a` set is checked and set in the same script as the event).
///
/// Keys: `<prefix>win:<rule>:<key>` (sorted set of events, member `row|uri`, score the
/// time in µs) and `<prefix>win:<rule>:<key>:a` (times already alerted); both expire
/// `ttl` after their last event. One pipeline (one round trip) per batch and rule.
/// Keys are built inside the script from the declared ones, so the store needs a single
/// Valkey node (no cluster).
pub struct ValkeyWindowStore {
    pool: ValkeyPool,
    script: Script,
    options: ValkeyWindowOptions,
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
        })
    }
}

/// One script call's worth of events.
struct Call<'k> {
    keys: Vec<&'k str>,
    index: HashMap<&'k str, usize>,
    /// (key index 1-based, time, row ordinal, batch row)
    events: Vec<(usize, i64, u64, usize)>,
}

impl WindowStore for ValkeyWindowStore {
    fn observe(&self, request: &WindowRequest<'_>) -> std::result::Result<WindowOutcome, PfError> {
        let rows = request.keys.len();
        if request.times.len() != rows {
            return Err(PfError::Schema {
                location: request.meta.uri.to_owned(),
                message: format!(
                    "window rule `{}`: {} keys but {} times",
                    request.rule,
                    rows,
                    request.times.len()
                ),
            });
        }
        let mut calls: Vec<Call<'_>> = Vec::new();
        for row in 0..rows {
            if request.keys.is_null(row) || request.times.is_null(row) {
                continue;
            }
            if calls
                .last()
                .is_none_or(|c| c.events.len() >= EVENTS_PER_CALL)
            {
                calls.push(Call {
                    keys: Vec::new(),
                    index: HashMap::new(),
                    events: Vec::new(),
                });
            }
            let Some(call) = calls.last_mut() else {
                continue;
            };
            let key = request.keys.value(row);
            let next = call.keys.len() + 1;
            let ki = *call.index.entry(key).or_insert(next);
            if ki == next {
                call.keys.push(key);
            }
            call.events
                .push((ki, request.times.value(row), request.meta.ordinal(row), row));
        }
        let mut fired = vec![false; rows];
        let mut alerts = Vec::new();
        let mut late_dropped = 0u64;
        if calls.is_empty() {
            return Ok(WindowOutcome {
                fired: BooleanBuffer::from(fired),
                alerts,
                late_dropped,
            });
        }
        let o = self.pool.config();
        let key_base = format!("{}win:{}:", o.key_prefix, request.rule);
        let window_us = i64::try_from(request.seconds)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        let lateness_us = i64::try_from(self.options.allowed_lateness.as_micros()).unwrap_or(0);
        let ttl = o.ttl_secs.max(1);
        let hash = self.script.get_hash().to_owned();
        let build = |load: bool| {
            let mut pipe = redis::pipe();
            if load {
                pipe.cmd("SCRIPT").arg("LOAD").arg(OBSERVE).ignore();
            }
            for call in &calls {
                let cmd = pipe.cmd("EVALSHA").arg(&hash).arg(call.keys.len());
                for k in &call.keys {
                    cmd.arg(format!("{key_base}{k}"));
                }
                cmd.arg(window_us)
                    .arg(lateness_us)
                    .arg(request.min_count)
                    .arg(ttl)
                    .arg(request.meta.uri)
                    .arg(self.options.max_events_per_key);
                for &(ki, t, ord, _) in &call.events {
                    cmd.arg(ki).arg(t).arg(ord);
                }
            }
            pipe
        };
        let fast = build(false);
        let with_load = build(true);
        type Reply = (String, u64, Vec<redis::Value>);
        let replies: Vec<Reply> = self.pool.run("window observe", |con| {
            match fast.query::<Vec<Reply>>(con) {
                // First use on this server (or after a restart emptied its script
                // cache): load the script in the same pipeline and run again.
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    with_load.query(con)
                }
                r => r,
            }
        })?;
        for (call, (flags, late, raised)) in calls.iter().zip(replies) {
            late_dropped += late;
            for (&(_, _, _, row), f) in call.events.iter().zip(flags.bytes()) {
                fired[row] = f == b'1';
            }
            for a in raised.chunks(5) {
                let [ki, tau, count, member, is_late] = a else {
                    continue;
                };
                let num = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).unwrap_or(0);
                let member: String = redis::from_redis_value_ref(member).unwrap_or_default();
                let (row, uri) = member.split_once('|').unwrap_or(("0", ""));
                let key = usize::try_from(num(ki))
                    .ok()
                    .and_then(|i| call.keys.get(i.wrapping_sub(1)))
                    .copied()
                    .unwrap_or_default();
                alerts.push(WindowAlert {
                    key: key.to_owned(),
                    window_end: num(tau),
                    count: u32::try_from(num(count)).unwrap_or(u32::MAX),
                    uri: uri.to_owned(),
                    row: row.parse().unwrap_or(0),
                    late: num(is_late) != 0,
                });
            }
        }
        Ok(WindowOutcome {
            fired: BooleanBuffer::from(fired),
            alerts,
            late_dropped,
        })
    }
}
