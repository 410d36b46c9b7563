//! Differential-privacy mode: a checked aggregate query answered with calibrated noise.
//!
//! The query's plan is taken apart into its groups and its aggregates (`count`, `sum`, `avg`),
//! and DataFusion computes, per group *and privacy unit*, the unit's row count and its sums of
//! values clamped to the bounds the column policy declares (never bounds read from the data).
//! Then, in this process, each unit keeps at most `max_groups_per_unit` groups (chosen by a keyed
//! hash of unit and group, so the choice never depends on other units' data), its rows per group
//! are capped at `max_rows_per_unit`, the per-group totals get discrete Laplace noise from the
//! operating system's CSPRNG, and a group is released only if its noisy count clears the
//! threshold. Outputs are integers, or multiples of a grid fixed by public parameters, so their
//! low bits carry nothing of the data (the floating-point attack on textbook Laplace noise).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Operator, cast, lit, when};
use erhai_policies::DatasetPolicy;
use erhai_policies::dp::{Calibration, DpSettings, calibrate, sum_scale};
use ring::rand::{SecureRandom, SystemRandom};
use siphasher::sip::SipHasher13;

use crate::checks::CheckReport;
use crate::error::{EngineError, Result};
use crate::statistics::{HIDDEN_PREFIX, UnitMap, expose_units};
use crate::unit_stats::{UnitKey, unit_indexes};

/// One query's request: the scenario's settings and the ε this query spends.
#[derive(Clone, Debug, PartialEq)]
pub struct DpRequest {
    /// The scenario's settings.
    pub settings: DpSettings,
    /// ε of this query (already charged to the scenario's budget).
    pub epsilon: f64,
}

/// A noisy statistic computed per group.
#[derive(Clone, Debug)]
enum Stat {
    /// Rows of non-null values of an expression.
    Count,
    /// Sum of an expression clamped to `[lo, hi]`.
    Sum { lo: f64, hi: f64 },
}

/// Where an output column comes from.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// The i-th group column.
    Group(usize),
    /// The noisy row count.
    Rows,
    /// The i-th statistic.
    Stat(usize),
    /// The i-th statistic (a sum) over the noisy row count.
    Avg(usize),
}

fn refuse(why: String) -> EngineError {
    EngineError::Unsupported(format!("differential-privacy mode: {why}"))
}

#[recursive::recursive]
fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// A query prepared for differential-privacy mode.
#[derive(Debug)]
pub struct DpPlan {
    /// Groups, unit, rows per unit, then each statistic, per (group, unit).
    plan: LogicalPlan,
    groups: usize,
    stats: Vec<(String, Stat)>,
    outputs: Vec<Out>,
    visible: SchemaRef,
    key: UnitKey,
    dataset: String,
    ordered: bool,
}

