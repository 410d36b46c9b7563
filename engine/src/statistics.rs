//! The statistics rewrite: the checked plan is rewritten so that its own execution produces,
//! for every output row, the hidden statistics the release checks need, computed beside the
//! query's aggregates. Raw data is never re-read.
//!
//! - per contributing dataset, the set of its privacy units behind the row
//!   ([`crate::unit_stats::unit_set`]): threshold and differencing;
//! - per path through the conditions of an aggregate's argument and `FILTER` (both sides of
//!   each condition, see [`crate::aggregate_args`]) and per contributing dataset, the units on
//!   that path: every side of every condition is a population the rules check;
//! - per term of a `sum` / `avg` / variance on each path and per dataset whose columns it
//!   reads, each unit's contribution ([`crate::unit_stats::contributions`]): the dominance
//!   rules, with the analyst's constants left out.
//!
//! The hidden columns are appended after the query's own columns, in the order of
//! [`HiddenColumns::columns`]; the result checks split them off by position.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, LogicalPlan, Operator, Projection, SubqueryAlias, Window,
};

use crate::aggregate_args::{Kind, PathValue, Term, analyse};
use crate::error::{EngineError, Result};
use crate::unit_stats::{UnitKey, contributions, unit_set};

/// Prefix of hidden column names; queries may not use it.
pub const HIDDEN_PREFIX: &str = "__erhai_";

/// A population a row's figures depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// What it is, for findings (`None`: the row's group itself).
    pub what: Option<String>,
    /// Whether it may be empty (a side that exists only where stored values are null).
    pub may_be_empty: bool,
    /// Where it comes from: populations of one source are not differenced against each other.
    pub source: Source,
    /// Whether a released figure is computed over it (a group, a side of a condition that
    /// carries a value, a subquery), as opposed to a side whose rows take part in no figure
    /// (the rows a FILTER leaves out, an ELSE NULL): the linear audit combines figures.
    pub figure: bool,
    /// How the population is defined — the data it scans, the conditions rows pass, the
    /// group keys and the side of a condition — in a canonical text: two releases over equal
    /// populations defined differently tell that the difference of the definitions selects
    /// nobody (with the row's group values, see [`crate::checks`]).
    pub definition: String,
    /// Whether it is compared with other releases (differencing, coincidence, the linear
    /// audit). The parts of a filter's OR are checked for their size only: no figure is
    /// computed over one alone, and their definitions spell one set many ways.
    pub compared: bool,
}

/// The hidden unit set of the rows of `unit` that pass `filter`.
fn units_where(key: &UnitKey, unit: Expr, filter: &Expr) -> Expr {
    let mut call = unit_set(key.clone()).call(vec![unit]);
    if let Expr::AggregateFunction(c) = &mut call {
        c.params.filter = Some(Box::new(filter.clone()));
    }
    call
}

/// The parts of the disjunctions among the conditions rows pass on their way to an aggregate
/// over `input`: for `A OR B OR C`, the rows of `A`, of `B AND NOT A` and of `C AND NOT (A OR
/// B)` (`NOT (X AND Y)` and `x IN (a, b)` are disjunctions too). A part that reads group keys
/// only is the same for every row of a group and is left out. Each part comes with its
/// description for findings.
pub(crate) fn where_sides(input: &LogicalPlan, groups: &[Expr]) -> Vec<(Expr, String)> {
    let mut sides = Vec::new();
    for (conjunct, parts, checked) in where_parts(input, groups) {
        for i in checked {
            let mut side = Expr::IsTrue(Box::new(parts[i].clone()));
            for before in &parts[..i] {
                side = side.and(Expr::IsNotTrue(Box::new(before.clone())));
            }
            sides.push((
                side,
                format!(
                    "the rows that `{}` keeps of the condition `{}`",
                    crate::aggregate_args::sql(&parts[i]),
                    crate::aggregate_args::sql(&conjunct)
                ),
            ));
        }
    }
    sides
}

/// How many parts [`where_sides`] would check (the plan check bounds it).
pub(crate) fn where_part_count(input: &LogicalPlan, groups: &[Expr]) -> usize {
    where_parts(input, groups)
        .iter()
        .map(|(_, _, checked)| checked.len())
        .sum()
}

