//! The shapes a query may take where the release rules could not otherwise judge it.
//!
//! Inside an aggregate, every row's value is combined before anyone sees it, so the argument
//! decides which rows a released figure depends on. The release rules can judge an argument
//! that is a sum of products of columns and constants, taken apart by the conditions written
//! as `CASE WHEN` / `FILTER (WHERE …)` / `NULLIF` / `COALESCE` (each side of each condition is a
//! population the rules check, and each product a term whose contributions the dominance rules
//! check). Anything that could act as a condition no rule sees — a step function (`floor`,
//! `round`, `abs`, `greatest`), a division, a comparison used as a number, a narrowing cast — is
//! refused inside aggregates; the same function applied after aggregating is fine.
//!
//! Subqueries are releases too: a subquery that does not refer to the enclosing query is checked
//! like a query of its own (its populations and figures must pass); one that does ("correlated")
//! may neither aggregate (one figure per outer row, over populations nobody checks) nor be
//! correlated by anything but the privacy unit of the data it reads.
//!
//! The engine finds these constructs; this module names them and says what to do instead.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lineage::SourceColumn;

/// Most branches (paths through its conditions) one aggregate's argument may have.
pub const MAX_PATHS: usize = 16;
/// Most column factors in one product inside an aggregate.
pub const MAX_DEGREE: usize = 3;
/// Most distinct products (terms) in one aggregate's argument.
pub const MAX_TERMS: usize = 16;
/// Largest magnitude of a constant inside an aggregate's argument.
pub const MAX_CONSTANT: f64 = 1e9;

/// A construct the release rules cannot judge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Construct {
    /// A function that rounds, cuts, compares or otherwise bends values row by row.
    StepFunction {
        /// Its name.
        function: String,
    },
    /// A division inside an aggregate.
    Division,
    /// A comparison or boolean used as a value (`CAST(x = 1 AS INT)`, `x > 3 OR NULL`).
    ConditionAsValue {
        /// The operator or predicate.
        operator: String,
    },
    /// A cast that rounds or truncates (to an integer, to fewer decimals).
    NarrowingCast {
        /// The target type.
        to: String,
    },
    /// A constant beyond [`MAX_CONSTANT`].
    LargeConstant {
        /// The constant as written.
        value: String,
    },
    /// A product of more than [`MAX_DEGREE`] column values.
    DegreeTooHigh {
        /// The degree found.
        degree: usize,
    },
    /// More than [`MAX_PATHS`] branches.
    TooManyPaths {
        /// How many.
        paths: usize,
    },
    /// More than [`MAX_TERMS`] products.
    TooManyTerms {
        /// How many.
        terms: usize,
    },
    /// `count` / `count(DISTINCT …)` of a computed value.
    ComputedCount {
        /// The function (`count`, `count(DISTINCT …)`).
        function: String,
    },
    /// A subquery inside an aggregate's argument or condition.
    SubqueryInAggregate,
    /// A correlated subquery that aggregates.
    CorrelatedAggregate,
    /// A correlated subquery tied to the enclosing query by something other than an equality
    /// with the privacy unit of the data it reads.
    CorrelationNotOnUnit {
        /// The privacy units the subquery's data has.
        units: Vec<String>,
    },
    /// A scalar subquery whose value is one row's, not an aggregate.
    ScalarSubqueryNotAggregated,
    /// A join with a relation that reads no dataset (VALUES, constants).
    ConstantJoin,
    /// LIMIT or OFFSET over aggregated rows (production): it cuts rows before suppression.
    LimitOverAggregates,
    /// An OR (or IN list) in a filter with more than [`MAX_PATHS`] parts over columns other
    /// than the group keys.
    TooManyParts {
        /// How many.
        parts: usize,
    },
    /// A condition in a filter written so that its parts are not visible as AND / OR / NOT
    /// (`CASE`, `coalesce`, a condition cast to a number or compared as a value).
    HiddenCondition {
        /// What was found.
        what: String,
    },
    /// Some other expression inside an aggregate.
    Unsupported {
        /// What it is.
        what: String,
    },
}

