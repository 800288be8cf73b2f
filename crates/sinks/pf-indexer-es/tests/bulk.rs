//! The indexer against the `_bulk` protocol test server: per-item outcomes, retries,
//! whole-request failures, ids, index names, set-up, gzip and auth.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use pf_bulk_test_server::{BulkTestServer, Faults, ServerOptions};
use pf_datagen::fixtures::doc_batches;
use pf_error::ErrorClass;
use pf_indexer_es::{ElasticsearchConfig, EsIndexerFactory, OpType};
use pf_traits::BulkLimits;
use pf_traits::{DocBatch, IndexerFactory};
use pf_types::{Stage, WorkItem};

fn batches(rows: u64) -> Vec<DocBatch> {
    doc_batches(7, rows, 4096)
}

fn item() -> WorkItem {
    let mut i = WorkItem::from_uri("file:///data/part-0.parquet").unwrap();
    i.etag = Some("etag-1".into());
    i
}

fn fast_settings(server: &BulkTestServer, index: &str) -> ElasticsearchConfig {
    ElasticsearchConfig {
        retry_base_ms: 5,
        retry_max_ms: 50,
        ..ElasticsearchConfig::for_endpoint(server.url(), index)
    }
}

/// The factory of `config` with bulk requests of at most 1,000 documents.
fn build(config: &ElasticsearchConfig) -> pf_error::Result<EsIndexerFactory> {
    EsIndexerFactory::build(
        config,
        BulkLimits {
            max_docs: 1000,
            ..BulkLimits::default()
        },
    )
}

/// A server with `faults` on a free loopback port.
fn faulty(faults: Faults) -> BulkTestServer {
    BulkTestServer::start_local(ServerOptions {
        faults,
        ..ServerOptions::default()
    })
    .unwrap()
}

/// A `high_value` alert of row `row` with `key`.
fn alert(row: u64, key: String) -> pf_types::Alert {
    pf_types::Alert {
        rule: "high_value".into(),
        severity: pf_types::Severity::High,
        uri: "file:///a".into(),
        row,
        key,
        details: serde_json::json!({"amount": 12000.0}),
    }
}

fn ids_every(docs: &[DocBatch], step: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut row = 0;
    for d in docs {
        let col = d
            .batch
            .column_by_name("transaction_id")
            .unwrap()
            .as_string::<i32>();
        for i in 0..d.num_rows() {
            if row % step == 0 {
                ids.insert(col.value(i).to_owned());
            }
            row += 1;
        }
    }
    ids
}

fn rows(docs: &[DocBatch]) -> u64 {
    docs.iter().map(|d| d.num_rows() as u64).sum()
}

#[test]
fn throttled_items_are_retried_and_rejected_ones_reported_with_the_reason() {
    let docs = batches(20_000);
    let rejected = ids_every(&docs, 400);
    let server = faulty(Faults::throttle_once_and_reject(0.1, rejected.clone()));
    let factory = build(&fast_settings(&server, "tx")).unwrap();
    let mut ix = factory.create().unwrap();
    let out = ix.index(&item(), &docs).unwrap();
    let n = rows(&docs);
    assert_eq!(rejected.len(), 50);
    assert_eq!(out.indexed, n - 50);
    assert_eq!(out.failures.len(), 50);
    for f in &out.failures {
        assert_eq!(f.stage, Stage::Index);
        assert_eq!(f.class, ErrorClass::Record);
        assert!(
            f.error.contains("HTTP 400") && f.error.contains("mapper_parsing_exception"),
            "{}",
            f.error
        );
        let record: serde_json::Value = serde_json::from_str(f.record.as_deref().unwrap()).unwrap();
        assert!(rejected.contains(record["transaction_id"].as_str().unwrap()));
    }
    assert_eq!(server.count("tx"), n - 50);
    assert_eq!(
        server.rewrites(),
        (0, 1),
        "every document written exactly once"
    );
    let c = factory.counters();
    let st = server.stats();
    assert!(
        st.items_throttled > 1000,
        "about 10% throttled: {}",
        st.items_throttled
    );
    assert_eq!(c.retried.load(Ordering::Relaxed), st.items_throttled);
    assert_eq!(c.sent.load(Ordering::Relaxed), n);
    assert_eq!(c.indexed.load(Ordering::Relaxed), n - 50);
    assert_eq!(c.rejected.load(Ordering::Relaxed), 50);
    assert_eq!(c.dlq.load(Ordering::Relaxed), 50);
    assert_eq!(c.abandoned.load(Ordering::Relaxed), 0);
    assert_eq!(st.items, n + st.items_throttled);
    assert_eq!(
        st.filter_paths.iter().collect::<Vec<_>>(),
        ["errors,items.*.status,items.*.error"]
    );
}

