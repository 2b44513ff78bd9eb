//! The peer FSM over raft-rs: storage, configuration, apply logic, and the effects a peer
//! asks its driver to execute.

pub mod apply;
pub mod config;
pub mod effects;
pub mod keys;
mod logger;
mod peer;
pub mod storage;

pub use config::RaftConfig;
pub use effects::{
    Effects, OutMessage, PeerEvent, PendingPersist, Persisted, ReadOp, ReadyRead, SnapshotTask,
};
pub(crate) use peer::refused_from_network;
pub use peer::{Peer, PendingRead};
pub use storage::{
    build_snapshot, region_data_hash, LoadedState, PeerStorage, INIT_LOG_INDEX, INIT_LOG_TERM,
};
