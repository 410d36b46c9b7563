//! Scenarios and their privacy budgets, in sled.
//!
//! A scenario holds the release settings of one tenant's line of work: the threshold k, whether
//! rows to review need a second reviewer, and, optionally, differential privacy. Its ε/δ ledger
//! is keyed by the scenario's name, which is never reused: no policy change, restart or
//! re-registration resets it, and a query is charged (by compare-and-swap, so concurrent
//! queries cannot overspend) before it runs.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use erhai_policies::dp::{DpSettings, Spent};
use serde::{Deserialize, Serialize};

use crate::authz::Role;
use crate::error::GatewayError;
use crate::records::Records;
use crate::tenant::ymd;

/// Application domains the measures name.
pub const DOMAINS: [&str; 12] = [
    "文旅", "能源", "环保", "农业", "物流", "制造", "信用", "交通", "卫生", "就业", "社保", "其他",
];

/// Working days a review step may take (the authority's and each provider's).
pub const REVIEW_WORKING_DAYS: u32 = 5;

/// Where a scenario stands; its names (serde, `Display`, [`ScenarioStatus::name`]) are the
/// API's.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ScenarioStatus {
    /// First review, by the data operation service center (where every application starts).
    #[default]
    CenterReview,
    /// Second review, by the authority (5 working days).
    AuthorityReview,
    /// Confirmation by each provider unit whose data is requested (5 working days).
    ProviderConfirmation,
    /// Approved: queries may run in it, within its validity.
    Active,
    /// A review step rejected it; final.
    Rejected,
    /// The authority revoked it; final.
    Revoked,
}

impl ScenarioStatus {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Why a query may not run in a scenario, or why a review or revocation may not decide it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioRefusal {
    /// Not (or no longer) active.
    #[error("scenario {scenario} is {status}: queries run only in an active scenario")]
    NotActive {
        /// The scenario.
        scenario: String,
        /// Where it stands.
        status: ScenarioStatus,
    },
    /// Before its validity.
    #[error("scenario {scenario} is valid from {from}")]
    NotYetValid {
        /// The scenario.
        scenario: String,
        /// First day of validity.
        from: NaiveDate,
    },
    /// After its validity.
    #[error("scenario {scenario} expired on {to}")]
    Expired {
        /// The scenario.
        scenario: String,
        /// Last day of validity.
        to: NaiveDate,
    },
    /// No review step is open.
    #[error("scenario {scenario} is {status}: there is nothing to review")]
    NothingToReview {
        /// The scenario.
        scenario: String,
        /// Where it stands.
        status: ScenarioStatus,
    },
    /// The open step is someone else's.
    #[error("scenario {scenario} awaits {awaits}; you ({role}) are not asked")]
    NotAsked {
        /// The scenario.
        scenario: String,
        /// Whose decision it awaits.
        awaits: String,
        /// The caller's role.
        role: Role,
    },
    /// A provider narrowing another unit's dataset.
    #[error("dataset {dataset} is not yours to narrow")]
    NotYoursToNarrow {
        /// The dataset.
        dataset: String,
    },
    /// A "narrowing" that adds a column.
    #[error("{dataset}.{column} is not in the set under review: a review may only narrow it")]
    Widens {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
    },
    /// An approval that keeps nothing.
    #[error("approving no column at all is a rejection; use --reject")]
    ApprovesNothing,
    /// Revoking what is over already.
    #[error("scenario {scenario} is already {status}")]
    AlreadyClosed {
        /// The scenario.
        scenario: String,
        /// Rejected or revoked.
        status: ScenarioStatus,
    },
}

/// Why a scenario record may not be stored.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InvalidScenario {
    /// The name is not a name.
    #[error("scenario name `{0}` must be 1–64 ASCII letters, digits, `-` or `_`")]
    Name(String),
    /// No tenant.
    #[error("a scenario belongs to a tenant")]
    NoTenant,
    /// k = 1.
    #[error("k = 1 would release single persons; use at least 2")]
    SinglePersons,
    /// A threshold below the platform's.
    #[error("k = {k} is below the platform's {platform}")]
    BelowPlatform {
        /// The scenario's k.
        k: u64,
        /// The platform's.
        platform: u64,
    },
    /// The differential-privacy settings.
    #[error(transparent)]
    Dp(#[from] erhai_policies::PolicyError),
}

/// One requested column and why it is necessary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRequest {
    /// Dataset name.
    pub dataset: String,
    /// Column.
    pub column: String,
    /// Why it is necessary (minimum necessary).
    pub justification: String,
}

