//! `erhai policy draft`: a starting column policy for a provider's own data file, inferred from
//! its header and a bounded sample of its rows.
//!
//! Everything derived from the file's values that the draft states is a count: the draft is
//! written on the provider's machine but mailed around before registration, so no sampled value
//! appears in it, in a comment or in a warning.

mod detect;

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema};
use erhai_client::files::FileFormat;
use erhai_policies::ColumnKind;
use erhai_policies::masks::default_masks;

use detect::Hint;

/// Share of a column's non-empty sampled values a detector must match to decide its kind.
const MATCH_SHARE: f64 = 0.9;

/// A drafted policy: its TOML text and the warnings also written into it as comments.
#[derive(Debug)]
pub struct Draft {
    /// The policy file's text.
    pub toml: String,
    /// What the provider must look at before registering.
    pub warnings: Vec<String>,
    /// Rows sampled.
    pub rows: usize,
}

/// Why a draft could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Two columns have the same header.
    #[error("column {0:?} appears twice in the header; a policy classifies each column once")]
    DuplicateColumn(String),
    /// The file has no columns.
    #[error("the file has no columns")]
    NoColumns,
    /// The draft does not parse or validate: a bug in the drafting.
    #[error("the drafted policy is not valid ({0}); please report this")]
    Invalid(String),
}

/// One column as sampled: its header, the type the file has or Arrow infers, and its
/// non-empty values as text.
struct Sampled {
    name: String,
    file_type: DataType,
    values: Vec<String>,
}

/// Drafts a policy for `path` from its first `sample_rows` rows.
pub fn draft(path: &Path, sample_rows: usize) -> Result<Draft, DraftError> {
    let read = |e: &dyn std::fmt::Display| DraftError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let format = FileFormat::of(path).map_err(|e| read(&e))?;
    let (columns, rows) = match format {
        FileFormat::Csv => sample_csv(path, sample_rows).map_err(|e| read(&e))?,
        FileFormat::Parquet | FileFormat::Arrow => {
            sample_file(path, sample_rows).map_err(|e| read(&e))?
        }
    };
    if columns.is_empty() {
        return Err(DraftError::NoColumns);
    }
    let mut seen = HashSet::new();
    for c in &columns {
        if !seen.insert(c.name.as_str()) {
            return Err(DraftError::DuplicateColumn(c.name.clone()));
        }
    }
    let text_types = format == FileFormat::Csv;
    let mut drafted: Vec<Column> = columns.iter().map(|c| classify(c, text_types)).collect();
    let unit = choose_unit(&mut drafted);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let toml = render(&file_name, rows, &drafted, &unit);
    check(&toml, &drafted)?;
    let mut warnings: Vec<String> = unit.warning.into_iter().collect();
    warnings.extend(drafted.iter().flat_map(|c| {
        c.warnings
            .iter()
            .map(move |w| format!("column {:?}: {w}", c.name))
    }));
    Ok(Draft {
        toml,
        warnings,
        rows,
    })
}

/// The CSV's inferred types and its first rows read as text: leading zeros and 18-digit
/// numbers are seen as written, whatever Arrow infers.
fn sample_csv(
    path: &Path,
    sample_rows: usize,
) -> Result<(Vec<Sampled>, usize), Box<dyn std::error::Error>> {
    let mut file = File::open(path)?;
    let format = Format::default().with_header(true);
    let (inferred, _) = format.infer_schema(BufReader::new(&mut file), Some(sample_rows))?;
    file.rewind()?;
    let text = Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let reader = ReaderBuilder::new(Arc::new(text))
        .with_format(format)
        .with_batch_size(sample_rows.clamp(1, 8192))
        .build(BufReader::new(file))?;
    let mut columns = unsampled(&inferred);
    let rows = collect(reader, sample_rows, &mut columns)?;
    Ok((columns, rows))
}

/// One empty sample per column of `schema`, with the column's type in the file.
fn unsampled(schema: &arrow::datatypes::Schema) -> Vec<Sampled> {
    schema
        .fields()
        .iter()
        .map(|f| Sampled {
            name: f.name().clone(),
            file_type: f.data_type().clone(),
            values: Vec::new(),
        })
        .collect()
}

