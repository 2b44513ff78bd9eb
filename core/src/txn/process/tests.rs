//! Tests of `process_write` / `process_read` over an in-memory engine: each command family
//! end to end, async commit and memory locks, resolve-lock paging, GC.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::env::Direction;
use crate::limits;
use crate::mvcc::actions::{
    CheckTxnStatusParams, Mutation, MutationOp, PessimisticAction, TxnKind,
};
use crate::mvcc::reader::ScanOptions;
use crate::mvcc::test_engine::MemEngine;
use crate::txn::command::{PessimisticLock, Prewrite, ReadCommand, ScanOptionsCommand};
use crate::types::KeyRange;

struct Store {
    engine: MemEngine,
    manager: ConcurrencyManager,
}

impl Store {
    fn new() -> Store {
        Store {
            engine: MemEngine::new(),
            manager: ConcurrencyManager::new(TimeStamp(1)),
        }
    }

    /// Runs and applies a write command, releasing its memory locks after "apply".
    fn write(&mut self, command: &Command) -> Result<WriteResult, Error> {
        let snapshot = self.engine.clone();
        let reader = MvccReader::new(&snapshot);
        let result = process_write(command, &reader, &mut self.manager)?;
        self.engine.apply(&result.modifies);
        self.manager.unlock_keys(&result.memory_locks);
        Ok(result)
    }

    fn read(&mut self, command: &ReadCommand) -> Result<ReadResult, Error> {
        let snapshot = self.engine.clone();
        let reader = MvccReader::new(&snapshot);
        process_read(command, &reader, &mut self.manager)
    }

    fn get(&mut self, key: &[u8], ts: u64) -> Result<ReadResult, Error> {
        let bypass_locks = BTreeSet::new();
        self.read(&ReadCommand::Get {
            key: key.to_vec(),
            ts: TimeStamp(ts),
            bypass_locks,
        })
    }
}

fn prewrite(keys: &[&[u8]], start_ts: u64) -> Prewrite {
    Prewrite {
        mutations: keys
            .iter()
            .map(|key| Mutation {
                key: key.to_vec(),
                op: MutationOp::Put(key.to_vec()),
            })
            .collect(),
        pessimistic_actions: vec![PessimisticAction::SkipPessimisticCheck; keys.len()],
        primary: keys[0].to_vec(),
        start_ts: TimeStamp(start_ts),
        lock_ttl_ms: 3000,
        txn_size: keys.len() as u64,
        kind: TxnKind::Optimistic {
            skip_constraint_check: false,
        },
        min_commit_ts: TimeStamp::ZERO,
        max_commit_ts: TimeStamp::ZERO,
        async_commit_secondaries: None,
        try_one_pc: false,
    }
}

fn commit(keys: &[&[u8]], start_ts: u64, commit_ts: u64) -> Command {
    Command::Commit {
        start_ts: TimeStamp(start_ts),
        commit_ts: TimeStamp(commit_ts),
        keys: keys.iter().map(|k| k.to_vec()).collect(),
    }
}

#[test]
fn two_phase_commit_round_trip() {
    let mut store = Store::new();
    let result = store
        .write(&Command::Prewrite(prewrite(&[b"a", b"b"], 10)))
        .unwrap();
    assert_eq!(result.modifies.len(), 2);
    assert!(result.released_locks.is_empty());
    let done = store.write(&commit(&[b"a", b"b"], 10, 12)).unwrap();
    assert_eq!(
        done.result,
        CommandResult::Committed {
            commit_ts: TimeStamp(12)
        }
    );
    let released = vec![
        (b"a".to_vec(), TimeStamp(10)),
        (b"b".to_vec(), TimeStamp(10)),
    ];
    assert_eq!(done.released_locks, released);
    assert_eq!(
        store.get(b"b", 12),
        Ok(ReadResult::Value(Some(b"b".to_vec())))
    );
    let bad = store.write(&commit(&[b"a"], 10, 10));
    assert!(matches!(
        bad,
        Err(Error::Mvcc(mvcc::Error::InvalidTxnTso { .. }))
    ));
}

#[test]
fn locked_keys_are_reported_and_nothing_written() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"b"], 5)))
        .unwrap();
    let result = store
        .write(&Command::Prewrite(prewrite(&[b"a", b"b", b"c"], 10)))
        .unwrap();
    let CommandResult::Prewrite { errors, .. } = &result.result else {
        panic!()
    };
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0], mvcc::Error::KeyIsLocked(info) if info.key == b"b"));
    assert!(result.modifies.is_empty());
}

