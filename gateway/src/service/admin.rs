//! AdminService (users and certificates) and AuditService.

use erhai_proto::v1 as pb;
use erhai_proto::v1::admin_service_server::AdminService;
use erhai_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use super::{Gateway, convert, internal};
use crate::audit::EventFilter;
use crate::authz::{Action, Role};
use crate::state::{UserRecord, now_ms};

/// Ids and names: what a certificate common name and a tenant or unit name may contain.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl Gateway {
    fn create_user_inner(
        &self,
        r: pb::CreateUserRequest,
    ) -> Result<pb::CreateUserResponse, Status> {
        if !valid_name(&r.id) {
            return Err(Status::invalid_argument(format!(
                "user id `{}` is invalid: use 1-64 lower-case letters, digits, '-', '_' or '.'",
                r.id
            )));
        }
        let role: Role = r.role.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "unknown role `{}`; expected one of: {}",
                r.role,
                <Role as strum::VariantNames>::VARIANTS.join(", ")
            ))
        })?;
        let name = r.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Status::invalid_argument(
                "name must be 1 to 100 characters (real-name registration)",
            ));
        }
        let opt = |s: &str| {
            if s.is_empty() {
                None
            } else {
                Some(s.to_string())
            }
        };
        let (tenant, unit) = (opt(&r.tenant), opt(&r.unit));
        for (what, v) in [("tenant", &tenant), ("unit", &unit)] {
            if let Some(v) = v
                && !valid_name(v)
            {
                return Err(Status::invalid_argument(format!(
                    "{what} `{v}` is invalid: use lower-case letters, digits, '-', '_' or '.'"
                )));
            }
        }
        match role {
            Role::Analyst if tenant.is_none() => {
                return Err(Status::invalid_argument(
                    "an analyst belongs to a tenant: give --tenant",
                ));
            }
            Role::Provider if unit.is_none() => {
                return Err(Status::invalid_argument(
                    "a provider belongs to a data-provider unit: give --unit",
                ));
            }
            Role::Admin | Role::Auditor | Role::Provider | Role::Center | Role::Authority
                if tenant.is_some() =>
            {
                return Err(Status::invalid_argument(format!(
                    "role {role} does not belong to a tenant"
                )));
            }
            _ => {}
        }
        if let Some(t) = &tenant
            && self.0.tenants.get(t).map_err(internal)?.is_none()
        {
            return Err(Status::invalid_argument(format!(
                "tenant `{t}` is not registered: create it first (`erhai tenant create {t}`)"
            )));
        }
        if r.valid_days < 0 || r.valid_days > 3650 {
            return Err(Status::invalid_argument(
                "valid_days must be between 0 (default) and 3650",
            ));
        }
        let days = if r.valid_days == 0 {
            self.0.cfg.user_cert_days
        } else {
            r.valid_days as u32
        };
        if self.0.store.user(&r.id).map_err(internal)?.is_some() {
            return Err(Status::already_exists(format!(
                "user `{}` already exists",
                r.id
            )));
        }
        let (cert_pem, fp) = self
            .0
            .ca
            .issue_user(&r.id, &r.public_key_pem, days)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let user = UserRecord {
            id: r.id.clone(),
            name: name.to_string(),
            role,
            tenant,
            unit,
            created_at_ms: now_ms(),
            expires_at_ms: None,
            disabled: false,
            cert_sha256: fp,
        };
        if !self.0.store.insert_user(&user).map_err(internal)? {
            return Err(Status::already_exists(format!(
                "user `{}` already exists",
                r.id
            )));
        }
        Ok(pb::CreateUserResponse {
            user: Some(convert::user(&user)),
            cert_pem,
            ca_pem: self.0.ca.ca_pem().to_string(),
        })
    }
}

/// An admin who can always act: enabled and without an expiry. The platform keeps at least
/// one, or nobody could manage users again short of editing the store by hand.
fn lasting_admin(u: &UserRecord) -> bool {
    u.role == Role::Admin && !u.disabled && u.expires_at_ms.is_none()
}

