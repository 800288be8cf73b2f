//! Measures generation speed: `cargo run --release -p pf-datagen --example throughput
//! [-- ROWS FILES]` (default 2,000,000 rows in 4 files), for Parquet and each NDJSON
//! compression, in a temporary directory. Prints wall-clock rows/s and rows per CPU-second.

use std::time::Instant;

use pf_datagen::{GenOptions, generate};
use pf_types::{Compression, FileFormat};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let files: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    println!(
        "{rows} rows, {files} files, {} rayon threads",
        rayon::current_num_threads()
    );
    for (format, compression) in [
        (FileFormat::Parquet, Compression::None),
        (FileFormat::Ndjson, Compression::Gzip),
        (FileFormat::Ndjson, Compression::Zstd),
        (FileFormat::Ndjson, Compression::None),
    ] {
        let out_dir = dir
            .path()
            .join(format!("{format}-{}", compression.as_str()));
        let options = GenOptions {
            files,
            format,
            compression,
            ..GenOptions::new(out_dir, rows)
        };
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let report = generate(&options)?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
        println!(
            "{format:>7} {:>5}: {secs:6.2} s  {:>10.0} rows/s  {:>9} rows/CPU-s  \
             {:7.1} MB written ({:5.1} MB/s)  fraud {:.2} %",
            compression.as_str(),
            report.rows as f64 / secs,
            cpu.map_or("?".to_owned(), |c| format!("{:.0}", report.rows as f64 / c)),
            report.bytes() as f64 / 1e6,
            report.bytes() as f64 / 1e6 / secs,
            100.0 * report.fraud_rows as f64 / report.rows.max(1) as f64,
        );
    }
    Ok(())
}

/// User + system CPU time of this process, from `/proc` (Linux only).
///
/// Wall-clock rates swing with whatever else runs on a shared machine; rows per CPU-second
/// show what the code itself costs.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks are 100 per second on every mainstream Linux configuration.
    Some((utime + stime) / 100.0)
}