#[test]
fn prewrite_retried_after_commit_succeeds_without_writing() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"a"], 10)))
        .unwrap();
    store.write(&commit(&[b"a"], 10, 12)).unwrap();
    let retried = store
        .write(&Command::Prewrite(prewrite(&[b"a"], 10)))
        .unwrap();
    assert!(retried.modifies.is_empty());
    assert!(matches!(&retried.result, CommandResult::Prewrite { errors, .. } if errors.is_empty()));
}

#[test]
fn async_commit_lands_above_every_read_and_blocks_reads_until_applied() {
    let mut store = Store::new();
    store.get(b"a", 100).unwrap(); // a read at 100 raises max_ts
    let mut command = prewrite(&[b"a", b"b"], 50);
    command.async_commit_secondaries = Some(vec![b"b".to_vec()]);
    let snapshot = store.engine.clone();
    let reader = MvccReader::new(&snapshot);
    let result = process_write(&Command::Prewrite(command), &reader, &mut store.manager).unwrap();
    let CommandResult::Prewrite { min_commit_ts, .. } = result.result else {
        panic!()
    };
    assert_eq!(min_commit_ts, TimeStamp(101));
    assert_eq!(result.memory_locks, vec![b"a".to_vec(), b"b".to_vec()]);
    // Before the write is applied, a read above min_commit_ts meets the memory lock.
    assert!(matches!(
        store.get(b"b", 200),
        Err(Error::Mvcc(mvcc::Error::KeyIsLocked(_)))
    ));
    store.engine.apply(&result.modifies);
    store.manager.unlock_keys(&result.memory_locks);
    let lock = MvccReader::new(&store.engine)
        .load_lock(b"a")
        .unwrap()
        .unwrap();
    assert_eq!(lock.secondaries, vec![b"b".to_vec()]);
}

#[test]
fn one_pc_commits_directly() {
    let mut store = Store::new();
    store.get(b"x", 40).unwrap();
    let mut command = prewrite(&[b"a", b"b"], 30);
    command.try_one_pc = true;
    let result = store.write(&Command::Prewrite(command)).unwrap();
    let CommandResult::Prewrite {
        one_pc_commit_ts,
        min_commit_ts,
        ..
    } = result.result
    else {
        panic!()
    };
    assert_eq!(
        (one_pc_commit_ts, min_commit_ts),
        (TimeStamp(41), TimeStamp::ZERO)
    );
    assert_eq!(
        store.get(b"b", 41),
        Ok(ReadResult::Value(Some(b"b".to_vec())))
    );
    assert!(MvccReader::new(&store.engine)
        .load_lock(b"a")
        .unwrap()
        .is_none());
}

#[test]
fn status_checks_raise_max_ts() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"p"], 10)))
        .unwrap();
    let params = CheckTxnStatusParams {
        caller_start_ts: TimeStamp(70),
        current_ts: TimeStamp(60),
        rollback_if_not_exist: false,
        force_sync_commit: false,
        resolving_pessimistic_lock: false,
        verify_is_primary: true,
    };
    let check = Command::CheckTxnStatus {
        primary: b"p".to_vec(),
        lock_ts: TimeStamp(10),
        params,
    };
    let result = store.write(&check).unwrap();
    assert!(matches!(result.result, CommandResult::TxnStatus(_)));
    assert_eq!(store.manager.max_ts(), TimeStamp(70));
    let secondary = Command::CheckSecondaryLocks {
        start_ts: TimeStamp(90),
        keys: vec![b"q".to_vec()],
    };
    let result = store.write(&secondary).unwrap();
    assert_eq!(
        result.result,
        CommandResult::SecondaryLocks {
            locks: vec![],
            commit_ts: TimeStamp::ZERO
        }
    );
    assert_eq!(store.manager.max_ts(), TimeStamp(90));
}

#[test]
fn secondary_check_stops_at_the_first_decided_key() {
    let mut store = Store::new();
    let mut command = prewrite(&[b"a", b"b"], 10);
    command.async_commit_secondaries = Some(vec![b"b".to_vec(), b"c".to_vec()]);
    store.write(&Command::Prewrite(command)).unwrap();
    let keys = vec![b"a".to_vec(), b"b".to_vec()];
    let check = Command::CheckSecondaryLocks {
        start_ts: TimeStamp(10),
        keys,
    };
    let CommandResult::SecondaryLocks { locks, .. } = store.write(&check).unwrap().result else {
        panic!()
    };
    assert_eq!(locks.len(), 2);
    let keys = vec![b"a".to_vec(), b"c".to_vec(), b"b".to_vec()];
    let check = Command::CheckSecondaryLocks {
        start_ts: TimeStamp(10),
        keys,
    };
    let result = store.write(&check).unwrap();
    assert_eq!(
        result.result,
        CommandResult::SecondaryLocks {
            locks: vec![],
            commit_ts: TimeStamp::ZERO
        }
    );
    assert_eq!(
        result.modifies.len(),
        1,
        "one protected rollback on c, b untouched"
    );
}

