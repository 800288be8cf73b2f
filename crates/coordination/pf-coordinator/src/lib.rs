//! Metadata stores: who is processing what, how far it got, and what is done.
//!
//! [`MemoryMetadataStore`] serves the embedded mode (one process) and is the reference
//! for the state machine every store implements:
//!
//! ```text
//! (none | pending) --claim--> processing --complete--> completed
//!                                 |  \--fail-------> failed
//!                                 \--release-------> pending (checkpoint kept)
//! processing, heartbeat older than `stale_after` --claim by another worker--> processing
//! completed --claim--> AlreadyCompleted (acknowledge without work)
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pf_error::Result;
use pf_traits::{Claim, ItemRecord, ItemStatus, MetadataStore};
use pf_types::{Checkpoint, FileFailure, FileStats, WorkItem};

/// Default time without a heartbeat after which a holder is presumed dead.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An in-process [`MetadataStore`]; state lives as long as the process.
#[derive(Debug)]
pub struct MemoryMetadataStore {
    items: Mutex<HashMap<String, ItemRecord>>,
    stale_after: Duration,
}

impl Default for MemoryMetadataStore {
    fn default() -> Self {
        Self::new(DEFAULT_STALE_AFTER)
    }
}

impl MemoryMetadataStore {
    /// A store that treats holders silent for `stale_after` as dead.
    pub fn new(stale_after: Duration) -> Self {
        MemoryMetadataStore {
            items: Mutex::new(HashMap::new()),
            stale_after,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ItemRecord>) -> T) -> T {
        let mut guard = self.items.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Every item the store knows, by key.
    pub fn snapshot(&self) -> Vec<(String, ItemRecord)> {
        self.with(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn update_held(&self, item: &WorkItem, worker: &str, f: impl FnOnce(&mut ItemRecord)) {
        self.with(|m| {
            if let Some(rec) = m.get_mut(&item.key()) {
                // Only the current holder may move the item on; a stale worker that lost
                // its claim must not overwrite the new holder's progress.
                if rec.worker.as_deref() == Some(worker) {
                    f(rec);
                }
            }
        })
    }
}

impl MetadataStore for MemoryMetadataStore {
    fn claim(&self, item: &WorkItem, worker: &str) -> Result<Claim> {
        let now = now_ms();
        let stale_ms = self.stale_after.as_millis() as u64;
        Ok(self.with(|m| {
            let rec = m.entry(item.key()).or_insert_with(|| ItemRecord {
                status: ItemStatus::Pending,
                attempts: 0,
                worker: None,
                heartbeat_ms: None,
                checkpoint: None,
                stats: None,
                last_error: None,
            });
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
            rec.heartbeat_ms = Some(now);
            Claim::Acquired {
                attempts: rec.attempts,
                checkpoint: rec.checkpoint,
            }
        }))
    }

    fn heartbeat(&self, item: &WorkItem, worker: &str) -> Result<()> {
        self.update_held(item, worker, |r| r.heartbeat_ms = Some(now_ms()));
        Ok(())
    }

    fn checkpoint(&self, item: &WorkItem, worker: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.update_held(item, worker, |r| {
            r.checkpoint = Some(*checkpoint);
            r.heartbeat_ms = Some(now_ms());
        });
        Ok(())
    }

    fn complete(&self, item: &WorkItem, worker: &str, stats: &FileStats) -> Result<()> {
        self.update_held(item, worker, |r| {
            r.status = ItemStatus::Completed;
            r.stats = Some(*stats);
            r.heartbeat_ms = Some(now_ms());
        });
        Ok(())
    }

    fn fail(&self, item: &WorkItem, worker: &str, failure: &FileFailure) -> Result<()> {
        self.update_held(item, worker, |r| {
            r.status = ItemStatus::Failed;
            r.last_error = Some(format!("{}: {}", failure.class, failure.error));
        });
        Ok(())
    }

    fn release(&self, item: &WorkItem, worker: &str, error: Option<&str>) -> Result<()> {
        self.update_held(item, worker, |r| {
            r.status = ItemStatus::Pending;
            r.worker = None;
            if let Some(e) = error {
                r.last_error = Some(e.to_owned());
            }
        });
        Ok(())
    }

    fn get(&self, item: &WorkItem) -> Result<Option<ItemRecord>> {
        Ok(self.with(|m| m.get(&item.key()).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_error::ErrorClass;

    fn item() -> WorkItem {
        WorkItem::from_uri("/d/a.parquet").unwrap()
    }

    #[test]
    fn claim_complete_then_duplicate_is_acknowledged() {
        let s = MemoryMetadataStore::default();
        let it = item();
        assert_eq!(
            s.claim(&it, "w1").unwrap(),
            Claim::Acquired {
                attempts: 1,
                checkpoint: None
            }
        );
        assert_eq!(
            s.claim(&it, "w2").unwrap(),
            Claim::HeldElsewhere {
                worker: "w1".into()
            }
        );
        let stats = FileStats {
            rows_read: 5,
            rows_indexed: 5,
            ..Default::default()
        };
        s.complete(&it, "w1", &stats).unwrap();
        assert_eq!(s.claim(&it, "w2").unwrap(), Claim::AlreadyCompleted);
        let rec = s.get(&it).unwrap().unwrap();
        assert_eq!(
            (rec.status, rec.stats),
            (ItemStatus::Completed, Some(stats))
        );
    }

    #[test]
    fn release_keeps_checkpoint_and_counts_attempts() {
        let s = MemoryMetadataStore::default();
        let it = item();
        s.claim(&it, "w1").unwrap();
        let cp = Checkpoint {
            position: 3,
            next_row: 300,
            ..Default::default()
        };
        s.checkpoint(&it, "w1", &cp).unwrap();
        s.release(&it, "w1", Some("timeout")).unwrap();
        assert_eq!(
            s.claim(&it, "w2").unwrap(),
            Claim::Acquired {
                attempts: 2,
                checkpoint: Some(cp)
            }
        );
        // The old holder lost its claim: its late updates are ignored.
        s.complete(&it, "w1", &FileStats::default()).unwrap();
        assert_eq!(s.get(&it).unwrap().unwrap().status, ItemStatus::Processing);
        let f = FileFailure {
            uri: it.uri.clone(),
            class: ErrorClass::Permanent,
            error: "corrupt".into(),
            attempts: 2,
        };
        s.fail(&it, "w2", &f).unwrap();
        let rec = s.get(&it).unwrap().unwrap();
        assert_eq!(rec.status, ItemStatus::Failed);
        assert_eq!(rec.last_error.as_deref(), Some("permanent: corrupt"));
    }

    #[test]
    fn stale_holder_loses_claim() {
        let s = MemoryMetadataStore::new(Duration::from_millis(20));
        let it = item();
        s.claim(&it, "w1").unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            s.claim(&it, "w2").unwrap(),
            Claim::Acquired { attempts: 2, .. }
        ));
    }
}
