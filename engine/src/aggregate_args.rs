//! An aggregate call taken apart for the release rules: the paths through the conditions written
//! in its argument and its `FILTER`, and on each path the value — for sums, averages and
//! variances a sum of products (terms) of column values and constants; for counts and the
//! single-value functions the value itself, which must be a column (cast or masked at most).
//!
//! Every path is a population the rules check (both sides of every condition, `FILTER`
//! included); every non-constant term of a sum has its per-unit contributions checked for
//! dominance. Constants are left out of the terms: the analyst chose them, so they are known, and
//! an offset added to every row must not dilute a dominant contribution. What cannot be taken
//! apart this way is reported as a [`Construct`] and refuses the plan (see
//! [`erhai_policies::shape`]).

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, Operator, lit};
use erhai_policies::shape::{Construct, MAX_CONSTANT, MAX_DEGREE, MAX_PATHS, MAX_TERMS};

/// What an aggregate function does with its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `sum`, `avg`, `mean`: a sum of values.
    Sum,
    /// `var*`, `stddev*`: sums of values and of their squares.
    Spread,
    /// `count`, `count(DISTINCT …)`, `approx_distinct`: only whether the value is null (or
    /// which values are distinct) matters.
    Count,
    /// Functions that return one row's value (`min`, `max`, `median`, …) or an internal one
    /// (`grouping`).
    Other,
}

impl Kind {
    pub(crate) fn of(func: &str) -> Kind {
        match func {
            "sum" | "avg" | "mean" => Kind::Sum,
            "var" | "var_samp" | "var_pop" | "variance" | "stddev" | "stddev_samp"
            | "stddev_pop" => Kind::Spread,
            "count" | "approx_distinct" => Kind::Count,
            _ => Kind::Other,
        }
    }
}

/// A product of column values (the factors, each a column possibly behind a widening cast).
/// Its constant coefficient is irrelevant to dominance, so it is not kept.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Term {
    pub factors: Vec<Expr>,
}

impl Term {
    /// The term as an expression over Float64 values.
    pub(crate) fn expr(&self) -> Expr {
        let mut it = self
            .factors
            .iter()
            .map(|f| datafusion::logical_expr::cast(f.clone(), DataType::Float64));
        let first = it.next().unwrap_or_else(|| lit(1.0f64));
        it.fold(first, |acc, f| acc * f)
    }

    /// The term squared (for the spread of values).
    pub(crate) fn squared(&self) -> Term {
        let mut factors = self.factors.clone();
        factors.extend(self.factors.iter().cloned());
        Term { factors }
    }

    pub(crate) fn describe(&self) -> String {
        let names: Vec<String> = self.factors.iter().map(sql).collect();
        names.join(" × ")
    }
}

/// The value of a path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PathValue {
    /// NULL: the rows take part in no figure, but their population still counts.
    Null,
    /// For counts and single-value functions: the value (a column, cast or masked, or a
    /// constant).
    Plain(Expr),
    /// For sums: the non-constant terms (empty when the value is a constant).
    Terms(Vec<Term>),
}

/// One path through the conditions of an aggregate call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Path {
    /// The conditions the rows of this path satisfy (each total: `IS TRUE`, `IS NOT TRUE`,
    /// `IS NULL`, `IS NOT NULL`, never null); empty: every row of the group.
    pub guard: Vec<Expr>,
    /// Whether the path exists only because stored values may be null: it may be empty.
    pub may_be_empty: bool,
    pub value: PathValue,
    /// Whether its rows change the figure: not when their value is NULL, nor when a sum adds
    /// the constant 0 for them (`ELSE 0`).
    pub figure: bool,
}

impl Path {
    /// The guard as one boolean expression (`None`: every row).
    pub(crate) fn filter(&self) -> Option<Expr> {
        conjunction(&self.guard)
    }

    /// The conditions as an analyst reads them: `rows where … and not …`.
    pub(crate) fn describe(&self) -> String {
        if self.guard.is_empty() {
            return "every row".to_string();
        }
        let parts: Vec<String> = self.guard.iter().map(describe_condition).collect();
        format!("the rows where {}", parts.join(" and "))
    }
}

fn conjunction(parts: &[Expr]) -> Option<Expr> {
    parts.iter().cloned().reduce(|a, b| a.and(b))
}

