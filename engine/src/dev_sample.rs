//! The development sample of a dataset version: a deterministic random sample (exactly
//! `max(rate × rows, floor)` rows, but never more than a tenth of the dataset and none at all
//! for a dataset under [`MIN_ROWS`] rows, chosen by selection sampling from a seeded ChaCha
//! stream), with every column treated as [`erhai_policies::dev_sample`] decides: identifiers
//! pseudonymized, personal columns masked, quasi-identifiers generalized, measures perturbed and
//! rounded, secret columns left out; then every row whose combination of quasi-identifiers is
//! rarer than [`SAMPLE_K`] in the sample is left out. It is written encrypted under its own key,
//! apart from production data.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use erhai_policies::DatasetPolicy;
use erhai_policies::dev_sample::{
    Generalization, MAX_SHARE, MIN_ROWS, SAMPLE_K, Treatment, quasi_identifiers, sample_policy,
    treatment,
};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{EngineError, Result};
use crate::keys::DataKey;
use crate::masks::{PseudonymKey, apply_mask};
use crate::store::{self, EncryptedWriter};

/// How large a sample to draw, and from which seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleSpec {
    /// Fraction of rows, in (0, 1].
    pub rate: f64,
    /// Fewest rows (unless the dataset is smaller).
    pub floor: u64,
    /// Seed; with the dataset version it fixes which rows are drawn.
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            rate: 0.01,
            floor: 1_000,
            seed: 0,
        }
    }
}

impl SampleSpec {
    /// Checks the rate.
    pub fn validate(&self) -> Result<()> {
        if !(self.rate > 0.0 && self.rate <= MAX_SHARE) {
            return Err(EngineError::BadData(format!(
                "development sample rate must be in (0, {MAX_SHARE}]: a sample is a share of \
                 the data, never the data; found {}",
                self.rate
            )));
        }
        Ok(())
    }

    /// Rows drawn from a dataset of `total` rows: the rate, or the floor if larger, but at most
    /// a tenth of the dataset; none under [`MIN_ROWS`].
    pub fn size(&self, total: u64) -> u64 {
        if total < MIN_ROWS {
            return 0;
        }
        let cap = (total as f64 * MAX_SHARE).floor() as u64;
        let by_rate = (total as f64 * self.rate).ceil() as u64;
        by_rate.max(self.floor).min(cap)
    }
}

/// Where a sample is read from and written to.
pub(crate) struct SampleIo<'a> {
    pub source: &'a Path,
    pub source_key: &'a DataKey,
    pub source_object: &'a str,
    pub dir: &'a Path,
    pub key: &'a DataKey,
    pub object: &'a str,
}

/// A written sample.
pub struct BuiltSample {
    /// Its schema.
    pub schema: SchemaRef,
    /// Its policy (every kept column usable freely).
    pub policy: DatasetPolicy,
    /// Rows drawn.
    pub rows: u64,
}

