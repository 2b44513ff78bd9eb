//! Percolator actions: small functions over a transaction buffer (`MvccTxn`) and a snapshot
//! reader (`MvccReader`), one file per action, as TiKV's `txn/actions`.
//!
//! - **Inputs**: the buffer of the transaction the action works for (its start_ts), a reader
//!   of one snapshot, a key and the action's parameters.
//! - **Outputs**: modifications appended to the buffer, and a typed result or `mvcc::Error`.
//! - **Invariants**: actions never touch the engine; an action that fails leaves the
//!   buffer in a state the command layer discards (commands write all or nothing). Each
//!   action reads only the snapshot, so two actions on the same key within one command do not
//!   see each other's writes: commands never run two actions on one key.

mod check_secondary;
mod check_txn_status;
mod commit;
mod gc;
mod heart_beat;
mod pessimistic;
mod prewrite;
mod prewrite_check;
mod resolve;
mod rollback;
#[cfg(test)]
pub(crate) mod test_util;

pub use check_secondary::{check_secondary_lock, SecondaryLockStatus};
pub use check_txn_status::{check_txn_status, CheckTxnStatusParams};
pub use commit::{commit, CommitOutcome};
pub use gc::{delete_range, gc, GcInfo};
pub use heart_beat::txn_heart_beat;
pub use pessimistic::{
    acquire_pessimistic_lock, pessimistic_rollback, LockedValue, PessimisticLockParams,
};
pub use prewrite::{
    prewrite, CommitKind, Mutation, MutationOp, PessimisticAction, PrewriteOutcome, TxnKind,
    TxnProps,
};
pub use resolve::resolve_lock;
pub use rollback::{
    check_txn_status_missing_lock, cleanup, collapse_prev_rollback, make_rollback, rollback_lock,
    MissingLockAction, TxnStatus,
};
