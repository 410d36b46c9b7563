//! The development sample of a dataset version: a deterministic random sample (exactly
//! `max(rate × rows, floor)` rows, capped at the dataset's size, chosen by selection sampling from
//! a seeded ChaCha stream), with every column treated as [`erhai_policies::dev_sample`] decides:
//! identifiers pseudonymized, personal columns masked, quasi-identifiers generalized, secret
//! columns left out. It is written encrypted under its own key, apart from production data.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use erhai_policies::DatasetPolicy;
use erhai_policies::dev_sample::{Treatment, sample_policy, treatment};
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
        if !(self.rate > 0.0 && self.rate <= 1.0) {
            return Err(EngineError::BadData(format!(
                "development sample rate must be in (0, 1], found {}",
                self.rate
            )));
        }
        Ok(())
    }

    /// Rows drawn from a dataset of `total` rows.
    pub fn size(&self, total: u64) -> u64 {
        let by_rate = (total as f64 * self.rate).ceil() as u64;
        by_rate.max(self.floor).min(total)
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
        .map(|(i, f)| (i, treatment(f.name(), policy)))
        .filter(|(_, t)| *t != Treatment::Drop)
        .collect();
    let fields: Vec<Field> = plan
        .iter()
        .map(|(i, t)| {
            let f = source_schema.field(*i);
            Field::new(f.name(), output_type(t, f.data_type()), true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let kept: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();

    let want = spec.size(total);
    let mut rng = ChaCha8Rng::seed_from_u64(seed(spec.seed, seed_context));
    let (mut seen, mut chosen) = (0u64, 0u64);
    let mut writer = EncryptedWriter::create(io.dir, schema.clone(), io.key, io.object)?;
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
            .map(|(i, t)| transform(t, sampled.column(*i), pseudonym))
            .collect::<Result<Vec<_>>>()?;
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
    }
    let rows = writer.rows();
    writer.finish()?;
    Ok(BuiltSample {
        schema,
        policy: sample_policy(policy, &kept),
        rows,
    })
}

fn output_type(t: &Treatment, input: &DataType) -> DataType {
    match t {
        Treatment::Pseudonym | Treatment::Mask(_) => DataType::Utf8,
        Treatment::Generalize if input == &DataType::Date32 => DataType::Date32,
        _ => input.clone(),
    }
}

fn transform(t: &Treatment, array: &ArrayRef, pseudonym: &PseudonymKey) -> Result<ArrayRef> {
    let masked = match t {
        Treatment::Pseudonym => apply_mask("pseudonym", &[], array, pseudonym),
        Treatment::Mask(m) => {
            apply_mask(&m.name, m.bound.as_deref().unwrap_or(&[]), array, pseudonym)
        }
        Treatment::Generalize if array.data_type() == &DataType::Date32 => apply_mask(
            "date_trunc_to",
            &[erhai_policies::MaskArg::Text("year".into())],
            array,
            pseudonym,
        ),
        _ => return Ok(array.clone()),
    };
    let out = masked.map_err(|e| EngineError::Execution(e.to_string()))?;
    // Masks return Utf8 or the generalized type; the schema says nullable, so types agree.
    if out.data_type() == &output_type(t, array.data_type()) {
        Ok(out)
    } else {
        Ok(arrow::compute::cast(
            &out,
            &output_type(t, array.data_type()),
        )?)
    }
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

    #[test]
    fn sample_sizes() {
        let s = SampleSpec::default();
        assert_eq!(s.size(500), 500);
        assert_eq!(s.size(50_000), 1_000);
        assert_eq!(s.size(1_000_000), 10_000);
        assert!(SampleSpec { rate: 0.0, ..s }.validate().is_err());
        assert!(SampleSpec { rate: 1.5, ..s }.validate().is_err());
        assert_ne!(seed(1, "a/v1"), seed(1, "b/v1"));
    }
}
