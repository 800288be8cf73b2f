//! Writing one file of the data set.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PageCompression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use pf_error::PfError;
use pf_types::{Compression, FileFormat};

use crate::generator::TransactionGenerator;
use crate::ndjson::write_ndjson_batch;
use crate::pattern::Pattern;
use crate::plan::FilePlan;
use crate::schema::columns;
use crate::{GenOptions, GeneratedFile};

/// zstd level for Parquet pages and `.zst` files: level 1 is several times faster than
/// the default 3 and only a few percent larger on this data.
const ZSTD_LEVEL: i32 = 1;

/// NDJSON rows serialized per write, so the buffer stays around a megabyte and in cache
/// whatever the batch size.
const NDJSON_CHUNK_ROWS: usize = 4_096;

/// The name of file `index`: `part-00000.parquet`, `part-00001.ndjson.gz`, …
pub fn file_name(index: usize, format: FileFormat, compression: Compression) -> String {
    let suffix = match compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
    };
    format!("part-{index:05}.{}{suffix}", format.as_str())
}

/// What writing one file produced.
pub(crate) struct FileOutcome {
    pub(crate) file: GeneratedFile,
    pub(crate) planted: [u64; Pattern::ALL.len()],
    pub(crate) fraud_rows: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PfError + '_ {
    move |e| PfError::io(path.display().to_string(), e)
}

fn parquet_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> PfError + '_ {
    move |e| match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => PfError::io(path.display().to_string(), *io),
                Err(other) => PfError::io(path.display().to_string(), std::io::Error::other(other)),
            }
        }
        other => PfError::io(path.display().to_string(), std::io::Error::other(other)),
    }
}

/// Writes the file of `plan` under its final name.
///
/// The data goes to a hidden temporary name first and is renamed when complete, so a
/// discoverer watching the directory never lists a half-written part file.
pub(crate) fn write_file(options: &GenOptions, plan: &FilePlan) -> Result<FileOutcome, PfError> {
    let name = file_name(plan.file_index(), options.format, options.compression);
    let path = options.out_dir.join(&name);
    let tmp = options.out_dir.join(format!(".{name}.tmp"));
    let mut generator = TransactionGenerator::new(options.seed, plan, options.batch_rows);
    let written = match options.format {
        FileFormat::Parquet => write_parquet(&mut generator, options, &tmp, &path),
        FileFormat::Ndjson => write_ndjson(&mut generator, options.compression, &tmp, &path),
    };
    let result = written.and_then(|()| fs::rename(&tmp, &path).map_err(io_err(&path)));
    if let Err(e) = result {
        // Best effort: the write error is what the caller needs to see.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let bytes = fs::metadata(&path).map_err(io_err(&path))?.len();
    let mut planted = [0; Pattern::ALL.len()];
    for p in Pattern::ALL {
        planted[p as usize] = generator.planted(p);
    }
    Ok(FileOutcome {
        file: GeneratedFile {
            path,
            rows: plan.rows(),
            bytes,
        },
        planted,
        fraud_rows: generator.fraud_rows(),
    })
}

fn parquet_properties(row_group_rows: usize) -> Result<WriterProperties, PfError> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL)
        .map_err(|e| PfError::config("parquet.zstd_level", e.to_string()))?;
    let col = |name: &str| ColumnPath::from(name);
    Ok(WriterProperties::builder()
        .set_compression(PageCompression::ZSTD(level))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_dictionary_enabled(true)
        // Columns whose values rarely repeat only pay for a dictionary attempt; the
        // others (ids of accounts and merchants, IPs, codes) shrink several-fold with one.
        .set_column_dictionary_enabled(col(columns::TRANSACTION_ID), false)
        .set_column_dictionary_enabled(col(columns::AMOUNT), false)
        // Timestamps increase within a file: deltas encode them in a few bits each.
        .set_column_dictionary_enabled(col(columns::TIMESTAMP), false)
        .set_column_encoding(col(columns::TIMESTAMP), Encoding::DELTA_BINARY_PACKED)
        // Min/max of random ids and addresses prune nothing but cost a comparison per value.
        .set_column_statistics_enabled(col(columns::TRANSACTION_ID), EnabledStatistics::None)
        .set_column_statistics_enabled(col(columns::SOURCE_IP), EnabledStatistics::None)
        .build())
}

fn write_parquet(
    generator: &mut TransactionGenerator,
    options: &GenOptions,
    tmp: &Path,
    path: &Path,
) -> Result<(), PfError> {
    let props = parquet_properties(options.row_group_rows)?;
    let file = File::create(tmp).map_err(io_err(tmp))?;
    let mut writer =
        ArrowWriter::try_new(file, generator.schema(), Some(props)).map_err(parquet_err(path))?;
    for batch in generator.by_ref() {
        writer.write(&batch).map_err(parquet_err(path))?;
    }
    writer.close().map_err(parquet_err(path))?;
    Ok(())
}

/// The byte sink under NDJSON output; finishing is explicit so that errors from the
/// compressor's final flush are reported instead of being lost in a `Drop`.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(bytes),
            Sink::Gzip(w) => w.write_all(bytes),
            Sink::Zstd(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut inner = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
            Sink::Zstd(w) => w.finish()?,
        };
        inner.flush()
    }
}

fn write_ndjson(
    generator: &mut TransactionGenerator,
    compression: Compression,
    tmp: &Path,
    path: &Path,
) -> Result<(), PfError> {
    let file = BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(io_err(tmp))?);
    let mut sink = match compression {
        Compression::None => Sink::Plain(file),
        Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        )),
        Compression::Zstd => {
            Sink::Zstd(zstd::stream::write::Encoder::new(file, ZSTD_LEVEL).map_err(io_err(path))?)
        }
    };
    let mut buf = Vec::with_capacity(2 << 20);
    for batch in generator.by_ref() {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = NDJSON_CHUNK_ROWS.min(batch.num_rows() - offset);
            write_ndjson_batch(&batch.slice(offset, len), &mut buf)?;
            sink.write_all(&buf).map_err(io_err(path))?;
            buf.clear();
            offset += len;
        }
    }
    sink.finish().map_err(io_err(path))
}
