//! The `FerroRaft` service: Raft messages and snapshot chunks from other stores, and their
//! waits for the cluster's deadlock detector (`Detect`).

use std::sync::{Arc, Mutex};

use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::FerroRaft;
use ferrokv_proto::ferrokv_raftpb::{
    DetectRequest, DetectResponse, Done, RaftMessageBatch, SnapshotChunk,
};
use tonic::{Request, Response, Status};

use crate::node::NodeHandle;
use crate::snapshot_chunks::{Assembler, ChunkError};

/// A snapshot transfer with no chunk for this long is abandoned.
pub const SNAPSHOT_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Receives Raft traffic for one node.
pub struct RaftService {
    node: NodeHandle,
    assembler: Arc<Mutex<Assembler>>,
    started: tokio::time::Instant,
}

impl RaftService {
    /// A service feeding `node`.
    pub fn new(node: NodeHandle) -> RaftService {
        RaftService {
            node,
            assembler: Arc::new(Mutex::new(Assembler::new(SNAPSHOT_IDLE_TIMEOUT_MS))),
            started: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn status_of(error: ChunkError) -> Status {
    match error {
        ChunkError::Invalid(_) => Status::invalid_argument(error.to_string()),
        ChunkError::Exhausted(_) => Status::resource_exhausted(error.to_string()),
        ChunkError::UnknownTransfer | ChunkError::OutOfOrder => {
            Status::failed_precondition(error.to_string())
        }
        ChunkError::Corrupt => Status::data_loss(error.to_string()),
    }
}

#[tonic::async_trait]
impl FerroRaft for RaftService {
    async fn send_raft(
        &self,
        request: Request<RaftMessageBatch>,
    ) -> Result<Response<Done>, Status> {
        for message in request.into_inner().messages {
            if self.node.raft_message(message).is_err() {
                return Err(Status::resource_exhausted("node mailbox full"));
            }
        }
        Ok(Response::new(Done {}))
    }

    async fn detect(
        &self,
        request: Request<DetectRequest>,
    ) -> Result<Response<DetectResponse>, Status> {
        let batch = crate::detector::batch_from_wire(request.into_inner())
            .map_err(Status::invalid_argument)?;
        let answer = self
            .node
            .detect(batch)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(crate::detector::answer_to_wire(answer)))
    }

    async fn send_snapshot_chunk(
        &self,
        request: Request<SnapshotChunk>,
    ) -> Result<Response<Done>, Status> {
        let now_ms = self.now_ms();
        let whole = self
            .assembler
            .lock()
            .expect("assembler lock")
            .accept(request.into_inner(), now_ms)
            .map_err(status_of)?;
        if let Some(message) = whole {
            self.node
                .raft_message(message)
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Ok(Response::new(Done {}))
    }
}
