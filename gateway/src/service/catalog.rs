//! CatalogService: dataset registration (providers' data and tenants' social data, with the
//! development sample and the whole population recorded) and dataset metadata.

use std::collections::HashSet;
use std::io::Cursor;

use arrow::datatypes::DataType;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use erhai_engine::{Env, SampleSpec, Upload};
use erhai_policies::policy_file::parse_policy;
use erhai_proto::v1 as pb;
use erhai_proto::v1::catalog_service_server::CatalogService;
use erhai_proto::v1::register_chunk::Part;
use tonic::{Request, Response, Status, Streaming};

use super::{Gateway, convert, engine_status, internal};
use crate::authz::{Action, Role};
use crate::state::{DatasetRecord, DevSampleRecord, UserRecord, now_ms};

/// Dataset names are SQL identifiers: lower-case letters, digits and '_', starting with a letter.
fn valid_dataset_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

fn supported_type(t: &DataType) -> bool {
    use DataType as T;
    matches!(
        t,
        T::Boolean
            | T::Int8
            | T::Int16
            | T::Int32
            | T::Int64
            | T::UInt8
            | T::UInt16
            | T::UInt32
            | T::UInt64
            | T::Float32
            | T::Float64
            | T::Decimal128(_, _)
            | T::Utf8
            | T::LargeUtf8
            | T::Utf8View
            | T::Date32
            | T::Date64
            | T::Timestamp(_, _)
    )
}