fn describe_condition(e: &Expr) -> String {
    match e {
        Expr::IsTrue(c) => format!("`{}`", sql(c)),
        Expr::IsNotTrue(c) => match c.as_ref() {
            Expr::Not(inner) => format!("`{}` (or unknown)", sql(inner)),
            other => format!("not `{}`", sql(other)),
        },
        Expr::IsNull(c) => format!("`{}` is null", sql(c)),
        Expr::IsNotNull(c) => format!("`{}` is not null", sql(c)),
        other => format!("`{}`", sql(other)),
    }
}

/// An expression as SQL text (parenthesized as needed, qualifiers dropped), for messages; at
/// most 100 characters.
pub(crate) fn sql(e: &Expr) -> String {
    use datafusion::common::tree_node::TreeNode;
    let plain = e
        .clone()
        .transform(|x| {
            Ok(match x {
                Expr::Column(c) => datafusion::common::tree_node::Transformed::yes(Expr::Column(
                    datafusion::common::Column::new_unqualified(c.name),
                )),
                other => datafusion::common::tree_node::Transformed::no(other),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone());
    let text = datafusion::sql::unparser::Unparser::default()
        .with_pretty(true)
        .expr_to_sql(&plain)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| plain.human_display().to_string());
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text
    }
}

/// A construct found, with the sub-expression it was found in.
#[derive(Clone, Debug)]
pub(crate) struct Issue {
    pub construct: Construct,
    pub at: Expr,
}

/// An aggregate call taken apart.
#[derive(Clone, Debug)]
pub(crate) struct Analysis {
    pub kind: Kind,
    pub paths: Vec<Path>,
    /// Every condition the paths test, for the lineage (each is a filter use of its columns).
    pub conditions: Vec<Expr>,
    pub issues: Vec<Issue>,
}

impl Analysis {
    /// Whether the call has no condition at all: its only path is the whole group.
    pub(crate) fn unconditional(&self) -> bool {
        self.paths.len() == 1 && self.paths[0].guard.is_empty()
    }
}

/// A value being taken apart: a polynomial of column atoms, a plain value, or NULL.
#[derive(Clone, Debug)]
enum Val {
    Null,
    /// Monomials: factors (sorted by display) → coefficient.
    Poly(BTreeMap<Vec<String>, (Vec<Expr>, f64)>),
    Plain(Expr),
}

#[derive(Clone, Debug)]
struct Branch {
    guard: Vec<Expr>,
    may_be_empty: bool,
    value: Val,
}

fn constant(c: f64) -> Val {
    let mut m = BTreeMap::new();
    m.insert(Vec::new(), (Vec::new(), c));
    Val::Poly(m)
}

fn atom(e: &Expr) -> Val {
    let mut m = BTreeMap::new();
    m.insert(vec![e.to_string()], (vec![e.clone()], 1.0));
    Val::Poly(m)
}

/// Takes one aggregate call apart. `schema` is the aggregate's input schema; `stored_nulls`
/// says that a null value can only be a stored one (no outer join below pads rows with nulls),
/// so the side of null values may be empty.
pub(crate) fn analyse(f: &AggregateFunction, schema: &DFSchema, stored_nulls: bool) -> Analysis {
    let func = f.func.name().to_ascii_lowercase();
    let kind = Kind::of(&func);
    let mut cx = Cx {
        schema,
        kind,
        issues: Vec::new(),
        conditions: Vec::new(),
        paths_limit_hit: false,
    };
    // Every aggregate's argument is analysed: a count or a single-value function takes a plain
    // value (a column, cast or masked), and conditions only through CASE / FILTER.
    let mut branches = match f.params.args.first() {
        None => vec![Branch {
            guard: Vec::new(),
            may_be_empty: false,
            value: Val::Plain(lit(1)),
        }],
        Some(arg) => cx.branches(arg),
    };
    if let Some(filter) = &f.params.filter {
        cx.condition(filter);
        let keep = Expr::IsTrue(filter.clone());
        for b in &mut branches {
            b.guard.insert(0, keep.clone());
        }
        // The rows the FILTER leaves out are a population too: the unfiltered figure less the
        // filtered one is their figure.
        branches.push(Branch {
            guard: vec![Expr::IsNotTrue(filter.clone())],
            may_be_empty: false,
            value: Val::Null,
        });
    }
    let mut paths = Vec::new();
    for b in branches {
        cx.finish(b, &mut paths);
    }
    if !stored_nulls {
        // Nulls an outer join pads in depend on its condition: their side is a population like
        // any other, and an empty one fails.
        for p in &mut paths {
            p.may_be_empty = false;
        }
    }
    if paths.len() > MAX_PATHS && !cx.paths_limit_hit {
        cx.issue(
            Construct::TooManyPaths { paths: paths.len() },
            &Expr::AggregateFunction(f.clone()),
        );
    }
    Analysis {
        kind,
        paths,
        conditions: cx.conditions,
        issues: cx.issues,
    }
}

struct Cx<'a> {
    schema: &'a DFSchema,
    kind: Kind,
    issues: Vec<Issue>,
    conditions: Vec<Expr>,
    paths_limit_hit: bool,
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_)
    )
}

