//! The periodic report of a tenant (the regulation's 定期报告): what it was authorized to use,
//! its scenarios, the queries it ran, what was released, data-quality requests, violations and
//! rectifications, over a period. Figures come from the records the audited calls wrote.

use chrono::NaiveDate;
use erhai_proto::v1 as pb;
use tonic::Status;

use std::collections::BTreeMap;

use super::{Gateway, convert, internal};
use crate::authz::Role;
use crate::state::{DatasetRecord, JobRecord, JobState, UserRecord, now_ms};

/// The longest period a report covers (its weeks are charted one by one).
const MAX_PERIOD_DAYS: i64 = 3660;

fn day(s: &str, what: &str) -> Result<NaiveDate, Status> {
    crate::dates::parse_day(s, chrono::Utc::now().date_naive())
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

/// The UTC day of a time.
fn day_of(ms: i64) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

impl Gateway {
    pub(crate) fn report_inner(
        &self,
        user: &UserRecord,
        r: &pb::ReportRequest,
    ) -> Result<pb::Report, Status> {
        let tenant = match (r.tenant.trim(), user.role, user.tenant.as_deref()) {
            ("", _, Some(own)) => own.to_string(),
            (t, Role::Analyst, Some(own)) if t != own => {
                return Err(Status::not_found(format!("no tenant `{t}` visible to you")));
            }
            ("", _, None) => return Err(Status::invalid_argument("name a tenant (--tenant)")),
            (t, _, _) => t.to_string(),
        };
        let (from, to) = (day(&r.from, "from")?, day(&r.to, "to")?);
        if to < from {
            return Err(Status::invalid_argument(format!(
                "the period {from} to {to} is empty"
            )));
        }
        if (to - from).num_days() > MAX_PERIOD_DAYS {
            return Err(Status::invalid_argument(format!(
                "the period {from} to {to} is longer than {MAX_PERIOD_DAYS} days: report on \
                 ten years at most"
            )));
        }
        let within = |ms: i64| day_of(ms).is_some_and(|d| from <= d && d <= to);
        let record = self
            .0
            .tenants
            .get(&tenant)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no tenant `{tenant}`")))?;

        // The tenant's jobs, read once: those submitted in the period, and those released in it
        // whenever they were submitted.
        let tenant_jobs: Vec<_> = self
            .0
            .store
            .jobs()
            .map_err(internal)?
            .into_iter()
            .filter(|j| j.tenant == tenant)
            .collect();
        let jobs: Vec<_> = tenant_jobs
            .iter()
            .filter(|j| within(j.submitted_at_ms))
            .collect();
        let figures = QueryFigures::of(&jobs);
        let released: Vec<_> = tenant_jobs
            .iter()
            .filter(|j| {
                j.state == JobState::Released
                    && j.release
                        .as_ref()
                        .is_some_and(|rel| within(rel.approved_at_ms))
            })
            .collect();
        let weeks = weeks(&jobs, from, to);
        let social: Vec<_> = self
            .0
            .store
            .datasets()
            .map_err(internal)?
            .into_iter()
            .filter(|d| d.social_tenant.as_deref() == Some(tenant.as_str()))
            .collect();
        let social_queries = jobs
            .iter()
            .filter(|j| {
                j.datasets
                    .iter()
                    .any(|id| social.iter().any(|d| &d.id == id))
            })
            .count() as u64;

        let scenarios: Vec<_> = self
            .0
            .scenarios
            .all()
            .map_err(internal)?
            .into_iter()
            .filter(|s| s.tenant == tenant)
            .collect();
        let mut authorized = Vec::new();
        for s in &scenarios {
            if s.status == crate::scenario::ScenarioStatus::Active {
                for (d, cols) in &s.approved {
                    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
                    authorized.push(format!("{d}: {} (scenario {})", cols.join(", "), s.name));
                }
            }
        }
        let quality: Vec<_> = self
            .0
            .quality
            .all()
            .map_err(internal)?
            .into_iter()
            .filter(|q| q.tenant == tenant)
            .collect();
        let tenant_pb = super::tenant::to_pb(&record);
        let violations = tenant_pb
            .history
            .iter()
            .filter(|h| h.what != "agreement" && within(h.at_ms))
            .cloned()
            .collect();
        Ok(pb::Report {
            tenant: tenant.clone(),
            from: from.to_string(),
            to: to.to_string(),
            status: tenant_pb.status.clone(),
            agreement: if tenant_pb.start.is_empty() {
                "none".into()
            } else {
                format!("{} to {}", tenant_pb.start, tenant_pb.end)
            },
            datasets_authorized: authorized,
            scenarios: scenarios.iter().map(|s| self.scenario_pb(s)).collect(),
            production_queries: figures.submitted,
            production_refused: figures.refused,
            production_invalid: figures.invalid,
            production_run: figures.run,
            run_released: figures.released,
            rejected: figures.rejected,
            run_awaiting: figures.awaiting,
            dev_queries: figures.dev,
            refusals_by_rule: figures
                .refusals_by_rule
                .into_iter()
                .map(|(rule, count)| pb::RuleCount { rule, count })
                .collect(),
            weeks,
            releases: released.len() as u64,
            rows_released: released
                .iter()
                .filter_map(|j| j.release.as_ref().map(|r| r.rows))
                .sum(),
            // How many rows an approval withheld depends on the data: the tenant's analysts
            // learn no more of it than of the suppressed rows.
            rows_withheld: if user.role == Role::Analyst {
                0
            } else {
                released
                    .iter()
                    .filter_map(|j| j.release.as_ref().map(|r| r.withheld.len() as u64))
                    .sum()
            },
            quality_filed: quality.iter().filter(|q| within(q.filed_at_ms)).count() as u64,
            quality_closed: quality
                .iter()
                .filter(|q| q.closed_at_ms.is_some_and(within))
                .count() as u64,
            violations,
            social_data: social_sentence(&social, social_queries),
            social_datasets: social
                .iter()
                .map(|d| pb::SocialDataset {
                    name: d.name.clone(),
                    rows: d.rows,
                    import_status: if d.import_approved.is_some() {
                        "approved"
                    } else {
                        "pending"
                    }
                    .into(),
                    uploaded_at_ms: d.created_at_ms,
                    approved_at_ms: d.import_approved.as_ref().map_or(0, |a| a.at_ms),
                    scenarios: scenarios
                        .iter()
                        .filter(|s| s.requested.iter().any(|c| c.dataset == d.name))
                        .map(|s| s.name.clone())
                        .collect(),
                })
                .collect(),
            social_queries,
            generated_at_ms: now_ms(),
            generated_by: vec![user.id.clone()],
        })
    }
}

/// The queries of a period, each counted once by where it stands now, so that every total is
/// the sum of its parts: submitted = refused + invalid + run; run = released + rejected +
/// awaiting. Development queries are counted apart. The states are those the tenant itself
/// sees (a run that failed reads awaiting review until a reviewer closes it, then rejected):
/// how a run ended depends on the data.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryFigures {
    pub submitted: u64,
    pub refused: u64,
    pub invalid: u64,
    pub run: u64,
    pub released: u64,
    pub rejected: u64,
    pub awaiting: u64,
    pub dev: u64,
    /// Refused queries by the first rule that refused each (they add up to `refused`).
    pub refusals_by_rule: BTreeMap<String, u64>,
}