/// One review step's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioReview {
    /// The stage it decided.
    pub stage: ScenarioStatus,
    /// Reviewer.
    pub by: String,
    /// Approved or rejected.
    pub approve: bool,
    /// Why.
    pub reason: String,
    /// When.
    pub at_ms: i64,
    /// `dataset.column` narrowed away.
    pub removed: Vec<String>,
}

/// Approved columns per dataset.
pub type ColumnSet = BTreeMap<String, BTreeSet<String>>;

/// Who decides a review step.
pub struct Reviewer<'a> {
    /// User id.
    pub id: &'a str,
    /// Role.
    pub role: Role,
    /// Provider unit, for providers.
    pub unit: Option<&'a str>,
}

/// Mon–Fri, except `holidays`.
pub fn is_working_day(d: NaiveDate, holidays: &[NaiveDate]) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(&d)
}

/// The last day of a step of `days` working days that starts on `start` (the start day counts
/// when it is a working day).
pub fn deadline(start: NaiveDate, days: u32, holidays: &[NaiveDate]) -> NaiveDate {
    let mut d = start;
    let mut left = days;
    loop {
        if is_working_day(d, holidays) {
            left = left.saturating_sub(1);
            if left == 0 {
                return d;
            }
        }
        match d.succ_opt() {
            Some(n) => d = n,
            None => return d,
        }
    }
}

/// A scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Unique name.
    pub name: String,
    /// The tenant whose analysts work in it.
    pub tenant: String,
    /// Title.
    pub title: String,
    /// Threshold k; 0 takes the platform's.
    pub k: u64,
    /// Rows to review need a second reviewer.
    pub second_reviewer: bool,
    /// Differential privacy: every query of the scenario runs in DP mode.
    pub dp: Option<DpSettings>,
    /// Admin who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Where it stands (admin-created scenarios are active at once).
    #[serde(default)]
    pub status: ScenarioStatus,
    /// Purpose.
    #[serde(default)]
    pub purpose: String,
    /// Application domain.
    #[serde(default)]
    pub domain: String,
    /// Expected outputs.
    #[serde(default)]
    pub outputs: String,
    /// First day of validity.
    #[serde(default, with = "ymd")]
    pub valid_from: Option<NaiveDate>,
    /// Last day of validity.
    #[serde(default, with = "ymd")]
    pub valid_to: Option<NaiveDate>,
    /// The columns requested, with justifications.
    #[serde(default)]
    pub requested: Vec<ColumnRequest>,
    /// The columns approved so far (the request, narrowed by each review): all a query in the
    /// scenario may read.
    #[serde(default)]
    pub approved: ColumnSet,
    /// Review decisions, in order.
    #[serde(default)]
    pub reviews: Vec<ScenarioReview>,
    /// When the current review step started.
    #[serde(default, with = "ymd")]
    pub stage_since: Option<NaiveDate>,
    /// Provider units yet to confirm.
    #[serde(default)]
    pub pending_units: BTreeSet<String>,
}

impl ScenarioRecord {
    /// The deadline of the current step, for the steps that have one.
    pub fn deadline(&self, holidays: &[NaiveDate]) -> Option<NaiveDate> {
        match self.status {
            ScenarioStatus::AuthorityReview | ScenarioStatus::ProviderConfirmation => self
                .stage_since
                .map(|s| deadline(s, REVIEW_WORKING_DAYS, holidays)),
            _ => None,
        }
    }

    /// Whether a query may run in the scenario on `today`, else why not.
    pub fn admits_queries(&self, today: NaiveDate) -> Result<(), ScenarioRefusal> {
        let scenario = self.name.clone();
        if self.status != ScenarioStatus::Active {
            return Err(ScenarioRefusal::NotActive {
                scenario,
                status: self.status,
            });
        }
        if let Some(from) = self.valid_from
            && today < from
        {
            return Err(ScenarioRefusal::NotYetValid { scenario, from });
        }
        if let Some(to) = self.valid_to
            && today > to
        {
            return Err(ScenarioRefusal::Expired { scenario, to });
        }
        Ok(())
    }

