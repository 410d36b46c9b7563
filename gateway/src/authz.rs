//! The permission matrix: which role may call which action. One table, mirrored in
//! ARCHITECTURE.md; every RPC asks it before doing anything. Object-level rules (own tenant, own
//! unit, never one's own job) are applied by the services on top.

use serde::{Deserialize, Serialize};

/// A user's role; its names (serde, `Display`, `FromStr`, [`Role::name`]) are the API's and
/// the certificates'.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Platform operator: users and tenants; sees no data, approves nothing.
    Admin,
    /// Data-provider unit staff: registers datasets.
    Provider,
    /// Operating-entity (tenant) analyst: runs queries, fetches released results.
    Analyst,
    /// Export reviewer: approves or rejects results.
    Reviewer,
    /// Supervisor or evaluator: reads the audit chain.
    Auditor,
    /// The data operation service center: first review of scenario applications.
    Center,
    /// The data authority: operating agreements, suspensions, second review.
    Authority,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Provider,
        Role::Analyst,
        Role::Reviewer,
        Role::Auditor,
        Role::Center,
        Role::Authority,
    ];

    /// The role's name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Every action an RPC performs; its name is what the audit chain records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// Create a user and issue a certificate.
    CreateUser,
    /// List users.
    ListUsers,
    /// Set a user's expiry.
    SetUserExpiry,
    /// Issue a user a new certificate (the previous one stops working).
    ReissueUser,
    /// Disable a user: every call of theirs is refused until enabled.
    DisableUser,
    /// Enable a disabled user.
    EnableUser,
    /// Who am I.
    WhoAmI,
    /// Register a dataset.
    RegisterDataset,
    /// Approve the import of a tenant's social data.
    ApproveImport,
    /// List datasets.
    ListDatasets,
    /// Show a dataset's schema and policy.
    GetDataset,
    /// Retire a dataset: no new queries, scenarios or versions.
    RetireDataset,
    /// Delete a registration made by mistake (never used): files and keys destroyed.
    DeleteDataset,
    /// Submit a query.
    SubmitQuery,
    /// Check a query without running it.
    CheckQuery,
    /// Run a query on development samples.
    RunDevQuery,
    /// Submit a development job's SQL to production.
    PromoteJob,
    /// Show a job.
    GetJob,
    /// List jobs.
    ListJobs,
    /// List jobs awaiting review.
    ListPending,
    /// Show a job for review, with a preview.
    ShowReview,
    /// Approve or reject a job.
    Decide,
    /// Download a released result.
    FetchRelease,
    /// Read the platform's public key (verifies receipts offline).
    PlatformKey,
    /// List or show scenarios.
    ListScenarios,
    /// Show a scenario's privacy budget.
    ScenarioBudget,
    /// Apply for a scenario.
    ApplyScenario,
    /// Review a scenario application (center, authority, provider in turn).
    ReviewScenario,
    /// Revoke a scenario.
    RevokeScenario,
    /// List review steps past their deadline.
    OverdueScenarios,
    /// File a data-quality request.
    FileQuality,
    /// List data-quality requests.
    ListQuality,
    /// Answer and close a data-quality request.
    AnswerQuality,
    /// Produce a tenant's periodic report.
    TenantReport,
    /// Create a tenant.
    CreateTenant,
    /// List tenants.
    ListTenants,
    /// Show a tenant and its agreement's history (a tenant's own users: their own).
    GetTenant,
    /// Set a tenant's agreement dates.
    SetAgreement,
    /// Suspend, restore or terminate a tenant.
    ChangeTenantStatus,
    /// Submit a rectification report (a suspended tenant).
    SubmitRectification,
    /// Read audit events.
    ListAudit,
    /// Verify the audit chain.
    VerifyAudit,
    /// Trace a dataset or a release.
    Lineage,
}

