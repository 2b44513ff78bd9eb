//! Every bound in one place. Each queue, batch, scan and message has a named maximum here;
//! when a bound is hit the system answers `ServerIsBusy` or a typed error instead of growing
//! memory. Relations between bounds are checked at compile time below.

/// Largest user key, in bytes.
pub const KEY_BYTES_MAX: usize = 8 * 1024;
/// Largest user value, in bytes.
pub const VALUE_BYTES_MAX: usize = 6 * 1024 * 1024;
/// Largest Raft entry (one proposal), in bytes.
pub const RAFT_ENTRY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest gRPC message either way, in bytes.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Most keys in one batch request (batch get/put/delete).
pub const BATCH_KEYS_MAX: usize = 10_240;
/// Bytes one write op adds to a Raft entry beyond its key and value (protobuf tags and
/// lengths, the column family, the raw value's TTL suffix), with room to spare.
pub const WRITE_OP_OVERHEAD_BYTES_MAX: usize = 48;
/// Largest sum of key and value bytes in one batch request: a maximal batch, with every
/// op's encoding overhead and the command header, still fits one Raft entry.
pub const BATCH_BYTES_MAX: usize =
    RAFT_ENTRY_BYTES_MAX - BATCH_KEYS_MAX * WRITE_OP_OVERHEAD_BYTES_MAX - 4096;
/// Most pairs one engine scan may return.
pub const ENGINE_SCAN_KEYS_MAX: usize = 100_000;
/// Most pairs one client scan request may ask for.
pub const SCAN_LIMIT_MAX: usize = 10_240;
/// Most ranges in one batch scan request.
pub const BATCH_SCAN_RANGES_MAX: usize = 256;
/// Longest key stored in a data column family: an encoded user key plus a timestamp.
pub const DATA_KEY_BYTES_MAX: usize = crate::types::codec::encoded_len(KEY_BYTES_MAX) + 8;
/// Pairs read per page while building a region snapshot.
pub const SNAPSHOT_SCAN_PAGE_KEYS: usize = 4096;

/// A key above every storable data key: the end bound for "to the end of the key space".
pub fn data_key_end() -> Vec<u8> {
    vec![0xff; DATA_KEY_BYTES_MAX + 1]
}