impl Gateway {
    /// Receives an upload. On any failure nothing stays behind: files removed, name released.
    async fn register_inner(
        &self,
        user: &UserRecord,
        stream: &mut Streaming<pb::RegisterChunk>,
        object: &mut String,
    ) -> Result<pb::Dataset, Status> {
        let first = stream.message().await?.ok_or_else(|| {
            Status::invalid_argument("empty upload: expected a header message first")
        })?;
        let Some(Part::Header(header)) = first.part else {
            return Err(Status::invalid_argument(
                "the first message of an upload must be its header",
            ));
        };
        *object = header.name.clone();
        if !valid_dataset_name(&header.name) {
            return Err(Status::invalid_argument(format!(
                "dataset name `{}` is invalid: use a lower-case letter followed by up to 62 lower-case letters, digits or '_'",
                header.name
            )));
        }
        if header.description.chars().count() > 2000 {
            return Err(Status::invalid_argument(
                "description is longer than 2000 characters",
            ));
        }
        if header.new_version {
            return self.new_version_inner(user, header, stream, object).await;
        }
        let policy = parse_policy(&header.policy_toml)
            .map_err(|e| Status::invalid_argument(format!("policy: {e}")))?;
        // An analyst's upload is its tenant's social data; a provider's, its unit's public data.
        let (unit, social_tenant) = match user.role {
            Role::Analyst => (String::new(), Some(Self::tenant_of(user)?.to_string())),
            _ => (
                user.unit.clone().ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "provider `{}` belongs to no unit",
                        user.id
                    ))
                })?,
                None,
            ),
        };
        let store = &self.0.store;
        let id = store.new_id("ds").map_err(internal)?;
        if !store
            .reserve_dataset_name(&header.name, &id)
            .map_err(internal)?
        {
            return Err(Status::already_exists(format!(
                "a dataset named `{}` already exists",
                header.name
            )));
        }
        *object = format!("{id} ({})", header.name);
        let result = self.receive(stream, &id, 1, &policy, None).await;
        match result {
            Ok((upload, rows)) => {
                let schema = upload.schema.clone();
                let wrapped_key = upload.wrapped_key.clone();
                let bytes = match upload.finish() {
                    Ok(b) => b,
                    Err(e) => {
                        self.abandon(&header.name, &id);
                        return Err(engine_status(&e));
                    }
                };
                let record = DatasetRecord {
                    id: id.clone(),
                    name: header.name.clone(),
                    description: header.description.clone(),
                    provider_unit: unit,
                    registered_by: user.id.clone(),
                    version: 1,
                    rows,
                    bytes,
                    fields: convert::stored_fields(&schema),
                    policy,
                    wrapped_key,
                    created_at_ms: now_ms(),
                    dev: None,
                    social_tenant: social_tenant.clone(),
                    import_approved: None,
                    earlier: Vec::new(),
                    retired: None,
                };
                let record = match self.build_dev_sample(record, &header) {
                    Ok(r) => r,
                    Err(status) => {
                        self.abandon(&header.name, &id);
                        return Err(status);
                    }
                };
                // Its row count is public: the whole population counts as released.
                if let Err(status) = self.record_whole_population(&record).await {
                    self.abandon(&header.name, &id);
                    return Err(status);
                }
                if let Err(e) = store.put_dataset(&record) {
                    self.abandon(&header.name, &id);
                    return Err(internal(e));
                }
                Ok(convert::dataset(&record))
            }
            Err(status) => {
                self.abandon(&header.name, &id);
                Err(status)
            }
        }
    }

    /// Records a dataset's whole population in the ledger, as released (its row count is shown
    /// to every user who may list it).
    pub(super) async fn record_whole_population(
        &self,
        record: &DatasetRecord,
    ) -> Result<(), Status> {
        record_whole_population(&self.0.engine, &self.0.ledger, record)
            .await
            .map_err(internal)
    }

    /// Builds the development sample of a freshly stored dataset (before it is committed, so a
    /// dataset never exists without its sample).
    pub(super) fn build_dev_sample(
        &self,
        mut record: DatasetRecord,
        header: &pb::RegisterHeader,
    ) -> Result<DatasetRecord, Status> {
        let cfg = &self.0.cfg.dev;
        let spec = SampleSpec {
            rate: if header.dev_sample_rate == 0.0 {
                cfg.sample_rate
            } else {
                header.dev_sample_rate
            },
            floor: cfg.sample_floor,
            seed: header.dev_sample_seed,
        };
        spec.validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let table = convert::stored_table(&record, Env::Prod)?
            .ok_or_else(|| Status::internal("a dataset always has its production table"))?;
        let (sample, rows) = self
            .0
            .engine
            .build_dev_sample(&table, &spec)
            .map_err(|e| engine_status(&e))?;
        record.dev = Some(dev_sample_record(sample, rows, &spec));
        Ok(record)
    }

    fn abandon(&self, name: &str, id: &str) {
        self.0.engine.discard_dataset(id);
        if let Err(e) = self.0.store.release_dataset_name(name) {
            tracing::error!(error = %e, "could not release a dataset name");
        }
    }

    /// Receives the rows of version `version` of dataset `id`; a new version is first held to
    /// `continues` (the columns a carried-over policy classifies, the privacy unit's type).
    pub(super) async fn receive(
        &self,
        stream: &mut Streaming<pb::RegisterChunk>,
        id: &str,
        version: u32,
        policy: &erhai_policies::DatasetPolicy,
        continues: Option<&super::dataset_life::Continues<'_>>,
    ) -> Result<(Upload, u64), Status> {
        let mut upload: Option<BackgroundUpload> = None;
        let mut batches = 0u64;
        let limit = self.0.cfg.limits.max_upload_mib.saturating_mul(1 << 20);
        let mut received = 0u64;
        while let Some(msg) = stream.message().await? {
            match msg.part {
                Some(Part::Ipc(bytes)) => {
                    received += bytes.len() as u64;
                    if received > limit {
                        return Err(Status::resource_exhausted(format!(
                            "upload exceeds the limit of {} MiB; nothing was registered",
                            self.0.cfg.limits.max_upload_mib
                        )));
                    }
                    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| {
                        Status::invalid_argument(format!(
                            "chunk {} is not an Arrow IPC stream: {e}",
                            batches + 1
                        ))
                    })?;
                    let schema = reader.schema();
                    if upload.is_none() {
                        let mut seen = HashSet::new();
                        for f in schema.fields() {
                            if !seen.insert(f.name().as_str()) {
                                return Err(Status::invalid_argument(format!(
                                    "column `{}` appears twice",
                                    f.name()
                                )));
                            }
                            if !supported_type(f.data_type()) {
                                return Err(Status::invalid_argument(format!(
                                    "column `{}` has type {}, which erhai does not store; use strings, numbers, decimals, dates or timestamps",
                                    f.name(),
                                    f.data_type()
                                )));
                            }
                        }
                        if let Some(c) = continues {
                            c.check(&schema)?;
                        }
                        upload = Some(BackgroundUpload::start(
                            self.0
                                .engine
                                .begin_upload(id, version, schema.clone(), policy)
                                .map_err(|e| engine_status(&e))?,
                        ));
                    }
                    let up = upload
                        .as_mut()
                        .ok_or_else(|| Status::internal("upload not started"))?;
                    for batch in reader {
                        let batch = batch.map_err(|e| {
                            Status::invalid_argument(format!(
                                "chunk {} is corrupt: {e}",
                                batches + 1
                            ))
                        })?;
                        up.write(batch).await?;
                        batches += 1;
                    }
                }
                Some(Part::Finish(f)) => {
                    let up = upload.ok_or_else(|| {
                        Status::invalid_argument("upload holds no data: nothing was registered")
                    })?;
                    if f.total_rows != up.rows || f.total_batches != batches {
                        return Err(Status::data_loss(format!(
                            "upload is incomplete: the client sent {} rows in {} batches, the server received {} rows in {batches}; nothing was registered",
                            f.total_rows, f.total_batches, up.rows
                        )));
                    }
                    if stream.message().await?.is_some() {
                        return Err(Status::invalid_argument(
                            "messages after the finish message; nothing was registered",
                        ));
                    }
                    let rows = up.rows;
                    return Ok((up.finish().await?, rows));
                }
                Some(Part::Header(_)) => {
                    return Err(Status::invalid_argument("a second header in one upload"));
                }
                None => return Err(Status::invalid_argument("an empty upload message")),
            }
        }
        Err(Status::data_loss(
            "upload ended before its finish message (truncated); nothing was registered",
        ))
    }

    fn approve_import_inner(
        &self,
        user: &UserRecord,
        r: &pb::ImportDecision,
    ) -> Result<pb::Dataset, Status> {
        let reason = r.reason.trim();
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(Status::invalid_argument(
                "an import approval needs a reason (--reason, at most 2000 characters)",
            ));
        }
        let mut d = self
            .0
            .store
            .dataset(&r.dataset)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no dataset `{}`", r.dataset)))?;
        if d.social_tenant.is_none() {
            return Err(Status::failed_precondition(format!(
                "{} is public data registered by its provider; only social data needs an import approval",
                d.name
            )));
        }
        if d.import_approved.is_some() {
            return Err(Status::failed_precondition(format!(
                "the import of {} is approved already",
                d.name
            )));
        }
        d.import_approved = Some(crate::state::Approval {
            by: user.id.clone(),
            reason: reason.to_string(),
            at_ms: now_ms(),
            suppress_flagged: false,
        });
        self.0.store.put_dataset(&d).map_err(internal)?;
        Ok(convert::dataset(&d))
    }

    /// Datasets `user` may see: providers their unit's; analysts the public catalog (what they
    /// may apply for in a scenario) and their own tenant's social data; others all. Seeing a
    /// dataset's schema and policy reads none of its data: only an active scenario does.
    pub(crate) fn visible_datasets(&self, user: &UserRecord) -> Result<Vec<DatasetRecord>, Status> {
        let all = self.0.store.datasets().map_err(internal)?;
        Ok(match user.role {
            Role::Provider => all
                .into_iter()
                .filter(|d| Some(&d.provider_unit) == user.unit.as_ref())
                .collect(),
            Role::Analyst => {
                let tenant = Self::tenant_of(user)?;
                all.into_iter()
                    .filter(|d| d.social_tenant.as_deref().is_none_or(|t| t == tenant))
                    .collect()
            }
            Role::Admin | Role::Reviewer | Role::Auditor | Role::Center | Role::Authority => all,
        })
    }
}