/// Each disjunction among the conditions below an aggregate: the conjunct, its parts, and the
/// indexes of the parts that read more than group keys.
fn where_parts(input: &LogicalPlan, groups: &[Expr]) -> Vec<(Expr, Vec<Expr>, Vec<usize>)> {
    use datafusion::logical_expr::utils::split_conjunction;
    let mut predicates: Vec<Expr> = Vec::new();
    let mut plan = input;
    while let LogicalPlan::Filter(f) = plan {
        predicates.extend(split_conjunction(&f.predicate).into_iter().cloned());
        plan = f.input.as_ref();
    }
    let group_columns: BTreeSet<Column> = groups
        .iter()
        .flat_map(|g| g.column_refs().into_iter().cloned())
        .collect();
    let schema = input.schema();
    let mut out = Vec::new();
    for conjunct in conjuncts_of(predicates) {
        let parts = disjuncts(&conjunct);
        if parts.len() < 2 {
            continue;
        }
        let resolvable = parts.iter().all(|p| {
            !p.contains_outer()
                && !crate::aggregate_args::contains_subquery(p)
                && p.column_refs().iter().all(|c| schema.has_column(c))
        });
        if !resolvable {
            continue;
        }
        let checked: Vec<usize> = (0..parts.len())
            .filter(|&i| {
                !parts[i]
                    .column_refs()
                    .iter()
                    .all(|c| group_columns.contains(c))
            })
            .collect();
        out.push((conjunct, parts, checked));
    }
    out
}

/// Conjuncts, with `NOT (A OR B)` read as `NOT A AND NOT B`.
fn conjuncts_of(predicates: Vec<Expr>) -> Vec<Expr> {
    let mut out = Vec::new();
    let mut todo = predicates;
    while let Some(e) = todo.pop() {
        match e {
            Expr::BinaryExpr(b) if b.op == Operator::And => {
                todo.push(*b.left);
                todo.push(*b.right);
            }
            Expr::Not(inner) => match *inner {
                Expr::BinaryExpr(b) if b.op == Operator::Or => {
                    todo.push(Expr::Not(b.left));
                    todo.push(Expr::Not(b.right));
                }
                Expr::Not(x) => todo.push(*x),
                other => out.push(Expr::Not(Box::new(other))),
            },
            Expr::Alias(a) => todo.push(*a.expr),
            other => out.push(other),
        }
    }
    out.reverse();
    out
}

/// The parts of a disjunction, with `NOT (A AND B)` read as `NOT A OR NOT B` and
/// `x IN (a, b)` as `x = a OR x = b`.
#[recursive::recursive]
fn disjuncts(e: &Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            let mut out = disjuncts(&b.left);
            out.extend(disjuncts(&b.right));
            out
        }
        Expr::Not(inner) => match inner.as_ref() {
            Expr::BinaryExpr(b) if b.op == Operator::And => {
                let mut out = disjuncts(&Expr::Not(b.left.clone()));
                out.extend(disjuncts(&Expr::Not(b.right.clone())));
                out
            }
            Expr::Not(x) => disjuncts(x),
            _ => vec![e.clone()],
        },
        Expr::InList(l) if !l.negated && l.list.len() > 1 => l
            .list
            .iter()
            .map(|v| (*l.expr).clone().eq(v.clone()))
            .collect(),
        Expr::Alias(a) => disjuncts(&a.expr),
        _ => vec![e.clone()],
    }
}