/// Bytes of Raft log entries fetched in one read.
pub const RAFT_LOG_FETCH_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Largest Raft append message (raft-rs `max_size_per_msg`; one entry may exceed it).
pub const RAFT_MSG_BYTES_MAX: u64 = 512 * 1024;
/// Append messages in flight per follower (raft-rs `max_inflight_msgs`): with
/// `RAFT_MSG_BYTES_MAX` it bounds what a leader pushes at one catching-up follower.
pub const RAFT_INFLIGHT_MSGS_MAX: usize = 64;
/// Bytes of proposed but uncommitted entries a leader holds (raft-rs
/// `max_uncommitted_size`); proposals beyond it are refused with ServerIsBusy.
pub const RAFT_UNCOMMITTED_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Bytes of committed entries handed to one apply round (raft-rs
/// `max_committed_size_per_ready`; one entry may exceed it).
pub const RAFT_READY_COMMITTED_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Bytes of proposals waiting to apply on one peer.
pub const PROPOSAL_QUEUE_BYTES_MAX: usize = RAFT_UNCOMMITTED_BYTES_MAX as usize;
/// Bytes of Raft messages queued for one destination store before new ones are dropped.
pub const TRANSPORT_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of Raft messages in one transport batch (one gRPC call).
pub const TRANSPORT_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes of Raft inputs queued in a node's mailbox: room for the largest snapshot beside
/// ordinary traffic, so a snapshot is never refused for want of room while heartbeats flow.
pub const MAILBOX_RAFT_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX as usize + 64 * 1024 * 1024;
/// Bytes of client requests queued in a node's mailbox (its own budget: a request flood
/// never takes the room Raft messages need).
pub const MAILBOX_REQUEST_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of one snapshot chunk on the wire.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest snapshot a store accepts (regions are split well below it).
pub const SNAPSHOT_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Bytes of snapshots being reassembled at once on one store, over all transfers.
pub const SNAPSHOT_RECEIVE_BYTES_MAX: u64 = 2 * SNAPSHOT_BYTES_MAX;
/// Bytes of snapshots queued for one destination store (one larger snapshot alone may
/// exceed it when nothing else is queued).
pub const SNAPSHOT_SEND_QUEUE_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX as usize;
/// Snapshots one store receives at once.
pub const SNAPSHOTS_RECEIVING_MAX: usize = 4;

const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX < RAFT_ENTRY_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX < RAFT_ENTRY_BYTES_MAX);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(SCAN_LIMIT_MAX <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(BATCH_KEYS_MAX <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(SNAPSHOT_SCAN_PAGE_KEYS <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX as u64 <= RAFT_UNCOMMITTED_BYTES_MAX);
const _: () =
    assert!(RAFT_MSG_BYTES_MAX * RAFT_INFLIGHT_MSGS_MAX as u64 <= TRANSPORT_QUEUE_BYTES_MAX as u64);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX + 64 * 1024 < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(TRANSPORT_BATCH_BYTES_MAX < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX < MAILBOX_REQUEST_BYTES_MAX);
const _: () =
    assert!(SNAPSHOT_BYTES_MAX as usize + TRANSPORT_BATCH_BYTES_MAX < MAILBOX_RAFT_BYTES_MAX);
const _: () = assert!(SNAPSHOT_BYTES_MAX <= SNAPSHOT_RECEIVE_BYTES_MAX);

/// Write records read per page while walking one key's versions.
pub const MVCC_VERSION_PAGE_KEYS: usize = 64;
/// Locks read per page while scanning the lock column family.
pub const MVCC_LOCK_PAGE_KEYS: usize = 256;
/// Most locks one ResolveLock or ScanLock step handles (TiKV resolves 256 keys a batch).
pub const RESOLVE_LOCK_BATCH_KEYS: usize = 256;
/// Most locks one ScanLock request may return.
pub const SCAN_LOCK_LIMIT_MAX: usize = SCAN_LIMIT_MAX;
/// Most keys GC examines in one step.
pub const GC_BATCH_KEYS: usize = 256;

const _: () = assert!(MVCC_VERSION_PAGE_KEYS <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(MVCC_LOCK_PAGE_KEYS <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(RESOLVE_LOCK_BATCH_KEYS <= BATCH_KEYS_MAX);
const _: () = assert!(SCAN_LOCK_LIMIT_MAX <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(GC_BATCH_KEYS <= ENGINE_SCAN_KEYS_MAX);

/// Most latch slots a store may configure.
pub const LATCH_SLOTS_MAX: usize = 1 << 20;
/// Latch slots by default (a power of two).
pub const LATCH_SLOTS_DEFAULT: usize = 2048;
/// A new command is refused (ServerIsBusy) when one of its latch slots holds this many entries.
pub const LATCH_SLOT_WAITERS_MAX: usize = 1024;
/// Most write commands admitted to the scheduler at once.
pub const SCHEDULER_PENDING_COMMANDS_MAX: usize = 4096;
/// Most key and value bytes of admitted write commands at once.
pub const SCHEDULER_PENDING_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most keys in the in-memory lock table of async-commit/1PC prewrites.
pub const MEMORY_LOCKS_MAX: usize = 1 << 20;
/// Most edges in the deadlock detector's wait-for graph.
pub const WAIT_FOR_EDGES_MAX: usize = 100_000;
/// Most pessimistic-lock requests waiting for locks at once.
pub const LOCK_WAITERS_MAX: usize = 100_000;
/// Longest and default wait for a lock (TiKV `wait-for-lock-timeout`), in ms.
pub const LOCK_WAIT_TIMEOUT_MS_MAX: u64 = 1000;
/// Calls for the cluster's deadlock detector a store queues before dropping new ones.
pub const DETECTOR_CALLS_QUEUED_MAX: usize = 16_384;
/// After a lock is released, the later waiters of its key are woken after this delay, in ms
/// (TiKV `wake-up-delay-duration`).
pub const LOCK_WAKE_UP_DELAY_MS: u64 = 20;

const _: () = assert!(LATCH_SLOTS_DEFAULT.is_power_of_two());
const _: () = assert!(LATCH_SLOTS_DEFAULT <= LATCH_SLOTS_MAX);
const _: () = assert!(LATCH_SLOT_WAITERS_MAX <= SCHEDULER_PENDING_COMMANDS_MAX);
const _: () = assert!(BATCH_BYTES_MAX <= SCHEDULER_PENDING_BYTES_MAX);
const _: () = assert!(LOCK_WAKE_UP_DELAY_MS < LOCK_WAIT_TIMEOUT_MS_MAX);
const _: () = assert!(LOCK_WAITERS_MAX <= WAIT_FOR_EDGES_MAX);
