//! Parquet files written by pyarrow (installed into the test virtualenv by
//! `testing/setup-services.sh`) with every codec the format defines and the legacy
//! encodings common writers still produce, read through the binaries: the row count and
//! every value match what pyarrow wrote.

use std::path::Path;
use std::process::Command;

use pf_test_services::venv_dir;
use pf_tests::{STDOUT_WORKER, assert_exit, discover_and_process};

const ROWS: usize = 5_000;

/// Writes `<name>.parquet` files into `dir` with pyarrow: one per codec, plus INT96
/// timestamps, data page v2, and dictionary-encoded strings, each holding the same
/// `ROWS` rows.
const WRITE_FILES: &str = r#"
import sys, datetime
import pyarrow as pa, pyarrow.parquet as pq
out, rows = sys.argv[1], int(sys.argv[2])
base = datetime.datetime(2024, 1, 2, 3, 4, 5)
table = pa.table({
    "id": pa.array(range(rows), pa.int64()),
    "amount": pa.array([i * 0.25 for i in range(rows)], pa.float64()),
    "name": pa.array([None if i % 11 == 0 else f"name-{i % 97}" for i in range(rows)]),
    "ts": pa.array([base + datetime.timedelta(seconds=i) for i in range(rows)], pa.timestamp("us")),
})
for codec in ["none", "snappy", "gzip", "brotli", "lz4", "zstd"]:
    pq.write_table(table, f"{out}/codec-{codec}.parquet", compression=codec, row_group_size=2000)
pq.write_table(table, f"{out}/legacy-int96.parquet", use_deprecated_int96_timestamps=True, row_group_size=2000)
pq.write_table(table, f"{out}/legacy-page-v2.parquet", data_page_version="2.0", compression="snappy")
pq.write_table(table, f"{out}/legacy-plain.parquet", use_dictionary=False, compression="none", version="1.0")
"#;

fn write_files(dir: &Path) {
    let python = venv_dir().join("bin/python");
    let out = Command::new(&python)
        .args(["-c", WRITE_FILES, dir.to_str().unwrap(), &ROWS.to_string()])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run `testing/setup-services.sh` (it installs pyarrow)",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "pyarrow could not write the files (run `testing/setup-services.sh`, which installs \
         pyarrow):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_codec_and_legacy_encoding_reads_with_pyarrows_values() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "{names:?}");

    for name in &names {
        let file = dir.path().join(name);
        let out = discover_and_process(&["--path", file.to_str().unwrap()], &STDOUT_WORKER);
        assert_exit(&out, 0);
        let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), ROWS, "{name}: row count");
        for (i, doc) in docs.iter().enumerate() {
            assert_eq!(doc["id"], i as i64, "{name}: row {i}");
            assert_eq!(doc["amount"], i as f64 * 0.25, "{name}: row {i}");
            let name_value = (i % 11 != 0).then(|| format!("name-{}", i % 97));
            assert_eq!(
                doc["name"].as_str(),
                name_value.as_deref(),
                "{name}: row {i}"
            );
            let expected = chrono_free_timestamp(i);
            let ts = doc["ts"].as_str().unwrap_or_default();
            assert!(
                ts.starts_with(&expected),
                "{name}: row {i}: {ts} vs {expected}"
            );
        }
    }
}

/// `2024-01-02T03:04:05` plus `i` seconds, to the second, as the document encoder
/// writes timestamps (RFC 3339).
fn chrono_free_timestamp(i: usize) -> String {
    let secs = 3 * 3600 + 4 * 60 + 5 + i;
    let (day, secs) = (2 + secs / 86_400, secs % 86_400);
    format!(
        "2024-01-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