fn pessimistic(key: &[u8], start_ts: u64, wait: Option<u64>) -> Command {
    Command::PessimisticLock(PessimisticLock {
        keys: vec![(key.to_vec(), false)],
        primary: key.to_vec(),
        start_ts: TimeStamp(start_ts),
        for_update_ts: TimeStamp(start_ts),
        lock_ttl_ms: 20_000,
        return_values: true,
        min_commit_ts: TimeStamp::ZERO,
        wait_timeout_ms: wait,
        is_first_lock: false,
    })
}

#[test]
fn pessimistic_lock_waits_or_fails_at_once() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"k"], 5)))
        .unwrap();
    store.write(&commit(&[b"k"], 5, 6)).unwrap();
    let first = store.write(&pessimistic(b"k", 10, Some(1000))).unwrap();
    let values = vec![Some(b"k".to_vec())];
    assert_eq!(first.result, CommandResult::PessimisticLocked { values });
    let waiting = store.write(&pessimistic(b"k", 20, Some(1000))).unwrap();
    assert!(matches!(
        waiting.result,
        CommandResult::WaitForLock {
            wait_timeout_ms: 1000,
            ..
        }
    ));
    assert!(waiting.modifies.is_empty());
    let no_wait = store.write(&pessimistic(b"k", 20, None));
    assert!(matches!(
        no_wait,
        Err(Error::Mvcc(mvcc::Error::KeyIsLocked(_)))
    ));
    let rollback = Command::PessimisticRollback {
        start_ts: TimeStamp(10),
        for_update_ts: TimeStamp(10),
        keys: vec![b"k".to_vec()],
    };
    let released = store.write(&rollback).unwrap().released_locks;
    assert_eq!(released, vec![(b"k".to_vec(), TimeStamp(10))]);
}

#[test]
fn keyless_resolve_lock_pages_through_the_region() {
    let mut store = Store::new();
    let count = limits::RESOLVE_LOCK_BATCH_KEYS + 5;
    let keys: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("k{i:04}").into_bytes())
        .collect();
    for chunk in keys.chunks(100) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let mut command = prewrite(&refs, 10);
        command.primary = keys[0].clone();
        store.write(&Command::Prewrite(command)).unwrap();
    }
    let txn_status = BTreeMap::from([(TimeStamp(10), TimeStamp(15))]);
    let mut range = KeyRange::all();
    let mut batches = 0;
    loop {
        let scan = ReadCommand::ResolveLockScan {
            txn_status: txn_status.clone(),
            range: range.clone(),
        };
        let ReadResult::Keys { keys, next_start } = store.read(&scan).unwrap() else {
            panic!()
        };
        store
            .write(&Command::ResolveLock {
                txn_status: txn_status.clone(),
                keys,
            })
            .unwrap();
        batches += 1;
        match next_start {
            Some(start) => range.start = start,
            None => break,
        }
    }
    assert_eq!(batches, 2);
    let (left, _) = MvccReader::new(&store.engine)
        .scan_locks(&KeyRange::all(), 10, |_| true)
        .unwrap();
    assert!(left.is_empty());
    let last = keys.last().unwrap();
    assert_eq!(
        store.get(last, 15),
        Ok(ReadResult::Value(Some(last.clone())))
    );
}

#[test]
fn batch_get_returns_unlocked_keys_beside_locked_ones() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"a", b"c"], 5)))
        .unwrap();
    store.write(&commit(&[b"a", b"c"], 5, 6)).unwrap();
    store
        .write(&Command::Prewrite(prewrite(&[b"c"], 7)))
        .unwrap();
    let keys = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    let read = ReadCommand::BatchGet {
        keys,
        ts: TimeStamp(9),
        bypass_locks: BTreeSet::new(),
    };
    let ReadResult::Pairs(pairs) = store.read(&read).unwrap() else {
        panic!()
    };
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0], Ok((b"a".to_vec(), b"a".to_vec())));
    assert!(matches!(&pairs[1], Err(mvcc::Error::KeyIsLocked(info)) if info.key == b"c"));
    let options = ScanOptions {
        range: KeyRange::all(),
        ts: TimeStamp(9),
        limit: 10,
        key_only: true,
        direction: Direction::Reverse,
        bypass_locks: BTreeSet::from([TimeStamp(7)]),
    };
    let ReadResult::Pairs(pairs) = store
        .read(&ReadCommand::Scan(ScanOptionsCommand(options)))
        .unwrap()
    else {
        panic!()
    };
    let keys: Vec<_> = pairs.into_iter().map(|p| p.unwrap().0).collect();
    assert_eq!(
        keys,
        vec![b"c".to_vec(), b"a".to_vec()],
        "bypassed lock, reverse order"
    );
}

