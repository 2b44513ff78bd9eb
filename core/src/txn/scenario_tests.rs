//! The scheduler pieces composed the way the server drives them: flow control, latches, a
//! snapshot, `process_write`, apply, release, wake waiters; lock waits with deadlock
//! detection and timeouts, time given as input.

use super::*;
use crate::mvcc::test_engine::MemEngine;
use crate::mvcc::{self, MvccReader};
use crate::types::TimeStamp;

struct Node {
    engine: MemEngine,
    manager: ConcurrencyManager,
    latches: Latches,
    flow: FlowControl,
    waits: LockWaitQueues,
    detector: DeadlockDetector,
    /// Late answers to waiting commands.
    answered: Vec<(CommandId, mvcc::Error)>,
    next_id: u64,
    now_ms: u64,
}

/// What the client hears at once (or that it must wait).
#[derive(Debug)]
enum Outcome {
    Done(CommandResult),
    Failed(Error),
    Waiting(CommandId),
}

impl Node {
    fn new() -> Node {
        Node {
            engine: MemEngine::new(),
            manager: ConcurrencyManager::new(TimeStamp(1)),
            latches: Latches::new(64),
            flow: FlowControl::new(16, 1 << 20),
            waits: LockWaitQueues::new(),
            detector: DeadlockDetector::new(crate::limits::LOCK_WAIT_TIMEOUT_MS_MAX),
            answered: Vec::new(),
            next_id: 0,
            now_ms: 0,
        }
    }

    /// One write command, start to finish, as the server's loop runs it.
    fn run(&mut self, command: &Command, start_ts: TimeStamp) -> Outcome {
        self.next_id += 1;
        let id = CommandId(self.next_id);
        let admission = self.flow.admit(command.bytes()).expect("admitted");
        let mut latch = LatchLock::new(&command.latch_keys());
        assert_eq!(
            self.latches.acquire(&mut latch, id),
            Ok(true),
            "no concurrent command"
        );
        let snapshot = self.engine.clone();
        let result = process_write(command, &MvccReader::new(&snapshot), &mut self.manager);
        assert!(self.latches.release(&latch, id).is_empty());
        self.flow.release(admission);
        let result = match result {
            Ok(result) => result,
            Err(error) => return Outcome::Failed(error),
        };
        self.engine.apply(&result.modifies);
        self.manager.unlock_keys(&result.memory_locks);
        for (key, lock_ts) in &result.released_locks {
            if let Some(waiter) = self.waits.on_lock_released(key, *lock_ts, self.now_ms) {
                self.detector
                    .clean_up_wait_for(waiter.start_ts, *lock_ts, key_hash(key));
                let error = waiter.wake_error(WakeReason::LockReleased, TimeStamp::ZERO);
                self.answered.push((waiter.command, error));
            }
        }
        match result.result {
            CommandResult::WaitForLock {
                lock_info,
                wait_timeout_ms,
            } => self.wait(id, start_ts, *lock_info, wait_timeout_ms),
            other => Outcome::Done(other),
        }
    }

    fn wait(
        &mut self,
        id: CommandId,
        start_ts: TimeStamp,
        lock_info: ferrokv_proto::kvrpcpb::LockInfo,
        wait_timeout_ms: u64,
    ) -> Outcome {
        let holder = TimeStamp(lock_info.lock_version);
        let hash = key_hash(&lock_info.key);
        match self
            .detector
            .detect(start_ts, holder, hash, &lock_info.key, self.now_ms)
        {
            Ok(()) => {}
            Err(DetectError::Deadlock(found)) => {
                return Outcome::Failed(Error::Mvcc(found.into_error(start_ts, &lock_info)));
            }
            Err(DetectError::Full) => unreachable!("tiny test graph"),
        }
        let waiter = Waiter {
            command: id,
            start_ts,
            lock_info,
            deadline_ms: self.now_ms + wait_timeout_ms,
            woken_early: false,
        };
        self.waits.push(waiter, self.now_ms).expect("room");
        Outcome::Waiting(id)
    }

    fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        for (waiter, reason) in self.waits.expire(now_ms) {
            let holder = TimeStamp(waiter.lock_info.lock_version);
            self.detector
                .clean_up_wait_for(waiter.start_ts, holder, key_hash(waiter.key()));
            let error = waiter.wake_error(reason, TimeStamp::ZERO);
            self.answered.push((waiter.command, error));
        }
    }
}

fn lock(key: &[u8], start_ts: u64, for_update_ts: u64) -> Command {
    Command::PessimisticLock(PessimisticLock {
        keys: vec![(key.to_vec(), false)],
        primary: key.to_vec(),
        start_ts: TimeStamp(start_ts),
        for_update_ts: TimeStamp(for_update_ts),
        lock_ttl_ms: 20_000,
        return_values: false,
        min_commit_ts: TimeStamp::ZERO,
        wait_timeout_ms: Some(500),
        is_first_lock: false,
    })
}

fn rollback(key: &[u8], start_ts: u64, for_update_ts: u64) -> Command {
    Command::PessimisticRollback {
        start_ts: TimeStamp(start_ts),
        for_update_ts: TimeStamp(for_update_ts),
        keys: vec![key.to_vec()],
    }
}

#[test]
fn deadlock_is_refused_and_the_survivor_wakes_on_release() {
    let mut node = Node::new();
    assert!(matches!(
        node.run(&lock(b"a", 10, 10), TimeStamp(10)),
        Outcome::Done(_)
    ));
    assert!(matches!(
        node.run(&lock(b"b", 20, 20), TimeStamp(20)),
        Outcome::Done(_)
    ));
    let Outcome::Waiting(t1_waits) = node.run(&lock(b"b", 10, 11), TimeStamp(10)) else {
        panic!("T1 should wait for T2");
    };
    let deadlock = node.run(&lock(b"a", 20, 21), TimeStamp(20));
    let Outcome::Failed(Error::Mvcc(error)) = deadlock else {
        panic!("T2 closes a cycle: {deadlock:?}");
    };
    let proto = error.to_key_error().deadlock.expect("a deadlock key error");
    assert_eq!(proto.lock_ts, 10);
    assert_eq!(proto.lock_key, b"a");
    assert_eq!(proto.deadlock_key_hash, key_hash(b"b"));
    assert_eq!(proto.wait_chain.len(), 2);
    // T2 gives up: its lock on b goes, and T1's waiter is answered with a retryable conflict.
    node.now_ms = 5;
    assert!(matches!(
        node.run(&rollback(b"b", 20, 20), TimeStamp(20)),
        Outcome::Done(_)
    ));
    assert_eq!(node.answered.len(), 1);
    let (command, error) = &node.answered[0];
    assert_eq!(*command, t1_waits);
    assert!(matches!(error, mvcc::Error::WriteConflict { .. }));
    assert_eq!(node.detector.edge_count(), 0);
    let retried = node.run(&lock(b"b", 10, 12), TimeStamp(10));
    let Outcome::Done(CommandResult::PessimisticLocked { values }) = retried else {
        panic!("the retry takes the lock: {retried:?}");
    };
    assert!(values.is_empty(), "no values asked for");
}

#[test]
fn waiters_time_out_with_key_is_locked() {
    let mut node = Node::new();
    node.run(&lock(b"a", 10, 10), TimeStamp(10));
    let Outcome::Waiting(waiting) = node.run(&lock(b"a", 30, 30), TimeStamp(30)) else {
        panic!("should wait");
    };
    node.tick(499);
    assert!(node.answered.is_empty());
    node.tick(500);
    assert_eq!(node.answered.len(), 1);
    assert_eq!(node.answered[0].0, waiting);
    assert!(matches!(node.answered[0].1, mvcc::Error::KeyIsLocked(_)));
    assert!(node.waits.is_empty());
    assert_eq!(node.detector.edge_count(), 0);
}