/// An upload whose batches are encoded and encrypted on a thread of its own while the next
/// chunks arrive and decode (they used to wait for each other).
struct BackgroundUpload {
    tx: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    thread: Option<std::thread::JoinHandle<erhai_engine::Result<Upload>>>,
    /// Rows handed to the writer.
    rows: u64,
}

impl BackgroundUpload {
    fn start(mut upload: Upload) -> BackgroundUpload {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
        let thread = std::thread::spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                upload.write(&batch)?;
            }
            Ok(upload)
        });
        BackgroundUpload {
            tx: Some(tx),
            thread: Some(thread),
            rows: 0,
        }
    }

    /// Hands a batch to the writer; a writer that stopped answers with its error.
    async fn write(&mut self, batch: RecordBatch) -> Result<(), Status> {
        self.rows += batch.num_rows() as u64;
        let sent = match &self.tx {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        match self.join().await {
            Err(status) => Err(status),
            Ok(_) => Err(Status::internal("the upload writer stopped")),
        }
    }

    async fn join(&mut self) -> Result<Upload, Status> {
        self.tx = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| Status::internal("upload writer already joined"))?;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| Status::internal(format!("upload writer: {e}")))?
            .map_err(|_| Status::internal("the upload writer panicked"))?
            .map_err(|e| engine_status(&e))
    }

    /// Waits for every batch to be written.
    async fn finish(mut self) -> Result<Upload, Status> {
        self.join().await
    }
}

