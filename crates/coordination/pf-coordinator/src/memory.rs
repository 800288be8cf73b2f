//! The in-process metadata store (embedded mode, one process).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use pf_error::Result;
use pf_traits::{
    Claim, Completion, ItemProgress, ItemRecord, ItemStatus, JobProgress, JobTotals, MetadataStore,
    NO_JOB,
};
use pf_types::{Checkpoint, FileFailure, FileStats, WorkItem};

use crate::{DEFAULT_STALE_AFTER, claim_lost, now_ms};

/// One item and the identity fields `pf status` reports.
#[derive(Debug, Clone)]
struct Entry {
    uri: String,
    etag: Option<String>,
    job: String,
    /// Bytes the item covers (its range, or the whole file).
    size: Option<u64>,
    rec: ItemRecord,
    /// Who last released the item, so a replayed release is recognised.
    released_by: Option<String>,
    /// The item is one range of a split file.
    split: bool,
}

impl Entry {
    /// Whether `worker` made the item's last transition (completed or failed it while
    /// holding it, or released it).
    fn held_last_by(&self, worker: &str) -> bool {
        match self.rec.status {
            ItemStatus::Pending => self.released_by.as_deref() == Some(worker),
            _ => self.rec.worker.as_deref() == Some(worker),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    items: HashMap<String, Entry>,
    /// Per job: registered totals and when.
    jobs: HashMap<String, (Option<JobTotals>, Option<u64>)>,
    /// Per job: the last time anything happened, for [`MetadataStore::jobs`].
    activity: HashMap<String, u64>,
    /// Per cut of a split file (by [`WorkItem::cut_key`]): its job, the ranges completed
    /// and how many there are.
    split_files: HashMap<String, SplitFile>,
}

/// How far the ranges of one split file got.
#[derive(Debug, Clone)]
struct SplitFile {
    job: String,
    /// Indices, not a count: a range completed twice (its record gone meanwhile) counts
    /// once.
    completed: HashSet<u32>,
    count: u32,
}

/// An in-process [`MetadataStore`]; state lives as long as the process.
#[derive(Debug)]
pub struct MemoryMetadataStore {
    state: Mutex<State>,
    stale_after: Duration,
}

impl Default for MemoryMetadataStore {
    fn default() -> Self {
        Self::new(DEFAULT_STALE_AFTER)
    }
}

fn job_of(item: &WorkItem) -> &str {
    item.job_id.as_deref().unwrap_or(NO_JOB)
}

impl MemoryMetadataStore {
    /// A store that treats holders silent for `stale_after` as dead.
    pub fn new(stale_after: Duration) -> Self {
        MemoryMetadataStore {
            state: Mutex::new(State::default()),
            stale_after,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Every item the store knows, by key.
    pub fn snapshot(&self) -> Vec<(String, ItemRecord)> {
        self.with(|s| {
            s.items
                .iter()
                .map(|(k, v)| (k.clone(), v.rec.clone()))
                .collect()
        })
    }

    /// Applies `f` when `worker` holds `item`; [`PfError::ClaimLost`] otherwise: only
    /// the current holder may move the item on, and a stale worker that lost its claim
    /// must stop rather than overwrite the new holder's progress. A call replayed after
    /// its first run already moved the item to `done` (as after a lost reply) succeeds
    /// and changes nothing.
    fn update_held(
        &self,
        item: &WorkItem,
        worker: &str,
        done: Option<ItemStatus>,
        f: impl FnOnce(&mut Entry, u64),
    ) -> Result<()> {
        self.update_held_then(item, worker, done, f, |_, _| ())
    }

    /// [`update_held`](Self::update_held), then `then(state, replayed)` under the same lock.
    fn update_held_then<T>(
        &self,
        item: &WorkItem,
        worker: &str,
        done: Option<ItemStatus>,
        f: impl FnOnce(&mut Entry, u64),
        then: impl FnOnce(&mut State, bool) -> T,
    ) -> Result<T> {
        let now = now_ms();
        self.with(|s| match s.items.get_mut(&item.key()) {
            Some(e)
                if e.rec.status == ItemStatus::Processing
                    && e.rec.worker.as_deref() == Some(worker) =>
            {
                f(e, now);
                s.activity.insert(job_of(item).to_owned(), now);
                Ok(then(s, false))
            }
            Some(e) if Some(e.rec.status) == done && e.held_last_by(worker) => Ok(then(s, true)),
            _ => Err(claim_lost(item, worker)),
        })
    }
}

impl MetadataStore for MemoryMetadataStore {
    fn claim(&self, item: &WorkItem, worker: &str) -> Result<Claim> {
        let now = now_ms();
        let stale_ms = self.stale_after.as_millis() as u64;
        Ok(self.with(|s| {
            s.activity.insert(job_of(item).to_owned(), now);
            let entry = s.items.entry(item.key()).or_insert_with(|| Entry {
                uri: item.location(),
                etag: item.etag.clone(),
                job: job_of(item).to_owned(),
                size: item.covered_bytes(),
                rec: ItemRecord {
                    status: ItemStatus::Pending,
                    attempts: 0,
                    worker: None,
                    started_ms: None,
                    heartbeat_ms: None,
                    finished_ms: None,
                    checkpoint: None,
                    stats: None,
                    last_error: None,
                },
                released_by: None,
                split: item.range.is_some(),
            });
            let rec = &mut entry.rec;
            match rec.status {
                ItemStatus::Completed => return Claim::AlreadyCompleted,
                ItemStatus::Processing => {
                    let fresh = rec
                        .heartbeat_ms
                        .is_some_and(|hb| now.saturating_sub(hb) < stale_ms);
                    if fresh && rec.worker.as_deref() != Some(worker) {
                        return Claim::HeldElsewhere {
                            worker: rec.worker.clone().unwrap_or_default(),
                        };
                    }
                }
                ItemStatus::Pending | ItemStatus::Failed => {}
            }
            rec.status = ItemStatus::Processing;
            rec.attempts += 1;
            rec.worker = Some(worker.to_owned());
            rec.started_ms = Some(now);
            rec.heartbeat_ms = Some(now);
            rec.finished_ms = None;
            Claim::Acquired {
                attempts: rec.attempts,
                checkpoint: rec.checkpoint,
            }
        }))
    }

    fn heartbeat(&self, item: &WorkItem, worker: &str) -> Result<()> {
        self.update_held(item, worker, None, |e, now| e.rec.heartbeat_ms = Some(now))
    }

    fn checkpoint(&self, item: &WorkItem, worker: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.update_held(item, worker, None, |e, now| {
            e.rec.checkpoint = Some(*checkpoint);
            e.rec.heartbeat_ms = Some(now);
        })
    }

    fn complete(&self, item: &WorkItem, worker: &str, stats: &FileStats) -> Result<Completion> {
        let finish = |e: &mut Entry, now| {
            let r = &mut e.rec;
            r.status = ItemStatus::Completed;
            r.stats = Some(*stats);
            r.heartbeat_ms = Some(now);
            r.finished_ms = Some(now);
        };
        let count_range = |s: &mut State, replayed: bool| {
            let (Some(range), Some(cut)) = (item.range, item.cut_key()) else {
                return Completion::File;
            };
            let file = s.split_files.entry(cut).or_insert_with(|| SplitFile {
                job: job_of(item).to_owned(),
                completed: HashSet::new(),
                count: range.count,
            });
            let first = !replayed && file.completed.insert(range.index);
            if first && file.completed.len() == file.count as usize {
                Completion::File
            } else {
                Completion::Range
            }
        };
        self.update_held_then(
            item,
            worker,
            Some(ItemStatus::Completed),
            finish,
            count_range,
        )
    }

    fn fail(&self, item: &WorkItem, worker: &str, failure: &FileFailure) -> Result<()> {
        self.update_held(item, worker, Some(ItemStatus::Failed), |e, now| {
            let r = &mut e.rec;
            r.status = ItemStatus::Failed;
            r.last_error = Some(format!("{}: {}", failure.class, failure.error));
            r.finished_ms = Some(now);
        })
    }

    fn release(&self, item: &WorkItem, worker: &str, error: Option<&str>) -> Result<()> {
        self.update_held(item, worker, Some(ItemStatus::Pending), |e, _| {
            e.released_by = Some(worker.to_owned());
            let r = &mut e.rec;
            r.status = ItemStatus::Pending;
            r.worker = None;
            if let Some(e) = error {
                r.last_error = Some(e.to_owned());
            }
        })
    }

    fn get(&self, item: &WorkItem) -> Result<Option<ItemRecord>> {
        Ok(self.with(|s| s.items.get(&item.key()).map(|e| e.rec.clone())))
    }

    fn register_job(&self, job_id: &str, totals: &JobTotals) -> Result<()> {
        let now = now_ms();
        self.with(|s| {
            s.jobs.insert(job_id.to_owned(), (Some(*totals), Some(now)));
            s.activity.insert(job_id.to_owned(), now);
        });
        Ok(())
    }

    fn job_progress(&self, job_id: &str) -> Result<Option<JobProgress>> {
        Ok(self.with(|s| {
            let registered = s.jobs.get(job_id).copied();
            let mut p = JobProgress {
                job_id: job_id.to_owned(),
                now_ms: now_ms(),
                totals: registered.and_then(|r| r.0),
                registered_ms: registered.and_then(|r| r.1),
                ..JobProgress::default()
            };
            let mut any = registered.is_some();
            for e in s.items.values().filter(|e| e.job == job_id) {
                any = true;
                let rec = &e.rec;
                p.started_ms = match (p.started_ms, rec.started_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let cp = rec.checkpoint.unwrap_or_default().stats;
                let listed = ItemProgress {
                    uri: e.uri.clone(),
                    etag: e.etag.clone(),
                    record: rec.clone(),
                };
                match rec.status {
                    ItemStatus::Completed => {
                        let st = rec.stats.unwrap_or_default();
                        // Split files are counted below, once.
                        p.files_completed += u64::from(!e.split);
                        p.bytes_done += e.size.unwrap_or(st.bytes_read);
                        add_rows(&mut p, &st);
                        p.last_finished_ms = p.last_finished_ms.max(rec.finished_ms);
                    }
                    ItemStatus::Failed => {
                        p.files_failed += 1;
                        p.bytes_done += e.size.unwrap_or(cp.bytes_read);
                        add_rows(&mut p, &cp);
                        p.last_finished_ms = p.last_finished_ms.max(rec.finished_ms);
                        p.failed.push(listed);
                    }
                    ItemStatus::Processing => {
                        p.bytes_done += cp.bytes_read;
                        add_rows(&mut p, &cp);
                        p.processing.push(listed);
                    }
                    ItemStatus::Pending => {}
                }
            }
            p.files_completed += s
                .split_files
                .values()
                .filter(|f| f.job == job_id && f.completed.len() == f.count as usize)
                .count() as u64;
            p.failed.sort_by(|a, b| a.uri.cmp(&b.uri));
            p.processing.sort_by(|a, b| a.uri.cmp(&b.uri));
            any.then_some(p)
        }))
    }

    fn jobs(&self) -> Result<Vec<String>> {
        Ok(self.with(|s| {
            let mut jobs: Vec<(u64, String)> =
                s.activity.iter().map(|(j, t)| (*t, j.clone())).collect();
            jobs.sort_by(|a, b| b.cmp(a));
            jobs.into_iter().map(|(_, j)| j).collect()
        }))
    }
}

/// Adds one item's record counters to a job's.
pub(crate) fn add_rows(p: &mut JobProgress, st: &FileStats) {
    p.rows_done += st.rows_read;
    p.rows_indexed += st.rows_indexed;
    p.rows_failed += st.rows_failed;
}
