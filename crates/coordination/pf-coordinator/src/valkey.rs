//! The metadata store over Valkey: every state change is one Lua script.

use std::collections::HashMap;
use std::time::Duration;

use pf_error::{PfError, Result};
use pf_traits::{
    Claim, Completion, ItemProgress, ItemRecord, ItemStatus, JobProgress, JobTotals, MetadataStore,
    NO_JOB,
};
use pf_types::{Checkpoint, FileFailure, FileStats, WorkItem};
use redis::{Script, Value};

use crate::ValkeyConfig;
use crate::connection::ValkeyPool;
use crate::memory::add_rows;

/// Helpers shared by the scripts. `TIME` is the server clock, so heartbeats from
/// workers with skewed clocks compare fairly; numbers are formatted with `%.0f`
/// because Lua's default formatting loses digits beyond 14.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(x) return string.format('%.0f', x) end
-- KEYS: 1 item, 2 job, 3 job processing zset, 4 job failed set, 5 jobs zset
-- ARGV: 1 member, 2 worker, 3 ttl s, 4 job id, 5 uri, 6 etag, 7 size
local function touch(now)
  redis.call('ZADD', KEYS[5], now, ARGV[4])
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  redis.call('EXPIRE', KEYS[5], ARGV[3])
end
local function identity()
  redis.call('HSET', KEYS[1], 'uri', ARGV[5], 'etag', ARGV[6], 'size', ARGV[7], 'job', ARGV[4])
end
-- Whether ARGV[2] holds the item. A missing record means state was lost (a Valkey
-- restart without persistence, or expiry) while this worker still holds the item:
-- re-create it so its progress and completion are not dropped.
local function held(now)
  local st = redis.call('HGET', KEYS[1], 'status')
  if not st then
    identity()
    redis.call('HSET', KEYS[1], 'status', 'processing', 'worker', ARGV[2], 'attempts', 1,
      'started_ms', fmt(now), 'heartbeat_ms', fmt(now))
    redis.call('HSETNX', KEYS[2], 'started_ms', fmt(now))
    return true
  end
  return st == 'processing' and redis.call('HGET', KEYS[1], 'worker') == ARGV[2]
end
-- Whether ARGV[2] already moved the item to `status` (a call replayed after a lost
-- reply): the replay succeeds and changes nothing.
local function done_by(status)
  return redis.call('HGET', KEYS[1], 'status') == status
    and redis.call('HGET', KEYS[1], 'worker') == ARGV[2]
end
"#;

const CLAIM: &str = r#"
local now = now_ms()
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'completed' then return {'completed'} end
if st == 'processing' then
  local holder = redis.call('HGET', KEYS[1], 'worker') or ''
  local hb = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_ms') or '0') or 0
  if holder ~= ARGV[2] and now - hb < tonumber(ARGV[8]) then return {'held', holder} end
end
if st == 'failed' then redis.call('SREM', KEYS[4], ARGV[1]) end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
identity()
redis.call('HSET', KEYS[1], 'status', 'processing', 'worker', ARGV[2],
  'started_ms', fmt(now), 'heartbeat_ms', fmt(now))
redis.call('HDEL', KEYS[1], 'finished_ms')
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('HSETNX', KEYS[2], 'started_ms', fmt(now))
touch(now)
return {'acquired', attempts, redis.call('HGET', KEYS[1], 'cp') or ''}
"#;

// Heartbeat and checkpoint: ARGV 8, when given, is the checkpoint JSON, stored as `cp`;
// a heartbeat passes nothing and leaves `cp` alone.
const HEARTBEAT: &str = r#"
local now = now_ms()
if not held(now) then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat_ms', fmt(now))
if ARGV[8] then redis.call('HSET', KEYS[1], 'cp', ARGV[8]) end
redis.call('ZADD', KEYS[3], now, ARGV[1])
touch(now)
return 1
"#;

