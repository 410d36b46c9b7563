//! The encrypted file store: dataset versions and quarantined results as Parquet with modular
//! encryption (AES-GCM, encrypted footer: plaintext statistics would reveal values).
//!
//! Files are written under a temporary name, fsynced, renamed and the directory fsynced; only
//! then may the caller commit the metadata. Anything left with the temporary suffix is an orphan.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::basic::Compression;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::error::{EngineError, Result};
use crate::keys::DataKey;

/// Suffix of files being written; such files are removed at startup.
pub const TMP_SUFFIX: &str = ".tmp";
/// The one data file of a dataset version or result.
pub const DATA_FILE: &str = "part-0.parquet";

/// Where a dataset version's files live.
pub fn dataset_dir(data_dir: &Path, dataset_id: &str, version: u32) -> PathBuf {
    data_dir
        .join("datasets")
        .join(dataset_id)
        .join(format!("v{version}"))
}

/// Where a dataset version's development sample lives.
pub fn dev_dir(data_dir: &Path, dataset_id: &str, version: u32) -> PathBuf {
    data_dir
        .join("dev")
        .join(dataset_id)
        .join(format!("v{version}"))
}

/// Where a job's quarantined result lives.
pub fn result_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join("results").join(job_id)
}

/// The AAD prefix binding a file's ciphertext to its identity, so files cannot be swapped.
pub(crate) fn aad_for(object: &str) -> Vec<u8> {
    format!("erhai:{object}").into_bytes()
}

pub(crate) fn decryption_properties(
    key: &DataKey,
    object: &str,
) -> Result<Arc<FileDecryptionProperties>> {
    Ok(FileDecryptionProperties::builder(key.bytes())
        .with_aad_prefix(aad_for(object))
        .build()?)
}

/// Rows of one row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// An encrypted Parquet file being written. Dropping it without [`EncryptedWriter::finish`]
/// removes the temporary file. Batches gather into row groups whose columns are encoded and
/// encrypted in parallel, one thread per core (a single-threaded writer made registration wait
/// on one core).
pub struct EncryptedWriter {
    writer: Option<SerializedFileWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_groups: usize,
    tmp: PathBuf,
    target: PathBuf,
    rows: u64,
}

impl EncryptedWriter {
    /// Starts writing `dir/part-0.parquet` encrypted with `key`, bound to `object`.
    pub fn create(dir: &Path, schema: SchemaRef, key: &DataKey, object: &str) -> Result<Self> {
        let encryption = FileEncryptionProperties::builder(key.bytes())
            .with_aad_prefix(aad_for(object))
            .build()?;
        Self::open(dir, schema, Some(encryption))
    }

    /// The same file, unencrypted: only for measuring what encryption costs.
    #[cfg(feature = "bench-plaintext")]
    pub fn create_plaintext_for_benchmarks(dir: &Path, schema: SchemaRef) -> Result<Self> {
        Self::open(dir, schema, None)
    }

    fn open(
        dir: &Path,
        schema: SchemaRef,
        encryption: Option<std::sync::Arc<FileEncryptionProperties>>,
    ) -> Result<Self> {
        fs::create_dir_all(dir).map_err(EngineError::io(format!("creating {}", dir.display())))?;
        let target = dir.join(DATA_FILE);
        let tmp = dir.join(format!("{DATA_FILE}{TMP_SUFFIX}"));
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        if let Some(encryption) = encryption {
            props = props.with_file_encryption_properties(encryption);
        }
        let props = props.build();
        let file =
            File::create(&tmp).map_err(EngineError::io(format!("creating {}", tmp.display())))?;
        // The Arrow writer converts the schema and records it in the footer; the row groups
        // are then written column-parallel through its factory.
        let (writer, factory) =
            ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(EncryptedWriter {
            writer: Some(writer),
            factory,
            schema,
            pending: Vec::new(),
            pending_rows: 0,
            row_groups: 0,
            tmp,
            target,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.writer.is_none() {
            return Err(EngineError::Parquet("writer already finished".into()));
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(EngineError::BadData(
                "a record batch's schema differs from the file's".into(),
            ));
        }
        self.rows += batch.num_rows() as u64;
        self.pending_rows += batch.num_rows();
        self.pending.push(batch.clone());
        while self.pending_rows >= ROW_GROUP_ROWS {
            let group = self.take_rows(ROW_GROUP_ROWS);
            self.write_row_group(&group)?;
        }
        Ok(())
    }

    /// The first `n` pending rows, as batches.
    fn take_rows(&mut self, n: usize) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 && !self.pending.is_empty() {
            let b = self.pending.remove(0);
            if b.num_rows() <= left {
                left -= b.num_rows();
                out.push(b);
            } else {
                out.push(b.slice(0, left));
                self.pending.insert(0, b.slice(left, b.num_rows() - left));
                left = 0;
            }
        }
        self.pending_rows -= n - left;
        out
    }

    /// Encodes one row group's columns on all cores and appends them to the file.
    fn write_row_group(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        let mut leaves: Vec<Vec<ArrowLeafColumn>> = writers.iter().map(|_| Vec::new()).collect();
        for b in batches {
            let mut column = 0;
            for (array, field) in b.columns().iter().zip(self.schema.fields()) {
                for leaf in compute_leaves(field, array)? {
                    leaves
                        .get_mut(column)
                        .ok_or_else(|| EngineError::Parquet("more leaves than columns".into()))?
                        .push(leaf);
                    column += 1;
                }
            }
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, writers.len().max(1));
        let mut work: Vec<Vec<(usize, ArrowColumnWriter, Vec<ArrowLeafColumn>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (i, (w, l)) in writers.into_iter().zip(leaves).enumerate() {
            work[i % threads].push((i, w, l));
        }
        let mut chunks: Vec<(usize, ArrowColumnChunk)> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .into_iter()
                .map(|items| {
                    scope.spawn(move || -> Result<Vec<(usize, ArrowColumnChunk)>> {
                        items
                            .into_iter()
                            .map(|(i, mut w, leaves)| {
                                for l in &leaves {
                                    w.write(l)?;
                                }
                                Ok((i, w.close()?))
                            })
                            .collect()
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(
                    h.join()
                        .map_err(|_| EngineError::Parquet("a column encoder panicked".into()))??,
                );
            }
            Ok::<_, EngineError>(all)
        })?;
        chunks.sort_by_key(|(i, _)| *i);
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| EngineError::Parquet("writer already finished".into()))?;
        let mut row_group = writer.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes, fsyncs and renames the file into place; returns its size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        if self.pending_rows > 0 {
            let rest = self.take_rows(self.pending_rows);
            self.write_row_group(&rest)?;
        }
        let w = self
            .writer
            .take()
            .ok_or_else(|| EngineError::Parquet("writer already finished".into()))?;
        let file = w.into_inner()?;
        file.sync_all()
            .map_err(EngineError::io("fsync of data file"))?;
        let size = file
            .metadata()
            .map_err(EngineError::io("stat of data file"))?
            .len();
        drop(file);
        fs::rename(&self.tmp, &self.target)
            .map_err(EngineError::io("renaming data file into place"))?;
        if let Some(dir) = self.target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(EngineError::io("fsync of data directory"))?;
        }
        Ok(size)
    }
}

impl Drop for EncryptedWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a whole encrypted Parquet file (a quarantined result: small by construction).
pub fn read_encrypted(
    path: &Path,
    key: &DataKey,
    object: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).map_err(EngineError::io(format!("opening {}", path.display())))?;
    let options = ArrowReaderOptions::new()
        .with_file_decryption_properties(decryption_properties(key, object)?);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .map(|b| b.map_err(EngineError::from))
        .collect::<Result<_>>()?;
    Ok((schema, batches))
}

