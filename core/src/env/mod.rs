//! The trait boundary between the sans-IO core and the world: time, randomness, storage,
//! Raft log persistence and network. Production implements it with tokio, tonic and RocksDB;
//! simulation with madsim, a seeded RNG and `SimEngine`.

mod clock;
mod engine;
mod memory;
mod raft_log;
mod rng;
mod transport;

pub use clock::{Clock, Instant, ManualClock};
pub use engine::{
    assert_scan_args, Cf, Direction, EngineError, KvEngine, KvPair, Mutation, Snapshot, WriteBatch,
    WriteOptions,
};
pub use memory::{MemEngine, MemSnapshot};
pub use raft_log::{stage_log_op, EngineRaftLog, RaftLogBatch, RaftLogOp, RaftLogStore};
pub use rng::{Rng, SeededRng};
pub use transport::{SendError, Transport};

/// The bundle of environment types one node runs with, so state machines take one type
/// parameter instead of five.
pub trait Env: Send + Sync + 'static {
    /// Time source.
    type Clock: Clock;
    /// Key-value storage.
    type Engine: KvEngine;
    /// Raft log storage.
    type RaftLog: RaftLogStore;
    /// Raft message delivery.
    type Transport: Transport;
}
