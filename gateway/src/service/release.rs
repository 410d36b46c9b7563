//! ReleaseService: the submitting tenant's analysts download an approved result.

use std::pin::Pin;

use erhai_proto::v1 as pb;
use erhai_proto::v1::release_service_server::ReleaseService;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Gateway, convert};
use crate::authz::Action;
use crate::state::{JobState, UserRecord};

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ReleaseChunk, Status>> + Send>>;

impl Gateway {
    fn fetch_inner(&self, user: &UserRecord, id: &str) -> Result<Vec<pb::ReleaseChunk>, Status> {
        let job = self.visible_job(user, id)?;
        if job.state != JobState::Released {
            return Err(Status::failed_precondition(format!(
                "job `{}` is {}: only results a reviewer approved can be downloaded",
                job.id,
                job.state.name()
            )));
        }
        let (schema, batches) = self.result_of(&job)?;
        let mut chunks = Vec::new();
        for b in &batches {
            chunks.push(pb::ReleaseChunk {
                ipc: convert::ipc(&schema, std::slice::from_ref(b))?,
            });
        }
        if chunks.is_empty() {
            // An empty release still carries its schema.
            chunks.push(pb::ReleaseChunk {
                ipc: convert::ipc(&schema, &[])?,
            });
        }
        Ok(chunks)
    }
}

#[tonic::async_trait]
impl ReleaseService for Gateway {
    type FetchReleaseStream = ChunkStream;

    async fn fetch_release(
        &self,
        req: Request<pb::JobRef>,
    ) -> Result<Response<Self::FetchReleaseStream>, Status> {
        let object = req.get_ref().job.clone();
        let user = self.authorize(&req, Action::FetchRelease, &object)?;
        let r = self.fetch_inner(&user, &object);
        let chunks = self.finish(&user, Action::FetchRelease, &object, r)?;
        let stream: ChunkStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
        Ok(Response::new(stream))
    }
}