/// The files under `dir`, recursively.
pub(crate) fn count_files(dir: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += count_files(&entry.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// Removes files left half-written by a crash under `data_dir`; returns how many.
pub fn remove_orphans(data_dir: &Path) -> Result<usize> {
    fn walk(dir: &Path, removed: &mut usize) -> std::io::Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, removed)?;
            } else if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
                *removed += 1;
            }
        }
        Ok(())
    }
    let mut removed = 0;
    for sub in ["datasets", "results"] {
        walk(&data_dir.join(sub), &mut removed)
            .map_err(EngineError::io("removing orphaned files"))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn row_groups_split_batches_at_their_size_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let key = DataKey::generate().expect("key");
        let mut w =
            EncryptedWriter::create(dir.path(), schema.clone(), &key, "ds/v2").expect("writer");
        let total = 2 * ROW_GROUP_ROWS + 1234;
        let mut start = 0;
        while start < total {
            let n = (total - start).min(100_000);
            let ids = arrow::array::Int64Array::from_iter_values(start as i64..(start + n) as i64);
            let text = StringArray::from_iter(
                (start..start + n).map(|i| (i % 3 != 0).then(|| i.to_string())),
            );
            w.write(
                &RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(text)])
                    .expect("batch"),
            )
            .expect("write");
            start += n;
        }
        assert_eq!(w.rows(), total as u64);
        w.finish().expect("finish");
        let path = dir.path().join(DATA_FILE);
        let options = ArrowReaderOptions::new()
            .with_file_decryption_properties(decryption_properties(&key, "ds/v2").expect("props"));
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(&path).expect("open"),
            options,
        )
        .expect("reader");
        assert_eq!(builder.metadata().num_row_groups(), 3);
        let (_, back) = read_encrypted(&path, &key, "ds/v2").expect("decrypt");
        let all = arrow::compute::concat_batches(&schema, &back).expect("concat");
        assert_eq!(all.num_rows(), total);
        let ids = all
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("ids");
        assert!(ids.values().iter().enumerate().all(|(i, v)| *v == i as i64));
        assert_eq!(all.column(1).null_count(), total.div_ceil(3));
    }

    #[test]
    fn encrypted_round_trip_and_no_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                "SECRET-VALUE-洱海";
                100
            ]))],
        )
        .expect("batch");
        let key = DataKey::generate().expect("key");
        let mut w = EncryptedWriter::create(dir.path(), schema, &key, "ds/v1").expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
        let path = dir.path().join(DATA_FILE);
        let raw = fs::read(&path).expect("read");
        assert!(
            !raw.windows(12).any(|w| w == b"SECRET-VALUE"),
            "plaintext found on disk"
        );
        let back = read_encrypted(&path, &key, "ds/v1").expect("decrypt");
        assert_eq!(back.1[0], batch);
        let other = DataKey::generate().expect("key");
        assert!(
            read_encrypted(&path, &other, "ds/v1").is_err(),
            "wrong key must fail"
        );
        assert!(
            read_encrypted(&path, &key, "ds/v2").is_err(),
            "swapped file must fail"
        );
    }
}
