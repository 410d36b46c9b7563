//! Generated SQL fed to the planner and the checker must never panic: every input ends in a
//! verdict or an error, and no error carries panic text. Structured queries are built from the
//! demo schema's columns, functions and clauses; a second strategy mutates them, a third sends
//! arbitrary text, and a fourth builds hostile shapes: deep and wide expressions, long
//! literals, nested subqueries and derived tables, and amplifying functions — which are planned,
//! checked, and run when allowed.

use erhai_devkit::demo::store_demo_tables;
use erhai_devkit::demo_data::{self, Sizes};
use erhai_engine::testing::Sandbox;
use erhai_engine::{Engine, Limits, MasterKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const COLUMNS: [&str; 13] = [
    "stay_id",
    "guest_name",
    "id_number",
    "phone",
    "gender",
    "birth_year",
    "home_province",
    "home_city",
    "hotel_name",
    "district",
    "checkin_date",
    "nights",
    "spend_yuan",
];
const SCALARS: [&str; 8] = [
    "upper({})",
    "substr({}, 1, 3)",
    "{} || 'x'",
    "CAST({} AS VARCHAR)",
    "coalesce({}, {})",
    "length({})",
    "CASE WHEN {} IS NULL THEN 1 ELSE 2 END",
    "({})",
];
const AGGREGATES: [&str; 8] = [
    "count({})",
    "count(DISTINCT {})",
    "sum({})",
    "avg({})",
    "min({})",
    "max({})",
    "array_agg({})",
    "stddev({})",
];
const PREDICATES: [&str; 6] = [
    "{} = 'x'",
    "{} > 3",
    "{} IN ('a', 'b')",
    "{} LIKE '5%'",
    "{} IS NOT NULL",
    "{} BETWEEN 1 AND 2",
];

fn fill(template: &str, col: &str) -> String {
    template.replace("{}", col)
}

/// A scalar expression over one column.
fn scalar() -> impl Strategy<Value = String> {
    let col = prop::sample::select(COLUMNS.to_vec()).prop_map(str::to_string);
    col.prop_recursive(2, 6, 1, |inner| {
        (prop::sample::select(SCALARS.to_vec()), inner).prop_map(|(t, e)| fill(t, &e))
    })
}

fn aggregate() -> impl Strategy<Value = String> {
    (prop::sample::select(AGGREGATES.to_vec()), scalar()).prop_map(|(t, e)| fill(t, &e))
}

fn query() -> impl Strategy<Value = String> {
    let from = prop::sample::select(vec![
        "hotel_stays".to_string(),
        "(SELECT * FROM hotel_stays WHERE nights > 1) t".to_string(),
        "hotel_stays, (VALUES (1)) v(x)".to_string(),
    ]);
    let pred = (prop::sample::select(PREDICATES.to_vec()), scalar()).prop_map(|(t, e)| fill(t, &e));
    let grouped = (
        prop::collection::vec(prop::sample::select(COLUMNS.to_vec()), 0..3),
        prop::collection::vec(aggregate(), 1..3),
    )
        .prop_map(|(group, aggs)| {
            let mut select: Vec<String> = group.iter().map(|g| g.to_string()).collect();
            select.extend(aggs);
            let group_by = if group.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {}", group.join(", "))
            };
            (select.join(", "), group_by)
        });
    let plain = prop::collection::vec(scalar(), 1..3).prop_map(|s| (s.join(", "), String::new()));
    (
        prop_oneof![3 => grouped, 1 => plain],
        from,
        prop::option::of(pred),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((select, group_by), from, pred, distinct, limit)| {
            let mut sql = format!(
                "SELECT {}{select} FROM {from}",
                if distinct { "DISTINCT " } else { "" }
            );
            if let Some(p) = pred {
                sql += &format!(" WHERE {p}");
            }
            sql += &group_by;
            if limit {
                sql += " ORDER BY 1 LIMIT 5";
            }
            sql
        })
}

fn mutated() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "(",
        ")",
        ",",
        "SELECT",
        "FROM",
        "WHERE",
        "UNION",
        "JOIN",
        "'",
        "--",
        ";",
        "OVER ()",
        "WITH RECURSIVE r AS",
        "EXISTS",
        "IN",
        "*",
        "NULL",
        "/",
        "0",
        "🙂",
        "洱海",
        "\\",
        "\"",
    ]);
    (
        query(),
        prop::collection::vec((any::<prop::sample::Index>(), tokens), 1..5),
    )
        .prop_map(|(mut sql, edits)| {
            for (at, tok) in edits {
                let mut pos = at.index(sql.len() + 1);
                while !sql.is_char_boundary(pos) {
                    pos -= 1;
                }
                sql.insert_str(pos, &format!(" {tok} "));
            }
            sql
        })
}

