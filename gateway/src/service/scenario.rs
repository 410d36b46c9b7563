//! Scenarios: creation (by an admin, until the application workflow of the governance issue),
//! listing, and the differential-privacy budget of each.

use erhai_policies::dp::DpSettings;
use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, internal};
use crate::authz::Role;
use crate::scenario::ScenarioRecord;
use crate::state::{UserRecord, now_ms};

pub(crate) fn to_pb(s: &ScenarioRecord) -> pb::Scenario {
    pb::Scenario {
        name: s.name.clone(),
        tenant: s.tenant.clone(),
        title: s.title.clone(),
        k: s.k,
        second_reviewer: s.second_reviewer,
        dp: s.dp.map(|d| pb::DpSettings {
            epsilon_total: d.epsilon_total,
            delta_total: d.delta_total,
            epsilon_per_query: d.epsilon_per_query,
            delta_per_query: d.delta_per_query,
            max_groups_per_unit: d.max_groups_per_unit,
            max_rows_per_unit: d.max_rows_per_unit,
        }),
        created_by: s.created_by.clone(),
        created_at_ms: s.created_at_ms,
    }
}

impl Gateway {
    pub(crate) fn create_scenario_inner(
        &self,
        user: &UserRecord,
        r: &pb::Scenario,
    ) -> Result<pb::Scenario, Status> {
        let record = ScenarioRecord {
            name: r.name.trim().to_string(),
            tenant: r.tenant.trim().to_string(),
            title: r.title.trim().to_string(),
            k: r.k,
            second_reviewer: r.second_reviewer,
            dp: r.dp.as_ref().map(|d| DpSettings {
                epsilon_total: d.epsilon_total,
                delta_total: d.delta_total,
                epsilon_per_query: d.epsilon_per_query,
                delta_per_query: d.delta_per_query,
                max_groups_per_unit: d.max_groups_per_unit,
                max_rows_per_unit: d.max_rows_per_unit,
            }),
            created_by: user.id.clone(),
            created_at_ms: now_ms(),
        };
        record.validate().map_err(Status::invalid_argument)?;
        if !self.0.scenarios.create(&record).map_err(internal)? {
            return Err(Status::already_exists(format!(
                "scenario `{}` exists (names are never reused: its budget stays spent)",
                record.name
            )));
        }
        self.0.store.flush().map_err(internal)?;
        Ok(to_pb(&record))
    }

    /// Whether `user` may see scenario `s`: admins and auditors all, others their tenant's.
    fn sees_scenario(user: &UserRecord, s: &ScenarioRecord) -> bool {
        matches!(user.role, Role::Admin) || Self::sees_tenant(user, &s.tenant)
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
            .filter(|s| Self::sees_scenario(user, s))
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
                .filter(|s| Self::sees_scenario(user, s))
                .map(to_pb)
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
