//! What peers ask their driver to do, in an order the types enforce.
//!
//! 1. `send_now`: a leader's messages; may go out before anything is persisted (Raft thesis
//!    10.2.1: the leader appends to its own log in parallel with followers).
//! 2. `take_persist`: Raft log entries, hard states and installed snapshots, written in one
//!    synced batch for all peers (group commit). Messages that depend on them (votes,
//!    append responses) are locked inside the returned `PendingPersist`; only
//!    `PendingPersist::persisted`, called after the write succeeded, releases them together
//!    with the Ready numbers to acknowledge.
//! 3. `apply`: applied data plus apply state, written atomically after the persist batch.
//! 4. `responses` and `reads`: delivered after the apply write.
//! 5. `snapshot_tasks`: snapshot generation over a consistent engine view, run by the
//!    driver off its event loop; the result comes back through
//!    `Store::on_snapshot_generated`.

use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use ferrokv_proto::metapb;

use crate::env::{Snapshot, WriteBatch};
use crate::raw::RawRead;
use crate::store::{Response, Token};
use crate::types::{RegionId, StoreId};

/// A Raft message addressed to a store.
#[derive(Clone, Debug)]
pub struct OutMessage {
    /// Destination store.
    pub to_store: StoreId,
    /// The message.
    pub message: RaftMessage,
}

/// What a linearizable read serves.
#[derive(Clone, Debug)]
pub enum ReadOp {
    /// A raw read (scans already cut to the region).
    Raw(RawRead),
    /// A transactional read.
    Txn(crate::txn::ReadCommand),
    /// The snapshot a transactional write command runs on (the store holds the command,
    /// and checks its keys against the region when the snapshot is taken).
    TxnWrite,
}

/// A read whose index has been applied: evaluate it on a snapshot taken after the apply
/// write.
#[derive(Clone, Debug)]
pub struct ReadyRead {
    /// Who asked.
    pub token: Token,
    /// What to read.
    pub read: ReadOp,
    /// Wall-clock time of the request, for TTL expiry.
    pub now_ms: u64,
    /// The term the read was confirmed in: a transactional write computed on this snapshot
    /// may be proposed only while its peer still leads in that term (a leader deposed and
    /// re-elected in between may not have applied what another leader committed meanwhile).
    pub term: u64,
}

/// A snapshot to generate: the region's applied state as `view` holds it.
pub struct SnapshotTask {
    /// The region.
    pub region_id: RegionId,
    /// A consistent engine view taken when raft-rs asked.
    pub view: Box<dyn Snapshot>,
}

impl std::fmt::Debug for SnapshotTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTask")
            .field("region_id", &self.region_id)
            .finish_non_exhaustive()
    }
}

impl SnapshotTask {
    /// Builds the snapshot (CPU and engine reads; run it off the event loop).
    pub fn run(&self) -> Result<raft::eraftpb::Snapshot, crate::env::EngineError> {
        crate::raft::storage::build_snapshot(self.region_id, self.view.as_ref())
    }
}

/// Something the store must act on after a peer's poll.
#[derive(Clone, Debug)]
pub enum PeerEvent {
    /// A split was applied: the store must create the new region's peer.
    Split { new_region: metapb::Region },
    /// This peer was removed from its region: the store must destroy it.
    Removed { region_id: RegionId },
    /// A snapshot from the leader replaced this peer's state.
    SnapshotInstalled { region_id: RegionId },
}

/// The persistence step, holding back what must wait for it.
#[derive(Debug, Default)]
#[must_use = "messages behind a persist are only released by `persisted()`"]
pub struct PendingPersist {
    batch: WriteBatch,
    after: Vec<OutMessage>,
    acks: Vec<(RegionId, u64)>,
}

/// What becomes possible once a persist batch is durable.
#[derive(Debug, Default)]
pub struct Persisted {
    /// Messages to send now.
    pub messages: Vec<OutMessage>,
    /// `(region, ready number)` pairs to acknowledge with `on_persisted`.
    pub acks: Vec<(RegionId, u64)>,
}

impl PendingPersist {
    /// The batch to write with `sync`.
    pub fn batch(&self) -> &WriteBatch {
        &self.batch
    }

    /// Call only after `batch()` was written durably.
    pub fn persisted(self) -> Persisted {
        Persisted {
            messages: self.after,
            acks: self.acks,
        }
    }
}

/// Everything one round of polling produced.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages that may be sent immediately.
    pub send_now: Vec<OutMessage>,
    persist: WriteBatch,
    after_persist: Vec<OutMessage>,
    acks: Vec<(RegionId, u64)>,
    /// Applied data and apply state.
    pub apply: WriteBatch,
    /// Whether the apply batch must be synced (it deletes Raft log entries).
    pub apply_sync: bool,
    /// Responses to deliver after the apply write.
    pub responses: Vec<(Token, Response)>,
    /// Reads to evaluate after the apply write.
    pub reads: Vec<ReadyRead>,
    /// Events for the store.
    pub events: Vec<PeerEvent>,
    /// Snapshots to generate off the event loop.
    pub snapshot_tasks: Vec<SnapshotTask>,
}

impl Effects {
    /// The batch peers stage persistent Raft state into.
    pub fn persist_batch(&mut self) -> &mut WriteBatch {
        &mut self.persist
    }

    /// Queues messages to send after the persist batch is durable, and the Ready number to
    /// acknowledge then.
    pub fn after_persist(&mut self, region: RegionId, ready: u64, messages: Vec<OutMessage>) {
        assert!(ready > 0, "raft-rs numbers Readys from 1");
        self.after_persist.extend(messages);
        self.acks.push((region, ready));
    }

    /// Takes the persistence step, with store-level records written first in the same
    /// batch (they precede every peer write of this round).
    pub fn take_persist_after(&mut self, mut store_records: WriteBatch) -> PendingPersist {
        store_records.extend(std::mem::take(&mut self.persist));
        PendingPersist {
            batch: store_records,
            after: std::mem::take(&mut self.after_persist),
            acks: std::mem::take(&mut self.acks),
        }
    }

    /// Takes the persistence step.
    pub fn take_persist(&mut self) -> PendingPersist {
        self.take_persist_after(WriteBatch::default())
    }

    /// True if nothing at all was produced.
    pub fn is_empty(&self) -> bool {
        self.send_now.is_empty()
            && self.persist.is_empty()
            && self.after_persist.is_empty()
            && self.acks.is_empty()
            && self.apply.is_empty()
            && self.responses.is_empty()
            && self.reads.is_empty()
            && self.events.is_empty()
            && self.snapshot_tasks.is_empty()
    }
}
