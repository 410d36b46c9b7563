//! Platform state in sled: users, datasets, jobs (the audit chain lives in
//! [`crate::audit`]), each a tree of [`Records`]; every commit is flushed before the RPC answers.

use std::path::Path;

use erhai_engine::CheckReport;
use erhai_policies::{DatasetPolicy, PlanVerdict};
use serde::{Deserialize, Serialize};

use crate::authz::Role;
use crate::error::GatewayError;
use crate::records::Records;

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Unique id; the certificate's common name.
    pub id: String,
    /// Real name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Tenant (operating entity), for analysts and tenant reviewers.
    pub tenant: Option<String>,
    /// Provider unit, for providers.
    pub unit: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: Option<i64>,
    /// Disabled users are refused.
    pub disabled: bool,
    /// Fingerprint of the only certificate accepted for this user.
    pub cert_sha256: String,
}

/// One column as stored: name, Arrow type (display form), nullability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredField {
    /// Column name.
    pub name: String,
    /// Arrow data type, as displayed (parsed back with `DataType::from_str`).
    pub data_type: String,
    /// Nullable.
    pub nullable: bool,
}

/// A registered dataset (its current version).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Id.
    pub id: String,
    /// Unique name; the table name in queries.
    pub name: String,
    /// Description.
    pub description: String,
    /// Provider unit that owns it.
    pub provider_unit: String,
    /// User who registered it.
    pub registered_by: String,
    /// Version number.
    pub version: u32,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk (ciphertext).
    pub bytes: u64,
    /// Schema.
    pub fields: Vec<StoredField>,
    /// Column policy.
    pub policy: DatasetPolicy,
    /// Data key wrapped by the master key.
    pub wrapped_key: Vec<u8>,
    /// Registration time.
    pub created_at_ms: i64,
    /// The development sample, once built.
    #[serde(default)]
    pub dev: Option<DevSampleRecord>,
    /// Social data (社会数据): the tenant that uploaded it, for fusion in its own scenarios.
    #[serde(default)]
    pub social_tenant: Option<String>,
    /// The authority's approval of a social dataset's import.
    #[serde(default)]
    pub import_approved: Option<Approval>,
    /// The versions before this one, oldest first. Their files and keys are kept as long as
    /// the dataset exists (releases over them stay traceable to what they read); no query reads
    /// them, and their development samples are removed when a new version replaces them.
    #[serde(default)]
    pub earlier: Vec<VersionRecord>,
    /// Who retired it, when and why: it takes no new queries, scenarios or versions.
    #[serde(default)]
    pub retired: Option<Approval>,
}

/// A dataset version that a newer one replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version number.
    pub version: u32,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk (ciphertext).
    pub bytes: u64,
    /// Schema.
    pub fields: Vec<StoredField>,
    /// Column policy it was registered under.
    pub policy: DatasetPolicy,
    /// Its data key, wrapped by the master key (bound to `<dataset>/v<version>`).
    pub wrapped_key: Vec<u8>,
    /// Who registered it.
    pub registered_by: String,
    /// When.
    pub created_at_ms: i64,
}

impl DatasetRecord {
    /// How a job names the version it reads: `name@vN`.
    pub fn version_label(&self) -> String {
        format!("{}@v{}", self.name, self.version)
    }

    /// Every version number it has had, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.earlier
            .iter()
            .map(|v| v.version)
            .chain(std::iter::once(self.version))
    }

    /// Whether scenarios may use it: public data always; social data once its import is
    /// approved, and only in its own tenant's scenarios.
    pub fn usable_by(&self, tenant: &str) -> Result<(), DatasetRefusal> {
        let dataset = || self.name.clone();
        match &self.social_tenant {
            None => Ok(()),
            Some(t) if t != tenant => Err(DatasetRefusal::NotVisible { dataset: dataset() }),
            Some(_) if self.import_approved.is_none() => {
                Err(DatasetRefusal::AwaitsImport { dataset: dataset() })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Why a tenant's scenarios may not use a dataset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatasetRefusal {
    /// Another tenant's social data: as if it did not exist.
    #[error("no dataset `{dataset}` visible to you")]
    NotVisible {
        /// The dataset.
        dataset: String,
    },
    /// The tenant's own social data, not yet approved for import.
    #[error("social dataset {dataset} awaits the authority's import approval")]
    AwaitsImport {
        /// The dataset.
        dataset: String,
    },
}

/// A dataset version's development sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DevSampleRecord {
    /// Rows drawn.
    pub rows: u64,
    /// Sampling rate.
    pub rate: f64,
    /// Sampling seed.
    pub seed: u64,
    /// Schema of the sample.
    pub fields: Vec<StoredField>,
    /// Policy of the sample.
    pub policy: DatasetPolicy,
    /// The sample's data key, wrapped by the master key.
    pub wrapped_key: Vec<u8>,
    /// The version of the desensitization rules it was built under
    /// (`erhai_policies::dev_sample::RULES_VERSION`; 0: before versions).
    #[serde(default)]
    pub rules: u32,
}

/// Job states; their names (serde, `Display`, [`JobState::name`]) are the API's.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobState {
    /// Executing.
    Running,
    /// Refused by the plan check (never executed).
    Refused,
    /// Executed, checked, quarantined; waiting for a reviewer.
    AwaitingReview,
    /// A reviewer rejected it.
    Rejected,
    /// A reviewer approved it; the submitting tenant may download it.
    Released,
    /// Planning or execution failed.
    Failed,
    /// A development job ran; its rows went to the analyst (never stored, never reviewed).
    Completed,
}