impl DpPlan {
    /// Takes `plan` (checked and allowed) apart; refuses shapes it cannot answer privately.
    pub fn build(
        plan: &LogicalPlan,
        units: &UnitMap,
        policies: &BTreeMap<String, DatasetPolicy>,
    ) -> Result<DpPlan> {
        let visible = Arc::new(plan.schema().as_arrow().clone());
        let mut node = plan;
        let mut ordered = false;
        while let LogicalPlan::Sort(s) = node {
            ordered = true;
            node = &s.input;
        }
        let (projection, agg) = match node {
            LogicalPlan::Projection(p) => match p.input.as_ref() {
                LogicalPlan::Aggregate(a) => (Some(p), a),
                _ => return Err(shape()),
            },
            LogicalPlan::Aggregate(a) => (None, a),
            _ => return Err(shape()),
        };
        if agg
            .group_expr
            .iter()
            .any(|g| matches!(g, Expr::GroupingSet(_)))
        {
            return Err(refuse(
                "GROUPING SETS, CUBE and ROLLUP are not answered; group once".into(),
            ));
        }
        let (input, exposed) = expose_units(&agg.input, units)?;
        let [(unit_col, dataset, key)] = <[_; 1]>::try_from(exposed).map_err(|v| {
            refuse(format!(
                "the query reads {} datasets; DP mode answers queries over one dataset",
                v.len()
            ))
        })?;
        let policy = policies
            .get(&dataset)
            .ok_or_else(|| refuse(format!("no policy for {dataset}")))?;

        // Each aggregate becomes an output kind; sums and counts of expressions become
        // statistics (an average shares its sum).
        let mut stats: Vec<(String, Stat)> = Vec::new();
        let mut stat_exprs: Vec<Expr> = Vec::new();
        let mut kinds = Vec::new();
        for e in &agg.aggr_expr {
            let Expr::AggregateFunction(f) = unalias(e) else {
                return Err(shape());
            };
            let name = f.func.name().to_ascii_lowercase();
            let label = unalias(e).schema_name().to_string();
            if f.params.distinct || f.params.filter.is_some() || !f.params.order_by.is_empty() {
                return Err(refuse(format!(
                    "`{label}`: DISTINCT, FILTER and ORDER BY inside aggregates are not answered"
                )));
            }
            let arg = f.params.args.first().cloned().unwrap_or_else(|| lit(1i64));
            let mut stat_of = |kind: Stat, expr: Expr| {
                stat_exprs
                    .iter()
                    .position(|x| *x == expr)
                    .unwrap_or_else(|| {
                        stats.push((label.clone(), kind));
                        stat_exprs.push(expr);
                        stat_exprs.len() - 1
                    })
            };
            kinds.push(match name.as_str() {
                "count" if matches!(arg, Expr::Literal(..)) => Out::Rows,
                "count" => Out::Stat(stat_of(Stat::Count, arg)),
                "sum" | "avg" => {
                    let (lo, hi) = bounds_of(&arg, policy).ok_or_else(|| {
                        refuse(format!(
                            "`{label}` needs declared bounds for every measure it reads \
                             (`bounds = [lower, upper]` in the column policy); values are \
                             clamped to them, never to bounds taken from the data"
                        ))
                    })?;
                    let i = stat_of(Stat::Sum { lo, hi }, arg);
                    if name == "sum" {
                        Out::Stat(i)
                    } else {
                        Out::Avg(i)
                    }
                }
                other => {
                    return Err(refuse(format!(
                        "`{other}` is not answered; DP mode answers count, sum and avg"
                    )));
                }
            });
        }
        let groups = agg.group_expr.len();
        let outputs = match projection {
            None => (0..groups)
                .map(Out::Group)
                .chain(kinds.iter().copied())
                .collect(),
            Some(p) => p
                .expr
                .iter()
                .map(|e| match unalias(e) {
                    Expr::Column(c) => {
                        let i = agg.schema.index_of_column(c).map_err(|_| shape())?;
                        Ok(if i < groups {
                            Out::Group(i)
                        } else {
                            kinds[i - groups]
                        })
                    }
                    _ => Err(refuse(format!(
                        "output `{}` computes on aggregates; select groups and aggregates as \
                         they are",
                        e.schema_name()
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
        };

        // Per (group, unit): rows, then each statistic.
        let unit = Expr::Column(Column::from_name(unit_col));
        let mut group_by = agg.group_expr.clone();
        group_by.push(unit);
        let mut aggr = vec![count(lit(1i64)).alias(format!("{HIDDEN_PREFIX}rows"))];
        for (i, ((_, kind), e)) in stats.iter().zip(&stat_exprs).enumerate() {
            let name = format!("{HIDDEN_PREFIX}stat_{i}");
            aggr.push(match kind {
                Stat::Count => count(e.clone()).alias(name),
                Stat::Sum { lo, hi } => {
                    let v = cast(e.clone(), DataType::Float64);
                    let clamped = when(v.clone().lt(lit(*lo)), lit(*lo))
                        .when(v.clone().gt(lit(*hi)), lit(*hi))
                        .otherwise(v)
                        .map_err(|e| EngineError::Plan(e.to_string()))?;
                    sum(clamped).alias(name)
                }
            });
        }
        let plan = LogicalPlan::Aggregate(
            Aggregate::try_new(Arc::new(input), group_by, aggr)
                .map_err(|e| EngineError::Plan(e.to_string()))?,
        );
        Ok(DpPlan {
            plan,
            groups,
            stats,
            outputs,
            visible,
            key,
            dataset,
            ordered,
        })
    }

    /// The plan DataFusion runs (its rows never leave the engine).
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }
}

fn shape() -> EngineError {
    refuse(
        "the query must be `SELECT <group columns and aggregates> FROM <one dataset> [WHERE …] \
         GROUP BY …`, its outputs the group columns and count / sum / avg as they are"
            .into(),
    )
}

/// The range of `e`'s values from the declared bounds of the columns it reads.
#[recursive::recursive]
fn bounds_of(e: &Expr, policy: &DatasetPolicy) -> Option<(f64, f64)> {
    match e {
        Expr::Column(c) => policy
            .column(&c.name)
            .and_then(|p| p.bounds)
            .map(|b| (b.lo, b.hi)),
        Expr::Literal(v, _) => match v.cast_to(&DataType::Float64).ok()? {
            ScalarValue::Float64(Some(x)) if x.is_finite() => Some((x, x)),
            _ => None,
        },
        Expr::Cast(c) => bounds_of(&c.expr, policy),
        Expr::TryCast(c) => bounds_of(&c.expr, policy),
        Expr::Alias(a) => bounds_of(&a.expr, policy),
        Expr::Negative(x) => bounds_of(x, policy).map(|(lo, hi)| (-hi, -lo)),
        Expr::BinaryExpr(b) => {
            let (l1, h1) = bounds_of(&b.left, policy)?;
            let (l2, h2) = bounds_of(&b.right, policy)?;
            match b.op {
                Operator::Plus => Some((l1 + l2, h1 + h2)),
                Operator::Minus => Some((l1 - h2, h1 - l2)),
                Operator::Multiply => {
                    let p = [l1 * l2, l1 * h2, h1 * l2, h1 * h2];
                    Some((
                        p.iter().copied().fold(f64::INFINITY, f64::min),
                        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    ))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// One unit's contribution to one group, before bounding.
/// Its statistics are `arena[slot * n .. (slot + 1) * n]` of the gatherer, so that keeping a
/// contribution allocates nothing.
#[derive(Clone, Copy)]
struct Kept {
    priority: u64,
    group: usize,
    rows: f64,
}

/// Unit index → its block of `m` slots.
type Blocks = HashMap<u32, usize, std::hash::BuildHasherDefault<crate::unit_stats::IndexHasher>>;

/// Gathers the per-(group, unit) rows as they stream out of DataFusion.
pub struct Gatherer<'a> {
    dp: &'a DpPlan,
    converter: RowConverter,
    group_ids: HashMap<Vec<u8>, usize>,
    group_rows: Vec<OwnedRow>,
    /// Each unit's block of `m` slots in `slots` (and `m × statistics` values in `arena`).
    units: Blocks,
    slots: Vec<Kept>,
    filled: Vec<u8>,
    arena: Vec<f64>,
    m: usize,
}

impl<'a> Gatherer<'a> {
    /// A gatherer for `dp` under `settings`.
    pub fn new(dp: &'a DpPlan, settings: &DpSettings) -> Result<Gatherer<'a>> {
        let fields = dp
            .plan
            .schema()
            .fields()
            .iter()
            .take(dp.groups)
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Gatherer {
            dp,
            converter: RowConverter::new(fields)?,
            group_ids: HashMap::new(),
            group_rows: Vec::new(),
            units: Blocks::default(),
            slots: Vec::new(),
            filled: Vec::new(),
            arena: Vec::new(),
            m: settings.max_groups_per_unit as usize,
        })
    }

    /// Takes one batch of (groups…, unit, rows, stats…).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let g = self.dp.groups;
        // A global aggregate has no group columns: every row is in the one group.
        let rows = (g > 0)
            .then(|| self.converter.convert_columns(&batch.columns()[..g]))
            .transpose()?;
        let units = unit_indexes(&self.dp.key, batch.column(g))
            .map_err(|e| EngineError::Execution(e.to_string()))?;
        let counts = arrow::compute::cast(batch.column(g + 1), &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        let stats: Vec<ArrayRef> = (0..self.dp.stats.len())
            .map(|i| arrow::compute::cast(batch.column(g + 2 + i), &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let stats: Vec<&Float64Array> = stats
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        for (i, unit) in units.into_iter().enumerate() {
            // Rows without a unit cannot be bounded: they are left out.
            let Some(unit) = unit else { continue };
            let row = rows.as_ref().map(|r| r.row(i));
            let key: &[u8] = row.as_ref().map(|r| r.as_ref()).unwrap_or(&[]);
            let group = match self.group_ids.get(key) {
                Some(&id) => id,
                None => {
                    let id = self.group_ids.len();
                    self.group_ids.insert(key.to_vec(), id);
                    if let Some(r) = &row {
                        self.group_rows.push(r.owned());
                    }
                    id
                }
            };
            let mut h = SipHasher13::new_with_key(self.dp.key.bytes());
            h.write_u32(unit);
            h.write(key);
            let priority = h.finish();
            let (m, n) = (self.m, self.dp.stats.len());
            let block = *self.units.entry(unit).or_insert_with(|| {
                let b = self.filled.len();
                self.filled.push(0);
                self.slots.extend(std::iter::repeat_n(
                    Kept {
                        priority: u64::MAX,
                        group: 0,
                        rows: 0.0,
                    },
                    m,
                ));
                self.arena.extend(std::iter::repeat_n(0.0, m * n));
                b
            });
            let used = usize::from(self.filled[block]);
            let slot = if used < m {
                self.filled[block] += 1;
                block * m + used
            } else {
                // Full: replace the slot of the largest priority if this one is smaller.
                let worst = (block * m..block * m + m)
                    .max_by_key(|&s| self.slots[s].priority)
                    .unwrap_or(block * m);
                if priority >= self.slots[worst].priority {
                    continue;
                }
                worst
            };
            self.slots[slot] = Kept {
                priority,
                group,
                rows: counts.value(i) as f64,
            };
            for (j, st) in stats.iter().enumerate() {
                self.arena[slot * n + j] = if st.is_valid(i) { st.value(i) } else { 0.0 };
            }
        }
        Ok(())
    }

    /// Bounds every unit's contribution, adds noise, selects groups and builds the release.
    pub fn release(self, req: &DpRequest) -> Result<(Vec<RecordBatch>, CheckReport)> {
        let s = &req.settings;
        let c = f64::from(s.max_rows_per_unit);
        let cal = calibrate(s, req.epsilon, 1 + self.dp.stats.len());
        let n = self.group_ids.len();
        let mut rows = vec![0.0f64; n];
        let mut totals = vec![vec![0.0f64; self.dp.stats.len()]; n];
        let nstats = self.dp.stats.len();
        for (block, &used) in self.filled.iter().enumerate() {
            for slot in block * self.m..block * self.m + usize::from(used) {
                let k = self.slots[slot];
                rows[k.group] += k.rows.min(c);
                for (j, (_, stat)) in self.dp.stats.iter().enumerate() {
                    let v = self.arena[slot * nstats + j];
                    totals[k.group][j] += match stat {
                        Stat::Count => v.min(c),
                        Stat::Sum { lo, hi } => v.clamp(c * lo, c * hi),
                    };
                }
            }
        }
        let noise = Noise::new();
        let scales: Vec<f64> = self
            .dp
            .stats
            .iter()
            .map(|(_, st)| match st {
                Stat::Count => cal.count_scale,
                Stat::Sum { lo, hi } => sum_scale(s, cal.epsilon_each, *lo, *hi),
            })
            .collect();
        let mut released = Vec::new();
        let mut noisy_rows = Vec::new();
        let mut noisy_stats = Vec::new();
        for g in 0..n {
            let r = rows[g].round() + noise.discrete_laplace(cal.count_scale)? as f64;
            if r < cal.threshold {
                continue;
            }
            released.push(g);
            noisy_rows.push(r);
            noisy_stats.push(
                totals[g]
                    .iter()
                    .zip(&scales)
                    .map(|(v, &b)| noise.on_grid(*v, b))
                    .collect::<Result<Vec<f64>>>()?,
            );
        }
        let batch = self.build(&released, &noisy_rows, &noisy_stats)?;
        let report = self.report(req, &cal, n, released.len(), &scales);
        Ok((batch.into_iter().collect(), report))
    }

    fn build(
        &self,
        released: &[usize],
        noisy_rows: &[f64],
        noisy_stats: &[Vec<f64>],
    ) -> Result<Option<RecordBatch>> {
        if released.is_empty() {
            return Ok(None);
        }
        let group_columns = if self.dp.groups == 0 {
            Vec::new()
        } else {
            self.converter
                .convert_rows(released.iter().map(|&g| self.group_rows[g].row()))?
        };
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (out, field) in self.dp.outputs.iter().zip(self.dp.visible.fields()) {
            let raw: ArrayRef = match out {
                Out::Group(i) => group_columns
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| EngineError::Plan("a group column is missing".into()))?,
                Out::Rows => Arc::new(Int64Array::from_iter_values(
                    noisy_rows.iter().map(|r| r.max(0.0) as i64),
                )),
                Out::Stat(j) => match self.dp.stats[*j].1 {
                    Stat::Count => Arc::new(Int64Array::from_iter_values(
                        noisy_stats.iter().map(|s| s[*j].max(0.0) as i64),
                    )),
                    Stat::Sum { .. } => Arc::new(Float64Array::from_iter_values(
                        noisy_stats.iter().map(|s| s[*j]),
                    )),
                },
                Out::Avg(j) => Arc::new(Float64Array::from_iter_values(
                    noisy_stats
                        .iter()
                        .zip(noisy_rows)
                        .map(|(s, r)| s[*j] / r.max(1.0)),
                )),
            };
            columns.push(arrow::compute::cast(&raw, field.data_type())?);
        }
        let schema = Arc::new(Schema::new(self.dp.visible.fields().clone()));
        Ok(Some(RecordBatch::try_new(schema, columns)?))
    }

    fn report(
        &self,
        req: &DpRequest,
        cal: &Calibration,
        computed: usize,
        released: usize,
        scales: &[f64],
    ) -> CheckReport {
        let s = &req.settings;
        let mut notes = vec![format!(
            "differential privacy over {}: ε = {} split over {} statistics (ε = {:.4} each), \
             δ = {:e}; each unit counted in at most {} group(s) with at most {} row(s) each",
            self.dp.dataset,
            req.epsilon,
            1 + self.dp.stats.len(),
            cal.epsilon_each,
            s.delta_per_query,
            s.max_groups_per_unit,
            s.max_rows_per_unit
        )];
        notes.push(format!(
            "row counts: discrete Laplace noise of scale {:.3}; groups released when the noisy \
             count is at least {:.1}",
            cal.count_scale, cal.threshold
        ));
        for ((label, stat), b) in self.dp.stats.iter().zip(scales) {
            notes.push(match stat {
                Stat::Count => format!("{label}: discrete Laplace noise of scale {b:.3}"),
                Stat::Sum { lo, hi } => format!(
                    "{label}: values clamped to [{lo}, {hi}], discrete Laplace noise of scale \
                     {b:.3} on a grid of {:.3e}",
                    b / GRID_STEPS
                ),
            });
        }
        if self.dp.ordered {
            notes.push("ORDER BY is not applied to noisy results; rows come in group order".into());
        }
        CheckReport {
            rows_computed: computed as u64,
            rows_released: released as u64,
            rows_suppressed: (computed - released) as u64,
            threshold_k: 0,
            rules: format!(
                "differential privacy: ε = {}, δ = {:e}, noisy group selection",
                req.epsilon, s.delta_per_query
            ),
            notes,
            ..CheckReport::default()
        }
    }
}

/// Grid steps per noise scale: sums are released on a grid this much finer than their noise.
const GRID_STEPS: f64 = 1024.0;

/// Noise from the operating system's CSPRNG.
struct Noise(SystemRandom);

impl Noise {
    fn new() -> Noise {
        Noise(SystemRandom::new())
    }

    /// Uniform in (0, 1], from 53 random bits.
    fn uniform(&self) -> Result<f64> {
        let mut b = [0u8; 8];
        self.0
            .fill(&mut b)
            .map_err(|_| EngineError::Crypto("the system random source failed".into()))?;
        let bits = u64::from_le_bytes(b) >> 11;
        Ok((bits + 1) as f64 / (1u64 << 53) as f64)
    }

    /// A geometric count of failures with P(k) ∝ exp(−k / scale).
    fn geometric(&self, scale: f64) -> Result<i64> {
        Ok((-scale * self.uniform()?.ln()).floor() as i64)
    }

    /// Discrete Laplace: P(x) ∝ exp(−|x| / scale), x an integer.
    fn discrete_laplace(&self, scale: f64) -> Result<i64> {
        Ok(self.geometric(scale)? - self.geometric(scale)?)
    }

    /// `v` with discrete Laplace noise of `scale`, on a grid of `scale / GRID_STEPS`.
    fn on_grid(&self, v: f64, scale: f64) -> Result<f64> {
        if scale <= 0.0 {
            return Ok(v);
        }
        let step = scale / GRID_STEPS;
        let k = (v / step).round() + self.discrete_laplace(GRID_STEPS)? as f64;
        Ok(k * step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_laplace_has_the_right_spread() {
        let n = Noise::new();
        let draws: Vec<i64> = (0..20_000)
            .map(|_| n.discrete_laplace(4.0).expect("draw"))
            .collect();
        let mean = draws.iter().sum::<i64>() as f64 / draws.len() as f64;
        let mad = draws.iter().map(|x| x.abs() as f64).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.3, "mean {mean}");
        // E|X| for discrete Laplace of scale 4 is about 3.9.
        assert!((3.3..4.5).contains(&mad), "mean absolute deviation {mad}");
        let v = n.on_grid(1000.0, 10.0).expect("grid");
        let steps = v / (10.0 / GRID_STEPS);
        assert!((steps - steps.round()).abs() < 1e-6);
    }
}
