//! Reading data files to upload (CSV, Parquet, Arrow IPC) and writing released results, each
//! chosen by the file's extension.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use erhai_engine::export::ExportFormat;
use erhai_policies::DatasetPolicy;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::client::ClientError;

/// File formats by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `.csv`, with a header row.
    Csv,
    /// `.parquet`.
    Parquet,
    /// `.arrow`, `.ipc`, `.feather`: Arrow IPC file format.
    Arrow,
}

impl FileFormat {
    /// The format of `path`, by extension.
    pub fn of(path: &Path) -> Result<FileFormat, ClientError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("csv") => Ok(FileFormat::Csv),
            Some("parquet") => Ok(FileFormat::Parquet),
            Some("arrow" | "ipc" | "feather") => Ok(FileFormat::Arrow),
            _ => Err(ClientError::Data(format!(
                "{}: unknown file type; use .csv, .parquet or .arrow",
                path.display()
            ))),
        }
    }
}

impl FileFormat {
    /// The format's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Arrow => "arrow",
        }
    }
}

/// Where a fetched file's receipt goes: beside it, `<file>.receipt.json`.
pub fn receipt_path(file: &Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".receipt.json");
    std::path::PathBuf::from(name)
}

fn open(path: &Path) -> Result<File, ClientError> {
    File::open(path).map_err(|e| ClientError::Data(format!("{}: {e}", path.display())))
}

/// Reads a data file. For CSV, column types come from the policy's declared `type`s where given,
/// and are inferred otherwise.
pub fn read_data(
    path: &Path,
    policy: Option<&DatasetPolicy>,
) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
    let data = |e: &dyn std::fmt::Display| ClientError::Data(format!("{}: {e}", path.display()));
    match FileFormat::of(path)? {
        FileFormat::Csv => {
            let mut file = open(path)?;
            let format = Format::default().with_header(true);
            let (inferred, _) = format
                .infer_schema(BufReader::new(&mut file), Some(10_000))
                .map_err(|e| data(&e))?;
            let fields = inferred
                .fields()
                .iter()
                .map(|f| {
                    let declared = policy
                        .and_then(|p| p.column(f.name()))
                        .and_then(|c| c.data_type.clone());
                    match declared {
                        Some(t) => DataType::from_str(&t)
                            .map(|t| Field::new(f.name(), t, true))
                            .map_err(|e| {
                                data(&format!("column {} declares type `{t}`: {e}", f.name()))
                            }),
                        None => Ok(f.as_ref().clone()),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let schema = Arc::new(Schema::new(fields));
            file.rewind().map_err(|e| data(&e))?;
            let reader = ReaderBuilder::new(schema.clone())
                .with_format(format)
                .with_batch_size(16 * 1024)
                .build(BufReader::new(file))
                .map_err(|e| data(&e))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| data(&e))?;
            Ok((schema, batches))
        }
        FileFormat::Parquet => {
            // Large batches: each becomes one upload message (the default 1,024 rows made
            // registration from Parquet slower than from CSV).
            let builder = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                .map_err(|e| data(&e))?
                .with_batch_size(16 * 1024);
            let schema = builder.schema().clone();
            let batches = builder
                .build()
                .map_err(|e| data(&e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| data(&e))?;
            Ok((schema, batches))
        }
        FileFormat::Arrow => {
            let reader =
                arrow::ipc::reader::FileReader::try_new(open(path)?, None).map_err(|e| data(&e))?;
            let schema = reader.schema();
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| data(&e))?;
            Ok((schema, batches))
        }
    }
}

/// Writes `batches` to `path` in the format its extension names.
pub fn write_data(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), ClientError> {
    let format = match FileFormat::of(path)? {
        FileFormat::Csv => ExportFormat::Csv,
        FileFormat::Parquet => ExportFormat::Parquet,
        FileFormat::Arrow => ExportFormat::Arrow,
    };
    let bytes = erhai_engine::export::render(format, schema, batches)
        .map_err(|e| ClientError::Data(format!("{}: {e}", path.display())))?;
    std::fs::write(path, bytes).map_err(|e| ClientError::Data(format!("{}: {e}", path.display())))
}