impl JobState {
    /// The state's name.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A production job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: String,
    /// Tenant of the submitter.
    pub tenant: String,
    /// Submitting analyst.
    pub submitted_by: String,
    /// SQL text.
    pub sql: String,
    /// State.
    pub state: JobState,
    /// Error or refusal text.
    pub error: Option<String>,
    /// Plan verdict.
    pub verdict: Option<PlanVerdict>,
    /// Automatic check report.
    pub report: Option<CheckReport>,
    /// Dataset ids the job could read.
    pub datasets: Vec<String>,
    /// Submission time.
    pub submitted_at_ms: i64,
    /// End of execution.
    pub finished_at_ms: Option<i64>,
    /// Reviewer.
    pub reviewed_by: Option<String>,
    /// Review reason.
    pub review_reason: Option<String>,
    /// Review time.
    pub reviewed_at_ms: Option<i64>,
    /// Wrapped key of the quarantined result.
    pub result_key: Option<Vec<u8>>,
    /// A development job (samples, no review).
    #[serde(default)]
    pub dev: bool,
    /// For a production job promoted from development: the dev job's id.
    #[serde(default)]
    pub promoted_from: Option<String>,
    /// Approvals so far (a result with rows to review may need two).
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// Set when the job is released.
    #[serde(default)]
    pub release: Option<ReleaseRecord>,
    /// Approvals the job needs (set when its checks are done).
    #[serde(default)]
    pub approvals_needed: u32,
    /// The scenario it runs in.
    #[serde(default)]
    pub scenario: Option<String>,
    /// ε charged to the scenario (DP mode).
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// The rules it is held to, fixed at submission (none in records from before they were).
    #[serde(default)]
    pub rules: Option<crate::job_rules::JobRules>,
    /// The dataset versions it read, `name@vN`, beside `datasets` (empty in records from
    /// before versions: those all read version 1).
    #[serde(default)]
    pub dataset_versions: Vec<String>,
}

/// One reviewer's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Reviewer.
    pub by: String,
    /// Their reason.
    pub reason: String,
    /// When.
    pub at_ms: i64,
    /// Approved with the rows to review withheld (`review approve --suppress-flagged`).
    #[serde(default)]
    pub suppress_flagged: bool,
}

/// A row of the reviewed result that a release leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldRecord {
    /// Position in the computed result.
    pub row: u64,
    /// Position in the result the reviewers saw (the quarantined one).
    pub reviewed_row: u64,
    /// The rule that withheld it: `flagged` (a row to review), `complementary`, ...
    pub rule: String,
    /// Its message.
    pub reason: String,
}

/// What a release is, fixed at approval: receipts restate it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Release id.
    pub id: String,
    /// SHA-256 of the released rows (canonical Arrow IPC stream).
    pub result_sha256: String,
    /// Rows released.
    pub rows: u64,
    /// Approval time.
    pub approved_at_ms: i64,
    /// Rows of the reviewed result left out of the release, by their reviewed position.
    #[serde(default)]
    pub withheld: Vec<WithheldRecord>,
}

/// The sled database and its trees.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    users: Records<UserRecord>,
    datasets: Records<DatasetRecord>,
    /// Name → id, raw bytes: a reservation taken before the dataset record exists.
    dataset_names: sled::Tree,
    /// Sealed at rest when the store has the master key (their SQL texts may carry a personal
    /// literal); a store opened without it (offline tools) reads records from before sealing only.
    jobs: Records<JobRecord>,
}

/// A storage failure, as a status for callers.
pub fn store_status(e: GatewayError) -> tonic::Status {
    tracing::error!(error = %e, "metadata store failure");
    tonic::Status::internal(format!("metadata store failure: {e}"))
}

