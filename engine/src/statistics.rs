//! The statistics rewrite: the checked plan is rewritten so that its own execution produces,
//! for every output row, the hidden statistics the release checks need, computed beside the
//! query's aggregates. Raw data is never re-read.
//!
//! - per contributing dataset, the set of its privacy units behind the row
//!   ([`crate::unit_stats::unit_set`]): threshold and differencing;
//! - per `sum` / `avg` and per dataset whose columns it reads, each unit's contribution
//!   ([`crate::unit_stats::contributions`]): the dominance rules.
//!
//! The hidden columns are appended after the query's own columns, in the order of
//! [`HiddenColumns::columns`]; the result checks split them off by position.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, LogicalPlan, Projection, SubqueryAlias, Window, cast,
};

use crate::error::{EngineError, Result};
use crate::unit_stats::{UnitKey, contributions, unit_set};

/// Prefix of hidden column names; queries may not use it.
pub const HIDDEN_PREFIX: &str = "__erhai_";

/// What one hidden column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// The unit set of a dataset (an encoded `UnitSet`).
    Units {
        /// Dataset name.
        dataset: String,
    },
    /// Per-unit contributions of a dataset to sums sharing a unit column and a filter (one
    /// `ContribSummary` per sum, in order).
    Contrib {
        /// Dataset name.
        dataset: String,
        /// Each sum as displayed, e.g. `sum(stays.nights)` (`sum(x) and avg(x)` when shared).
        aggregates: Vec<String>,
    },
}

/// The hidden columns a rewritten plan appends, by position after the visible ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenColumns {
    /// In order.
    pub columns: Vec<Hidden>,
}

/// The sums measured over one unit column with one filter: one contribution aggregate.
struct Measured {
    unit: String,
    key: UnitKey,
    dataset: String,
    filter: Option<Expr>,
    /// Each value with the sums (labels) it stands for.
    values: Vec<(Expr, String)>,
}

/// Where one table's privacy units come from.
#[derive(Debug, Clone)]
pub struct UnitSource {
    /// Dataset name.
    pub dataset: String,
    /// The privacy-unit column.
    pub column: String,
    /// The key of the dataset's unit index.
    pub key: UnitKey,
}

/// Per table name as the query sees it.
pub type UnitMap = HashMap<String, UnitSource>;

/// Rewrites `plan` (an aggregated plan, see [`crate::lineage::is_aggregated`]) to append the
/// hidden statistics; `keep` is how many of the largest contributions each sum reports.
pub fn add_statistics(
    plan: &LogicalPlan,
    units: &UnitMap,
    keep: usize,
) -> Result<(LogicalPlan, HiddenColumns)> {
    let mut cx = Cx {
        units,
        keep,
        next: 0,
    };
    let (plan, hidden) = cx.top(plan)?;
    Ok((
        plan,
        HiddenColumns {
            columns: hidden.into_iter().map(|h| h.what).collect(),
        },
    ))
}

/// A unit column carried up a plan: its name there, the dataset, the dataset's unit key.
pub type Exposed = (String, String, UnitKey);

/// Carries the privacy-unit column of every scanned table up through `plan` (a plan below any
/// aggregate); returns the rewritten plan and, per scanned table, the unit column's name in its
/// output, the dataset and the dataset's unit key.
pub fn expose_units(plan: &LogicalPlan, units: &UnitMap) -> Result<(LogicalPlan, Vec<Exposed>)> {
    let mut cx = Cx {
        units,
        keep: 0,
        next: 0,
    };
    let (plan, carried) = cx.expose(plan)?;
    let out = carried
        .into_iter()
        .filter_map(|c| match (c.what, c.source) {
            (Hidden::Units { dataset }, Some((key, _))) => Some((c.name, dataset, key)),
            _ => None,
        })
        .collect();
    Ok((plan, out))
}

struct Cx<'a> {
    units: &'a UnitMap,
    keep: usize,
    next: usize,
}

/// A hidden column on its way up the plan.
struct Carried {
    /// Its name in the current node's output.
    name: String,
    what: Hidden,
    /// Below the aggregate: the dataset's unit key, and the qualifiers under which
    /// that dataset's columns are visible here.
    source: Option<(UnitKey, BTreeSet<TableReference>)>,
}

fn df(e: datafusion::error::DataFusionError) -> EngineError {
    EngineError::Plan(e.to_string())
}

fn not_yet(node: &LogicalPlan) -> EngineError {
    EngineError::Unsupported(format!(
        "the privacy-unit statistics cannot yet be computed through this plan node: {}; \
         rewrite the query to aggregate once, without nested aggregation or set operations",
        node_name(node)
    ))
}

fn node_name(plan: &LogicalPlan) -> String {
    let text = plan.display().to_string();
    text.split(':').next().unwrap_or("plan").to_string()
}

