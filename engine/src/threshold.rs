//! The statistics rewrite: the checked plan is rewritten so that its own execution produces,
//! for every output row, the number of distinct privacy units of each contributing dataset
//! (`count(DISTINCT unit)` computed beside the query's aggregates). Raw data is never re-read.
//!
//! The hidden columns are appended after the query's own columns, in the order of
//! [`UnitColumns::datasets`]; the result checks split them off by position.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::count_distinct;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, LogicalPlan, Projection, SubqueryAlias, Window,
};

use crate::error::{EngineError, Result};

/// Prefix of hidden column names; queries may not use it.
pub const HIDDEN_PREFIX: &str = "__erhai_";

/// The hidden columns a rewritten plan appends, by position after the visible ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitColumns {
    /// Dataset name of each hidden unit count, in order.
    pub datasets: Vec<String>,
}

/// Per table name as the query sees it: (dataset name, privacy-unit column).
pub type UnitMap = HashMap<String, (String, String)>;

/// Rewrites `plan` (an aggregated plan, see [`crate::lineage::is_aggregated`]) to append the
/// distinct privacy-unit counts.
pub fn add_unit_counts(plan: &LogicalPlan, units: &UnitMap) -> Result<(LogicalPlan, UnitColumns)> {
    let mut cx = Cx { units, next: 0 };
    let (plan, hidden) = cx.top(plan)?;
    Ok((
        plan,
        UnitColumns {
            datasets: hidden.into_iter().map(|(_, d)| d).collect(),
        },
    ))
}

struct Cx<'a> {
    units: &'a UnitMap,
    next: usize,
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

type Hidden = Vec<(String, String)>;

impl Cx<'_> {
    /// Rebuilds a node that keeps its input's rows (projection, alias, filter, sort, limit,
    /// window, repartition) over `below`'s rewrite of its input, carrying the hidden columns
    /// through. `None` for any other node.
    fn carry(
        &mut self,
        plan: &LogicalPlan,
        below: fn(&mut Self, &LogicalPlan) -> Result<(LogicalPlan, Hidden)>,
    ) -> Option<Result<(LogicalPlan, Hidden)>> {
        Some(match plan {
            LogicalPlan::Projection(p) => below(self, &p.input).and_then(|(input, hidden)| {
                let mut exprs = p.expr.clone();
                for (name, _) in &hidden {
                    exprs.push(col_of(&input, name)?);
                }
                let p = Projection::try_new(exprs, Arc::new(input)).map_err(df)?;
                Ok((LogicalPlan::Projection(p), hidden))
            }),
            LogicalPlan::SubqueryAlias(a) => below(self, &a.input).and_then(|(input, hidden)| {
                let a = SubqueryAlias::try_new(Arc::new(input), a.alias.clone()).map_err(df)?;
                Ok((LogicalPlan::SubqueryAlias(a), hidden))
            }),
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
    fn top(&mut self, plan: &LogicalPlan) -> Result<(LogicalPlan, Hidden)> {
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
    ) -> Result<(LogicalPlan, Hidden)> {
        let (input, units) = self.expose(input)?;
        let mut hidden = Vec::new();
        for (i, (unit, dataset)) in units.iter().enumerate() {
            let name = format!("{HIDDEN_PREFIX}units_{i}");
            aggr.push(count_distinct(col_of(&input, unit)?).alias(&name));
            hidden.push((name, dataset.clone()));
        }
        let a = Aggregate::try_new(Arc::new(input), groups, aggr).map_err(df)?;
        Ok((LogicalPlan::Aggregate(a), hidden))
    }

    /// Below the aggregate: carries each scanned dataset's privacy-unit column up to it.
    fn expose(&mut self, plan: &LogicalPlan) -> Result<(LogicalPlan, Hidden)> {
        if let Some(r) = self.carry(plan, Self::expose) {
            return r;
        }
        match plan {
            LogicalPlan::TableScan(scan) => {
                let table = scan.table_name.table();
                let (dataset, unit) = self.units.get(table).ok_or_else(|| not_yet(plan))?;
                let name = format!("{HIDDEN_PREFIX}unit_{}", self.next);
                self.next += 1;
                let (q, f) = scan
                    .projected_schema
                    .qualified_field_with_unqualified_name(unit)
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
                Ok((LogicalPlan::Projection(p), vec![(name, dataset.clone())]))
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
