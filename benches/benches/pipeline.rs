//! Reader → transform → stats, per thread and across threads.
//!
//! Throughput is reported in rows (criterion "elements"); each group prints the bytes
//! per row of its data so MB/s follows, and the peak RSS at the end.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use pf_benches::{dataset, files_of, peak_rss_mb, shared_parts, stats_processor};
use pf_coordinator::MemoryMetadataStore;
use pf_indexer_stdout::{LocalDestination, LocalIndexerFactory};
use pf_queue_memory::MemoryQueue;
use pf_traits::IdentityTransform;
use pf_types::{Checkpoint, Compression, FileFormat, WorkItem};
use pf_worker::{Worker, WorkerComponents, WorkerSettings};

const ROWS: u64 = 2_000_000;

fn single_file(c: &mut Criterion, name: &str, format: FileFormat, compression: Compression) {
    let dir = dataset(ROWS, 1, format, compression);
    let file = files_of(&dir).remove(0);
    let bytes = std::fs::metadata(&file).expect("data file").len();
    println!(
        "{name}: {ROWS} rows, {bytes} bytes ({:.1} bytes/row)",
        bytes as f64 / ROWS as f64
    );
    let item = WorkItem::from_uri(file.display().to_string()).expect("work item");
    let dlq = tempfile_dir();
    let mut processor = stats_processor(shared_parts(&dlq));
    let mut group = c.benchmark_group("single_thread");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function(name, |b| {
        b.iter(|| {
            let stats = processor
                .process(&item, &Checkpoint::default(), &mut |_| Ok(()))
                .expect("process");
            assert_eq!(stats.rows_indexed, ROWS);
        })
    });
    group.finish();
}

fn tempfile_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("paraflow-bench/dlq")
}

fn parquet_to_stats(c: &mut Criterion) {
    single_file(
        c,
        "parquet_zstd_to_stats",
        FileFormat::Parquet,
        Compression::None,
    );
}

fn ndjson_to_stats(c: &mut Criterion) {
    single_file(c, "ndjson_to_stats", FileFormat::Ndjson, Compression::None);
    single_file(
        c,
        "ndjson_gzip_to_stats",
        FileFormat::Ndjson,
        Compression::Gzip,
    );
}

/// The whole worker (queue, claims, pool) over 8 files with 1 and 2 threads.
fn thread_scaling(c: &mut Criterion) {
    let dir = dataset(ROWS, 8, FileFormat::Parquet, Compression::None);
    let files = files_of(&dir);
    let mut group = c.benchmark_group("worker_parquet_8_files");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(ROWS));
    for threads in [1usize, 2] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{threads}_threads")),
            &threads,
            |b, &threads| {
                b.iter(|| {
                    let queue = Arc::new(MemoryQueue::default());
                    for f in &files {
                        queue.push(WorkItem::from_uri(f.display().to_string()).expect("item"));
                    }
                    queue.close();
                    let worker = Worker::new(
                        WorkerSettings {
                            threads,
                            ..WorkerSettings::default()
                        },
                        WorkerComponents {
                            queue,
                            metadata: Arc::new(MemoryMetadataStore::default()),
                            parts: shared_parts(&tempfile_dir()),
                            transforms: Arc::new(IdentityTransform),
                            indexers: Arc::new(LocalIndexerFactory::new(LocalDestination::Stats)),
                        },
                    );
                    let summary = worker.run().expect("run");
                    assert_eq!(summary.totals.rows_indexed, ROWS);
                })
            },
        );
    }
    group.finish();
    println!(
        "peak RSS of the benchmark process: {:.1} MiB",
        peak_rss_mb()
    );
}

criterion_group!(benches, parquet_to_stats, ndjson_to_stats, thread_scaling);
criterion_main!(benches);
