//! One part of an input: a temporary file per partition, made visible together.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, DictionaryArray, Int32Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use pf_doc_json::json::date_bytes;
use pf_doc_json::{RecordTime, source_hash_hex};
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::DocBatch;
use pf_types::WorkItem;

use crate::{NAME, ParquetSinkConfig, Publish, writer_error};

/// The lineage column holding each row's input URI.
pub(crate) const SOURCE_URI: &str = "_source_uri";
/// The lineage column holding each row's ordinal in its input.
pub(crate) const SOURCE_ROW: &str = "_source_row";

/// Hive's name for the partition of rows whose key is null.
const DEFAULT_PARTITION: &str = "date=__HIVE_DEFAULT_PARTITION__";

/// The files one thread is writing for one input since its last commit.
pub(crate) struct Part {
    item_key: String,
    uri: String,
    /// `hex(xxh3_128(uri ‖ 0 ‖ etag))`: the first half of every file name.
    hash: String,
    /// `.<hex(xxh3_64(item key))>-`: how this item's temporary names start (the item
    /// key tells the ranges of one file apart).
    tmp_prefix: String,
    /// Partition directories already cleared of a dead attempt's temporary files.
    swept: BTreeSet<PathBuf>,
    root: PathBuf,
    tmp_tag: String,
    /// The open file of each partition directory (`""` when unpartitioned).
    open: BTreeMap<String, OpenFile>,
    /// Files closed before the commit (their partition's schema changed).
    closed: Vec<Staged>,
}

/// A file being written.
struct OpenFile {
    writer: ArrowWriter<File>,
    /// The schema every batch of this file has.
    schema: SchemaRef,
    staged: Staged,
}

/// A temporary file and the name it takes when committed.
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    bytes: u64,
}

impl Part {
    /// An empty part of `item`, whose files go under `root`.
    pub(crate) fn new(item_key: String, item: &WorkItem, root: &Path, tmp_tag: &str) -> Part {
        use xxhash_rust::xxh3::xxh3_64;
        let hash = source_hash_hex(&item.uri, item.etag.as_deref());
        let tmp_prefix = format!(".{:016x}-", xxh3_64(item_key.as_bytes()));
        Part {
            item_key,
            uri: item.uri.clone(),
            hash: String::from_utf8_lossy(&hash).into_owned(),
            tmp_prefix,
            swept: BTreeSet::new(),
            root: root.to_path_buf(),
            tmp_tag: tmp_tag.to_owned(),
            open: BTreeMap::new(),
            closed: Vec::new(),
        }
    }

    /// The work item key this part belongs to.
    pub(crate) fn item_key(&self) -> &str {
        &self.item_key
    }

    /// Encoded bytes so far: written to the files plus buffered row groups.
    pub(crate) fn encoded_bytes(&self) -> u64 {
        let open: u64 = self
            .open
            .values()
            .map(|f| (f.writer.bytes_written() + f.writer.in_progress_size()) as u64)
            .sum();
        open + self.closed.iter().map(|s| s.bytes).sum::<u64>()
    }

