//! Properties of the release rules, against a brute-force reference written here: for random
//! small datasets and generated queries — conditional aggregates (CASE, FILTER, offsets,
//! averages, variances), WHERE, HAVING, ROLLUP, scalar subqueries — every row the engine
//! releases is computed from groups and condition sides of at least k units (both sides of
//! every condition), its subqueries' populations hold at least k units, and its group differs
//! from every earlier release over the same dataset by none or by k units or more. The
//! reference computes populations straight from the generated rows, not through the engine.
//! A query may also be refused, or have rows suppressed: the properties bound what comes out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use erhai_devkit::demo::store_table;
use erhai_engine::LinearAudit;
use erhai_engine::{
    Disclosure, EarlierRow, Engine, Limits, MasterKey, Releases, RowUnits, StoredTable,
};
use erhai_policies::ReleaseRules;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const K: usize = 5;
const DISTRICTS: [&str; 4] = ["甲", "乙", "丙", "丁"];

const POLICY: &str = r#"
privacy_unit = "id"
[columns.id]
kind = "id_card"
grade = "important"
uses = "identifier"
[columns.district]
kind = "dimension"
grade = "general"
uses = "dimension"
[columns.gender]
kind = "dimension"
grade = "general"
personal = true
uses = "dimension"
[columns.birth_year]
kind = "quasi_identifier"
grade = "general"
uses = "dimension"
[columns.nights]
kind = "measure"
grade = "general"
uses = "measure"
[columns.spend]
kind = "measure"
grade = "general"
uses = "measure"
"#;

#[derive(Clone, Debug)]
struct Row {
    unit: usize,
    district: &'static str,
    gender: &'static str,
    birth_year: i32,
    nights: i32,
    spend: i64,
}

fn dataset(rng: &mut ChaCha8Rng) -> Vec<Row> {
    let persons = rng.random_range(60..240);
    let mut rows = Vec::new();
    for unit in 0..persons {
        let gender = if rng.random_bool(0.5) { "男" } else { "女" };
        let birth_year = 1950 + rng.random_range(0..40);
        for _ in 0..rng.random_range(1..=3) {
            rows.push(Row {
                unit,
                district: DISTRICTS[rng.random_range(0..DISTRICTS.len())],
                gender,
                birth_year,
                nights: rng.random_range(1..8),
                spend: rng.random_range(1..500),
            });
        }
    }
    rows
}

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("gender", DataType::Utf8, false),
        Field::new("birth_year", DataType::Int32, false),
        Field::new("nights", DataType::Int32, false),
        Field::new("spend", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("U{:04}", r.unit)),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.district),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.gender))),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.birth_year),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.nights))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.spend))),
        ],
    )
    .expect("batch")
}

