//! The Elasticsearch destination end to end, through the binaries, against two
//! independent servers that speak its API, run from their PyPI wheels on loopback
//! (installed by `testing/setup-services.sh`): noida-db (the Elasticsearch 8.15 API; not
//! Elasticsearch) and osmem-server (the OpenSearch 3.8 API, in memory; not OpenSearch).
//! Both index a few thousand documents a second, so the runs are small. Fault injection
//! stays with the `_bulk` protocol test server (`elasticsearch.rs`).

use std::path::{Path, PathBuf};

use pf_test_services::{SearchServer, SearchServerKind};
use pf_tests::{
    assert_accounted, assert_exit, discover, dlq_lines, es_worker, generate_data,
    output_with_stdin, read_summary,
};
use pf_types::{Compression, FileFormat};

const ROWS: u64 = 20_000;

/// `dir/worker.yaml`: fast retries, no progress lines, and `mappings` (YAML, indented
/// under `indexer.elasticsearch`).
fn write_config(dir: &Path, name: &str, mappings: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "worker:\n  progress: never\nindexer:\n  elasticsearch:\n    retry_base_ms: 10\n    \
             retry_max_ms: 100\n    mappings:\n      properties:\n{mappings}"
        ),
    )
    .unwrap();
    path
}

/// Set-up with mappings, an exact count, a second run that changes nothing, `create`
/// answering 409s counted as already indexed, and a mapping error in the record DLQ
/// with the server's own error type.
fn index_twice_create_and_reject(kind: SearchServerKind, banner: &str, mapping_error: &str) {
    let server = SearchServer::start(kind);
    let work = tempfile::tempdir().unwrap();
    // `pf-worker` over `data` into `index` of the server, with `config` and `extra` flags:
    // its output and summary.
    let run = |config: &Path, data: &Path, index: &str, extra: &[&str]| {
        let summary = work.path().join("summary.json");
        let _ = std::fs::remove_file(&summary);
        let out = output_with_stdin(
            es_worker(config, &server.url(), work.path())
                .args(["--es-index", index, "--es-setup"])
                .args(extra),
            &discover(&["--path", data.to_str().unwrap()]),
        );
        assert_exit(&out, 0);
        let summary = read_summary(&summary);
        assert_accounted(&summary);
        (out, summary)
    };
    let data = work.path().join("data");
    generate_data(&data, ROWS, 2, FileFormat::Parquet, Compression::None);
    let config = write_config(
        work.path(),
        "worker.yaml",
        "        amount: { type: double }\n        merchant_id: { type: keyword }\n",
    );

    let (first, s) = run(&config, &data, "transactions", &[]);
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(
        log.contains(banner),
        "{kind:?}: the server is named:\n{log}"
    );
    assert_eq!(s.totals.rows_indexed, ROWS);
    assert_eq!(s.indexer["indexed"], ROWS);
    assert_eq!(server.count("transactions"), ROWS, "{kind:?}");
    let (status, mapping) = server.call("GET", "/transactions/_mapping", None);
    assert_eq!(status, 200);
    assert_eq!(
        mapping["transactions"]["mappings"]["properties"]["amount"]["type"], "double",
        "{kind:?}: the set-up's mapping: {mapping}"
    );

    let (_, s) = run(&config, &data, "transactions", &[]);
    assert_eq!(s.indexer["indexed"], ROWS);
    assert_eq!(
        server.count("transactions"),
        ROWS,
        "{kind:?}: a second run overwrites by id, adds nothing"
    );

    let (_, s) = run(&config, &data, "transactions", &["--es-op-type", "create"]);
    assert_eq!(
        s.indexer["already_indexed"], ROWS,
        "{kind:?}: {:?}",
        s.indexer
    );
    assert_eq!(s.indexer["indexed"], ROWS);
    assert_eq!(s.totals.rows_failed, 0);
    assert_eq!(server.count("transactions"), ROWS);

    // transaction_id as a number: every document fails the mapping, and each is a
    // record-DLQ line carrying the server's reason; the files still complete.
    let small = work.path().join("small");
    generate_data(&small, 300, 1, FileFormat::Parquet, Compression::None);
    let strict = write_config(
        work.path(),
        "strict.yaml",
        "        transaction_id: { type: long }\n",
    );
    let (_, s) = run(&strict, &small, "strict", &[]);
    assert_eq!(s.files_completed, 1);
    assert_eq!(s.totals.rows_failed, 300, "{kind:?}");
    assert_eq!(s.indexer["rejected"], 300);
    let dlq = dlq_lines(&work.path().join("dlq"));
    assert_eq!(dlq.len(), 300);
    for line in &dlq {
        assert_eq!(line["stage"], "index");
        assert_eq!(line["class"], "record");
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains("HTTP 400") && error.contains(mapping_error),
            "{kind:?}: {error}"
        );
    }
    assert_eq!(server.count("strict"), 0);
}

#[test]
fn noida_db_speaking_elasticsearch_8_indexes_exactly() {
    index_twice_create_and_reject(
        SearchServerKind::Noida,
        "the server is Elasticsearch 8.15",
        "document_parsing_exception",
    );
}

#[test]
fn osmem_server_speaking_opensearch_3_indexes_exactly() {
    index_twice_create_and_reject(
        SearchServerKind::Osmem,
        "the server is OpenSearch 3.8",
        "mapper_parsing_exception",
    );
}
