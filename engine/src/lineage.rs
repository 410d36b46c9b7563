//! Lineage of a DataFusion logical plan: for every output column, the source columns it derives
//! from and the path of uses; apart from outputs, every column used to filter, join, group or sort.
//!
//! Columns are followed by position through every node, so aliases and qualifiers cannot hide a
//! column. Plan nodes the analysis does not know are refused, never passed.

use std::collections::{BTreeSet, HashMap};

use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator, Subquery};
use erhai_policies::{
    Construct, ContextUse, Derivation, MaskArg, OutputLineage, PlanLineage, ShapeIssue,
    SourceColumn, Step, UseContext, masks,
};

use crate::error::{EngineError, Result};

type Lin = Vec<Derivation>;

/// Computes the lineage of `plan`. `tables` maps the table names the query can see to the
/// dataset names used in the policies; `units` maps dataset names to their privacy-unit column.
pub fn plan_lineage(
    plan: &LogicalPlan,
    tables: &HashMap<String, String>,
    units: &HashMap<String, String>,
) -> Result<PlanLineage> {
    let mut cx = Cx {
        tables,
        units,
        uses: Vec::new(),
        outer: Vec::new(),
        ctes: HashMap::new(),
        in_aggregate: 0,
        scanned: BTreeSet::new(),
        shape: Vec::new(),
        correlation: 0,
        scans: 0,
    };
    let cols = cx.node(plan)?;
    let outputs = plan
        .schema()
        .fields()
        .iter()
        .zip(cols)
        .map(|(f, derivations)| OutputLineage {
            name: f.name().clone(),
            derivations,
        })
        .collect();
    Ok(PlanLineage {
        outputs,
        uses: cx.uses,
        aggregated: is_aggregated(plan),
        datasets: cx.scanned.into_iter().collect(),
        shape: cx.shape,
    })
}

/// A construct in a filter's predicate that could hide a condition from the per-part
/// populations (see `statistics::where_sides`): a CASE, a conditional function, a condition
/// cast to a value or compared as one.
fn hidden_condition(predicate: &Expr) -> Option<String> {
    use crate::aggregate_args::is_condition;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = None;
    let _ = predicate.apply(|e| {
        found = match e {
            Expr::Case(_) => Some("a CASE expression".to_string()),
            Expr::ScalarFunction(f)
                if matches!(
                    f.func.name(),
                    "coalesce" | "nullif" | "nvl" | "nvl2" | "ifnull" | "greatest" | "least"
                ) =>
            {
                Some(format!("{}()", f.func.name()))
            }
            Expr::Cast(c) if is_condition(&c.expr) => Some("a condition cast to a value".into()),
            Expr::TryCast(c) if is_condition(&c.expr) => Some("a condition cast to a value".into()),
            Expr::BinaryExpr(b)
                if !matches!(b.op, Operator::And | Operator::Or)
                    && (is_condition(&b.left) || is_condition(&b.right)) =>
            {
                Some(format!("a condition used as a value of `{}`", b.op))
            }
            // (x - 1961) * (y - 5) = 0 is `x = 1961 OR y = 5` with its parts out of sight.
            Expr::BinaryExpr(b)
                if b.op == Operator::Multiply
                    && !b.left.column_refs().is_empty()
                    && !b.right.column_refs().is_empty() =>
            {
                Some("a product of two column values".to_string())
            }
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether every output row of `plan` is an aggregate over input rows.
#[recursive::recursive]
pub fn is_aggregated(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_)) => true,
        LogicalPlan::Union(u) => u.inputs.iter().all(|p| is_aggregated(p)),
        LogicalPlan::Projection(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_) => plan.inputs().first().is_some_and(|p| is_aggregated(p)),
        _ => false,
    }
}

struct Cx<'a> {
    tables: &'a HashMap<String, String>,
    /// Privacy-unit column of each dataset.
    units: &'a HashMap<String, String>,
    /// Constructs the release rules cannot judge.
    shape: Vec<ShapeIssue>,
    /// Set while a correlation equality with a privacy unit is being recorded: the only place
    /// a column of an enclosing query may appear in a subquery.
    correlation: usize,
    /// Dataset scans met so far (a join side that adds none reads no data).
    scans: usize,
    uses: Vec<ContextUse>,
    /// Schemas and lineage of enclosing queries, innermost last, for correlated columns.
    outer: Vec<(DFSchema, Vec<Lin>)>,
    /// Depth of aggregate-argument nesting at the expression being analysed.
    in_aggregate: usize,
    /// Datasets scanned anywhere in the plan.
    scanned: BTreeSet<String>,
    /// Lineage of recursive CTE work tables by name.
    ctes: HashMap<String, Vec<Lin>>,
}

