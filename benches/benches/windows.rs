//! The window store per event: the in-process store against the shared Valkey store (a
//! real `valkey-server` from the project virtualenv on a loopback port), on the generated
//! transactions with the shipped rapid-activity rule (5 events of one account in 60 s).
//!
//! Besides criterion's rows/s, it prints the server's own work per event: the CPU time
//! of its main thread (`INFO cpu`, user + system, so command parsing and replies are
//! included) ÷ events, which is what sizes a Valkey fleet (see
//! `crates/coordination/pf-coordinator/DESIGN.md`).

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

/// CPU seconds the server's main thread has used so far (user + system).
fn server_cpu_secs(url: &str) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut con).unwrap();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    field("used_cpu_user_main_thread") + field("used_cpu_sys_main_thread")
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
    let cpu_before = server_cpu_secs(&url);
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
    let usec = (server_cpu_secs(&url) - cpu_before) * 1e6;
    println!(
        "valkey server: {:.2} µs of CPU per event ({events} events); one node at 100% of a \
         core: {:.0} k events/s",
        usec / events as f64,
        events as f64 / usec * 1e3,
    );
}

criterion_group!(benches, windows);
criterion_main!(benches);
