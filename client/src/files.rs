//! Reading data files to upload (CSV, Parquet, Arrow IPC) and writing released results, each
//! chosen by the file's extension.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use crate::ClientError;

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

/// The column types a policy file declares (`[columns.<name>] type = "…"`), by column name.
///
/// Only these are read: the server parses and validates the whole policy, so the client need
/// not know the policy model. Text that is not TOML declares nothing here and is refused by the
/// server with its reason.
fn declared_types(policy_toml: &str) -> BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct PolicyFile {
        #[serde(default)]
        columns: BTreeMap<String, Column>,
    }
    #[derive(Deserialize)]
    struct Column {
        #[serde(rename = "type")]
        data_type: Option<String>,
    }
    toml::from_str::<PolicyFile>(policy_toml)
        .map(|p| {
            p.columns
                .into_iter()
                .filter_map(|(name, c)| c.data_type.map(|t| (name, t)))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a data file. For CSV, column types come from the `type`s the policy file (TOML text)
/// declares where given, and are inferred otherwise.
pub fn read_data(
    path: &Path,
    policy_toml: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
    read_data_typed(path, &policy_toml.map(declared_types).unwrap_or_default())
}

/// Reads a data file; CSV columns named in `declared` (column → Arrow type as displayed) take
/// that type, e.g. the types of a dataset's current version when its policy is carried over.
pub fn read_data_typed(
    path: &Path,
    declared: &BTreeMap<String, String>,
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
                .map(|f| match declared.get(f.name()) {
                    Some(t) => DataType::from_str(t)
                        .map(|t| Field::new(f.name(), t, true))
                        .map_err(|e| {
                            data(&format!("column {} declares type `{t}`: {e}", f.name()))
                        }),
                    None => Ok(f.as_ref().clone()),
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

/// Writes `batches` to `path` in the format its extension names: the same bytes the server
/// renders for a release in that format.
pub fn write_data(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), ClientError> {
    let data = |e: &dyn std::fmt::Display| ClientError::Data(format!("{}: {e}", path.display()));
    let bytes = render(FileFormat::of(path)?, schema, batches).map_err(|e| data(&e))?;
    std::fs::write(path, bytes).map_err(|e| data(&e))
}

/// `batches` as the bytes of a file in `format`.
fn render(
    format: FileFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    match format {
        FileFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                w.write(b)?;
            }
            if batches.is_empty() {
                // A header-only file still says what the columns are.
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
        }
        FileFormat::Parquet => {
            let mut w = ArrowWriter::try_new(&mut out, schema.clone(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
        FileFormat::Arrow => {
            let mut w = arrow::ipc::writer::FileWriter::try_new(&mut out, schema)?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, true),
            Field::new("visitors", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["古城", "喜洲"])),
                Arc::new(Int64Array::from(vec![12, 30])),
            ],
        )
        .expect("batch");
        (schema, b)
    }

    #[test]
    fn every_format_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (schema, b) = batch();
        for ext in ["csv", "parquet", "arrow"] {
            let path = dir.path().join(format!("out.{ext}"));
            write_data(&path, &schema, std::slice::from_ref(&b)).expect("write");
            let (_, back) = read_data(&path, None).expect("read");
            assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 2, "{ext}");
        }
        let csv = std::fs::read_to_string(dir.path().join("out.csv")).expect("csv");
        assert_eq!(csv, "district,visitors\n古城,12\n喜洲,30\n");
    }

    #[test]
    fn csv_columns_take_the_types_the_policy_declares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (schema, b) = batch();
        let path = dir.path().join("in.csv");
        write_data(&path, &schema, &[b]).expect("write");
        let policy = r#"
privacy_unit = "district"
[columns.visitors]
kind = "measure"
type = "Decimal128(12, 2)"
"#;
        let (s, _) = read_data(&path, Some(policy)).expect("read");
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).data_type(), &DataType::Decimal128(12, 2));
        let (s, _) = read_data(&path, Some("not toml [")).expect("read");
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
        let bad = policy.replace("Decimal128(12, 2)", "no such type");
        let e = read_data(&path, Some(&bad)).expect_err("bad type");
        assert!(
            e.to_string().contains("declares type `no such type`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_extension_is_refused() {
        let e = FileFormat::of(Path::new("result.xlsx")).expect_err("xlsx");
        assert!(
            e.to_string().contains("use .csv, .parquet or .arrow"),
            "{e}"
        );
    }
}
