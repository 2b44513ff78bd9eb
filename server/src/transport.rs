//! Raft transport over gRPC: per destination store, one bounded queue for Raft messages and
//! one for snapshots, each with its own sender task, so heartbeats never wait behind
//! snapshot chunks.
//!
//! `send` never blocks: a full queue (by count or bytes) drops the message
//! (`SendError::Full`) and Raft retransmits. The message task batches queued messages into
//! `SendRaft` calls of at most `TRANSPORT_BATCH_BYTES_MAX` bytes. The snapshot task ships
//! each snapshot in checksummed chunks through `SendSnapshotChunk` and reports to the node
//! whether it was delivered, so the leader's retry follows real progress, not a timer.
//! A failed call reconnects with backoff; a store that stays unreachable is logged once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferrokv_core::env::{SendError, Transport};
use ferrokv_core::limits::{
    SNAPSHOT_SEND_QUEUE_BYTES_MAX, TRANSPORT_BATCH_BYTES_MAX, TRANSPORT_QUEUE_BYTES_MAX,
};
use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::ferrokv_raftpb::ferro_raft_client::FerroRaftClient;
use ferrokv_proto::ferrokv_raftpb::{RaftMessage, RaftMessageBatch};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::node::mailbox::LaneSender;
use crate::node::RaftInput;
use crate::snapshot_chunks::snapshot_chunks;

/// Messages queued per destination store before new ones are dropped.
pub const STORE_QUEUE_CAPACITY: usize = 4096;
/// Snapshots queued per destination store.
const SNAPSHOT_QUEUE_CAPACITY: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one snapshot chunk.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a batch of raft messages with no bytes to speak of; each MiB adds
/// `BATCH_TIMEOUT_PER_MIB` (a 4 MiB batch gets 6 s: 1 MiB/s at least). After it the link
/// reconnects and the batch is dropped (Raft retransmits). Calls to a store go one at a
/// time, so a call lost to a partition holds every later message to that store until its
/// deadline: with a flat 10 s, two live stores of three could not elect for 8 s after a
/// partition healed (VOPR seed 62, 5 minutes).
const BATCH_TIMEOUT_BASE: Duration = Duration::from_secs(2);
/// See `BATCH_TIMEOUT_BASE`.
const BATCH_TIMEOUT_PER_MIB: Duration = Duration::from_secs(1);

/// The deadline of a raft message batch of `bytes`.
fn batch_timeout(bytes: usize) -> Duration {
    let mib = u32::try_from(bytes.div_ceil(1024 * 1024)).unwrap_or(u32::MAX);
    BATCH_TIMEOUT_BASE + BATCH_TIMEOUT_PER_MIB.saturating_mul(mib)
}
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Finds a store's address.
pub trait StoreResolver: Send + Sync + 'static {
    /// The `host:port` of `store`, if known.
    fn resolve(&self, store: StoreId) -> Option<String>;
}

/// A fixed address book.
pub struct StaticResolver(pub BTreeMap<u64, String>);

impl StoreResolver for StaticResolver {
    fn resolve(&self, store: StoreId) -> Option<String> {
        self.0.get(&store.get()).cloned()
    }
}

/// The queues to one destination store.
#[derive(Clone)]
struct Route {
    messages: mpsc::Sender<RaftMessage>,
    snapshots: mpsc::Sender<RaftMessage>,
    queued_bytes: Arc<AtomicUsize>,
    queued_snapshot_bytes: Arc<AtomicUsize>,
}

/// Counts `size` bytes into `queued` unless that passes `max` while something is queued
/// (a single larger item alone is let through); false if refused.
fn reserve(queued: &AtomicUsize, size: usize, max: usize) -> bool {
    let before = queued.fetch_add(size, Ordering::AcqRel);
    if before + size > max && before > 0 {
        queued.fetch_sub(size, Ordering::AcqRel);
        return false;
    }
    true
}

/// The gRPC Raft transport.
#[derive(Clone)]
pub struct GrpcTransport {
    routes: Arc<Mutex<BTreeMap<StoreId, Route>>>,
    resolver: Arc<dyn StoreResolver>,
    reporter: Arc<OnceLock<LaneSender<RaftInput>>>,
    /// The runtime the sender tasks run on: the one the transport was made on, not the
    /// node's own (`node::spawn`), whose thread blocks in fsyncs.
    runtime: tokio::runtime::Handle,
}

