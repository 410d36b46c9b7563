//! The attacks, as data: each has its class, its queries (in order, by whom), the secret it is
//! after and the decoding the attacker would run on what comes back. The decoder returns the
//! attacker's conclusion when what was released determines it, and `None` when it does not;
//! the suite fails if any conclusion equals the truth.

use super::world::{Outcome, Step, TARGET, TARGET_H, TRUTH, Truth, Who};

/// What an attack is after.
#[derive(Clone, Copy, Debug)]
pub enum Secret {
    Spend,
    Nights,
    District,
    Spot,
}

impl Secret {
    pub fn of(self, t: &Truth) -> String {
        match self {
            Secret::Spend => t.spend.to_string(),
            Secret::Nights => t.nights.to_string(),
            Secret::District => t.district.to_string(),
            Secret::Spot => t.spot.to_string(),
        }
    }
}

pub struct Attack {
    pub class: &'static str,
    pub name: &'static str,
    pub secret: Secret,
    pub steps: Vec<Step>,
    /// The attacker's conclusion from the outcomes of the steps, in order.
    pub decode: fn(&[Outcome]) -> Option<String>,
}

fn s(who: Who, sql: &str) -> Step {
    Step {
        who,
        sql: sql.replace("{C}", TARGET).replace("{CH}", TARGET_H),
    }
}

fn a(sql: &str) -> Step {
    s(Who::Analyst, sql)
}

