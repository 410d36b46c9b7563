//! The red team's world: the real server on 127.0.0.1 with TLS, two tenants, a reviewer who
//! approves whatever the checks let through (and a second one when two are needed), and a
//! dataset of 400 persons with one planted target whose quasi-identifiers are unique. Every
//! attack gets datasets and scenarios of its own, so that no attack is stopped by what another
//! released.

use std::sync::Arc;

use arrow::array::{Date32Array, Decimal128Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use erhai_client::{Client, ClientError};
use erhai_devkit::demo::{
    Platform, application_for_datasets, authorize_datasets, authorize_scenario,
};
use erhai_devkit::demo_data::{HOTEL_STAYS_POLICY, SCENIC_ENTRIES_POLICY};
use erhai_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What the attacker knows of the target: unique among the 400.
pub const TARGET: &str = "birth_year = 1961 AND gender = '男' AND home_city = '北京市'";
/// The same, for a table aliased `h`.
pub const TARGET_H: &str = "h.birth_year = 1961 AND h.gender = '男' AND h.home_city = '北京市'";

/// The target's secrets, as the released rows would print them.
pub struct Truth {
    /// Spend of the target's one stay (the largest of the dataset).
    pub spend: &'static str,
    /// Nights of that stay.
    pub nights: &'static str,
    /// Its district.
    pub district: &'static str,
    /// The scenic spot the target visited.
    pub spot: &'static str,
}

pub const TRUTH: Truth = Truth {
    spend: "4321.00",
    nights: "3",
    district: "大理市",
    spot: "苍山",
};

const DISTRICTS: [&str; 12] = [
    "大理市",
    "祥云县",
    "宾川县",
    "弥渡县",
    "南涧县",
    "巍山县",
    "永平县",
    "云龙县",
    "洱源县",
    "剑川县",
    "鹤庆县",
    "漾濞县",
];
const CITIES: [(&str, &str); 8] = [
    ("北京市", "北京市"),
    ("上海市", "上海市"),
    ("昆明市", "云南省"),
    ("大理市", "云南省"),
    ("成都市", "四川省"),
    ("广州市", "广东省"),
    ("杭州市", "浙江省"),
    ("西安市", "陕西省"),
];
const HOTELS: [&str; 10] = [
    "洱海客栈",
    "苍山酒店",
    "古城驿站",
    "喜洲客栈",
    "双廊酒店",
    "沙溪客栈",
    "巍山驿站",
    "剑川酒店",
    "宾川客栈",
    "祥云酒店",
];
const SPOTS: [&str; 6] = ["苍山", "洱海", "崇圣寺三塔", "蝴蝶泉", "鸡足山", "石宝山"];

/// Persons in the dataset.
pub const PERSONS: usize = 400;

/// One stay: id, name, id number, gender, birth year, province, city, hotel, district, day,
/// nights, spend (cents).
type Stay = (
    String,
    String,
    String,
    &'static str,
    i32,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i32,
    i32,
    i128,
);

/// One visit: id, id number, spot, district, day, ticket (cents).
type Visit = (String, String, &'static str, &'static str, i32, i128);

/// The two tables of one attack: stays (like `hotel_stays`) and visits (like
/// `scenic_entries`), as record batches.
pub fn tables() -> (RecordBatch, RecordBatch) {
    let mut rng = ChaCha8Rng::seed_from_u64(1961);
    let days = |m: u32, d: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, m, d)
            .map(|x| {
                (x - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
                    as i32
            })
            .unwrap_or(0)
    };
    let mut stays: Vec<Stay> = Vec::new();
    let mut visits: Vec<Visit> = Vec::new();
    for p in 0..PERSONS {
        let id = format!("5329011961{p:08}");
        let target = p == 0;
        let (gender, birth_year, city) = if target {
            ("男", 1961, CITIES[0])
        } else {
            let gender = if rng.random_bool(0.5) { "男" } else { "女" };
            let mut by = 1950 + rng.random_range(0..45);
            let city = CITIES[rng.random_range(0..CITIES.len())];
            // The target's combination is his alone.
            if by == 1961 && gender == "男" && city.0 == "北京市" {
                by = 1962;
            }
            (gender, by, city)
        };
        let n_stays = if target { 1 } else { rng.random_range(1..=3) };
        for s in 0..n_stays {
            let (district, hotel, day, nights, spend) = if target {
                ("大理市", "洱海客栈", days(3, 15), 3, 432_100)
            } else {
                (
                    DISTRICTS[rng.random_range(0..DISTRICTS.len())],
                    HOTELS[rng.random_range(0..HOTELS.len())],
                    days(rng.random_range(1..=6), rng.random_range(1..=28)),
                    rng.random_range(1..=7),
                    rng.random_range(20_000..300_000) as i128,
                )
            };
            stays.push((
                format!("S{p:05}{s}"),
                format!("旅客{p:03}"),
                id.clone(),
                gender,
                birth_year,
                city.1,
                city.0,
                hotel,
                district,
                day,
                nights,
                spend,
            ));
        }
        let n_visits = if target { 1 } else { rng.random_range(0..=2) };
        for v in 0..n_visits {
            let (spot, day, ticket) = if target {
                ("苍山", days(3, 16), 7_500)
            } else {
                (
                    SPOTS[rng.random_range(0..SPOTS.len())],
                    days(rng.random_range(1..=6), rng.random_range(1..=28)),
                    rng.random_range(3_000..20_000) as i128,
                )
            };
            visits.push((
                format!("E{p:05}{v}"),
                id.clone(),
                spot,
                DISTRICTS[p % DISTRICTS.len()],
                day,
                ticket,
            ));
        }
    }
    let decimal = |v: Vec<i128>| {
        Decimal128Array::from(v)
            .with_precision_and_scale(12, 2)
            .expect("decimal")
    };
    let stays_schema = Arc::new(Schema::new(vec![
        Field::new("stay_id", DataType::Utf8, false),
        Field::new("guest_name", DataType::Utf8, false),
        Field::new("id_number", DataType::Utf8, false),
        Field::new("phone", DataType::Utf8, false),
        Field::new("gender", DataType::Utf8, false),
        Field::new("birth_year", DataType::Int32, false),
        Field::new("home_province", DataType::Utf8, false),
        Field::new("home_city", DataType::Utf8, false),
        Field::new("hotel_name", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("checkin_date", DataType::Date32, false),
        Field::new("nights", DataType::Int32, false),
        Field::new("spend_yuan", DataType::Decimal128(12, 2), false),
    ]));
    let stays_batch = RecordBatch::try_new(
        stays_schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                stays.iter().map(|s| s.0.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                stays.iter().map(|s| s.1.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                stays.iter().map(|s| s.2.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                stays.iter().map(|s| format!("139{}", &s.2[10..])),
            )),
            Arc::new(StringArray::from_iter_values(stays.iter().map(|s| s.3))),
            Arc::new(Int32Array::from_iter_values(stays.iter().map(|s| s.4))),
            Arc::new(StringArray::from_iter_values(stays.iter().map(|s| s.5))),
            Arc::new(StringArray::from_iter_values(stays.iter().map(|s| s.6))),
            Arc::new(StringArray::from_iter_values(stays.iter().map(|s| s.7))),
            Arc::new(StringArray::from_iter_values(stays.iter().map(|s| s.8))),
            Arc::new(Date32Array::from_iter_values(stays.iter().map(|s| s.9))),
            Arc::new(Int32Array::from_iter_values(stays.iter().map(|s| s.10))),
            Arc::new(decimal(stays.iter().map(|s| s.11).collect())),
        ],
    )
    .expect("stays");
    let visits_schema = Arc::new(Schema::new(vec![
        Field::new("entry_id", DataType::Utf8, false),
        Field::new("id_number", DataType::Utf8, false),
        Field::new("spot_name", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("entry_date", DataType::Date32, false),
        Field::new("ticket_yuan", DataType::Decimal128(12, 2), false),
    ]));
    let visits_batch = RecordBatch::try_new(
        visits_schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                visits.iter().map(|v| v.0.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                visits.iter().map(|v| v.1.clone()),
            )),
            Arc::new(StringArray::from_iter_values(visits.iter().map(|v| v.2))),
            Arc::new(StringArray::from_iter_values(visits.iter().map(|v| v.3))),
            Arc::new(Date32Array::from_iter_values(visits.iter().map(|v| v.4))),
            Arc::new(decimal(visits.iter().map(|v| v.5).collect())),
        ],
    )
    .expect("visits");
    (stays_batch, visits_batch)
}

