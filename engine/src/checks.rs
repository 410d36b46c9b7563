//! Automatic release checks on an executed result, from the hidden statistics its own execution
//! produced: threshold and dominance per row, zeros, one-category groups, the share of
//! suppressed rows. Each row gets pass / review / fail with its findings; fail rows are
//! suppressed, review rows stay for the reviewer, highlighted. The decisions themselves are
//! `erhai_policies::release`; this module measures and applies them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use erhai_policies::lineage::Step;
use erhai_policies::release::worst;
use erhai_policies::{Contributions, Finding, PlanLineage, ReleaseRules, Verdict};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::statistics::{Hidden, HiddenColumns, Source};
use crate::unit_set::UnitSet;
use crate::unit_stats::ContribSummary;

/// Suppressed rows listed individually in a report at most; the counts cover every row.
pub const MAX_LISTED_FAILED: usize = 1000;
/// Review rows listed individually at most; beyond, the job itself goes to review.
pub const MAX_LISTED_REVIEW: usize = 10_000;

/// The check outcome of one row that did not simply pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCheck {
    /// Position in the computed result.
    pub row: u64,
    /// Position in the released result (review rows), none when suppressed.
    pub released_row: Option<u64>,
    /// The worst of the findings.
    pub verdict: Verdict,
    /// Every rule that fired.
    pub findings: Vec<Finding>,
}

/// The report of the automatic checks on one result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckReport {
    /// Rows the query computed.
    pub rows_computed: u64,
    /// Rows that would be released (pass and review).
    pub rows_released: u64,
    /// Rows suppressed (fail).
    pub rows_suppressed: u64,
    /// Released rows a reviewer must look at.
    pub rows_review: u64,
    /// The threshold applied.
    pub threshold_k: u64,
    /// The rules applied, for the reviewer.
    pub rules: String,
    /// Rows that did not simply pass (review rows first, then the first suppressed ones).
    pub rows: Vec<RowCheck>,
    /// Findings about the result as a whole.
    pub job_findings: Vec<Finding>,
    /// Remarks for the reviewer.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// The worst verdict of any row or of the result as a whole.
    pub fn outcome(&self) -> Verdict {
        let rows = if self.rows_suppressed > 0 {
            Verdict::Fail
        } else if self.rows_review > 0 {
            Verdict::Review
        } else {
            Verdict::Pass
        };
        rows.max(worst(&self.job_findings))
    }

    /// Adds findings to a row after the fact (differencing is decided against earlier
    /// releases, outside the engine). Findings here never suppress: the row is already
    /// quarantined; it becomes a review row.
    pub fn flag(&mut self, row: u64, released_row: Option<u64>, findings: Vec<Finding>) {
        if findings.is_empty() {
            return;
        }
        if let Some(r) = self.rows.iter_mut().find(|r| r.row == row) {
            let before = r.verdict;
            r.findings.extend(findings);
            r.verdict = worst(&r.findings);
            if before == Verdict::Pass && r.verdict >= Verdict::Review {
                self.rows_review += 1;
            }
            return;
        }
        let verdict = worst(&findings);
        if verdict >= Verdict::Review && released_row.is_some() {
            self.rows_review += 1;
        }
        if self.rows.len() < MAX_LISTED_REVIEW {
            // Inserted in the listing's order (review rows, then failed ones, by position):
            // differencing may flag thousands of rows, one call each.
            let key = |r: &RowCheck| (r.verdict == Verdict::Fail, r.row);
            let check = RowCheck {
                row,
                released_row,
                verdict,
                findings,
            };
            let at = self.rows.partition_point(|r| key(r) < key(&check));
            self.rows.insert(at, check);
        } else if !self
            .job_findings
            .iter()
            .any(|f| f.rule == "too-many-review-rows")
        {
            self.job_findings.push(Finding::review(
                "too-many-review-rows",
                format!(
                    "more than {MAX_LISTED_REVIEW} rows need review; only the first are listed"
                ),
            ));
        }
    }
}