impl QueryFigures {
    pub(crate) fn of(jobs: &[&JobRecord]) -> QueryFigures {
        let mut f = QueryFigures::default();
        for j in jobs {
            if j.dev {
                f.dev += 1;
                continue;
            }
            f.submitted += 1;
            if convert::accepted(j) {
                f.run += 1;
                match (j.state, j.reviewed_by.is_some()) {
                    (JobState::Released, _) => f.released += 1,
                    (JobState::Rejected, _) | (JobState::Failed, true) => f.rejected += 1,
                    _ => f.awaiting += 1,
                }
            } else if j.state == JobState::Refused {
                f.refused += 1;
                *f.refusals_by_rule.entry(refusal_rule(j)).or_default() += 1;
            } else {
                f.invalid += 1;
            }
        }
        f
    }
}

/// The rule that refused a job: the plan check's first refusal, the privacy budget (a plan
/// that was allowed), or what refused it before a plan existed.
fn refusal_rule(j: &JobRecord) -> String {
    match &j.verdict {
        Some(v) => match v.refusals.first() {
            Some(r) => r.rule.clone(),
            None if v.allowed() => "privacy-budget".into(),
            None => "plan-check".into(),
        },
        None => "not-allowed-in-scenario".into(),
    }
}

/// The Monday of a day's week.
fn monday(d: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()))
}

