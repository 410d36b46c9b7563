//! Tenants and their operating agreements: creation (admin), agreement dates and suspension,
//! restoration, termination (authority), rectification reports (the suspended tenant).

use chrono::{Datelike, NaiveDate};
use erhai_proto::v1 as pb;
use tonic::Status;

use super::{Gateway, internal};
use crate::authz::Role;
use crate::state::{UserRecord, now_ms};
use crate::tenant::{TenantRecord, TenantRefusal, TenantStatus, Transition};

/// Longest reason or report accepted.
const MAX_TEXT: usize = 4000;

pub(crate) fn to_pb(t: &TenantRecord) -> pb::Tenant {
    pb::Tenant {
        name: t.name.clone(),
        title: t.title.clone(),
        status: t.status.name().into(),
        start: t.start.map(|d| d.to_string()).unwrap_or_default(),
        end: t.end.map(|d| d.to_string()).unwrap_or_default(),
        history: t
            .history
            .iter()
            .map(|h| pb::TenantEvent {
                what: h.what.clone(),
                status: h.status.name().into(),
                by: h.by.clone(),
                reason: h.reason.clone(),
                at_ms: h.at_ms,
            })
            .collect(),
        created_by: t.created_by.clone(),
        created_at_ms: t.created_at_ms,
    }
}

