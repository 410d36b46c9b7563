//! The operators' listener (`metrics_listen`): plain HTTP, GET `/healthz` and `/metrics`. It
//! serves counters and a health bit only, never a dataset, a user's data, SQL or a key, which
//! is why it needs no client certificate; it stays on loopback unless `metrics_public` says
//! otherwise (config.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::service::Gateway;

#[derive(Clone)]
struct Ops {
    gateway: Gateway,
    /// Set while the gRPC listener accepts connections.
    accepting: Arc<AtomicBool>,
}

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown` fires.
pub(crate) fn spawn(
    listener: TcpListener,
    gateway: Gateway,
    accepting: Arc<AtomicBool>,
    shutdown: oneshot::Receiver<()>,
) -> JoinHandle<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(Ops { gateway, accepting });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = shutdown.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    })
}

/// 200 `ok` when the server accepts calls and the metadata store and audit chain take a
/// durable write; 503 with what is wrong otherwise (the detail goes to the log).
async fn healthz(State(ops): State<Ops>) -> Response {
    if !ops.accepting.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable: not accepting calls\n",
        )
            .into_response();
    }
    let g = ops.gateway.clone();
    let writable = tokio::task::spawn_blocking(move || g.0.audit.writable()).await;
    match writable {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: the store does not take writes");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable: the metadata store or audit chain does not take writes\n",
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response()
        }
    }
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let g = &ops.gateway.0;
    match g.metrics.encode(g.engine.cache_hits_and_misses()) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}
