//! Elasticsearch bulk path: Arrow → `_bulk` body serialization per thread (the
//! hand-written encoder against arrow-json's writer on the same batches), and one file
//! end to end (Parquet → fraud rules → bulk requests to the protocol test server).
//!
//! The end-to-end group prints where the indexer's time went (serialization, HTTP
//! round trips including the server's work, response parsing, backoff), from the
//! indexer's own counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use pf_benches::{dataset, files_of, peak_rss_mb, shared_parts};
use pf_bulk_test_server::{BulkTestServer, ServerOptions};
use pf_datagen::fixtures::doc_batches;
use pf_file_processor::FileProcessor;
use pf_indexer_es::{
    BatchEncoder, DocOptions, ElasticsearchConfig, EsIndexerFactory, IndexName, OpType,
};
use pf_traits::{BulkLimits, DocBatch, IndexerFactory, TransformFactory};
use pf_transform::{TransformConfig, TransformStage};
use pf_types::{Checkpoint, Compression, FileFormat, WorkItem};

const ROWS: u64 = 500_000;
/// A request body is cut at this size, as the indexer does (the buffer is reused).
const BODY_BYTES: usize = 5 << 20;

/// `rows` generated transactions in batches of 65,536, with their file ordinals.
fn transactions(rows: u64) -> Vec<DocBatch> {
    doc_batches(1, rows, 65_536)
}

fn serialize(c: &mut Criterion) {
    let docs = transactions(ROWS);
    let item = WorkItem::from_uri("file:///bench/part-00000.parquet").expect("work item");
    let options = DocOptions {
        index: IndexName::Fixed("transactions".into()),
        id_field: None,
        op_type: OpType::Index,
    };
    let mut body = Vec::with_capacity(BODY_BYTES + (64 << 10));
    // Bytes per document, for MB/s.
    let total = encode_bulk(&docs, &options, &item, &mut body);
    println!(
        "es_bulk: {ROWS} transactions, {:.1} bulk bytes/row (action + source lines)",
        total as f64 / ROWS as f64
    );

    let mut group = c.benchmark_group("es_bulk_serialize");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("hand_written_action_and_source", |b| {
        b.iter(|| encode_bulk(&docs, &options, &item, &mut body))
    });
    // arrow-json writes the sources only (no action lines, no ids): a lower bound of
    // what building bulk bodies with it would cost. Without chrono-tz it only formats
    // offset time zones, so the (same) timestamps are relabelled "+00:00".
    let offset_docs: Vec<arrow::array::RecordBatch> =
        docs.iter().map(|d| utc_as_offset(&d.batch)).collect();
    let mut out = Vec::with_capacity(BODY_BYTES + (64 << 10));
    group.bench_function("arrow_json_sources_only", |b| {
        b.iter(|| encode_arrow_json(&offset_docs, &mut out))
    });
    group.finish();

    // The machine may be shared: rows per second of this thread's CPU time (Linux
    // schedstat) is the per-thread rate without the other processes' share.
    let mut hand = || {
        encode_bulk(&docs, &options, &item, &mut body);
    };
    report_cpu_rate("hand_written_action_and_source", &mut hand);
    let mut arrow_json = || {
        encode_arrow_json(&offset_docs, &mut out);
    };
    report_cpu_rate("arrow_json_sources_only", &mut arrow_json);
}

/// One pass of the hand-written encoder over `docs` into `body`, cut (cleared) at
/// [`BODY_BYTES`] as the indexer does; returns the bulk bytes written in all.
fn encode_bulk(
    docs: &[DocBatch],
    options: &DocOptions,
    item: &WorkItem,
    body: &mut Vec<u8>,
) -> usize {
    body.clear();
    let mut total = 0;
    for d in docs {
        let mut enc = BatchEncoder::new(options, item, &d.batch).expect("encoder");
        for row in 0..d.num_rows() {
            enc.write_row(row, d.ordinal(row), body).expect("row");
            if body.len() >= BODY_BYTES {
                total += body.len();
                body.clear();
            }
        }
    }
    total + body.len()
}

/// One pass of arrow-json's writer over `batches` into `out`, cut like [`encode_bulk`].
fn encode_arrow_json(batches: &[arrow::array::RecordBatch], out: &mut Vec<u8>) -> usize {
    out.clear();
    for batch in batches {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
        w.write(batch).expect("arrow-json");
        w.finish().expect("arrow-json");
        if out.len() >= BODY_BYTES {
            out.clear();
        }
    }
    out.len()
}

/// This thread's CPU time so far, ns (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn report_cpu_rate(name: &str, run: &mut dyn FnMut()) {
    const RUNS: u64 = 10;
    let (Some(cpu0), wall0) = (thread_cpu_ns(), std::time::Instant::now()) else {
        return;
    };
    for _ in 0..RUNS {
        run();
    }
    let cpu = thread_cpu_ns().unwrap_or(cpu0).saturating_sub(cpu0) as f64 / 1e9;
    let wall = wall0.elapsed().as_secs_f64();
    println!(
        "es_bulk_serialize/{name}: {:.2} M rows per CPU-second of one thread ({:.2} M rows/s wall, CPU share {:.0}%)",
        (RUNS * ROWS) as f64 / cpu / 1e6,
        (RUNS * ROWS) as f64 / wall / 1e6,
        100.0 * cpu / wall
    );
}

