//! The periodic report of a tenant (the regulation's 定期报告): what it was authorized to use,
//! its scenarios, the queries it ran, what was released, data-quality requests, violations and
//! rectifications, over a period. Figures come from the records the audited calls wrote.

use chrono::NaiveDate;
use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, internal};
use crate::authz::Role;
use crate::state::{JobState, UserRecord, now_ms};

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
        let prod: Vec<_> = jobs.iter().filter(|j| !j.dev).collect();
        // Accepted by the plan check (how a run ended depends on the data: not reported).
        let ran = |j: &&&&crate::state::JobRecord| super::convert::accepted(j);
        let released: Vec<_> = tenant_jobs
            .iter()
            .filter(|j| {
                j.state == JobState::Released
                    && j.release
                        .as_ref()
                        .is_some_and(|rel| within(rel.approved_at_ms))
            })
            .collect();

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
            production_queries: prod.len() as u64,
            production_refused: prod.iter().filter(|j| j.state == JobState::Refused).count() as u64,
            production_run: prod.iter().filter(ran).count() as u64,
            dev_queries: jobs.iter().filter(|j| j.dev).count() as u64,
            releases: released.len() as u64,
            rows_released: released
                .iter()
                .filter_map(|j| j.release.as_ref().map(|r| r.rows))
                .sum(),
            rejected: prod
                .iter()
                .filter(|j| j.state == JobState::Rejected)
                .count() as u64,
            quality_filed: quality.iter().filter(|q| within(q.filed_at_ms)).count() as u64,
            quality_closed: quality
                .iter()
                .filter(|q| q.closed_at_ms.is_some_and(within))
                .count() as u64,
            violations,
            social_data: "none: importing the tenant's own data is not available yet".into(),
            generated_at_ms: now_ms(),
            generated_by: vec![user.id.clone()],
        })
    }
}
