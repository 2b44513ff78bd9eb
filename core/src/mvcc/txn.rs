//! `MvccTxn`: the buffer an action writes into. Actions never touch the engine; they read a
//! snapshot through `MvccReader` and append [`Modify`]s here. The scheduler proposes the
//! collected modifications through Raft as one atomic batch.
//!
//! - **Inputs**: decisions of actions (locks to put or remove, values, write records).
//! - **Outputs**: `Vec<Modify>` in the order the actions made them.
//! - **Invariants** (asserted on every call): records are encoded here, so every byte that
//!   reaches the engine passed its record's invariants; a commit record of this transaction
//!   lies above its start_ts, its rollback exactly at it; long values only go to CF default.

use ferrokv_proto::ferrokv_raftpb::{write_op, DeleteOp, DeleteRangeOp, PutOp, WriteOp};

use super::keys;
use super::lock::{Lock, SHORT_VALUE_BYTES_MAX};
use super::write::{Write, WriteType};
use crate::env::{Cf, WriteBatch};
use crate::types::TimeStamp;

/// One change to the engine, in storage keys.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Modify {
    /// Set `key` in `cf` to `value`.
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove `key` from `cf`.
    Delete { cf: Cf, key: Vec<u8> },
    /// Remove every key of `cf` in `[start, end)` (bounded).
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

impl Modify {
    /// The column family.
    pub fn cf(&self) -> Cf {
        match self {
            Modify::Put { cf, .. } | Modify::Delete { cf, .. } | Modify::DeleteRange { cf, .. } => {
                *cf
            }
        }
    }

    /// The storage key (the start of a range delete).
    pub fn key(&self) -> &[u8] {
        match self {
            Modify::Put { key, .. } | Modify::Delete { key, .. } => key,
            Modify::DeleteRange { start, .. } => start,
        }
    }

    /// Key and value bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Modify::Put { key, value, .. } => key.len() + value.len(),
            Modify::Delete { key, .. } => key.len(),
            Modify::DeleteRange { start, end, .. } => start.len() + end.len(),
        }
    }
}

impl Modify {
    /// The Raft write op that carries this modification to every replica.
    pub fn to_write_op(&self) -> WriteOp {
        let cf = |cf: Cf| -> i32 {
            assert!(
                matches!(cf, Cf::Default | Cf::Lock | Cf::Write),
                "MVCC writes only the transactional CFs"
            );
            crate::raft::storage::cf_name(cf) as i32
        };
        let op = match self {
            Modify::Put { cf: c, key, value } => write_op::Op::Put(PutOp {
                cf: cf(*c),
                key: key.clone(),
                value: value.clone(),
            }),
            Modify::Delete { cf: c, key } => write_op::Op::Delete(DeleteOp {
                cf: cf(*c),
                key: key.clone(),
            }),
            Modify::DeleteRange { cf: c, start, end } => write_op::Op::DeleteRange(DeleteRangeOp {
                cf: cf(*c),
                start_key: start.clone(),
                end_key: end.clone(),
            }),
        };
        WriteOp { op: Some(op) }
    }
}

/// Appends `modifies` to a write batch, in order.
pub fn to_write_batch(modifies: &[Modify]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for modify in modifies {
        match modify {
            Modify::Put { cf, key, value } => batch.put(*cf, key, value),
            Modify::Delete { cf, key } => batch.delete(*cf, key),
            Modify::DeleteRange { cf, start, end } => batch.delete_range(*cf, start, end),
        }
    }
    batch
}

/// A lock a 1PC prewrite holds back: it becomes a commit record instead of a lock.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OnePcLock {
    /// The user key.
    pub key: Vec<u8>,
    /// The lock the prewrite would have written.
    pub lock: Lock,
    /// A pessimistic lock of this transaction sits on the key and must be removed.
    pub remove_pessimistic_lock: bool,
}

/// The modifications one transaction's actions make within one command.
#[derive(Debug)]
pub struct MvccTxn {
    start_ts: TimeStamp,
    modifies: Vec<Modify>,
    write_bytes: usize,
    locks_for_1pc: Vec<OnePcLock>,
}

impl MvccTxn {
    /// A buffer for the transaction with `start_ts` (zero for GC, which acts for no txn).
    pub fn new(start_ts: TimeStamp) -> MvccTxn {
        MvccTxn {
            start_ts,
            modifies: Vec::new(),
            write_bytes: 0,
            locks_for_1pc: Vec::new(),
        }
    }

    /// The transaction's start_ts.
    pub fn start_ts(&self) -> TimeStamp {
        self.start_ts
    }

