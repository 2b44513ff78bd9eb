//! Model-based test: random interleavings of begin (optimistic or pessimistic) / pessimistic
//! lock / prewrite / commit / rollback / resolve (a third party's CheckTxnStatus +
//! ResolveLock) / get / scan / GC over a few keys, checked against a simple model of
//! snapshot isolation:
//!
//! - a committed transaction's writes are visible exactly to reads with ts ≥ commit_ts;
//! - no read sees an uncommitted or rolled-back value;
//! - a key prewritten (Put/Delete) by a live transaction with start_ts ≤ read ts gives
//!   `KeyIsLocked` naming that transaction, and only then (pessimistic locks never block);
//! - a prewrite or pessimistic lock over a foreign lock or a newer commit fails; a live
//!   pessimistic transaction always locks and prewrites its keys; a rolled-back or committed
//!   transaction can never prewrite (or, on its primary, lock) again; commit only succeeds
//!   for a live transaction (or repeats an earlier commit); every commit stays;
//! - GC at a safe point below every live transaction changes no read at or above it (reads
//!   and late requests of transactions below the safe point are then off limits, as in TiKV).
//!
//! Timestamps come from one counter (a TSO), so each run replays exactly.

mod txn_ops;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::actions::test_util::TestEnv;
use super::actions::{gc, MutationOp};
use super::reader::{scan, MvccReader, ScanOptions};
use super::Error;
use crate::env::Direction;
use crate::types::{KeyRange, TimeStamp};

const KEYS: [&[u8]; 3] = [b"a", b"b", b"c"];
const TXNS_MAX: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Begin {
        pessimistic: bool,
    },
    Lock {
        txn: usize,
        key: usize,
    },
    Prewrite {
        txn: usize,
        key: usize,
        op: u8,
        long: bool,
    },
    Commit {
        txn: usize,
    },
    Rollback {
        txn: usize,
    },
    Resolve {
        txn: usize,
    },
    Get {
        key: usize,
        past: Option<usize>,
    },
    Scan {
        past: Option<usize>,
        reverse: bool,
    },
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let index = 0..TXNS_MAX;
    prop_oneof![
        2 => any::<bool>().prop_map(|pessimistic| Op::Begin { pessimistic }),
        3 => (index.clone(), 0..KEYS.len()).prop_map(|(txn, key)| Op::Lock { txn, key }),
        6 => (index.clone(), 0..KEYS.len(), 0..4u8, any::<bool>())
            .prop_map(|(txn, key, op, long)| Op::Prewrite { txn, key, op, long }),
        3 => index.clone().prop_map(|txn| Op::Commit { txn }),
        1 => index.clone().prop_map(|txn| Op::Rollback { txn }),
        1 => index.prop_map(|txn| Op::Resolve { txn }),
        4 => (0..KEYS.len(), proptest::option::of(0..64usize))
            .prop_map(|(key, past)| Op::Get { key, past }),
        1 => (proptest::option::of(0..64usize), any::<bool>())
            .prop_map(|(past, reverse)| Op::Scan { past, reverse }),
        1 => Just(Op::Gc),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Active,
    Committed(TimeStamp),
    Aborted,
}

/// What a transaction did.
#[derive(Clone, Debug)]
struct Txn {
    start_ts: TimeStamp,
    state: State,
    /// Pessimistic transactions: the latest for_update_ts.
    for_update_ts: Option<TimeStamp>,
    /// Keys pessimistically locked, in order (the first is the primary).
    locked: Vec<usize>,
    /// Keys prewritten, in order (for optimistic transactions the first is the primary).
    writes: Vec<(usize, MutationOp)>,
}

impl Txn {
    fn is_pessimistic(&self) -> bool {
        self.for_update_ts.is_some()
    }

