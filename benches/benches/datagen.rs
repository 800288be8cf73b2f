//! Synthetic transaction generation speed (the benches and tests lean on it).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use pf_datagen::{GenOptions, generate};
use pf_types::{Compression, FileFormat};

fn generation(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    let out = std::env::temp_dir().join("paraflow-bench/datagen-out");
    let mut group = c.benchmark_group("datagen");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(ROWS));
    for (name, format, compression) in [
        ("parquet_4_files", FileFormat::Parquet, Compression::None),
        ("ndjson_gzip_4_files", FileFormat::Ndjson, Compression::Gzip),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = generate(&GenOptions {
                    files: 4,
                    format,
                    compression,
                    seed: 3,
                    ..GenOptions::new(out.clone(), ROWS)
                })
                .expect("generate");
                assert_eq!(report.rows, ROWS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, generation);
criterion_main!(benches);