pub(crate) fn contains_subquery(e: &Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    e.exists(|x| Ok(is_subquery(x))).unwrap_or(true)
}

/// Whether a cast from `from` to `to` keeps every value exactly and never fails.
pub(crate) fn is_widening(from: &DataType, to: &DataType) -> bool {
    use DataType as D;
    if from == to || matches!(to, D::Utf8 | D::LargeUtf8 | D::Utf8View) && !from.is_nested() {
        return true;
    }
    let int_bits = |t: &D| -> Option<(bool, u32)> {
        Some(match t {
            D::Int8 => (true, 8),
            D::Int16 => (true, 16),
            D::Int32 => (true, 32),
            D::Int64 => (true, 64),
            D::UInt8 => (false, 8),
            D::UInt16 => (false, 16),
            D::UInt32 => (false, 32),
            D::UInt64 => (false, 64),
            _ => return None,
        })
    };
    // Decimal digits an integer type needs.
    let int_digits = |bits: u32| -> u8 {
        match bits {
            8 => 3,
            16 => 5,
            32 => 10,
            _ => 20,
        }
    };
    match (from, to) {
        (D::Null, _) => true,
        (f, t) if int_bits(f).is_some() && int_bits(t).is_some() => {
            let ((fs, fb), (ts, tb)) = (
                int_bits(f).unwrap_or((true, 64)),
                int_bits(t).unwrap_or((true, 8)),
            );
            (fs == ts && tb >= fb) || (!fs && ts && tb > fb)
        }
        (f, D::Float64) if int_bits(f).is_some_and(|(_, b)| b <= 32) => true,
        (f, D::Float32) if int_bits(f).is_some_and(|(_, b)| b <= 16) => true,
        (f, D::Decimal128(p, s)) if int_bits(f).is_some() => {
            let (_, b) = int_bits(f).unwrap_or((true, 64));
            (*p as i32 - *s as i32) >= int_digits(b) as i32
        }
        (D::Float32, D::Float64) => true,
        (D::Decimal128(p1, s1), D::Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i32 - *s2 as i32) >= (*p1 as i32 - *s1 as i32)
        }
        // Doubles carry 15-17 significant digits: decimals of up to 15 digits convert exactly
        // enough that no step can be aimed at one value.
        (D::Decimal128(p, _), D::Float64) => *p <= 15,
        (D::Float16, D::Float32 | D::Float64) => true,
        _ => false,
    }
}

