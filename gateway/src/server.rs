//! Starting the server: recovery, TLS 1.3 with mandatory client certificates, the services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use erhai_engine::{Engine, MasterKey};
use erhai_proto::v1::admin_service_server::AdminServiceServer;
use erhai_proto::v1::audit_service_server::AuditServiceServer;
use erhai_proto::v1::catalog_service_server::CatalogServiceServer;
use erhai_proto::v1::governance_service_server::GovernanceServiceServer;
use erhai_proto::v1::query_service_server::QueryServiceServer;
use erhai_proto::v1::release_service_server::ReleaseServiceServer;
use erhai_proto::v1::review_service_server::ReviewServiceServer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::audit::{AuditLog, CheckpointPolicy, NewEvent, signing_key};
use crate::config::ServerConfig;
use crate::error::GatewayError;
use crate::pki::{self, CertificateAuthority};
use crate::service::{FlightSqlFront, FlightTickets, Gateway, Inner};
use crate::state::Store;
use arrow_flight::flight_service_server::FlightServiceServer;

/// Largest gRPC message accepted (upload chunks are far smaller).
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for running jobs.
pub const JOB_GRACE: Duration = Duration::from_secs(30);

/// A server running in this process.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The bound address of the operators' `/healthz` and `/metrics` listener, if configured.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    ops: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    accepting: Arc<AtomicBool>,
    handle: JoinHandle<Result<(), tonic::transport::Error>>,
    accept: JoinHandle<()>,
    gateway: Gateway,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight calls, lets running jobs end (for
    /// [`JOB_GRACE`] at most; those still running then are interrupted, and marked so at the
    /// next start), audits the shutdown, signs a final checkpoint and flushes state.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        self.accepting.store(false, Ordering::SeqCst);
        self.accept.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let r = self.handle.await;
        // Jobs waiting for a slot give up; running ones get a grace period.
        self.gateway.0.job_slots.close();
        let mut running = std::mem::take(
            &mut *self
                .gateway
                .0
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let drained = tokio::time::timeout(JOB_GRACE, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("jobs still running at shutdown are interrupted");
            running.shutdown().await;
        }
        self.gateway.0.audit.append(NewEvent {
            user: "-".into(),
            action: "shutdown".into(),
            outcome: "allowed".into(),
            ..Default::default()
        })?;
        // A signed checkpoint of the final head: a tail cut while the server is down shows.
        self.gateway.0.audit.checkpoint()?;
        self.gateway.0.store.flush()?;
        if let Some((tx, handle)) = self.ops.take() {
            let _ = tx.send(());
            let _ = handle.await;
        }
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(GatewayError::Tls(e.to_string())),
            Err(e) => Err(GatewayError::Tls(e.to_string())),
        }
    }

    /// Runs until the server stops by itself.
    pub async fn wait(self) -> Result<(), GatewayError> {
        match self.handle.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(GatewayError::Tls(e.to_string())),
            Err(e) => Err(GatewayError::Tls(e.to_string())),
        }
    }
}

