//! Released rows as file bytes: CSV, Parquet or an Arrow IPC file. The server renders the file a
//! receipt is signed over, so the bytes the analyst keeps are exactly the bytes signed.

use std::str::FromStr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use crate::error::{EngineError, Result};

/// A file format of released data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Comma-separated, with a header row.
    Csv,
    /// Plain (unencrypted) Parquet.
    Parquet,
    /// Arrow IPC file.
    Arrow,
}

impl ExportFormat {
    /// The format's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Parquet => "parquet",
            ExportFormat::Arrow => "arrow",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<ExportFormat> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "parquet" => Ok(ExportFormat::Parquet),
            "" | "arrow" | "ipc" | "feather" => Ok(ExportFormat::Arrow),
            other => Err(EngineError::BadData(format!(
                "unknown file format `{other}`; use csv, parquet or arrow"
            ))),
        }
    }
}

fn write_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Execution(format!("writing the file failed: {e}"))
}

/// The file holding `batches` in `format`.
pub fn render(
    format: ExportFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        ExportFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                w.write(b).map_err(write_err)?;
            }
            if batches.is_empty() {
                // A header-only file still says what the columns are.
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(write_err)?;
            }
        }
        ExportFormat::Parquet => {
            let mut w = ArrowWriter::try_new(&mut out, schema.clone(), None).map_err(write_err)?;
            for b in batches {
                w.write(b).map_err(write_err)?;
            }
            w.close().map_err(write_err)?;
        }
        ExportFormat::Arrow => {
            let mut w =
                arrow::ipc::writer::FileWriter::try_new(&mut out, schema).map_err(write_err)?;
            for b in batches {
                w.write(b).map_err(write_err)?;
            }
            w.finish().map_err(write_err)?;
        }
    }
    Ok(out)
}

/// The canonical bytes of a result, which its release hash covers: one Arrow IPC stream.
pub fn canonical(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(write_err)?;
    for b in batches {
        w.write(b).map_err(write_err)?;
    }
    w.finish().map_err(write_err)?;
    drop(w);
    Ok(out)
}
