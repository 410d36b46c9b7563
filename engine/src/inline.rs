//! Derived tables inlined into the aggregates above them. `SELECT sum(x) FROM (SELECT CASE WHEN
//! … THEN spend + 10^6 ELSE 10^6 END AS x FROM t) d` hides a condition and an offset from the
//! analysis of `sum`'s argument, which would see only the column `d.x`. Before the plan is
//! checked, every aggregate's arguments, filters and group keys are rewritten in terms of the
//! columns below the projections, aliases and filters between it and its data, so that the
//! analysis (and the statistics it computes) see what is aggregated. The output keeps its
//! names: a projection above the aggregate restores them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef};
use datafusion::logical_expr::{Aggregate, Expr, Filter, LogicalPlan, Projection};

use crate::error::{EngineError, Result};

/// Most expression nodes an aggregate's expressions may have once derived tables are inlined: a
/// chain of CTEs each using its input twice (`x || x`) doubles them at every level.
pub const MAX_INLINED_NODES: usize = 20_000;

fn size(e: &Expr) -> usize {
    let mut n = 0usize;
    let _ = e.apply(|_| {
        n += 1;
        Ok(if n > MAX_INLINED_NODES {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    n
}

fn too_large() -> EngineError {
    EngineError::Forbidden(format!(
        "the derived tables below an aggregate expand into more than {MAX_INLINED_NODES} \
         expressions once their columns are followed to the data; simplify the query"
    ))
}

fn df(e: datafusion::error::DataFusionError) -> EngineError {
    EngineError::Plan(e.to_string())
}

/// The size `e` would have with its columns replaced as `map` says (without building it).
fn size_after(e: &Expr, map: &HashMap<Column, Expr>) -> usize {
    let mut n = size(e);
    for (c, count) in e.column_refs_counts() {
        if let Some(r) = map.get(c) {
            n = n.saturating_add(count.saturating_mul(size(r).saturating_sub(1)));
        }
    }
    n
}

/// `e` with its columns replaced as `map` says.
fn substitute(e: Expr, map: &HashMap<Column, Expr>) -> Result<Expr> {
    e.transform_up(|x| {
        Ok(match &x {
            Expr::Column(c) => match map.get(c) {
                Some(r) => Transformed::yes(r.clone()),
                None => Transformed::no(x),
            },
            _ => Transformed::no(x),
        })
    })
    .map(|t| t.data)
    .map_err(df)
}

/// The columns of `outer` (by position) as the expressions `inner` gives them.
fn mapping(outer: &DFSchemaRef, inner: Vec<Expr>) -> HashMap<Column, Expr> {
    outer.columns().into_iter().zip(inner).collect()
}

/// What the columns of `plan`'s output are in terms of its input, when `plan` is a projection
/// or an alias; None for other nodes.
fn defined_below(plan: &LogicalPlan) -> Option<(HashMap<Column, Expr>, Arc<LogicalPlan>)> {
    match plan {
        LogicalPlan::Projection(p) => {
            if p.expr.iter().any(|e| e.is_volatile()) {
                return None;
            }
            let exprs = p.expr.iter().map(|e| e.clone().unalias()).collect();
            Some((mapping(&p.schema, exprs), p.input.clone()))
        }
        LogicalPlan::SubqueryAlias(a) => {
            let inner = a
                .input
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            Some((mapping(&a.schema, inner), a.input.clone()))
        }
        _ => None,
    }
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(matches!(
            x,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
        ))
    })
    .unwrap_or(true)
}

/// Every aggregate of `plan` (subqueries included) with the projections below it inlined.
pub(crate) fn inline_into_aggregates(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::Aggregate(a) => {
            inline(a).map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .map_err(df)
}

fn inline(a: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let original = a.schema.clone();
    let mut group = a.group_expr.clone();
    let mut aggr = a.aggr_expr.clone();
    let mut input = a.input.clone();
    let mut filters: Vec<Expr> = Vec::new();
    let mut changed = false;
    loop {
        if let Some((map, below)) = defined_below(&input) {
            let total: usize = group
                .iter()
                .chain(aggr.iter())
                .chain(filters.iter())
                .map(|e| size_after(e, &map))
                .fold(0usize, |a, b| a.saturating_add(b));
            if total > MAX_INLINED_NODES {
                return Err(too_large());
            }
            group = group
                .into_iter()
                .map(|e| substitute(e, &map))
                .collect::<Result<_>>()?;
            aggr = aggr
                .into_iter()
                .map(|e| substitute(e, &map))
                .collect::<Result<_>>()?;
            filters = filters
                .into_iter()
                .map(|e| substitute(e, &map))
                .collect::<Result<_>>()?;
            input = below;
            changed = true;
            continue;
        }
        // A filter between the aggregate and a projection moves below it with the aggregate
        // (not one with a subquery: its correlated columns name the projection's output).
        if let LogicalPlan::Filter(f) = input.as_ref()
            && defined_below(&f.input).is_some()
            && !has_subquery(&f.predicate)
        {
            filters.push(f.predicate.clone());
            input = f.input.clone();
            continue;
        }
        break;
    }
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    }
    for predicate in filters.into_iter().rev() {
        input = Arc::new(LogicalPlan::Filter(
            Filter::try_new(predicate, input).map_err(df)?,
        ));
    }
    let inlined = Aggregate::try_new(input, group, aggr).map_err(df)?;
    if inlined.schema.fields().len() != original.fields().len() {
        return Err(EngineError::Unsupported(
            "an aggregate over a derived table could not be analysed; refused".into(),
        ));
    }
    // The names the nodes above refer to.
    let restore: Vec<Expr> = inlined
        .schema
        .columns()
        .into_iter()
        .zip(original.iter())
        .map(|(c, (q, f))| Expr::Column(c).alias_qualified(q.cloned(), f.name()))
        .collect();
    let projection =
        Projection::try_new(restore, Arc::new(LogicalPlan::Aggregate(inlined))).map_err(df)?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}