    fn push(&mut self, modify: Modify) {
        assert!(
            modify.key().first() == Some(&keys::TXN_KEY_PREFIX),
            "MVCC writes stay in the txn key space"
        );
        assert!(modify.cf() != Cf::Raft, "MVCC never writes the raft CF");
        self.write_bytes += modify.bytes();
        self.modifies.push(modify);
    }

    /// Writes this transaction's lock on `key`.
    pub fn put_lock(&mut self, key: &[u8], lock: &Lock) {
        assert_eq!(lock.ts, self.start_ts, "a txn writes only its own locks");
        let value = lock.encode();
        self.push(Modify::Put {
            cf: Cf::Lock,
            key: keys::lock_key(key),
            value,
        });
    }

    /// Rewrites another transaction's lock whose `rollback_ts` now names this transaction.
    pub fn put_lock_with_rollback_ts(&mut self, key: &[u8], lock: &Lock) {
        assert_ne!(
            lock.ts, self.start_ts,
            "only a foreign lock records our rollback"
        );
        assert!(lock.rollback_ts.contains(&self.start_ts));
        let value = lock.encode();
        self.push(Modify::Put {
            cf: Cf::Lock,
            key: keys::lock_key(key),
            value,
        });
    }

    /// Rewrites another transaction's lock with a pushed min_commit_ts (CheckTxnStatus).
    pub fn put_pushed_lock(&mut self, key: &[u8], lock: &Lock) {
        assert!(
            lock.min_commit_ts > lock.ts,
            "a push raises min_commit_ts above start_ts"
        );
        let value = lock.encode();
        self.push(Modify::Put {
            cf: Cf::Lock,
            key: keys::lock_key(key),
            value,
        });
    }

    /// Removes the lock on `key`.
    pub fn unlock_key(&mut self, key: &[u8]) {
        self.push(Modify::Delete {
            cf: Cf::Lock,
            key: keys::lock_key(key),
        });
    }

    /// Stores a long value of this transaction in CF default at `key@start_ts`.
    pub fn put_value(&mut self, key: &[u8], value: &[u8]) {
        assert!(
            value.len() > SHORT_VALUE_BYTES_MAX,
            "short values live inline"
        );
        assert!(self.start_ts > TimeStamp::ZERO);
        self.push(Modify::Put {
            cf: Cf::Default,
            key: keys::version_key(key, self.start_ts),
            value: value.to_vec(),
        });
    }

    /// Removes the CF default value of the transaction with `start_ts`.
    pub fn delete_value(&mut self, key: &[u8], start_ts: TimeStamp) {
        self.push(Modify::Delete {
            cf: Cf::Default,
            key: keys::version_key(key, start_ts),
        });
    }

    /// Writes this transaction's commit or rollback record on `key` at `commit_ts`.
    pub fn put_write(&mut self, key: &[u8], commit_ts: TimeStamp, write: &Write) {
        assert_eq!(
            write.start_ts, self.start_ts,
            "a txn writes only its own records"
        );
        if write.write_type == WriteType::Rollback {
            assert_eq!(commit_ts, self.start_ts, "a rollback sits at its start_ts");
        } else {
            assert!(commit_ts > self.start_ts, "commit_ts must exceed start_ts");
        }
        self.push(Modify::Put {
            cf: Cf::Write,
            key: keys::version_key(key, commit_ts),
            value: write.encode(),
        });
    }

    /// Rewrites another transaction's commit record, committed at this transaction's
    /// start_ts, with the overlapped-rollback flag set.
    pub fn put_overlapped_write(&mut self, key: &[u8], write: &Write) {
        assert!(write.has_overlapped_rollback);
        assert_ne!(
            write.start_ts, self.start_ts,
            "our own record is never overlapped"
        );
        assert!(
            write.start_ts < self.start_ts,
            "it committed at our start_ts, after its start"
        );
        self.push(Modify::Put {
            cf: Cf::Write,
            key: keys::version_key(key, self.start_ts),
            value: write.encode(),
        });
    }

    /// Removes the write record of `key` at `commit_ts` (collapsed rollbacks, GC).
    pub fn delete_write(&mut self, key: &[u8], commit_ts: TimeStamp) {
        self.push(Modify::Delete {
            cf: Cf::Write,
            key: keys::version_key(key, commit_ts),
        });
    }

    /// Removes every transactional key of the storage range `[start, end)` in `cf`.
    pub fn delete_range(&mut self, cf: Cf, start: Vec<u8>, end: Vec<u8>) {
        assert!(start < end, "empty or inverted range delete");
        assert!(
            end <= keys::txn_space_end(),
            "range delete leaves the txn key space"
        );
        self.push(Modify::DeleteRange { cf, start, end });
    }