/// A Parquet or Arrow file's own types and its first rows cast to text.
fn sample_file(
    path: &Path,
    sample_rows: usize,
) -> Result<(Vec<Sampled>, usize), Box<dyn std::error::Error>> {
    let (schema, batches) = erhai_client::files::read_data(path, None)?;
    let mut columns = unsampled(&schema);
    let batches = batches.into_iter().map(|b| {
        let cols = b
            .columns()
            .iter()
            // A column that does not cast to text (a list, a struct) is sampled as empty.
            .map(|c| {
                arrow::compute::cast(c, &DataType::Utf8)
                    .unwrap_or_else(|_| arrow::array::new_null_array(&DataType::Utf8, c.len()))
            })
            .collect::<Vec<_>>();
        Ok::<_, arrow::error::ArrowError>(cols)
    });
    let rows = collect(batches, sample_rows, &mut columns)?;
    Ok((columns, rows))
}

/// Appends the non-empty text values of up to `limit` rows to `columns`; the number of rows read.
fn collect<B, E>(
    batches: impl IntoIterator<Item = Result<B, E>>,
    limit: usize,
    columns: &mut [Sampled],
) -> Result<usize, E>
where
    B: TextColumns,
{
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        let take = batch.rows().min(limit - rows);
        for (i, column) in columns.iter_mut().enumerate() {
            let Some(array) = batch.column(i) else {
                continue;
            };
            let Some(strings) = array.as_string_opt::<i32>() else {
                continue;
            };
            column.values.extend(
                strings
                    .iter()
                    .take(take)
                    .flatten()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        }
        rows += take;
        if rows >= limit {
            break;
        }
    }
    Ok(rows)
}

/// Batches whose columns are read as text.
trait TextColumns {
    fn rows(&self) -> usize;
    fn column(&self, i: usize) -> Option<&dyn Array>;
}

impl TextColumns for arrow::record_batch::RecordBatch {
    fn rows(&self) -> usize {
        self.num_rows()
    }
    fn column(&self, i: usize) -> Option<&dyn Array> {
        (i < self.num_columns()).then(|| self.column(i).as_ref())
    }
}

impl TextColumns for Vec<arrow::array::ArrayRef> {
    fn rows(&self) -> usize {
        self.first().map_or(0, |c| c.len())
    }
    fn column(&self, i: usize) -> Option<&dyn Array> {
        self.get(i).map(|c| c.as_ref())
    }
}

/// A column's drafted entry.
struct Column {
    name: String,
    kind: ColumnKind,
    grade: &'static str,
    personal: bool,
    sensitive_personal: bool,
    uses: &'static str,
    /// The declared type, when the policy format can state it (CSV: read with it; Parquet and
    /// Arrow: checked against it).
    data_type: Option<DataType>,
    /// What was detected, on how many sampled values.
    notes: Vec<String>,
    warnings: Vec<String>,
}

/// What the values of a column match, by detector.
struct Matches {
    total: usize,
    id: usize,
    mobile: usize,
    name: usize,
    email: usize,
    plate: usize,
    ip: usize,
    date: usize,
    bank_card: usize,
    distinct: usize,
}

impl Matches {
    fn of(values: &[String]) -> Self {
        let count = |f: fn(&str) -> bool| values.iter().filter(|v| f(v)).count();
        Matches {
            total: values.len(),
            id: count(detect::is_resident_id),
            mobile: count(detect::is_mobile),
            name: count(detect::is_chinese_name),
            email: count(detect::is_email),
            plate: count(detect::is_plate),
            ip: count(detect::is_ip),
            date: count(detect::is_date),
            bank_card: count(detect::is_bank_card),
            distinct: values.iter().collect::<BTreeSet<_>>().len(),
        }
    }

    fn decides(&self, n: usize) -> bool {
        n > 0 && n as f64 >= MATCH_SHARE * self.total as f64
    }
}