/// Who runs a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The analyst, in the attack's main scenario.
    Analyst,
    /// The same analyst, in a second scenario over the same datasets.
    OtherScenario,
    /// A colleague of the same tenant, in the main scenario.
    Colleague,
    /// An analyst of another tenant, in that tenant's scenario over the same datasets.
    OtherTenant,
    /// The analyst in development (samples, rows at once, no review).
    Dev,
}

/// One query of an attack. `{T}` and `{V}` stand for the attack's stays and visits tables.
#[derive(Clone, Debug)]
pub struct Step {
    pub who: Who,
    pub sql: String,
}

/// What came of one step, as the attacker sees it.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Refused at submission (the plan check: data-independent), with the reason.
    Refused(String),
    /// Accepted, but nothing was released (suppressed everything, failed, or withdrawn).
    Nothing,
    /// Released rows (cells as text).
    Rows(Vec<Vec<String>>),
}

impl Outcome {
    /// The released rows, if any.
    pub fn rows(&self) -> Option<&Vec<Vec<String>>> {
        match self {
            Outcome::Rows(r) => Some(r),
            _ => None,
        }
    }

    /// The one cell of a one-row, one-column release.
    pub fn scalar(&self) -> Option<String> {
        self.rows()
            .and_then(|r| r.first())
            .and_then(|r| r.first())
            .cloned()
    }