/// One population behind a computed row: the units of one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct RowPopulation {
    /// Dataset name as the query saw it.
    pub dataset: String,
    /// Where it comes from (populations of one source are not differenced against each other).
    pub source: Source,
    /// Whether a released figure is computed over it (see [`crate::statistics::Population`]).
    pub figure: bool,
    /// A digest of how it was defined, with the row's group values: equal populations with
    /// different digests tell that the two definitions select the same units.
    pub fingerprint: u64,
    /// Its units.
    pub set: UnitSet,
}

/// The digest of a population's definition and its row's group values.
pub fn fingerprint(definition: &str, values: &[String]) -> u64 {
    let mut text = definition.as_bytes().to_vec();
    for v in values {
        text.push(0x1f);
        text.extend_from_slice(v.as_bytes());
    }
    let d = ring::digest::digest(&ring::digest::SHA256, &text);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

/// The populations behind one computed row, kept for the differencing checks against the rest
/// of the result and other releases.
#[derive(Clone, Debug)]
pub struct RowUnits {
    /// Position in the computed result ([`SUBQUERY_ROWS`] and above: a subquery's population,
    /// which every row depends on).
    pub row: u64,
    /// Position in the released result; none when suppressed.
    pub released_row: Option<u64>,
    /// Its populations.
    pub sets: Vec<RowPopulation>,
}

/// Rows of a result's ledger entries at and above this number stand for the populations of its
/// subqueries: every row of the result depends on them.
pub const SUBQUERY_ROWS: u64 = 1 << 62;

/// What a subquery checked on its own came to.
#[derive(Clone, Debug, Default)]
pub struct SubqueryOutcome {
    /// The subquery, as displayed.
    pub what: String,
    /// Its failures (every row of the main result depends on it).
    pub failures: Vec<Finding>,
    /// Its populations: dataset, units, fingerprint.
    pub populations: Vec<(String, UnitSet, u64)>,
}

/// What the checks need to know of the result's columns, from the plan's lineage.
#[derive(Clone, Debug, Default)]
pub struct ResultShape {
    /// Output positions that are group labels (dimensions).
    pub dimensions: Vec<usize>,
    /// Output positions that carry aggregated values.
    pub values: Vec<usize>,
    /// Output positions whose value is one row's value (`min`, `max`, `median`, …), with the
    /// function: a policy may allow them, but what they release is a single unit's figure.
    pub single_values: Vec<(usize, String)>,
}

impl ResultShape {
    /// Dimensions are outputs derived through a GROUP BY key and no aggregate; every other
    /// output of an aggregated result is a value (a `count(*)` has no source column at all).
    pub fn of(lineage: &PlanLineage) -> ResultShape {
        let mut shape = ResultShape::default();
        for (i, o) in lineage.outputs.iter().enumerate() {
            let steps = || o.derivations.iter().flat_map(|d| d.steps.iter());
            let grouped = steps().any(|s| matches!(s, Step::GroupKey));
            let aggregated = steps().any(|s| matches!(s, Step::Aggregate { .. }));
            if grouped && !aggregated {
                shape.dimensions.push(i);
            } else {
                shape.values.push(i);
            }
            let single = steps().find_map(|s| match s {
                Step::Aggregate { func, .. }
                    if erhai_policies::check::SINGLE_VALUE_AGGREGATES.contains(&func.as_str()) =>
                {
                    Some(func.clone())
                }
                _ => None,
            });
            if let Some(func) = single {
                shape.single_values.push((i, func));
            }
        }
        shape
    }
}

fn hidden_binary(batch: &RecordBatch, i: usize) -> Result<&arrow::array::BinaryArray> {
    batch.column(i).as_binary_opt::<i32>().ok_or_else(|| {
        EngineError::Execution("privacy-unit statistics have an unexpected type".into())
    })
}

/// The findings of one computed row from its hidden statistics, and its populations.
pub(crate) fn row_findings(
    batch: &RecordBatch,
    r: usize,
    visible: usize,
    dims: &[usize],
    hidden: &HiddenColumns,
    rules: &ReleaseRules,
) -> Result<(Vec<Finding>, Vec<RowPopulation>)> {
    let mut f = Vec::new();
    let mut sets = Vec::new();
    let values: Vec<String> = dims
        .iter()
        .filter(|&&d| d < visible)
        .map(|&d| array_value_to_string(batch.column(d), r))
        .collect::<std::result::Result<_, _>>()?;
    if !hidden
        .columns
        .iter()
        .any(|h| matches!(h, Hidden::Units { .. }))
    {
        f.push(Finding::fail(
            "threshold",
            "no privacy units behind this row".into(),
        ));
    }
    // Per aggregate: its label and whether any of its terms contributed anything but zero.
    let mut sums: Vec<(usize, String, bool)> = Vec::new();
    for (j, h) in hidden.columns.iter().enumerate() {
        let col = hidden_binary(batch, visible + j)?;
        let bytes = if col.is_valid(r) { col.value(r) } else { &[] };
        match h {
            Hidden::Units {
                dataset,
                population,
            } => {
                let set = if bytes.is_empty() {
                    UnitSet::default()
                } else {
                    UnitSet::decode(bytes)
                        .ok_or_else(|| EngineError::Execution("corrupt privacy-unit set".into()))?
                };
                match &population.what {
                    None => f.extend(rules.threshold(dataset, set.len())),
                    Some(what) => f.extend(rules.population(
                        dataset,
                        what,
                        set.len(),
                        population.may_be_empty,
                    )),
                }
                if population.compared {
                    sets.push(RowPopulation {
                        dataset: dataset.clone(),
                        source: population.source,
                        figure: population.figure,
                        fingerprint: fingerprint(&population.definition, &values),
                        set,
                    });
                }
            }
            Hidden::Contrib { dataset, terms } => {
                let all = ContribSummary::decode_all(bytes, terms.len())
                    .ok_or_else(|| EngineError::Execution("corrupt contribution summary".into()))?;
                for (term, s) in terms.iter().zip(all) {
                    let positive = Contributions {
                        total: s.positive.total,
                        largest: s.positive.largest.clone(),
                    };
                    f.extend(rules.dominance(&term.label, dataset, &positive));
                    let negative = Contributions {
                        total: s.negative.total,
                        largest: s.negative.largest.clone(),
                    };
                    let what = format!("{} (negative contributions)", term.label);
                    f.extend(rules.dominance(&what, dataset, &negative));
                    match sums.iter_mut().find(|(a, _, _)| *a == term.aggregate) {
                        Some(entry) => entry.2 |= !s.is_zero(),
                        None => {
                            sums.push((term.aggregate, term.aggregate_label.clone(), !s.is_zero()))
                        }
                    }
                }
            }
        }
    }
    for (_, label, nonzero) in sums {
        if !nonzero {
            f.push(rules.zero_sum(&label));
        }
    }
    Ok((f, sets))
}

/// Splits the hidden statistics off `batches`, decides every row, and returns the releasable
/// rows (visible columns only), the report, and the populations of every computed row (the
/// subqueries' populations last, as rows from [`SUBQUERY_ROWS`] on). `differencing` is given
/// the populations (released as the other rules decided) and returns findings per row, which
/// take part in the decision (a finding on a subquery's row falls on every row).
pub fn apply_checks(
    batches: &[RecordBatch],
    schema: Arc<Schema>,
    hidden: &HiddenColumns,
    shape: &ResultShape,
    rules: &ReleaseRules,
    subqueries: &[SubqueryOutcome],
    differencing: impl FnOnce(&[RowUnits]) -> Result<Vec<(u64, Finding)>>,
) -> Result<(Vec<RecordBatch>, CheckReport, Vec<RowUnits>)> {
    let visible = schema.fields().len();
    let mut report = CheckReport {
        threshold_k: rules.k,
        rules: format!(
            "threshold k = {} for every group, every side of every condition inside an \
             aggregate and every subquery; n-k dominance {}/{:.2} and p% = {:.2} on every term \
             of every sum (positive and negative contributions apart); zero sums fail; \
             differencing against every release over the same data; one-category groups \
             flagged",
            rules.k,
            rules.dominance_n,
            f64::from(rules.dominance_k_bp) / 10_000.0,
            f64::from(rules.p_bp) / 10_000.0
        ),
        ..Default::default()
    };
    // A failed subquery fails every row: each depends on its figure.
    let subquery_failures: Vec<Finding> = subqueries
        .iter()
        .flat_map(|s| {
            s.failures.first().map(|first| {
                Finding::fail(
                    "subquery",
                    format!(
                        "every row depends on subquery `{}`, which fails its own checks: {}",
                        s.what, first.message
                    ),
                )
            })
        })
        .collect();
    // Per computed row: its findings and populations.
    let mut findings: Vec<Vec<Finding>> = Vec::new();
    let mut units: Vec<RowUnits> = Vec::new();
    for batch in batches {
        if batch.num_columns() != visible + hidden.columns.len() {
            return Err(EngineError::Execution(
                "result does not carry its privacy-unit statistics; refused".into(),
            ));
        }
        for r in 0..batch.num_rows() {
            let (mut f, sets) = row_findings(batch, r, visible, &shape.dimensions, hidden, rules)?;
            f.extend(subquery_failures.iter().cloned());
            for (v, func) in &shape.single_values {
                f.push(Finding::review(
                    "single-value",
                    format!(
                        "`{}` is a {func}: the figure of one unit, not a combination of many",
                        schema.field(*v).name()
                    ),
                ));
            }
            findings.push(f);
            units.push(RowUnits {
                row: units.len() as u64,
                released_row: None,
                sets,
            });
        }
    }
    for (row, finding) in one_category(batches, &schema, shape)? {
        findings[row].push(finding);
    }
    // Differencing, against the rows as the rules above decided them.
    let any_released = findings.iter().any(|f| worst(f) != Verdict::Fail);
    for (u, f) in units.iter_mut().zip(&findings) {
        u.released_row = (worst(f) != Verdict::Fail).then_some(u.row);
    }
    for (i, s) in subqueries.iter().enumerate() {
        units.push(RowUnits {
            row: SUBQUERY_ROWS + i as u64,
            released_row: any_released.then_some(SUBQUERY_ROWS + i as u64),
            sets: s
                .populations
                .iter()
                .map(|(dataset, set, fp)| RowPopulation {
                    dataset: dataset.clone(),
                    source: Source::Subquery(i),
                    figure: true,
                    fingerprint: *fp,
                    set: set.clone(),
                })
                .collect(),
        });
    }
    for (row, finding) in differencing(&units)? {
        if row >= SUBQUERY_ROWS {
            for f in findings.iter_mut() {
                f.push(finding.clone());
            }
        } else if let Some(f) = usize::try_from(row).ok().and_then(|r| findings.get_mut(r)) {
            f.push(finding);
        }
    }
    // Apply: suppress fail rows, list the others.
    let mut out = Vec::new();
    let mut row = 0usize;
    for batch in batches {
        let mut keep = Vec::with_capacity(batch.num_rows());
        for _ in 0..batch.num_rows() {
            let f = std::mem::take(&mut findings[row]);
            let verdict = worst(&f);
            let released_row = (verdict != Verdict::Fail).then_some(report.rows_released);
            units[row].released_row = released_row;
            match verdict {
                Verdict::Pass => {}
                Verdict::Review => report.rows_review += 1,
                Verdict::Fail => report.rows_suppressed += 1,
            }
            if released_row.is_some() {
                report.rows_released += 1;
            }
            let cap = if verdict == Verdict::Fail {
                MAX_LISTED_FAILED
            } else {
                MAX_LISTED_REVIEW
            };
            let listed = report.rows.iter().filter(|x| x.verdict == verdict).count();
            if verdict != Verdict::Pass && listed < cap {
                report.rows.push(RowCheck {
                    row: row as u64,
                    released_row,
                    verdict,
                    findings: f,
                });
            }
            keep.push(verdict != Verdict::Fail);
            row += 1;
        }
        let projected = batch.project(&(0..visible).collect::<Vec<_>>())?;
        let filtered = filter_record_batch(&projected, &BooleanArray::from(keep))?;
        let filtered = RecordBatch::try_new(schema.clone(), filtered.columns().to_vec())?;
        if filtered.num_rows() > 0 {
            out.push(filtered);
        }
    }
    report.rows_computed = row as u64;
    report
        .rows
        .sort_by_key(|r| (r.verdict == Verdict::Fail, r.row));
    if report.rows_review as usize > MAX_LISTED_REVIEW {
        report.job_findings.push(Finding::review(
            "too-many-review-rows",
            format!(
                "{} rows need review; only the first {MAX_LISTED_REVIEW} are listed",
                report.rows_review
            ),
        ));
    }
    report
        .job_findings
        .extend(rules.suppressed_share(report.rows_suppressed, report.rows_computed));
    if report.rows_suppressed > 0 {
        report.notes.push(format!(
            "{} of {} rows suppressed",
            report.rows_suppressed, report.rows_computed
        ));
    }
    if report.rows_computed == 0 {
        report.notes.push("the query returned no rows".into());
    }
    let any_released = report.rows_released > 0;
    for u in units.iter_mut().filter(|u| u.row >= SUBQUERY_ROWS) {
        u.released_row = any_released.then_some(u.row);
    }
    Ok((out, report, units))
}

/// One-category groups. With two or more dimensions: when every computed row that shares the
/// other dimensions' values has one and the same value of dimension `d` (while `d` takes
/// several values in the result), knowing that a unit belongs to that group tells its `d`.
/// Suppressed rows count as categories: they exist, only their figures are withheld.
fn one_category(
    batches: &[RecordBatch],
    schema: &Schema,
    shape: &ResultShape,
) -> Result<Vec<(usize, Finding)>> {
    let dims = &shape.dimensions;
    if dims.len() < 2 {
        return Ok(Vec::new());
    }
    let mut cells: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            cells.push(
                dims.iter()
                    .map(|&d| array_value_to_string(batch.column(d), r))
                    .collect::<std::result::Result<_, _>>()?,
            );
        }
    }
    let mut out = Vec::new();
    for (di, &d) in dims.iter().enumerate() {
        let distinct: BTreeSet<&str> = cells.iter().map(|c| c[di].as_str()).collect();
        if distinct.len() < 2 {
            continue;
        }
        let mut groups: HashMap<Vec<&str>, (BTreeSet<&str>, Vec<usize>)> = HashMap::new();
        for (row, c) in cells.iter().enumerate() {
            let key: Vec<&str> = c
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != di)
                .map(|(_, s)| s.as_str())
                .collect();
            let e = groups.entry(key).or_default();
            e.0.insert(c[di].as_str());
            e.1.push(row);
        }
        for (key, (values, rows)) in groups {
            let Some(value) = values.first().filter(|_| values.len() == 1) else {
                continue;
            };
            let others: Vec<String> = dims
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != di)
                .zip(&key)
                .map(|((_, &o), v)| format!("{} = {v}", schema.field(o).name()))
                .collect();
            let message = format!(
                "one category: every unit with {} in this result has {} = {value}, so the group \
                 discloses it",
                others.join(", "),
                schema.field(d).name()
            );
            let names: Vec<&str> = dims
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != di)
                .map(|(_, &o)| schema.field(o).name().as_str())
                .collect();
            let about = format!(
                "{} {} {}",
                names.join(", "),
                if names.len() == 1 {
                    "determines"
                } else {
                    "determine"
                },
                schema.field(d).name()
            );
            for row in rows {
                out.push((
                    row,
                    Finding::review("one-category", message.clone()).about(about.clone()),
                ));
            }
        }
    }
    out.sort_by_key(|(row, _)| *row);
    Ok(out)
}