pub(crate) fn build(
    io: SampleIo<'_>,
    policy: &DatasetPolicy,
    spec: &SampleSpec,
    seed_context: &str,
    pseudonym: &PseudonymKey,
) -> Result<BuiltSample> {
    spec.validate()?;
    let file = File::open(io.source)
        .map_err(EngineError::io(format!("opening {}", io.source.display())))?;
    let options = ArrowReaderOptions::new().with_file_decryption_properties(
        store::decryption_properties(io.source_key, io.source_object)?,
    );
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?;
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let source_schema = builder.schema().clone();

    let plan: Vec<(usize, Treatment)> = source_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (i, treatment(f.name(), &f.data_type().to_string(), policy)))
        .filter(|(_, t)| *t != Treatment::Drop)
        .collect();
    let fields: Vec<Field> = plan
        .iter()
        .map(|(i, t)| {
            let f = source_schema.field(*i);
            Field::new(
                f.name(),
                output_type(t, f.data_type(), &source_schema),
                true,
            )
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let kept: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let named: Vec<(String, Treatment)> = plan
        .iter()
        .map(|(i, t)| (source_schema.field(*i).name().clone(), t.clone()))
        .collect();
    let quasi: Vec<usize> = quasi_identifiers(&named, policy)
        .iter()
        .filter_map(|q| kept.iter().position(|k| k == q))
        .collect();

    let want = spec.size(total);
    let mut rng = ChaCha8Rng::seed_from_u64(seed(spec.seed, seed_context));
    let mut noise = ChaCha8Rng::seed_from_u64(seed(spec.seed, &format!("{seed_context}/noise")));
    let (mut seen, mut chosen) = (0u64, 0u64);
    let mut drawn: Vec<RecordBatch> = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        // Selection sampling (Knuth's algorithm S): exactly `want` rows, each equally likely.
        let pick: BooleanArray = (0..batch.num_rows())
            .map(|_| {
                let take = chosen < want && rng.random_range(0..total - seen) < want - chosen;
                seen += 1;
                chosen += u64::from(take);
                Some(take)
            })
            .collect();
        let sampled = filter_record_batch(&batch, &pick)?;
        if sampled.num_rows() == 0 {
            continue;
        }
        let columns = plan
            .iter()
            .map(|(i, t)| transform(t, &sampled, *i, pseudonym, &mut noise))
            .collect::<Result<Vec<_>>>()?;
        drawn.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    let drawn = k_anonymous(&drawn, &quasi)?;
    let mut writer = EncryptedWriter::create(io.dir, schema.clone(), io.key, io.object)?;
    for b in &drawn {
        writer.write(b)?;
    }
    let rows = writer.rows();
    writer.finish()?;
    Ok(BuiltSample {
        schema,
        policy: sample_policy(policy, &kept),
        rows,
    })
}

/// The rows with their quasi-identifiers (columns `quasi`) k-anonymous: a row whose combination
/// of values occurs fewer than [`SAMPLE_K`] times keeps its other columns but loses those values
/// (NULL, a combination of its own); if fewer than [`SAMPLE_K`] rows lose them, they are left
/// out altogether.
fn k_anonymous(batches: &[RecordBatch], quasi: &[usize]) -> Result<Vec<RecordBatch>> {
    if quasi.is_empty() {
        return Ok(batches.to_vec());
    }
    let key = |b: &RecordBatch, r: usize| -> Result<Vec<String>> {
        quasi
            .iter()
            .map(|&c| {
                let col = b.column(c);
                Ok(if col.is_null(r) {
                    "\0null".to_string()
                } else {
                    arrow::util::display::array_value_to_string(col, r)?
                })
            })
            .collect()
    };
    let mut counts: std::collections::HashMap<Vec<String>, usize> = Default::default();
    for b in batches {
        for r in 0..b.num_rows() {
            *counts.entry(key(b, r)?).or_default() += 1;
        }
    }
    let rare = |b: &RecordBatch, r: usize| -> Result<bool> {
        Ok(counts.get(&key(b, r)?).copied().unwrap_or(0) < SAMPLE_K)
    };
    let mut suppressed = 0usize;
    for b in batches {
        for r in 0..b.num_rows() {
            suppressed += usize::from(rare(b, r)?);
        }
    }
    let keep_suppressed = suppressed >= SAMPLE_K;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let flags: Vec<bool> = (0..b.num_rows())
            .map(|r| rare(b, r))
            .collect::<Result<_>>()?;
        let keep: BooleanArray = flags.iter().map(|&f| Some(!f || keep_suppressed)).collect();
        let blank = BooleanArray::from(flags.clone());
        let mut columns = b.columns().to_vec();
        for &c in quasi {
            let nulls = arrow::array::new_null_array(columns[c].data_type(), b.num_rows());
            columns[c] = arrow::compute::kernels::zip::zip(&blank, &nulls, &columns[c])?;
        }
        let blanked = RecordBatch::try_new(b.schema(), columns)?;
        let kept = filter_record_batch(&blanked, &keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}

fn output_type(t: &Treatment, input: &DataType, source: &Schema) -> DataType {
    match t {
        Treatment::Pseudonym | Treatment::Mask(_) => DataType::Utf8,
        Treatment::Generalize(Generalization::From(other)) => source
            .field_with_name(other)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Utf8),
        _ => input.clone(),
    }
}

/// Column `i` of the sampled rows, as the treatment says.
fn transform(
    t: &Treatment,
    sampled: &RecordBatch,
    i: usize,
    pseudonym: &PseudonymKey,
    noise: &mut ChaCha8Rng,
) -> Result<ArrayRef> {
    let array = sampled.column(i);
    let masked = match t {
        Treatment::Pseudonym => apply_mask("pseudonym", &[], array, pseudonym),
        Treatment::Mask(m) => {
            apply_mask(&m.name, m.bound.as_deref().unwrap_or(&[]), array, pseudonym)
        }
        Treatment::Generalize(Generalization::Year | Generalization::Month) => {
            // A time that is not a day is truncated through a day.
            let day = match array.data_type() {
                DataType::Date32 => array.clone(),
                _ => arrow::compute::cast(array, &DataType::Date32)?,
            };
            let unit = match t {
                Treatment::Generalize(Generalization::Month) => "month",
                _ => "year",
            };
            apply_mask(
                "date_trunc_to",
                &[erhai_policies::MaskArg::Text(unit.into())],
                &day,
                pseudonym,
            )
        }
        Treatment::Generalize(Generalization::Band(w)) => return band(array, *w),
        Treatment::Generalize(Generalization::From(other)) => {
            return sampled.column_by_name(other).cloned().ok_or_else(|| {
                EngineError::BadData(format!("sample: no column {other} to generalize to"))
            });
        }
        Treatment::Generalize(Generalization::Perturb) => return perturb(array, noise),
        Treatment::Generalize(Generalization::Drop | Generalization::Keep)
        | Treatment::Drop
        | Treatment::Keep => return Ok(array.clone()),
    };
    let out = masked.map_err(|e| EngineError::Execution(e.to_string()))?;
    Ok(arrow::compute::cast(
        &out,
        &output_type(t, array.data_type(), sampled.schema().as_ref()),
    )?)
}

/// Numbers to the lower bound of their `w`-wide band.
fn band(array: &ArrayRef, w: u32) -> Result<ArrayRef> {
    let values = arrow::compute::cast(array, &DataType::Float64)?;
    let values = values
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .ok_or_else(|| EngineError::BadData("sample: a band needs numbers".into()))?;
    let w = f64::from(w);
    let banded: arrow::array::Float64Array = values
        .iter()
        .map(|v| v.map(|x| (x / w).floor() * w))
        .collect();
    Ok(arrow::compute::cast(
        &(Arc::new(banded) as ArrayRef),
        array.data_type(),
    )?)
}

/// Measures perturbed (±10%, integers by ±1 at least) and rounded to two significant digits.
fn perturb(array: &ArrayRef, noise: &mut ChaCha8Rng) -> Result<ArrayRef> {
    let integer = array.data_type().is_integer();
    let values = arrow::compute::cast(array, &DataType::Float64)?;
    let values = values
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .ok_or_else(|| EngineError::BadData("sample: perturbing needs numbers".into()))?;
    let out: arrow::array::Float64Array = values
        .iter()
        .map(|v| {
            v.map(|x| {
                let y = if integer {
                    let d = (0.1 * x.abs()).round().max(1.0) as i64;
                    x + noise.random_range(-d..=d) as f64
                } else {
                    x * (1.0 + noise.random_range(-0.1..=0.1))
                };
                round_significant(y, 2)
            })
        })
        .collect();
    Ok(arrow::compute::cast(
        &(Arc::new(out) as ArrayRef),
        array.data_type(),
    )?)
}

/// `x` rounded to `digits` significant digits (integers below 100 stay integers).
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(magnitude - digits + 1);
    (x / scale).round() * scale
}

