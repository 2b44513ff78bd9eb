//! # MVCC: Percolator over three column families
//!
//! Snapshot-isolated transactions in TiKV's layout, as pure functions over an engine snapshot.
//!
//! - **Inputs**: an engine `Snapshot`, raw user keys, TSO timestamps, and per-action
//!   parameters (already validated by the service edge).
//! - **Outputs**: reads (values, locks, per-key errors) and, for writes, a list of
//!   [`Modify`]s collected in an [`MvccTxn`] that the scheduler proposes through Raft as one
//!   atomic batch; expected failures as [`Error`], mapped to `kvrpcpb::KeyError` by
//!   [`Error::to_key_error`].
//! - **Invariants**: nothing here does IO, reads a clock or keeps state between calls. A
//!   committed version is visible exactly to reads with `ts ≥ commit_ts`; no read sees an
//!   uncommitted value; a live lock of another transaction with `lock.ts ≤ read ts` blocks
//!   the read with `KeyIsLocked`. Every record is checked when encoded and when decoded;
//!   garbage in the engine is a `Corruption` error, never a panic.
//!
//! Modules: [`keys`] (storage key layout and why it keeps raw and transactional data apart),
//! [`lock`] and [`write`] (record formats), [`txn`] (the modification buffer), [`reader`]
//! (point gets, scans, lock scans), [`actions`] (prewrite, commit, rollback/cleanup,
//! check_txn_status, check_secondary_lock, resolve_lock, heartbeat, pessimistic lock and
//! rollback, gc, delete_range), [`error`].

pub mod actions;
mod encoding;
pub mod error;
pub mod keys;
pub mod lock;
pub mod reader;
pub mod txn;
pub mod write;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod test_engine;

pub use encoding::RecordError;
pub use error::{ConflictReason, Error, Result, WaitForEdge};
pub use lock::{Lock, LockType, SHORT_VALUE_BYTES_MAX};
pub use reader::{MvccReader, TxnCommitRecord};
pub use txn::{Modify, MvccTxn};
pub use write::{Write, WriteType};
