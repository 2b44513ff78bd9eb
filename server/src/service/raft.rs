//! The `FerroRaft` service: Raft messages and snapshot chunks from other stores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::FerroRaft;
use ferrokv_proto::ferrokv_raftpb::{Done, RaftMessage, RaftMessageBatch, SnapshotChunk};
use protobuf::Message as _;
use tonic::{Request, Response, Status};

use crate::node::NodeHandle;

/// Snapshots being received at once; more are refused (the leader retries).
pub const SNAPSHOTS_RECEIVING_MAX: usize = 4;
/// Largest snapshot accepted, in bytes.
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024;

type AssemblyKey = (u64, u64, u64, u64);

struct Assembly {
    message: RaftMessage,
    data: Vec<u8>,
}

/// Receives Raft traffic for one node.
pub struct RaftService {
    node: NodeHandle,
    assemblies: Arc<Mutex<BTreeMap<AssemblyKey, Assembly>>>,
}

impl RaftService {
    /// A service feeding `node`.
    pub fn new(node: NodeHandle) -> RaftService {
        RaftService {
            node,
            assemblies: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn accept_chunk(&self, chunk: SnapshotChunk) -> Result<Option<RaftMessage>, Status> {
        let key = chunk
            .key
            .ok_or_else(|| Status::invalid_argument("snapshot chunk without key"))?;
        let id = (key.region_id, key.term, key.index, key.to_peer_id);
        let mut assemblies = self.assemblies.lock().expect("assembly lock");
        if let Some(message) = chunk.message {
            if chunk.offset != 0 {
                return Err(Status::invalid_argument(
                    "snapshot header chunk must start at 0",
                ));
            }
            if !assemblies.contains_key(&id) && assemblies.len() >= SNAPSHOTS_RECEIVING_MAX {
                return Err(Status::resource_exhausted("too many snapshots in flight"));
            }
            assemblies.insert(
                id,
                Assembly {
                    message,
                    data: Vec::new(),
                },
            );
        }
        let assembly = assemblies
            .get_mut(&id)
            .ok_or_else(|| Status::failed_precondition("snapshot chunk for an unknown transfer"))?;
        if chunk.offset != assembly.data.len() as u64 {
            assemblies.remove(&id);
            return Err(Status::failed_precondition("snapshot chunk out of order"));
        }
        if assembly.data.len() as u64 + chunk.data.len() as u64 > SNAPSHOT_BYTES_MAX {
            assemblies.remove(&id);
            return Err(Status::resource_exhausted("snapshot too large"));
        }
        assembly.data.extend_from_slice(&chunk.data);
        if !chunk.last {
            return Ok(None);
        }
        let assembly = assemblies.remove(&id).expect("present");
        finish_assembly(assembly, chunk.checksum).map(Some)
    }
}

fn finish_assembly(assembly: Assembly, checksum: u32) -> Result<RaftMessage, Status> {
    if crc32c::crc32c(&assembly.data) != checksum {
        return Err(Status::data_loss("snapshot checksum mismatch"));
    }
    let mut message = assembly.message;
    let mut wire = raft::eraftpb::Message::parse_from_bytes(&message.message)
        .map_err(|e| Status::invalid_argument(format!("snapshot message: {e}")))?;
    wire.mut_snapshot().data = assembly.data.into();
    message.message = wire
        .write_to_bytes()
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(message)
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

    async fn send_snapshot_chunk(
        &self,
        request: Request<SnapshotChunk>,
    ) -> Result<Response<Done>, Status> {
        if let Some(message) = self.accept_chunk(request.into_inner())? {
            self.node
                .raft_message(message)
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Ok(Response::new(Done {}))
    }
}
