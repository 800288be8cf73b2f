//! One behavioural suite for every `MetadataStore`: each case runs against the in-memory
//! store and against a real `valkey-server` (started by pf-test-services).

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pf_coordinator::{MemoryMetadataStore, ValkeyConfig, ValkeyMetadataStore, job_status};
use pf_error::ErrorClass;
use pf_traits::{Claim, Completion, ItemStatus, JobTotals, MetadataStore};
use pf_types::{Checkpoint, FileFailure, FileStats, WorkItem};

/// Hands out handles to one store's state: for Valkey each handle has its own
/// connections, like separate worker processes.
trait Backend {
    fn handle(&self) -> Arc<dyn MetadataStore>;
}

struct Memory(Arc<MemoryMetadataStore>);

impl Backend for Memory {
    fn handle(&self) -> Arc<dyn MetadataStore> {
        self.0.clone()
    }
}

fn memory(stale_after: Duration) -> Memory {
    Memory(Arc::new(MemoryMetadataStore::new(stale_after)))
}

struct Valkey {
    server: pf_test_services::Valkey,
    stale_after: Duration,
}

impl Backend for Valkey {
    fn handle(&self) -> Arc<dyn MetadataStore> {
        let config = ValkeyConfig {
            key_prefix: "suite:".into(),
            ..ValkeyConfig::for_url(self.server.url())
        };
        Arc::new(
            ValkeyMetadataStore::connect(&config)
                .expect("connect to valkey")
                .with_stale_after(self.stale_after),
        )
    }
}

fn valkey(stale_after: Duration) -> Valkey {
    Valkey {
        server: pf_test_services::Valkey::start(),
        stale_after,
    }
}

fn item(name: &str) -> WorkItem {
    let mut it = WorkItem::from_uri(format!("/d/{name}.parquet")).unwrap();
    it.job_id = Some("job-1".into());
    it.etag = Some("e1".into());
    it.size = Some(1000);
    it
}

const LONG: Duration = Duration::from_secs(120);

fn claim_complete_then_duplicate_is_acknowledged(b: &dyn Backend) {
    let (s1, s2) = (b.handle(), b.handle());
    let it = item("a");
    assert_eq!(
        s1.claim(&it, "w1").unwrap(),
        Claim::Acquired {
            attempts: 1,
            checkpoint: None
        }
    );
    assert_eq!(
        s2.claim(&it, "w2").unwrap(),
        Claim::HeldElsewhere {
            worker: "w1".into()
        }
    );
    let stats = FileStats {
        rows_read: 5,
        rows_indexed: 5,
        bytes_read: 1000,
        batches: 1,
        ..Default::default()
    };
    assert_eq!(s1.complete(&it, "w1", &stats).unwrap(), Completion::File);
    // A replayed completion (e.g. after a lost reply) changes nothing.
    assert_eq!(s1.complete(&it, "w1", &stats).unwrap(), Completion::File);
    assert_eq!(s2.claim(&it, "w2").unwrap(), Claim::AlreadyCompleted);
    let rec = s2.get(&it).unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.stats, rec.attempts, rec.worker.as_deref()),
        (ItemStatus::Completed, Some(stats), 1, Some("w1"))
    );
    assert!(rec.finished_ms.is_some() && rec.started_ms.is_some());
    let p = s2.job_progress("job-1").unwrap().unwrap();
    assert_eq!((p.files_completed, p.rows_done, p.bytes_done), (1, 5, 1000));
}

fn release_keeps_checkpoint_and_counts_attempts(b: &dyn Backend) {
    let (s1, s2) = (b.handle(), b.handle());
    let it = item("b");
    s1.claim(&it, "w1").unwrap();
    let cp = Checkpoint {
        position: 3,
        next_row: 300,
        lines_done: 0,
        stats: FileStats {
            rows_read: 300,
            rows_indexed: 300,
            ..Default::default()
        },
    };
    s1.checkpoint(&it, "w1", &cp).unwrap();
    s1.release(&it, "w1", Some("timeout")).unwrap();
    let rec = s2.get(&it).unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.last_error.as_deref()),
        (ItemStatus::Pending, Some("timeout"))
    );
    assert_eq!(
        s2.claim(&it, "w2").unwrap(),
        Claim::Acquired {
            attempts: 2,
            checkpoint: Some(cp)
        }
    );
    // The old holder lost its claim: its late updates are refused and change nothing.
    assert!(matches!(
        s1.complete(&it, "w1", &FileStats::default()),
        Err(pf_error::PfError::ClaimLost { .. })
    ));
    assert!(matches!(
        s1.checkpoint(&it, "w1", &Checkpoint::default()),
        Err(pf_error::PfError::ClaimLost { .. })
    ));
    let rec = s2.get(&it).unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.checkpoint, rec.worker.as_deref()),
        (ItemStatus::Processing, Some(cp), Some("w2"))
    );
    let f = FileFailure {
        uri: it.uri.clone(),
        class: ErrorClass::Permanent,
        error: "corrupt".into(),
        attempts: 2,
    };
    s2.fail(&it, "w2", &f).unwrap();
    let rec = s1.get(&it).unwrap().unwrap();
    assert_eq!(rec.status, ItemStatus::Failed);
    assert_eq!(rec.last_error.as_deref(), Some("permanent: corrupt"));
    let p = s1.job_progress("job-1").unwrap().unwrap();
    assert_eq!((p.files_failed, p.failed.len()), (1, 1));
    assert_eq!(p.failed[0].uri, it.uri);
    // A failed item may be claimed again (e.g. the DLQ was redriven).
    assert!(matches!(
        s1.claim(&it, "w3").unwrap(),
        Claim::Acquired { attempts: 3, .. }
    ));
    let p = s1.job_progress("job-1").unwrap().unwrap();
    assert_eq!((p.files_failed, p.processing.len()), (0, 1));
}

