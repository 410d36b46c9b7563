//! Generated SQL fed to the planner and the checker must never panic: every input ends in a
//! verdict or an error. Structured queries are built from the demo schema's columns, functions
//! and clauses; a second strategy mutates them and a third sends arbitrary text.

use erhai::demo::store_demo_tables;
use erhai::demo_data::{self, Sizes};
use erhai_engine::{Engine, Limits, MasterKey, Sandbox};
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
            if let Ok((_, verdict, _)) = rt.block_on(sb.check(&sql, true)) {
                if verdict.allowed() {
                    allowed.set(allowed.get() + 1);
                    let _ = rt.block_on(sb.prepare(&sql, 2));
                } else {
                    refused.set(refused.get() + 1);
                }
            }
            Ok(())
        })
        .expect("no input may panic the checker");
    (refused.get(), allowed.get())
}

#[test]
fn generated_sql_never_panics_the_checker() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
    let engine =
        Engine::new(dir.path(), master, Limits::default(), Default::default()).expect("engine");
    let tables = store_demo_tables(
        &engine,
        demo_data::generate(3, Sizes::with_stays(200)).expect("data"),
    )
    .expect("store");
    let sb = rt
        .block_on(engine.sandbox(&tables, "fuzz"))
        .expect("sandbox");
    let (refused, allowed) = run(&rt, &sb, query(), 400);
    // The generator must reach the checker, on both sides of it.
    assert!(
        refused > 50 && allowed > 0,
        "refused {refused}, allowed {allowed}"
    );
    run(&rt, &sb, mutated(), 300);
    run(&rt, &sb, ".{0,200}", 200);
}
