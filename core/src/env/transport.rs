//! The network boundary for Raft messages between stores.

use ferrokv_proto::ferrokv_raftpb::RaftMessage;

use crate::types::StoreId;

/// Why a message was not queued. Raft retransmits, so callers drop the message and move on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue to that store is at its bound.
    #[error("send queue to store {0} is full")]
    Full(StoreId),
    /// No address is known for that store.
    #[error("store {0} is unreachable")]
    Unreachable(StoreId),
}

/// Non-blocking, bounded delivery of Raft messages. Never awaits inside the core.
pub trait Transport: Send + Sync + 'static {
    /// Queues `message` for `to`.
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError>;
}
