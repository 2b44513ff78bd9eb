//! # Transaction scheduling, pure
//!
//! What stands between a validated Kv* request and the MVCC actions, without threads,
//! clocks or IO.
//!
//! - **Inputs**: validated [`Command`]s and [`ReadCommand`]s, snapshots, the current time in
//!   ms where waiting is involved, and lock releases.
//! - **Outputs**: per command a [`WriteResult`] (modifications to propose through Raft, the
//!   response, memory locks and released locks to act on) or a read result; admission,
//!   latch, wait and deadlock decisions.
//! - **Invariants**: write commands on one key are serialized by latches; every queue
//!   (latches, pending commands, memory locks, wait-for edges, lock waiters) is bounded and
//!   answers "busy" when full; `process_*` functions are pure over their snapshot.
//!
//! The server's loop for a write command: `FlowControl::admit` → `Latches::acquire` (wait
//! until woken) → take a snapshot → [`process_write`] → propose `modifies` through Raft →
//! after apply: `ConcurrencyManager::unlock_keys(memory_locks)`, `Latches::release` (re-run
//! `acquire` for the woken commands), `LockWaitQueues::on_lock_released` for each released
//! lock → answer → `FlowControl::release`. A `WaitForLock` result instead registers a waiter
//! (after `DeadlockDetector::detect`, unless `is_first_lock`) and answers when it is woken or
//! times out; the woken command is re-run from the start. A proposal that fails (not leader,
//! dropped) releases memory locks and latches and answers the error; latches are held until
//! apply, so the next command on a key always snapshots the previous one's result. Reads take
//! a snapshot and call [`process_read`] with no latch.
//!
//! [`request`] turns kvrpcpb requests into commands (validation at the edge); [`response`]
//! turns outcomes into kvrpcpb responses as TiKV fills them.

mod command;
mod concurrency;
mod deadlock;
mod error;
mod flow_control;
mod latches;
mod lock_wait;
mod process;
pub mod request;
pub mod response;
#[cfg(test)]
mod scenario_tests;

pub use command::{
    encoded_ranges, Command, PessimisticLock, Prewrite, ReadCommand, ScanOptionsCommand,
    TxnStatusMap,
};
pub use concurrency::{ConcurrencyManager, MaxTsError};
pub use deadlock::{Deadlock, DeadlockDetector, DetectError};
pub use error::Error;
pub use flow_control::{Admission, Busy, FlowControl};
pub use latches::{key_hash, CommandId, LatchBusy, LatchLock, Latches};
pub use lock_wait::{wait_timeout_ms, LockWaitQueues, WaitQueueFull, Waiter, WakeReason};
pub use process::{process_read, process_write, CommandResult, ReadResult, WriteResult};