fn classify(c: &Sampled, text_types: bool) -> Column {
    let hint = detect::header_hint(&c.name);
    let m = Matches::of(&c.values);
    let of = |n: usize| format!("{n} of {} sampled values", m.total);
    let mut col = Column {
        name: c.name.clone(),
        kind: ColumnKind::Other,
        grade: "important",
        personal: false,
        sensitive_personal: false,
        uses: "secret",
        data_type: Some(c.file_type.clone()),
        notes: Vec::new(),
        warnings: Vec::new(),
    };
    // Kinds decided by the values, most specific first (an ID number also passes as digits).
    let by_value = [
        (
            ColumnKind::IdCard,
            m.id,
            "are resident ID numbers with a valid GB 11643 check digit",
        ),
        (ColumnKind::Phone, m.mobile, "are mainland mobile numbers"),
        (ColumnKind::Email, m.email, "are e-mail addresses"),
        (ColumnKind::Plate, m.plate, "are licence plates"),
        (ColumnKind::IpAddress, m.ip, "are IP addresses"),
        (
            ColumnKind::BankCard,
            m.bank_card,
            "are 16- to 19-digit numbers passing the Luhn check",
        ),
    ];
    let hinted_kind = hint.and_then(hint_kind);
    let value_kind = by_value.iter().find(|(_, n, _)| m.decides(*n));
    let name_values = hint == Some(Hint::Kind(ColumnKind::Name)) && m.decides(m.name);
    match (value_kind, hinted_kind) {
        (Some((kind, n, what)), hinted) => {
            col.kind = *kind;
            col.notes
                .push(format!("detected {}: {} {what}", kind.name(), of(*n)));
            if hinted.is_none() {
                col.warnings.push(format!(
                    "looks like {} from its values but its header does not say so",
                    kind.name()
                ));
            } else if hinted != Some(*kind) {
                col.warnings.push(format!(
                    "its header suggests {} but its values are {}",
                    hinted.map_or("other", ColumnKind::name),
                    kind.name()
                ));
            }
        }
        (None, Some(kind)) => {
            col.kind = kind;
            let matched = match kind {
                ColumnKind::IdCard => Some((m.id, "are resident ID numbers")),
                ColumnKind::Phone => Some((m.mobile, "are mainland mobile numbers")),
                ColumnKind::Name => Some((m.name, "are 2 to 4 Han characters")),
                ColumnKind::BirthDate => Some((m.date, "are dates")),
                ColumnKind::Email => Some((m.email, "are e-mail addresses")),
                ColumnKind::Plate => Some((m.plate, "are licence plates")),
                ColumnKind::IpAddress => Some((m.ip, "are IP addresses")),
                ColumnKind::BankCard => Some((m.bank_card, "pass the Luhn check")),
                _ => None,
            };
            match matched {
                Some((n, what)) => {
                    col.notes
                        .push(format!("header suggests {}; {} {what}", kind.name(), of(n)));
                    if !m.decides(n) && kind != ColumnKind::Name && m.total > 0 {
                        col.warnings.push(format!(
                            "its header suggests {} but only {} match; check the column",
                            kind.name(),
                            of(n)
                        ));
                    }
                }
                None => col.notes.push(format!("header suggests {}", kind.name())),
            }
            if kind == ColumnKind::Name && name_values {
                col.notes
                    .push("values have the shape of Chinese names".to_string());
            }
        }
        (None, None) => {}
    }
    if col.kind.is_personal_identifier() || col.kind == ColumnKind::BirthDate {
        col.personal = true;
        col.sensitive_personal = matches!(col.kind, ColumnKind::IdCard | ColumnKind::BankCard);
        col.grade = "important";
        // Personal columns never reach results as stored: masked where the kind has masks.
        col.uses = if default_masks(col.kind).is_empty() {
            "secret"
        } else {
            "masked"
        };
        if matches!(
            col.kind,
            ColumnKind::IdCard | ColumnKind::Phone | ColumnKind::BankCard | ColumnKind::Plate
        ) {
            text_type(&mut col, &c.file_type, text_types);
        }
        return col;
    }
    match hint {
        Some(Hint::Health) => {
            col.personal = true;
            col.sensitive_personal = true;
            col.notes.push(
                "header suggests health data: sensitive personal information, kept secret until \
                 you decide its uses"
                    .to_string(),
            );
        }
        Some(Hint::RecordKey) => {
            col.grade = "general";
            col.notes
                .push("header suggests a record key: secret (no use in a query)".to_string());
        }
        Some(Hint::QuasiIdentifier) => {
            col.kind = ColumnKind::QuasiIdentifier;
            col.grade = "general";
            col.personal = true;
            col.uses = "dimension";
            col.notes.push(
                "header suggests an attribute that identifies in combination (quasi-identifier)"
                    .to_string(),
            );
        }
        Some(Hint::Money) => money(&mut col, c, text_types, true),
        _ => {
            if is_number(&c.file_type) && money_shaped(&c.values) {
                money(&mut col, c, text_types, false)
            } else if is_number(&c.file_type) {
                col.kind = ColumnKind::Measure;
                col.grade = "general";
                col.uses = "measure";
                col.notes
                    .push("numbers: a measure to aggregate".to_string());
            } else if few_values(&m) || matches!(c.file_type, DataType::Boolean | DataType::Date32)
            {
                col.kind = ColumnKind::Dimension;
                col.grade = "general";
                col.uses = "dimension";
                col.notes.push(format!(
                    "{} distinct among {}: a category to group by",
                    m.distinct,
                    of(m.total)
                ));
            } else {
                col.warnings.push(format!(
                    "kind could not be decided ({} distinct among {}): left as other, grade \
                     important, no uses",
                    m.distinct,
                    of(m.total)
                ));
            }
        }
    }
    col
}

