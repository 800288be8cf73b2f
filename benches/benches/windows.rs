//! The window store per event: the in-process store against the shared Valkey store (a
//! real `valkey-server` from the project virtualenv on a loopback port), on the generated
//! transactions with the shipped rapid-activity rule (5 events of one account in 60 s).
//!
//! Besides criterion's rows/s, it prints the server's own work per event, read from
//! `INFO commandstats` (`cmdstat_evalsha` µs ÷ events), which is what sizes a Valkey
//! fleet (see `crates/coordination/pf-coordinator/DESIGN.md`).

use std::time::Duration;

use arrow::array::RecordBatch;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use pf_coordinator::{ValkeyConfig, ValkeyWindowOptions, ValkeyWindowStore};
use pf_datagen::TransactionGenerator;
use pf_datagen::fixtures::observe_rapid_activity;
use pf_rules::MemoryWindowStore;
use pf_traits::WindowStore;

const ROWS: u64 = 262_144;
const URI: &str = "s3://bench/transactions.parquet";

fn observe_all(store: &dyn WindowStore, batches: &[RecordBatch]) -> usize {
    let mut first = 0u64;
    let mut alerts = 0;
    for b in batches {
        let outcome = observe_rapid_activity(store, URI, b, first).unwrap();
        alerts += outcome.alerts.len();
        first += b.num_rows() as u64;
    }
    alerts
}

/// `cmdstat_evalsha` µs and calls so far.
fn evalsha_stats(url: &str) -> (f64, f64) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap_or("");
    let field = |name: &str| {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("usec"), field("calls"))
}

fn windows(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = TransactionGenerator::single_file(42, ROWS, 65_536).collect();
    let server = pf_test_services::Valkey::start();
    let url = server.url();
    let mut group = c.benchmark_group("window_store");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("in_process", |b| {
        b.iter_batched(
            MemoryWindowStore::new,
            |store| observe_all(&store, &batches),
            BatchSize::PerIteration,
        )
    });
    let mut round = 0;
    let (usec_before, calls_before) = evalsha_stats(&url);
    let mut events = 0u64;
    group.bench_function("valkey", |b| {
        b.iter_batched(
            || {
                // A fresh key prefix per run: every run starts from empty windows.
                round += 1;
                ValkeyWindowStore::connect(
                    &ValkeyConfig {
                        key_prefix: format!("bench{round}:"),
                        ..ValkeyConfig::for_url(&url)
                    },
                    ValkeyWindowOptions::default(),
                )
                .unwrap()
            },
            |store| {
                events += ROWS;
                observe_all(&store, &batches)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let (usec_after, calls_after) = evalsha_stats(&url);
    let usec = usec_after - usec_before;
    println!(
        "valkey server: {:.2} µs per event ({} events, {:.0} script calls, {:.0} µs per call); \
         one node at 100% of a core: {:.0} k events/s",
        usec / events as f64,
        events,
        calls_after - calls_before,
        usec / (calls_after - calls_before).max(1.0),
        events as f64 / usec * 1e3,
    );
}

criterion_group!(benches, windows);
criterion_main!(benches);