/// Queries per week, from the week of `from` to the week of `to` (empty weeks included).
fn weeks(jobs: &[&JobRecord], from: NaiveDate, to: NaiveDate) -> Vec<pb::WeekCount> {
    let mut by_week: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    let mut w = monday(from);
    while w <= to {
        by_week.insert(w, (0, 0));
        w = w + chrono::Days::new(7);
    }
    for j in jobs {
        if let Some(e) = day_of(j.submitted_at_ms).and_then(|d| by_week.get_mut(&monday(d))) {
            if j.dev {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    by_week
        .into_iter()
        .map(|(week, (production, dev))| pb::WeekCount {
            week: week.to_string(),
            production,
            dev,
        })
        .collect()
}

/// The social-data figures in one sentence.
fn social_sentence(social: &[DatasetRecord], queries: u64) -> String {
    if social.is_empty() {
        return "none: the tenant has uploaded no social data".into();
    }
    let approved = social
        .iter()
        .filter(|d| d.import_approved.is_some())
        .count();
    format!(
        "{} social dataset(s) uploaded ({approved} approved for import, {} awaiting the \
         authority); {queries} query(ies) of the period read them",
        social.len(),
        social.len() - approved
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use erhai_policies::PlanVerdict;

    fn job(state: JobState, dev: bool, allowed: bool, reviewed: bool) -> JobRecord {
        let verdict = if allowed {
            PlanVerdict::default()
        } else {
            PlanVerdict {
                refusals: vec![erhai_policies::check::Refusal {
                    output: None,
                    source: erhai_policies::lineage::SourceColumn {
                        dataset: "d".into(),
                        column: "c".into(),
                    },
                    use_: erhai_policies::Use::Output,
                    rule: "raw-output".into(),
                    message: "no".into(),
                }],
                ..Default::default()
            }
        };
        JobRecord {
            id: "job-1".into(),
            tenant: "t".into(),
            submitted_by: "a".into(),
            sql: "SELECT 1".into(),
            state,
            error: None,
            verdict: Some(verdict),
            report: None,
            datasets: Vec::new(),
            dataset_versions: Vec::new(),
            submitted_at_ms: 0,
            finished_at_ms: None,
            reviewed_by: reviewed.then(|| "r".into()),
            review_reason: None,
            reviewed_at_ms: None,
            result_key: None,
            dev,
            promoted_from: None,
            approvals: Vec::new(),
            release: None,
            approvals_needed: 1,
            scenario: None,
            epsilon: None,
            rules: None,
        }
    }

    #[test]
    fn every_total_is_the_sum_of_its_parts_and_development_is_apart() {
        let mut jobs = vec![
            job(JobState::Released, false, true, true),
            job(JobState::Rejected, false, true, true),
            job(JobState::Failed, false, true, true),
            job(JobState::Failed, false, true, false),
            job(JobState::AwaitingReview, false, true, false),
            job(JobState::Running, false, true, false),
            job(JobState::Refused, false, false, false),
            job(JobState::Refused, false, true, false),
            job(JobState::Completed, true, true, false),
            job(JobState::Refused, true, false, false),
        ];
        let mut invalid = job(JobState::Failed, false, true, false);
        invalid.verdict = None;
        jobs.push(invalid);
        let refs: Vec<&JobRecord> = jobs.iter().collect();
        let f = QueryFigures::of(&refs);
        assert_eq!(f.submitted, 9);
        assert_eq!(f.dev, 2);
        assert_eq!(f.submitted, f.refused + f.invalid + f.run);
        assert_eq!(f.run, f.released + f.rejected + f.awaiting);
        assert_eq!(f.refused, f.refusals_by_rule.values().sum::<u64>());
        assert_eq!(
            (f.released, f.rejected, f.awaiting, f.refused, f.invalid),
            (1, 2, 3, 2, 1)
        );
        assert_eq!(
            f.refusals_by_rule.keys().collect::<Vec<_>>(),
            vec!["privacy-budget", "raw-output"]
        );
    }

    #[test]
    fn weeks_run_monday_to_sunday_and_count_both_environments() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day");
        let at = |s: &str| {
            day(s)
                .and_hms_opt(12, 0, 0)
                .expect("time")
                .and_utc()
                .timestamp_millis()
        };
        let mut a = job(JobState::Released, false, true, true);
        a.submitted_at_ms = at("2026-03-04");
        let mut b = job(JobState::Completed, true, true, false);
        b.submitted_at_ms = at("2026-03-10");
        let w = weeks(&[&a, &b], day("2026-03-01"), day("2026-03-15"));
        let got: Vec<(&str, u64, u64)> = w
            .iter()
            .map(|x| (x.week.as_str(), x.production, x.dev))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-02-23", 0, 0),
                ("2026-03-02", 1, 0),
                ("2026-03-09", 0, 1)
            ]
        );
    }
}
