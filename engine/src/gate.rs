//! The SQL gate: the one parse of an analyst's text, before anything plans it.
//!
//! The text is bounded (size, expression depth and count, subquery depth) and must be exactly
//! one query. Parsing itself is bounded too: sqlparser backtracks at keywords that may also be
//! names (`NOT (…)` as an operator, then as a function `not(…)`; `CAST(…)`, `ARRAY[…]`, …),
//! so a text nesting them n deep with an error inside costs 2ⁿ re-parses — 40 levels kept a
//! core busy for minutes. [`BudgetedDialect`] counts every expression the parser starts and
//! stops the parse when the count passes a budget proportional to the text, which makes every
//! further backtracking attempt fail at once. The statement the gate returns is the one that
//! is planned: the text is never parsed a second time by a parser without the budget.

use std::cell::Cell;

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, Statement as SqlStatement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use crate::error::{EngineError, Result};
use crate::sandbox::classify;

/// Longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Deepest nesting of expressions a query may have (a chain `a + b + … ` of n terms nests n
/// deep): planning and checking recurse over the tree, so its depth is bounded before either
/// sees it.
pub const MAX_EXPR_DEPTH: usize = 128;
/// Most expression nodes a query may have.
pub const MAX_EXPR_NODES: usize = 20_000;
/// Deepest nesting of subqueries.
pub const MAX_QUERY_DEPTH: usize = 16;

/// Parses and measures `sql` on a thread with a large stack: the parser builds (and drops)
/// whatever tree the text describes, and a tree deep enough to overflow a normal stack must be
/// measured and refused, not crash the server. Returns the one query statement to plan.
pub(crate) fn gate(sql: &str) -> Result<DfStatement> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(EngineError::TooLong {
            bytes: sql.len(),
            limit: MAX_SQL_BYTES,
        });
    }
    let text = sql.to_string();
    std::thread::Builder::new()
        .name("erhai-gate".into())
        .stack_size(256 << 20)
        .spawn(move || gate_statement(&text))
        .map_err(|e| EngineError::Execution(format!("could not start the SQL gate: {e}")))?
        .join()
        .unwrap_or_else(|_| {
            Err(EngineError::Forbidden(
                "the SQL text could not be parsed safely; simplify the query".into(),
            ))
        })
}

/// The depth and size of a parsed query's expressions.
#[derive(Default)]
struct Shape {
    depth: usize,
    max_depth: usize,
    nodes: usize,
    queries: usize,
    max_queries: usize,
}

impl Visitor for Shape {
    type Break = ();
    fn pre_visit_expr(&mut self, _: &Expr) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        self.nodes += 1;
        self.max_depth = self.max_depth.max(self.depth);
        if self.max_depth > MAX_EXPR_DEPTH || self.nodes > MAX_EXPR_NODES {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, _: &Expr) -> std::ops::ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        std::ops::ControlFlow::Continue(())
    }
    fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
        self.queries += 1;
        self.max_queries = self.max_queries.max(self.queries);
        if self.max_queries > MAX_QUERY_DEPTH {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
        self.queries = self.queries.saturating_sub(1);
        std::ops::ControlFlow::Continue(())
    }
}

/// Parses `sql` once: exactly one statement, and it must be a query, no deeper or larger than
/// the bounds. DDL, DML, COPY, SET and the like are refused here, before the planner could
/// touch files or settings. Whatever is refused is dropped here too, on the large stack.
fn gate_statement(sql: &str) -> Result<DfStatement> {
    let dialect = BudgetedDialect::for_text(sql);
    let parsed = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .build()
        .and_then(|mut p| p.parse_statements());
    let mut statements = match parsed {
        Ok(s) => s,
        Err(e) if dialect.exhausted() || e.to_string().contains("Recursion limit exceeded") => {
            return Err(EngineError::Forbidden(format!(
                "the SQL text nests too deeply to parse within the bounds (expressions at most \
                 {MAX_EXPR_DEPTH} deep, subqueries at most {MAX_QUERY_DEPTH}); simplify the query"
            )));
        }
        Err(e) => return Err(classify(e.to_string())),
    };
    if let Some(DfStatement::Statement(st)) = statements.front() {
        let mut shape = Shape::default();
        let _ = st.visit(&mut shape);
        if shape.max_depth > MAX_EXPR_DEPTH {
            return Err(EngineError::Forbidden(format!(
                "the query nests expressions more than {MAX_EXPR_DEPTH} deep (a chain of \
                 {MAX_EXPR_DEPTH}+ operators or calls); split it or use IN (…) for long lists"
            )));
        }
        if shape.nodes > MAX_EXPR_NODES {
            return Err(EngineError::Forbidden(format!(
                "the query has more than {MAX_EXPR_NODES} expressions; split it"
            )));
        }
        if shape.max_queries > MAX_QUERY_DEPTH {
            return Err(EngineError::Forbidden(format!(
                "the query nests subqueries more than {MAX_QUERY_DEPTH} deep"
            )));
        }
    }
    if statements.len() != 1 {
        return Err(EngineError::Forbidden(format!(
            "submit exactly one SQL statement; found {}",
            statements.len()
        )));
    }
    match statements.pop_front() {
        Some(st @ DfStatement::Statement(_))
            if matches!(&st, DfStatement::Statement(q) if matches!(q.as_ref(), SqlStatement::Query(_))) =>
        {
            Ok(st)
        }
        Some(DfStatement::Explain(_)) => Err(EngineError::Forbidden(
            "EXPLAIN is not available in the sandbox: use `query check` for the plan verdict".into(),
        )),
        Some(DfStatement::Statement(st))
            if matches!(st.as_ref(), SqlStatement::Explain { .. } | SqlStatement::ExplainTable { .. }) => {
            Err(EngineError::Forbidden(
                "EXPLAIN and DESCRIBE are not available in the sandbox: use `query check` or `dataset show`".into(),
            ))
        }
        _ => Err(EngineError::Forbidden(
            "only queries (SELECT) are allowed in the sandbox: no DDL, DML, COPY or SET".into(),
        )),
    }
}