/// A non-empty reason of bounded length.
fn reason(text: &str, what: &str) -> Result<String, Status> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} needs a reason (--reason)"
        )));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(Status::invalid_argument(format!(
            "the text is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(t.to_string())
}

fn date(s: &str, what: &str) -> Result<NaiveDate, Status> {
    crate::dates::parse_day(s, chrono::Utc::now().date_naive())
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

impl Gateway {
    pub(crate) fn create_tenant_inner(
        &self,
        user: &UserRecord,
        r: &pb::Tenant,
    ) -> Result<pb::Tenant, Status> {
        let name = r.name.trim();
        if !super::admin::valid_name(name) {
            return Err(Status::invalid_argument(format!(
                "tenant `{name}` is invalid: use lower-case letters, digits, '-', '_' or '.'"
            )));
        }
        let record = TenantRecord {
            name: name.to_string(),
            title: r.title.trim().to_string(),
            status: TenantStatus::Pending,
            start: None,
            end: None,
            history: Vec::new(),
            created_by: user.id.clone(),
            created_at_ms: now_ms(),
        };
        if !self.0.tenants.create(&record).map_err(internal)? {
            return Err(Status::already_exists(format!("tenant `{name}` exists")));
        }
        self.0.store.flush().map_err(internal)?;
        Ok(to_pb(&record))
    }

    /// The tenant `name` as `user` may see it: a tenant's own users see their own only
    /// (an empty name means their own).
    pub(crate) fn get_tenant_inner(
        &self,
        user: &UserRecord,
        name: &str,
    ) -> Result<pb::Tenant, Status> {
        let own = user.tenant.as_deref();
        let name = match (name.trim(), own) {
            ("", Some(t)) => t,
            ("", None) => return Err(Status::invalid_argument("name a tenant")),
            (n, _) => n,
        };
        let mine_only = matches!(user.role, Role::Analyst | Role::Reviewer) && own.is_some();
        self.0
            .tenants
            .get(name)
            .map_err(internal)?
            .filter(|t| !mine_only || Some(t.name.as_str()) == own)
            .map(|t| to_pb(&t))
            .ok_or_else(|| Status::not_found(format!("no tenant `{name}` visible to you")))
    }

    pub(crate) fn list_tenants_inner(&self) -> Result<pb::ListTenantsResponse, Status> {
        Ok(pb::ListTenantsResponse {
            tenants: self
                .0
                .tenants
                .all()
                .map_err(internal)?
                .iter()
                .map(to_pb)
                .collect(),
        })
    }

    fn change_tenant(
        &self,
        name: &str,
        change: impl Fn(&TenantRecord) -> Result<TenantRecord, TenantRefusal>,
    ) -> Result<pb::Tenant, Status> {
        let updated = self.0.tenants.update(name, change).map_err(internal)?;
        self.changed("tenant", name, updated).map(|t| to_pb(&t))
    }

    pub(crate) fn set_agreement_inner(
        &self,
        user: &UserRecord,
        r: &pb::AgreementRequest,
    ) -> Result<pb::Tenant, Status> {
        let why = reason(&r.reason, "an agreement")?;
        let (start, end) = (date(&r.start, "start")?, date(&r.end, "end")?);
        if end < start {
            return Err(Status::invalid_argument(format!(
                "the agreement ends ({end}) before it starts ({start})"
            )));
        }
        let years = self.0.cfg.governance.max_agreement_years;
        let limit = start
            .with_year(start.year() + years as i32)
            .unwrap_or(start)
            .pred_opt()
            .unwrap_or(start);
        if end > limit {
            return Err(Status::invalid_argument(format!(
                "an operating agreement lasts at most {years} years: from {start} it may end on \
                 {limit} at the latest"
            )));
        }
        let by = user.id.clone();
        self.change_tenant(&r.tenant, |t| {
            if matches!(t.status, TenantStatus::Terminated | TenantStatus::Suspended) {
                return Err(TenantRefusal::DatesFixed {
                    tenant: t.name.clone(),
                    status: t.status,
                });
            }
            let mut t = t.clone();
            t.start = Some(start);
            t.end = Some(end);
            t.status = TenantStatus::Active;
            t.history.push(Transition {
                what: "agreement".into(),
                status: TenantStatus::Active,
                by: by.clone(),
                reason: format!("{start} to {end}: {why}"),
                at_ms: now_ms(),
            });
            Ok(t)
        })
    }

    pub(crate) fn change_status_inner(
        &self,
        user: &UserRecord,
        r: &pb::TenantStatusRequest,
    ) -> Result<pb::Tenant, Status> {
        let why = reason(&r.reason, &format!("`{}`", r.action))?;
        let (from, to): (&[TenantStatus], TenantStatus) = match r.action.as_str() {
            "suspend" => (&[TenantStatus::Active], TenantStatus::Suspended),
            "restore" => (&[TenantStatus::Suspended], TenantStatus::Active),
            "terminate" => (
                &[
                    TenantStatus::Pending,
                    TenantStatus::Active,
                    TenantStatus::Suspended,
                ],
                TenantStatus::Terminated,
            ),
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown action `{other}`; use suspend, restore or terminate"
                )));
            }
        };
        let by = user.id.clone();
        let what = r.action.clone();
        self.change_tenant(&r.tenant, |t| {
            if !from.contains(&t.status) {
                return Err(TenantRefusal::StatusChange {
                    tenant: t.name.clone(),
                    status: t.status,
                    change: what.clone(),
                });
            }
            let mut t = t.clone();
            t.status = to;
            t.history.push(Transition {
                what: what.clone(),
                status: to,
                by: by.clone(),
                reason: why.clone(),
                at_ms: now_ms(),
            });
            Ok(t)
        })
    }

    pub(crate) fn rectify_inner(
        &self,
        user: &UserRecord,
        r: &pb::RectificationRequest,
    ) -> Result<pb::Tenant, Status> {
        let report = reason(&r.report, "a rectification report")?;
        let tenant = Self::tenant_of(user)?.to_string();
        let by = user.id.clone();
        self.change_tenant(&tenant, |t| {
            if t.status != TenantStatus::Suspended {
                return Err(TenantRefusal::NotSuspended {
                    tenant: t.name.clone(),
                    status: t.status,
                });
            }
            let mut t = t.clone();
            t.history.push(Transition {
                what: "rectification".into(),
                status: TenantStatus::Suspended,
                by: by.clone(),
                reason: report.clone(),
                at_ms: now_ms(),
            });
            Ok(t)
        })
    }
}