impl Cx<'_> {
    fn issue(&mut self, construct: Construct, at: &Expr) {
        if !self
            .issues
            .iter()
            .any(|i| i.construct == construct && i.at == *at)
        {
            self.issues.push(Issue {
                construct,
                at: at.clone(),
            });
        }
    }

    fn condition(&mut self, c: &Expr) {
        if contains_subquery(c) {
            self.issue(Construct::SubqueryInAggregate, c);
        }
        if !self.conditions.contains(c) {
            self.conditions.push(c.clone());
        }
    }

    fn one(value: Val) -> Vec<Branch> {
        vec![Branch {
            guard: Vec::new(),
            may_be_empty: false,
            value,
        }]
    }

    /// The value as a plain one (counts and single-value functions): a column, a cast or a
    /// mask of one, a constant.
    fn plain(&mut self, e: &Expr) -> Vec<Branch> {
        if self.kind == Kind::Sum || self.kind == Kind::Spread {
            self.issue(
                Construct::Unsupported {
                    what: format!("`{}`", sql(e)),
                },
                e,
            );
        } else if !is_plain(e) {
            self.issue(
                Construct::ComputedCount {
                    function: "counting".into(),
                },
                e,
            );
        }
        Self::one(Val::Plain(e.clone()))
    }

    /// All paths of `e`, with their values.
    #[recursive::recursive]
    fn branches(&mut self, e: &Expr) -> Vec<Branch> {
        use Operator as O;
        match e {
            Expr::Alias(a) => self.branches(&a.expr),
            Expr::Column(_) => match self.kind {
                Kind::Sum | Kind::Spread => Self::one(atom(e)),
                _ => Self::one(Val::Plain(e.clone())),
            },
            Expr::OuterReferenceColumn(..) => {
                self.issue(
                    Construct::Unsupported {
                        what: "a column of the enclosing query".into(),
                    },
                    e,
                );
                Self::one(Val::Null)
            }
            Expr::Literal(v, _) => {
                if v.is_null() {
                    return Self::one(Val::Null);
                }
                match self.kind {
                    Kind::Sum | Kind::Spread => match numeric(v) {
                        Some(c) => {
                            if c.abs() > MAX_CONSTANT {
                                self.issue(
                                    Construct::LargeConstant {
                                        value: v.to_string(),
                                    },
                                    e,
                                );
                            }
                            Self::one(constant(c))
                        }
                        None => self.plain(e),
                    },
                    _ => Self::one(Val::Plain(e.clone())),
                }
            }
            Expr::Cast(c) => self.cast(e, &c.expr, c.field.data_type()),
            Expr::TryCast(c) => self.cast(e, &c.expr, c.field.data_type()),
            Expr::Negative(inner) => {
                let mut out = self.branches(inner);
                for b in &mut out {
                    if let Val::Poly(m) = &mut b.value {
                        for (_, c) in m.values_mut() {
                            *c = -*c;
                        }
                    } else if let Val::Plain(_) = b.value {
                        b.value = Val::Plain(e.clone());
                    }
                }
                out
            }
            Expr::BinaryExpr(b) => match b.op {
                O::Plus | O::Minus | O::Multiply => {
                    if !matches!(self.kind, Kind::Sum | Kind::Spread) {
                        return self.plain(e);
                    }
                    let left = self.branches(&b.left);
                    let right = self.branches(&b.right);
                    self.product(e, left, right, b.op)
                }
                O::Divide | O::Modulo | O::IntegerDivide => {
                    self.issue(Construct::Division, e);
                    Self::one(Val::Null)
                }
                O::StringConcat => self.plain(e),
                op if is_comparison(op) => {
                    self.issue(
                        Construct::ConditionAsValue {
                            operator: op.to_string(),
                        },
                        e,
                    );
                    Self::one(Val::Null)
                }
                op => {
                    self.issue(
                        Construct::Unsupported {
                            what: format!("the operator {op}"),
                        },
                        e,
                    );
                    Self::one(Val::Null)
                }
            },
            Expr::Case(c) => self.case(e, c),
            Expr::ScalarFunction(f) => {
                let name = f.func.name();
                match (name, f.args.as_slice()) {
                    ("nullif", [a, b]) => {
                        let cond = a.clone().eq(b.clone());
                        self.condition(&cond);
                        let mut out = vec![Branch {
                            guard: vec![Expr::IsTrue(Box::new(cond.clone()))],
                            may_be_empty: false,
                            value: Val::Null,
                        }];
                        for mut br in self.branches(a) {
                            br.guard.insert(0, Expr::IsNotTrue(Box::new(cond.clone())));
                            out.push(br);
                        }
                        self.limit(e, out)
                    }
                    ("coalesce" | "nvl", args) if !args.is_empty() => {
                        let mut out = Vec::new();
                        let mut before: Vec<Expr> = Vec::new();
                        // Branches past a null stored value exist only where values are null.
                        let mut implicit = true;
                        for (i, a) in args.iter().enumerate() {
                            let last = i + 1 == args.len();
                            for mut br in self.branches(a) {
                                // A path where this argument is null continues with the next
                                // one: read as "not null", it would be a path no row can take
                                // (its empty population would fail every cell).
                                if !last && matches!(br.value, Val::Null) {
                                    continue;
                                }
                                let mut guard = before.clone();
                                if !last {
                                    guard.push(Expr::IsNotNull(Box::new(a.clone())));
                                }
                                guard.append(&mut br.guard);
                                br.guard = guard;
                                br.may_be_empty |= implicit && !before.is_empty();
                                out.push(br);
                            }
                            if !last {
                                self.condition(&Expr::IsNull(Box::new(a.clone())));
                            }
                            implicit &= is_plain(a);
                            before.push(Expr::IsNull(Box::new(a.clone())));
                        }
                        self.limit(e, out)
                    }
                    ("nvl2", [a, b, c]) => {
                        let implicit = is_plain(a);
                        self.condition(&Expr::IsNull(Box::new(a.clone())));
                        let mut out = Vec::new();
                        for (guard, branch, may_be_empty) in [
                            (Expr::IsNotNull(Box::new(a.clone())), b, false),
                            (Expr::IsNull(Box::new(a.clone())), c, implicit),
                        ] {
                            for mut br in self.branches(branch) {
                                br.guard.insert(0, guard.clone());
                                br.may_be_empty |= may_be_empty;
                                out.push(br);
                            }
                        }
                        self.limit(e, out)
                    }
                    _ if erhai_policies::masks::lookup(name).is_some() => self.plain(e),
                    _ => {
                        match self.kind {
                            Kind::Sum | Kind::Spread => self.issue(
                                Construct::StepFunction {
                                    function: name.to_string(),
                                },
                                e,
                            ),
                            _ => self.issue(
                                Construct::ComputedCount {
                                    function: "counting".into(),
                                },
                                e,
                            ),
                        }
                        Self::one(Val::Null)
                    }
                }
            }
            c if is_condition(c) && !is_subquery(c) => {
                self.issue(Construct::ConditionAsValue { operator: short(e) }, e);
                Self::one(Val::Null)
            }
            x if is_subquery(x) => {
                self.issue(Construct::SubqueryInAggregate, e);
                Self::one(Val::Null)
            }
            other => {
                self.issue(
                    Construct::Unsupported {
                        what: format!("`{}`", short(other)),
                    },
                    e,
                );
                Self::one(Val::Null)
            }
        }
    }

    fn cast(&mut self, whole: &Expr, inner: &Expr, to: &DataType) -> Vec<Branch> {
        let from = inner.get_type(self.schema).unwrap_or(DataType::Null);
        if !is_widening(&from, to) {
            self.issue(Construct::NarrowingCast { to: to.to_string() }, whole);
        }
        let mut out = self.branches(inner);
        for b in &mut out {
            if let Val::Plain(_) = b.value {
                b.value = Val::Plain(whole.clone());
            }
        }
        out
    }

    fn case(&mut self, whole: &Expr, c: &datafusion::logical_expr::expr::Case) -> Vec<Branch> {
        let mut out = Vec::new();
        let mut not_before: Vec<Expr> = Vec::new();
        for (w, t) in &c.when_then_expr {
            let cond = match &c.expr {
                Some(base) => base.as_ref().clone().eq(w.as_ref().clone()),
                None => w.as_ref().clone(),
            };
            self.condition(&cond);
            for mut br in self.branches(t) {
                let mut guard = not_before.clone();
                guard.push(Expr::IsTrue(Box::new(cond.clone())));
                guard.append(&mut br.guard);
                br.guard = guard;
                out.push(br);
            }
            not_before.push(Expr::IsNotTrue(Box::new(cond)));
        }
        let else_branches = match &c.else_expr {
            Some(e) => self.branches(e),
            None => Self::one(Val::Null),
        };
        for mut br in else_branches {
            let mut guard = not_before.clone();
            guard.append(&mut br.guard);
            br.guard = guard;
            out.push(br);
        }
        self.limit(whole, out)
    }

    /// Caps the number of branches (and says so once).
    fn limit(&mut self, at: &Expr, mut out: Vec<Branch>) -> Vec<Branch> {
        if out.len() > MAX_PATHS {
            if !self.paths_limit_hit {
                self.issue(Construct::TooManyPaths { paths: out.len() }, at);
                self.paths_limit_hit = true;
            }
            out.truncate(MAX_PATHS);
        }
        out
    }

    /// `left op right` for + - *: every pair of branches, values combined.
    fn product(
        &mut self,
        at: &Expr,
        left: Vec<Branch>,
        right: Vec<Branch>,
        op: Operator,
    ) -> Vec<Branch> {
        let mut out = Vec::new();
        for l in &left {
            for r in &right {
                let mut guard = l.guard.clone();
                guard.extend(r.guard.iter().cloned());
                let value = match (&l.value, &r.value) {
                    (Val::Poly(a), Val::Poly(b)) => match op {
                        Operator::Plus => Val::Poly(add(a, b, 1.0)),
                        Operator::Minus => Val::Poly(add(a, b, -1.0)),
                        _ => match multiply(a, b) {
                            Ok(p) => Val::Poly(p),
                            Err(degree) => {
                                self.issue(Construct::DegreeTooHigh { degree }, at);
                                Val::Null
                            }
                        },
                    },
                    // NULL combined with anything is NULL.
                    _ => Val::Null,
                };
                out.push(Branch {
                    guard,
                    may_be_empty: l.may_be_empty || r.may_be_empty,
                    value,
                });
            }
        }
        self.limit(at, out)
    }

    /// Turns a branch into paths: terms for sums, and a side for null values of nullable
    /// columns (which may be empty).
    fn finish(&mut self, b: Branch, out: &mut Vec<Path>) {
        let mut figure = true;
        let (value, atoms) = match b.value {
            Val::Null => {
                figure = false;
                (PathValue::Null, Vec::new())
            }
            Val::Plain(e) => {
                let atoms = vec![e.clone()];
                (PathValue::Plain(e), atoms)
            }
            Val::Poly(m) => {
                let mut atoms: Vec<Expr> = Vec::new();
                let mut terms = Vec::new();
                let constant = m.get(&Vec::new()).map_or(0.0, |(_, c)| *c);
                for (_, (factors, c)) in m {
                    for f in &factors {
                        if !atoms.contains(f) {
                            atoms.push(f.clone());
                        }
                    }
                    if !factors.is_empty() && c != 0.0 {
                        terms.push(Term { factors });
                    }
                }
                if terms.len() > MAX_TERMS {
                    self.issue(
                        Construct::TooManyTerms { terms: terms.len() },
                        &atoms.first().cloned().unwrap_or_else(|| lit(0)),
                    );
                    terms.truncate(MAX_TERMS);
                }
                figure = !terms.is_empty() || constant != 0.0;
                (PathValue::Terms(terms), atoms)
            }
        };
        let nullable: Vec<Expr> = atoms
            .into_iter()
            .filter(|a| a.nullable(self.schema).unwrap_or(true))
            .collect();
        if nullable.is_empty() || value == PathValue::Null {
            out.push(Path {
                guard: b.guard,
                may_be_empty: b.may_be_empty,
                value,
                figure,
            });
            return;
        }
        // Rows whose value is null take part in no figure: the rest is the population of the
        // value, the null rows one that may be empty.
        let not_null: Vec<Expr> = nullable
            .iter()
            .map(|a| Expr::IsNotNull(Box::new(a.clone())))
            .collect();
        let any_null = nullable
            .iter()
            .map(|a| Expr::IsNull(Box::new(a.clone())))
            .reduce(|x, y| x.or(y))
            .unwrap_or_else(|| lit(false));
        let mut guard = b.guard.clone();
        guard.extend(not_null);
        out.push(Path {
            guard,
            may_be_empty: b.may_be_empty,
            value,
            figure,
        });
        let mut guard = b.guard;
        guard.push(Expr::IsTrue(Box::new(any_null)));
        out.push(Path {
            guard,
            may_be_empty: true,
            value: PathValue::Null,
            figure: false,
        });
    }
}

