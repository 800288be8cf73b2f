//! Metadata round-trip cost per call on a local `valkey-server` (loopback), next to the
//! in-memory store: `cargo test --release -p pf-coordinator --test speed -- --ignored --nocapture`.

use std::time::Instant;

use pf_coordinator::{MemoryMetadataStore, ValkeyConfig, ValkeyMetadataStore};
use pf_traits::{Claim, MetadataStore};
use pf_types::{Checkpoint, FileStats, WorkItem};

const FILES: usize = 2000;
const CHECKPOINTS_PER_FILE: usize = 10;

/// µs per call of claim, checkpoint, heartbeat, complete.
fn per_call(store: &dyn MetadataStore) -> [f64; 4] {
    let mut t = [0f64; 4];
    for i in 0..FILES {
        let mut it = WorkItem::from_uri(format!("/bench/part-{i:05}.parquet")).unwrap();
        it.job_id = Some("bench".into());
        it.size = Some(1_000_000);
        let s = Instant::now();
        let c = store.claim(&it, "w1").unwrap();
        t[0] += s.elapsed().as_secs_f64();
        assert!(matches!(c, Claim::Acquired { .. }));
        for n in 0..CHECKPOINTS_PER_FILE as u64 {
            let cp = Checkpoint {
                position: n + 1,
                next_row: (n + 1) * 65_536,
                lines_done: 0,
                stats: FileStats {
                    rows_read: (n + 1) * 65_536,
                    rows_indexed: (n + 1) * 65_536,
                    batches: n + 1,
                    bytes_read: (n + 1) * 100_000,
                    ..Default::default()
                },
            };
            let s = Instant::now();
            store.checkpoint(&it, "w1", &cp).unwrap();
            t[1] += s.elapsed().as_secs_f64();
        }
        let s = Instant::now();
        store.heartbeat(&it, "w1").unwrap();
        t[2] += s.elapsed().as_secs_f64();
        let s = Instant::now();
        store.complete(&it, "w1", &FileStats::default()).unwrap();
        t[3] += s.elapsed().as_secs_f64();
    }
    let n = FILES as f64;
    [
        t[0] / n * 1e6,
        t[1] / (n * CHECKPOINTS_PER_FILE as f64) * 1e6,
        t[2] / n * 1e6,
        t[3] / n * 1e6,
    ]
}

#[test]
#[ignore = "speed figures; run in release with --ignored --nocapture"]
fn metadata_call_latency_memory_vs_valkey() {
    let memory = per_call(&MemoryMetadataStore::default());
    let server = pf_test_services::Valkey::start();
    let valkey =
        per_call(&ValkeyMetadataStore::connect(&ValkeyConfig::for_url(server.url())).unwrap());
    let p = store_progress(&server);
    assert_eq!(p, FILES as u64);
    for (name, m, v) in [
        ("claim", memory[0], valkey[0]),
        ("checkpoint", memory[1], valkey[1]),
        ("heartbeat", memory[2], valkey[2]),
        ("complete", memory[3], valkey[3]),
    ] {
        println!(
            "{name:>10}: in-memory {m:>7.2} µs/call, Valkey {v:>7.1} µs/call (one round trip)"
        );
    }
}

fn store_progress(server: &pf_test_services::Valkey) -> u64 {
    let s = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(server.url())).unwrap();
    s.job_progress("bench").unwrap().unwrap().files_completed
}