/// How deep the parser may recurse. Far above what the depth bounds accept, so that a text
/// within them never meets the limit (meeting it is what turns backtracking exponential); the
/// parser's own stack protection grows the stack for the recursion this allows.
const PARSER_RECURSION_LIMIT: usize = 4 * MAX_EXPR_DEPTH + 8 * MAX_QUERY_DEPTH;

/// Expressions the parser may start per byte of text, plus a floor: a text parsed without
/// backtracking starts fewer expressions than it has tokens.
const PARSE_BUDGET_PER_BYTE: u64 = 4;
const PARSE_BUDGET_FLOOR: u64 = 10_000;

/// The generic SQL dialect DataFusion plans with, counting the expressions the parser starts.
/// Past the budget every expression fails with the parser's recursion error, which its
/// backtracking passes through instead of trying the next reading.
#[derive(Debug)]
struct BudgetedDialect {
    inner: GenericDialect,
    started: Cell<u64>,
    budget: u64,
}

impl BudgetedDialect {
    fn for_text(sql: &str) -> Self {
        BudgetedDialect {
            inner: GenericDialect {},
            started: Cell::new(0),
            budget: PARSE_BUDGET_FLOOR + PARSE_BUDGET_PER_BYTE * sql.len() as u64,
        }
    }

    fn exhausted(&self) -> bool {
        self.started.get() > self.budget
    }
}

impl Dialect for BudgetedDialect {
    /// Parses exactly as the generic dialect: `dialect_of!` checks see it as one.
    fn dialect(&self) -> std::any::TypeId {
        self.inner.dialect()
    }