/// `n` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

/// Shapes built to exhaust a recursive planner or checker, or the memory of a run.
fn hostile() -> impl Strategy<Value = String> {
    let ops = prop::sample::select(vec![" + ", " AND ", " OR ", " || ", " * ", " = "]);
    let terms = prop::sample::select(vec!["nights", "1", "spend_yuan", "hotel_name", "NULL"]);
    let deep = 1usize..3_000;
    prop_oneof![
        // A long chain of binary operators, in a filter or an aggregate.
        (terms.clone(), ops, deep.clone(), any::<bool>()).prop_map(|(t, op, n, filter)| {
            let e = chain(t, op, n);
            if filter {
                format!("SELECT count(*) FROM hotel_stays WHERE {e}")
            } else {
                format!("SELECT district, sum({e}) FROM hotel_stays GROUP BY district")
            }
        }),
        // Nested calls and parentheses.
        (
            prop::sample::select(vec!["upper(", "abs(", "(", "coalesce(NULL, ", "-(", "NOT ("]),
            deep.clone()
        )
            .prop_map(|(open, n)| format!(
                "SELECT count(*) FROM hotel_stays WHERE {}nights{} IS NOT NULL",
                open.repeat(n),
                ")".repeat(n)
            )),
        // Keywords the parser reads two ways (operator, then function name), nested around an
        // error or not: without a budget each level doubles the parse.
        (
            prop::sample::select(vec![("NOT (", ")"), ("CAST(", " AS INT)"), ("ARRAY[", "]"), ("coalesce(NOT (", "))")]),
            1usize..3_000,
            prop::sample::select(vec!["nights IS NOT NULL", "nights +", "nights > (SELECT"]),
        )
            .prop_map(|((open, close), n, inner)| format!(
                "SELECT count(*) FROM hotel_stays WHERE {}{inner}{}",
                open.repeat(n),
                close.repeat(n)
            )),
        // Nested CASE.
        (1usize..400).prop_map(|n| format!(
            "SELECT sum({}nights{}) FROM hotel_stays",
            "CASE WHEN nights > 1 THEN ".repeat(n),
            " ELSE 0 END".repeat(n)
        )),
        // Wide: long IN lists and many select items.
        (1usize..6_000).prop_map(|n| format!(
            "SELECT district, count(*) FROM hotel_stays WHERE nights IN ({}) GROUP BY district",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        )),
        (1usize..1_500).prop_map(|n| format!(
            "SELECT district, {} FROM hotel_stays GROUP BY district",
            (0..n)
                .map(|i| format!("sum(nights + {i}) AS s{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        // Long literals, in comparisons and as function arguments.
        (1usize..70_000, prop::sample::select(vec!["x", "洱", "'", "%"])).prop_map(|(n, c)| {
            let lit = c.repeat(n).replace('\'', "''");
            format!("SELECT district, count(*) FROM hotel_stays WHERE hotel_name LIKE '{lit}' GROUP BY district")
        }),
        // Nested subqueries: scalar, IN, EXISTS, derived tables, CTE chains.
        (1usize..40).prop_map(|n| format!(
            "SELECT count(*) FROM hotel_stays WHERE nights > {}1{}",
            "(SELECT ".repeat(n),
            ")".repeat(n)
        )),
        (1usize..40).prop_map(|n| format!(
            "SELECT district, count(*) FROM hotel_stays WHERE nights IN {}SELECT nights FROM hotel_stays{} GROUP BY district",
            "(SELECT nights FROM hotel_stays WHERE nights IN ".repeat(n),
            ")".repeat(n + 1)
        ).replacen("IN SELECT", "IN (SELECT", 1)),
        (1usize..40).prop_map(|n| format!(
            "SELECT count(*) FROM hotel_stays h WHERE {}1 = 1{}",
            "EXISTS (SELECT 1 FROM hotel_stays WHERE ".repeat(n),
            ")".repeat(n)
        )),
        (1usize..40).prop_map(|n| format!(
            "SELECT district, count(*) FROM {}hotel_stays{} GROUP BY district",
            "(SELECT * FROM ".repeat(n),
            (0..n).map(|i| format!(") d{i}")).collect::<String>()
        )),
        (1usize..60).prop_map(|n| {
            let mut q = String::from("WITH c0 AS (SELECT district, hotel_name AS x FROM hotel_stays)");
            for i in 1..n {
                q += &format!(", c{i} AS (SELECT district, x || x AS x FROM c{})", i - 1);
            }
            q + &format!(" SELECT district, count(*) FROM c{} WHERE length(x) > 0 GROUP BY district", n - 1)
        }),
        // Amplifying functions with data-chosen or huge sizes.
        (
            prop::sample::select(vec!["repeat(hotel_name, {})", "lpad(hotel_name, {})", "rpad(hotel_name, {}, 'ab')", "concat(repeat(hotel_name, {}), repeat(hotel_name, {}))"]),
            prop::sample::select(vec!["2000000000", "20000", "nights * 100000", "-1", "CAST(spend_yuan AS BIGINT) * 1000"])
        )
            .prop_map(|(f, n)| format!(
                "SELECT district, count(*) FROM hotel_stays WHERE length({}) > 0 GROUP BY district",
                f.replace("{}", n)
            )),
    ]
}

/// Panic text must never reach a client, whatever failed.
fn assert_no_panic_text(sql: &str, err: &impl std::fmt::Display) {
    let text = err.to_string();
    assert!(
        !text.contains("panicked")
            && !text.contains("RUST_BACKTRACE")
            && !text.contains("thread '"),
        "panic text in the error for {}…: {text}",
        sql.chars().take(120).collect::<String>()
    );
}

/// Runs `cases` inputs; returns how many were (planned and refused, planned and allowed).
fn run(
    rt: &tokio::runtime::Runtime,
    sb: &Sandbox,
    strategy: impl Strategy<Value = String>,
    cases: u32,
) -> (u32, u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let refused = std::cell::Cell::new(0);
    let allowed = std::cell::Cell::new(0);
    runner
        .run(&strategy, |sql| {
            // Err is fine (a refusal or a planning error); a panic fails the test.
            match rt.block_on(sb.check(&sql, true)) {
                Ok((_, verdict, _)) if verdict.allowed() => {
                    allowed.set(allowed.get() + 1);
                    match rt.block_on(sb.prepare(&sql, 2)) {
                        Ok(q) => {
                            if let Err(e) = rt.block_on(sb.execute(&q)) {
                                assert_no_panic_text(&sql, &e);
                            }
                        }
                        Err(e) => assert_no_panic_text(&sql, &e),
                    }
                }
                Ok(_) => refused.set(refused.get() + 1),
                Err(e) => assert_no_panic_text(&sql, &e),
            }
            Ok(())
        })
        .expect("no input may panic the checker");
    (refused.get(), allowed.get())
}

/// A sandbox over the demo tables generated from `seed` (200 stays), in a directory that lives
/// as long as the returned guard.
fn demo_sandbox(rt: &tokio::runtime::Runtime, seed: u64) -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let engine =
        Engine::new(dir.path(), master, Limits::default(), Default::default()).expect("engine");
    let tables = store_demo_tables(
        &engine,
        demo_data::generate(seed, Sizes::with_stays(200)).expect("data"),
    )
    .expect("store");
    let sb = rt
        .block_on(engine.sandbox(&tables, "fuzz"))
        .expect("sandbox");
    (dir, sb)
}

#[test]
fn generated_sql_never_panics_the_checker() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_dir, sb) = demo_sandbox(&rt, 3);
    let (refused, allowed) = run(&rt, &sb, query(), 400);
    // The generator must reach the checker, on both sides of it.
    assert!(
        refused > 50 && allowed > 0,
        "refused {refused}, allowed {allowed}"
    );
    run(&rt, &sb, mutated(), 300);
    run(&rt, &sb, ".{0,200}", 200);
}

#[test]
fn hostile_shapes_never_panic_the_planner_the_checker_or_a_run() {
    // The sandbox's own thread stacks, as the server has them: whatever recursion a shape
    // causes must be bounded before it reaches them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, sb) = demo_sandbox(&rt, 5);
    let (refused, allowed) = run(&rt, &sb, hostile(), 120);
    // Many shapes stay within the bounds and must run (bounded), not only be refused.
    assert!(allowed >= 10, "refused {refused}, allowed {allowed}");
}
