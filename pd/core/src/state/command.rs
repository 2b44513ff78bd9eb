//! The replicated commands, their outcomes and refusals.
//!
//! Everything that must survive a PD failover is a `PdCommand`: the leader proposes it, Raft
//! replicates it, and every member `apply`s it in log order. An outcome is a pure function of
//! the state and the command, so members agree on refusals too: a refusal is an expected
//! result (a stale proposal, a lower safe point), never a panic.

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::metapb;

use crate::meta::{self, MetaError};
use crate::registry::check::{RegionChange, StaleReason};

/// A change to the replicated PD state.
#[derive(Debug, Clone, PartialEq)]
pub enum PdCommand {
    /// Creates the cluster with its first store and its first region (the whole key space).
    Bootstrap {
        cluster_id: u64,
        store: metapb::Store,
        region: metapb::Region,
    },
    /// Registers a store or updates its address and labels (never its state).
    PutStore { store: metapb::Store },
    /// Moves a store between Up, Offline and Tombstone.
    SetStoreState {
        store_id: StoreId,
        state: metapb::StoreState,
    },
    /// Raises the id allocator's limit: ids at or above it were never handed out.
    SetIdLimit { limit: u64 },
    /// Raises the TSO window limit: no timestamp at or above it was handed out.
    SetTsoLimit { limit_ms: u64 },
    /// Raises the GC safe point; it never moves back.
    UpdateGcSafePoint { safe_point: u64 },
    /// Stores region metadata (range, epoch, peers) newer than the registry's.
    PutRegion { region: metapb::Region },
}

impl PdCommand {
    /// The largest store, region or peer id the command mentions (0 if none).
    pub fn max_id(&self) -> u64 {
        match self {
            PdCommand::Bootstrap { store, region, .. } => store.id.max(meta::max_id(region)),
            PdCommand::PutStore { store } => store.id,
            PdCommand::PutRegion { region } => meta::max_id(region),
            PdCommand::SetStoreState { .. }
            | PdCommand::SetIdLimit { .. }
            | PdCommand::SetTsoLimit { .. }
            | PdCommand::UpdateGcSafePoint { .. } => 0,
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum PdOutcome {
    /// The cluster exists now.
    Bootstrapped { cluster_id: u64 },
    /// A store was registered (`created`) or updated.
    StorePut { store_id: StoreId, created: bool },
    /// A store changed state.
    StoreStateSet {
        store_id: StoreId,
        from: metapb::StoreState,
        to: metapb::StoreState,
    },
    /// The id limit is now `limit`.
    IdLimitSet { limit: u64 },
    /// The TSO window limit is now `limit_ms`.
    TsoLimitSet { limit_ms: u64 },
    /// The GC safe point moved from `previous` to `safe_point`.
    GcSafePointSet { previous: u64, safe_point: u64 },
    /// Region metadata was stored; `displaced` regions overlapped it and were removed.
    RegionPut {
        region_id: RegionId,
        change: RegionChange,
        displaced: Vec<RegionId>,
    },
    /// The command asked for what the state already holds.
    Unchanged,
    /// The command was refused; the state did not change.
    Refused(ApplyError),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// The cluster is already bootstrapped.
    #[error("cluster {cluster_id} is already bootstrapped")]
    AlreadyBootstrapped { cluster_id: u64 },
    /// The command needs a bootstrapped cluster.
    #[error("cluster is not bootstrapped")]
    NotBootstrapped,
    /// The bootstrap request is malformed.
    #[error("invalid bootstrap: {0}")]
    InvalidBootstrap(&'static str),
    /// The store is malformed (zero id, no address).
    #[error("invalid store: {0}")]
    InvalidStore(&'static str),
    /// The store is unknown.
    #[error("store {0} not found")]
    StoreNotFound(StoreId),
    /// The store is a tombstone: it can never come back.
    #[error("store {0} is a tombstone")]
    StoreTombstone(StoreId),
    /// Another live store already serves this address.
    #[error("address already used by store {0}")]
    DuplicateAddress(StoreId),
    /// The cluster holds `STORES_MAX` stores.
    #[error("too many stores")]
    TooManyStores,
    /// Stores move Up <-> Offline -> Tombstone only.
    #[error("store {store_id} cannot go from {from:?} to {to:?}")]
    InvalidStoreTransition {
        store_id: StoreId,
        from: metapb::StoreState,
        to: metapb::StoreState,
    },
    /// A store still holding peers cannot become a tombstone.
    #[error("store {store_id} still holds peers of {peer_count} regions")]
    StoreNotEmpty {
        store_id: StoreId,
        peer_count: usize,
    },
    /// Limits only grow.
    #[error("id limit {requested} is not above {current}")]
    IdLimitNotAbove { current: u64, requested: u64 },
    /// Limits only grow.
    #[error("tso limit {requested} ms is not above {current} ms")]
    TsoLimitNotAbove { current: u64, requested: u64 },
    /// The GC safe point only grows.
    #[error("gc safe point {requested} is below {current}")]
    GcSafePointBelow { current: u64, requested: u64 },
    /// The region report is older than the registry.
    #[error("stale region: {0}")]
    RegionStale(StaleReason),
    /// The region is structurally invalid.
    #[error("invalid region: {0}")]
    InvalidRegion(MetaError),
}