    /// Column `col` of the row whose first cell is `key`.
    pub fn cell(&self, key: &str, col: usize) -> Option<String> {
        self.rows()?
            .iter()
            .find(|r| r.first().map(String::as_str) == Some(key))
            .and_then(|r| r.get(col).cloned())
    }

    /// Column `col` of every released row, by its first cell.
    pub fn column(&self, col: usize) -> Vec<(String, String)> {
        self.rows()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| Some((r.first()?.clone(), r.get(col)?.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The running platform and its users.
pub struct World {
    pub p: Platform,
    analyst: Client,
    colleague: Client,
    outsider: Client,
    reviewer: Client,
    reviewer2: Client,
    stays: RecordBatch,
    visits: RecordBatch,
    n: usize,
}

/// The scenarios and tables of one attack.
pub struct Scope {
    pub stays: String,
    pub visits: String,
    main: String,
    second: String,
    outsider: String,
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl World {
    pub async fn start() -> World {
        let p = crate::common::platform_with_users(|_| {}).await;
        p.add_user("reviewer2", "第二审核", "reviewer", "", "")
            .await
            .expect("reviewer2");
        p.add_user("outsider", "外部分析", "analyst", "erhai-insight", "")
            .await
            .expect("outsider");
        let (stays, visits) = tables();
        World {
            analyst: p.client("analyst").await.expect("analyst"),
            colleague: p.client("analyst2").await.expect("analyst2"),
            outsider: p.client("outsider").await.expect("outsider"),
            reviewer: p.client("reviewer").await.expect("reviewer"),
            reviewer2: p.client("reviewer2").await.expect("reviewer2"),
            p,
            stays,
            visits,
            n: 0,
        }
    }

    /// Fresh copies of the two tables and scenarios over them.
    pub async fn scope(&mut self) -> Scope {
        self.n += 1;
        let n = self.n;
        let stays = format!("stays{n}");
        let visits = format!("visits{n}");
        self.p
            .client("provider")
            .await
            .expect("provider")
            .register(
                &stays,
                "planted",
                HOTEL_STAYS_POLICY,
                self.stays.schema(),
                vec![self.stays.clone()],
            )
            .await
            .expect("register stays");
        self.p
            .client("provider-scenic")
            .await
            .expect("provider")
            .register(
                &visits,
                "planted",
                SCENIC_ENTRIES_POLICY,
                self.visits.schema(),
                vec![self.visits.clone()],
            )
            .await
            .expect("register visits");
        let main = format!("rt{n}");
        let second = format!("rt{n}b");
        let outsider = format!("rt{n}x");
        authorize_datasets(&self.p, &main, &[&stays, &visits])
            .await
            .expect("scenario");
        authorize_datasets(&self.p, &second, &[&stays, &visits])
            .await
            .expect("second scenario");
        let app = application_for_datasets(&self.p, &outsider, &[&stays, &visits])
            .await
            .expect("application");
        authorize_scenario(&self.p, "outsider", app, &[], false)
            .await
            .expect("outsider scenario");
        Scope {
            stays,
            visits,
            main,
            second,
            outsider,
        }
    }

    /// Runs one step as the attacker would, with a reviewer who approves whatever passes;
    /// checks on the way that nothing data-dependent reaches the analyst before the decision.
    pub async fn run(&self, scope: &Scope, step: &Step) -> Outcome {
        let sql = step
            .sql
            .replace("{T}", &scope.stays)
            .replace("{V}", &scope.visits);
        let (client, scenario) = match step.who {
            Who::Analyst | Who::Dev => (&self.analyst, &scope.main),
            Who::OtherScenario => (&self.analyst, &scope.second),
            Who::Colleague => (&self.colleague, &scope.main),
            Who::OtherTenant => (&self.outsider, &scope.outsider),
        };
        if step.who == Who::Dev {
            return match client.run_dev(scenario, &sql).await {
                Ok((_, schema, batches)) => table(&schema, &batches),
                Err(ClientError::Status(s)) => Outcome::Refused(s.message().to_string()),
                Err(e) => panic!("dev query: {e}"),
            };
        }
        let job = match client.submit(scenario, &sql).await {
            Ok(job) => job,
            Err(ClientError::Status(s)) => return Outcome::Refused(s.message().to_string()),
            Err(e) => panic!("submit: {e}"),
        };
        blind(&job, "at submission");
        let ran = self.reviewer.finished(&job.id, WAIT).await.expect("run");
        if std::env::var_os("ERHAI_REDTEAM_VERBOSE").is_some() {
            eprintln!("{sql}\n  {:?}\n  {}", ran.report, ran.error);
        }
        blind(&client.job(&job.id).await.expect("job"), "after the run");
        match ran.state.as_str() {
            "awaiting_review" => {
                // The reviewer approves whatever the checks let through.
                let first = self.reviewer.decide(&job.id, true, "looks fine").await;
                if let Ok(j) = &first
                    && j.state == "awaiting_review"
                {
                    let _ = self.reviewer2.decide(&job.id, true, "agreed").await;
                }
            }
            "failed" => {
                let _ = self.reviewer.decide(&job.id, false, "the run failed").await;
            }
            other => panic!("job {} ran to {other}", job.id),
        }
        let seen = client.job(&job.id).await.expect("job");
        assert!(
            seen.report.is_none() && seen.error.is_empty() && seen.finished_at_ms == 0,
            "the analyst sees a report, an error or a finishing time: {seen:?}"
        );
        match seen.state.as_str() {
            "released" => match client.fetch(&job.id).await {
                Ok((schema, batches)) => table(&schema, &batches),
                Err(e) => panic!("fetch: {e}"),
            },
            "rejected" => Outcome::Nothing,
            other => panic!("after review the analyst sees {other}"),
        }
    }

    /// The server still answers (no request took it down).
    pub async fn alive(&self) -> bool {
        self.analyst.whoami().await.is_ok()
    }
}

/// The analyst's view before a decision: accepted, nothing else.
fn blind(job: &pb::Job, when: &str) {
    assert!(
        job.state == "awaiting_review"
            && job.report.is_none()
            && job.error.is_empty()
            && job.finished_at_ms == 0,
        "{when}, the analyst's view depends on the run: {job:?}"
    );
}

fn table(schema: &arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Outcome {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let _ = schema;
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let f: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            rows.push(f.iter().map(|x| x.value(r).to_string()).collect());
        }
    }
    Outcome::Rows(rows)
}