/// The sampling seed: the configured seed mixed with the dataset version, so two datasets with
/// the same seed draw unrelated rows.
fn seed(seed: u64, context: &str) -> u64 {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("erhai dev sample {seed} {context}").as_bytes(),
    );
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn samples_are_a_share_never_the_data() {
        let s = SampleSpec::default();
        // A small dataset gets a tenth of itself (the floor never takes it all), a tiny one none.
        assert_eq!(s.size(963), 96);
        assert_eq!(s.size(500), 50);
        assert_eq!(s.size(99), 0);
        assert_eq!(s.size(50_000), 1_000);
        assert_eq!(s.size(1_000_000), 10_000);
        assert!(SampleSpec { rate: 0.0, ..s }.validate().is_err());
        assert!(SampleSpec { rate: 0.5, ..s }.validate().is_err());
        assert!(SampleSpec { rate: 0.1, ..s }.validate().is_ok());
        assert_ne!(seed(1, "a/v1"), seed(1, "b/v1"));
    }

    #[test]
    fn bands_perturbation_and_rounding() {
        let years: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![
            Some(1961),
            None,
            Some(1970),
        ]));
        let b = band(&years, 10).expect("band");
        let b = b
            .as_any()
            .downcast_ref::<arrow::array::Int32Array>()
            .expect("ints");
        assert_eq!((b.value(0), b.is_null(1), b.value(2)), (1960, true, 1970));
        assert_eq!(round_significant(4321.0, 2), 4300.0);
        assert_eq!(round_significant(0.04567, 2), 0.046);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let spend: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![4321.0; 50]));
        let p = perturb(&spend, &mut rng).expect("perturb");
        let p = p
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("floats");
        assert!(
            p.iter()
                .flatten()
                .all(|v| (3800.0..=4800.0).contains(&v) && v % 100.0 == 0.0)
        );
        assert!(
            p.iter().flatten().any(|v| v != 4300.0),
            "values are perturbed"
        );
        let nights: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![3; 50]));
        let n = perturb(&nights, &mut rng).expect("perturb");
        let n = n
            .as_any()
            .downcast_ref::<arrow::array::Int32Array>()
            .expect("ints");
        assert!(n.iter().flatten().all(|v| (2..=4).contains(&v)));
        assert!(n.iter().flatten().any(|v| v != 3));
    }
}