    /// Decides the current review step. `units` maps each requested dataset to its provider
    /// unit. Returns the record after the decision, or why the reviewer may not decide it.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        who: &Reviewer<'_>,
        approve: bool,
        reason: &str,
        narrower: Option<ColumnSet>,
        units: &BTreeMap<String, String>,
        today: NaiveDate,
        at_ms: i64,
    ) -> Result<ScenarioRecord, ScenarioRefusal> {
        let stage = self.status;
        let allowed = match stage {
            ScenarioStatus::CenterReview => who.role == Role::Center,
            ScenarioStatus::AuthorityReview => who.role == Role::Authority,
            ScenarioStatus::ProviderConfirmation => {
                who.role == Role::Provider
                    && who.unit.is_some_and(|u| self.pending_units.contains(u))
            }
            _ => {
                return Err(ScenarioRefusal::NothingToReview {
                    scenario: self.name.clone(),
                    status: stage,
                });
            }
        };
        if !allowed {
            return Err(ScenarioRefusal::NotAsked {
                scenario: self.name.clone(),
                awaits: match stage {
                    ScenarioStatus::CenterReview => "the center's review".to_string(),
                    ScenarioStatus::AuthorityReview => "the authority's review".to_string(),
                    _ => format!(
                        "confirmation by {}",
                        self.pending_units
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                role: who.role,
            });
        }
        let mut next = self.clone();
        let current = &self.approved;
        let mut removed = Vec::new();
        if approve && let Some(narrow) = narrower {
            // A provider narrows only its own datasets; others narrow anything.
            let mine = |d: &str| match stage {
                ScenarioStatus::ProviderConfirmation => {
                    units.get(d).map(String::as_str) == who.unit
                }
                _ => true,
            };
            for (d, cols) in &narrow {
                if !mine(d) {
                    return Err(ScenarioRefusal::NotYoursToNarrow { dataset: d.clone() });
                }
                for c in cols {
                    if !current.get(d).is_some_and(|s| s.contains(c)) {
                        return Err(ScenarioRefusal::Widens {
                            dataset: d.clone(),
                            column: c.clone(),
                        });
                    }
                }
            }
            let mut kept = ColumnSet::new();
            for (d, cols) in current {
                let keep: BTreeSet<String> = if mine(d) {
                    narrow.get(d).cloned().unwrap_or_default()
                } else {
                    cols.clone()
                };
                for c in cols.difference(&keep) {
                    removed.push(format!("{d}.{c}"));
                }
                if !keep.is_empty() {
                    kept.insert(d.clone(), keep);
                }
            }
            if kept.is_empty() {
                return Err(ScenarioRefusal::ApprovesNothing);
            }
            next.approved = kept;
        }
        next.reviews.push(ScenarioReview {
            stage,
            by: who.id.to_string(),
            approve,
            reason: reason.to_string(),
            at_ms,
            removed,
        });
        if !approve {
            next.status = ScenarioStatus::Rejected;
            next.pending_units.clear();
            return Ok(next);
        }
        let approved = next.approved.clone();
        match stage {
            ScenarioStatus::CenterReview => {
                next.status = ScenarioStatus::AuthorityReview;
                next.stage_since = Some(today);
            }
            ScenarioStatus::AuthorityReview => {
                next.pending_units = approved
                    .keys()
                    .filter_map(|d| units.get(d).cloned())
                    .collect();
                next.status = ScenarioStatus::ProviderConfirmation;
                next.stage_since = Some(today);
            }
            _ => {
                if let Some(u) = who.unit {
                    next.pending_units.remove(u);
                }
                // Units whose datasets were narrowed away need not confirm.
                let needed: BTreeSet<String> = approved
                    .keys()
                    .filter_map(|d| units.get(d).cloned())
                    .collect();
                next.pending_units.retain(|u| needed.contains(u));
            }
        }
        if next.status == ScenarioStatus::ProviderConfirmation && next.pending_units.is_empty() {
            next.status = ScenarioStatus::Active;
            next.stage_since = None;
        }
        Ok(next)
    }

    /// Checks the record before it is stored; `platform_k` is the platform's threshold, which a
    /// scenario may raise but never lower.
    pub fn validate(&self, platform_k: u64) -> Result<(), InvalidScenario> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(InvalidScenario::Name(self.name.clone()));
        }
        if self.tenant.is_empty() {
            return Err(InvalidScenario::NoTenant);
        }
        if self.k == 1 {
            return Err(InvalidScenario::SinglePersons);
        }
        if self.k != 0 && self.k < platform_k {
            return Err(InvalidScenario::BelowPlatform {
                k: self.k,
                platform: platform_k,
            });
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
        }
        Ok(())
    }

    /// The scope of the scenario's pseudonyms and differencing checks.
    pub fn scope(&self) -> String {
        scenario_scope(&self.name)
    }
}

