//! Helpers the end-to-end suites share.
#![allow(dead_code)]

use erhai_client::ClientError;
use erhai_devkit::demo::{DEMO_USERS, Platform};
use tonic::Code;

/// The gRPC code and message of a call that must fail.
pub fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (Code, String) {
    match r {
        Err(ClientError::Status(s)) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC error, got {other:?}"),
    }
}

/// A started platform (configuration adjusted by `edit`) with every demo user.
pub async fn platform_with_users(edit: impl FnOnce(&mut erhai_gateway::ServerConfig)) -> Platform {
    erhai::install_crypto_provider();
    let p = Platform::start(None, edit).await.expect("start");
    for (id, name, role, tenant, unit) in DEMO_USERS {
        p.add_user(id, name, role, tenant, unit)
            .await
            .expect("user");
    }
    p
}