fn with_step(lin: &[Derivation], step: &Step) -> Lin {
    lin.iter()
        .map(|d| {
            let mut d = d.clone();
            d.steps.push(step.clone());
            d
        })
        .collect()
}

fn merge(into: &mut Lin, more: Lin) {
    for d in more {
        if !into.contains(&d) {
            into.push(d);
        }
    }
}

/// Whether a key's lineage is one or more source columns passed through unchanged (casts aside):
/// not a constant, not a computed value.
fn is_plain(lin: &Lin) -> bool {
    !lin.is_empty()
        && lin
            .iter()
            .all(|d| d.steps.iter().all(|s| matches!(s, Step::Cast(_))))
}

/// A column, possibly of an enclosing query, possibly cast: what an equi-join key looks like.
#[recursive::recursive]
fn is_column_ref(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::OuterReferenceColumn(..) => true,
        Expr::Cast(c) => is_column_ref(&c.expr),
        Expr::TryCast(c) => is_column_ref(&c.expr),
        Expr::Alias(a) => is_column_ref(&a.expr),
        _ => false,
    }
}

/// For a disjunction whose every branch contains the same column equalities, those equalities
/// and the branches' other conjuncts; `None` when `e` is not such a disjunction.
fn common_equalities(e: &Expr) -> Option<(Vec<&Expr>, Vec<&Expr>)> {
    #[recursive::recursive]
    fn disjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::BinaryExpr(b) if b.op == Operator::Or => {
                disjuncts(&b.left, out);
                disjuncts(&b.right, out);
            }
            other => out.push(other),
        }
    }
    let mut branches = Vec::new();
    disjuncts(e, &mut branches);
    if branches.len() < 2 {
        return None;
    }
    let branches: Vec<Vec<&Expr>> = branches.into_iter().map(split_conjunction).collect();
    let is_key_eq = |c: &Expr| {
        matches!(c, Expr::BinaryExpr(b)
            if b.op == Operator::Eq && is_column_ref(&b.left) && is_column_ref(&b.right))
    };
    let common: Vec<&Expr> = branches[0]
        .iter()
        .filter(|c| is_key_eq(c))
        .filter(|c| branches[1..].iter().all(|b| b.contains(c)))
        .copied()
        .collect();
    if common.is_empty() {
        return None;
    }
    let rest = branches
        .iter()
        .flatten()
        .filter(|c| !common.contains(c))
        .copied()
        .collect();
    Some((common, rest))
}

/// A mask parameter: a constant, possibly behind the casts type coercion added.
fn mask_arg(mask: &str, e: &Expr) -> Result<MaskArg> {
    let refuse = || {
        EngineError::Unsupported(format!(
            "{mask}() parameters must be constants (an integer or a quoted word), found `{e}`"
        ))
    };
    let value = match e {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v,
            _ => return Err(refuse()),
        },
        _ => return Err(refuse()),
    };
    crate::masks::mask_arg(value).ok_or_else(refuse)
}

/// `inner = outer` (either order, casts aside) between a column of this query and one of an
/// enclosing query: the inner side.
fn correlation_equality(e: &Expr) -> Option<&Expr> {
    #[recursive::recursive]
    fn strip(e: &Expr) -> &Expr {
        match e {
            Expr::Cast(c) => strip(&c.expr),
            Expr::TryCast(c) => strip(&c.expr),
            Expr::Alias(a) => strip(&a.expr),
            other => other,
        }
    }
    let Expr::BinaryExpr(b) = e else { return None };
    if b.op != Operator::Eq {
        return None;
    }
    match (strip(&b.left), strip(&b.right)) {
        (Expr::Column(_), Expr::OuterReferenceColumn(..)) => Some(&b.left),
        (Expr::OuterReferenceColumn(..), Expr::Column(_)) => Some(&b.right),
        _ => None,
    }
}

