//! The multi-Raft store FSM: every region replica on one store, routing of Raft messages
//! and client requests to them, peer creation (by message, split or bootstrap) and
//! destruction, restart recovery, and `drive`, the one place that executes effects in the
//! order the types demand. Both the L1 harness and the async server call `drive`.

mod cmd;
mod deadlines;
mod detector;
pub use detector::{DetectorAnswer, DetectorBatch, DetectorCall};
mod drive;
mod error;
mod fsm;
mod lifecycle;
mod load;
mod lock_waits;
pub use lock_waits::LockWaitCounts;
mod max_ts_sync;
mod route;
#[cfg(test)]
mod tests;
mod txn;

pub use cmd::{AdminOutcome, Request, RequestHeader, Response, Token, TxnFailure, WriteOutcome};
pub use drive::DriveOutput;
pub use error::RegionError;
pub use fsm::{RegionStatus, Store, StoreStats};
pub use load::{bootstrap_region, StoreLoadError};