fn stale_holder_loses_claim(b: &dyn Backend) {
    let (s1, s2) = (b.handle(), b.handle());
    let it = item("c");
    s1.claim(&it, "w1").unwrap();
    assert!(matches!(
        s2.claim(&it, "w2").unwrap(),
        Claim::HeldElsewhere { .. }
    ));
    std::thread::sleep(Duration::from_millis(700));
    // Reported as stale before anyone takes it over.
    let st = job_status(&*s2, Some("job-1"), Duration::from_millis(500))
        .unwrap()
        .unwrap();
    assert_eq!(st.stale, vec![it.uri.clone()]);
    assert!(matches!(
        s2.claim(&it, "w2").unwrap(),
        Claim::Acquired { attempts: 2, .. }
    ));
    // A heartbeat keeps the new holder's claim fresh.
    s2.heartbeat(&it, "w2").unwrap();
    assert!(matches!(
        s1.claim(&it, "w1").unwrap(),
        Claim::HeldElsewhere { .. }
    ));
    // The old holder learns it lost the claim at its next state change, and changes
    // nothing: the new holder's checkpoint and completion stand.
    let cp = Checkpoint {
        position: 9,
        ..Checkpoint::default()
    };
    for lost in [
        s1.heartbeat(&it, "w1"),
        s1.checkpoint(&it, "w1", &cp),
        s1.release(&it, "w1", None),
        s1.complete(&it, "w1", &FileStats::default()).map(drop),
    ] {
        assert!(
            matches!(lost, Err(pf_error::PfError::ClaimLost { .. })),
            "{lost:?}"
        );
    }
    s2.checkpoint(&it, "w2", &Checkpoint::default()).unwrap();
    let rec = s2.get(&it).unwrap().unwrap();
    assert_eq!(rec.worker.as_deref(), Some("w2"));
    assert_ne!(rec.checkpoint.map(|c| c.position), Some(9));
    // Two pipeline threads of one worker are two holders.
    let other = item("t");
    s2.claim(&other, "w2/t0").unwrap();
    assert!(matches!(
        s2.claim(&other, "w2/t1").unwrap(),
        Claim::HeldElsewhere { .. }
    ));
}

fn job_progress_and_listing(b: &dyn Backend) {
    let s = b.handle();
    assert!(s.job_progress("job-1").unwrap().is_none());
    s.register_job(
        "job-1",
        &JobTotals {
            files: 3,
            bytes: 3000,
        },
    )
    .unwrap();
    let (a, c, d) = (item("a"), item("c"), item("d"));
    for it in [&a, &c, &d] {
        s.claim(it, "w1").unwrap();
    }
    let st = |rows| FileStats {
        rows_read: rows,
        rows_indexed: rows - 1,
        rows_failed: 1,
        bytes_read: 900,
        ..Default::default()
    };
    s.complete(&a, "w1", &st(10)).unwrap();
    s.checkpoint(
        &c,
        "w1",
        &Checkpoint {
            position: 1,
            next_row: 4,
            lines_done: 0,
            stats: st(4),
        },
    )
    .unwrap();
    let p = s.job_progress("job-1").unwrap().unwrap();
    assert_eq!(
        p.totals,
        Some(JobTotals {
            files: 3,
            bytes: 3000
        })
    );
    assert_eq!((p.files_completed, p.files_failed), (1, 0));
    // Completed by size, in processing by bytes read so far.
    assert_eq!(p.bytes_done, 1000 + 900);
    assert_eq!((p.rows_done, p.rows_indexed, p.rows_failed), (14, 12, 2));
    let uris: Vec<&str> = p.processing.iter().map(|i| i.uri.as_str()).collect();
    assert_eq!(uris, [c.uri.as_str(), d.uri.as_str()]);
    let running = job_status(&*s, None, LONG).unwrap().unwrap();
    assert_eq!(
        (running.state, running.progress.job_id.as_str()),
        ("running", "job-1")
    );
    s.complete(&c, "w1", &st(10)).unwrap();
    s.complete(&d, "w1", &st(10)).unwrap();
    let done = job_status(&*s, Some("job-1"), LONG).unwrap().unwrap();
    assert_eq!(done.state, "completed");
    assert_eq!(done.eta_s, Some(0.0));
    assert!(
        done.render().contains("files  3 of 3 (100.0%)"),
        "{}",
        done.render()
    );
    assert_eq!(s.jobs().unwrap(), vec!["job-1".to_owned()]);
}