/// DP settings in the API's form.
pub fn dp_to_pb(d: DpSettings) -> erhai_proto::v1::DpSettings {
    erhai_proto::v1::DpSettings {
        epsilon_total: d.epsilon_total,
        delta_total: d.delta_total,
        epsilon_per_query: d.epsilon_per_query,
        delta_per_query: d.delta_per_query,
        max_groups_per_unit: d.max_groups_per_unit,
        max_rows_per_unit: d.max_rows_per_unit,
    }
}

/// DP settings from the API's form (validated with the scenario).
pub fn dp_from_pb(d: &erhai_proto::v1::DpSettings) -> DpSettings {
    DpSettings {
        epsilon_total: d.epsilon_total,
        delta_total: d.delta_total,
        epsilon_per_query: d.epsilon_per_query,
        delta_per_query: d.delta_per_query,
        max_groups_per_unit: d.max_groups_per_unit,
        max_rows_per_unit: d.max_rows_per_unit,
    }
}

/// The scope of scenario `name`'s pseudonyms and differencing checks.
pub fn scenario_scope(name: &str) -> String {
    format!("scenario/{name}")
}

/// The scenario trees.
#[derive(Clone)]
pub struct Scenarios {
    scenarios: Records<ScenarioRecord>,
    budget: Records<Spent>,
}