// ARGV 8 stats JSON, 9 bytes, 10 rows read, 11 rows indexed, 12 rows failed, 13 ranges
// of the split file ('0' for a whole file), 14 the cut's key, 15 the range's index.
// Counters move only on the processing → completed transition, so a replayed call adds
// nothing; a range is counted once per cut (its marker field) even if its record expired
// and it completed again. Returns 0 when the claim is lost, 2 when the whole file is now
// completed, 1 when other ranges are open (also for a replayed last range: the first call
// counted the file).
const COMPLETE: &str = r#"
local now = now_ms()
if done_by('completed') then return ARGV[13] == '0' and 2 or 1 end
if not held(now) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'completed', 'stats', ARGV[8],
  'heartbeat_ms', fmt(now), 'finished_ms', fmt(now))
redis.call('ZREM', KEYS[3], ARGV[1])
local file = 1
if ARGV[13] ~= '0' then
  file = 0
  local field = 'ranges:' .. ARGV[14]
  if redis.call('HSETNX', KEYS[2], 'range:' .. ARGV[14] .. '/' .. ARGV[15], 1) == 1
    and redis.call('HINCRBY', KEYS[2], field, 1) == tonumber(ARGV[13]) then
    file = 1
    redis.call('HDEL', KEYS[2], field)
    for i = 0, tonumber(ARGV[13]) - 1 do
      redis.call('HDEL', KEYS[2], 'range:' .. ARGV[14] .. '/' .. i)
    end
  end
end
redis.call('HINCRBY', KEYS[2], 'files_completed', file)
redis.call('HINCRBY', KEYS[2], 'bytes_completed', ARGV[9])
redis.call('HINCRBY', KEYS[2], 'rows_read', ARGV[10])
redis.call('HINCRBY', KEYS[2], 'rows_indexed', ARGV[11])
redis.call('HINCRBY', KEYS[2], 'rows_failed', ARGV[12])
redis.call('HSET', KEYS[2], 'last_finished_ms', fmt(now))
touch(now)
return 1 + file
"#;

const FAIL: &str = r#"
local now = now_ms()
if done_by('failed') then return 1 end
if not held(now) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'err', ARGV[8], 'finished_ms', fmt(now))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[2], 'last_finished_ms', fmt(now))
touch(now)
return 1
"#;

const RELEASE: &str = r#"
local now = now_ms()
if redis.call('HGET', KEYS[1], 'status') == 'pending'
  and redis.call('HGET', KEYS[1], 'released_by') == ARGV[2] then return 1 end
if not held(now) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'released_by', ARGV[2])
redis.call('HDEL', KEYS[1], 'worker')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'err', ARGV[8]) end
redis.call('ZREM', KEYS[3], ARGV[1])
touch(now)
return 1
"#;

// KEYS: 1 job, 2 jobs zset. ARGV: 1 files, 2 bytes, 3 ttl, 4 job id.
const REGISTER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'files_total', ARGV[1], 'bytes_total', ARGV[2],
  'registered_ms', string.format('%.0f', now))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"#;

// One consistent read of a job. KEYS: 1 job, 2 processing zset, 3 failed set.
// ARGV 1: item key prefix. Returns {now, job fields, {processing item fields…},
// {failed item fields…}}.
const PROGRESS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local job = redis.call('HGETALL', KEYS[1])
local function items(members)
  local out = {}
  for _, m in ipairs(members) do
    local h = redis.call('HGETALL', ARGV[1] .. m)
    if #h > 0 then table.insert(out, h) end
  end
  return out
end
local processing = items(redis.call('ZRANGE', KEYS[2], 0, -1))
local failed = items(redis.call('SMEMBERS', KEYS[3]))
return {string.format('%.0f', now), job, processing, failed}
"#;

struct Scripts {
    claim: Script,
    /// Heartbeat and checkpoint.
    heartbeat: Script,
    complete: Script,
    fail: Script,
    release: Script,
    register: Script,
    progress: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            claim: with_prelude(CLAIM),
            heartbeat: with_prelude(HEARTBEAT),
            complete: with_prelude(COMPLETE),
            fail: with_prelude(FAIL),
            release: with_prelude(RELEASE),
            register: Script::new(REGISTER),
            progress: Script::new(PROGRESS),
        }
    }
}