/// A column, possibly cast or masked (with constant parameters), or a constant.
#[recursive::recursive]
fn is_plain(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::Alias(a) => is_plain(&a.expr),
        Expr::Cast(c) => is_plain(&c.expr),
        Expr::TryCast(c) => is_plain(&c.expr),
        Expr::ScalarFunction(f) if erhai_policies::masks::lookup(f.func.name()).is_some() => {
            f.args.first().is_some_and(is_plain)
                && f.args[1..].iter().all(|a| {
                    matches!(a, Expr::Literal(..))
                        || matches!(a, Expr::Cast(c) if matches!(*c.expr, Expr::Literal(..)))
                })
        }
        _ => false,
    }
}

/// Whether `e` is a condition by its form (its type is not asked: typing every node of a walk
/// would recurse once more per node over analyst-built trees).
pub(crate) fn is_condition(e: &Expr) -> bool {
    match e {
        Expr::BinaryExpr(b) => is_comparison(b.op),
        Expr::Not(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsNotUnknown(_)
        | Expr::Between(_)
        | Expr::Like(_)
        | Expr::SimilarTo(_)
        | Expr::InList(_)
        | Expr::InSubquery(_)
        | Expr::Exists(_) => true,
        _ => false,
    }
}

fn is_comparison(op: Operator) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Eq
            | O::NotEq
            | O::Lt
            | O::LtEq
            | O::Gt
            | O::GtEq
            | O::And
            | O::Or
            | O::IsDistinctFrom
            | O::IsNotDistinctFrom
            | O::RegexMatch
            | O::RegexIMatch
            | O::RegexNotMatch
            | O::RegexNotIMatch
            | O::LikeMatch
            | O::ILikeMatch
            | O::NotLikeMatch
            | O::NotILikeMatch
    )
}

