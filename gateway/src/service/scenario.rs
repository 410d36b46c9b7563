//! Scenarios: the application, its review chain, listing, and the differential-privacy budget
//! of each.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, internal};
use crate::authz::Role;
use crate::scenario::{
    ColumnRequest, ColumnSet, DOMAINS, Reviewer, ScenarioRecord, ScenarioRefusal, ScenarioReview,
    ScenarioStatus, dp_from_pb, dp_to_pb,
};
use crate::state::{DatasetRefusal, UserRecord, now_ms};
use crate::tenant::TenantStatus;

pub(crate) fn to_pb(s: &ScenarioRecord, holidays: &[NaiveDate]) -> pb::Scenario {
    let approved = |d: &str, c: &str| s.approved.get(d).is_some_and(|cols| cols.contains(c));
    pb::Scenario {
        name: s.name.clone(),
        tenant: s.tenant.clone(),
        title: s.title.clone(),
        k: s.k,
        second_reviewer: s.second_reviewer,
        dp: s.dp.map(dp_to_pb),
        created_by: s.created_by.clone(),
        created_at_ms: s.created_at_ms,
        purpose: s.purpose.clone(),
        domain: s.domain.clone(),
        outputs: s.outputs.clone(),
        valid_from: s.valid_from.map(|d| d.to_string()).unwrap_or_default(),
        valid_to: s.valid_to.map(|d| d.to_string()).unwrap_or_default(),
        columns: s
            .requested
            .iter()
            .map(|c| pb::ScenarioColumn {
                dataset: c.dataset.clone(),
                column: c.column.clone(),
                justification: c.justification.clone(),
                approved: approved(&c.dataset, &c.column),
            })
            .collect(),
        status: s.status.name().into(),
        reviews: s
            .reviews
            .iter()
            .map(|r| pb::ScenarioReview {
                stage: r.stage.name().into(),
                by: r.by.clone(),
                approve: r.approve,
                reason: r.reason.clone(),
                at_ms: r.at_ms,
                removed: r.removed.clone(),
            })
            .collect(),
        deadline: s
            .deadline(holidays)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        pending_units: s.pending_units.iter().cloned().collect(),
    }
}

fn date(s: &str, what: &str) -> Result<Option<NaiveDate>, Status> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    crate::dates::parse_day(s, chrono::Utc::now().date_naive())
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

fn text(s: &str, what: &str, required: bool) -> Result<String, Status> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(Status::invalid_argument(format!(
            "the application needs {what}"
        )));
    }
    if t.chars().count() > 4000 {
        return Err(Status::invalid_argument(format!(
            "{what} is longer than 4000 characters"
        )));
    }
    Ok(t.to_string())
}

/// `dataset.column` entries as a column set.
fn column_set(list: &[String]) -> Result<Option<ColumnSet>, Status> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut set = ColumnSet::new();
    for entry in list {
        let (d, c) = entry
            .split_once('.')
            .ok_or_else(|| Status::invalid_argument(format!("`{entry}` is not dataset.column")))?;
        set.entry(d.to_string()).or_default().insert(c.to_string());
    }
    Ok(Some(set))
}

impl Gateway {
    pub(crate) fn scenario_pb(&self, s: &ScenarioRecord) -> pb::Scenario {
        to_pb(s, &self.0.cfg.governance.holiday_dates())
    }

    /// Whether `user` may see scenario `s`: admins, auditors, the center and the authority all;
    /// providers those that request their unit's data; others their tenant's.
    fn sees_scenario(&self, user: &UserRecord, s: &ScenarioRecord) -> bool {
        match user.role {
            Role::Admin | Role::Center | Role::Authority => true,
            Role::Provider => s.requested.iter().any(|c| {
                matches!(self.0.store.dataset(&c.dataset), Ok(Some(d)) if Some(&d.provider_unit) == user.unit.as_ref())
            }),
            _ => Self::sees_tenant(user, &s.tenant),
        }
    }

    /// The provider unit of each dataset a scenario requests.
    fn units_of(&self, s: &ScenarioRecord) -> Result<BTreeMap<String, String>, Status> {
        let mut units = BTreeMap::new();
        for c in &s.requested {
            // Social data has no provider unit to confirm: the authority approved its import.
            if let Some(d) = self.0.store.dataset(&c.dataset).map_err(internal)?
                && d.social_tenant.is_none()
            {
                units.insert(c.dataset.clone(), d.provider_unit);
            }
        }
        Ok(units)
    }