/// The column named `name` in `plan`'s output, with its qualifier.
fn col_of(plan: &LogicalPlan, name: &str) -> Result<Expr> {
    let (q, f) = plan
        .schema()
        .qualified_field_with_unqualified_name(name)
        .map_err(df)?;
    Ok(Expr::Column(Column::new(q.cloned(), f.name())))
}

type Carry = Vec<Carried>;

impl Cx<'_> {
    /// Rebuilds a node that keeps its input's rows (projection, alias, filter, sort, limit,
    /// window, repartition) over `below`'s rewrite of its input, carrying the hidden columns
    /// through. `None` for any other node.
    fn carry(
        &mut self,
        plan: &LogicalPlan,
        below: fn(&mut Self, &LogicalPlan) -> Result<(LogicalPlan, Carry)>,
    ) -> Option<Result<(LogicalPlan, Carry)>> {
        Some(match plan {
            LogicalPlan::Projection(p) => below(self, &p.input).and_then(|(input, hidden)| {
                let mut exprs = p.expr.clone();
                for h in &hidden {
                    exprs.push(col_of(&input, &h.name)?);
                }
                let p = Projection::try_new(exprs, Arc::new(input)).map_err(df)?;
                Ok((LogicalPlan::Projection(p), hidden))
            }),
            LogicalPlan::SubqueryAlias(a) => {
                below(self, &a.input).and_then(|(input, mut hidden)| {
                    // Above an alias, every column below is qualified by the alias.
                    for h in &mut hidden {
                        if let Some((_, quals)) = &mut h.source {
                            *quals = BTreeSet::from([a.alias.clone()]);
                        }
                    }
                    let a = SubqueryAlias::try_new(Arc::new(input), a.alias.clone()).map_err(df)?;
                    Ok((LogicalPlan::SubqueryAlias(a), hidden))
                })
            }
            LogicalPlan::Window(w) => below(self, &w.input).and_then(|(input, hidden)| {
                let w = Window::try_new(w.window_expr.clone(), Arc::new(input)).map_err(df)?;
                Ok((LogicalPlan::Window(w), hidden))
            }),
            LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Repartition(_) => match plan.inputs().first().copied() {
                Some(child) => below(self, child).and_then(|(input, hidden)| {
                    let p = plan
                        .with_new_exprs(plan.expressions(), vec![input])
                        .map_err(df)?;
                    Ok((p, hidden))
                }),
                None => Err(not_yet(plan)),
            },
            _ => return None,
        })
    }

    /// Above (and at) the aggregate: adds the counts and passes them up.
    fn top(&mut self, plan: &LogicalPlan) -> Result<(LogicalPlan, Carry)> {
        if let Some(r) = self.carry(plan, Self::top) {
            return r;
        }
        match plan {
            LogicalPlan::Aggregate(a) => {
                self.aggregate(&a.input, a.group_expr.clone(), a.aggr_expr.clone())
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let groups = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                self.aggregate(input, groups, Vec::new())
            }
            _ => Err(not_yet(plan)),
        }
    }

    fn aggregate(
        &mut self,
        input: &LogicalPlan,
        groups: Vec<Expr>,
        mut aggr: Vec<Expr>,
    ) -> Result<(LogicalPlan, Carry)> {
        let (input, units) = self.expose(input)?;
        let sums: Vec<(String, AggregateFunction)> = aggr.iter().filter_map(sum_like).collect();
        let mut hidden = Vec::new();
        for (i, u) in units.iter().enumerate() {
            let (Some((key, _)), Hidden::Units { dataset }) = (&u.source, &u.what) else {
                continue;
            };
            let name = format!("{HIDDEN_PREFIX}units_{i}");
            let unit = col_of(&input, &u.name)?;
            aggr.push(unit_set(key.clone()).call(vec![unit]).alias(&name));
            hidden.push(Carried {
                name,
                what: Hidden::Units {
                    dataset: dataset.clone(),
                },
                source: None,
            });
        }
        // The sums over one unit column with one FILTER share one contribution aggregate (one
        // map entry per unit for all of them), and `sum(x)` and `avg(x)` share one value.
        let mut measured: Vec<Measured> = Vec::new();
        for (label, f) in &sums {
            for u in units.iter().filter(|u| reads(&f.params.args, u)) {
                let (Some((key, _)), Hidden::Units { dataset }) = (&u.source, &u.what) else {
                    continue;
                };
                let value = f
                    .params
                    .args
                    .first()
                    .cloned()
                    .ok_or_else(|| EngineError::Plan(format!("{label} has no argument")))?;
                let filter = f.params.filter.as_deref().cloned();
                let at = match measured
                    .iter()
                    .position(|m| m.filter == filter && m.unit == u.name)
                {
                    Some(at) => at,
                    None => {
                        measured.push(Measured {
                            unit: u.name.clone(),
                            key: key.clone(),
                            dataset: dataset.clone(),
                            filter,
                            values: Vec::new(),
                        });
                        measured.len() - 1
                    }
                };
                let m = &mut measured[at];
                match m.values.iter_mut().find(|(v, _)| *v == value) {
                    Some((_, shared)) => shared.push_str(&format!(" and {label}")),
                    None => m.values.push((value, label.clone())),
                }
            }
        }
        for (n, m) in measured.into_iter().enumerate() {
            let name = format!("{HIDDEN_PREFIX}contrib_{n}");
            let mut args = vec![col_of(&input, &m.unit)?];
            args.extend(
                m.values
                    .iter()
                    .map(|(v, _)| cast(v.clone(), arrow::datatypes::DataType::Float64)),
            );
            let mut call = contributions(m.key, self.keep, m.values.len()).call(args);
            if let (Expr::AggregateFunction(c), Some(filter)) = (&mut call, m.filter) {
                c.params.filter = Some(Box::new(filter));
            }
            aggr.push(call.alias(&name));
            hidden.push(Carried {
                name,
                what: Hidden::Contrib {
                    dataset: m.dataset,
                    aggregates: m.values.into_iter().map(|(_, label)| label).collect(),
                },
                source: None,
            });
        }
        let a = Aggregate::try_new(Arc::new(input), groups, aggr).map_err(df)?;
        Ok((LogicalPlan::Aggregate(a), hidden))
    }

    /// Below the aggregate: carries each scanned dataset's privacy-unit column up to it.
    fn expose(&mut self, plan: &LogicalPlan) -> Result<(LogicalPlan, Carry)> {
        if let Some(r) = self.carry(plan, Self::expose) {
            return r;
        }
        match plan {
            LogicalPlan::TableScan(scan) => {
                let table = scan.table_name.table();
                let source = self.units.get(table).ok_or_else(|| not_yet(plan))?;
                let name = format!("{HIDDEN_PREFIX}unit_{}", self.next);
                self.next += 1;
                let (q, f) = scan
                    .projected_schema
                    .qualified_field_with_unqualified_name(&source.column)
                    .map_err(df)?;
                let unit_col = Expr::Column(Column::new(q.cloned(), f.name())).alias(&name);
                let mut exprs: Vec<Expr> = scan
                    .projected_schema
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                exprs.push(unit_col);
                let p = Projection::try_new(exprs, Arc::new(plan.clone())).map_err(df)?;
                let carried = Carried {
                    name,
                    what: Hidden::Units {
                        dataset: source.dataset.clone(),
                    },
                    source: Some((
                        source.key.clone(),
                        BTreeSet::from([scan.table_name.clone()]),
                    )),
                };
                Ok((LogicalPlan::Projection(p), vec![carried]))
            }
            LogicalPlan::Join(j) => {
                use datafusion::common::JoinType as J;
                let (left, lh) = self.expose(&j.left)?;
                let (right, rh) = self.expose(&j.right)?;
                let hidden = match j.join_type {
                    J::Inner | J::Left | J::Right | J::Full => lh.into_iter().chain(rh).collect(),
                    J::LeftSemi | J::LeftAnti | J::LeftMark => lh,
                    J::RightSemi | J::RightAnti | J::RightMark => rh,
                };
                let p = plan
                    .with_new_exprs(plan.expressions(), vec![left, right])
                    .map_err(df)?;
                Ok((p, hidden))
            }
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
                Ok((plan.clone(), Vec::new()))
            }
            _ => Err(not_yet(plan)),
        }
    }
}

/// A non-DISTINCT `sum` or `avg` among a node's aggregate expressions, with its display name.
fn sum_like(e: &Expr) -> Option<(String, AggregateFunction)> {
    let inner = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    match inner {
        Expr::AggregateFunction(f)
            if !f.params.distinct && matches!(f.func.name(), "sum" | "avg") =>
        {
            Some((inner.schema_name().to_string(), f.clone()))
        }
        _ => None,
    }
}

/// Whether `args` read a column of the dataset `u` carries. Unqualified columns, columns under
/// a qualifier no dataset claims, and arguments without columns (`sum(1)`, a count) are
/// attributed to every dataset: a contribution is never left unchecked.
fn reads(args: &[Expr], u: &Carried) -> bool {
    let Some((_, quals)) = &u.source else {
        return false;
    };
    let mut columns = Vec::new();
    for a in args {
        columns.extend(a.column_refs());
    }
    columns.is_empty()
        || columns
            .iter()
            .any(|c| c.relation.as_ref().is_none_or(|r| quals.contains(r)))
}