    /// Holds back the lock of a 1PC prewrite (see [`MvccTxn::commit_1pc_locks`]).
    pub fn put_lock_for_1pc(&mut self, key: &[u8], lock: Lock, remove_pessimistic_lock: bool) {
        assert_eq!(lock.ts, self.start_ts, "a txn writes only its own locks");
        self.locks_for_1pc.push(OnePcLock {
            key: key.to_vec(),
            lock,
            remove_pessimistic_lock,
        });
    }

    /// 1PC succeeded: every held-back lock becomes a commit record at `commit_ts`.
    pub fn commit_1pc_locks(&mut self, commit_ts: TimeStamp) {
        assert!(commit_ts > self.start_ts, "commit_ts must exceed start_ts");
        for held in std::mem::take(&mut self.locks_for_1pc) {
            let write_type = WriteType::from_lock_type(held.lock.lock_type)
                .expect("1PC never holds a pessimistic lock");
            let write = Write::new(write_type, self.start_ts, held.lock.short_value);
            self.put_write(&held.key, commit_ts, &write);
            if held.remove_pessimistic_lock {
                self.unlock_key(&held.key);
            }
        }
    }

    /// 1PC was abandoned: every held-back lock is written as an ordinary lock.
    pub fn fallback_1pc_locks(&mut self) {
        for held in std::mem::take(&mut self.locks_for_1pc) {
            self.put_lock(&held.key, &held.lock);
        }
    }

    /// Locks held back for 1PC.
    pub fn locks_for_1pc(&self) -> &[OnePcLock] {
        &self.locks_for_1pc
    }

    /// Drops every collected modification (a prewrite found its transaction committed).
    pub fn clear(&mut self) {
        self.modifies.clear();
        self.locks_for_1pc.clear();
        self.write_bytes = 0;
    }

    /// True if no action changed anything.
    pub fn is_empty(&self) -> bool {
        self.modifies.is_empty() && self.locks_for_1pc.is_empty()
    }

    /// Bytes of keys and values collected.
    pub fn write_bytes(&self) -> usize {
        self.write_bytes
    }

    /// The collected modifications.
    pub fn modifies(&self) -> &[Modify] {
        &self.modifies
    }

    /// Takes the collected modifications; every 1PC lock must have been resolved.
    pub fn into_modifies(self) -> Vec<Modify> {
        assert!(
            self.locks_for_1pc.is_empty(),
            "1PC locks neither committed nor written"
        );
        self.modifies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::lock::LockType;
    use ferrokv_proto::ferrokv_raftpb::CfName;

    #[test]
    fn records_are_encoded_into_storage_keys() {
        let mut txn = MvccTxn::new(TimeStamp(10));
        let lock = Lock::new(LockType::Put, b"k".to_vec(), TimeStamp(10), 100);
        txn.put_lock(b"k", &lock);
        txn.put_write(
            b"k",
            TimeStamp(12),
            &Write::new(WriteType::Put, TimeStamp(10), None),
        );
        txn.put_value(b"k", &[7; 300]);
        txn.unlock_key(b"k");
        let modifies = txn.modifies();
        assert_eq!(modifies.len(), 4);
        assert_eq!(
            modifies[0],
            Modify::Put {
                cf: Cf::Lock,
                key: keys::lock_key(b"k"),
                value: lock.encode()
            }
        );
        assert_eq!(modifies[1].key(), keys::version_key(b"k", TimeStamp(12)));
        assert_eq!(modifies[2].cf(), Cf::Default);
        assert_eq!(
            txn.write_bytes(),
            modifies.iter().map(Modify::bytes).sum::<usize>()
        );
        assert_eq!(to_write_batch(txn.modifies()).len(), 4);
        let op = modifies[1].to_write_op();
        let Some(write_op::Op::Put(put)) = op.op else {
            panic!("a put becomes a put op");
        };
        assert_eq!(put.cf, CfName::CfWrite as i32);
        assert_eq!(put.key, keys::version_key(b"k", TimeStamp(12)));
    }

    #[test]
    #[should_panic(expected = "commit_ts must exceed start_ts")]
    fn commit_at_start_ts_is_a_bug() {
        let mut txn = MvccTxn::new(TimeStamp(10));
        txn.put_write(
            b"k",
            TimeStamp(10),
            &Write::new(WriteType::Put, TimeStamp(10), None),
        );
    }

    #[test]
    #[should_panic(expected = "short values live inline")]
    fn short_value_in_default_cf_is_a_bug() {
        MvccTxn::new(TimeStamp(10)).put_value(b"k", b"short");
    }
}
