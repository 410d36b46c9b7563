//! Automatic release checks on an executed result: the threshold rule per row (distinct privacy
//! units of every contributing dataset ≥ k). Rows that fail are suppressed; the report says how
//! many and why.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use erhai_policies::{ReleaseRules, RowOutcome};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::threshold::UnitColumns;

/// Rows listed individually in a report at most; the counts always cover every row.
pub const MAX_LISTED_ROWS: usize = 1000;

/// The check outcome of one row that did not pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCheck {
    /// Position in the computed result.
    pub row: u64,
    /// Why it was suppressed.
    pub reasons: Vec<String>,
}

/// The report of the automatic checks on one result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Rows the query computed.
    pub rows_computed: u64,
    /// Rows that passed and would be released.
    pub rows_released: u64,
    /// Rows suppressed.
    pub rows_suppressed: u64,
    /// The threshold applied.
    pub threshold_k: u64,
    /// Suppressed rows and reasons (the first [`MAX_LISTED_ROWS`]).
    pub failed_rows: Vec<RowCheck>,
    /// Remarks for the reviewer.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// `pass` when something is releasable, `fail` when every row was suppressed.
    pub fn outcome(&self) -> &'static str {
        if self.rows_released > 0 {
            "pass"
        } else {
            "fail"
        }
    }
}

/// Splits the hidden unit counts off `batches`, applies the threshold and returns the releasable
/// rows (visible columns only) with the report.
pub fn apply_checks(
    batches: &[RecordBatch],
    schema: Arc<Schema>,
    units: &UnitColumns,
    rules: &ReleaseRules,
) -> Result<(Vec<RecordBatch>, CheckReport)> {
    let visible = schema.fields().len();
    let mut report = CheckReport {
        threshold_k: rules.k,
        ..Default::default()
    };
    let mut out = Vec::new();
    for batch in batches {
        let n = batch.num_rows();
        if batch.num_columns() != visible + units.datasets.len() {
            return Err(EngineError::Execution(
                "result does not carry its privacy-unit statistics; refused".into(),
            ));
        }
        let counts: Vec<&Int64Array> = (visible..batch.num_columns())
            .map(|i| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| {
                        EngineError::Execution(
                            "privacy-unit statistics have an unexpected type".into(),
                        )
                    })
            })
            .collect::<Result<_>>()?;
        let mut keep = Vec::with_capacity(n);
        for r in 0..n {
            let per_dataset: Vec<(String, u64)> = units
                .datasets
                .iter()
                .zip(&counts)
                .map(|(d, c)| {
                    (
                        d.clone(),
                        if c.is_null(r) {
                            0
                        } else {
                            c.value(r).max(0) as u64
                        },
                    )
                })
                .collect();
            // A row with no contributing dataset (constants only) has no units: it fails.
            let outcome = if per_dataset.is_empty() {
                RowOutcome::Fail(vec!["no privacy units behind this row".into()])
            } else {
                rules.check_row(&per_dataset)
            };
            match outcome {
                RowOutcome::Pass => keep.push(true),
                RowOutcome::Fail(reasons) => {
                    keep.push(false);
                    report.rows_suppressed += 1;
                    if report.failed_rows.len() < MAX_LISTED_ROWS {
                        report.failed_rows.push(RowCheck {
                            row: report.rows_computed + r as u64,
                            reasons,
                        });
                    }
                }
            }
        }
        report.rows_computed += n as u64;
        let projected = batch.project(&(0..visible).collect::<Vec<_>>())?;
        let filtered = filter_record_batch(&projected, &BooleanArray::from(keep))?;
        let filtered = RecordBatch::try_new(schema.clone(), filtered.columns().to_vec())?;
        report.rows_released += filtered.num_rows() as u64;
        if filtered.num_rows() > 0 {
            out.push(filtered);
        }
    }
    if report.rows_suppressed > 0 {
        report.notes.push(format!(
            "{} of {} rows suppressed: fewer than {} distinct privacy units",
            report.rows_suppressed, report.rows_computed, rules.k
        ));
    }
    if report.rows_computed == 0 {
        report.notes.push("the query returned no rows".into());
    }
    Ok((out, report))
}