impl Gateway {
    /// Changes user `id` by `change` (under the users lock), refusing a change that would leave
    /// no enabled admin without an expiry. `what` names the change in the refusal.
    fn change_user(
        &self,
        id: &str,
        what: &str,
        change: impl FnOnce(&mut UserRecord) -> Result<(), Status>,
    ) -> Result<UserRecord, Status> {
        let _guard = self.0.users_lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self
            .0
            .store
            .user(id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("user `{id}` does not exist")))?;
        let mut after = before.clone();
        change(&mut after)?;
        if lasting_admin(&before) && !lasting_admin(&after) {
            let others = self
                .0
                .store
                .users()
                .map_err(internal)?
                .iter()
                .filter(|u| u.id != id && lasting_admin(u))
                .count();
            if others == 0 {
                return Err(Status::failed_precondition(format!(
                    "cannot {what} user `{id}`: it is the last enabled admin without an expiry, \
                     and nobody could manage users after it; create another admin first \
                     (`erhai admin user add --role admin …`)"
                )));
            }
        }
        self.0.store.update_user(&after).map_err(internal)?;
        Ok(after)
    }

    fn reissue_user_inner(
        &self,
        r: &pb::ReissueUserRequest,
    ) -> Result<pb::CreateUserResponse, Status> {
        if r.valid_days < 0 || r.valid_days > 3650 {
            return Err(Status::invalid_argument(
                "valid_days must be between 0 (default) and 3650",
            ));
        }
        let days = if r.valid_days == 0 {
            self.0.cfg.user_cert_days
        } else {
            r.valid_days as u32
        };
        let mut cert = String::new();
        let user = self.change_user(&r.id, "reissue", |u| {
            let (pem, fp) = self
                .0
                .ca
                .issue_user(&u.id, &r.public_key_pem, days)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            // The record names one fingerprint: from now on only the new certificate is
            // accepted (identity.rs compares it at every call).
            u.cert_sha256 = fp;
            cert = pem;
            Ok(())
        })?;
        Ok(pb::CreateUserResponse {
            user: Some(convert::user(&user)),
            cert_pem: cert,
            ca_pem: self.0.ca.ca_pem().to_string(),
        })
    }
}

#[tonic::async_trait]
impl AdminService for Gateway {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let object = req.get_ref().id.clone();
        let user = self.authorize(&req, Action::CreateUser, &object)?;
        let r = self.create_user_inner(req.into_inner());
        self.finish(&user, Action::CreateUser, &object, r)
            .map(Response::new)
    }

    async fn list_users(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let user = self.authorize(&req, Action::ListUsers, "")?;
        let r = self
            .0
            .store
            .users()
            .map(|u| pb::ListUsersResponse {
                users: u.iter().map(convert::user).collect(),
            })
            .map_err(internal);
        self.finish(&user, Action::ListUsers, "", r)
            .map(Response::new)
    }

    async fn set_user_expiry(
        &self,
        req: Request<pb::SetUserExpiryRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let object = req.get_ref().id.clone();
        let user = self.authorize(&req, Action::SetUserExpiry, &object)?;
        let r = req.get_ref();
        let at = (r.expires_at_ms != 0).then_some(r.expires_at_ms);
        let r = self
            .change_user(&r.id, "set an expiry on", |u| {
                u.expires_at_ms = at;
                Ok(())
            })
            .map(|u| convert::user(&u));
        self.finish(&user, Action::SetUserExpiry, &object, r)
            .map(Response::new)
    }

    async fn reissue_user(
        &self,
        req: Request<pb::ReissueUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let object = req.get_ref().id.clone();
        self.unary(&req, Action::ReissueUser, &object, |_, r| {
            self.reissue_user_inner(r)
        })
    }

    async fn set_user_disabled(
        &self,
        req: Request<pb::SetUserDisabledRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = req.get_ref();
        let reason = r.reason.trim();
        let (action, object) = if r.disabled {
            (Action::DisableUser, format!("{} ({reason})", r.id))
        } else {
            (Action::EnableUser, r.id.clone())
        };
        let disabled = r.disabled;
        self.unary(&req, action, &object, |_, r| {
            if disabled && (reason.is_empty() || reason.chars().count() > 500) {
                return Err(Status::invalid_argument(
                    "disabling a user needs a reason (1 to 500 characters): it is audited",
                ));
            }
            self.change_user(&r.id, "disable", |u| {
                u.disabled = disabled;
                Ok(())
            })
            .map(|u| convert::user(&u))
        })
    }

    async fn who_am_i(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let user = self.authorize(&req, Action::WhoAmI, "")?;
        let r = Ok(pb::WhoAmIResponse {
            user: Some(convert::user(&user)),
        });
        self.finish(&user, Action::WhoAmI, "", r).map(Response::new)
    }
}