impl Action {
    /// The action's name as audited.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The permission matrix.
pub const MATRIX: &[(Action, &[Role])] = &[
    (Action::CreateUser, &[Role::Admin]),
    (Action::ListUsers, &[Role::Admin]),
    (Action::SetUserExpiry, &[Role::Admin]),
    (Action::ReissueUser, &[Role::Admin]),
    (Action::DisableUser, &[Role::Admin]),
    (Action::EnableUser, &[Role::Admin]),
    (Action::WhoAmI, &Role::ALL),
    (Action::RegisterDataset, &[Role::Provider, Role::Analyst]),
    (Action::ApproveImport, &[Role::Authority]),
    (
        Action::ListDatasets,
        &[
            Role::Admin,
            Role::Provider,
            Role::Analyst,
            Role::Reviewer,
            Role::Auditor,
        ],
    ),
    (
        Action::GetDataset,
        &[
            Role::Admin,
            Role::Provider,
            Role::Analyst,
            Role::Reviewer,
            Role::Auditor,
        ],
    ),
    // The owner retires its data; the authority may too (a legal basis that lapsed). Only the
    // owner corrects its own mistake by deleting; the admin sees no data and decides none.
    (Action::RetireDataset, &[Role::Provider, Role::Authority]),
    (Action::DeleteDataset, &[Role::Provider]),
    (Action::SubmitQuery, &[Role::Analyst]),
    (Action::CheckQuery, &[Role::Analyst]),
    (Action::RunDevQuery, &[Role::Analyst]),
    (Action::PromoteJob, &[Role::Analyst]),
    (
        Action::GetJob,
        &[Role::Analyst, Role::Reviewer, Role::Auditor],
    ),
    (
        Action::ListJobs,
        &[Role::Analyst, Role::Reviewer, Role::Auditor],
    ),
    (Action::ListPending, &[Role::Reviewer]),
    (Action::ShowReview, &[Role::Reviewer]),
    (Action::Decide, &[Role::Reviewer]),
    (Action::FetchRelease, &[Role::Analyst]),
    (Action::PlatformKey, &Role::ALL),
    (
        Action::ListScenarios,
        &[
            Role::Admin,
            Role::Analyst,
            Role::Reviewer,
            Role::Auditor,
            Role::Center,
            Role::Authority,
            Role::Provider,
        ],
    ),
    (
        Action::ScenarioBudget,
        &[Role::Admin, Role::Analyst, Role::Reviewer, Role::Auditor],
    ),
    (Action::ApplyScenario, &[Role::Analyst]),
    (
        Action::ReviewScenario,
        &[Role::Center, Role::Authority, Role::Provider],
    ),
    (Action::RevokeScenario, &[Role::Authority]),
    (Action::OverdueScenarios, &[Role::Authority]),
    (Action::FileQuality, &[Role::Analyst]),
    (
        Action::ListQuality,
        &[
            Role::Analyst,
            Role::Provider,
            Role::Authority,
            Role::Center,
            Role::Auditor,
        ],
    ),
    (Action::AnswerQuality, &[Role::Provider]),
    (
        Action::TenantReport,
        &[Role::Authority, Role::Analyst, Role::Auditor],
    ),
    (Action::CreateTenant, &[Role::Admin]),
    (
        Action::ListTenants,
        &[Role::Admin, Role::Authority, Role::Center, Role::Auditor],
    ),
    (
        Action::GetTenant,
        &[
            Role::Admin,
            Role::Authority,
            Role::Center,
            Role::Auditor,
            Role::Analyst,
            Role::Reviewer,
        ],
    ),
    (Action::SetAgreement, &[Role::Authority]),
    (Action::ChangeTenantStatus, &[Role::Authority]),
    (Action::SubmitRectification, &[Role::Analyst]),
    (Action::ListAudit, &[Role::Auditor, Role::Admin]),
    (Action::VerifyAudit, &[Role::Auditor, Role::Admin]),
    (
        Action::Lineage,
        &[Role::Auditor, Role::Admin, Role::Provider, Role::Analyst],
    ),
];

/// The roles allowed to perform `action`.
pub fn roles_for(action: Action) -> &'static [Role] {
    MATRIX
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, r)| *r)
        .unwrap_or(&[])
}

/// Whether `role` may perform `action`.
pub fn permits(role: Role, action: Action) -> bool {
    roles_for(action).contains(&role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_complete_and_admin_sees_no_data() {
        assert!(!permits(Role::Admin, Action::SubmitQuery));
        assert!(!permits(Role::Admin, Action::FetchRelease));
        assert!(!permits(Role::Admin, Action::Decide));
        assert!(!permits(Role::Analyst, Action::Decide));
        assert!(permits(Role::Reviewer, Action::Decide));
        assert_eq!(Action::SubmitQuery.name(), "submit_query");
        for (a, roles) in MATRIX {
            assert!(!roles.is_empty(), "{a:?} has no role");
        }
    }

    #[test]
    fn names_are_the_serde_names() {
        let serde_name = |v: serde_json::Value| v.as_str().map(str::to_string);
        for r in Role::ALL {
            assert_eq!(serde_name(serde_json::json!(r)).as_deref(), Some(r.name()));
            assert_eq!(r.name().parse::<Role>().ok(), Some(r));
            assert_eq!(r.to_string(), r.name());
        }
        assert_eq!(
            <Role as strum::VariantNames>::VARIANTS.len(),
            Role::ALL.len()
        );
        for (a, _) in MATRIX {
            assert_eq!(serde_name(serde_json::json!(a)).as_deref(), Some(a.name()));
        }
        use crate::scenario::ScenarioStatus;
        use crate::state::JobState;
        use crate::tenant::TenantStatus;
        for (json, name) in [
            (
                serde_json::json!(JobState::AwaitingReview),
                JobState::AwaitingReview.name(),
            ),
            (
                serde_json::json!(TenantStatus::Suspended),
                TenantStatus::Suspended.name(),
            ),
            (
                serde_json::json!(ScenarioStatus::ProviderConfirmation),
                ScenarioStatus::ProviderConfirmation.name(),
            ),
        ] {
            assert_eq!(serde_name(json).as_deref(), Some(name));
        }
    }
}