fn tls_config(cfg: &ServerConfig) -> Result<rustls::ServerConfig, GatewayError> {
    let dir = cfg.tls_dir();
    let tls = |e: &dyn std::fmt::Display| GatewayError::Tls(e.to_string());
    let ca = CertificateDer::pem_file_iter(dir.join(pki::CA_CERT))
        .map_err(|e| tls(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(|e| tls(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls(&e))?;
    let chain = CertificateDer::pem_file_iter(dir.join(pki::SERVER_CERT))
        .map_err(|e| tls(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_file(dir.join(pki::SERVER_KEY)).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Binds `addr`; a taken address is [`GatewayError::AddrInUse`] naming the `key` that chose it.
async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            GatewayError::AddrInUse { addr, key }
        } else {
            GatewayError::io(format!("binding {addr} (`{key}`)"))(e)
        }
    })
}

/// Recovers from any earlier crash, then starts serving on `cfg.listen` (and the operators'
/// listener on `cfg.metrics_listen`, if set).
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, GatewayError> {
    cfg.validate()?;
    // Both ports first: a taken port is said before recovery touches anything.
    let listener = bind(cfg.listen, "listen").await?;
    let ops_listener = match cfg.metrics_listen {
        Some(addr) => Some(bind(addr, "metrics_listen").await?),
        None => None,
    };
    let master = MasterKey::load(&cfg.master_key_path())?;
    let engine = Engine::new(
        &cfg.data_dir,
        master,
        cfg.engine_limits(),
        cfg.release_rules(),
    )?;
    let ca = CertificateAuthority::load(&cfg.tls_dir())?;
    let store = Store::open(&cfg.meta_dir())?.sealed_with(engine.record_sealer());
    let audit = AuditLog::open(
        store.db(),
        signing_key(&cfg.audit_key_path())?,
        CheckpointPolicy::default(),
    )?;

    // Crash recovery: half-written files, uploads that never committed, interrupted jobs.
    let orphans = engine.remove_orphans()?;
    let uncommitted = store.remove_uncommitted_names()?;
    for id in &uncommitted {
        engine.discard_dataset(id);
    }
    let interrupted = store.fail_interrupted_jobs()?;
    // Job records written before they were sealed are sealed now.
    let sealed = store.seal_plain_jobs()?;
    // Development samples drawn under older rules are drawn again under the current ones.
    let resampled = crate::service::upgrade_dev_samples(&store, &engine, &cfg.dev)?;
    audit.append(NewEvent {
        user: "-".into(),
        action: "startup".into(),
        outcome: "allowed".into(),
        reason: format!(
            "recovery: {orphans} orphaned files removed, {} uncommitted uploads discarded, {} interrupted jobs marked failed, {resampled} development samples rebuilt under the current rules, {sealed} job records sealed",
            uncommitted.len(),
            interrupted.len()
        ),
        ..Default::default()
    })?;
    audit.checkpoint()?;

    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&cfg)?));
    let addr = listener
        .local_addr()
        .map_err(GatewayError::io("reading the bound address"))?;

    let (tx, rx) = mpsc::channel(64);
    let accept = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });

    let job_slots = tokio::sync::Semaphore::new(cfg.limits.concurrent_jobs.max(1));
    let ledger = crate::ledger::PopulationLedger::open(store.db(), |name| {
        store.dataset(name).ok().flatten().map(|d| d.id)
    })?;
    // Datasets registered before whole populations were recorded get theirs now.
    for d in store.datasets()? {
        if !ledger.has_registration(&d.id, d.version)? {
            crate::service::record_whole_population(&engine, &ledger, &d).await?;
        }
    }
    let scenarios = crate::scenario::Scenarios::open(store.db())?;
    let tenants = crate::tenant::Tenants::open(store.db())?;
    let quality = crate::quality::QualityRequests::open(store.db())?;
    // The platform key signs release receipts as well as audit checkpoints.
    let signer = signing_key(&cfg.audit_key_path())?;
    let metrics = crate::metrics::Metrics::new(audit.append_latency());
    let flight_ttl = Duration::from_secs(cfg.limits.flight_ticket_secs);
    let gateway = Gateway(Arc::new(Inner {
        store,
        audit,
        engine,
        ledger,
        release_lock: std::sync::Mutex::new(()),
        scenarios,
        tenants,
        quality,
        signer,
        ca,
        users_lock: std::sync::Mutex::new(()),
        metrics,
        cfg,
        job_slots,
        running: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        new_versions: std::sync::Mutex::new(std::collections::HashSet::new()),
        flight_tickets: FlightTickets::new(flight_ttl),
    }));
    let g = gateway.clone();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AdminServiceServer::new(g.clone()))
            .add_service(AuditServiceServer::new(g.clone()))
            .add_service(
                CatalogServiceServer::new(g.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(GovernanceServiceServer::new(g.clone()))
            .add_service(QueryServiceServer::new(g.clone()))
            .add_service(
                ReviewServiceServer::new(g.clone()).max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                ReleaseServiceServer::new(g.clone()).max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            // Arrow Flight SQL for standard clients (ADBC, JDBC), behind the same TLS, identity,
            // permission matrix and audit.
            .add_service(
                FlightServiceServer::new(FlightSqlFront::new(g))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(ReceiverStream::new(rx), async {
                let _ = shutdown_rx.await;
            })
            .await
    });
    tracing::info!(%addr, "erhai listening (TLS 1.3, client certificates required)");
    let accepting = Arc::new(AtomicBool::new(true));
    let (metrics_addr, ops) = match ops_listener {
        Some(l) => {
            let at = l
                .local_addr()
                .map_err(GatewayError::io("reading the metrics listener's address"))?;
            let (tx, rx) = oneshot::channel();
            let handle = crate::ops_http::spawn(l, gateway.clone(), accepting.clone(), rx);
            tracing::info!(addr = %at, "metrics listener: GET /healthz, GET /metrics (plain HTTP)");
            (Some(at), Some((tx, handle)))
        }
        None => (None, None),
    };
    Ok(RunningServer {
        addr,
        metrics_addr,
        ops,
        accepting,
        shutdown: Some(shutdown_tx),
        handle,
        accept,
        gateway,
    })
}