fn short(e: &Expr) -> String {
    sql(e)
}

fn numeric(v: &ScalarValue) -> Option<f64> {
    if !v.data_type().is_numeric() {
        return None;
    }
    let f = v.cast_to(&DataType::Float64).ok()?;
    match f {
        ScalarValue::Float64(Some(x)) => Some(x),
        _ => None,
    }
}

type Mono = BTreeMap<Vec<String>, (Vec<Expr>, f64)>;

fn add(a: &Mono, b: &Mono, sign: f64) -> Mono {
    let mut out = a.clone();
    for (k, (factors, c)) in b {
        let e = out
            .entry(k.clone())
            .or_insert_with(|| (factors.clone(), 0.0));
        e.1 += sign * c;
    }
    out
}

/// The product of two polynomials; `Err(degree)` when a product has too many factors.
fn multiply(a: &Mono, b: &Mono) -> Result<Mono, usize> {
    let mut out: Mono = BTreeMap::new();
    for (fa, ca) in a.values() {
        for (fb, cb) in b.values() {
            let mut pairs: Vec<(String, Expr)> = fa
                .iter()
                .chain(fb.iter())
                .map(|f| (f.to_string(), f.clone()))
                .collect();
            if pairs.len() > MAX_DEGREE {
                return Err(pairs.len());
            }
            pairs.sort_by(|x, y| x.0.cmp(&y.0));
            let key: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
            let factors: Vec<Expr> = pairs.into_iter().map(|p| p.1).collect();
            let e = out.entry(key).or_insert_with(|| (factors, 0.0));
            e.1 += ca * cb;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::expr_fn::{count, sum};
    use datafusion::logical_expr::{col, when};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("spend", DataType::Float64, false),
            Field::new("nights", DataType::Int32, false),
            Field::new("refund", DataType::Float64, true),
            Field::new("year", DataType::Int32, false),
            Field::new("name", DataType::Utf8, false),
        ]))
        .expect("schema")
    }

    fn of(e: Expr) -> Analysis {
        match e {
            Expr::AggregateFunction(f) => analyse(&f, &schema(), true),
            other => panic!("not an aggregate: {other}"),
        }
    }

    fn rules(a: &Analysis) -> Vec<String> {
        a.issues
            .iter()
            .map(|i| format!("{:?}", i.construct))
            .collect()
    }

    #[test]
    fn a_plain_sum_has_one_path_and_one_term() {
        let a = of(sum(col("spend")));
        assert!(a.issues.is_empty());
        assert!(a.unconditional());
        assert!(matches!(&a.paths[0].value, PathValue::Terms(t) if t.len() == 1));
    }

    #[test]
    fn offsets_are_left_out_and_conditions_make_paths() {
        // sum(CASE WHEN year = 1961 THEN spend + 100000 ELSE 100000 END)
        let e = when(col("year").eq(lit(1961)), col("spend") + lit(100000))
            .otherwise(lit(100000))
            .expect("case");
        let a = of(sum(e));
        assert!(a.issues.is_empty(), "{:?}", rules(&a));
        assert_eq!(a.paths.len(), 2);
        assert!(matches!(&a.paths[0].value, PathValue::Terms(t) if t.len() == 1));
        assert!(matches!(&a.paths[1].value, PathValue::Terms(t) if t.is_empty()));
        assert_eq!(a.conditions.len(), 1);
        // Products distribute: price * (1 - discount) is two terms.
        let a = of(sum(col("spend") * (lit(1) - col("nights"))));
        assert!(matches!(&a.paths[0].value, PathValue::Terms(t) if t.len() == 2));
    }

    #[test]
    fn a_filter_adds_its_complement() {
        let mut e = count(col("name"));
        if let Expr::AggregateFunction(f) = &mut e {
            f.params.filter = Some(Box::new(col("year").gt(lit(1960))));
        }
        let a = of(e);
        assert_eq!(a.paths.len(), 2);
        assert_eq!(a.paths[1].value, PathValue::Null);
        assert!(!a.paths[1].may_be_empty);
    }

    #[test]
    fn a_null_branch_of_a_coalesce_argument_continues_with_the_next() {
        use datafusion::functions::core::expr_fn::{coalesce, nullif};
        // coalesce(nullif(nights, 3), 100): nights = 3 gives 100, otherwise nights; no path
        // where nullif(…) is not null and nights = 3 at once.
        let a = of(sum(coalesce(vec![nullif(col("nights"), lit(3)), lit(100)])));
        assert!(a.issues.is_empty(), "{:?}", rules(&a));
        let guards: Vec<String> = a
            .paths
            .iter()
            .map(|p| {
                p.guard
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(" AND ")
            })
            .collect();
        assert_eq!(guards.len(), 2, "{guards:?}");
        assert!(
            !guards
                .iter()
                .any(|g| g.contains("IS NOT NULL") && g.contains("nights = Int32(3) IS TRUE")),
            "{guards:?}"
        );
    }

    #[test]
    fn nullable_columns_add_a_side_that_may_be_empty() {
        let a = of(sum(col("refund")));
        assert_eq!(a.paths.len(), 2);
        assert!(a.paths[1].may_be_empty);
    }

    #[test]
    fn hidden_conditions_are_refused() {
        use datafusion::functions::math::expr_fn::{abs, floor};
        for (e, want) in [
            (sum(floor(col("spend") / lit(100))), "StepFunction"),
            (sum(col("spend") / lit(100)), "Division"),
            (sum(abs(col("spend") - lit(3))), "StepFunction"),
            (sum(col("spend") / col("nights")), "Division"),
            (
                count(
                    col("year")
                        .eq(lit(1961))
                        .or(lit(ScalarValue::Boolean(None))),
                ),
                "ConditionAsValue",
            ),
            (
                sum(datafusion::logical_expr::cast(
                    col("spend"),
                    DataType::Int32,
                )),
                "NarrowingCast",
            ),
            (sum(col("spend") * lit(1e30)), "LargeConstant"),
            (
                sum(col("spend") * col("spend") * col("spend") * col("spend")),
                "DegreeTooHigh",
            ),
        ] {
            let a = of(e.clone());
            assert!(
                rules(&a).iter().any(|r| r.starts_with(want)),
                "{e}: {:?}",
                rules(&a)
            );
        }
    }

    #[test]
    fn widening_casts() {
        assert!(is_widening(&DataType::Int32, &DataType::Int64));
        assert!(is_widening(&DataType::Int32, &DataType::Float64));
        assert!(!is_widening(&DataType::Float64, &DataType::Int64));
        assert!(!is_widening(&DataType::Int64, &DataType::Int32));
        assert!(is_widening(
            &DataType::Decimal128(12, 2),
            &DataType::Decimal128(22, 2)
        ));
        assert!(!is_widening(
            &DataType::Decimal128(12, 2),
            &DataType::Decimal128(12, 0)
        ));
        assert!(is_widening(
            &DataType::Decimal128(12, 2),
            &DataType::Float64
        ));
        assert!(is_widening(&DataType::Int32, &DataType::Decimal128(12, 2)));
        assert!(is_widening(&DataType::Int32, &DataType::Utf8));
    }
}
