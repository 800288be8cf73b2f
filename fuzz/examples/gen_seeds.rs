//! Writes the seed corpora of the reader targets: small valid Parquet files (several row
//! groups, every page codec the workspace enables, dictionary and plain encodings,
//! data page v1 and v2, nulls, a list column) and NDJSON files (plain, gzip, zstd),
//! each behind the option header its target expects.
//!
//! Not a fuzz target; an ordinary program (no sanitizer flags needed):
//!
//! ```sh
//! cd fuzz && cargo run --example gen_seeds -- corpus
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

fn batch(rows: usize, nested: bool) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| i * 7 - 3)));
    let names: ArrayRef = Arc::new(StringArray::from_iter((0..rows).map(|i| {
        (i % 4 != 3).then(|| ["alpha", "beta", "gamma", "δ"][i % 4].repeat(1 + i % 3))
    })));
    let amounts: ArrayRef = Arc::new(Float64Array::from_iter(
        (0..rows).map(|i| (i % 5 != 0).then_some(i as f64 * 1.25)),
    ));
    let flags: ArrayRef = Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0))));
    let mut columns = vec![
        ("id", ids),
        ("name", names),
        ("amount", amounts),
        ("flag", flags),
    ];
    if nested {
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..rows as i64).map(|i| 1_767_225_600_000_000 + i * 1_000_000),
            )
            .with_timezone("UTC"),
        );
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            if i % 3 == 2 {
                tags.append_null();
            } else {
                for t in 0..i % 3 {
                    tags.values().append_value(format!("t{t}"));
                }
                tags.append(true);
            }
        }
        columns.push(("ts", ts));
        columns.push(("tags", Arc::new(tags.finish()) as ArrayRef));
    }
    RecordBatch::try_from_iter(columns).expect("valid batch")
}

fn parquet(batch: &RecordBatch, props: WriterProperties) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

fn write(dir: &Path, name: &str, header: &[u8], body: &[u8]) {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".to_owned()));

    // Parquet: header = 4 option bytes (see fuzz_targets/parquet_reader.rs).
    let pq = root.join("parquet_reader");
    std::fs::create_dir_all(&pq).unwrap();
    let base = |codec: Compression| {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .set_compression(codec)
    };
    let plain = base(Compression::UNCOMPRESSED);
    let snappy_v2_nodict = base(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_writer_version(WriterVersion::PARQUET_2_0);
    let zstd_small_pages = base(Compression::ZSTD(ZstdLevel::default()))
        .set_data_page_row_count_limit(2)
        .set_write_batch_size(2);
    let lz4_nostats = base(Compression::LZ4_RAW).set_statistics_enabled(EnabledStatistics::None);
    let gzip_one_group =
        WriterProperties::builder().set_compression(Compression::GZIP(GzipLevel::default()));
    for (name, header, data, props) in [
        ("plain_dict_3groups.bin", [0x00, 0, 0, 255], batch(10, false), plain),
        ("snappy_v2_nodict.bin", [0x1d, 3, 0, 0], batch(10, false), snappy_v2_nodict),
        ("zstd_nested.bin", [0x10, 2, 40, 200], batch(9, true), zstd_small_pages),
        ("lz4_nostats.bin", [0x05, 0, 10, 250], batch(6, true), lz4_nostats),
        ("gzip_one_group.bin", [0x1a, 1, 0, 255], batch(5, false), gzip_one_group),
    ] {
        write(&pq, name, &header, &parquet(&data, props.build()));
    }

    // NDJSON: header = 1 option byte (see fuzz_targets/ndjson_reader.rs).
    let nd = root.join("ndjson_reader");
    std::fs::create_dir_all(&nd).unwrap();
    let lines = concat!(
        "\u{feff}{\"s\":\"a\",\"i\":1,\"f\":1.5,\"b\":true,\"t\":\"2026-01-01T00:00:00Z\"}\n",
        "\n",
        "{\"s\":\"b\",\"i\":-2,\"f\":2,\"b\":false,\"t\":\"2026-01-01T00:00:01.5+02:00\",\"x\":{\"y\":[1,2]}}\r\n",
        "   \n",
        "{\"s\":null,\"i\":\"oops\",\"f\":null}\n",
        "{\"s\":\"c\"} {\"s\":\"d\"}\n",
        "not json\n",
        "[1,2,3]\n",
        "{\"s\":\"a very long value that goes past the small max line bytes limit of the fuzz options\",\"i\":3}\n",
        "{\"s\":\"\\u00e9\\n\",\"i\":9223372036854775807,\"f\":1e308,\"b\":null,\"t\":1767225600000000}\n",
        "{\"s\":\"last, no newline\",\"i\":4}"
    );
    write(&nd, "plain_infer.bin", &[0x00], lines.as_bytes());
    write(&nd, "plain_schema_small.bin", &[0x64 | 0x08], lines.as_bytes());
    write(&nd, "gzip_schema_batch3.bin", &[0x25], &gzip(lines.as_bytes()));
    let mut two_members = gzip(&lines.as_bytes()[..200]);
    two_members.extend(gzip(&lines.as_bytes()[200..]));
    write(&nd, "gzip_two_members_resume.bin", &[0xa1 | 0x10], &two_members);
    write(
        &nd,
        "zstd_small_resume.bin",
        &[0xe2],
        &zstd::encode_all(lines.as_bytes(), 3).unwrap(),
    );
    write(
        &nd,
        "plain_chunk7_resume.bin",
        &[0xa0],
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":\"x\"}\n\n{\"a\":3,\"b\":[true]}\n",
    );
}