/// The policy kind a header hint names, for the hints that are kinds.
fn hint_kind(hint: Hint) -> Option<ColumnKind> {
    match hint {
        Hint::Kind(kind) => Some(kind),
        Hint::Health | Hint::QuasiIdentifier | Hint::Money | Hint::RecordKey => None,
    }
}

/// Few distinct values for the sample's size, each seen at least twice on average: a category
/// rather than free text.
fn few_values(m: &Matches) -> bool {
    m.total > 0 && m.distinct * 2 <= m.total && m.distinct <= 50.max(m.total / 20)
}

fn is_number(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Numbers written with exactly two decimals (at least one of them), as money is.
fn money_shaped(values: &[String]) -> bool {
    let two_places = |v: &str| v.split_once('.').is_some_and(|(_, f)| f.len() == 2);
    values.iter().any(|v| two_places(v))
        && values
            .iter()
            .all(|v| v.split_once('.').is_none_or(|(_, f)| f.len() <= 2))
}

/// A money column: a measure, as a decimal (sums of floats are not exact).
fn money(col: &mut Column, c: &Sampled, text_types: bool, by_header: bool) {
    col.kind = ColumnKind::Measure;
    col.grade = "general";
    col.uses = "measure";
    col.notes.push(if by_header {
        "header suggests money: a measure, as a decimal".to_string()
    } else {
        "numbers with two decimals: money, as a decimal".to_string()
    });
    if matches!(
        c.file_type,
        DataType::Decimal128(..) | DataType::Decimal256(..)
    ) {
        return;
    }
    if !text_types {
        col.warnings.push(format!(
            "money stored as {} in the file; convert it to a decimal before registering",
            c.file_type
        ));
        return;
    }
    let scale = c
        .values
        .iter()
        .filter_map(|v| v.split_once('.').map(|(_, f)| f.len()))
        .max()
        .unwrap_or(0)
        .clamp(2, 6);
    if c.file_type.is_floating() {
        col.warnings.push(format!(
            "money reads as {}; declared Decimal128(18, {scale}) so sums are exact",
            c.file_type
        ));
    }
    // Scale is at most 6, well within the precision of 18.
    col.data_type = Some(DataType::Decimal128(18, scale as i8));
}

/// Identifiers are text: as numbers a leading 0, an `X` check digit or an 18-digit number's
/// last digits would be lost.
fn text_type(col: &mut Column, file_type: &DataType, text_types: bool) {
    if matches!(
        file_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return;
    }
    if text_types {
        col.warnings.push(format!(
            "{} numbers read as {}; declared Utf8 so leading zeros and every digit survive",
            col.kind.name(),
            file_type
        ));
        col.data_type = Some(DataType::Utf8);
    } else {
        col.warnings.push(format!(
            "{} numbers stored as {} in the file: leading zeros and check digits may be lost; \
             convert the column to text before registering",
            col.kind.name(),
            file_type
        ));
    }
}

/// The proposed privacy unit and why.
struct Unit {
    name: String,
    note: String,
    warning: Option<String>,
}

/// The resident ID column if there is one, else the first personal identifier; the unit is
/// counted, joined and never output (`identifier`).
fn choose_unit(columns: &mut [Column]) -> Unit {
    let pick = columns
        .iter()
        .position(|c| c.kind == ColumnKind::IdCard)
        .map(|i| (i, "the resident ID column", None))
        .or_else(|| {
            columns
                .iter()
                .position(|c| c.kind.is_personal_identifier())
                .map(|i| {
                    (
                        i,
                        "no resident ID column; the first personal identifier",
                        Some(
                            "no resident ID column: privacy_unit is a guess; name the column \
                              that identifies the person or firm",
                        ),
                    )
                })
        })
        .unwrap_or((
            0,
            "no personal identifier found; the first column",
            Some(
                "no identifier column found: privacy_unit is the first column; name the \
                  column that identifies the person or firm",
            ),
        ));
    let (i, note, warning) = pick;
    let name = columns.get(i).map(|c| c.name.clone()).unwrap_or_default();
    if let Some(c) = columns.get_mut(i) {
        c.uses = "identifier";
        c.grade = "important";
    }
    Unit {
        name,
        note: note.to_string(),
        warning: warning.map(str::to_string),
    }
}

/// A TOML basic string (quoted and escaped), for keys and values.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A declared type as the policy writes it, when Arrow reads it back the same.
fn type_name(t: &DataType) -> Option<String> {
    let s = t.to_string();
    (DataType::from_str(&s).ok().as_ref() == Some(t)).then_some(s)
}

fn render(file_name: &str, rows: usize, columns: &[Column], unit: &Unit) -> String {
    let mut out = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(
        out,
        "# Draft column policy for {}, written by `erhai policy draft` from its first {rows} rows.\n\
         # Every kind, grade and use below is a guess: review each column before\n\
         # `erhai dataset register`. Comments state counts only, never values from the file.",
        file_name.replace(['\n', '\r'], " ")
    );
    let warnings: Vec<String> = unit
        .warning
        .iter()
        .cloned()
        .chain(columns.iter().flat_map(|c| {
            c.warnings
                .iter()
                .map(move |w| format!("column {}: {w}", quoted(&c.name)))
        }))
        .collect();
    for w in &warnings {
        let _ = writeln!(out, "# WARNING: {w}");
    }
    let _ = writeln!(
        out,
        "\nprivacy_unit = {}  # {}",
        quoted(&unit.name),
        unit.note
    );
    for c in columns {
        let _ = writeln!(out, "\n[columns.{}]", quoted(&c.name));
        for n in &c.notes {
            let _ = writeln!(out, "# {n}");
        }
        for w in &c.warnings {
            let _ = writeln!(out, "# WARNING: {w}");
        }
        let _ = writeln!(out, "kind = {}", quoted(c.kind.name()));
        let _ = writeln!(out, "grade = {}", quoted(c.grade));
        if c.personal {
            let _ = writeln!(out, "personal = true");
        }
        if c.sensitive_personal {
            let _ = writeln!(out, "sensitive_personal = true");
        }
        let _ = writeln!(out, "uses = {}", quoted(c.uses));
        if let Some(t) = c.data_type.as_ref().and_then(type_name) {
            let _ = writeln!(out, "type = {}", quoted(&t));
        }
    }
    out
}

/// The draft parses and matches the schema it will be registered with: a failure here is a
/// bug in the drafting, not in the file.
fn check(toml: &str, columns: &[Column]) -> Result<(), DraftError> {
    let policy = erhai_policies::policy_file::parse_policy(toml)
        .map_err(|e| DraftError::Invalid(e.to_string()))?;
    let schema: Vec<(String, String)> = columns
        .iter()
        .map(|c| {
            let t = c
                .data_type
                .as_ref()
                .map(DataType::to_string)
                .unwrap_or_default();
            (c.name.clone(), t)
        })
        .collect();
    policy
        .validate_against(&schema)
        .map_err(|e| DraftError::Invalid(e.to_string()))
}