    pub(crate) fn apply_scenario_inner(
        &self,
        user: &UserRecord,
        r: &pb::Scenario,
    ) -> Result<pb::Scenario, Status> {
        let tenant_name = Self::tenant_of(user)?.to_string();
        let tenant = self
            .0
            .tenants
            .get(&tenant_name)
            .map_err(internal)?
            .filter(|t| t.status == TenantStatus::Active)
            .ok_or_else(|| Status::failed_precondition("your tenant has no agreement in force"))?;
        if !DOMAINS.contains(&r.domain.trim()) {
            return Err(Status::invalid_argument(format!(
                "domain `{}` is not one of: {}",
                r.domain,
                DOMAINS.join(", ")
            )));
        }
        let (from, to) = (
            date(&r.valid_from, "valid_from")?,
            date(&r.valid_to, "valid_to")?,
        );
        let (Some(from), Some(to)) = (from, to) else {
            return Err(Status::invalid_argument(
                "the application needs its requested validity (valid_from, valid_to)",
            ));
        };
        let today = chrono::Utc::now().date_naive();
        if to < from || to < today {
            return Err(Status::invalid_argument(format!(
                "validity {from} to {to} is empty or already over"
            )));
        }
        if tenant.start.is_some_and(|s| from < s) || tenant.end.is_some_and(|e| to > e) {
            return Err(Status::invalid_argument(format!(
                "validity {from} to {to} must lie within the operating agreement ({} to {})",
                tenant.start.map(|d| d.to_string()).unwrap_or_default(),
                tenant.end.map(|d| d.to_string()).unwrap_or_default()
            )));
        }
        if r.columns.is_empty() {
            return Err(Status::invalid_argument(
                "the application lists the exact columns it needs, per dataset",
            ));
        }
        let mut requested = Vec::new();
        let mut approved = ColumnSet::new();
        for c in &r.columns {
            let d = self
                .0
                .store
                .dataset(&c.dataset)
                .map_err(internal)?
                .ok_or_else(|| Status::not_found(format!("no dataset `{}`", c.dataset)))?;
            d.usable_by(&tenant_name).map_err(|why| match why {
                DatasetRefusal::AwaitsImport { .. } => Status::failed_precondition(why.to_string()),
                DatasetRefusal::NotVisible { .. } => Status::not_found(why.to_string()),
            })?;
            if let Some(why) = super::dataset_life::retired_refusal(&d, "new scenarios") {
                return Err(Status::failed_precondition(why));
            }
            if !d.fields.iter().any(|f| f.name == c.column) {
                return Err(Status::invalid_argument(format!(
                    "dataset {} has no column `{}`",
                    d.name, c.column
                )));
            }
            let justification = text(
                &c.justification,
                &format!("a justification for {}.{}", d.name, c.column),
                true,
            )?;
            if !approved
                .entry(d.name.clone())
                .or_default()
                .insert(c.column.clone())
            {
                return Err(Status::invalid_argument(format!(
                    "{}.{} is listed twice",
                    d.name, c.column
                )));
            }
            requested.push(ColumnRequest {
                dataset: d.name.clone(),
                column: c.column.clone(),
                justification,
            });
        }
        let record = ScenarioRecord {
            name: r.name.trim().to_string(),
            tenant: tenant_name,
            title: text(&r.title, "a title", true)?,
            k: r.k,
            second_reviewer: r.second_reviewer,
            dp: r.dp.as_ref().map(dp_from_pb),
            created_by: user.id.clone(),
            created_at_ms: now_ms(),
            status: ScenarioStatus::CenterReview,
            purpose: text(&r.purpose, "a purpose", true)?,
            domain: r.domain.trim().to_string(),
            outputs: text(&r.outputs, "the expected outputs", true)?,
            valid_from: Some(from),
            valid_to: Some(to),
            requested,
            approved,
            reviews: Vec::new(),
            stage_since: Some(today),
            pending_units: Default::default(),
        };
        record
            .validate(self.0.engine.rules().k)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !self.0.scenarios.create(&record).map_err(internal)? {
            return Err(Status::already_exists(format!(
                "scenario `{}` exists (names are never reused)",
                record.name
            )));
        }
        self.0.store.flush().map_err(internal)?;
        Ok(self.scenario_pb(&record))
    }