impl Drop for BackgroundUpload {
    fn drop(&mut self) {
        // An abandoned upload: let the writer drain and drop its temporary file before the
        // caller removes the dataset's directory.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tonic::async_trait]
impl CatalogService for Gateway {
    async fn approve_import(
        &self,
        req: Request<pb::ImportDecision>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let object = format!(
            "{} ({})",
            req.get_ref().dataset,
            req.get_ref().reason.trim()
        );
        self.unary(&req, Action::ApproveImport, &object, |u, r| {
            self.approve_import_inner(u, r)
        })
    }

    async fn register_dataset(
        &self,
        req: Request<Streaming<pb::RegisterChunk>>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let user = self.authorize_stream(&req, Action::RegisterDataset, "")?;
        let mut stream = req.into_inner();
        let mut object = String::new();
        let r = self.register_inner(&user, &mut stream, &mut object).await;
        self.finish(&user, Action::RegisterDataset, &object, r)
            .map(Response::new)
    }

    async fn list_datasets(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        self.unary(&req, Action::ListDatasets, "", |u, _| {
            self.visible_datasets(u).map(|ds| pb::ListDatasetsResponse {
                datasets: ds.iter().map(convert::dataset).collect(),
            })
        })
    }

    async fn retire_dataset(
        &self,
        req: Request<pb::DatasetDecision>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let object = decision_object(req.get_ref());
        self.unary(&req, Action::RetireDataset, &object, |u, r| {
            self.retire_inner(u, r)
        })
    }

    async fn delete_dataset(
        &self,
        req: Request<pb::DatasetDecision>,
    ) -> Result<Response<pb::DatasetDeleted>, Status> {
        let object = decision_object(req.get_ref());
        self.unary(&req, Action::DeleteDataset, &object, |u, r| {
            self.delete_inner(u, r)
        })
    }

    async fn get_dataset(
        &self,
        req: Request<pb::DatasetRef>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let object = req.get_ref().dataset.clone();
        self.unary(&req, Action::GetDataset, &object, |u, _| {
            self.visible_datasets(u).and_then(|ds| {
                ds.iter()
                    .find(|d| d.id == object || d.name == object)
                    .map(convert::dataset)
                    .ok_or_else(|| {
                        Status::not_found(format!("no dataset `{object}` visible to you"))
                    })
            })
        })
    }
}

/// What the audit event of a retirement or deletion names: the dataset and the reason given.
fn decision_object(r: &pb::DatasetDecision) -> String {
    format!("{} ({})", r.dataset, r.reason.trim())
}

/// The record of a sample of `rows` rows just built by `spec` under the current rules.
fn dev_sample_record(
    sample: erhai_engine::StoredTable,
    rows: u64,
    spec: &SampleSpec,
) -> DevSampleRecord {
    DevSampleRecord {
        rows,
        rate: spec.rate,
        seed: spec.seed,
        fields: convert::stored_fields(&sample.schema),
        policy: sample.policy,
        wrapped_key: sample.wrapped_key,
        rules: erhai_policies::dev_sample::RULES_VERSION,
    }
}

/// Rebuilds the development samples that older desensitization rules built (a sample that held
/// all of a small dataset, birth years unbanded, measures exact), under the current rules, with
/// the same seed and at most the current share; returns how many were rebuilt.
pub(crate) fn upgrade_dev_samples(
    store: &crate::state::Store,
    engine: &erhai_engine::Engine,
    cfg: &crate::config::DevConfig,
) -> Result<usize, crate::error::GatewayError> {
    use erhai_policies::dev_sample::{MAX_SHARE, RULES_VERSION};
    let mut rebuilt = 0;
    for mut d in store.datasets()? {
        let Some(old) = d.dev.clone() else { continue };
        if old.rules >= RULES_VERSION {
            continue;
        }
        let spec = SampleSpec {
            rate: old.rate.clamp(f64::MIN_POSITIVE, MAX_SHARE),
            floor: cfg.sample_floor,
            seed: old.seed,
        };
        let table = convert::stored_table(&d, Env::Prod)
            .map_err(|s| crate::error::GatewayError::Store(s.message().to_string()))?
            .ok_or_else(|| crate::error::GatewayError::Store("dataset without its table".into()))?;
        let (sample, rows) = engine.build_dev_sample(&table, &spec)?;
        d.dev = Some(dev_sample_record(sample, rows, &spec));
        store.put_dataset(&d)?;
        rebuilt += 1;
    }
    if rebuilt > 0 {
        store.flush()?;
    }
    Ok(rebuilt)
}

/// Records the whole population of `record` (see `PopulationLedger::record_registration`).
pub(crate) async fn record_whole_population(
    engine: &erhai_engine::Engine,
    ledger: &crate::ledger::PopulationLedger,
    record: &DatasetRecord,
) -> Result<(), crate::error::GatewayError> {
    let table = convert::stored_table(record, Env::Prod)
        .map_err(|s| crate::error::GatewayError::Store(s.message().to_string()))?
        .ok_or_else(|| crate::error::GatewayError::Store("dataset without its table".into()))?;
    let (units, fingerprint) = engine.whole_population(&table).await?;
    ledger.record_registration(&record.id, record.version, &record.name, units, fingerprint)
}