/// Current time, ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, GatewayError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Store {
            users: Records::open(&db, "users", "user")?,
            datasets: Records::open(&db, "datasets", "dataset")?,
            dataset_names: db.open_tree("dataset_names")?,
            jobs: Records::open(&db, "jobs", "job")?,
            db,
        })
    }

    /// This store, sealing job records with `sealer` (and opening sealed ones).
    pub fn sealed_with(mut self, sealer: erhai_engine::RecordSealer) -> Store {
        self.jobs = self.jobs.sealed_with(sealer);
        self
    }

    /// Seals the job records written before sealing; returns how many.
    pub fn seal_plain_jobs(&self) -> Result<usize, GatewayError> {
        let n = self.jobs.seal_plain()?;
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }

    /// The underlying database (for the audit chain's trees).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Makes every committed change durable.
    pub fn flush(&self) -> Result<(), GatewayError> {
        self.db.flush()?;
        Ok(())
    }

    /// A new id with `prefix`, unique across restarts.
    pub fn new_id(&self, prefix: &str) -> Result<String, GatewayError> {
        Ok(format!("{prefix}-{:06}", self.db.generate_id()? + 1))
    }

    // ---- users

    /// A user by id.
    pub fn user(&self, id: &str) -> Result<Option<UserRecord>, GatewayError> {
        self.users.get(id)
    }

    /// Inserts a new user; false if the id exists.
    pub fn insert_user(&self, u: &UserRecord) -> Result<bool, GatewayError> {
        let inserted = self.users.create(&u.id, u)?;
        self.flush()?;
        Ok(inserted)
    }

    /// Replaces a user record.
    pub fn update_user(&self, u: &UserRecord) -> Result<(), GatewayError> {
        self.users.put(&u.id, u)?;
        self.flush()
    }

    /// All users.
    pub fn users(&self) -> Result<Vec<UserRecord>, GatewayError> {
        self.users.all()
    }

    // ---- datasets

    /// A dataset by id or name.
    pub fn dataset(&self, id_or_name: &str) -> Result<Option<DatasetRecord>, GatewayError> {
        if let Some(d) = self.datasets.get(id_or_name)? {
            return Ok(Some(d));
        }
        match self.dataset_names.get(id_or_name.as_bytes())? {
            Some(id) => self.datasets.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Reserves a dataset name for `id`; false if taken.
    pub fn reserve_dataset_name(&self, name: &str, id: &str) -> Result<bool, GatewayError> {
        Ok(self
            .dataset_names
            .compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(id.as_bytes()))?
            .is_ok())
    }

    /// Releases a reserved name (failed upload).
    pub fn release_dataset_name(&self, name: &str) -> Result<(), GatewayError> {
        self.dataset_names.remove(name.as_bytes())?;
        Ok(())
    }

    /// Commits a dataset record.
    pub fn put_dataset(&self, d: &DatasetRecord) -> Result<(), GatewayError> {
        self.datasets.put(&d.id, d)?;
        self.flush()
    }

    /// Changes a dataset record atomically: `change` returns the new record or why not
    /// (`Ok(None)`: no such dataset).
    pub fn update_dataset<E>(
        &self,
        id: &str,
        change: impl Fn(&DatasetRecord) -> Result<DatasetRecord, E>,
    ) -> Result<Option<Result<DatasetRecord, E>>, GatewayError> {
        let changed = self.datasets.update(id, change)?;
        self.flush()?;
        Ok(changed)
    }

    /// Removes a dataset record and frees its name (its wrapped data keys go with it).
    pub fn remove_dataset(&self, d: &DatasetRecord) -> Result<(), GatewayError> {
        self.datasets.remove(&d.id)?;
        self.dataset_names.remove(d.name.as_bytes())?;
        self.flush()
    }

    /// All datasets.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>, GatewayError> {
        self.datasets.all()
    }

    /// Names reserved by uploads that never committed (a crash mid-upload): removed at startup.
    pub fn remove_uncommitted_names(&self) -> Result<Vec<String>, GatewayError> {
        let mut removed = Vec::new();
        for kv in self.dataset_names.iter() {
            let (name, id) = kv?;
            if !self.datasets.contains(&id)? {
                self.dataset_names.remove(&name)?;
                removed.push(String::from_utf8_lossy(&id).to_string());
            }
        }
        self.flush()?;
        Ok(removed)
    }

    // ---- jobs

    /// A job by id.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, GatewayError> {
        self.jobs.get(id)
    }

    /// Writes a job record.
    pub fn put_job(&self, j: &JobRecord) -> Result<(), GatewayError> {
        self.jobs.put(&j.id, j)?;
        self.flush()
    }

    /// Moves a job from `from` to the state `update` leaves it in, atomically: false if the job
    /// was no longer in `from` (a concurrent decision).
    pub fn transition_job(
        &self,
        id: &str,
        from: JobState,
        update: impl Fn(&mut JobRecord),
    ) -> Result<Option<JobRecord>, GatewayError> {
        let moved = self.jobs.update(id, |job| {
            if job.state != from {
                return Err(());
            }
            let mut job = job.clone();
            update(&mut job);
            Ok(job)
        })?;
        let Some(Ok(job)) = moved else {
            return Ok(None);
        };
        self.flush()?;
        Ok(Some(job))
    }

    /// All jobs.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, GatewayError> {
        self.jobs.all()
    }

    /// Marks jobs left running by a crash as failed; returns their ids.
    pub fn fail_interrupted_jobs(&self) -> Result<Vec<String>, GatewayError> {
        let mut ids = Vec::new();
        for mut j in self.jobs()? {
            if j.state == JobState::Running {
                j.state = JobState::Failed;
                j.error = Some("interrupted by a server restart; submit the query again".into());
                j.finished_at_ms = Some(now_ms());
                self.jobs.put(&j.id, &j)?;
                ids.push(j.id);
            }
        }
        self.flush()?;
        Ok(ids)
    }
}