/// A [`MetadataStore`] over Valkey, shared by every worker, discoverer and `pf status`
/// of a deployment. See the [crate docs](crate) for the key layout.
pub struct ValkeyMetadataStore {
    pool: ValkeyPool,
    scripts: Scripts,
    stale_after: Duration,
}

impl std::fmt::Debug for ValkeyMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyMetadataStore")
            .field("config", self.pool.config())
            .finish()
    }
}

impl ValkeyMetadataStore {
    /// Connects (with the outage retries of [`ValkeyConfig::outage_limit`]) and checks
    /// the server answers, so a wrong address fails at start-up rather than mid-run.
    pub fn connect(config: &ValkeyConfig) -> Result<Self> {
        let store = ValkeyMetadataStore {
            pool: ValkeyPool::new(config)?,
            scripts: Scripts::new(),
            stale_after: config.stale_after(),
        };
        store
            .pool
            .run("ping", |c| redis::cmd("PING").query::<String>(c))?;
        Ok(store)
    }

    /// Presumes holders dead after `stale_after` instead of
    /// `coordinator.valkey.stale_after_secs`, for tests that need sub-second staleness.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    fn prefix(&self) -> &str {
        &self.pool.config().key_prefix
    }

    fn job_key(&self, job: &str) -> String {
        format!("{}job:{job}", self.prefix())
    }

    /// Runs an item script: keys and the common arguments filled in, `extra` appended.
    fn item_script<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        item: &WorkItem,
        worker: &str,
        extra: &[String],
    ) -> Result<T> {
        let limit = self.pool.config().outage_limit();
        self.item_script_within(operation, limit, script, item, worker, extra)
    }

    /// [`item_script`](Self::item_script), retrying an unreachable server for `limit`.
    fn item_script_within<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        limit: Duration,
        script: &Script,
        item: &WorkItem,
        worker: &str,
        extra: &[String],
    ) -> Result<T> {
        let o = self.pool.config();
        let job = item.job_id.as_deref().unwrap_or(NO_JOB);
        let member = item.key();
        let job_key = self.job_key(job);
        let keys = [
            format!("{}item:{member}", o.key_prefix),
            job_key.clone(),
            format!("{job_key}:processing"),
            format!("{job_key}:failed"),
            format!("{}jobs", o.key_prefix),
        ];
        let ttl = o.ttl_secs.max(1).to_string();
        let size = item
            .covered_bytes()
            .map(|s| s.to_string())
            .unwrap_or_default();
        self.pool.run_within(operation, limit, |con| {
            let mut inv = script.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(&member)
                .arg(worker)
                .arg(&ttl)
                .arg(job)
                .arg(item.location())
                .arg(item.etag.as_deref().unwrap_or(""))
                .arg(&size);
            for a in extra {
                inv.arg(a);
            }
            inv.invoke(con)
        })
    }
}

