//! Subqueries are releases too. A subquery that does not refer to its enclosing query
//! (uncorrelated) feeds a figure — a value, a set of values, the answer to EXISTS — into every
//! row of the result, so it is checked as a query of its own: aggregated, its rows' populations
//! and figures must pass the release rules; not aggregated, the units behind its rows are a
//! population that must hold at least k (an empty one too: "nothing matched" tells as much as
//! "one matched"). A failing subquery fails every row of the result. Correlated subqueries are
//! held to their shape by the plan check instead (no aggregates, correlated by privacy unit).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, Subquery};
use erhai_policies::{ReleaseRules, Verdict};

use crate::checks::{SubqueryOutcome, row_findings};
use crate::error::{EngineError, Result};
use crate::lineage::is_aggregated;
use crate::statistics::{
    Hidden, HiddenColumns, Population, Source, UnitMap, add_statistics, expose_units,
};
use crate::unit_stats::unit_set;

/// An uncorrelated subquery, rewritten to compute its own statistics.
#[derive(Clone, Debug)]
pub(crate) struct SidePlan {
    /// The subquery, as displayed.
    pub what: String,
    /// Its plan, with the hidden statistics.
    pub plan: LogicalPlan,
    /// What the hidden columns hold.
    pub hidden: HiddenColumns,
    /// How many visible columns come before them.
    pub visible: usize,
}

fn subquery_of(e: &Expr) -> Option<&Subquery> {
    match e {
        Expr::ScalarSubquery(s) => Some(s),
        Expr::Exists(e) => Some(&e.subquery),
        Expr::InSubquery(i) => Some(&i.subquery),
        Expr::SetComparison(s) => Some(&s.subquery),
        _ => None,
    }
}

/// Every uncorrelated subquery anywhere in `plan` (nested ones included), once each.
fn uncorrelated(plan: &LogicalPlan) -> Vec<LogicalPlan> {
    let mut found: Vec<LogicalPlan> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|x| {
                if let Some(s) = subquery_of(x)
                    && s.outer_ref_columns.is_empty()
                    && !found.contains(&s.subquery)
                {
                    found.push(s.subquery.as_ref().clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The side plans of `plan`'s uncorrelated subqueries that read data.
pub(crate) fn side_plans(
    plan: &LogicalPlan,
    units: &UnitMap,
    keep: usize,
) -> Result<Vec<SidePlan>> {
    let mut out = Vec::new();
    for (i, sub) in uncorrelated(plan).into_iter().enumerate() {
        let what = format!("#{} {}", i + 1, sub.display());
        if is_aggregated(&sub) {
            let (plan, hidden) = add_statistics(&sub, units, keep)
                .map_err(|e| EngineError::Unsupported(format!("subquery {what}: {e}")))?;
            out.push(SidePlan {
                what,
                visible: sub.schema().fields().len(),
                plan,
                hidden,
            });
            continue;
        }
        let (exposed, carried) = expose_units(&sub, units)
            .map_err(|e| EngineError::Unsupported(format!("subquery {what}: {e}")))?;
        if carried.is_empty() {
            continue;
        }
        let mut aggr = Vec::new();
        let mut hidden = HiddenColumns::default();
        for (n, (name, dataset, key)) in carried.into_iter().enumerate() {
            let (q, f) = exposed
                .schema()
                .qualified_field_with_unqualified_name(&name)
                .map_err(|e| EngineError::Plan(e.to_string()))?;
            let unit = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
            aggr.push(unit_set(key).call(vec![unit]).alias(format!("u{n}")));
            hidden.columns.push(Hidden::Units {
                dataset,
                population: Population {
                    what: Some(format!("the rows of subquery {what}")),
                    may_be_empty: false,
                    source: Source::Group,
                    figure: true,
                    definition: format!("subquery {}", crate::statistics::definition_of(&sub, &[])),
                    compared: true,
                },
            });
        }
        let plan = LogicalPlan::Aggregate(
            Aggregate::try_new(Arc::new(exposed), Vec::new(), aggr)
                .map_err(|e| EngineError::Plan(e.to_string()))?,
        );
        out.push(SidePlan {
            what,
            plan,
            hidden,
            visible: 0,
        });
    }
    Ok(out)
}

/// The checks of one executed side plan.
pub(crate) fn outcome(
    side: &SidePlan,
    batches: &[RecordBatch],
    rules: &ReleaseRules,
) -> Result<SubqueryOutcome> {
    let mut out = SubqueryOutcome {
        what: side.what.clone(),
        ..Default::default()
    };
    let mut rows = 0usize;
    for batch in batches {
        if batch.num_columns() != side.visible + side.hidden.columns.len() {
            return Err(EngineError::Execution(
                "a subquery's result does not carry its statistics; refused".into(),
            ));
        }
        for r in 0..batch.num_rows() {
            rows += 1;
            let (findings, sets) = row_findings(batch, r, side.visible, &[], &side.hidden, rules)?;
            out.failures
                .extend(findings.into_iter().filter(|f| f.verdict == Verdict::Fail));
            out.populations
                .extend(sets.into_iter().map(|p| (p.dataset, p.set, p.fingerprint)));
        }
    }
    if rows == 0 {
        out.failures.push(erhai_policies::Finding::fail(
            "subquery",
            "the subquery returned no rows: an empty answer tells as much as a small one".into(),
        ));
    }
    Ok(out)
}