impl Construct {
    /// The rule's short name, as refusals carry it.
    pub fn rule(&self) -> &'static str {
        match self {
            Construct::SubqueryInAggregate
            | Construct::CorrelatedAggregate
            | Construct::CorrelationNotOnUnit { .. }
            | Construct::ScalarSubqueryNotAggregated => "subquery-shape",
            Construct::ConstantJoin => "constant-join",
            Construct::LimitOverAggregates => "limit-over-aggregates",
            Construct::HiddenCondition { .. } | Construct::TooManyParts { .. } => {
                "filter-condition"
            }
            _ => "aggregate-argument",
        }
    }

    /// Why the construct is refused and what to write instead.
    pub fn explain(&self) -> String {
        match self {
            Construct::StepFunction { function } => format!(
                "{function}() inside an aggregate rounds, cuts or compares values row by row, so it \
                 can act as a hidden condition whose population no rule checks; apply it after \
                 aggregating (e.g. {function}(sum(x))), or write the condition as CASE WHEN … / \
                 FILTER (WHERE …) so that the population on each side is checked"
            ),
            Construct::Division => {
                "a division inside an aggregate rounds and can hide a condition \
                 (x / (y - 3)); divide after aggregating: sum(x) / sum(y), sum(x) / 7.0"
                    .to_string()
            }
            Construct::ConditionAsValue { operator } => format!(
                "a condition ({operator}) is used as a value inside an aggregate; write it as CASE \
                 WHEN … THEN … END or FILTER (WHERE …), so that the population on each side of it \
                 is checked"
            ),
            Construct::NarrowingCast { to } => format!(
                "a cast to {to} inside an aggregate rounds or truncates values, which can act as a \
                 hidden condition; cast after aggregating, or to a type that keeps every value \
                 (a wider integer, a decimal with as many decimals, double)"
            ),
            Construct::LargeConstant { value } => format!(
                "the constant {value} inside an aggregate is beyond ±{MAX_CONSTANT:e}: huge factors \
                 push single values to the limits of the arithmetic; scale after aggregating"
            ),
            Construct::DegreeTooHigh { degree } => format!(
                "a product of {degree} column values inside an aggregate; at most {MAX_DEGREE} \
                 may be multiplied before aggregating"
            ),
            Construct::TooManyPaths { paths } => format!(
                "the aggregate's conditions make {paths} branches; at most {MAX_PATHS} can be \
                 checked in one aggregate: split the query"
            ),
            Construct::TooManyTerms { terms } => format!(
                "the aggregate's argument expands to {terms} products; at most {MAX_TERMS} can be \
                 checked in one aggregate: split the sum"
            ),
            Construct::ComputedCount { function } => format!(
                "{function} of a computed value: counting values of a computed expression can \
                 reveal single values (count(DISTINCT floor(x / t)) finds the largest x); count a \
                 column (possibly masked or cast), use CASE WHEN / FILTER for conditions, or \
                 GROUP BY the computed value instead"
            ),
            Construct::SubqueryInAggregate => "a subquery inside an aggregate's argument or \
                 condition cannot be checked per row; compute it in a join or in WHERE"
                .to_string(),
            Construct::CorrelatedAggregate => "a correlated subquery with an aggregate computes a \
                 figure for every row of the enclosing query, over populations no rule sees; \
                 rewrite it without the correlation (a subquery of its own, or a GROUP BY)"
                .to_string(),
            Construct::CorrelationNotOnUnit { units } => format!(
                "a correlated subquery may refer to the enclosing query only by equalities with \
                 the privacy unit of the data it reads ({}), so that each outer row tests the same \
                 person or firm; other correlations test populations no rule sees",
                units.join(", ")
            ),
            Construct::ScalarSubqueryNotAggregated => "a scalar subquery that does not aggregate \
                 returns one row's value; use an aggregate in it (its populations are checked \
                 like any release)"
                .to_string(),
            Construct::ConstantJoin => "a join with a relation that reads no dataset (VALUES, a \
                 constant subquery) lets constants chosen by the analyst stand in for the data's \
                 values, and repeats or pads rows without a privacy unit behind them; use \
                 IN (…) to filter, CASE to relabel"
                .to_string(),
            Construct::TooManyParts { parts } => format!(
                "the filter's OR (or IN list) has {parts} parts over columns other than the group \
                 keys; each part is a population the release rules check, and at most \
                 {MAX_PATHS} are: group by the column instead, or split the query"
            ),
            Construct::HiddenCondition { what } => format!(
                "{what} in a filter can hide a condition (`CASE WHEN <one person> THEN true ELSE \
                 <a known group> END` keeps one person beside a group whose values are known), \
                 and its parts are populations no rule could check; write the condition with AND, \
                 OR, NOT, IN, BETWEEN, LIKE and IS NULL over columns and constants: each part of \
                 an OR is then checked as a population of its own"
            ),
            Construct::LimitOverAggregates => "LIMIT and OFFSET keep rows by their order before \
                 the release rules suppress any, so which rows come out would depend on \
                 suppressed figures; fetch every row (ORDER BY is fine) and keep what you need"
                .to_string(),
            Construct::Unsupported { what } => format!(
                "{what} inside an aggregate cannot be judged by the release rules; inside an \
                 aggregate use columns, constants, + - *, widening casts and CASE WHEN / FILTER \
                 conditions"
            ),
        }
    }
}

impl fmt::Display for Construct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explain())
    }
}

/// One construct found in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeIssue {
    /// Where: the aggregate or subquery as the planner displays it.
    pub context: String,
    /// What was found.
    pub construct: Construct,
    /// The source columns involved (may be empty for constants).
    pub columns: Vec<SourceColumn>,
}

impl ShapeIssue {
    /// The refusal message: where, which columns, why, what instead.
    pub fn message(&self) -> String {
        let columns = if self.columns.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
            format!(" (column {})", names.join(", "))
        };
        format!("in `{}`{columns}: {}", self.context, self.construct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_the_column_and_the_fix() {
        let i = ShapeIssue {
            context: "sum(floor(t.spend / 100))".into(),
            construct: Construct::StepFunction {
                function: "floor".into(),
            },
            columns: vec![SourceColumn {
                dataset: "t".into(),
                column: "spend".into(),
            }],
        };
        let m = i.message();
        assert!(m.contains("sum(floor(t.spend / 100))"), "{m}");
        assert!(m.contains("column t.spend"), "{m}");
        assert!(m.contains("floor(sum(x))"), "{m}");
        assert_eq!(i.construct.rule(), "aggregate-argument");
        assert_eq!(Construct::CorrelatedAggregate.rule(), "subquery-shape");
    }
}