/// Whether `plan` aggregates anywhere (subqueries of its expressions included).
fn contains_aggregate(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|p| {
        if matches!(p, LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A plan's first line, for messages.
fn short(plan: &LogicalPlan) -> String {
    truncate(&plan.display().to_string())
}

fn truncate(text: &str) -> String {
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text.to_string()
    }
}

fn unsupported(what: &str) -> EngineError {
    EngineError::Unsupported(format!(
        "{what} is not allowed in the sandbox (the lineage analysis does not cover it, so it cannot be checked)"
    ))
}

impl Cx<'_> {
    #[recursive::recursive]
    fn node(&mut self, plan: &LogicalPlan) -> Result<Vec<Lin>> {
        use LogicalPlan as P;
        let cols = match plan {
            P::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                if let Some(lin) = self.ctes.get(&name) {
                    lin.clone()
                } else {
                    let dataset = self.tables.get(&name).ok_or_else(|| {
                        EngineError::Plan(format!("table `{name}` does not exist"))
                    })?;
                    self.scanned.insert(dataset.clone());
                    self.scans += 1;
                    let cols: Vec<Lin> = scan
                        .projected_schema
                        .fields()
                        .iter()
                        .map(|f| {
                            vec![Derivation {
                                source: SourceColumn {
                                    dataset: dataset.clone(),
                                    column: f.name().clone(),
                                },
                                steps: vec![],
                            }]
                        })
                        .collect();
                    for f in &scan.filters {
                        self.record(f, scan.projected_schema.as_ref(), &cols, UseContext::Filter)?;
                    }
                    cols
                }
            }
            P::Projection(p) => {
                let input = self.node(&p.input)?;
                p.expr
                    .iter()
                    .map(|e| self.expr(e, p.input.schema(), &input))
                    .collect::<Result<_>>()?
            }
            P::Filter(f) => {
                let input = self.node(&f.input)?;
                self.record_predicate(&f.predicate, f.input.schema(), &input)?;
                if !is_aggregated(&f.input)
                    && let Some(what) = hidden_condition(&f.predicate)
                {
                    self.shape.push(ShapeIssue {
                        context: crate::aggregate_args::sql(&f.predicate),
                        construct: Construct::HiddenCondition { what },
                        columns: Vec::new(),
                    });
                }
                input
            }
            P::Sort(s) => {
                let input = self.node(&s.input)?;
                for e in &s.expr {
                    self.record(&e.expr, s.input.schema(), &input, UseContext::Sort)?;
                }
                input
            }
            P::Limit(l) => {
                let input = self.node(&l.input)?;
                if is_aggregated(&l.input) {
                    self.shape.push(ShapeIssue {
                        context: short(plan),
                        construct: Construct::LimitOverAggregates,
                        columns: Vec::new(),
                    });
                }
                for e in l.skip.iter().chain(l.fetch.iter()) {
                    self.record(e, l.input.schema(), &input, UseContext::Filter)?;
                }
                input
            }
            P::Repartition(r) => self.node(&r.input)?,
            P::SubqueryAlias(a) => self.node(&a.input)?,
            P::Subquery(s) => self.node(&s.subquery)?,
            P::Window(w) => {
                let input = self.node(&w.input)?;
                let mut cols = input.clone();
                for e in &w.window_expr {
                    cols.push(self.expr(e, w.input.schema(), &input)?);
                }
                cols
            }
            P::Aggregate(a) => {
                let parts = crate::statistics::where_part_count(&a.input, &a.group_expr);
                if parts > erhai_policies::shape::MAX_PATHS {
                    self.shape.push(ShapeIssue {
                        context: short(plan),
                        construct: Construct::TooManyParts { parts },
                        columns: Vec::new(),
                    });
                }
                let input = self.node(&a.input)?;
                let schema = a.input.schema();
                let mut cols = Vec::new();
                let groups: Vec<&Expr> = a
                    .group_expr
                    .iter()
                    .flat_map(|g| match g {
                        Expr::GroupingSet(gs) => gs.distinct_expr(),
                        e => vec![e],
                    })
                    .collect();
                for g in &groups {
                    self.record(g, schema, &input, UseContext::GroupBy)?;
                    let lin = self.expr(g, schema, &input)?;
                    cols.push(with_step(&lin, &Step::GroupKey));
                }
                // Grouping sets add an internal grouping id column after the keys.
                let expected = a.schema.fields().len();
                if groups.len() + a.aggr_expr.len() < expected {
                    cols.push(Vec::new());
                }
                for e in &a.aggr_expr {
                    cols.push(self.expr(e, schema, &input)?);
                }
                cols
            }
            P::Distinct(d) => match d {
                datafusion::logical_expr::Distinct::All(input) => {
                    let cols = self.node(input)?;
                    for (i, lin) in cols.iter().enumerate() {
                        let name = input.schema().field(i).name().clone();
                        for d in lin {
                            self.uses.push(ContextUse {
                                derivation: d.clone(),
                                context: UseContext::GroupBy,
                                expr: format!("DISTINCT {name}"),
                            });
                        }
                    }
                    cols.iter().map(|l| with_step(l, &Step::GroupKey)).collect()
                }
                datafusion::logical_expr::Distinct::On(_) => {
                    return Err(unsupported("DISTINCT ON (it selects single rows)"));
                }
            },
            P::Join(j) => {
                let at = self.scans;
                let left = self.node(&j.left)?;
                let left_scans = self.scans - at;
                let right = self.node(&j.right)?;
                if left_scans == 0 || self.scans - at - left_scans == 0 {
                    self.shape.push(ShapeIssue {
                        context: short(plan),
                        construct: Construct::ConstantJoin,
                        columns: Vec::new(),
                    });
                }
                let combined = j
                    .left
                    .schema()
                    .as_ref()
                    .clone()
                    .join(j.right.schema())
                    .map_err(|e| EngineError::Plan(e.to_string()))?;
                let mut both = left.clone();
                both.extend(right.iter().cloned());
                for (l, r) in &j.on {
                    self.record(l, &combined, &both, UseContext::JoinKey)?;
                    self.record(r, &combined, &both, UseContext::JoinKey)?;
                }
                if let Some(f) = &j.filter {
                    self.record_predicate(f, &combined, &both)?;
                }
                use datafusion::common::JoinType as J;
                let mut cols = match j.join_type {
                    J::Inner | J::Left | J::Right | J::Full => both,
                    J::LeftSemi | J::LeftAnti | J::LeftMark => left.clone(),
                    J::RightSemi | J::RightAnti | J::RightMark => right.clone(),
                };
                // Mark joins add a boolean column that depends on the join keys.
                while cols.len() < j.schema.fields().len() {
                    let mut mark = Vec::new();
                    for (l, r) in &j.on {
                        let all: Vec<Lin> = left.iter().chain(right.iter()).cloned().collect();
                        merge(&mut mark, self.expr(l, &combined, &all)?);
                        merge(&mut mark, self.expr(r, &combined, &all)?);
                    }
                    cols.push(with_step(&mark, &Step::Scalar("exists".into())));
                }
                cols
            }
            P::Union(u) => {
                let mut cols: Vec<Lin> = vec![Vec::new(); u.schema.fields().len()];
                for input in &u.inputs {
                    let lin = self.node(input)?;
                    if lin.len() != cols.len() {
                        return Err(EngineError::Plan(
                            "UNION inputs differ in column count".into(),
                        ));
                    }
                    for (c, l) in cols.iter_mut().zip(lin) {
                        merge(c, l);
                    }
                }
                cols
            }
            P::EmptyRelation(e) => vec![Vec::new(); e.schema.fields().len()],
            P::Values(v) => {
                let empty = DFSchema::empty();
                let mut cols: Vec<Lin> = vec![Vec::new(); v.schema.fields().len()];
                for row in &v.values {
                    for (c, e) in cols.iter_mut().zip(row) {
                        let lin = self.expr(e, &empty, &[])?;
                        merge(c, lin);
                    }
                }
                cols
            }
            P::Unnest(u) => {
                let input = self.node(&u.input)?;
                let exec: Vec<usize> = u
                    .exec_columns
                    .iter()
                    .filter_map(|c| u.input.schema().index_of_column(c).ok())
                    .collect();
                u.dependency_indices
                    .iter()
                    .map(|&i| {
                        let lin = input.get(i).cloned().unwrap_or_default();
                        if exec.contains(&i) {
                            with_step(&lin, &Step::Scalar("unnest".into()))
                        } else {
                            lin
                        }
                    })
                    .collect()
            }
            P::RecursiveQuery(r) => {
                let mut cols = self.node(&r.static_term)?;
                // Iterate to a fixed point: the recursive term reads the work table.
                for _ in 0..8 {
                    self.ctes.insert(r.name.clone(), cols.clone());
                    let rec = self.node(&r.recursive_term)?;
                    let before = cols.clone();
                    for (c, l) in cols.iter_mut().zip(rec) {
                        merge(c, l);
                    }
                    if before == cols {
                        break;
                    }
                }
                self.ctes.remove(&r.name);
                cols
            }
            P::Statement(_) => {
                return Err(EngineError::Forbidden(
                    "statements (SET, PREPARE, transactions ...) are not allowed in the sandbox"
                        .into(),
                ));
            }
            P::Explain(_) | P::Analyze(_) => return Err(EngineError::Forbidden(
                "EXPLAIN is not available in the sandbox: use `query check` for the plan verdict"
                    .into(),
            )),
            P::Dml(_) | P::Ddl(_) | P::Copy(_) => {
                return Err(EngineError::Forbidden(
                    "only queries (SELECT) are allowed in the sandbox: no DDL, DML or COPY".into(),
                ));
            }
            P::DescribeTable(_) => {
                return Err(EngineError::Forbidden(
                    "DESCRIBE is not available in the sandbox: use `dataset show`".into(),
                ));
            }
            P::Extension(e) => return Err(unsupported(&format!("plan node {}", e.node.name()))),
        };
        if cols.len() != plan.schema().fields().len() {
            return Err(EngineError::Unsupported(format!(
                "lineage of a {} node did not match its schema; refused",
                plan.display()
            )));
        }
        Ok(cols)
    }

    /// Records a WHERE / ON / HAVING predicate: each conjunct `a = b` between two plain column
    /// references (also across a correlated subquery) is an equi-join; everything else filters.
    fn record_predicate(
        &mut self,
        predicate: &Expr,
        schema: &DFSchema,
        input: &[Lin],
    ) -> Result<()> {
        for conjunct in split_conjunction(predicate) {
            if let Some((common, rest)) = common_equalities(conjunct) {
                // `(a = b AND x) OR (a = b AND y)`: the join key shared by every branch is a
                // join key; the rest filters.
                for e in common {
                    self.record_conjunct(e, schema, input)?;
                }
                for e in rest {
                    self.record(e, schema, input, UseContext::Filter)?;
                }
            } else {
                self.record_conjunct(conjunct, schema, input)?;
            }
        }
        Ok(())
    }

    /// One conjunct: `a = b` between plain column references is a join key, anything else a
    /// filter.
    fn record_conjunct(&mut self, conjunct: &Expr, schema: &DFSchema, input: &[Lin]) -> Result<()> {
        if let Some(inner) = correlation_equality(conjunct) {
            // `inner = outer`: allowed only when `inner` is the privacy unit of its data, so
            // that each outer row tests its own person or firm.
            let lin = self.expr(inner, schema, input)?;
            let on_unit = is_plain(&lin)
                && lin.iter().all(|d| {
                    self.units
                        .get(&d.source.dataset)
                        .is_some_and(|u| *u == d.source.column)
                });
            if on_unit {
                self.correlation += 1;
                let r = self.record_join_equality(conjunct, schema, input);
                self.correlation -= 1;
                return r;
            }
        }
        self.record_join_equality(conjunct, schema, input)
    }

    fn record_join_equality(
        &mut self,
        conjunct: &Expr,
        schema: &DFSchema,
        input: &[Lin],
    ) -> Result<()> {
        if let Expr::BinaryExpr(b) = conjunct
            && b.op == Operator::Eq
            && is_column_ref(&b.left)
            && is_column_ref(&b.right)
        {
            let left = self.expr(&b.left, schema, input)?;
            let right = self.expr(&b.right, schema, input)?;
            // A "key" compared with a constant (a VALUES row, a literal subquery) is a
            // literal comparison, not a join.
            let context = if is_plain(&left) && is_plain(&right) {
                UseContext::JoinKey
            } else {
                UseContext::Filter
            };
            self.push_uses(left.into_iter().chain(right), context, conjunct);
            Ok(())
        } else {
            self.record(conjunct, schema, input, UseContext::Filter)
        }
    }

    fn push_uses(
        &mut self,
        lin: impl IntoIterator<Item = Derivation>,
        context: UseContext,
        expr: &Expr,
    ) {
        let text = expr.to_string();
        for d in lin {
            let u = ContextUse {
                derivation: d,
                context,
                expr: text.clone(),
            };
            if !self.uses.contains(&u) {
                self.uses.push(u);
            }
        }
    }

    /// The merged lineage of `exprs`, passed on unchanged (no step).
    fn flow(&mut self, exprs: &[&Expr], schema: &DFSchema, input: &[Lin]) -> Result<Lin> {
        let mut out = Vec::new();
        for e in exprs {
            let l = self.expr(e, schema, input)?;
            merge(&mut out, l);
        }
        Ok(out)
    }

    /// Records every source column of `expr` as used in `context`.
    fn record(
        &mut self,
        expr: &Expr,
        schema: &DFSchema,
        input: &[Lin],
        context: UseContext,
    ) -> Result<()> {
        let lin = self.expr(expr, schema, input)?;
        self.push_uses(lin, context, expr);
        Ok(())
    }

    fn column(&self, c: &Column, schema: &DFSchema, input: &[Lin]) -> Result<Lin> {
        let i = schema
            .index_of_column(c)
            .map_err(|_| EngineError::Plan(format!("column `{c}` not found")))?;
        input
            .get(i)
            .cloned()
            .ok_or_else(|| EngineError::Unsupported(format!("column `{c}` has no lineage")))
    }

    fn outer_column(&self, c: &Column) -> Result<Lin> {
        for (schema, lin) in self.outer.iter().rev() {
            if let Ok(i) = schema.index_of_column(c) {
                return Ok(lin.get(i).cloned().unwrap_or_default());
            }
        }
        Err(EngineError::Unsupported(format!(
            "correlated column `{c}` could not be resolved"
        )))
    }

    /// Lineage of a subquery's output columns, analysed with the enclosing schema in scope. A
    /// correlated subquery may not aggregate, and may refer to the enclosing query only by
    /// equalities with its data's privacy unit (checked where its predicates are recorded).
    fn subquery(&mut self, s: &Subquery, schema: &DFSchema, input: &[Lin]) -> Result<Vec<Lin>> {
        if !s.outer_ref_columns.is_empty() && contains_aggregate(&s.subquery) {
            self.shape.push(ShapeIssue {
                context: short(&s.subquery),
                construct: Construct::CorrelatedAggregate,
                columns: Vec::new(),
            });
        }
        self.outer.push((schema.clone(), input.to_vec()));
        let depth = std::mem::replace(&mut self.in_aggregate, 0);
        let out = self.node(&s.subquery);
        self.in_aggregate = depth;
        self.outer.pop();
        out
    }

    /// Records the shape issues of an aggregate call's argument.
    fn aggregate_shape(
        &mut self,
        f: &datafusion::logical_expr::expr::AggregateFunction,
        whole: &Expr,
        schema: &DFSchema,
        input: &[Lin],
    ) -> Result<Vec<Expr>> {
        let analysis = crate::aggregate_args::analyse(f, schema, true);
        for issue in analysis.issues {
            let depth = std::mem::replace(&mut self.in_aggregate, 0);
            let lin = self.expr(&issue.at, schema, input);
            self.in_aggregate = depth;
            let mut columns: Vec<SourceColumn> = lin
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.source)
                .collect();
            columns.sort();
            columns.dedup();
            let i = ShapeIssue {
                context: crate::aggregate_args::sql(whole),
                construct: issue.construct,
                columns,
            };
            if !self.shape.contains(&i) {
                self.shape.push(i);
            }
        }
        Ok(analysis.conditions)
    }

    #[recursive::recursive]
    fn expr(&mut self, expr: &Expr, schema: &DFSchema, input: &[Lin]) -> Result<Lin> {
        let scalar = |name: &str| Step::Scalar(name.to_string());
        let all = |cx: &mut Self, exprs: &[&Expr], step: Step| -> Result<Lin> {
            let mut out = Vec::new();
            for e in exprs {
                let l = cx.expr(e, schema, input)?;
                merge(&mut out, with_step(&l, &step));
            }
            Ok(out)
        };
        Ok(match expr {
            Expr::Alias(a) => self.expr(&a.expr, schema, input)?,
            Expr::Column(c) => self.column(c, schema, input)?,
            Expr::OuterReferenceColumn(_, c) => {
                if self.correlation == 0 {
                    self.shape.push(ShapeIssue {
                        context: crate::aggregate_args::sql(expr),
                        construct: Construct::CorrelationNotOnUnit {
                            units: self
                                .units
                                .values()
                                .cloned()
                                .collect::<BTreeSet<_>>()
                                .into_iter()
                                .collect(),
                        },
                        columns: Vec::new(),
                    });
                }
                self.outer_column(c)?
            }
            Expr::Literal(..) => Vec::new(),
            Expr::ScalarVariable(..) => return Err(unsupported("a session variable")),
            Expr::Placeholder(_) => return Err(unsupported("a placeholder ($1)")),
            Expr::BinaryExpr(b) => all(self, &[&b.left, &b.right], scalar(&b.op.to_string()))?,
            Expr::Like(l) => all(self, &[&l.expr, &l.pattern], scalar("like"))?,
            Expr::SimilarTo(l) => all(self, &[&l.expr, &l.pattern], scalar("similar to"))?,
            Expr::Not(e) => all(self, &[e], scalar("not"))?,
            Expr::IsNull(e) | Expr::IsNotNull(e) => all(self, &[e], scalar("is null"))?,
            Expr::IsTrue(e)
            | Expr::IsFalse(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotTrue(e)
            | Expr::IsNotFalse(e)
            | Expr::IsNotUnknown(e) => all(self, &[e], scalar("is true"))?,
            Expr::Negative(e) => all(self, &[e], scalar("-"))?,
            Expr::Between(b) => all(self, &[&b.expr, &b.low, &b.high], scalar("between"))?,
            Expr::Case(c) if self.in_aggregate > 0 => {
                // Inside an aggregate, a CASE condition only selects which rows' values are
                // summarized, exactly as WHERE would: it is checked as a filter (and its sides
                // as populations, see `aggregate_args`), and only the THEN / ELSE values flow
                // into the aggregate, unchanged.
                if let Some(e) = &c.expr {
                    self.record(e, schema, input, UseContext::Filter)?;
                }
                let mut parts: Vec<&Expr> = Vec::new();
                for (w, t) in &c.when_then_expr {
                    self.record(w, schema, input, UseContext::Filter)?;
                    parts.push(t);
                }
                if let Some(e) = &c.else_expr {
                    parts.push(e);
                }
                self.flow(&parts, schema, input)?
            }
            Expr::ScalarFunction(f)
                if self.in_aggregate > 0
                    && matches!(f.func.name(), "nullif" | "coalesce" | "nvl" | "nvl2") =>
            {
                // Conditional functions inside an aggregate are conditions too: what they test
                // is a filter use, what they pass on flows into the aggregate.
                let name = f.func.name();
                let (tested, passed): (Vec<&Expr>, Vec<&Expr>) = match (name, f.args.as_slice()) {
                    ("nullif", [a, b]) => (vec![a, b], vec![a]),
                    ("nvl2", [a, b, c]) => (vec![a], vec![b, c]),
                    (_, args) => {
                        let n = args.len().saturating_sub(1);
                        (args[..n].iter().collect(), args.iter().collect())
                    }
                };
                for t in tested {
                    self.record(t, schema, input, UseContext::Filter)?;
                }
                self.flow(&passed, schema, input)?
            }
            Expr::Case(c) => {
                let mut parts: Vec<&Expr> = Vec::new();
                if let Some(e) = &c.expr {
                    parts.push(e);
                }
                for (w, t) in &c.when_then_expr {
                    parts.push(w);
                    parts.push(t);
                }
                if let Some(e) = &c.else_expr {
                    parts.push(e);
                }
                all(self, &parts, scalar("case"))?
            }
            Expr::Cast(c) => all(
                self,
                &[&c.expr],
                Step::Cast(c.field.data_type().to_string()),
            )?,
            Expr::TryCast(c) => all(
                self,
                &[&c.expr],
                Step::Cast(c.field.data_type().to_string()),
            )?,
            Expr::ScalarFunction(f) if masks::lookup(f.func.name()).is_some() => {
                let Some((value, params)) = f.args.split_first() else {
                    return Err(unsupported("a mask function without a value"));
                };
                let args = params
                    .iter()
                    .map(|p| mask_arg(f.func.name(), p))
                    .collect::<Result<Vec<_>>>()?;
                let step = Step::Mask {
                    name: f.func.name().to_string(),
                    args,
                };
                let lin = all(self, &[value], step)?;
                if lin.is_empty() && f.func.name() == "pseudonym" {
                    return Err(EngineError::Forbidden(format!(
                        "`{expr}`: pseudonym() of a constant would compute the token of a chosen \
                         value; it applies to a column only"
                    )));
                }
                lin
            }
            Expr::ScalarFunction(f) => {
                let args: Vec<&Expr> = f.args.iter().collect();
                all(self, &args, scalar(f.func.name()))?
            }
            Expr::AggregateFunction(f) => {
                let p = &f.params;
                for s in &p.order_by {
                    self.record(&s.expr, schema, input, UseContext::Sort)?;
                }
                // Conditions (FILTER, and those inside the argument) are filter uses; the
                // argument's shape must be one the release rules can judge.
                if let Some(filter) = &p.filter {
                    self.record(filter, schema, input, UseContext::Filter)?;
                }
                self.aggregate_shape(f, expr, schema, input)?;
                let args: Vec<&Expr> = p.args.iter().collect();
                self.in_aggregate += 1;
                let lin = all(
                    self,
                    &args,
                    Step::Aggregate {
                        func: f.func.name().to_ascii_lowercase(),
                        distinct: p.distinct,
                    },
                );
                self.in_aggregate -= 1;
                lin?
            }
            Expr::WindowFunction(w) => {
                let p = &w.params;
                let name = w.fun.to_string();
                if let Some(filter) = &p.filter {
                    self.record(filter, schema, input, UseContext::Filter)?;
                }
                let mut parts: Vec<&Expr> = p.args.iter().chain(p.partition_by.iter()).collect();
                parts.extend(p.order_by.iter().map(|s| &s.expr));
                all(self, &parts, Step::Window(name))?
            }
            Expr::InList(l) => {
                let mut parts: Vec<&Expr> = vec![&l.expr];
                parts.extend(l.list.iter());
                all(self, &parts, scalar("in"))?
            }
            Expr::Exists(e) => {
                // Existence depends only on the subquery's filters, recorded as uses there.
                self.subquery(&e.subquery, schema, input)?;
                Vec::new()
            }
            Expr::InSubquery(s) => {
                // `x IN (SELECT y ...)` is a semi-join when both sides are plain columns: join
                // keys. Against constants or computed values it is a literal comparison.
                let inner: Lin = self
                    .subquery(&s.subquery, schema, input)?
                    .into_iter()
                    .flatten()
                    .collect();
                let outer = self.expr(&s.expr, schema, input)?;
                let context = if is_column_ref(&s.expr) && is_plain(&outer) && is_plain(&inner) {
                    UseContext::JoinKey
                } else {
                    UseContext::Filter
                };
                self.push_uses(outer.into_iter().chain(inner), context, expr);
                Vec::new()
            }
            Expr::SetComparison(s) => {
                let inner = self.subquery(&s.subquery, schema, input)?;
                let mut out = self.expr(&s.expr, schema, input)?;
                for l in inner {
                    merge(&mut out, l);
                }
                with_step(&out, &scalar(&s.op.to_string()))
            }
            Expr::ScalarSubquery(s) => {
                let inner = self.subquery(s, schema, input)?;
                let inner: Lin = inner.into_iter().flatten().collect();
                if !inner.is_empty() && !is_aggregated(&s.subquery) {
                    let mut columns: Vec<SourceColumn> =
                        inner.iter().map(|d| d.source.clone()).collect();
                    columns.sort();
                    columns.dedup();
                    self.shape.push(ShapeIssue {
                        context: crate::aggregate_args::sql(expr),
                        construct: Construct::ScalarSubqueryNotAggregated,
                        columns,
                    });
                }
                inner
            }
            Expr::GroupingSet(g) => {
                let parts = g.distinct_expr();
                all(self, &parts, scalar("grouping set"))?
            }
            Expr::Unnest(u) => all(self, &[&u.expr], scalar("unnest"))?,
            #[allow(deprecated)]
            Expr::Wildcard { .. } => return Err(unsupported("an unexpanded wildcard")),
            Expr::HigherOrderFunction(_) | Expr::Lambda(_) | Expr::LambdaVariable(_) => {
                return Err(unsupported("a lambda function"));
            }
        })
    }
}
