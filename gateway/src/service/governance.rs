//! GovernanceService: tenants and their agreements, scenarios and their review chain and
//! budgets, data-quality requests and tenants' reports. Each call is authorized, handled by the
//! module that holds the workflow (`tenant.rs`, `scenario.rs`, `quality.rs`, `report.rs`) and
//! audited.

use erhai_proto::v1 as pb;
use erhai_proto::v1::governance_service_server::GovernanceService;
use tonic::{Request, Response, Status};

use super::Gateway;
use crate::authz::Action;

#[tonic::async_trait]
impl GovernanceService for Gateway {
    async fn list_scenarios(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListScenariosResponse>, Status> {
        self.unary(&req, Action::ListScenarios, "", |u, _| {
            self.list_scenarios_inner(u)
        })
    }

    async fn get_scenario(
        &self,
        req: Request<pb::ScenarioRef>,
    ) -> Result<Response<pb::Scenario>, Status> {
        let object = req.get_ref().name.clone();
        self.unary(&req, Action::ListScenarios, &object, |u, _| {
            self.visible_scenario(u, &object)
                .map(|s| self.scenario_pb(&s))
        })
    }

    async fn scenario_budget(
        &self,
        req: Request<pb::ScenarioRef>,
    ) -> Result<Response<pb::Budget>, Status> {
        let object = req.get_ref().name.clone();
        self.unary(&req, Action::ScenarioBudget, &object, |u, _| {
            self.budget_inner(u, &object)
        })
    }

    async fn create_tenant(
        &self,
        req: Request<pb::Tenant>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let object = req.get_ref().name.clone();
        self.unary(&req, Action::CreateTenant, &object, |u, r| {
            self.create_tenant_inner(u, r)
        })
    }

    async fn list_tenants(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.unary(&req, Action::ListTenants, "", |_, _| {
            self.list_tenants_inner()
        })
    }

    async fn get_tenant(
        &self,
        req: Request<pb::TenantRef>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let object = req.get_ref().name.clone();
        self.unary(&req, Action::GetTenant, &object, |u, _| {
            self.get_tenant_inner(u, &object)
        })
    }

    async fn set_agreement(
        &self,
        req: Request<pb::AgreementRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let r = req.get_ref();
        let object = format!(
            "{} ({} to {}: {})",
            r.tenant,
            r.start,
            r.end,
            r.reason.trim()
        );
        self.unary(&req, Action::SetAgreement, &object, |u, r| {
            self.set_agreement_inner(u, r)
        })
    }

    async fn change_tenant_status(
        &self,
        req: Request<pb::TenantStatusRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let r = req.get_ref();
        let object = format!("{} ({}: {})", r.tenant, r.action, r.reason.trim());
        self.unary(&req, Action::ChangeTenantStatus, &object, |u, r| {
            self.change_status_inner(u, r)
        })
    }

    async fn submit_rectification(
        &self,
        req: Request<pb::RectificationRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.unary(&req, Action::SubmitRectification, "", |u, r| {
            self.rectify_inner(u, r)
        })
    }

    async fn apply_scenario(
        &self,
        req: Request<pb::Scenario>,
    ) -> Result<Response<pb::Scenario>, Status> {
        let object = req.get_ref().name.clone();
        self.unary(&req, Action::ApplyScenario, &object, |u, r| {
            self.apply_scenario_inner(u, r)
        })
    }

    async fn review_scenario(
        &self,
        req: Request<pb::ScenarioDecision>,
    ) -> Result<Response<pb::Scenario>, Status> {
        let r = req.get_ref();
        let object = format!(
            "{} ({}: {})",
            r.name,
            if r.approve { "approve" } else { "reject" },
            r.reason.trim()
        );
        self.unary(&req, Action::ReviewScenario, &object, |u, r| {
            self.review_scenario_inner(u, r)
        })
    }

    async fn revoke_scenario(
        &self,
        req: Request<pb::ScenarioDecision>,
    ) -> Result<Response<pb::Scenario>, Status> {
        let object = format!("{} ({})", req.get_ref().name, req.get_ref().reason.trim());
        self.unary(&req, Action::RevokeScenario, &object, |u, r| {
            self.revoke_scenario_inner(u, r)
        })
    }

    async fn overdue_scenarios(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListScenariosResponse>, Status> {
        self.unary(&req, Action::OverdueScenarios, "", |_, _| {
            self.overdue_inner()
        })
    }

    async fn file_quality(
        &self,
        req: Request<pb::QualityRequest>,
    ) -> Result<Response<pb::QualityRequest>, Status> {
        let object = req.get_ref().dataset.clone();
        self.unary(&req, Action::FileQuality, &object, |u, r| {
            self.file_quality_inner(u, r)
        })
    }

    async fn list_quality(
        &self,
        req: Request<pb::ListQualityRequest>,
    ) -> Result<Response<pb::ListQualityResponse>, Status> {
        self.unary(&req, Action::ListQuality, "", |u, r| {
            self.list_quality_inner(u, r.open_only)
        })
    }

    async fn answer_quality(
        &self,
        req: Request<pb::QualityAnswer>,
    ) -> Result<Response<pb::QualityRequest>, Status> {
        let object = req.get_ref().id.clone();
        self.unary(&req, Action::AnswerQuality, &object, |u, r| {
            self.answer_quality_inner(u, r)
        })
    }

    async fn tenant_report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let r = req.get_ref();
        let object = format!("{} ({} to {})", r.tenant, r.from, r.to);
        self.unary(&req, Action::TenantReport, &object, |u, r| {
            self.report_inner(u, r)
        })
    }
}