impl Scenarios {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db) -> Result<Scenarios, GatewayError> {
        Ok(Scenarios {
            scenarios: Records::open(db, "scenarios", "scenario")?,
            budget: Records::open(db, "dp_budget", "budget")?,
        })
    }

    /// Changes a scenario atomically; `Ok(None)`: no such scenario.
    pub fn update(
        &self,
        name: &str,
        change: impl Fn(&ScenarioRecord) -> Result<ScenarioRecord, ScenarioRefusal>,
    ) -> Result<Option<Result<ScenarioRecord, ScenarioRefusal>>, GatewayError> {
        self.scenarios.update(name, change)
    }

    /// Stores a new scenario; false if the name is taken (names are never reused).
    pub fn create(&self, s: &ScenarioRecord) -> Result<bool, GatewayError> {
        self.scenarios.create(&s.name, s)
    }

    /// A scenario by name.
    pub fn get(&self, name: &str) -> Result<Option<ScenarioRecord>, GatewayError> {
        self.scenarios.get(name)
    }

    /// All scenarios.
    pub fn all(&self) -> Result<Vec<ScenarioRecord>, GatewayError> {
        self.scenarios.all()
    }

    /// What a scenario has spent.
    pub fn spent(&self, name: &str) -> Result<Spent, GatewayError> {
        Ok(self.budget.get(name)?.unwrap_or_default())
    }

    /// Charges one query of `epsilon` to the scenario, atomically; `Ok(Err(why))` when the
    /// budget or the per-query cap refuses it.
    pub fn charge(
        &self,
        name: &str,
        settings: &DpSettings,
        epsilon: f64,
    ) -> Result<Result<Spent, erhai_policies::dp::BudgetError>, GatewayError> {
        self.budget.upsert(name, |spent| {
            spent.copied().unwrap_or_default().charge(settings, epsilon)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).expect("date")
    }

    #[test]
    fn deadlines_count_working_days_past_weekends_and_holidays() {
        // Thursday 2026-10-01 is a holiday (National Day); the step starts Wednesday 09-30.
        let holidays = [day(10, 1), day(10, 2)];
        // Wed 30 (1), Thu/Fri holidays, Mon 5 (2), Tue 6 (3), Wed 7 (4), Thu 8 (5).
        assert_eq!(deadline(day(9, 30), 5, &holidays), day(10, 8));
        // Without holidays: Wed 30, Thu 1, Fri 2, Mon 5, Tue 6.
        assert_eq!(deadline(day(9, 30), 5, &[]), day(10, 6));
        // A step starting on a Saturday begins counting on Monday.
        assert_eq!(deadline(day(11, 28), 1, &[]), day(11, 30));
        assert!(!is_working_day(day(11, 29), &[]));
    }

    fn applied() -> ScenarioRecord {
        ScenarioRecord {
            name: "s".into(),
            tenant: "t".into(),
            title: "T".into(),
            k: 0,
            second_reviewer: false,
            dp: None,
            created_by: "a".into(),
            created_at_ms: 0,
            status: ScenarioStatus::CenterReview,
            purpose: String::new(),
            domain: "文旅".into(),
            outputs: String::new(),
            valid_from: None,
            valid_to: None,
            requested: Vec::new(),
            approved: [
                (
                    "stays".to_string(),
                    ["district", "nights"].map(String::from).into(),
                ),
                ("firms".to_string(), ["industry"].map(String::from).into()),
            ]
            .into(),
            reviews: Vec::new(),
            stage_since: None,
            pending_units: BTreeSet::new(),
        }
    }

    #[test]
    fn a_scenario_may_raise_k_but_never_lower_it() {
        let mut s = applied();
        assert_eq!(s.validate(5), Ok(()), "0 takes the platform's");
        s.k = 1;
        assert_eq!(s.validate(5), Err(InvalidScenario::SinglePersons));
        s.k = 3;
        assert_eq!(
            s.validate(5),
            Err(InvalidScenario::BelowPlatform { k: 3, platform: 5 })
        );
        s.k = 8;
        assert_eq!(s.validate(5), Ok(()));
    }

    #[test]
    fn the_chain_runs_center_authority_providers_and_narrows() {
        let units: BTreeMap<String, String> = [
            ("stays".to_string(), "tourism".to_string()),
            ("firms".to_string(), "market".to_string()),
        ]
        .into();
        // One review step by `id` (a provider of `unit`, if any) on 2026-06-`d`.
        let step = |s: &ScenarioRecord,
                    (id, role, unit): (&str, Role, Option<&str>),
                    approve: bool,
                    narrower: Option<ColumnSet>,
                    d: u32| {
            let who = Reviewer { id, role, unit };
            s.decide(&who, approve, "why", narrower, &units, day(6, d), 0)
        };
        let center = ("c", Role::Center, None);
        let authority = ("au", Role::Authority, None);
        let tourism = ("p", Role::Provider, Some("tourism"));
        let market = ("m", Role::Provider, Some("market"));
        let s = applied();
        // The wrong role is not asked.
        assert!(matches!(
            step(&s, authority, true, None, 1),
            Err(ScenarioRefusal::NotAsked { .. })
        ));
        let s = step(&s, center, true, None, 1).expect("center");
        assert_eq!(s.status, ScenarioStatus::AuthorityReview);
        // The authority narrows away the firms dataset: the market unit need not confirm.
        let narrow: ColumnSet =
            [("stays".to_string(), ["district"].map(String::from).into())].into();
        let s = step(&s, authority, true, Some(narrow), 2).expect("authority");
        assert_eq!(s.status, ScenarioStatus::ProviderConfirmation);
        assert_eq!(s.pending_units, ["tourism".to_string()].into());
        assert_eq!(s.reviews[1].removed, vec!["firms.industry", "stays.nights"]);
        // A review may only narrow.
        let widen: ColumnSet = [("stays".to_string(), ["nights"].map(String::from).into())].into();
        assert!(matches!(
            step(&s, tourism, true, Some(widen), 3),
            Err(ScenarioRefusal::Widens { .. })
        ));
        assert!(matches!(
            step(&s, market, true, None, 3),
            Err(ScenarioRefusal::NotAsked { .. })
        ));
        let s = step(&s, tourism, true, None, 3).expect("provider");
        assert_eq!(s.status, ScenarioStatus::Active);
        assert!(s.admits_queries(day(6, 4)).is_ok());
        // A rejection ends it.
        let r = step(&applied(), center, false, None, 1).expect("reject");
        assert_eq!(r.status, ScenarioStatus::Rejected);
        assert!(matches!(
            r.admits_queries(day(6, 2)),
            Err(ScenarioRefusal::NotActive { .. })
        ));
    }
}