#[tonic::async_trait]
impl AuditService for Gateway {
    async fn list_events(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let user = self.authorize(&req, Action::ListAudit, "")?;
        let r = {
            let q = req.get_ref();
            let limit = match (q.all, q.limit) {
                (true, _) => 0,
                (false, 0) => 1000,
                (false, n) => n.min(100_000) as usize,
            };
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let filter = EventFilter {
                user: opt(&q.user),
                tenant: opt(&q.tenant),
                action: opt(&q.action),
                object: opt(&q.object),
                since_ms: (q.since_ms != 0).then_some(q.since_ms),
                until_ms: (q.until_ms != 0).then_some(q.until_ms),
            };
            self.0
                .audit
                .list(limit, &filter)
                .map(|events| pb::ListAuditResponse {
                    events: events
                        .into_iter()
                        .map(|e| pb::AuditEvent {
                            seq: e.seq,
                            time_ms: e.time_ms,
                            user: e.user,
                            role: e.role,
                            tenant: e.tenant,
                            action: e.action,
                            object: e.object,
                            outcome: e.outcome,
                            reason: e.reason,
                            hash: e.hash,
                            prev_hash: e.prev_hash,
                            digest: e.digest,
                        })
                        .collect(),
                })
                .map_err(internal)
        };
        self.finish(&user, Action::ListAudit, "", r)
            .map(Response::new)
    }

    async fn verify(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let user = self.authorize(&req, Action::VerifyAudit, "")?;
        let r = self.0.audit.verify().map_err(internal).map(|v| match v {
            Ok(v) => pb::VerifyAuditResponse {
                ok: true,
                events: v.events,
                checkpoints: v.checkpoints,
                detail: format!(
                    "{} events, chain intact; {} signed checkpoints match",
                    v.events, v.checkpoints
                ),
            },
            Err(detail) => pb::VerifyAuditResponse {
                ok: false,
                events: 0,
                checkpoints: 0,
                detail: detail.to_string(),
            },
        });
        self.finish(&user, Action::VerifyAudit, "", r)
            .map(Response::new)
    }

    async fn lineage(
        &self,
        req: Request<pb::LineageRequest>,
    ) -> Result<Response<pb::LineageResponse>, Status> {
        let q = req.get_ref();
        let object = format!("{}{}", q.dataset, q.release);
        let user = self.authorize(&req, Action::Lineage, &object)?;
        let r = self.lineage_inner(&user, req.get_ref());
        self.finish(&user, Action::Lineage, &object, r)
            .map(Response::new)
    }

    async fn latest_checkpoint(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let user = self.authorize(&req, Action::VerifyAudit, "")?;
        let r = self
            .0
            .audit
            .latest_checkpoint()
            .map_err(internal)
            .and_then(|c| c.ok_or_else(|| Status::not_found("no checkpoint has been signed yet")))
            .map(|c| pb::Checkpoint {
                seq: c.seq,
                hash: c.hash,
                time_ms: c.time_ms,
                public_key: c.public_key,
                signature: c.signature,
            });
        self.finish(&user, Action::VerifyAudit, "checkpoint", r)
            .map(Response::new)
    }
}
