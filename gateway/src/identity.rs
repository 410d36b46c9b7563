//! Who is calling: the user named by the verified client certificate, looked up at every call,
//! so that a disabled or expired user (or a replaced certificate) is refused on the next call.

use tonic::{Request, Status};

use crate::pki::{common_name, fingerprint};
use crate::state::{Store, UserRecord, now_ms};

/// The certificate's user id (for audit, even when the lookup fails) and the outcome.
pub fn resolve<T>(store: &Store, req: &Request<T>) -> (String, Result<UserRecord, Status>) {
    let Some(certs) = req.peer_certs() else {
        return (
            "-".into(),
            Err(Status::unauthenticated(
                "no client certificate: erhai requires mutual TLS",
            )),
        );
    };
    let Some(leaf) = certs.first() else {
        return (
            "-".into(),
            Err(Status::unauthenticated("empty client certificate chain")),
        );
    };
    let id = match common_name(leaf.as_ref()) {
        Ok(id) => id,
        Err(e) => return ("-".into(), Err(Status::unauthenticated(e.to_string()))),
    };
    let user = match store.user(&id) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return (
                id.clone(),
                Err(Status::unauthenticated(format!(
                    "the certificate names user `{id}`, who is not registered"
                ))),
            );
        }
        Err(e) => return (id, Err(crate::state::store_status(e))),
    };
    if user.cert_sha256 != fingerprint(leaf.as_ref()) {
        return (
            id.clone(),
            Err(Status::unauthenticated(format!(
                "this certificate of user `{id}` was replaced by a newer one (`erhai admin user reissue`): use the identity bundle written then"
            ))),
        );
    }
    if user.disabled {
        return (
            id.clone(),
            Err(Status::unauthenticated(format!("user `{id}` is disabled"))),
        );
    }
    if let Some(exp) = user.expires_at_ms
        && exp <= now_ms()
    {
        let when = chrono::DateTime::from_timestamp_millis(exp)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| exp.to_string());
        return (
            id.clone(),
            Err(Status::unauthenticated(format!(
                "user `{id}` expired at {when}; ask the platform admin to renew"
            ))),
        );
    }
    (id, Ok(user))
}