/// `Ok` when a state-change script found `worker` holding the item (it returns 1),
/// [`PfError::ClaimLost`] when another worker has taken the item over (0).
fn held_or_lost(held: i64, item: &WorkItem, worker: &str) -> Result<()> {
    if held == 1 {
        Ok(())
    } else {
        Err(crate::claim_lost(item, worker))
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn invalid(what: &str, detail: impl std::fmt::Display) -> PfError {
    PfError::Service {
        service: "valkey",
        operation: what.to_owned(),
        class: pf_error::ErrorClass::Permanent,
        message: format!("unexpected reply: {detail}"),
    }
}

impl MetadataStore for ValkeyMetadataStore {
    fn claim(&self, item: &WorkItem, worker: &str) -> Result<Claim> {
        let stale = self.stale_after.as_millis().to_string();
        let reply: Vec<Value> =
            self.item_script("claim", &self.scripts.claim, item, worker, &[stale])?;
        let text = |i: usize| -> String {
            reply
                .get(i)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .unwrap_or_default()
        };
        match text(0).as_str() {
            "completed" => Ok(Claim::AlreadyCompleted),
            "held" => Ok(Claim::HeldElsewhere { worker: text(1) }),
            "acquired" => {
                let attempts = text(1).parse().map_err(|e| invalid("claim", e))?;
                let cp = text(2);
                let checkpoint = if cp.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(&cp).map_err(|e| invalid("claim", e))?)
                };
                Ok(Claim::Acquired {
                    attempts,
                    checkpoint,
                })
            }
            other => Err(invalid("claim", other)),
        }
    }

    fn heartbeat(&self, item: &WorkItem, worker: &str) -> Result<()> {
        // A heartbeat is retried for a quarter of the staleness period at most: one that
        // late is worth less than the next, and the heartbeat thread has other items.
        let limit = (self.stale_after / 4).min(self.pool.config().outage_limit());
        let held = self.item_script_within::<i64>(
            "heartbeat",
            limit,
            &self.scripts.heartbeat,
            item,
            worker,
            &[],
        )?;
        held_or_lost(held, item, worker)
    }

    fn checkpoint(&self, item: &WorkItem, worker: &str, checkpoint: &Checkpoint) -> Result<()> {
        let cp = json(checkpoint);
        let held =
            self.item_script::<i64>("checkpoint", &self.scripts.heartbeat, item, worker, &[cp])?;
        held_or_lost(held, item, worker)
    }

    fn complete(&self, item: &WorkItem, worker: &str, stats: &FileStats) -> Result<Completion> {
        let extra = [
            json(stats),
            item.covered_bytes().unwrap_or(stats.bytes_read).to_string(),
            stats.rows_read.to_string(),
            stats.rows_indexed.to_string(),
            stats.rows_failed.to_string(),
            item.range.map_or(0, |r| r.count).to_string(),
            item.cut_key().unwrap_or_default(),
            item.range.map_or(0, |r| r.index).to_string(),
        ];
        match self.item_script::<i64>("complete", &self.scripts.complete, item, worker, &extra)? {
            2 => Ok(Completion::File),
            1 => Ok(Completion::Range),
            _ => Err(crate::claim_lost(item, worker)),
        }
    }

    fn fail(&self, item: &WorkItem, worker: &str, failure: &FileFailure) -> Result<()> {
        let err = format!("{}: {}", failure.class, failure.error);
        let held = self.item_script::<i64>("fail", &self.scripts.fail, item, worker, &[err])?;
        held_or_lost(held, item, worker)
    }

    fn release(&self, item: &WorkItem, worker: &str, error: Option<&str>) -> Result<()> {
        let err = error.unwrap_or("").to_owned();
        let held =
            self.item_script::<i64>("release", &self.scripts.release, item, worker, &[err])?;
        held_or_lost(held, item, worker)
    }

    fn get(&self, item: &WorkItem) -> Result<Option<ItemRecord>> {
        let key = format!("{}item:{}", self.prefix(), item.key());
        let h: HashMap<String, String> = self
            .pool
            .run("get", |c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if h.is_empty() {
            return Ok(None);
        }
        parse_item(&h).map(|(_, _, _, rec)| Some(rec))
    }

    fn register_job(&self, job_id: &str, totals: &JobTotals) -> Result<()> {
        let o = self.pool.config();
        let keys = [self.job_key(job_id), format!("{}jobs", o.key_prefix)];
        let ttl = o.ttl_secs.max(1);
        self.pool.run("register job", |con| {
            self.scripts
                .register
                .key(&keys[0])
                .key(&keys[1])
                .arg(totals.files)
                .arg(totals.bytes)
                .arg(ttl)
                .arg(job_id)
                .invoke::<i64>(con)
        })?;
        Ok(())
    }

    fn job_progress(&self, job_id: &str) -> Result<Option<JobProgress>> {
        let job_key = self.job_key(job_id);
        let item_prefix = format!("{}item:", self.prefix());
        let (now, job, processing, failed): ProgressReply =
            self.pool.run("job progress", |con| {
                self.scripts
                    .progress
                    .key(&job_key)
                    .key(format!("{job_key}:processing"))
                    .key(format!("{job_key}:failed"))
                    .arg(&item_prefix)
                    .invoke(con)
            })?;
        if job.is_empty() && processing.is_empty() && failed.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| job.get(k).and_then(|v| v.parse::<u64>().ok());
        let mut p = JobProgress {
            job_id: job_id.to_owned(),
            now_ms: now.parse().unwrap_or(0),
            totals: num("registered_ms").map(|_| JobTotals {
                files: num("files_total").unwrap_or(0),
                bytes: num("bytes_total").unwrap_or(0),
            }),
            registered_ms: num("registered_ms"),
            started_ms: num("started_ms"),
            last_finished_ms: num("last_finished_ms"),
            files_completed: num("files_completed").unwrap_or(0),
            files_failed: 0,
            bytes_done: num("bytes_completed").unwrap_or(0),
            rows_done: num("rows_read").unwrap_or(0),
            rows_indexed: num("rows_indexed").unwrap_or(0),
            rows_failed: num("rows_failed").unwrap_or(0),
            processing: Vec::new(),
            failed: Vec::new(),
        };
        for h in &processing {
            let (uri, etag, _, rec) = parse_item(h)?;
            if rec.status != ItemStatus::Processing {
                continue;
            }
            let cp = rec.checkpoint.unwrap_or_default().stats;
            p.bytes_done += cp.bytes_read;
            add_rows(&mut p, &cp);
            p.processing.push(ItemProgress {
                uri,
                etag,
                record: rec,
            });
        }
        for h in &failed {
            let (uri, etag, size, rec) = parse_item(h)?;
            if rec.status != ItemStatus::Failed {
                continue;
            }
            let cp = rec.checkpoint.unwrap_or_default().stats;
            p.files_failed += 1;
            p.bytes_done += size.unwrap_or(cp.bytes_read);
            add_rows(&mut p, &cp);
            p.failed.push(ItemProgress {
                uri,
                etag,
                record: rec,
            });
        }
        p.failed.sort_by(|a, b| a.uri.cmp(&b.uri));
        p.processing.sort_by(|a, b| a.uri.cmp(&b.uri));
        Ok(Some(p))
    }

    fn jobs(&self) -> Result<Vec<String>> {
        let key = format!("{}jobs", self.prefix());
        self.pool.run("list jobs", |c| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("REV")
                .query(c)
        })
    }
}

