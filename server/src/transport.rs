//! Raft transport over gRPC: one bounded queue and one sender task per destination store.
//!
//! `send` never blocks: a full queue drops the message (`SendError::Full`) and Raft
//! retransmits. The sender task batches queued messages into one `SendRaft` call, ships
//! snapshots in checksummed chunks through `SendSnapshotChunk`, and reconnects with backoff
//! when a call fails (dropping that batch).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_core::env::{SendError, Transport};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_client::FerroRaftClient;
use ferrokv_proto::ferrokv_raftpb::{RaftMessage, RaftMessageBatch, SnapshotChunk, SnapshotKey};
use protobuf::Message as _;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// Messages queued per destination store before new ones are dropped.
pub const STORE_QUEUE_CAPACITY: usize = 4096;
/// Messages per `SendRaft` call.
const BATCH_MESSAGES_MAX: usize = 256;
/// Bytes of snapshot data per chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Finds a store's address.
pub trait StoreResolver: Send + Sync + 'static {
    /// The `host:port` of `store`, if known.
    fn resolve(&self, store: StoreId) -> Option<String>;
}

/// A fixed address book (until PD).
pub struct StaticResolver(pub BTreeMap<u64, String>);

impl StoreResolver for StaticResolver {
    fn resolve(&self, store: StoreId) -> Option<String> {
        self.0.get(&store.get()).cloned()
    }
}

/// The gRPC Raft transport.
#[derive(Clone)]
pub struct GrpcTransport {
    queues: Arc<Mutex<BTreeMap<StoreId, mpsc::Sender<RaftMessage>>>>,
    resolver: Arc<dyn StoreResolver>,
}

impl GrpcTransport {
    /// A transport resolving addresses through `resolver`.
    pub fn new(resolver: Arc<dyn StoreResolver>) -> GrpcTransport {
        GrpcTransport {
            queues: Arc::new(Mutex::new(BTreeMap::new())),
            resolver,
        }
    }

    fn queue(&self, to: StoreId) -> Result<mpsc::Sender<RaftMessage>, SendError> {
        let mut queues = self.queues.lock().expect("transport lock");
        if let Some(queue) = queues.get(&to).filter(|queue| !queue.is_closed()) {
            return Ok(queue.clone());
        }
        let address = self
            .resolver
            .resolve(to)
            .ok_or(SendError::Unreachable(to))?;
        let (sender, receiver) = mpsc::channel(STORE_QUEUE_CAPACITY);
        tokio::spawn(sender_task(to, address, receiver));
        queues.insert(to, sender.clone());
        Ok(sender)
    }
}

impl Transport for GrpcTransport {
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError> {
        self.queue(to)?
            .try_send(message)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => SendError::Full(to),
                mpsc::error::TrySendError::Closed(_) => SendError::Unreachable(to),
            })
    }
}

async fn connect(address: &str) -> Option<FerroRaftClient<Channel>> {
    let endpoint = Endpoint::new(format!("http://{address}"))
        .ok()?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .ok()?
        .ok()?;
    Some(FerroRaftClient::new(channel))
}

async fn sender_task(to: StoreId, address: String, mut queue: mpsc::Receiver<RaftMessage>) {
    let mut client: Option<FerroRaftClient<Channel>> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MESSAGES_MAX {
            match queue.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        if client.is_none() {
            client = connect(&address).await;
        }
        let Some(rpc) = client.as_mut() else {
            tracing::debug!(store = %to, %address, dropped = batch.len(), "store unreachable");
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        if buggify!() {
            // A slow or reordering network path.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let duplicate = buggify!().then(|| batch.clone());
        if let Err(error) = send_batch(rpc, batch).await {
            tracing::debug!(store = %to, %address, %error, "raft send failed; reconnecting");
            client = None;
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        }
        if let Some(copy) = duplicate {
            // A duplicated delivery: Raft must tolerate it.
            let _ = send_batch(rpc, copy).await;
        }
    }
}

async fn send_batch(
    rpc: &mut FerroRaftClient<Channel>,
    batch: Vec<RaftMessage>,
) -> Result<(), String> {
    let (snapshots, messages): (Vec<_>, Vec<_>) = batch.into_iter().partition(|m| m.is_snapshot);
    if !messages.is_empty() {
        let call = rpc.send_raft(RaftMessageBatch { messages });
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|status| status.to_string())?;
    }
    for snapshot in snapshots {
        send_snapshot(rpc, snapshot).await?;
    }
    Ok(())
}

/// Splits a snapshot message into chunks; the first carries the message without its data.
pub fn snapshot_chunks(mut message: RaftMessage) -> Result<Vec<SnapshotChunk>, String> {
    let mut wire =
        raft::eraftpb::Message::parse_from_bytes(&message.message).map_err(|e| e.to_string())?;
    let data = std::mem::take(&mut wire.mut_snapshot().data);
    let meta = wire.get_snapshot().get_metadata();
    let key = SnapshotKey {
        region_id: message.region_id,
        term: meta.term,
        index: meta.index,
        to_peer_id: message.to_peer.map_or(0, |peer| peer.id),
    };
    message.message = wire.write_to_bytes().map_err(|e| e.to_string())?;
    let checksum = crc32c::crc32c(&data);
    let pieces: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(SNAPSHOT_CHUNK_BYTES).collect()
    };
    let count = pieces.len();
    let mut chunks = Vec::with_capacity(count);
    let mut offset = 0u64;
    for (position, piece) in pieces.into_iter().enumerate() {
        let last = position + 1 == count;
        chunks.push(SnapshotChunk {
            key: Some(key),
            message: (position == 0).then(|| message.clone()),
            offset,
            data: piece.to_vec(),
            last,
            checksum: if last { checksum } else { 0 },
        });
        offset += piece.len() as u64;
    }
    Ok(chunks)
}

async fn send_snapshot(
    rpc: &mut FerroRaftClient<Channel>,
    message: RaftMessage,
) -> Result<(), String> {
    for chunk in snapshot_chunks(message)? {
        let call = rpc.send_snapshot_chunk(chunk);
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|status| status.to_string())?;
    }
    Ok(())
}
