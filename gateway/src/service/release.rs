//! ReleaseService: the submitting tenant's analysts download an approved result as a file with
//! a signed receipt; anyone signed in may read the platform's public key to verify receipts.

use std::pin::Pin;
use std::str::FromStr;

use erhai_engine::export::{self, ExportFormat};
use erhai_proto::receipt::Receipt;
use erhai_proto::v1 as pb;
use erhai_proto::v1::release_service_server::ReleaseService;
use futures::Stream;
use ring::signature::KeyPair;
use tonic::{Request, Response, Status};

use super::query::scope_of;
use super::{Gateway, engine_status};
use crate::authz::Action;
use crate::receipt::{sha256_hex, sign};
use crate::state::{JobRecord, JobState, ReleaseRecord, UserRecord, now_ms};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ReleaseChunk, Status>> + Send>>;

/// Bytes per message of a fetched file.
const CHUNK_BYTES: usize = 1 << 20;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Gateway {
    /// A job's released result as `user` may download it: the job visible to them, released,
    /// and its quarantined rows still exactly what the reviewers approved (their hash).
    pub(super) fn downloadable_release(
        &self,
        user: &UserRecord,
        job: &str,
    ) -> Result<(JobRecord, ReleaseRecord, SchemaRef, Vec<RecordBatch>), Status> {
        let job = self.visible_job(user, job)?;
        let release = match (&job.state, &job.release) {
            (JobState::Released, Some(release)) => release.clone(),
            _ => {
                // The state as the caller may see it (an analyst never learns that a run failed).
                return Err(Status::failed_precondition(format!(
                    "job `{}` is {}: only results a reviewer approved can be downloaded",
                    job.id,
                    super::convert::job(&job, user.role).state
                )));
            }
        };
        let (schema, batches) = self.released_result(&job, &release.withheld)?;
        // The quarantined result, less what the approval withheld, must still be what the
        // reviewers approved.
        let canonical = export::canonical(&schema, &batches).map_err(|e| engine_status(&e))?;
        if sha256_hex(&canonical) != release.result_sha256 {
            return Err(Status::data_loss(format!(
                "release {} no longer matches what was approved; nothing was sent",
                release.id
            )));
        }
        Ok((job, release, schema, batches))
    }

    fn fetch_inner(
        &self,
        user: &UserRecord,
        r: &pb::FetchReleaseRequest,
    ) -> Result<Vec<pb::ReleaseChunk>, Status> {
        let format = ExportFormat::from_str(&r.format).map_err(|e| engine_status(&e))?;
        let (job, release, schema, batches) = self.downloadable_release(user, &r.job)?;
        let file = export::render(format, &schema, &batches).map_err(|e| engine_status(&e))?;
        let receipt = Receipt {
            release: release.id.clone(),
            job: job.id.clone(),
            tenant: job.tenant.clone(),
            scope: scope_of(&job),
            sql_sha256: sha256_hex(job.sql.as_bytes()),
            result_sha256: release.result_sha256.clone(),
            rows: release.rows,
            reviewers: job.approvals.iter().map(|a| a.by.clone()).collect(),
            approved_at: rfc3339(release.approved_at_ms),
            file_format: format.name().into(),
            file_sha256: sha256_hex(&file),
            fetched_by: user.id.clone(),
            fetched_at: rfc3339(now_ms()),
        };
        let receipt =
            sign(&self.0.signer, &receipt).map_err(|e| Status::internal(e.to_string()))?;
        let mut chunks: Vec<pb::ReleaseChunk> = file
            .chunks(CHUNK_BYTES)
            .map(|c| pb::ReleaseChunk {
                data: c.to_vec(),
                receipt: String::new(),
            })
            .collect();
        chunks.push(pb::ReleaseChunk {
            data: Vec::new(),
            receipt,
        });
        Ok(chunks)
    }
}

#[tonic::async_trait]
impl ReleaseService for Gateway {
    type FetchReleaseStream = ChunkStream;

    async fn fetch_release(
        &self,
        req: Request<pb::FetchReleaseRequest>,
    ) -> Result<Response<Self::FetchReleaseStream>, Status> {
        let object = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::FetchRelease, &object)?;
        let r = self.fetch_inner(&user, req.get_ref());
        let chunks = self.finish(&user, Action::FetchRelease, &object, r)?;
        let stream: ChunkStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
        Ok(Response::new(stream))
    }

    async fn platform_key(
        &self,
        req: Request<pb::Empty>,
    ) -> Result<Response<pb::PlatformKeyResponse>, Status> {
        let user = self.authorize(&req, Action::PlatformKey, "")?;
        let r = Ok(pb::PlatformKeyResponse {
            public_key: self.0.signer.public_key().as_ref().to_vec(),
        });
        self.finish(&user, Action::PlatformKey, "", r)
            .map(Response::new)
    }
}
