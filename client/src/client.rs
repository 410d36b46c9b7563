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

/// Largest message the client accepts.
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
            .map_err(|e| {
                let mut detail = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    detail = format!("{detail}: {s}");
                    src = s.source();
                }
                ClientError::Connect {
                    endpoint: identity.endpoint.clone(),
                    detail,
                }
            })?;
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

    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }
    fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone()).max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
    fn query(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
    fn review(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
    fn governance(&self) -> GovernanceServiceClient<Channel> {
        GovernanceServiceClient::new(self.channel.clone())
    }
    fn release(&self) -> ReleaseServiceClient<Channel> {
        ReleaseServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
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

    /// All users.
    pub async fn list_users(&self) -> Result<Vec<pb::User>, ClientError> {
        Ok(self
            .admin()
            .list_users(pb::Empty {})
            .await?
            .into_inner()
            .users)
    }

    /// Sets when a user expires (ms since the epoch; 0: never).
    pub async fn set_user_expiry(
        &self,
        id: &str,
        expires_at_ms: i64,
    ) -> Result<pb::User, ClientError> {
        Ok(self
            .admin()
            .set_user_expiry(pb::SetUserExpiryRequest {
                id: id.into(),
                expires_at_ms,
            })
            .await?
            .into_inner())
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
        self.register_sampled(name, description, policy_toml, schema, batches, 0.0, 0)
            .await
    }

    /// Registers a dataset choosing its development sample's rate (0: the server's default)
    /// and seed.
    #[allow(clippy::too_many_arguments)]
    pub async fn register_sampled(
        &self,
        name: &str,
        description: &str,
        policy_toml: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        sample_rate: f64,
        sample_seed: u64,
    ) -> Result<pb::Dataset, ClientError> {
        let mut chunks = upload_messages(name, description, policy_toml, &schema, &batches, true)?;
        if let Some(pb::RegisterChunk {
            part: Some(pb::register_chunk::Part::Header(h)),
        }) = chunks.first_mut()
        {
            h.dev_sample_rate = sample_rate;
            h.dev_sample_seed = sample_seed;
        }
        self.register_raw(chunks).await
    }

    /// Sends prepared upload messages as they are (tests use this to send broken uploads).
    pub async fn register_raw(
        &self,
        chunks: Vec<pb::RegisterChunk>,
    ) -> Result<pb::Dataset, ClientError> {
        Ok(self
            .catalog()
            .register_dataset(futures::stream::iter(chunks))
            .await?
            .into_inner())
    }

    /// Approves the import of a tenant's social data (authority).
    pub async fn approve_import(
        &self,
        dataset: &str,
        reason: &str,
    ) -> Result<pb::Dataset, ClientError> {
        Ok(self
            .catalog()
            .approve_import(pb::ImportDecision {
                dataset: dataset.into(),
                reason: reason.into(),
            })
            .await?
            .into_inner())
    }

    /// Datasets visible to the caller.
    pub async fn list_datasets(&self) -> Result<Vec<pb::Dataset>, ClientError> {
        Ok(self
            .catalog()
            .list_datasets(pb::Empty {})
            .await?
            .into_inner()
            .datasets)
    }

    /// One dataset's schema and policy.
    pub async fn get_dataset(&self, dataset: &str) -> Result<pb::Dataset, ClientError> {
        Ok(self
            .catalog()
            .get_dataset(pb::DatasetRef {
                dataset: dataset.into(),
            })
            .await?
            .into_inner())
    }

    /// Submits a production query in `scenario`.
    pub async fn submit(&self, scenario: &str, sql: &str) -> Result<pb::Job, ClientError> {
        self.submit_in(sql, scenario, 0.0).await
    }

    /// Submits a production query in a scenario; `epsilon` is what a DP scenario's query spends
    /// (0: the scenario's per-query cap). The answer comes once the plan check has accepted the
    /// query: the analyst's view of the job never depends on how its run goes.
    pub async fn submit_in(
        &self,
        sql: &str,
        scenario: &str,
        epsilon: f64,
    ) -> Result<pb::Job, ClientError> {
        Ok(self
            .query()
            .submit_query(pb::SubmitQueryRequest {
                sql: sql.into(),
                wait: false,
                scenario: scenario.into(),
                epsilon,
            })
            .await?
            .into_inner())
    }

    /// Files a data-quality request on a dataset (analyst).
    pub async fn file_quality(
        &self,
        dataset: &str,
        column: &str,
        issue: &str,
    ) -> Result<pb::QualityRequest, ClientError> {
        Ok(self
            .governance()
            .file_quality(pb::QualityRequest {
                dataset: dataset.into(),
                column: column.into(),
                issue: issue.into(),
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// Data-quality requests the caller may see, oldest open first.
    pub async fn quality(&self, open_only: bool) -> Result<Vec<pb::QualityRequest>, ClientError> {
        Ok(self
            .governance()
            .list_quality(pb::ListQualityRequest { open_only })
            .await?
            .into_inner()
            .requests)
    }

    /// Answers and closes a data-quality request (the owning provider).
    pub async fn answer_quality(
        &self,
        id: &str,
        answer: &str,
    ) -> Result<pb::QualityRequest, ClientError> {
        Ok(self
            .governance()
            .answer_quality(pb::QualityAnswer {
                id: id.into(),
                answer: answer.into(),
            })
            .await?
            .into_inner())
    }

    /// A tenant's periodic report ("" for the caller's own tenant).
    pub async fn report(
        &self,
        tenant: &str,
        from: &str,
        to: &str,
    ) -> Result<pb::Report, ClientError> {
        Ok(self
            .governance()
            .tenant_report(pb::ReportRequest {
                tenant: tenant.into(),
                from: from.into(),
                to: to.into(),
            })
            .await?
            .into_inner())
    }

    /// Creates a tenant (admin).
    pub async fn create_tenant(&self, name: &str, title: &str) -> Result<pb::Tenant, ClientError> {
        Ok(self
            .governance()
            .create_tenant(pb::Tenant {
                name: name.into(),
                title: title.into(),
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// Tenants (admin, authority, center, auditor).
    pub async fn tenants(&self) -> Result<Vec<pb::Tenant>, ClientError> {
        Ok(self
            .governance()
            .list_tenants(pb::Empty {})
            .await?
            .into_inner()
            .tenants)
    }

    /// One tenant ("": the caller's own).
    pub async fn tenant(&self, name: &str) -> Result<pb::Tenant, ClientError> {
        Ok(self
            .governance()
            .get_tenant(pb::TenantRef { name: name.into() })
            .await?
            .into_inner())
    }

    /// Sets a tenant's agreement dates (authority).
    pub async fn set_agreement(
        &self,
        tenant: &str,
        start: &str,
        end: &str,
        reason: &str,
    ) -> Result<pb::Tenant, ClientError> {
        Ok(self
            .governance()
            .set_agreement(pb::AgreementRequest {
                tenant: tenant.into(),
                start: start.into(),
                end: end.into(),
                reason: reason.into(),
            })
            .await?
            .into_inner())
    }

    /// Suspends, restores or terminates a tenant (authority).
    pub async fn change_tenant_status(
        &self,
        tenant: &str,
        action: &str,
        reason: &str,
    ) -> Result<pb::Tenant, ClientError> {
        Ok(self
            .governance()
            .change_tenant_status(pb::TenantStatusRequest {
                tenant: tenant.into(),
                action: action.into(),
                reason: reason.into(),
            })
            .await?
            .into_inner())
    }

    /// Submits the caller's tenant's rectification report.
    pub async fn rectify(&self, report: &str) -> Result<pb::Tenant, ClientError> {
        Ok(self
            .governance()
            .submit_rectification(pb::RectificationRequest {
                report: report.into(),
            })
            .await?
            .into_inner())
    }

    /// Applies for a scenario (analyst).
    pub async fn apply_scenario(&self, s: pb::Scenario) -> Result<pb::Scenario, ClientError> {
        Ok(self.governance().apply_scenario(s).await?.into_inner())
    }

    /// Decides the current review step of a scenario (center, authority, provider);
    /// `columns` (dataset.column) narrows the approved set.
    pub async fn review_scenario(
        &self,
        name: &str,
        approve: bool,
        reason: &str,
        columns: &[String],
    ) -> Result<pb::Scenario, ClientError> {
        Ok(self
            .governance()
            .review_scenario(pb::ScenarioDecision {
                name: name.into(),
                approve,
                reason: reason.into(),
                columns: columns.to_vec(),
            })
            .await?
            .into_inner())
    }

    /// Revokes a scenario (authority).
    pub async fn revoke_scenario(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<pb::Scenario, ClientError> {
        Ok(self
            .governance()
            .revoke_scenario(pb::ScenarioDecision {
                name: name.into(),
                reason: reason.into(),
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// Review steps past their deadline (authority).
    pub async fn overdue_scenarios(&self) -> Result<Vec<pb::Scenario>, ClientError> {
        Ok(self
            .governance()
            .overdue_scenarios(pb::Empty {})
            .await?
            .into_inner()
            .scenarios)
    }

    /// Scenarios visible to the caller.
    pub async fn scenarios(&self) -> Result<Vec<pb::Scenario>, ClientError> {
        Ok(self
            .governance()
            .list_scenarios(pb::Empty {})
            .await?
            .into_inner()
            .scenarios)
    }

    /// One scenario.
    pub async fn scenario(&self, name: &str) -> Result<pb::Scenario, ClientError> {
        Ok(self
            .governance()
            .get_scenario(pb::ScenarioRef { name: name.into() })
            .await?
            .into_inner())
    }

    /// A DP scenario's budget: spent and left.
    pub async fn budget(&self, name: &str) -> Result<pb::Budget, ClientError> {
        Ok(self
            .governance()
            .scenario_budget(pb::ScenarioRef { name: name.into() })
            .await?
            .into_inner())
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

    /// Submits a development job's SQL to production.
    pub async fn promote(&self, job: &str) -> Result<pb::Job, ClientError> {
        Ok(self
            .query()
            .promote_job(pb::JobRef { job: job.into() })
            .await?
            .into_inner())
    }

    /// Checks a query in `scenario` without running it.
    pub async fn check(&self, scenario: &str, sql: &str) -> Result<pb::PlanVerdict, ClientError> {
        let req = pb::SubmitQueryRequest {
            sql: sql.into(),
            scenario: scenario.into(),
            ..Default::default()
        };
        Ok(self.query().check_query(req).await?.into_inner())
    }

    /// A job.
    pub async fn job(&self, id: &str) -> Result<pb::Job, ClientError> {
        Ok(self
            .query()
            .get_job(pb::JobRef { job: id.into() })
            .await?
            .into_inner())
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

    /// Jobs visible to the caller.
    pub async fn jobs(&self) -> Result<Vec<pb::Job>, ClientError> {
        Ok(self
            .query()
            .list_jobs(pb::Empty {})
            .await?
            .into_inner()
            .jobs)
    }

    /// Jobs awaiting review.
    pub async fn pending(&self) -> Result<Vec<pb::Job>, ClientError> {
        Ok(self
            .review()
            .list_pending(pb::Empty {})
            .await?
            .into_inner()
            .jobs)
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

    /// Approves or rejects a job.
    pub async fn decide(
        &self,
        job: &str,
        approve: bool,
        reason: &str,
    ) -> Result<pb::Job, ClientError> {
        Ok(self
            .review()
            .decide(pb::DecisionRequest {
                job: job.into(),
                approve,
                reason: reason.into(),
            })
            .await?
            .into_inner())
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

    /// The platform's Ed25519 public key (raw, 32 bytes).
    pub async fn platform_key(&self) -> Result<Vec<u8>, ClientError> {
        Ok(self
            .release()
            .platform_key(pb::Empty {})
            .await?
            .into_inner()
            .public_key)
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

    /// Audit events matching a full filter.
    pub async fn audit_query(
        &self,
        req: pb::ListAuditRequest,
    ) -> Result<Vec<pb::AuditEvent>, ClientError> {
        let mut c = AuditServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(c.list_events(req).await?.into_inner().events)
    }

    /// Where a dataset went (`dataset`) or where a release came from (`release`).
    pub async fn lineage(
        &self,
        dataset: &str,
        release: &str,
    ) -> Result<pb::LineageResponse, ClientError> {
        let mut c = AuditServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(c.lineage(pb::LineageRequest {
            dataset: dataset.into(),
            release: release.into(),
        })
        .await?
        .into_inner())
    }

    /// The latest signed checkpoint of the audit chain.
    pub async fn audit_checkpoint(&self) -> Result<pb::Checkpoint, ClientError> {
        let mut c = AuditServiceClient::new(self.channel.clone());
        Ok(c.latest_checkpoint(pb::Empty {}).await?.into_inner())
    }

    /// Verifies the audit chain.
    pub async fn audit_verify(&self) -> Result<pb::VerifyAuditResponse, ClientError> {
        let mut c = AuditServiceClient::new(self.channel.clone());
        Ok(c.verify(pb::Empty {}).await?.into_inner())
    }

    /// The platform CA certificate this client trusts.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }
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
    use pb::register_chunk::Part;
    let mut out = vec![pb::RegisterChunk {
        part: Some(Part::Header(pb::RegisterHeader {
            name: name.into(),
            description: description.into(),
            policy_toml: policy_toml.into(),
            dev_sample_rate: 0.0,
            dev_sample_seed: 0,
        })),
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