/// A condition on one row, as SQL and as the reference evaluates it.
#[derive(Clone, Debug)]
enum Cond {
    Gender(&'static str),
    BornBefore(i32),
    District(&'static str),
    NightsAbove(i32),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn random(rng: &mut ChaCha8Rng, depth: u32) -> Cond {
        match rng.random_range(0..if depth > 1 { 4 } else { 6 }) {
            0 => Cond::Gender(if rng.random_bool(0.5) { "男" } else { "女" }),
            1 => Cond::BornBefore(1950 + rng.random_range(0..40)),
            2 => Cond::District(DISTRICTS[rng.random_range(0..DISTRICTS.len())]),
            3 => Cond::NightsAbove(rng.random_range(0..7)),
            4 => Cond::And(
                Box::new(Cond::random(rng, depth + 1)),
                Box::new(Cond::random(rng, depth + 1)),
            ),
            _ => Cond::Not(Box::new(Cond::random(rng, depth + 1))),
        }
    }

    fn sql(&self) -> String {
        match self {
            Cond::Gender(g) => format!("gender = '{g}'"),
            Cond::BornBefore(y) => format!("birth_year < {y}"),
            Cond::District(d) => format!("district = '{d}'"),
            Cond::NightsAbove(n) => format!("nights > {n}"),
            Cond::And(a, b) => format!("({} AND {})", a.sql(), b.sql()),
            Cond::Not(a) => format!("NOT ({})", a.sql()),
        }
    }

    fn holds(&self, r: &Row) -> bool {
        match self {
            Cond::Gender(g) => r.gender == *g,
            Cond::BornBefore(y) => r.birth_year < *y,
            Cond::District(d) => r.district == *d,
            Cond::NightsAbove(n) => r.nights > *n,
            Cond::And(a, b) => a.holds(r) && b.holds(r),
            Cond::Not(a) => !a.holds(r),
        }
    }
}

/// An aggregate: its SQL, and the condition that splits its rows (if any).
#[derive(Clone, Debug)]
enum Agg {
    CountStar,
    Sum,
    CountCase(Cond),
    SumCase(Cond),
    SumOffset(Cond, i64),
    AvgCase(Cond),
    CountFilter(Cond),
    VarCase(Cond),
}

impl Agg {
    fn random(rng: &mut ChaCha8Rng) -> Agg {
        let c = Cond::random(rng, 0);
        match rng.random_range(0..8) {
            0 => Agg::CountStar,
            1 => Agg::Sum,
            2 => Agg::CountCase(c),
            3 => Agg::SumCase(c),
            4 => Agg::SumOffset(c, rng.random_range(1..100_000)),
            5 => Agg::AvgCase(c),
            6 => Agg::CountFilter(c),
            _ => Agg::VarCase(c),
        }
    }

    fn sql(&self) -> String {
        match self {
            Agg::CountStar => "count(*)".into(),
            Agg::Sum => "sum(spend)".into(),
            Agg::CountCase(c) => format!("count(CASE WHEN {} THEN 1 END)", c.sql()),
            Agg::SumCase(c) => format!("sum(CASE WHEN {} THEN spend ELSE 0 END)", c.sql()),
            Agg::SumOffset(c, o) => {
                format!("sum(CASE WHEN {} THEN spend + {o} ELSE {o} END)", c.sql())
            }
            Agg::AvgCase(c) => format!("avg(CASE WHEN {} THEN nights END)", c.sql()),
            Agg::CountFilter(c) => format!("count(*) FILTER (WHERE {})", c.sql()),
            Agg::VarCase(c) => format!("var_pop(CASE WHEN {} THEN nights ELSE 0 END)", c.sql()),
        }
    }

    fn condition(&self) -> Option<&Cond> {
        match self {
            Agg::CountStar | Agg::Sum => None,
            Agg::CountCase(c)
            | Agg::SumCase(c)
            | Agg::SumOffset(c, _)
            | Agg::AvgCase(c)
            | Agg::CountFilter(c)
            | Agg::VarCase(c) => Some(c),
        }
    }
}

#[derive(Clone, Debug)]
struct Query {
    grouped: bool,
    rollup: bool,
    filter: Option<Cond>,
    aggs: Vec<Agg>,
    having: Option<i64>,
    subquery: Option<Cond>,
}

impl Query {
    fn random(rng: &mut ChaCha8Rng) -> Query {
        let grouped = rng.random_bool(0.7);
        Query {
            grouped,
            rollup: grouped && rng.random_bool(0.3),
            filter: rng.random_bool(0.5).then(|| Cond::random(rng, 0)),
            aggs: (0..rng.random_range(1..=3))
                .map(|_| Agg::random(rng))
                .collect(),
            having: (grouped && rng.random_bool(0.2)).then(|| rng.random_range(0..20)),
            subquery: rng.random_bool(0.15).then(|| Cond::random(rng, 0)),
        }
    }

    fn sql(&self) -> String {
        let mut select = Vec::new();
        if self.grouped {
            select.push("district".to_string());
        }
        for (i, a) in self.aggs.iter().enumerate() {
            select.push(format!("{} AS a{i}", a.sql()));
        }
        if let Some(s) = &self.subquery {
            select.push(format!(
                "(SELECT sum(spend) FROM t WHERE {}) AS sq",
                s.sql()
            ));
        }
        let mut q = format!("SELECT {} FROM t", select.join(", "));
        if let Some(f) = &self.filter {
            q.push_str(&format!(" WHERE {}", f.sql()));
        }
        if self.grouped {
            q.push_str(if self.rollup {
                " GROUP BY ROLLUP(district)"
            } else {
                " GROUP BY district"
            });
        }
        if let Some(h) = self.having {
            q.push_str(&format!(" HAVING count(*) > {h}"));
        }
        q
    }
}

fn units<'a>(rows: impl Iterator<Item = &'a Row>) -> BTreeSet<usize> {
    rows.map(|r| r.unit).collect()
}

/// Earlier releases, kept as a ledger would: every released row's populations, and the linear
/// audit of their figures.
#[derive(Default)]
struct Ledger {
    rows: Mutex<Vec<EarlierRow>>,
    audit: Mutex<LinearAudit>,
}

impl Releases for Ledger {
    fn lookup(
        &self,
        _: &str,
        _: &[u32],
    ) -> Result<(Vec<EarlierRow>, bool), erhai_engine::ReleasesError> {
        Ok((self.rows.lock().map_err(|e| e.to_string())?.clone(), true))
    }
    fn audit(&self, _: &str) -> Result<Option<LinearAudit>, erhai_engine::ReleasesError> {
        Ok(Some(self.audit.lock().map_err(|e| e.to_string())?.clone()))
    }
}

impl Ledger {
    fn release(&self, job: &str, units: &[RowUnits]) {
        let released: Vec<&RowUnits> = units.iter().filter(|u| u.released_row.is_some()).collect();
        let mut rows = self.rows.lock().expect("ledger");
        for u in &released {
            for p in &u.sets {
                rows.push(EarlierRow {
                    job: job.to_string(),
                    row: u.row,
                    released: true,
                    group: p.source == erhai_engine::Source::Group,
                    fingerprint: p.fingerprint,
                    set: p.set.clone(),
                });
            }
        }
        let figures: Vec<&erhai_engine::UnitSet> = released
            .iter()
            .flat_map(|u| u.sets.iter().filter(|p| p.figure).map(|p| &p.set))
            .collect();
        self.audit.lock().expect("audit").record(&figures);
    }
}

/// What a run saw: queries answered, rows released.
struct Seen {
    answered: usize,
    released: usize,
}

/// Runs the generated queries on an engine enforcing `engine_k`, checking every released row
/// against the reference at [`K`]; the first violation comes back as the error.
async fn run(engine_k: u64, seeds: u64) -> Result<Seen, String> {
    let mut checked = 0usize;
    let mut released_rows = 0usize;
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data = dataset(&mut rng);
        let dir = tempfile::tempdir().expect("tempdir");
        let master = MasterKey::create(&dir.path().join("master.key")).expect("key");
        let rules = ReleaseRules {
            k: engine_k,
            ..ReleaseRules::default()
        };
        let engine =
            Engine::new(dir.path(), master, Limits::default(), rules.clone()).expect("engine");
        let table: StoredTable =
            store_table(&engine, &format!("ds{seed}"), "t", POLICY, &[batch(&data)])
                .expect("store");
        let tables = vec![table];
        let ledger = Ledger::default();
        // The whole dataset counts as released (its row count is public).
        let (whole, fp) = engine.whole_population(&tables[0]).await.expect("whole");
        ledger.rows.lock().expect("ledger").push(EarlierRow {
            job: "registered".into(),
            row: 0,
            released: true,
            group: true,
            fingerprint: fp,
            set: whole.clone(),
        });
        ledger.audit.lock().expect("audit").record(&[&whole]);
        // Reference populations of every released group so far, for differencing.
        let mut earlier: Vec<BTreeSet<usize>> = vec![units(data.iter())];
        for q in 0..45 {
            let query = Query::random(&mut rng);
            let sql = query.sql();
            let job = format!("p{seed}-{q}");
            let disclosure = Disclosure::Checked(rules.clone());
            let outcome = match engine.prepare(&sql, &tables, "prop", disclosure).await {
                Ok(prepared) => engine.run(&job, prepared, &ledger).await,
                Err(e) => Err(e),
            };
            // Refused or not answerable: nothing comes out.
            let Ok(outcome) = outcome else { continue };
            checked += 1;
            let (_, batches) = engine
                .read_result(&job, &outcome.result_wrapped_key)
                .expect("result");
            let passing: Vec<&Row> = data
                .iter()
                .filter(|r| query.filter.as_ref().is_none_or(|f| f.holds(r)))
                .collect();
            let mut new_groups = Vec::new();
            for b in &batches {
                for i in 0..b.num_rows() {
                    released_rows += 1;
                    let district = if query.grouped {
                        let col = b.column(0).as_string::<i32>();
                        (!col.is_null(i)).then(|| col.value(i).to_string())
                    } else {
                        None
                    };
                    let rows: Vec<&Row> = passing
                        .iter()
                        .copied()
                        .filter(|r| district.as_deref().is_none_or(|d| r.district == d))
                        .collect();
                    let group = units(rows.iter().copied());
                    if group.len() < K {
                        return Err(format!(
                            "{sql}\n  released a group of {} units",
                            group.len()
                        ));
                    }
                    for a in &query.aggs {
                        if let Some(c) = a.condition() {
                            let yes = units(rows.iter().copied().filter(|r| c.holds(r)));
                            let no = units(rows.iter().copied().filter(|r| !c.holds(r)));
                            if yes.len() < K || no.len() < K {
                                return Err(format!(
                                    "{sql}\n  released {} with {} / {} units on the sides of {}",
                                    a.sql(),
                                    yes.len(),
                                    no.len(),
                                    c.sql()
                                ));
                            }
                        }
                    }
                    if let Some(s) = &query.subquery {
                        let sub = units(data.iter().filter(|r| s.holds(r)));
                        if sub.len() < K {
                            return Err(format!("{sql}\n  subquery of {} units", sub.len()));
                        }
                    }
                    for e in &earlier {
                        let d = group.symmetric_difference(e).count();
                        if d != 0 && d < K {
                            return Err(format!(
                                "{sql}\n  released a group differing from an earlier one by {d}"
                            ));
                        }
                    }
                    new_groups.push(group);
                }
            }
            // Released (the reviewer approves whatever passes): later queries are compared.
            ledger.release(&job, &outcome.units);
            earlier.extend(new_groups);
        }
    }
    Ok(Seen {
        answered: checked,
        released: released_rows,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_cells_meet_the_rules_on_the_reference_populations() {
    let seen = match run(K as u64, 6).await {
        Ok(seen) => seen,
        Err(violation) => panic!("{violation}"),
    };
    // The generator must reach the rules: most queries answered, many rows out.
    assert!(
        seen.answered >= 150,
        "only {} queries answered",
        seen.answered
    );
    assert!(seen.released >= 80, "only {} rows released", seen.released);
}

/// The reference is not vacuous: an engine enforcing a smaller k is caught releasing cells
/// the reference counts under K units.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_catches_an_engine_with_a_smaller_k() {
    let caught = run(2, 6).await.err();
    assert!(
        caught.is_some(),
        "an engine at k=2 passed the k={K} reference"
    );
}