/// The reply of the progress script: server time, job hash, processing and failed item
/// hashes.
type ProgressReply = (
    String,
    HashMap<String, String>,
    Vec<HashMap<String, String>>,
    Vec<HashMap<String, String>>,
);

/// An item hash: `(uri, etag, size, record)`.
fn parse_item(
    h: &HashMap<String, String>,
) -> Result<(String, Option<String>, Option<u64>, ItemRecord)> {
    let s = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
    let n = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok());
    let status = match h.get("status").map(String::as_str) {
        Some("processing") => ItemStatus::Processing,
        Some("completed") => ItemStatus::Completed,
        Some("failed") => ItemStatus::Failed,
        _ => ItemStatus::Pending,
    };
    let rec = ItemRecord {
        status,
        attempts: n("attempts").unwrap_or(0) as u32,
        worker: s("worker"),
        started_ms: n("started_ms"),
        heartbeat_ms: n("heartbeat_ms"),
        finished_ms: n("finished_ms"),
        checkpoint: decode(s("cp"))?,
        stats: decode(s("stats"))?,
        last_error: s("err"),
    };
    Ok((s("uri").unwrap_or_default(), s("etag"), n("size"), rec))
}

fn decode<T: serde::de::DeserializeOwned>(v: Option<String>) -> Result<Option<T>> {
    v.map(|v| serde_json::from_str(&v).map_err(|e| invalid("read item", e)))
        .transpose()
}