#[test]
fn ids_are_deterministic_and_create_counts_existing_documents_as_indexed() {
    let docs = batches(3000);
    let server = BulkTestServer::start().unwrap();
    let mut s = fast_settings(&server, "tx");
    s.op_type = OpType::Create;
    let factory = build(&s).unwrap();
    let mut ix = factory.create().unwrap();
    assert_eq!(ix.index(&item(), &docs).unwrap().indexed, 3000);
    let digest = server.digest();
    let again = ix.index(&item(), &docs).unwrap();
    assert_eq!(again.indexed, 3000);
    assert!(again.failures.is_empty());
    assert_eq!(server.count("tx"), 3000);
    assert_eq!(server.digest(), digest);
    assert_eq!(
        factory.counters().already_indexed.load(Ordering::Relaxed),
        3000
    );
    assert_eq!(server.stats().items_conflicts, 3000);
}

#[test]
fn id_field_and_daily_indices() {
    let docs = batches(5000);
    let server = BulkTestServer::start().unwrap();
    let mut s = fast_settings(&server, "tx");
    s.index = "tx-{yyyy.MM.dd}".into();
    s.id_field = Some("transaction_id".into());
    let factory = build(&s).unwrap();
    factory.create().unwrap().index(&item(), &docs).unwrap();
    assert_eq!(server.count("tx-*"), 5000);
    let indices = server.indices();
    assert!(
        indices.len() > 1,
        "generated data spans several days: {indices:?}"
    );
    assert!(
        indices
            .iter()
            .all(|i| i.starts_with("tx-20") && i.len() == "tx-2024.01.01".len())
    );
    // The document is findable by its transaction id in the index of its day.
    let first = &docs[0].batch;
    let id = first
        .column_by_name("transaction_id")
        .unwrap()
        .as_string::<i32>()
        .value(0);
    let found = indices.iter().filter_map(|i| server.doc(i, id)).count();
    assert_eq!(found, 1);
}

#[test]
fn whole_request_failures_are_retried_then_reported_as_transient() {
    let docs = batches(2000);
    let server = faulty(Faults {
        fail_requests: 2,
        drop_connections: 1,
        ..Faults::default()
    });
    let factory = build(&fast_settings(&server, "tx")).unwrap();
    let mut ix = factory.create().unwrap();
    assert_eq!(ix.index(&item(), &docs).unwrap().indexed, 2000);
    let c = factory.counters();
    assert_eq!(c.request_retries.load(Ordering::Relaxed), 3);
    assert_eq!(server.count("tx"), 2000);

    // Down for longer than the retries last: the call fails as transient.
    server.go_down_for(Duration::from_secs(3));
    let err = ix.index(&item(), &docs).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(c.abandoned.load(Ordering::Relaxed) > 0);
    let snapshot: std::collections::HashMap<_, _> = c.snapshot().into_iter().collect();
    assert_eq!(
        snapshot["sent"],
        snapshot["indexed"] + snapshot["rejected"] + snapshot["abandoned"]
    );
}