    /// Every key the transaction holds or held a lock on, primary first.
    fn touched(&self) -> Vec<usize> {
        let mut keys: Vec<usize> = if self.is_pessimistic() {
            self.locked.clone()
        } else {
            self.writes.iter().map(|(k, _)| *k).collect()
        };
        for (key, _) in &self.writes {
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
        keys
    }

    fn primary(&self) -> Option<usize> {
        self.touched().first().copied()
    }

    fn wrote(&self, key: usize) -> bool {
        self.writes.iter().any(|(k, _)| *k == key)
    }
}

#[derive(Default)]
struct Model {
    env: TestEnv,
    tso: u64,
    issued: Vec<TimeStamp>,
    txns: Vec<Txn>,
    /// Keys with a rollback record of some start_ts, which may or may not still exist
    /// (collapsed): an optimistic prewrite's outcome is then not predictable.
    rollback_ts: BTreeMap<usize, BTreeSet<TimeStamp>>,
    /// Reads below it are refused, and transactions below it are finished for good.
    safe_point: TimeStamp,
}

impl Model {
    fn next_ts(&mut self) -> TimeStamp {
        self.tso += 1;
        let ts = TimeStamp(self.tso);
        self.issued.push(ts);
        ts
    }

    fn read_ts(&mut self, past: Option<usize>) -> TimeStamp {
        if let Some(index) = past.filter(|_| !self.issued.is_empty()) {
            let ts = self.issued[index % self.issued.len()];
            if ts >= self.safe_point {
                return ts;
            }
        }
        self.next_ts()
    }

    /// The visible value of `key` at `ts`, or the start_ts of the lock that blocks it.
    fn expected(&self, key: usize, ts: TimeStamp) -> Result<Option<Vec<u8>>, TimeStamp> {
        for txn in &self.txns {
            let locks = txn
                .writes
                .iter()
                .any(|(k, op)| *k == key && matches!(op, MutationOp::Put(_) | MutationOp::Delete));
            if txn.state == State::Active && locks && txn.start_ts <= ts {
                return Err(txn.start_ts);
            }
        }
        let mut best: Option<(TimeStamp, Option<Vec<u8>>)> = None;
        for txn in &self.txns {
            let State::Committed(commit_ts) = txn.state else {
                continue;
            };
            for (k, op) in txn.writes.iter().filter(|(k, _)| *k == key) {
                let value = match op {
                    MutationOp::Put(value) => Some(value.clone()),
                    MutationOp::Delete => None,
                    _ => continue,
                };
                let newer = best.as_ref().is_none_or(|(at, _)| *at < commit_ts);
                if *k == key && commit_ts <= ts && newer {
                    best = Some((commit_ts, value));
                }
            }
        }
        Ok(best.and_then(|(_, value)| value))
    }

    /// Another live transaction holds a lock on `key`, or one committed on it after `me`
    /// started.
    fn blocked(&self, me: usize, key: usize) -> bool {
        let start_ts = self.txns[me].start_ts;
        self.txns.iter().enumerate().any(|(index, txn)| {
            let live_lock = txn.state == State::Active && txn.touched().contains(&key);
            let newer_commit =
                matches!(txn.state, State::Committed(c) if c > start_ts) && txn.wrote(key);
            index != me && (live_lock || newer_commit)
        })
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Begin { pessimistic } if self.txns.len() < TXNS_MAX => {
                let start_ts = self.next_ts();
                self.txns.push(Txn {
                    start_ts,
                    state: State::Active,
                    for_update_ts: pessimistic.then_some(start_ts),
                    locked: Vec::new(),
                    writes: Vec::new(),
                });
            }
            Op::Begin { .. } => {}
            Op::Lock { txn, key } => self.lock(txn, key),
            Op::Prewrite { txn, key, op, long } => self.prewrite(txn, key, op, long),
            Op::Commit { txn } => self.commit(txn),
            Op::Rollback { txn } => self.rollback(txn),
            Op::Resolve { txn } => self.resolve(txn),
            Op::Get { key, past } => {
                let ts = self.read_ts(past);
                self.check_get(key, ts);
            }
            Op::Scan { past, reverse } => {
                let ts = self.read_ts(past);
                self.check_scan(ts, reverse);
            }
            Op::Gc => self.gc(),
        }
    }