/// The canonical definition of the rows reaching an aggregate over `input` grouped by
/// `groups`: the tables scanned and every condition on the way, sorted.
pub fn definition_of(input: &LogicalPlan, groups: &[Expr]) -> String {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::utils::split_conjunction;
    let mut parts: Vec<String> = Vec::new();
    let _ = input.apply(|p| {
        match p {
            LogicalPlan::TableScan(scan) => {
                parts.push(format!("scan {}", scan.table_name.table()));
                for f in &scan.filters {
                    parts.push(format!("where {f}"));
                }
            }
            LogicalPlan::Filter(f) => {
                for c in split_conjunction(&f.predicate) {
                    parts.push(format!("where {c}"));
                }
            }
            LogicalPlan::Join(j) => {
                parts.push(format!("join {}", j.join_type));
                for (l, r) in &j.on {
                    parts.push(format!("on {l} = {r}"));
                }
                if let Some(f) = &j.filter {
                    for c in split_conjunction(f) {
                        parts.push(format!("on {c}"));
                    }
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    parts.sort();
    let groups: Vec<String> = groups.iter().map(|g| format!("group {g}")).collect();
    format!("{}; {}", parts.join("; "), groups.join("; "))
}

/// The definition of the whole of a dataset (every row, no condition, no group), as a query
/// `SELECT … FROM <table>` defines it: its row count is public (`dataset show`).
pub fn whole_dataset_definition(table: &str) -> String {
    format!("scan {table}; ")
}

/// Where a population comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The group of the row.
    Group,
    /// A path of the i-th aggregate call of the aggregate node.
    Aggregate(usize),
    /// The i-th subquery checked on its own.
    Subquery(usize),
}

impl Population {
    /// The row's group.
    pub fn group(definition: String) -> Population {
        Population {
            what: None,
            may_be_empty: false,
            source: Source::Group,
            figure: true,
            definition,
            compared: true,
        }
    }
}

/// One term of a sum whose per-unit contributions are measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredTerm {
    /// The term and where, for findings: `sum(spend) on rows where … holds: spend`.
    pub label: String,
    /// The aggregate it belongs to (its index in the node, and as displayed): a sum whose terms
    /// all total zero is a zero cell.
    pub aggregate: usize,
    /// The aggregate as displayed.
    pub aggregate_label: String,
}

/// What one hidden column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// The unit set of a dataset over one population (an encoded `UnitSet`).
    Units {
        /// Dataset name.
        dataset: String,
        /// Which population.
        population: Population,
    },
    /// Per-unit contributions of a dataset to terms sharing a unit column and a filter (one
    /// `ContribSummary` per term, in order).
    Contrib {
        /// Dataset name.
        dataset: String,
        /// Each term.
        terms: Vec<MeasuredTerm>,
    },
}

/// The hidden columns a rewritten plan appends, by position after the visible ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenColumns {
    /// In order.
    pub columns: Vec<Hidden>,
}

/// The terms measured over one unit column with one filter: one contribution aggregate.
struct Measured {
    unit: String,
    key: UnitKey,
    dataset: String,
    filter: Option<Expr>,
    /// Each value with the terms it stands for.
    values: Vec<(Expr, Vec<MeasuredTerm>)>,
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
            (Hidden::Units { dataset, .. }, Some((key, _))) => Some((c.name, dataset, key)),
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
        let stored_nulls = !has_outer_join(input);
        let definition = definition_of(input, &groups);
        // The query's own aggregate calls (the hidden ones added below are not analysed).
        let calls: Vec<(usize, AggregateFunction, String)> = aggr
            .iter()
            .enumerate()
            .filter_map(|(i, e)| aggregate_call(e).map(|(f, label)| (i, f, label)))
            .collect();
        // The group itself carries a figure only when some aggregate covers all of it (a
        // count(*), an unconditional sum); otherwise its labels are all it releases.
        let group_figure = calls
            .iter()
            .any(|(_, f, _)| analyse(f, input.schema(), stored_nulls).unconditional());
        let sides = where_sides(input, &groups);
        let (input, units) = self.expose(input)?;
        let carried: Vec<(&Carried, UnitKey, String)> = units
            .iter()
            .filter_map(|u| match (&u.source, &u.what) {
                (Some((key, _)), Hidden::Units { dataset, .. }) => {
                    Some((u, key.clone(), dataset.clone()))
                }
                _ => None,
            })
            .collect();
        let mut hidden = Vec::new();
        let mut next = 0usize;
        let mut fresh = |what: &str| {
            next += 1;
            format!("{HIDDEN_PREFIX}{what}_{}", next - 1)
        };
        for (u, key, dataset) in &carried {
            let name = fresh("units");
            let unit = col_of(&input, &u.name)?;
            aggr.push(unit_set(key.clone()).call(vec![unit]).alias(&name));
            hidden.push(Carried {
                name,
                what: Hidden::Units {
                    dataset: dataset.clone(),
                    population: Population {
                        figure: group_figure,
                        ..Population::group(definition.clone())
                    },
                },
                source: None,
            });
        }
        // Each part of an OR in the conditions rows pass is a population of its own: a large
        // known part and a small one (`others OR the person`) would otherwise release the
        // small one's figures by difference with what the known part is.
        for (side, what) in &sides {
            for (u, key, dataset) in &carried {
                let name = fresh("side");
                aggr.push(units_where(key, col_of(&input, &u.name)?, side).alias(&name));
                hidden.push(Carried {
                    name,
                    what: Hidden::Units {
                        dataset: dataset.clone(),
                        population: Population {
                            what: Some(what.clone()),
                            may_be_empty: false,
                            source: Source::Group,
                            figure: group_figure,
                            definition: format!("{definition}; part {side}"),
                            compared: false,
                        },
                    },
                    source: None,
                });
            }
        }
        // Every path through an aggregate's conditions is a population; every term of a sum
        // on a path has its contributions measured. Paths with the same conditions share one
        // unit set, terms with the same unit column and conditions one contribution aggregate.
        let mut paths_seen: Vec<(String, String)> = Vec::new();
        let mut measured: Vec<Measured> = Vec::new();
        for (ai, f, label) in calls {
            let analysis = analyse(&f, input.schema(), stored_nulls);
            if let Some(issue) = analysis.issues.first() {
                // The plan check refuses these first; a rewrite never computes around one.
                return Err(EngineError::Unsupported(format!(
                    "in `{label}`: {}",
                    issue.construct
                )));
            }
            let spread = analysis.kind == Kind::Spread;
            let unconditional = analysis.unconditional();
            for path in &analysis.paths {
                let filter = path.filter();
                let where_ = format!("{} of `{label}`", path.describe());
                if let Some(filter) = &filter
                    && !unconditional
                {
                    for (u, key, dataset) in &carried {
                        let id = (u.name.clone(), filter.to_string());
                        if paths_seen.contains(&id) {
                            continue;
                        }
                        paths_seen.push(id);
                        let name = fresh("path");
                        aggr.push(units_where(key, col_of(&input, &u.name)?, filter).alias(&name));
                        hidden.push(Carried {
                            name,
                            what: Hidden::Units {
                                dataset: dataset.clone(),
                                population: Population {
                                    what: Some(where_.clone()),
                                    may_be_empty: path.may_be_empty,
                                    source: Source::Aggregate(ai),
                                    figure: path.figure,
                                    definition: format!("{definition}; side {}", filter),
                                    compared: true,
                                },
                            },
                            source: None,
                        });
                    }
                }
                let PathValue::Terms(terms) = &path.value else {
                    continue;
                };
                let mut all: Vec<(Term, String)> =
                    terms.iter().map(|t| (t.clone(), t.describe())).collect();
                if spread {
                    all.extend(
                        terms
                            .iter()
                            .map(|t| (t.squared(), format!("({})²", t.describe()))),
                    );
                }
                for (term, term_label) in all {
                    let value = term.expr();
                    for (u, key, dataset) in
                        carried.iter().filter(|(u, _, _)| reads(&term.factors, u))
                    {
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
                                    filter: filter.clone(),
                                    values: Vec::new(),
                                });
                                measured.len() - 1
                            }
                        };
                        let m = &mut measured[at];
                        let t = MeasuredTerm {
                            label: format!("the term `{term_label}` over {where_}"),
                            aggregate: ai,
                            aggregate_label: label.clone(),
                        };
                        match m.values.iter_mut().find(|(v, _)| *v == value) {
                            Some((_, shared)) => shared.push(t),
                            None => m.values.push((value.clone(), vec![t])),
                        }
                    }
                }
            }
        }
        for m in measured {
            let name = fresh("contrib");
            let mut args = vec![col_of(&input, &m.unit)?];
            args.extend(m.values.iter().map(|(v, _)| v.clone()));
            let mut call = contributions(m.key, self.keep, m.values.len()).call(args);
            if let (Expr::AggregateFunction(c), Some(filter)) = (&mut call, m.filter) {
                c.params.filter = Some(Box::new(filter));
            }
            aggr.push(call.alias(&name));
            // A value shared by several terms is reported once per value: the summaries come
            // back in value order, each standing for its first term (the others are equal).
            let terms: Vec<MeasuredTerm> = m
                .values
                .into_iter()
                .map(|(_, mut ts)| {
                    let first = ts.remove(0);
                    if ts.is_empty() {
                        first
                    } else {
                        let also: Vec<String> =
                            ts.iter().map(|t| t.aggregate_label.clone()).collect();
                        MeasuredTerm {
                            label: format!("{} (also in {})", first.label, also.join(", ")),
                            ..first
                        }
                    }
                })
                .collect();
            hidden.push(Carried {
                name,
                what: Hidden::Contrib {
                    dataset: m.dataset,
                    terms,
                },
                source: None,
            });
        }
        let a = Aggregate::try_new(Arc::new(input), groups, aggr).map_err(df)?;
        Ok((LogicalPlan::Aggregate(a), hidden))
    }

    /// Below the aggregate: carries each scanned dataset's privacy-unit column up to it.
    #[recursive::recursive]
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
                        population: Population::group(String::new()),
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

/// Whether `plan` (down to its scans) holds an outer join: nulls may then be padded, not stored.
pub(crate) fn has_outer_join(plan: &LogicalPlan) -> bool {
    use datafusion::common::JoinType as J;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply(|p| {
        if let LogicalPlan::Join(j) = p
            && matches!(j.join_type, J::Left | J::Right | J::Full)
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// An aggregate call among a node's aggregate expressions, with its display name.
fn aggregate_call(e: &Expr) -> Option<(AggregateFunction, String)> {
    let inner = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    match inner {
        Expr::AggregateFunction(f) => Some((f.clone(), crate::aggregate_args::sql(inner))),
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