#[test]
fn gzip_bodies_and_credentials_reach_the_server() {
    let docs = batches(1500);
    let server = BulkTestServer::start_local(ServerOptions {
        auth: Some("ApiKey c2VjcmV0LWtleQ==".into()),
        ..ServerOptions::default()
    })
    .unwrap();
    let mut s = fast_settings(&server, "tx");
    s.compression = true;
    s.api_key = Some("c2VjcmV0LWtleQ==".into());
    let factory = build(&s).unwrap();
    factory.create().unwrap().index(&item(), &docs).unwrap();
    let st = server.stats();
    assert_eq!(st.bulk_requests, 2);
    assert_eq!(st.gzip_bulk_requests, 2);
    assert_eq!(st.unauthorized, 0);
    assert_eq!(server.count("tx"), 1500);
    let c = factory.counters();
    assert!(c.wire_bytes.load(Ordering::Relaxed) * 3 < c.body_bytes.load(Ordering::Relaxed));

    // Wrong credentials: refused as a whole, permanently.
    let mut bad = fast_settings(&server, "tx");
    bad.username = Some("elastic".into());
    bad.password = Some("wrong".into());
    let err = build(&bad)
        .unwrap()
        .create()
        .unwrap()
        .index(&item(), &docs)
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn setup_creates_the_index_or_template_once() {
    let server = BulkTestServer::start().unwrap();
    let mappings = serde_json::json!({"properties": {"amount": {"type": "double"}}});
    let mut s = fast_settings(&server, "tx");
    s.setup = true;
    s.mappings = Some(mappings.clone());
    s.index_settings = Some(serde_json::json!({"number_of_replicas": 0}));
    let factory = build(&s).unwrap();
    factory.setup().unwrap();
    factory.setup().unwrap();
    let (indices, _) = server.setup_requests();
    assert_eq!(indices["tx"]["mappings"], mappings);

    s.index = "tx-{yyyy.MM}".into();
    let factory = build(&s).unwrap();
    factory.setup().unwrap();
    factory.setup().unwrap();
    let (_, templates) = server.setup_requests();
    let t = &templates["paraflow-tx"];
    assert_eq!(t["index_patterns"], serde_json::json!(["tx-*"]));
    assert_eq!(t["template"]["mappings"], mappings);
}

#[test]
fn alerts_go_to_their_own_index_once() {
    use pf_traits::AlertSink;
    let server = BulkTestServer::start().unwrap();
    let factory = build(&fast_settings(&server, "tx")).unwrap();
    let sink = factory.alert_sink();
    let keyed = |key: &str| alert(1, key.into());
    sink.send(&[keyed("a"), keyed("b")]).unwrap();
    sink.send(&[keyed("a")]).unwrap();
    sink.flush().unwrap();
    assert_eq!(server.count("tx-alerts"), 2);
    assert_eq!(sink.totals(), (3, 0));
}

#[test]
fn alerts_of_a_failed_post_are_kept_for_the_next_flush() {
    use pf_traits::AlertSink;
    let server = BulkTestServer::start().unwrap();
    let factory = build(&fast_settings(&server, "tx")).unwrap();
    let sink = factory.alert_sink();
    let alerts: Vec<_> = (0..10)
        .map(|i| alert(i, format!("high_value|{i}")))
        .collect();
    sink.send(&alerts[..5]).unwrap();
    // Down for longer than every retry of the post: the flush fails as transient...
    server.go_down_for(Duration::from_secs(2));
    let err = sink.flush().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(server.count("tx-alerts"), 0);
    // ... and its alerts wait for the next flush with the ones raised since.
    sink.send(&alerts[5..]).unwrap();
    while server.is_down() {
        std::thread::sleep(Duration::from_millis(50));
    }
    sink.flush().unwrap();
    assert_eq!(server.count("tx-alerts"), 10);
}

#[test]
fn batches_with_unusable_rows_fail_only_those_rows() {
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(arrow::array::StringArray::from(vec![
                Some("a"),
                None,
                Some("c"),
            ])) as _,
        ),
        (
            "v",
            Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])) as _,
        ),
    ])
    .unwrap();
    let server = BulkTestServer::start().unwrap();
    let mut s = fast_settings(&server, "tx");
    s.id_field = Some("id".into());
    let factory = build(&s).unwrap();
    let out = factory
        .create()
        .unwrap()
        .index(&item(), &[DocBatch::contiguous(batch, 100)])
        .unwrap();
    assert_eq!(out.indexed, 2);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].row, Some(101));
    assert_eq!(out.failures[0].record.as_deref(), Some("{\"v\":2}"));
    assert_eq!(
        server.doc("tx", "c"),
        Some(serde_json::json!({"id": "c", "v": 3}))
    );
}

/// Several bulk requests in flight per thread: against a server that answers after
/// 100 ms, a chunk's requests overlap (the server sees more than one at once, never more
/// than `max_in_flight`) and every count stays exact; with 1, they never overlap.
#[test]
fn requests_overlap_up_to_max_in_flight_with_exact_counts() {
    let docs = batches(12_000);
    let n = rows(&docs);
    for in_flight in [1, 4] {
        let server = faulty(Faults {
            delay: Duration::from_millis(100),
            ..Faults::default()
        });
        let config = ElasticsearchConfig {
            max_in_flight: in_flight,
            ..fast_settings(&server, "tx")
        };
        let factory = build(&config).unwrap();
        let mut ix = factory.create().unwrap();
        let started = std::time::Instant::now();
        let out = ix.index(&item(), &docs).unwrap();
        let took = started.elapsed();
        assert_eq!(out.indexed, n);
        assert!(out.failures.is_empty());
        assert_eq!(server.count("tx"), n);
        let st = server.stats();
        assert_eq!(st.bulk_requests, n.div_ceil(1000));
        assert_eq!(st.items, n, "each document sent once");
        if in_flight == 1 {
            assert_eq!(st.max_bulk_in_flight, 1);
        } else {
            assert!(
                (2..=in_flight as u64).contains(&st.max_bulk_in_flight),
                "{} at once",
                st.max_bulk_in_flight
            );
        }
        println!(
            "max_in_flight {in_flight}: {n} documents in {} requests, {:.0} ms, at most {} at once",
            st.bulk_requests,
            took.as_secs_f64() * 1e3,
            st.max_bulk_in_flight
        );
    }
}