fn num(x: &str) -> Option<f64> {
    x.trim().parse().ok()
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

/// The one key whose value in `a` exceeds its value in `b` by exactly `by` (a difference that
/// pins the target to that key); None unless exactly one key does.
fn the_key_differing(a: &Outcome, ca: usize, b: &Outcome, cb: usize, by: f64) -> Option<String> {
    let bs = b.column(cb);
    let hits: Vec<String> = a
        .column(ca)
        .into_iter()
        .filter(|(k, v)| {
            let other = bs.iter().find(|(kb, _)| kb == k).and_then(|(_, x)| num(x));
            matches!((num(v), other), (Some(x), Some(y)) if (x - y - by).abs() < 1e-6)
        })
        .map(|(k, _)| k)
        .collect();
    (hits.len() == 1).then(|| hits[0].clone())
}

/// `a − b` of two one-cell releases, as money.
/// The key (first column) of the one released row that `pick` selects; None unless exactly one
/// row is selected (or nothing was released).
fn the_only_key(o: &Outcome, pick: impl Fn(&[String]) -> bool) -> Option<String> {
    let hits: Vec<&Vec<String>> = o.rows()?.iter().filter(|r| pick(r)).collect();
    (hits.len() == 1).then(|| hits[0][0].clone())
}

fn difference(a: &Outcome, b: &Outcome) -> Option<String> {
    Some(money(num(&a.scalar()?)? - num(&b.scalar()?)?))
}

/// Whether a release happened (any rows): the one bit an oracle gives.
fn released(o: &Outcome) -> bool {
    o.rows().is_some_and(|r| !r.is_empty())
}

/// The bit an oracle pair gives: `Some(true)` when the first query (whose condition holds for
/// the target) came out differently from the second (whose condition does not), `None` when
/// either was refused (a refusal is the plan check's, the same whatever the data).
fn oracle(o: &[Outcome]) -> Option<bool> {
    if o.iter().any(|x| matches!(x, Outcome::Refused(_))) {
        return None;
    }
    Some(released(&o[0]) != released(&o[1]))
}

pub fn all() -> Vec<Attack> {
    let mut v = Vec::new();

    // ---- A. Subqueries: every aggregate in the plan is a release.
    v.push(Attack {
        class: "scalar subquery",
        name: "the target's sum beside every row",
        secret: Secret::Spend,
        steps: vec![a("SELECT district, count(*) AS n, (SELECT sum(spend_yuan) FROM {T} WHERE {C}) AS s FROM {T} GROUP BY district")],
        decode: |o| o[0].rows()?.first()?.get(2).cloned(),
    });
    v.push(Attack {
        class: "scalar subquery",
        name: "the target's nights as a global aggregate in a subquery",
        secret: Secret::Nights,
        steps: vec![a(
            "SELECT count(*) AS n, (SELECT sum(nights) FROM {T} WHERE {C}) AS x FROM {T}",
        )],
        decode: |o| o[0].rows()?.first()?.get(1).cloned(),
    });
    v.push(Attack {
        class: "scalar subquery",
        name: "threshold sweep against the target's spend in WHERE",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE spend_yuan >= (SELECT sum(spend_yuan) FROM {T} WHERE {C})"),
            a("SELECT count(*) AS n FROM {T} WHERE spend_yuan >= 4321.00"),
            a("SELECT count(*) AS n FROM {T} WHERE spend_yuan >= 4321.01"),
        ],
        decode: |o| {
            let (x, at, above) = (o[0].scalar()?, o[1].scalar()?, o[2].scalar()?);
            (x == at && at != above).then(|| "4321.00".to_string())
        },
    });
    v.push(Attack {
        class: "scalar subquery",
        name: "a non-aggregated scalar subquery returns the target's row",
        secret: Secret::Spend,
        steps: vec![a("SELECT count(*) AS n FROM {T} WHERE spend_yuan = (SELECT spend_yuan FROM {T} WHERE {C})")],
        decode: |o| (o[0].scalar()? == "1").then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "IN subquery",
        name: "the target's district through an IN list of computed values",
        secret: Secret::District,
        steps: vec![
            a("SELECT district, count(*) AS n FROM {T} GROUP BY district"),
            a("SELECT count(*) AS n FROM {T} WHERE upper(district) IN (SELECT upper(district) FROM {T} WHERE {C})"),
        ],
        decode: |o| {
            let n = o[1].scalar()?;
            let hits: Vec<_> = o[0].column(1).into_iter().filter(|(_, c)| *c == n).collect();
            (hits.len() == 1).then(|| hits[0].0.clone())
        },
    });
    v.push(Attack {
        class: "IN subquery",
        name: "semi-join on the privacy unit with the target's condition",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(spend_yuan) AS s FROM {T} WHERE id_number IN (SELECT id_number FROM {T} WHERE {C})")],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "EXISTS subquery",
        name: "uncorrelated EXISTS as a yes/no oracle on the spend",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE EXISTS (SELECT 1 FROM {T} WHERE {C} AND spend_yuan > 4320.99)"),
            a("SELECT count(*) AS n FROM {T} WHERE EXISTS (SELECT 1 FROM {T} WHERE {C} AND spend_yuan > 4321.00)"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "EXISTS subquery",
        name: "NOT EXISTS: the released total says whether the condition held",
        secret: Secret::District,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE NOT EXISTS (SELECT 1 FROM {T} WHERE {C} AND district = '大理市')"),
            a("SELECT count(*) AS n FROM {T} WHERE NOT EXISTS (SELECT 1 FROM {T} WHERE {C} AND district = '宾川县')"),
        ],
        decode: |o| oracle(o)?.then(|| "大理市".into()),
    });
    v.push(Attack {
        class: "correlated subquery",
        name: "correlated on a computed value instead of the privacy unit",
        secret: Secret::District,
        steps: vec![a("SELECT h.district, count(*) AS n FROM {T} h WHERE EXISTS (SELECT 1 FROM {T} h2 WHERE h2.birth_year + 0 = h.birth_year AND h2.gender = '男' AND h2.home_city = '北京市' AND h2.birth_year = 1961) GROUP BY h.district")],
        decode: |o| {
            let rows = o[0].rows()?;
            (rows.len() == 1).then(|| rows[0][0].clone())
        },
    });
    v.push(Attack {
        class: "correlated subquery",
        name: "a correlated aggregate per group",
        secret: Secret::Spend,
        steps: vec![a("SELECT h.district, (SELECT sum(h2.spend_yuan) FROM {T} h2 WHERE h2.district = h.district AND h2.birth_year = 1961 AND h2.gender = '男' AND h2.home_city = '北京市') AS s FROM {T} h GROUP BY h.district")],
        decode: |o| o[0].cell("大理市", 1),
    });
    v.push(Attack {
        class: "CTE",
        name: "an aggregate CTE joined to every row",
        secret: Secret::Spend,
        steps: vec![a("WITH t AS (SELECT sum(spend_yuan) AS s FROM {T} WHERE {C}) SELECT h.district, count(*) AS n, sum(t.s) AS s FROM {T} h, t GROUP BY h.district")],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            Some(money(num(&r[2])? / num(&r[1])?))
        },
    });

    // ---- B. Conditional aggregates and hidden conditions.
    v.push(Attack {
        class: "conditional aggregate",
        name: "offset CASE: the constant hides a dominant contribution",
        secret: Secret::Spend,
        steps: vec![a("SELECT district, count(*) AS n, sum(CASE WHEN {C} THEN spend_yuan + 100000 ELSE 100000 END) AS s FROM {T} GROUP BY district")],
        decode: |o| {
            let n = num(&o[0].cell("大理市", 1)?)?;
            Some(money(num(&o[0].cell("大理市", 2)?)? - 100_000.0 * n))
        },
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "count difference between count(*) and a CASE count",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(*) AS n, count(CASE WHEN NOT ({C}) THEN 1 END) AS m FROM {T} GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| num(&r[1]).zip(num(&r[2])).is_some_and(|(a, b)| a - b == 1.0)),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "FILTER complement: count(*) against count(*) FILTER (NOT C)",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(*) AS n, count(*) FILTER (WHERE NOT ({C})) AS m FROM {T} GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| num(&r[1]).zip(num(&r[2])).is_some_and(|(a, b)| a - b == 1.0)),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "the complement sum: sum(x) against sum(CASE WHEN NOT C …)",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(spend_yuan) AS a, sum(CASE WHEN NOT ({C}) THEN spend_yuan ELSE 0 END) AS b FROM {T}")],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            Some(money(num(&r[0])? - num(&r[1])?))
        },
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "variance of a conditional solves to the value",
        secret: Secret::Nights,
        steps: vec![a(
            "SELECT count(*) AS n, var_pop(CASE WHEN {C} THEN nights ELSE 0 END) AS v FROM {T}",
        )],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            let (n, var) = (num(&r[0])?, num(&r[1])?);
            Some(format!(
                "{}",
                (var / (1.0 / n - 1.0 / (n * n))).sqrt().round()
            ))
        },
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "stddev of a conditional",
        secret: Secret::Nights,
        steps: vec![a(
            "SELECT count(*) AS n, stddev_pop(CASE WHEN {C} THEN nights ELSE 0 END) AS v FROM {T}",
        )],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            let (n, sd) = (num(&r[0])?, num(&r[1])?);
            Some(format!(
                "{}",
                (sd * sd / (1.0 / n - 1.0 / (n * n))).sqrt().round()
            ))
        },
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "average of the target's branch",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT avg(CASE WHEN {C} THEN spend_yuan END) AS a FROM {T}",
        )],
        decode: |o| o[0].scalar().and_then(|x| num(&x)).map(money),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "NULLIF as a hidden condition",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(*) AS n, count(nullif(birth_year, 1961)) AS m FROM {T} WHERE gender = '男' AND home_city = '北京市' GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| num(&r[1]).zip(num(&r[2])).is_some_and(|(a, b)| a - b == 1.0)),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "COALESCE over a CASE",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT sum(coalesce(CASE WHEN {C} THEN spend_yuan END, 0)) AS s FROM {T}",
        )],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "a condition multiplied in through CASE",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT sum(spend_yuan * CASE WHEN {C} THEN 1 ELSE 0 END) AS s FROM {T}",
        )],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "conditional aggregate",
        name: "count(DISTINCT CASE …) per district",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(DISTINCT CASE WHEN {C} THEN hotel_name END) AS h FROM {T} GROUP BY district")],
        decode: |o| {
            let hits: Vec<String> =
                o[0].column(1).into_iter().filter(|(_, c)| c == "1").map(|(k, _)| k).collect();
            (hits.len() == 1).then(|| hits[0].clone())
        },
    });
    v.push(Attack {
        class: "hidden condition",
        name: "a comparison used as a number",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT sum(CAST(({C}) AS INT) * spend_yuan) AS s FROM {T}",
        )],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "hidden condition",
        name: "count(C OR NULL)",
        secret: Secret::District,
        steps: vec![a(
            "SELECT district, count(({C}) OR NULL) AS c FROM {T} GROUP BY district",
        )],
        decode: |o| {
            let hits: Vec<String> = o[0]
                .column(1)
                .into_iter()
                .filter(|(_, c)| c == "1")
                .map(|(k, _)| k)
                .collect();
            (hits.len() == 1).then(|| hits[0].clone())
        },
    });
    v.push(Attack {
        class: "hidden condition",
        name: "a soft indicator by division",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(spend_yuan / (abs(birth_year - 1961) * 1000000 + 1) + 100000) AS s, count(*) AS n FROM {T}")],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            Some(money(num(&r[0])? - 100_000.0 * num(&r[1])?))
        },
    });
    v.push(Attack {
        class: "hidden condition",
        name: "a step function counts the largest spenders",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(floor(spend_yuan / 4321)) AS top FROM {T}")],
        decode: |o| (o[0].scalar()? == "1").then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "hidden condition",
        name: "greatest() cuts values at a threshold",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT sum(greatest(spend_yuan, 4321)) - 4321 * count(*) AS above FROM {T}",
        )],
        decode: |o| (num(&o[0].scalar()?)? == 0.0).then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "hidden condition",
        name: "a narrowing cast is a step function",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT sum(CAST(spend_yuan / 4321 AS INT)) AS top FROM {T}",
        )],
        decode: |o| (o[0].scalar()? == "1").then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "hidden condition",
        name: "a derived table hides the condition and the offset",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(x) AS s, count(*) AS n FROM (SELECT CASE WHEN {C} THEN spend_yuan + 1000000 ELSE 1000000 END AS x FROM {T}) d")],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            Some(money(num(&r[0])? - 1_000_000.0 * num(&r[1])?))
        },
    });
    v.push(Attack {
        class: "hidden condition",
        name: "count(DISTINCT bit) through a derived table",
        secret: Secret::Nights,
        steps: vec![
            a("SELECT count(DISTINCT b) AS c FROM (SELECT CASE WHEN {C} AND nights % 2 = 1 THEN 1 ELSE 0 END AS b FROM {T}) d"),
            a("SELECT count(DISTINCT b) AS c FROM (SELECT CASE WHEN {C} AND nights >= 2 THEN 1 ELSE 0 END AS b FROM {T}) d"),
            a("SELECT count(DISTINCT b) AS c FROM (SELECT CASE WHEN {C} AND nights >= 4 THEN 1 ELSE 0 END AS b FROM {T}) d"),
        ],
        decode: |o| {
            let bit = |x: &Outcome| x.scalar().map(|v| v == "2");
            match (bit(&o[0])?, bit(&o[1])?, bit(&o[2])?) {
                (true, true, false) => Some("3".into()),
                _ => None,
            }
        },
    });
    v.push(Attack {
        class: "single-value aggregate",
        name: "max of the target's branch",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT max(CASE WHEN {C} THEN spend_yuan END) AS m FROM {T}",
        )],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "single-value aggregate",
        name: "string_agg lists the target's values",
        secret: Secret::Spend,
        steps: vec![a(
            "SELECT string_agg(CAST(spend_yuan AS VARCHAR), ',') AS s FROM {T} WHERE {C}",
        )],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "single-value aggregate",
        name: "bool_or says whether the target stayed in a district",
        secret: Secret::District,
        steps: vec![a(
            "SELECT bool_or({C} AND district = '大理市') AS stayed FROM {T}",
        )],
        decode: |o| (o[0].scalar()? == "true").then(|| "大理市".into()),
    });

    // ---- C. Oracles: what the analyst sees before review, errors, resources, order.
    v.push(Attack {
        class: "report oracle",
        name: "computed/suppressed counts of a query only the target can match",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT district, count(*) AS n FROM {T} WHERE {C} AND spend_yuan > 4320.99 GROUP BY district"),
            a("SELECT district, count(*) AS n FROM {T} WHERE {C} AND spend_yuan > 4321.00 GROUP BY district"),
        ],
        // The runner asserts that the analyst's view carries no counts; what is released is
        // all the decoder gets.
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "error oracle",
        name: "division by zero only for the target",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE 1 / (CASE WHEN {C} AND spend_yuan > 4320.99 THEN 0 ELSE 1 END) = 1"),
            a("SELECT count(*) AS n FROM {T} WHERE 1 / (CASE WHEN {C} AND spend_yuan > 4321.00 THEN 0 ELSE 1 END) = 1"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "error oracle",
        name: "division by zero inside an aggregate",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(CASE WHEN {C} AND spend_yuan > 4320.99 THEN 1 / (nights - nights) ELSE 1 END) AS s FROM {T}"),
            a("SELECT sum(CASE WHEN {C} AND spend_yuan > 4321.00 THEN 1 / (nights - nights) ELSE 1 END) AS s FROM {T}"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "error oracle",
        name: "a cast that fails only for the target",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE CAST(CASE WHEN {C} AND spend_yuan > 4320.99 THEN 'x' ELSE '1' END AS INT) = 1"),
            a("SELECT count(*) AS n FROM {T} WHERE CAST(CASE WHEN {C} AND spend_yuan > 4321.00 THEN 'x' ELSE '1' END AS INT) = 1"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "error oracle",
        name: "a negative substring length only for the target",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE length(substr(hotel_name, 1, CASE WHEN {C} AND spend_yuan > 4320.99 THEN -1 ELSE 1 END)) >= 0"),
            a("SELECT count(*) AS n FROM {T} WHERE length(substr(hotel_name, 1, CASE WHEN {C} AND spend_yuan > 4321.00 THEN -1 ELSE 1 END)) >= 0"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "resource oracle",
        name: "a huge repeat only for the target",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} WHERE length(repeat(hotel_name, CASE WHEN {C} AND spend_yuan > 4320.99 THEN 100000000 ELSE 1 END)) > 0"),
            a("SELECT count(*) AS n FROM {T} WHERE length(repeat(hotel_name, CASE WHEN {C} AND spend_yuan > 4321.00 THEN 100000000 ELSE 1 END)) > 0"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "timing oracle",
        name: "a cross product that is large only when the target matches",
        secret: Secret::Spend,
        // The runner asserts that the answer comes at acceptance and that the analyst never
        // sees when the run finished; nothing else reaches the analyst to time.
        steps: vec![
            a("SELECT count(*) AS n FROM {T} a, {T} b, {T} c WHERE a.birth_year = 1961 AND a.gender = '男' AND a.home_city = '北京市' AND a.spend_yuan > 4320.99"),
            a("SELECT count(*) AS n FROM {T} a, {T} b, {T} c WHERE a.birth_year = 1961 AND a.gender = '男' AND a.home_city = '北京市' AND a.spend_yuan > 4321.00"),
        ],
        decode: |o| oracle(o)?.then(|| "4321.00".into()),
    });
    v.push(Attack {
        class: "order oracle",
        name: "ORDER BY a conditional sum LIMIT 1 names the target's district",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(*) AS n FROM {T} GROUP BY district ORDER BY sum(CASE WHEN {C} THEN spend_yuan ELSE 0 END) DESC LIMIT 1")],
        decode: |o| o[0].rows()?.first()?.first().cloned(),
    });
    v.push(Attack {
        class: "order oracle",
        name: "the smallest group is the target's",
        secret: Secret::District,
        steps: vec![
            a("SELECT count(*) AS n FROM {T} GROUP BY ({C} AND district = '大理市') ORDER BY count(*) LIMIT 1"),
            a("SELECT count(*) AS n FROM {T} GROUP BY ({C} AND district = '宾川县') ORDER BY count(*) LIMIT 1"),
        ],
        decode: |o| oracle(o)?.then(|| "大理市".into()),
    });
    v.push(Attack {
        class: "HAVING oracle",
        name: "HAVING on the target's branch keeps or drops a district",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(*) AS n FROM {T} GROUP BY district HAVING sum(CASE WHEN {C} THEN 1 ELSE 0 END) > 0")],
        decode: |o| {
            let rows = o[0].rows()?;
            (rows.len() == 1).then(|| rows[0][0].clone())
        },
    });

    // ---- D. Differencing, within one analyst's work and pooled across scopes and tenants.
    v.push(Attack {
        class: "differencing",
        name: "per-district counts with and without the target",
        secret: Secret::District,
        steps: vec![
            a("SELECT district, count(*) AS n FROM {T} GROUP BY district"),
            a("SELECT district, count(*) AS n FROM {T} WHERE NOT ({C}) GROUP BY district"),
        ],
        decode: |o| the_key_differing(&o[0], 1, &o[1], 1, 1.0),
    });
    v.push(Attack {
        class: "differencing",
        name: "a total less the target",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T}"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE NOT ({C})"),
        ],
        decode: |o| difference(&o[0], &o[1]),
    });
    v.push(Attack {
        class: "cross-scope differencing",
        name: "the total in one scenario, the total less the target in another",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE district = '大理市'"),
            s(
                Who::OtherScenario,
                "SELECT sum(spend_yuan) AS s FROM {T} WHERE district = '大理市' AND NOT ({C})",
            ),
        ],
        decode: |o| difference(&o[0], &o[1]),
    });
    v.push(Attack {
        class: "pooled differencing",
        name: "two analysts of one tenant split the pair",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市'"),
            s(
                Who::Colleague,
                "SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND NOT ({C})",
            ),
        ],
        decode: |o| difference(&o[0], &o[1]),
    });
    v.push(Attack {
        class: "pooled differencing",
        name: "two tenants split the pair",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '男'"),
            s(
                Who::OtherTenant,
                "SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '男' AND NOT ({C})",
            ),
        ],
        decode: |o| difference(&o[0], &o[1]),
    });
    v.push(Attack {
        class: "differencing",
        name: "unique visitors with and without the target",
        secret: Secret::District,
        steps: vec![
            a("SELECT district, count(DISTINCT id_number) AS v FROM {T} GROUP BY district"),
            a("SELECT district, count(DISTINCT id_number) AS v FROM {T} WHERE NOT ({C}) GROUP BY district"),
        ],
        decode: |o| the_key_differing(&o[0], 1, &o[1], 1, 1.0),
    });
    v.push(Attack {
        class: "differencing",
        name: "a join's counts with and without the target",
        secret: Secret::Spot,
        steps: vec![
            a("SELECT v.spot_name, count(*) AS n FROM {T} h JOIN {V} v ON h.id_number = v.id_number GROUP BY v.spot_name"),
            a("SELECT v.spot_name, count(*) AS n FROM {T} h JOIN {V} v ON h.id_number = v.id_number WHERE NOT ({CH}) GROUP BY v.spot_name"),
        ],
        decode: |o| the_key_differing(&o[0], 1, &o[1], 1, 1.0),
    });

    // ---- E. Trackers and linear reconstruction.
    v.push(Attack {
        class: "individual tracker",
        name: "Denning's tracker: C = A ∧ B from A and A ∧ ¬B",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '男' AND home_city = '北京市'"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '男' AND home_city = '北京市' AND birth_year <> 1961"),
        ],
        decode: |o| difference(&o[0], &o[1]),
    });
    v.push(Attack {
        class: "general tracker",
        name: "A ∪ {t}, A ∪ B and B, every pair far apart",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '女' OR ({C})"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '女' OR (gender = '男' AND district = '宾川县')"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE gender = '男' AND district = '宾川县'"),
        ],
        decode: |o| {
            Some(money(
                num(&o[0].scalar()?)? - num(&o[1].scalar()?)? + num(&o[2].scalar()?)?,
            ))
        },
    });
    v.push(Attack {
        class: "general tracker",
        name: "the same tracker inside one query, as FILTERs",
        secret: Secret::Spend,
        steps: vec![a("SELECT sum(spend_yuan) FILTER (WHERE birth_year BETWEEN 1970 AND 1975 OR ({C})) AS a, sum(spend_yuan) FILTER (WHERE birth_year BETWEEN 1970 AND 1975 OR birth_year BETWEEN 1980 AND 1985) AS b, sum(spend_yuan) FILTER (WHERE birth_year BETWEEN 1980 AND 1985) AS c FROM {T}")],
        decode: |o| {
            let r = o[0].rows()?.first()?;
            Some(money(num(&r[0])? - num(&r[1])? + num(&r[2])?))
        },
    });
    v.push(Attack {
        class: "complementary (total first)",
        name: "a total released first, its other parts later",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男'"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year < 1961"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year > 1961"),
        ],
        decode: |o| {
            Some(money(
                num(&o[0].scalar()?)? - num(&o[1].scalar()?)? - num(&o[2].scalar()?)?,
            ))
        },
    });
    v.push(Attack {
        class: "complementary (one query)",
        name: "ROLLUP: the margin less the released cells",
        secret: Secret::Spend,
        steps: vec![a("SELECT birth_year, sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1955 AND 1965 GROUP BY ROLLUP(birth_year) ORDER BY birth_year NULLS LAST")],
        decode: |o| {
            let rows = o[0].rows()?;
            let total = num(&rows.iter().find(|r| r[0] == "NULL")?[1])?;
            let parts: f64 = rows
                .iter()
                .filter(|r| r[0] != "NULL" && r[0] != "1961")
                .filter_map(|r| num(&r[1]))
                .sum();
            let cells = rows.iter().filter(|r| r[0] != "NULL").count();
            // All birth years of the range but 1961 released: the rest is the target's year.
            (cells == 10).then(|| money(total - parts))
        },
    });
    v.push(Attack {
        class: "linear reconstruction",
        name: "overlapping counts of birth-year ranges solve for the 1961 men of Beijing",
        secret: Secret::District,
        steps: vec![
            a("SELECT district, count(*) AS n FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year <= 1961 GROUP BY district"),
            a("SELECT district, count(*) AS n FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year <= 1960 GROUP BY district"),
        ],
        decode: |o| the_key_differing(&o[0], 1, &o[1], 1, 1.0),
    });
    v.push(Attack {
        class: "linear reconstruction",
        name: "sums over overlapping windows of years",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1955 AND 1961"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1955 AND 1970"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1962 AND 1970"),
            a("SELECT sum(spend_yuan) AS s FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1955 AND 1960"),
        ],
        // [1955,1961] − [1955,1960] = 1961; and [1955,1970] − [1962,1970] − [1955,1960] = 1961.
        decode: |o| {
            if let (Some(a), Some(d)) = (o[0].scalar(), o[3].scalar()) {
                return Some(money(num(&a)? - num(&d)?));
            }
            Some(money(
                num(&o[1].scalar()?)? - num(&o[2].scalar()?)? - num(&o[3].scalar()?)?,
            ))
        },
    });
    v.push(Attack {
        class: "noise averaging",
        name: "the same query again: exact answers repeat, nothing to average out",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(CASE WHEN {C} THEN spend_yuan ELSE 0 END) AS s FROM {T}"),
            a("SELECT sum(CASE WHEN {C} THEN spend_yuan ELSE 0 END) AS s FROM {T}"),
        ],
        decode: |o| o[0].scalar().or_else(|| o[1].scalar()),
    });

    // ---- F. Joins: constants, duplication, self-joins.
    v.push(Attack {
        class: "constant join",
        name: "a VALUES column copies the target's value through the join",
        secret: Secret::Spend,
        steps: vec![a("SELECT string_agg(CAST(g.y AS VARCHAR), ',') AS s FROM {T} h JOIN (VALUES (4321), (4320), (4322)) AS g(y) ON {CH} AND floor(h.spend_yuan) = g.y")],
        decode: |o| o[0].scalar().map(|x| format!("{x}.00")),
    });
    v.push(Attack {
        class: "constant join",
        name: "rows doubled only for the target by a VALUES join",
        secret: Secret::Spend,
        steps: vec![
            a("SELECT sum(spend_yuan) AS s FROM {T}"),
            a("SELECT sum(h.spend_yuan) AS s FROM {T} h LEFT JOIN (VALUES (1), (2)) AS v(k) ON {CH}"),
        ],
        decode: |o| Some(money(num(&o[1].scalar()?)? - num(&o[0].scalar()?)?)),
    });
    v.push(Attack {
        class: "constant join",
        name: "an outer join's padded nulls as an oracle",
        secret: Secret::District,
        steps: vec![
            a("SELECT count(v.f) AS c FROM {T} h LEFT JOIN (VALUES (1)) AS v(f) ON NOT ({CH} AND h.district = '大理市')"),
            a("SELECT count(v.f) AS c FROM {T} h LEFT JOIN (VALUES (1)) AS v(f) ON NOT ({CH} AND h.district = '宾川县')"),
        ],
        decode: |o| oracle(o)?.then(|| "大理市".into()),
    });
    v.push(Attack {
        class: "self-join",
        name: "a left self-join whose right side holds the target alone",
        secret: Secret::District,
        steps: vec![a("SELECT h1.district, count(h2.id_number) AS c FROM {T} h1 LEFT JOIN {T} h2 ON h1.id_number = h2.id_number AND h2.birth_year = 1961 AND h2.gender = '男' AND h2.home_city = '北京市' GROUP BY h1.district")],
        decode: |o| {
            let hits: Vec<String> =
                o[0].column(1).into_iter().filter(|(_, c)| c == "1").map(|(k, _)| k).collect();
            (hits.len() == 1).then(|| hits[0].clone())
        },
    });
    v.push(Attack {
        class: "join",
        name: "the spot visited by the target, through a join on the privacy unit",
        secret: Secret::Spot,
        steps: vec![a("SELECT v.spot_name, count(*) AS n FROM {T} h JOIN {V} v ON h.id_number = v.id_number WHERE {CH} GROUP BY v.spot_name")],
        decode: |o| o[0].rows()?.first()?.first().cloned(),
    });

    // ---- G. Development samples.
    v.push(Attack {
        class: "development sample",
        name: "the target's row in the sample, by birth year",
        secret: Secret::Spend,
        steps: vec![s(Who::Dev, "SELECT spend_yuan FROM {T} WHERE birth_year = 1961 AND gender = '男' AND home_city = '北京市'")],
        decode: |o| o[0].scalar(),
    });
    v.push(Attack {
        class: "development sample",
        name: "the sample's share of a small dataset",
        secret: Secret::District,
        steps: vec![s(Who::Dev, "SELECT district FROM {T} WHERE home_city = '北京市' AND gender = '男' AND birth_year BETWEEN 1960 AND 1969")],
        // With every row in the sample and exact quasi-identifiers the attacker would find
        // the one 1961 man of Beijing; here, banded years and a tenth of the rows.
        decode: |o| {
            let rows = o[0].rows()?;
            (rows.len() == 1).then(|| rows[0][0].clone())
        },
    });
    v.push(Attack {
        class: "development sample",
        name: "a masked phone finds a known person's rows",
        secret: Secret::District,
        steps: vec![s(
            Who::Dev,
            "SELECT district, phone FROM {T} WHERE phone LIKE '139%00000000'",
        )],
        decode: |o| o[0].rows()?.first()?.first().cloned(),
    });
    v.push(Attack {
        class: "development sample",
        name: "exact measures in the sample",
        secret: Secret::Spend,
        steps: vec![s(
            Who::Dev,
            "SELECT spend_yuan FROM {T} WHERE spend_yuan = 4321.00",
        )],
        decode: |o| o[0].scalar(),
    });

    // ---- H. Crashes and resources: the server lives, the call is refused.
    v.push(Attack {
        class: "crash",
        name: "a 2,000-term + chain",
        secret: Secret::Spend,
        steps: vec![a(&format!(
            "SELECT district, sum({}) AS s FROM {{T}} GROUP BY district",
            vec!["nights"; 2000].join(" + ")
        ))],
        decode: |o| o[0].rows().map(|_| "any release".into()),
    });
    v.push(Attack {
        class: "crash",
        name: "a 3,000-term OR chain",
        secret: Secret::Spend,
        steps: vec![a(&format!(
            "SELECT count(*) AS n FROM {{T}} WHERE {}",
            (0..3000)
                .map(|i| format!("nights = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ))],
        decode: |o| o[0].rows().map(|_| "any release".into()),
    });
    v.push(Attack {
        class: "crash",
        name: "subqueries nested 40 deep",
        secret: Secret::Spend,
        steps: vec![a(&format!(
            "SELECT count(*) AS n FROM {{T}} WHERE nights > {}1{}",
            "(SELECT ".repeat(40),
            ")".repeat(40)
        ))],
        decode: |o| o[0].rows().map(|_| "any release".into()),
    });
    v.push(Attack {
        class: "resources",
        name: "repeat() amplification in a filter",
        secret: Secret::Spend,
        steps: vec![a("SELECT district, count(*) AS n FROM {T} WHERE length(repeat(hotel_name, 20000)) > 0 GROUP BY district")],
        // Bounded: the repeat is NULL, the filter false, nothing to release.
        decode: |o| o[0].rows().filter(|r| !r.is_empty()).map(|_| "unbounded".into()),
    });
    v.push(Attack {
        class: "resources",
        name: "|| doubling through CTEs",
        secret: Secret::Spend,
        steps: vec![a(&{
            let mut q = String::from("WITH c0 AS (SELECT district, hotel_name AS x FROM {T})");
            for i in 1..=30 {
                q.push_str(&format!(
                    ", c{i} AS (SELECT district, x || x AS x FROM c{})",
                    i - 1
                ));
            }
            q.push_str(
                " SELECT district, count(*) AS n FROM c30 WHERE length(x) > 0 GROUP BY district",
            );
            q
        })],
        decode: |o| {
            o[0].rows()
                .filter(|r| !r.is_empty())
                .map(|_| "unbounded".into())
        },
    });

    // ---- I. Set operations, DISTINCT, windows, grouping sets.
    v.push(Attack {
        class: "set operation",
        name: "UNION smuggles a protected column under a dimension's name",
        secret: Secret::Spend,
        steps: vec![a("SELECT district FROM {T} GROUP BY district UNION ALL SELECT CAST(spend_yuan AS VARCHAR) FROM {T} WHERE {C}")],
        decode: |o| {
            o[0].rows()?
                .iter()
                .find(|r| r[0].contains('.'))
                .map(|r| r[0].clone())
        },
    });
    v.push(Attack {
        class: "DISTINCT",
        name: "DISTINCT over the target's row",
        secret: Secret::District,
        steps: vec![a("SELECT DISTINCT district FROM {T} WHERE {C}")],
        decode: |o| o[0].rows()?.first()?.first().cloned(),
    });
    v.push(Attack {
        class: "window",
        name: "a window over aggregates ranks the target's district",
        secret: Secret::District,
        steps: vec![a("SELECT district, rank() OVER (ORDER BY sum(CASE WHEN {C} THEN 1 ELSE 0 END) DESC) AS r FROM {T} GROUP BY district")],
        decode: |o| o[0].rows()?.iter().find(|r| r[1] == "1").map(|r| r[0].clone()),
    });
    v.push(Attack {
        class: "grouping sets",
        name: "CUBE cells with and without the target's year",
        secret: Secret::District,
        steps: vec![a("SELECT district, birth_year, count(*) AS n FROM {T} WHERE home_city = '北京市' AND gender = '男' GROUP BY CUBE(district, birth_year)")],
        decode: |o| {
            o[0].rows()?
                .iter()
                .find(|r| r[1] == "1961" && r[0] != "NULL")
                .map(|r| r[0].clone())
        },
    });
    v.push(Attack {
        class: "group key",
        name: "a conditional group key isolates the target's stay",
        secret: Secret::Spend,
        steps: vec![a("SELECT CASE WHEN {C} THEN CAST(spend_yuan AS VARCHAR) ELSE 'other' END AS k, count(*) AS n FROM {T} GROUP BY 1")],
        decode: |o| o[0].rows()?.iter().find(|r| r[0] != "other").map(|r| r[0].clone()),
    });
    // A known group OR the target: every other row has a value the attacker knows, so what
    // the aggregate adds beyond it is the target's (found by an adversarial review pass).
    v.push(Attack {
        class: "OR filter",
        name: "distinct genders of women OR the target mark the target's district",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(DISTINCT gender) AS g FROM {T} WHERE gender = '女' OR ({C}) GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| r[1] == "2"),
    });
    v.push(Attack {
        class: "OR filter",
        name: "one-night stays OR the target: sum less count is the target's extra nights",
        secret: Secret::Nights,
        steps: vec![a("SELECT count(*) AS n, sum(nights) - count(*) AS extra FROM {T} WHERE nights = 1 OR ({C})")],
        decode: |o| Some(format!("{}", num(&o[0].rows()?.first()?[1])? as i64 + 1)),
    });
    v.push(Attack {
        class: "OR filter",
        name: "De Morgan spelling of the same OR",
        secret: Secret::Nights,
        steps: vec![a("SELECT count(*) AS n, sum(nights) - count(*) AS extra FROM {T} WHERE NOT (nights <> 1 AND NOT ({C}))")],
        decode: |o| Some(format!("{}", num(&o[0].rows()?.first()?[1])? as i64 + 1)),
    });
    v.push(Attack {
        class: "OR filter",
        name: "an IN list of the target's birth year beside a common one",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(DISTINCT birth_year) AS y FROM {T} WHERE birth_year IN (1990, 1961) AND gender = '男' AND home_city = '北京市' GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| r[1] == "2"),
    });
    v.push(Attack {
        class: "hidden filter condition",
        name: "CASE in a filter: the target beside the women",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(DISTINCT gender) AS g FROM {T} WHERE CASE WHEN {C} THEN true ELSE gender = '女' END GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| r[1] == "2"),
    });
    v.push(Attack {
        class: "hidden filter condition",
        name: "a data-chosen bound: nights <= CASE WHEN C THEN 100 ELSE 1 END",
        secret: Secret::Nights,
        steps: vec![a("SELECT count(*) AS n, sum(nights) - count(*) AS extra FROM {T} WHERE nights <= CASE WHEN {C} THEN 100 ELSE 1 END")],
        decode: |o| Some(format!("{}", num(&o[0].rows()?.first()?[1])? as i64 + 1)),
    });
    v.push(Attack {
        class: "hidden filter condition",
        name: "conditions cast to numbers and added",
        secret: Secret::District,
        steps: vec![a("SELECT district, count(DISTINCT gender) AS g FROM {T} WHERE CAST(gender = '女' AS INT) + CAST(({C}) AS INT) > 0 GROUP BY district")],
        decode: |o| the_only_key(&o[0], |r| r[1] == "2"),
    });
    v
}

/// The truth an attack's conclusion is compared with.
pub fn secret_of(a: &Attack) -> String {
    a.secret.of(&TRUTH)
}