    /// Appends `docs`, each row to its partition's file.
    pub(crate) fn write(
        &mut self,
        docs: &DocBatch,
        config: &ParquetSinkConfig,
        properties: &WriterProperties,
    ) -> Result<()> {
        if docs.batch.num_rows() == 0 {
            return Ok(());
        }
        let with_lineage;
        let batch = if config.lineage {
            with_lineage = self.lineage(docs)?;
            &with_lineage
        } else {
            &docs.batch
        };
        let Some(column) = &config.partition_by else {
            return self.append(String::new(), batch, docs.ordinal(0), properties);
        };
        let days = self.days(batch, column)?;
        let first = days[0];
        if days.iter().all(|d| *d == first) {
            return self.append(partition_dir(first), batch, docs.ordinal(0), properties);
        }
        let mut rows_by_day: BTreeMap<Option<i64>, Vec<u32>> = BTreeMap::new();
        for (row, day) in days.iter().enumerate() {
            rows_by_day.entry(*day).or_default().push(row as u32);
        }
        for (day, rows) in rows_by_day {
            let first_ordinal = docs.ordinal(rows[0] as usize);
            let slice = take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|e| permanent(format!("cannot partition rows of {}: {e}", self.uri)))?;
            self.append(partition_dir(day), &slice, first_ordinal, properties)?;
        }
        Ok(())
    }

    /// `docs` with `_source_uri` and `_source_row` appended (unless the records already
    /// have such columns).
    fn lineage(&self, docs: &DocBatch) -> Result<RecordBatch> {
        let batch = &docs.batch;
        let schema = batch.schema();
        if schema.column_with_name(SOURCE_URI).is_some()
            || schema.column_with_name(SOURCE_ROW).is_some()
        {
            return Ok(batch.clone());
        }
        let rows = batch.num_rows();
        let uri: DictionaryArray<Int32Type> = DictionaryArray::new(
            Int32Array::from(vec![0; rows]),
            Arc::new(StringArray::from(vec![self.uri.as_str()])),
        );
        let row: UInt64Array = (0..rows).map(|i| docs.ordinal(i)).collect();
        let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            SOURCE_URI,
            uri.data_type().clone(),
            false,
        )));
        fields.push(Arc::new(Field::new(SOURCE_ROW, DataType::UInt64, false)));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(uri));
        columns.push(Arc::new(row));
        RecordBatch::try_new(
            Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
            columns,
        )
        .map_err(|e| permanent(format!("cannot add lineage columns to {}: {e}", self.uri)))
    }

    /// The day number of each row's time in `column`.
    fn days(&self, batch: &RecordBatch, column: &str) -> Result<Vec<Option<i64>>> {
        let array = batch.column_by_name(column).ok_or_else(|| {
            permanent(format!(
                "the partition column `{column}` (indexer.parquet.partition_by) is not a column of {}",
                self.uri
            ))
        })?;
        let time = RecordTime::new(array.as_ref()).map_err(|other| {
            permanent(format!(
                "the partition column `{column}` (indexer.parquet.partition_by) of {} has type {other}; expected a timestamp, date, epoch-millis integer or ISO-8601 string",
                self.uri
            ))
        })?;
        Ok((0..batch.num_rows())
            .map(|row| time.seconds(row).map(|s| s.div_euclid(86_400)))
            .collect())
    }

    /// Writes `batch` (whose first row has ordinal `first_ordinal`) to the open file of
    /// `partition`, opening one when there is none or the schema changed.
    fn append(
        &mut self,
        partition: String,
        batch: &RecordBatch,
        first_ordinal: u64,
        properties: &WriterProperties,
    ) -> Result<()> {
        if let Some(open) = self.open.get(&partition)
            && open.schema != *batch.schema_ref()
            && let Some(open) = self.open.remove(&partition)
        {
            // A widened schema (an NDJSON field seen late) starts a new file: one file,
            // one schema.
            self.closed.push(open.close()?);
        }
        let file = match self.open.entry(partition) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let dir = self.root.join(e.key());
                let name = format!("{}-{first_ordinal}.parquet", self.hash);
                let staged = Staged {
                    tmp: dir.join(format!(
                        "{}{first_ordinal}.parquet.{}.tmp",
                        self.tmp_prefix, self.tmp_tag
                    )),
                    dest: dir.join(name),
                    bytes: 0,
                };
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                if self.swept.insert(dir.clone()) {
                    sweep(&dir, &self.tmp_prefix);
                }
                let file = File::create(&staged.tmp).map_err(|e| io(&staged.tmp, e))?;
                let writer = ArrowWriter::try_new(file, batch.schema(), Some(properties.clone()))
                    .map_err(|e| writer_error(&staged.dest.display().to_string(), e))?;
                e.insert(OpenFile {
                    writer,
                    schema: batch.schema(),
                    staged,
                })
            }
        };
        file.writer
            .write(batch)
            .map_err(|e| writer_error(&file.staged.dest.display().to_string(), e))
    }

    /// Writes the largest buffered row groups early until at most `max` bytes are held.
    pub(crate) fn bound_memory(&mut self, max: usize) -> Result<()> {
        loop {
            let held: usize = self
                .open
                .values()
                .map(|f| f.writer.in_progress_size())
                .sum();
            if held <= max {
                return Ok(());
            }
            let Some(largest) = self
                .open
                .values_mut()
                .max_by_key(|f| f.writer.in_progress_size())
            else {
                return Ok(());
            };
            largest
                .writer
                .flush()
                .map_err(|e| writer_error(&largest.staged.dest.display().to_string(), e))?;
        }
    }

    /// Closes every file, makes it durable and gives it its final name (renamed in place,
    /// or uploaded under `root`'s place in the S3 data set); returns how many files and
    /// bytes became visible.
    pub(crate) fn commit(mut self, root: &Path, publish: &Publish) -> Result<(u64, u64)> {
        let open = std::mem::take(&mut self.open);
        for file in open.into_values() {
            self.closed.push(file.close()?);
        }
        let mut dirs = BTreeSet::new();
        let (mut files, mut bytes) = (0, 0);
        // Taken one at a time, so that on a failure the rest stay in `closed` and are
        // removed when the part is dropped.
        while let Some(staged) = self.closed.pop() {
            match publish {
                Publish::Rename => {
                    std::fs::rename(&staged.tmp, &staged.dest).map_err(|e| io(&staged.dest, e))?;
                    if let Some(dir) = staged.dest.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                }
                Publish::Upload { prefix, upload } => {
                    let uploaded = object_uri(prefix, root, &staged.dest)
                        .and_then(|uri| upload(&uri, &staged.tmp));
                    let _ = std::fs::remove_file(&staged.tmp);
                    uploaded?;
                }
            }
            files += 1;
            bytes += staged.bytes;
        }
        // The renames are durable once their directories are.
        for dir in dirs {
            File::open(&dir)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&dir, e))?;
        }
        Ok((files, bytes))
    }
}