#[test]
fn scan_lock_includes_memory_locks() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"a"], 5)))
        .unwrap();
    let mut command = prewrite(&[b"b"], 6);
    command.async_commit_secondaries = Some(Vec::new());
    let snapshot = store.engine.clone();
    let pending = process_write(
        &Command::Prewrite(command),
        &MvccReader::new(&snapshot),
        &mut store.manager,
    )
    .unwrap();
    assert_eq!(pending.memory_locks, vec![b"b".to_vec()]);
    let read = ReadCommand::ScanLock {
        max_ts: TimeStamp(6),
        range: KeyRange::all(),
        limit: 10,
    };
    let ReadResult::Locks(locks) = store.read(&read).unwrap() else {
        panic!()
    };
    let keys: Vec<_> = locks.iter().map(|l| l.key.clone()).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    let read = ReadCommand::ScanLock {
        max_ts: TimeStamp(5),
        range: KeyRange::all(),
        limit: 10,
    };
    let ReadResult::Locks(locks) = store.read(&read).unwrap() else {
        panic!()
    };
    assert_eq!(locks.len(), 1);
}

#[test]
fn gc_scan_and_gc() {
    let mut store = Store::new();
    for start in [10, 20] {
        store
            .write(&Command::Prewrite(prewrite(&[b"a", b"b"], start)))
            .unwrap();
        store
            .write(&commit(&[b"a", b"b"], start, start + 1))
            .unwrap();
    }
    let ReadResult::Keys { keys, next_start } = store
        .read(&ReadCommand::GcScan {
            range: KeyRange::all(),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(next_start, None);
    let result = store
        .write(&Command::Gc {
            safe_point: TimeStamp(30),
            keys,
        })
        .unwrap();
    assert_eq!(result.modifies.len(), 2, "the older version of each key");
    assert_eq!(
        store.get(b"a", 30),
        Ok(ReadResult::Value(Some(b"a".to_vec())))
    );
}

#[test]
fn cleanup_reports_commit() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"a"], 10)))
        .unwrap();
    store.write(&commit(&[b"a"], 10, 11)).unwrap();
    let cleanup = Command::Cleanup {
        key: b"a".to_vec(),
        start_ts: TimeStamp(10),
        current_ts: TimeStamp::ZERO,
    };
    let result = store.write(&cleanup).unwrap();
    assert_eq!(
        result.result,
        CommandResult::Cleanup {
            commit_ts: TimeStamp(11)
        }
    );
    assert!(result.modifies.is_empty());
}

/// A transaction's prewrite in another commit mode than its lock already on the key (a
/// two-phase lock met by an async or 1PC prewrite; an async lock met by a 1PC prewrite)
/// is refused and writes nothing: it must not compute a commit ts of zero, nor answer a
/// 1PC commit while the lock stays.
#[test]
fn a_prewrite_meeting_its_own_lock_of_another_commit_mode_is_refused() {
    let mut store = Store::new();
    store
        .write(&Command::Prewrite(prewrite(&[b"a"], 10)))
        .unwrap();
    let mut async_again = prewrite(&[b"a"], 10);
    async_again.async_commit_secondaries = Some(Vec::new());
    let mut one_pc_again = prewrite(&[b"a"], 10);
    one_pc_again.try_one_pc = true;
    let mut async_lock = prewrite(&[b"b"], 20);
    async_lock.async_commit_secondaries = Some(Vec::new());
    store.write(&Command::Prewrite(async_lock)).unwrap();
    let mut one_pc_on_async = prewrite(&[b"b"], 20);
    one_pc_on_async.try_one_pc = true;
    for command in [async_again, one_pc_again, one_pc_on_async] {
        let refused = store.write(&Command::Prewrite(command.clone()));
        assert!(
            matches!(refused, Err(Error::Mvcc(mvcc::Error::BadRequest(_)))),
            "{command:?}: {refused:?}"
        );
    }
    let reader = MvccReader::new(&store.engine);
    assert!(!reader.load_lock(b"a").unwrap().unwrap().use_async_commit);
    assert!(reader.load_lock(b"b").unwrap().unwrap().use_async_commit);
}