    /// GC every key at a safe point strictly below every live transaction.
    fn gc(&mut self) {
        let live = self.txns.iter().filter(|t| t.state == State::Active);
        let bound = live
            .map(|t| t.start_ts)
            .min()
            .unwrap_or(TimeStamp(self.tso + 1));
        let safe_point = TimeStamp(bound.get().saturating_sub(1)).max(self.safe_point);
        if safe_point == TimeStamp::ZERO {
            return;
        }
        self.safe_point = safe_point;
        for key in KEYS {
            self.env
                .run(0, |txn, reader| gc(txn, reader, key, safe_point))
                .expect("gc");
        }
    }

    /// A finished transaction below the safe point: no request of it may come any more.
    fn collected(&self, index: usize) -> bool {
        let txn = &self.txns[index];
        txn.state != State::Active && txn.start_ts <= self.safe_point
    }

    fn check_get(&self, key: usize, ts: TimeStamp) {
        let got = self.env.get(KEYS[key], ts.get());
        match (self.expected(key, ts), got) {
            (Ok(want), Ok(got)) => assert_eq!(want, got, "get {key} at {ts:?}"),
            (Err(lock_ts), Err(Error::KeyIsLocked(info))) => {
                assert_eq!(info.lock_version, lock_ts.get());
            }
            (want, got) => panic!("get {key} at {ts:?}: want {want:?}, got {got:?}"),
        }
    }

    fn check_scan(&self, ts: TimeStamp, reverse: bool) {
        let reader = MvccReader::new(&self.env.engine);
        let direction = if reverse {
            Direction::Reverse
        } else {
            Direction::Forward
        };
        let options = ScanOptions {
            range: KeyRange::all(),
            ts,
            limit: KEYS.len(),
            key_only: false,
            direction,
            bypass_locks: BTreeSet::new(),
        };
        let mut got = scan(&reader, &options).expect("scan");
        if reverse {
            got.reverse();
        }
        let mut want = Vec::new();
        for (index, key) in KEYS.iter().enumerate() {
            match self.expected(index, ts) {
                Ok(Some(value)) => want.push(Ok((key.to_vec(), value))),
                Ok(None) => {}
                Err(lock_ts) => want.push(Err((key.to_vec(), lock_ts.get()))),
            }
        }
        let got: Vec<_> = got
            .into_iter()
            .map(|entry| match entry {
                Ok(pair) => Ok(pair),
                Err(Error::KeyIsLocked(info)) => Err((info.key, info.lock_version)),
                Err(other) => panic!("scan error {other:?}"),
            })
            .collect();
        assert_eq!(want, got, "scan at {ts:?}");
    }

    /// Finally: every committed transaction is readable at its commit_ts, and a read at a
    /// fresh ts after resolving everything sees the newest commit of every key.
    fn check_final(&mut self) {
        for index in 0..self.txns.len() {
            if self.txns[index].state == State::Active {
                self.resolve(index);
            }
        }
        let now = self.next_ts();
        for key in 0..KEYS.len() {
            self.check_get(key, now);
        }
        for txn in self.txns.clone() {
            let State::Committed(commit_ts) = txn.state else {
                continue;
            };
            if commit_ts >= self.safe_point {
                for (key, _) in &txn.writes {
                    self.check_get(*key, commit_ts);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_isolation_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut model = Model::default();
        for op in &ops {
            model.apply(op);
        }
        model.check_final();
        // Nothing is left locked after every transaction was finished or resolved.
        let reader = MvccReader::new(&model.env.engine);
        let (locks, _) = reader.scan_locks(&KeyRange::all(), 100, |_| true).unwrap();
        prop_assert!(locks.is_empty(), "locks left: {locks:?}");
    }
}