    fn parse_prefix(&self, _parser: &mut Parser) -> Option<std::result::Result<Expr, ParserError>> {
        self.started.set(self.started.get().saturating_add(1));
        if self.exhausted() {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        None
    }

    // Everything else is the generic dialect's, forwarded one by one (generated from
    // sqlparser's `GenericDialect`; `gate::tests` compares the two on a corpus).
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        self.inner.supports_unicode_string_literal()
    }
    fn supports_partition_by_after_order_by(&self) -> bool {
        self.inner.supports_partition_by_after_order_by()
    }
    fn supports_array_join_syntax(&self) -> bool {
        self.inner.supports_array_join_syntax()
    }
    fn supports_group_by_expr(&self) -> bool {
        self.inner.supports_group_by_expr()
    }
    fn supports_group_by_with_modifier(&self) -> bool {
        self.inner.supports_group_by_with_modifier()
    }
    fn supports_left_associative_joins_without_parens(&self) -> bool {
        self.inner.supports_left_associative_joins_without_parens()
    }
    fn supports_connect_by(&self) -> bool {
        self.inner.supports_connect_by()
    }
    fn supports_match_recognize(&self) -> bool {
        self.inner.supports_match_recognize()
    }
    fn supports_pipe_operator(&self) -> bool {
        self.inner.supports_pipe_operator()
    }
    fn supports_start_transaction_modifier(&self) -> bool {
        self.inner.supports_start_transaction_modifier()
    }
    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.inner.supports_window_function_null_treatment_arg()
    }
    fn supports_dictionary_syntax(&self) -> bool {
        self.inner.supports_dictionary_syntax()
    }
    fn supports_window_clause_named_window_reference(&self) -> bool {
        self.inner.supports_window_clause_named_window_reference()
    }
    fn supports_parenthesized_set_variables(&self) -> bool {
        self.inner.supports_parenthesized_set_variables()
    }
    fn supports_select_wildcard_except(&self) -> bool {
        self.inner.supports_select_wildcard_except()
    }
    fn support_map_literal_syntax(&self) -> bool {
        self.inner.support_map_literal_syntax()
    }
    fn allow_extract_custom(&self) -> bool {
        self.inner.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.inner.allow_extract_single_quotes()
    }
    fn supports_extract_comma_syntax(&self) -> bool {
        self.inner.supports_extract_comma_syntax()
    }
    fn supports_create_view_comment_syntax(&self) -> bool {
        self.inner.supports_create_view_comment_syntax()
    }
    fn supports_parens_around_table_factor(&self) -> bool {
        self.inner.supports_parens_around_table_factor()
    }
    fn supports_values_as_table_factor(&self) -> bool {
        self.inner.supports_values_as_table_factor()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        self.inner.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        self.inner.supports_explain_with_utility_options()
    }
    fn supports_limit_comma(&self) -> bool {
        self.inner.supports_limit_comma()
    }
    fn supports_update_order_by(&self) -> bool {
        self.inner.supports_update_order_by()
    }
    fn supports_from_first_select(&self) -> bool {
        self.inner.supports_from_first_select()
    }
    fn supports_projection_trailing_commas(&self) -> bool {
        self.inner.supports_projection_trailing_commas()
    }
    fn supports_asc_desc_in_column_definition(&self) -> bool {
        self.inner.supports_asc_desc_in_column_definition()
    }
    fn supports_try_convert(&self) -> bool {
        self.inner.supports_try_convert()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.inner.supports_bitwise_shift_operators()
    }
    fn supports_comment_on(&self) -> bool {
        self.inner.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        self.inner.supports_load_extension()
    }
    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        self.inner.supports_named_fn_args_with_assignment_operator()
    }
    fn supports_struct_literal(&self) -> bool {
        self.inner.supports_struct_literal()
    }
    fn supports_empty_projections(&self) -> bool {
        self.inner.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        self.inner.supports_nested_comments()
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        self.inner.supports_multiline_comment_hints()
    }
    fn supports_user_host_grantee(&self) -> bool {
        self.inner.supports_user_host_grantee()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.inner.supports_string_escape_constant()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.inner.supports_array_typedef_with_brackets()
    }
    fn supports_match_against(&self) -> bool {
        self.inner.supports_match_against()
    }
    fn supports_set_names(&self) -> bool {
        self.inner.supports_set_names()
    }
    fn supports_comma_separated_set_assignments(&self) -> bool {
        self.inner.supports_comma_separated_set_assignments()
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        self.inner.supports_filter_during_aggregation()
    }
    fn supports_select_wildcard_exclude(&self) -> bool {
        self.inner.supports_select_wildcard_exclude()
    }
    fn supports_data_type_signed_suffix(&self) -> bool {
        self.inner.supports_data_type_signed_suffix()
    }
    fn supports_interval_options(&self) -> bool {
        self.inner.supports_interval_options()
    }
    fn supports_quote_delimited_string(&self) -> bool {
        self.inner.supports_quote_delimited_string()
    }
    fn supports_select_wildcard_replace(&self) -> bool {
        self.inner.supports_select_wildcard_replace()
    }
    fn supports_select_wildcard_ilike(&self) -> bool {
        self.inner.supports_select_wildcard_ilike()
    }
    fn supports_select_wildcard_rename(&self) -> bool {
        self.inner.supports_select_wildcard_rename()
    }
    fn supports_optimize_table(&self) -> bool {
        self.inner.supports_optimize_table()
    }
    fn supports_install(&self) -> bool {
        self.inner.supports_install()
    }
    fn supports_detach(&self) -> bool {
        self.inner.supports_detach()
    }
    fn supports_prewhere(&self) -> bool {
        self.inner.supports_prewhere()
    }
    fn supports_with_fill(&self) -> bool {
        self.inner.supports_with_fill()
    }
    fn supports_limit_by(&self) -> bool {
        self.inner.supports_limit_by()
    }
    fn supports_interpolate(&self) -> bool {
        self.inner.supports_interpolate()
    }
    fn supports_settings(&self) -> bool {
        self.inner.supports_settings()
    }
    fn supports_select_format(&self) -> bool {
        self.inner.supports_select_format()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        self.inner.supports_comment_optimizer_hint()
    }
    fn supports_constraint_keyword_without_name(&self) -> bool {
        self.inner.supports_constraint_keyword_without_name()
    }
    fn supports_key_column_option(&self) -> bool {
        self.inner.supports_key_column_option()
    }
    fn supports_comma_separated_trim(&self) -> bool {
        self.inner.supports_comma_separated_trim()
    }
    fn supports_cte_without_as(&self) -> bool {
        self.inner.supports_cte_without_as()
    }
    fn supports_select_item_multi_column_alias(&self) -> bool {
        self.inner.supports_select_item_multi_column_alias()
    }
    fn supports_xml_expressions(&self) -> bool {
        self.inner.supports_xml_expressions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    /// Queries of every clause the sandbox supports parse to the same tree as DataFusion's own
    /// parser gives them: the forwarded dialect is the generic one.
    #[test]
    fn the_budgeted_dialect_parses_as_the_generic_one() {
        let corpus = [
            "SELECT district, count(*) AS n FROM hotel_stays GROUP BY district HAVING count(*) > 5",
            "SELECT a.x, sum(b.y) FILTER (WHERE b.z > 1) FROM a JOIN b ON a.k = b.k GROUP BY 1",
            "WITH c AS (SELECT * FROM t) SELECT CASE WHEN x IN (1, 2) THEN 'a' ELSE 'b' END FROM c",
            "SELECT CAST(x AS DECIMAL(10, 2)), x::int, INTERVAL '1 day', DATE '2026-01-01' FROM t",
            "SELECT EXTRACT(YEAR FROM d), date_trunc('month', d), t.* FROM t WHERE NOT (a OR b)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k) ORDER BY x LIMIT 3",
            "SELECT a FROM t UNION ALL SELECT a FROM u EXCEPT SELECT b FROM v",
            "SELECT g, count(DISTINCT u) FROM t GROUP BY ROLLUP (g, h), CUBE (i)",
            "SELECT x, row_number() OVER (PARTITION BY g ORDER BY x) FROM t",
            "SELECT \"名 字\", 'a''b' || x, [1, 2][1], -x ^ 2, x % 3, x IS NOT DISTINCT FROM y FROM t",
        ];
        for sql in corpus {
            let dialect = BudgetedDialect::for_text(sql);
            let ours = DFParserBuilder::new(sql)
                .with_dialect(&dialect)
                .with_recursion_limit(PARSER_RECURSION_LIMIT)
                .build()
                .and_then(|mut p| p.parse_statements())
                .map(|s| format!("{s:?}"));
            let theirs = DFParser::parse_sql(sql).map(|s| format!("{s:?}"));
            assert_eq!(
                ours.as_ref().ok(),
                theirs.as_ref().ok(),
                "{sql}: {ours:?} / {theirs:?}"
            );
            assert!(ours.is_ok(), "{sql}: {ours:?}");
        }
    }

    /// Keywords that may also be names make the parser try two readings per level; nested with
    /// an error inside (or past the recursion limit) that is 2ⁿ parses. The budget cuts it: the
    /// text is refused after work proportional to its length.
    #[test]
    fn backtracking_nests_are_cut_by_the_budget() {
        for (open, close) in [
            ("NOT (", ")"),
            ("CAST(", " AS INT)"),
            ("ARRAY[", "]"),
            ("coalesce(NOT (", "))"),
        ] {
            for depth in [40, 200, 2_000] {
                for tail in ["x IS NOT NULL", "x +"] {
                    let sql = format!(
                        "SELECT count(*) FROM t WHERE {}{tail}{}",
                        open.repeat(depth),
                        close.repeat(depth)
                    );
                    let dialect = BudgetedDialect::for_text(&sql);
                    let parsed = DFParserBuilder::new(sql.as_str())
                        .with_dialect(&dialect)
                        .with_recursion_limit(PARSER_RECURSION_LIMIT)
                        .build()
                        .and_then(|mut p| p.parse_statements());
                    let bound = dialect.budget + 16 * sql.len() as u64;
                    assert!(
                        dialect.started.get() <= bound,
                        "{open}×{depth} {tail}: {} expressions started, bound {bound}",
                        dialect.started.get()
                    );
                    if depth > MAX_EXPR_DEPTH {
                        let refused = gate(&sql).expect_err("refused");
                        assert!(
                            refused.to_string().contains("deep"),
                            "{open}×{depth}: {refused}"
                        );
                    }
                    drop(parsed);
                }
            }
        }
    }

    #[test]
    fn the_gate_returns_the_one_query() {
        let st = gate("SELECT 1").expect("query");
        assert!(matches!(st, DfStatement::Statement(_)));
        for (sql, says) in [
            ("SELECT 1; SELECT 2", "exactly one"),
            ("DROP TABLE t", "only queries"),
            ("EXPLAIN SELECT 1", "EXPLAIN"),
            ("COPY t TO 'x'", "only queries"),
        ] {
            let e = gate(sql).expect_err(sql).to_string();
            assert!(e.contains(says), "{sql}: {e}");
        }
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        let e = gate(&long).expect_err("long");
        assert!(matches!(e, EngineError::TooLong { .. }), "{e}");
        assert!(e.to_string().contains("bytes"));
    }
}