impl GrpcTransport {
    /// A transport resolving addresses through `resolver`.
    pub fn new(resolver: Arc<dyn StoreResolver>) -> GrpcTransport {
        GrpcTransport {
            routes: Arc::new(Mutex::new(BTreeMap::new())),
            resolver,
            reporter: Arc::new(OnceLock::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Where snapshot delivery reports go (the node's Raft lane); set once, after the node
    /// exists.
    pub(crate) fn set_reporter(&self, lane: LaneSender<RaftInput>) {
        let _ = self.reporter.set(lane);
    }

    /// Reports snapshot deliveries to `node` (for drivers outside this crate, such as a PD
    /// member's Raft store); same as what `server::run` wires up.
    pub fn attach(&self, node: &crate::node::NodeHandle) {
        self.set_reporter(node.raft_lane());
    }

    fn route(&self, to: StoreId) -> Result<Route, SendError> {
        let mut routes = self.routes.lock().expect("transport lock");
        if let Some(route) = routes.get(&to).filter(|r| !r.messages.is_closed()) {
            return Ok(route.clone());
        }
        let address = self.resolver.resolve(to).ok_or_else(|| {
            tracing::warn!(store = %to, "no address known for store; raft messages dropped");
            SendError::Unreachable(to)
        })?;
        let (messages, message_queue) = mpsc::channel(STORE_QUEUE_CAPACITY);
        let (snapshots, snapshot_queue) = mpsc::channel(SNAPSHOT_QUEUE_CAPACITY);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let queued_snapshot_bytes = Arc::new(AtomicUsize::new(0));
        let link = Link {
            to,
            address,
            resolver: self.resolver.clone(),
            client: None,
            unreachable_logged: false,
        };
        self.runtime.spawn(message_task(
            link.clone(),
            message_queue,
            queued_bytes.clone(),
        ));
        self.runtime.spawn(snapshot_task(
            link,
            snapshot_queue,
            queued_snapshot_bytes.clone(),
            self.reporter.clone(),
        ));
        let route = Route {
            messages,
            snapshots,
            queued_bytes,
            queued_snapshot_bytes,
        };
        routes.insert(to, route.clone());
        Ok(route)
    }
}

impl Transport for GrpcTransport {
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError> {
        let route = self.route(to)?;
        let full = |error| match error {
            mpsc::error::TrySendError::Full(_) => SendError::Full(to),
            mpsc::error::TrySendError::Closed(_) => SendError::Unreachable(to),
        };
        let size = message.encoded_len();
        let (queue, queued, max) = if message.is_snapshot {
            let max = SNAPSHOT_SEND_QUEUE_BYTES_MAX;
            (&route.snapshots, &route.queued_snapshot_bytes, max)
        } else {
            (
                &route.messages,
                &route.queued_bytes,
                TRANSPORT_QUEUE_BYTES_MAX,
            )
        };
        if !reserve(queued, size, max) {
            return Err(SendError::Full(to));
        }
        queue.try_send(message).map_err(|error| {
            queued.fetch_sub(size, Ordering::AcqRel);
            full(error)
        })
    }
}

/// A connection to one store, reconnected on failure.
#[derive(Clone)]
struct Link {
    to: StoreId,
    address: String,
    /// Asked again on every reconnect: the store may have moved (a new peer address).
    resolver: Arc<dyn StoreResolver>,
    client: Option<FerroRaftClient<Channel>>,
    unreachable_logged: bool,
}

/// A `FerroRaft` client for the store at `address` (also used by `crate::detector`).
pub(crate) async fn connect_store(address: &str) -> Result<FerroRaftClient<Channel>, String> {
    Link::connect(address).await
}

impl Link {
    async fn connect(address: &str) -> Result<FerroRaftClient<Channel>, String> {
        let endpoint = Endpoint::new(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| crate::server::error_chain(&e))?;
        Ok(FerroRaftClient::new(channel)
            .max_decoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX))
    }

    /// The client, connecting if needed; `None` (after a backoff) if the store is down.
    async fn client(&mut self) -> Option<&mut FerroRaftClient<Channel>> {
        if self.client.is_none() {
            if let Some(address) = self.resolver.resolve(self.to) {
                if address != self.address {
                    tracing::info!(store = %self.to, old = %self.address, new = %address, "store address changed");
                    self.address = address;
                }
            }
            match Link::connect(&self.address).await {
                Ok(client) => {
                    if self.unreachable_logged {
                        tracing::info!(store = %self.to, address = %self.address, "store reachable again");
                    }
                    self.unreachable_logged = false;
                    self.client = Some(client);
                }
                Err(error) => {
                    if !self.unreachable_logged {
                        tracing::warn!(store = %self.to, address = %self.address, %error, "store unreachable; retrying");
                        self.unreachable_logged = true;
                    }
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    return None;
                }
            }
        }
        self.client.as_mut()
    }

    async fn failed(&mut self, what: &str, error: &str) {
        tracing::debug!(store = %self.to, address = %self.address, %error, "{what} failed; reconnecting");
        self.client = None;
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

/// Takes queued messages into one batch of at most `TRANSPORT_BATCH_BYTES_MAX` bytes (a
/// single larger message goes alone).
fn take_batch(
    first: RaftMessage,
    queue: &mut mpsc::Receiver<RaftMessage>,
    carry: &mut Option<RaftMessage>,
) -> Vec<RaftMessage> {
    let mut bytes = first.encoded_len();
    let mut batch = vec![first];
    while bytes < TRANSPORT_BATCH_BYTES_MAX {
        let Ok(next) = queue.try_recv() else { break };
        let size = next.encoded_len();
        if bytes + size > TRANSPORT_BATCH_BYTES_MAX {
            *carry = Some(next);
            break;
        }
        bytes += size;
        batch.push(next);
    }
    batch
}

async fn message_task(
    mut link: Link,
    mut queue: mpsc::Receiver<RaftMessage>,
    queued_bytes: Arc<AtomicUsize>,
) {
    let mut carry = None;
    loop {
        let first = match carry.take() {
            Some(message) => message,
            None => match queue.recv().await {
                Some(message) => message,
                None => return,
            },
        };
        let batch = take_batch(first, &mut queue, &mut carry);
        let bytes: usize = batch.iter().map(|m| m.encoded_len()).sum();
        queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        let Some(rpc) = link.client().await else {
            continue; // dropped: Raft retransmits
        };
        if buggify!() {
            // A slow or reordering network path.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let duplicate = buggify!().then(|| batch.clone());
        let call = rpc.send_raft(RaftMessageBatch { messages: batch });
        let deadline = batch_timeout(bytes);
        let result = tokio::time::timeout(deadline, call).await;
        match result {
            Ok(Ok(_)) => {
                if let Some(copy) = duplicate {
                    // A duplicated delivery: Raft must tolerate it.
                    let again = rpc.send_raft(RaftMessageBatch { messages: copy });
                    let _ = tokio::time::timeout(deadline, again).await;
                }
            }
            Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
                // The receiver is alive but busy (its mailbox is full): keep the connection,
                // drop this batch (Raft retransmits) and give it a moment.
                tracing::debug!(store = %link.to, "receiver busy; raft batch dropped");
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
            Ok(Err(status)) => link.failed("raft send", &status.to_string()).await,
            Err(_) => link.failed("raft send", "timed out").await,
        }
    }
}

async fn snapshot_task(
    mut link: Link,
    mut queue: mpsc::Receiver<RaftMessage>,
    queued_bytes: Arc<AtomicUsize>,
    reporter: Arc<OnceLock<LaneSender<RaftInput>>>,
) {
    while let Some(message) = queue.recv().await {
        queued_bytes.fetch_sub(message.encoded_len(), Ordering::AcqRel);
        let region = RegionId(message.region_id);
        let to_peer = message.to_peer.map_or(0, |peer| peer.id);
        let delivered = match link.client().await {
            Some(rpc) => match send_snapshot(rpc, message).await {
                Ok(()) => true,
                Err(error) => {
                    link.failed("snapshot send", &error).await;
                    false
                }
            },
            None => false,
        };
        tracing::info!(%region, to_peer, delivered, store = %link.to, "snapshot sent");
        if let Some(lane) = reporter.get() {
            let report = RaftInput::SnapshotReport {
                region,
                to_peer,
                delivered,
            };
            let _ = lane.send(report).await;
        }
    }
}

/// Streams one snapshot chunk by chunk; each chunk has its own deadline, so a large
/// snapshot that keeps moving is never cut off.
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

#[cfg(test)]
mod tests {
    use super::batch_timeout;
    use std::time::Duration;

    #[test]
    fn a_batch_deadline_grows_with_its_size() {
        assert_eq!(batch_timeout(0), Duration::from_secs(2));
        assert_eq!(batch_timeout(1), Duration::from_secs(3));
        assert_eq!(batch_timeout(4 * 1024 * 1024), Duration::from_secs(6));
        assert_eq!(batch_timeout(4 * 1024 * 1024 + 1), Duration::from_secs(7));
    }
}