fn utc_as_offset(batch: &arrow::array::RecordBatch) -> arrow::array::RecordBatch {
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let dt = DataType::Timestamp(*unit, Some("+00:00".into()));
                columns.push(arrow::compute::cast(c, &dt).expect("relabel time zone"));
                fields.push(Field::new(f.name(), dt, f.is_nullable()));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    arrow::array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn end_to_end(c: &mut Criterion) {
    let dir = dataset(1_000_000, 1, FileFormat::Parquet, Compression::None);
    let file = files_of(&dir).remove(0);
    let item = WorkItem::from_uri(file.display().to_string()).expect("work item");
    let rules = std::env::temp_dir().join("paraflow-bench/es-rules.yaml");
    std::fs::create_dir_all(rules.parent().expect("dir")).expect("bench dir");
    // The shipped rules that need no enrichment tables.
    std::fs::write(
        &rules,
        "threshold: 50\nrules:\n\
         - { name: high_value, condition: \"amount > 10000.0\", severity: high, score: 50 }\n\
         - { name: rapid_activity, window: { key: account_id, time: timestamp, seconds: 60, min_count: 5 }, severity: medium, score: 30 }\n\
         - { name: unusual_hour, condition: \"hour(timestamp) >= 1 && hour(timestamp) < 5\", severity: low, score: 10 }\n",
    )
    .expect("rules");
    let stage = Arc::new(
        TransformStage::load(TransformConfig {
            rules: Some(rules),
            ..TransformConfig::default()
        })
        .expect("rules stage"),
    );
    let server = BulkTestServer::start_with(
        "127.0.0.1:0".parse().expect("addr"),
        ServerOptions {
            keep_sources: false,
            ..ServerOptions::default()
        },
    )
    .expect("test server");
    let factory = EsIndexerFactory::build(
        &ElasticsearchConfig::for_endpoint(server.url(), "transactions"),
        BulkLimits::default(),
    )
    .expect("indexer");
    let counters = factory.counters();
    let dlq = std::env::temp_dir().join("paraflow-bench/dlq");
    let mut processor = FileProcessor::new(
        shared_parts(&dlq),
        stage.create().expect("transform"),
        factory.create().expect("indexer"),
    );
    let mut group = c.benchmark_group("es_bulk_end_to_end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(1_000_000));
    let started = std::time::Instant::now();
    group.bench_function("parquet_rules_bulk_to_test_server_1_thread", |b| {
        b.iter(|| {
            let stats = processor
                .process(&item, &Checkpoint::default(), &mut |_| Ok(()))
                .expect("process");
            assert_eq!(stats.rows_indexed, 1_000_000);
        })
    });
    group.finish();
    if counters.requests.load(Ordering::Relaxed) == 0 {
        // Filtered out on the command line.
        return;
    }
    let wall = started.elapsed().as_secs_f64();
    let ms = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
    let (ser, http, parse, comp, wait) = (
        ms(&counters.serialize_ns),
        ms(&counters.http_ns),
        ms(&counters.parse_ns),
        ms(&counters.compress_ns),
        ms(&counters.backoff_ns),
    );
    let total = wall * 1000.0;
    println!(
        "es_bulk_end_to_end time shares over {:.1} s (criterion warm-up included): serialization {:.1}%, HTTP round trips {:.1}%, response parsing {:.1}%, compression {:.1}%, backoff {:.1}%, rest (Parquet, rules, accumulation) {:.1}%; {} requests, {} documents",
        wall,
        100.0 * ser / total,
        100.0 * http / total,
        100.0 * parse / total,
        100.0 * comp / total,
        100.0 * wait / total,
        100.0 * (total - ser - http - parse - comp - wait) / total,
        counters.requests.load(Ordering::Relaxed),
        counters.indexed.load(Ordering::Relaxed),
    );
    println!("peak RSS {:.1} MiB", peak_rss_mb());
}

/// The indexer alone against a bulk endpoint that answers after 20 ms: 1 request in
/// flight per thread against 4 (`indexer.elasticsearch.max_in_flight`).
fn in_flight(c: &mut Criterion) {
    const DOCS: u64 = 100_000;
    let docs = transactions(DOCS);
    let item = WorkItem::from_uri("file:///bench/in-flight.parquet").expect("work item");
    let server = BulkTestServer::start_with(
        "127.0.0.1:0".parse().expect("addr"),
        ServerOptions {
            keep_sources: false,
            faults: pf_bulk_test_server::Faults {
                delay: Duration::from_millis(20),
                ..pf_bulk_test_server::Faults::default()
            },
            ..ServerOptions::default()
        },
    )
    .expect("test server");
    let mut group = c.benchmark_group("es_bulk_in_flight_20ms_server");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(DOCS));
    for n in [1, 4] {
        let factory = EsIndexerFactory::build(
            &ElasticsearchConfig {
                max_in_flight: n,
                ..ElasticsearchConfig::for_endpoint(server.url(), "in-flight")
            },
            BulkLimits::default(),
        )
        .expect("indexer");
        let mut indexer = factory.create().expect("indexer");
        group.bench_function(format!("max_in_flight_{n}"), |b| {
            b.iter(|| {
                let out = indexer.index(&item, &docs).expect("index");
                assert_eq!(out.indexed, DOCS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, serialize, end_to_end, in_flight);
criterion_main!(benches);