    pub(crate) fn review_scenario_inner(
        &self,
        user: &UserRecord,
        r: &pb::ScenarioDecision,
    ) -> Result<pb::Scenario, Status> {
        let reason = text(&r.reason, "a reason (--reason)", true)?;
        let current = self.visible_scenario(user, &r.name)?;
        let units = self.units_of(&current)?;
        let narrower = column_set(&r.columns)?;
        let today = chrono::Utc::now().date_naive();
        let who = Reviewer {
            id: &user.id,
            role: user.role,
            unit: user.unit.as_deref(),
        };
        let updated = self
            .0
            .scenarios
            .update(&r.name, |s| {
                s.decide(
                    &who,
                    r.approve,
                    &reason,
                    narrower.clone(),
                    &units,
                    today,
                    now_ms(),
                )
            })
            .map_err(internal)?;
        self.changed("scenario", &r.name, updated)
            .map(|s| self.scenario_pb(&s))
    }

    pub(crate) fn revoke_scenario_inner(
        &self,
        user: &UserRecord,
        r: &pb::ScenarioDecision,
    ) -> Result<pb::Scenario, Status> {
        let reason = text(&r.reason, "a reason (--reason)", true)?;
        let by = user.id.clone();
        let updated = self
            .0
            .scenarios
            .update(&r.name, |s| {
                if matches!(s.status, ScenarioStatus::Revoked | ScenarioStatus::Rejected) {
                    return Err(ScenarioRefusal::AlreadyClosed {
                        scenario: s.name.clone(),
                        status: s.status,
                    });
                }
                let mut s = s.clone();
                s.reviews.push(ScenarioReview {
                    stage: s.status,
                    by: by.clone(),
                    approve: false,
                    reason: format!("revoked: {reason}"),
                    at_ms: now_ms(),
                    removed: Vec::new(),
                });
                s.status = ScenarioStatus::Revoked;
                s.pending_units.clear();
                Ok(s)
            })
            .map_err(internal)?;
        self.changed("scenario", &r.name, updated)
            .map(|s| self.scenario_pb(&s))
    }

    /// Review steps past their deadline, oldest first.
    pub(crate) fn overdue_inner(&self) -> Result<pb::ListScenariosResponse, Status> {
        let holidays = self.0.cfg.governance.holiday_dates();
        let today = chrono::Utc::now().date_naive();
        let mut late: Vec<ScenarioRecord> = self
            .0
            .scenarios
            .all()
            .map_err(internal)?
            .into_iter()
            .filter(|s| s.deadline(&holidays).is_some_and(|d| d < today))
            .collect();
        late.sort_by_key(|s| s.deadline(&holidays));
        Ok(pb::ListScenariosResponse {
            scenarios: late.iter().map(|s| to_pb(s, &holidays)).collect(),
        })
    }

    /// Scenario `name` as `user` may see it, or NotFound.
    pub(crate) fn visible_scenario(
        &self,
        user: &UserRecord,
        name: &str,
    ) -> Result<ScenarioRecord, Status> {
        self.0
            .scenarios
            .get(name)
            .map_err(internal)?
            .filter(|s| self.sees_scenario(user, s))
            .ok_or_else(|| Status::not_found(format!("no scenario `{name}` visible to you")))
    }

    pub(crate) fn list_scenarios_inner(
        &self,
        user: &UserRecord,
    ) -> Result<pb::ListScenariosResponse, Status> {
        Ok(pb::ListScenariosResponse {
            scenarios: self
                .0
                .scenarios
                .all()
                .map_err(internal)?
                .iter()
                .filter(|s| self.sees_scenario(user, s))
                .map(|s| self.scenario_pb(s))
                .collect(),
        })
    }

    pub(crate) fn budget_inner(&self, user: &UserRecord, name: &str) -> Result<pb::Budget, Status> {
        let s = self.visible_scenario(user, name)?;
        let dp = s.dp.ok_or_else(|| {
            Status::failed_precondition(format!(
                "scenario `{name}` does not run in differential-privacy mode: it has no budget"
            ))
        })?;
        let spent = self.0.scenarios.spent(name).map_err(internal)?;
        Ok(pb::Budget {
            scenario: s.name,
            epsilon_total: dp.epsilon_total,
            epsilon_spent: spent.epsilon,
            epsilon_left: (dp.epsilon_total - spent.epsilon).max(0.0),
            delta_total: dp.delta_total,
            delta_spent: spent.delta,
            queries: spent.queries,
        })
    }
}
