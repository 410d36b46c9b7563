//! The connection and the typed calls: a mutual-TLS channel from an identity bundle, one
//! method per user action, and the framing of uploads.

use std::io::Cursor;
use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use erhai_proto::v1 as pb;
use erhai_proto::v1::admin_service_client::AdminServiceClient;
use erhai_proto::v1::audit_service_client::AuditServiceClient;
use erhai_proto::v1::catalog_service_client::CatalogServiceClient;
use erhai_proto::v1::governance_service_client::GovernanceServiceClient;
use erhai_proto::v1::query_service_client::QueryServiceClient;
use erhai_proto::v1::release_service_client::ReleaseServiceClient;
use erhai_proto::v1::review_service_client::ReviewServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::ClientError;
use crate::identity::{self, IdentityBundle, KeyPair};

/// Largest message the client sends or accepts.
const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// Rows per uploaded chunk.
pub const UPLOAD_CHUNK_ROWS: usize = 16 * 1024;

/// A connected client.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    endpoint: String,
    ca: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with mutual TLS using `identity`.
    pub async fn connect(identity: &IdentityBundle) -> Result<Client, ClientError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&identity.ca))
            .identity(Identity::from_pem(&identity.cert, &identity.key))
            .domain_name("localhost");
        let err = |e: &dyn std::fmt::Display| ClientError::Connect {
            endpoint: identity.endpoint.clone(),
            detail: e.to_string(),
        };
        let channel = Channel::from_shared(identity.endpoint.clone())
            .map_err(|e| err(&e))?
            .tls_config(tls)
            .map_err(|e| err(&e))?
            .connect()
            .await
            .map_err(|e| ClientError::connect(&identity.endpoint, &e))?;
        Ok(Client {
            channel,
            endpoint: identity.endpoint.clone(),
            ca: identity.ca.clone(),
        })
    }

    /// Connects with the bundle in `dir`.
    pub async fn connect_dir(dir: &Path) -> Result<Client, ClientError> {
        Self::connect(&IdentityBundle::load(dir)?).await
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Who the server says we are.
    pub async fn whoami(&self) -> Result<pb::User, ClientError> {
        let r = self.admin().who_am_i(pb::Empty {}).await?.into_inner();
        r.user
            .ok_or_else(|| ClientError::Data("server sent no user".into()))
    }

    /// Creates a user; generates the key pair here and writes the identity bundle to `out`.
    pub async fn add_user(
        &self,
        mut req: pb::CreateUserRequest,
        out: &Path,
    ) -> Result<pb::User, ClientError> {
        let key = KeyPair::generate()?;
        req.public_key_pem = key.public_key_pem();
        let r = self.admin().create_user(req).await?.into_inner();
        identity::write_bundle(
            out,
            &r.cert_pem,
            &key.private_key_pem(),
            &r.ca_pem,
            &self.endpoint,
        )?;
        r.user
            .ok_or_else(|| ClientError::Data("server sent no user".into()))
    }

    /// Issues user `id` a new certificate over a key pair generated here and writes the new
    /// identity bundle to `out`; the user's previous certificate is refused from its next call.
    pub async fn reissue_user(
        &self,
        id: &str,
        valid_days: i64,
        out: &Path,
    ) -> Result<pb::User, ClientError> {
        let key = KeyPair::generate()?;
        let req = pb::ReissueUserRequest {
            id: id.into(),
            public_key_pem: key.public_key_pem(),
            valid_days,
        };
        let r = self.admin().reissue_user(req).await?.into_inner();
        identity::write_bundle(
            out,
            &r.cert_pem,
            &key.private_key_pem(),
            &r.ca_pem,
            &self.endpoint,
        )?;
        r.user
            .ok_or_else(|| ClientError::Data("server sent no user".into()))
    }

    /// Registers a dataset from batches: header, IPC chunks, finish.
    pub async fn register(
        &self,
        name: &str,
        description: &str,
        policy_toml: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<pb::Dataset, ClientError> {
        let chunks = upload_messages(name, description, policy_toml, &schema, &batches, true)?;
        self.register_raw(chunks).await
    }

    /// Registers a dataset under `header`, which may also choose the development sample's rate
    /// (0: the server's default) and seed.
    pub async fn register_with(
        &self,
        header: pb::RegisterHeader,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<pb::Dataset, ClientError> {
        self.register_raw(upload_chunks(header, &schema, &batches, true)?)
            .await
    }

    /// [`Client::register_with`], calling `sent(rows, bytes)` as each chunk of data goes to the
    /// transport (for a progress bar); `sizes` are the totals, given first, for its length.
    pub async fn register_watched(
        &self,
        header: pb::RegisterHeader,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        sizes: impl FnOnce(u64, u64),
        sent: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<pb::Dataset, ClientError> {
        use futures::StreamExt;
        use pb::register_chunk::Part;
        let chunks = upload_chunks(header, &schema, &batches, true)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let bytes = chunks
            .iter()
            .map(|c| match &c.part {
                Some(Part::Ipc(b)) => b.len() as u64,
                _ => 0,
            })
            .sum();
        sizes(rows, bytes);
        // Every IPC chunk but the last holds UPLOAD_CHUNK_ROWS rows of its batch; counting them
        // as they go keeps the stream free of the batches themselves.
        let mut per_chunk = Vec::new();
        for b in &batches {
            let mut left = b.num_rows();
            while left > 0 {
                let n = UPLOAD_CHUNK_ROWS.min(left);
                per_chunk.push(n as u64);
                left -= n;
            }
        }
        let mut next = per_chunk.into_iter();
        let stream = futures::stream::iter(chunks).map(move |c| {
            if let Some(Part::Ipc(b)) = &c.part {
                sent(next.next().unwrap_or(0), b.len() as u64);
            }
            c
        });
        Ok(self.catalog().register_dataset(stream).await?.into_inner())
    }

    /// Submits a production query in `scenario`.
    pub async fn submit(&self, scenario: &str, sql: &str) -> Result<pb::Job, ClientError> {
        self.submit_in(sql, scenario, 0.0).await
    }

    /// Runs a query in `scenario` on the development samples; the rows come back at once.
    pub async fn run_dev(
        &self,
        scenario: &str,
        sql: &str,
    ) -> Result<(pb::Job, SchemaRef, Vec<RecordBatch>), ClientError> {
        let r = self
            .query()
            .run_dev_query(pb::SubmitQueryRequest {
                sql: sql.into(),
                wait: true,
                scenario: scenario.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let (schema, batches) = decode_ipc(&r.arrow_ipc)?;
        Ok((r.job.unwrap_or_default(), schema, batches))
    }

    /// A job once it has stopped running, polled as the caller sees it. Only reviewers and
    /// auditors see a job running; an analyst sees an accepted job as awaiting review from the
    /// start (its run is none of the analyst's business), so for an analyst this returns at
    /// once. Gives up after `limit`.
    pub async fn finished(
        &self,
        id: &str,
        limit: std::time::Duration,
    ) -> Result<pb::Job, ClientError> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            let j = self.job(id).await?;
            if j.state != "running" {
                return Ok(j);
            }
            if start.elapsed() > limit {
                return Err(ClientError::Status(tonic::Status::deadline_exceeded(
                    format!("job {id} is still running after {} s", limit.as_secs()),
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// The reviewer's view of a job, with the preview decoded.
    pub async fn show_review(
        &self,
        job: &str,
    ) -> Result<(pb::ReviewDetail, Vec<RecordBatch>), ClientError> {
        let d = self
            .review()
            .show_review(pb::JobRef { job: job.into() })
            .await?
            .into_inner();
        let batches = if d.preview_ipc.is_empty() {
            Vec::new()
        } else {
            decode_ipc(&d.preview_ipc)?.1
        };
        Ok((d, batches))
    }

    /// Downloads a released result.
    pub async fn fetch(&self, job: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
        let (file, _) = self.fetch_file(job, "arrow").await?;
        let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(file), None)
            .map_err(|e| ClientError::Data(format!("the release is not an Arrow file: {e}")))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Data(e.to_string()))?;
        Ok((schema, batches))
    }

    /// Downloads a released result as a file in `format` (arrow, csv, parquet) with its signed
    /// receipt (JSON text).
    pub async fn fetch_file(
        &self,
        job: &str,
        format: &str,
    ) -> Result<(Vec<u8>, String), ClientError> {
        let mut stream = self
            .release()
            .fetch_release(pb::FetchReleaseRequest {
                job: job.into(),
                format: format.into(),
            })
            .await?
            .into_inner();
        let mut file = Vec::new();
        let mut receipt = String::new();
        while let Some(chunk) = stream.message().await? {
            file.extend_from_slice(&chunk.data);
            if !chunk.receipt.is_empty() {
                receipt = chunk.receipt;
            }
        }
        if receipt.is_empty() {
            return Err(ClientError::Data(
                "the release arrived without its receipt; discard it".into(),
            ));
        }
        Ok((file, receipt))
    }

    /// Audit events, newest `limit` of one user's or action's (empty: any).
    pub async fn audit(
        &self,
        limit: u64,
        user: &str,
        action: &str,
    ) -> Result<Vec<pb::AuditEvent>, ClientError> {
        self.audit_query(pb::ListAuditRequest {
            limit,
            user: user.into(),
            action: action.into(),
            ..Default::default()
        })
        .await
    }

    /// The platform CA certificate this client trusts.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }
}

/// One stub per service over the shared channel, every one with the same message size bound
/// both ways (tonic's decoding default, 4 MiB, is below a large preview or result list).
macro_rules! services {
    ($($name:ident: $stub:ident),* $(,)?) => {
        impl Client {
            $(
                fn $name(&self) -> $stub<Channel> {
                    $stub::new(self.channel.clone())
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES)
                }
            )*
        }
    };
}

services! {
    admin: AdminServiceClient,
    catalog: CatalogServiceClient,
    query: QueryServiceClient,
    review: ReviewServiceClient,
    governance: GovernanceServiceClient,
    release: ReleaseServiceClient,
    audit_chain: AuditServiceClient,
}

/// The typed calls whose work is only the call itself: `fn name(args) -> T = service.rpc(request)`
/// sends the request built from the arguments and returns the answer, or (`.field`) one field
/// of it. A server error arrives as [`ClientError::Status`].
macro_rules! calls {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty = $svc:ident.$rpc:ident($req:expr)
            $(.$field:ident)?;
    )*) => {
        impl Client {
            $(
                $(#[$meta])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$out, ClientError> {
                    let answer = self.$svc().$rpc($req).await?.into_inner();
                    Ok(answer $(.$field)?)
                }
            )*
        }
    };
}

calls! {
    /// All users.
    fn list_users() -> Vec<pb::User> = admin.list_users(pb::Empty {}).users;

    /// Sets when a user expires (ms since the epoch; 0: never).
    fn set_user_expiry(id: &str, expires_at_ms: i64) -> pb::User =
        admin.set_user_expiry(pb::SetUserExpiryRequest { id: id.into(), expires_at_ms });

    /// Disables a user (every call of theirs is refused until enabled); `reason` is audited.
    fn disable_user(id: &str, reason: &str) -> pb::User =
        admin.set_user_disabled(pb::SetUserDisabledRequest {
            id: id.into(), disabled: true, reason: reason.into(),
        });

    /// Enables a disabled user.
    fn enable_user(id: &str) -> pb::User =
        admin.set_user_disabled(pb::SetUserDisabledRequest {
            id: id.into(), disabled: false, reason: String::new(),
        });

    /// Sends prepared upload messages as they are (tests use this to send broken uploads).
    fn register_raw(chunks: Vec<pb::RegisterChunk>) -> pb::Dataset =
        catalog.register_dataset(futures::stream::iter(chunks));

    /// Approves the import of a tenant's social data (authority).
    fn approve_import(dataset: &str, reason: &str) -> pb::Dataset =
        catalog.approve_import(pb::ImportDecision {
            dataset: dataset.into(), reason: reason.into(),
        });

    /// Retires a dataset (its owning provider, or the authority): no new use, history kept.
    fn retire_dataset(dataset: &str, reason: &str) -> pb::Dataset =
        catalog.retire_dataset(pb::DatasetDecision {
            dataset: dataset.into(), reason: reason.into(),
        });

    /// Deletes a dataset registered by mistake and never used (its owning provider).
    fn delete_dataset(dataset: &str, reason: &str) -> pb::DatasetDeleted =
        catalog.delete_dataset(pb::DatasetDecision {
            dataset: dataset.into(), reason: reason.into(),
        });

    /// Datasets visible to the caller.
    fn list_datasets() -> Vec<pb::Dataset> = catalog.list_datasets(pb::Empty {}).datasets;

    /// One dataset's schema and policy.
    fn get_dataset(dataset: &str) -> pb::Dataset =
        catalog.get_dataset(pb::DatasetRef { dataset: dataset.into() });

    /// Submits a production query in a scenario; `epsilon` is what a DP scenario's query spends
    /// (0: the scenario's per-query cap). The answer comes once the plan check has accepted the
    /// query: the analyst's view of the job never depends on how its run goes.
    fn submit_in(sql: &str, scenario: &str, epsilon: f64) -> pb::Job =
        query.submit_query(pb::SubmitQueryRequest {
            sql: sql.into(), wait: false, scenario: scenario.into(), epsilon,
        });

    /// Submits a development job's SQL to production.
    fn promote(job: &str) -> pb::Job = query.promote_job(pb::JobRef { job: job.into() });

    /// Checks a query in `scenario` without running it.
    fn check(scenario: &str, sql: &str) -> pb::PlanVerdict =
        query.check_query(pb::SubmitQueryRequest {
            sql: sql.into(), scenario: scenario.into(), ..Default::default()
        });

    /// A job.
    fn job(id: &str) -> pb::Job = query.get_job(pb::JobRef { job: id.into() });

    /// Jobs visible to the caller.
    fn jobs() -> Vec<pb::Job> = query.list_jobs(pb::Empty {}).jobs;

    /// Jobs awaiting review.
    fn pending() -> Vec<pb::Job> = review.list_pending(pb::Empty {}).jobs;

    /// Approves or rejects a job.
    fn decide(job: &str, approve: bool, reason: &str) -> pb::Job =
        review.decide(pb::DecisionRequest {
            job: job.into(), approve, reason: reason.into(), suppress_flagged: false,
        });

    /// Approves a job with its rows to review withheld (and whatever would give them back).
    fn approve_withholding(job: &str, reason: &str) -> pb::Job =
        review.decide(pb::DecisionRequest {
            job: job.into(), approve: true, reason: reason.into(), suppress_flagged: true,
        });

    /// The platform's Ed25519 public key (raw, 32 bytes).
    fn platform_key() -> Vec<u8> = release.platform_key(pb::Empty {}).public_key;

    /// Files a data-quality request on a dataset (analyst).
    fn file_quality(dataset: &str, column: &str, issue: &str) -> pb::QualityRequest =
        governance.file_quality(pb::QualityRequest {
            dataset: dataset.into(), column: column.into(), issue: issue.into(),
            ..Default::default()
        });

    /// Data-quality requests the caller may see, oldest open first.
    fn quality(open_only: bool) -> Vec<pb::QualityRequest> =
        governance.list_quality(pb::ListQualityRequest { open_only }).requests;

    /// Answers and closes a data-quality request (the owning provider).
    fn answer_quality(id: &str, answer: &str) -> pb::QualityRequest =
        governance.answer_quality(pb::QualityAnswer { id: id.into(), answer: answer.into() });

    /// A tenant's periodic report ("" for the caller's own tenant).
    fn report(tenant: &str, from: &str, to: &str) -> pb::Report =
        governance.tenant_report(pb::ReportRequest {
            tenant: tenant.into(), from: from.into(), to: to.into(),
        });

    /// Creates a tenant (admin).
    fn create_tenant(name: &str, title: &str) -> pb::Tenant =
        governance.create_tenant(pb::Tenant {
            name: name.into(), title: title.into(), ..Default::default()
        });

    /// Tenants (admin, authority, center, auditor).
    fn tenants() -> Vec<pb::Tenant> = governance.list_tenants(pb::Empty {}).tenants;

    /// One tenant ("": the caller's own).
    fn tenant(name: &str) -> pb::Tenant =
        governance.get_tenant(pb::TenantRef { name: name.into() });

    /// Sets a tenant's agreement dates (authority).
    fn set_agreement(tenant: &str, start: &str, end: &str, reason: &str) -> pb::Tenant =
        governance.set_agreement(pb::AgreementRequest {
            tenant: tenant.into(), start: start.into(), end: end.into(), reason: reason.into(),
        });

    /// Suspends, restores or terminates a tenant (authority).
    fn change_tenant_status(tenant: &str, action: &str, reason: &str) -> pb::Tenant =
        governance.change_tenant_status(pb::TenantStatusRequest {
            tenant: tenant.into(), action: action.into(), reason: reason.into(),
        });

    /// Submits the caller's tenant's rectification report.
    fn rectify(report: &str) -> pb::Tenant =
        governance.submit_rectification(pb::RectificationRequest { report: report.into() });

    /// Applies for a scenario (analyst).
    fn apply_scenario(s: pb::Scenario) -> pb::Scenario = governance.apply_scenario(s);

    /// Decides the current review step of a scenario (center, authority, provider);
    /// `columns` (dataset.column) narrows the approved set.
    fn review_scenario(name: &str, approve: bool, reason: &str, columns: &[String])
        -> pb::Scenario =
        governance.review_scenario(pb::ScenarioDecision {
            name: name.into(), approve, reason: reason.into(), columns: columns.to_vec(),
        });

    /// Revokes a scenario (authority).
    fn revoke_scenario(name: &str, reason: &str) -> pb::Scenario =
        governance.revoke_scenario(pb::ScenarioDecision {
            name: name.into(), reason: reason.into(), ..Default::default()
        });

    /// Review steps past their deadline (authority).
    fn overdue_scenarios() -> Vec<pb::Scenario> =
        governance.overdue_scenarios(pb::Empty {}).scenarios;

    /// Scenarios visible to the caller.
    fn scenarios() -> Vec<pb::Scenario> = governance.list_scenarios(pb::Empty {}).scenarios;

    /// One scenario.
    fn scenario(name: &str) -> pb::Scenario =
        governance.get_scenario(pb::ScenarioRef { name: name.into() });

    /// A DP scenario's budget: spent and left.
    fn budget(name: &str) -> pb::Budget =
        governance.scenario_budget(pb::ScenarioRef { name: name.into() });

    /// Audit events matching a full filter.
    fn audit_query(req: pb::ListAuditRequest) -> Vec<pb::AuditEvent> =
        audit_chain.list_events(req).events;

    /// Where a dataset went (`dataset`) or where a release came from (`release`).
    fn lineage(dataset: &str, release: &str) -> pb::LineageResponse =
        audit_chain.lineage(pb::LineageRequest {
            dataset: dataset.into(), release: release.into(),
        });

    /// The latest signed checkpoint of the audit chain.
    fn audit_checkpoint() -> pb::Checkpoint = audit_chain.latest_checkpoint(pb::Empty {});

    /// Verifies the audit chain.
    fn audit_verify() -> pb::VerifyAuditResponse = audit_chain.verify(pb::Empty {});
}

/// Encodes one batch (with its schema) as an IPC stream.
pub fn encode_ipc(schema: &SchemaRef, batch: &RecordBatch) -> Result<Vec<u8>, ClientError> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, schema)?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

/// Decodes an IPC stream.
pub fn decode_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// The messages of an upload: header, chunks of at most [`UPLOAD_CHUNK_ROWS`] rows, and (with
/// `finish`) the finish message with the totals.
pub fn upload_messages(
    name: &str,
    description: &str,
    policy_toml: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    finish: bool,
) -> Result<Vec<pb::RegisterChunk>, ClientError> {
    let header = pb::RegisterHeader {
        name: name.into(),
        description: description.into(),
        policy_toml: policy_toml.into(),
        ..Default::default()
    };
    upload_chunks(header, schema, batches, finish)
}

fn upload_chunks(
    header: pb::RegisterHeader,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    finish: bool,
) -> Result<Vec<pb::RegisterChunk>, ClientError> {
    use pb::register_chunk::Part;
    let mut out = vec![pb::RegisterChunk {
        part: Some(Part::Header(header)),
    }];
    let (mut rows, mut count) = (0u64, 0u64);
    for b in batches {
        let mut offset = 0;
        while offset < b.num_rows() {
            let n = UPLOAD_CHUNK_ROWS.min(b.num_rows() - offset);
            let slice = b.slice(offset, n);
            out.push(pb::RegisterChunk {
                part: Some(Part::Ipc(encode_ipc(schema, &slice)?)),
            });
            rows += n as u64;
            count += 1;
            offset += n;
        }
    }
    if finish {
        out.push(pb::RegisterChunk {
            part: Some(Part::Finish(pb::RegisterFinish {
                total_rows: rows,
                total_batches: count,
            })),
        });
    }
    Ok(out)
}