/// The object a file committed as `dest` (under the staging `root`) becomes: its
/// relative path under `prefix`, with `/` separators.
fn object_uri(prefix: &str, root: &Path, dest: &Path) -> Result<String> {
    let relative = dest.strip_prefix(root).map_err(|_| {
        permanent(format!(
            "{} is not under the staging directory {}",
            dest.display(),
            root.display()
        ))
    })?;
    let mut uri = prefix.to_owned();
    for part in relative.components() {
        uri.push('/');
        uri.push_str(&part.as_os_str().to_string_lossy());
    }
    Ok(uri)
}

impl OpenFile {
    /// Writes the footer and makes the file durable under its temporary name.
    fn close(self) -> Result<Staged> {
        let OpenFile {
            writer, mut staged, ..
        } = self;
        let file = writer
            .into_inner()
            .map_err(|e| writer_error(&staged.dest.display().to_string(), e))?;
        file.sync_all().map_err(|e| io(&staged.tmp, e))?;
        staged.bytes = file.metadata().map_err(|e| io(&staged.tmp, e))?.len();
        Ok(staged)
    }
}

impl Drop for Part {
    /// A part dropped before its commit leaves nothing behind.
    fn drop(&mut self) {
        for file in std::mem::take(&mut self.open).into_values() {
            drop(file.writer);
            let _ = std::fs::remove_file(&file.staged.tmp);
        }
        for staged in self.closed.drain(..) {
            let _ = std::fs::remove_file(&staged.tmp);
        }
    }
}

/// Removes the temporary files a killed attempt at the same item left in `dir` (this
/// attempt holds the item's claim, so no live writer owns them).
fn sweep(dir: &Path, tmp_prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(tmp_prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `date=YYYY-MM-DD` of a day number (the default partition for none, or a year
/// outside 0..=9999).
fn partition_dir(day: Option<i64>) -> String {
    match day.and_then(date_bytes) {
        Some(date) => format!("date={}", String::from_utf8_lossy(&date)),
        None => DEFAULT_PARTITION.to_owned(),
    }
}

fn permanent(message: String) -> PfError {
    PfError::Indexer {
        destination: NAME,
        class: ErrorClass::Permanent,
        message,
    }
}

fn io(path: &Path, e: std::io::Error) -> PfError {
    PfError::io(path.display().to_string(), e)
}
