//! Reading over S3 with real round-trip latency, through the release flow's binaries and
//! the project's S3 read test server (`pf-s3-test-server`: HEAD and ranged GET of a
//! directory, with injected latency; not S3, and not moto, which copies the whole object
//! for every ranged GET).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use parquet::file::reader::{FileReader, SerializedFileReader};
use pf_s3_test_server::S3TestServer;
use pf_tests::{
    STDOUT_WORKER, assert_exit, bin, discover_and_process, generate_data, output_with_stdin,
    transaction_ids,
};
use pf_types::{Compression, FileFormat};

/// The generated Parquet file in `dir`: its name, size and row-group count.
fn only_parquet_file(dir: &Path) -> (String, u64, usize) {
    let entry = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .expect("a generated parquet file");
    let file = std::fs::File::open(entry.path()).unwrap();
    let groups = SerializedFileReader::new(file)
        .unwrap()
        .metadata()
        .num_row_groups();
    let size = entry.metadata().unwrap().len();
    (
        entry.file_name().to_string_lossy().into_owned(),
        size,
        groups,
    )
}

#[test]
fn a_parquet_object_over_a_slow_s3_gives_the_local_documents_in_few_requests() {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("bench");
    generate_data(&bucket, 200_000, 1, FileFormat::Parquet, Compression::None);
    let (name, size, groups) = only_parquet_file(&bucket);
    assert!(groups > 1, "the file has several row groups to prefetch");
    let worker_args = STDOUT_WORKER;

    let local = discover_and_process(&["--path", bucket.to_str().unwrap()], &worker_args);
    assert_exit(&local, 0);
    let local_ids = transaction_ids(&local.stdout);
    assert_eq!(local_ids.len(), 200_000);

    let server = S3TestServer::start(
        root.path(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(20),
    )
    .unwrap();
    let item =
        format!("{{\"uri\":\"s3://bench/{name}\",\"size\":{size},\"format\":\"parquet\"}}\n");
    let remote = output_with_stdin(
        Command::new(bin("pf-worker"))
            .args(worker_args)
            .args(["--s3-endpoint", &server.url()])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1"),
        item.as_bytes(),
    );
    assert_exit(&remote, 0);
    assert_eq!(
        transaction_ids(&remote.stdout),
        local_ids,
        "the same documents in the same order as the local read"
    );

    let stats = server.stats();
    assert!(
        stats.bytes_sent <= size,
        "no byte fetched twice: {} of {size} bytes",
        stats.bytes_sent
    );
    // The footer, then the columns of each row group coalesced into one request (the
    // generated columns are small enough to fit their windows).
    assert!(
        stats.gets <= 1 + groups as u64,
        "{} GETs for {groups} row groups",
        stats.gets
    );
}