/// Two workers (separate handles, two threads) race for each of 1,000 items: exactly one
/// acquires each, the other is told who holds it, and after completion both see it done.
fn two_workers_race_for_each_item(b: &dyn Backend) {
    let handles = [b.handle(), b.handle()];
    let barrier = Arc::new(Barrier::new(2));
    let won: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let threads: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(w, store)| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    let me = format!("w{w}");
                    let mut mine = Vec::new();
                    for i in 0..1000 {
                        let it = item(&format!("race-{i}"));
                        barrier.wait();
                        match store.claim(&it, &me).unwrap() {
                            Claim::Acquired { attempts: 1, .. } => {
                                mine.push(i);
                                store
                                    .complete(
                                        &it,
                                        &me,
                                        &FileStats {
                                            rows_read: 1,
                                            rows_indexed: 1,
                                            ..Default::default()
                                        },
                                    )
                                    .unwrap();
                            }
                            Claim::HeldElsewhere { worker } => assert_ne!(worker, me),
                            Claim::AlreadyCompleted => {}
                            other => panic!("item {i}: unexpected {other:?}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let all: Vec<usize> = won.iter().flatten().copied().collect();
    let distinct: HashSet<usize> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "each item processed exactly once");
    assert_eq!(distinct.len(), 1000);
    let p = handles[0].job_progress("job-1").unwrap().unwrap();
    assert_eq!((p.files_completed, p.rows_done), (1000, 1000));
    for i in [0, 499, 999] {
        assert_eq!(
            handles[1].claim(&item(&format!("race-{i}")), "w9").unwrap(),
            Claim::AlreadyCompleted
        );
    }
}

/// The ranges of a split file are items of their own, but the file counts once: when its
/// last range completes, whoever completes it, and bytes count by range.
fn split_file_counts_once_when_its_last_range_completes(b: &dyn Backend) {
    let (s1, s2) = (b.handle(), b.handle());
    let whole = item("big");
    let ranges = whole.split(400).unwrap();
    assert_eq!(ranges.len(), 3);
    let st = FileStats {
        rows_read: 7,
        rows_indexed: 7,
        ..Default::default()
    };
    for (r, s, w) in [(&ranges[2], &s1, "w1"), (&ranges[0], &s2, "w2")] {
        assert!(matches!(s.claim(r, w).unwrap(), Claim::Acquired { .. }));
        assert_eq!(s.complete(r, w, &st).unwrap(), Completion::Range);
    }
    assert_eq!(s2.claim(&ranges[0], "w1").unwrap(), Claim::AlreadyCompleted);
    assert_eq!(s1.get(&whole).unwrap(), None, "the whole file is no item");
    let p = s1.job_progress("job-1").unwrap().unwrap();
    assert_eq!(
        (p.files_completed, p.bytes_done, p.rows_done),
        (0, 400 + 200, 14)
    );

    assert!(matches!(
        s1.claim(&ranges[1], "w1").unwrap(),
        Claim::Acquired { .. }
    ));
    assert_eq!(
        s1.complete(&ranges[1], "w1", &st).unwrap(),
        Completion::File
    );
    let p = s2.job_progress("job-1").unwrap().unwrap();
    assert_eq!(
        (p.files_completed, p.bytes_done, p.rows_done),
        (1, 1000, 21)
    );
    // A replayed completion of a range neither counts the file again nor says it did.
    assert_eq!(
        s1.complete(&ranges[1], "w1", &st).unwrap(),
        Completion::Range
    );
    assert_eq!(
        s2.job_progress("job-1").unwrap().unwrap().files_completed,
        1
    );
}

/// One `#[test]` per case of the suite, in a module named after the backend; the
/// argument of each case is the stale-after duration of its store.
macro_rules! suite {
    ($backend:ident) => {
        suite!(@cases $backend:
            claim_complete_then_duplicate_is_acknowledged(LONG),
            release_keeps_checkpoint_and_counts_attempts(LONG),
            stale_holder_loses_claim(Duration::from_millis(500)),
            job_progress_and_listing(LONG),
            split_file_counts_once_when_its_last_range_completes(LONG),
            two_workers_race_for_each_item(LONG),
        );
    };
    (@cases $backend:ident: $($case:ident($stale_after:expr)),+ $(,)?) => {
        mod $backend {
            use super::*;

            $(
                #[test]
                fn $case() {
                    super::$case(&super::$backend($stale_after));
                }
            )+
        }
    };
}

suite!(memory);
suite!(valkey);
