//! Waiting for locks: pessimistic-lock requests that met another transaction's lock wait
//! here, per key, in FIFO order (TiKV `lock_manager/waiter_manager.rs` and
//! `lock_waiting_queue.rs`, legacy wake-up mode).
//!
//! - **Inputs**: waiters (with a deadline computed from `wait_timeout` and the current time),
//!   lock releases, and the current time in ms.
//! - **Outputs**: waiters to answer, each with a [`WakeReason`]: the first waiter of a key
//!   is woken when the lock is released; the others of that key are woken
//!   `LOCK_WAKE_UP_DELAY_MS` later; a waiter whose deadline passes times out. The caller
//!   answers a woken waiter with `WriteConflict(PessimisticRetry)` and a timed-out one with
//!   `KeyIsLocked` ([`Waiter::wake_error`]), as TiKV's legacy mode does.
//! - **Invariants**: FIFO per key; a waiter is answered exactly once (removed when returned);
//!   at most `LOCK_WAITERS_MAX` waiters; every deadline is at most
//!   `LOCK_WAIT_TIMEOUT_MS_MAX` after the wait began.

use std::collections::{BTreeMap, VecDeque};

use ferrokv_proto::kvrpcpb;

use super::latches::CommandId;
use crate::limits;
use crate::mvcc::{ConflictReason, Error};
use crate::types::TimeStamp;

/// How long a request waits: `None` for "do not wait". TiKV's encoding: negative means no
/// wait, zero means the default (`LOCK_WAIT_TIMEOUT_MS_MAX`), positive is capped by it.
pub fn wait_timeout_ms(requested: i64) -> Option<u64> {
    match requested {
        i64::MIN..=-1 => None,
        0 => Some(limits::LOCK_WAIT_TIMEOUT_MS_MAX),
        positive => Some((positive as u64).min(limits::LOCK_WAIT_TIMEOUT_MS_MAX)),
    }
}

/// Why a waiter is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// It was first in line when the lock was released.
    LockReleased,
    /// A lock it waited behind was released; its turn came after the wake-up delay.
    DelayedWakeUp,
    /// Its deadline passed.
    Timeout,
}

/// A pessimistic-lock request waiting for a lock.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiter {
    /// The waiting command.
    pub command: CommandId,
    /// The waiting transaction.
    pub start_ts: TimeStamp,
    /// The lock it waits for (its `lock_version` is the holder's start_ts).
    pub lock_info: kvrpcpb::LockInfo,
    /// When to give up, in ms.
    pub deadline_ms: u64,
    /// Set once a release moved the deadline to the wake-up delay.
    pub woken_early: bool,
}

impl Waiter {
    /// The key waited for.
    pub fn key(&self) -> &[u8] {
        &self.lock_info.key
    }

    /// The error to answer with.
    pub fn wake_error(&self, reason: WakeReason, conflict_commit_ts: TimeStamp) -> Error {
        match reason {
            WakeReason::Timeout => Error::KeyIsLocked(Box::new(self.lock_info.clone())),
            WakeReason::LockReleased | WakeReason::DelayedWakeUp => Error::WriteConflict {
                start_ts: self.start_ts,
                conflict_start_ts: TimeStamp(self.lock_info.lock_version),
                conflict_commit_ts,
                key: self.lock_info.key.clone(),
                primary: self.lock_info.primary_lock.clone(),
                reason: ConflictReason::PessimisticRetry,
            },
        }
    }
}

/// Too many waiters: answer at once instead of waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} lock waiters already")]
pub struct WaitQueueFull(pub usize);

/// All waiters of a store, per key.
#[derive(Debug, Default)]
pub struct LockWaitQueues {
    queues: BTreeMap<Vec<u8>, VecDeque<Waiter>>,
    count: usize,
}

impl LockWaitQueues {
    /// No waiters.
    pub fn new() -> LockWaitQueues {
        LockWaitQueues::default()
    }

    /// Waiters queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True with no waiters.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Queues `waiter` behind the others of its key.
    pub fn push(&mut self, waiter: Waiter, now_ms: u64) -> Result<(), WaitQueueFull> {
        assert!(waiter.deadline_ms <= now_ms + limits::LOCK_WAIT_TIMEOUT_MS_MAX);
        assert!(!waiter.woken_early);
        if self.count >= limits::LOCK_WAITERS_MAX {
            return Err(WaitQueueFull(self.count));
        }
        self.queues
            .entry(waiter.key().to_vec())
            .or_default()
            .push_back(waiter);
        self.count += 1;
        Ok(())
    }

    /// The lock of `lock_ts` on `key` is gone: returns the first waiter for it; the later
    /// waiters for it are woken after the wake-up delay.
    pub fn on_lock_released(
        &mut self,
        key: &[u8],
        lock_ts: TimeStamp,
        now_ms: u64,
    ) -> Option<Waiter> {
        let queue = self.queues.get_mut(key)?;
        let waits_for = |w: &Waiter| w.lock_info.lock_version == lock_ts.get();
        let first = queue
            .iter()
            .position(waits_for)
            .and_then(|index| queue.remove(index));
        let delayed_ms = now_ms + limits::LOCK_WAKE_UP_DELAY_MS;
        for waiter in queue.iter_mut().filter(|w| waits_for(w)) {
            waiter.deadline_ms = waiter.deadline_ms.min(delayed_ms);
            waiter.woken_early = true;
        }
        if queue.is_empty() {
            self.queues.remove(key);
        }
        if first.is_some() {
            self.count -= 1;
        }
        first
    }

    /// Removes and returns every waiter whose deadline has passed, in key then FIFO order.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(Waiter, WakeReason)> {
        let mut answered = Vec::new();
        self.queues.retain(|_, queue| {
            let mut kept = VecDeque::with_capacity(queue.len());
            for waiter in queue.drain(..) {
                if waiter.deadline_ms > now_ms {
                    kept.push_back(waiter);
                    continue;
                }
                let reason = if waiter.woken_early {
                    WakeReason::DelayedWakeUp
                } else {
                    WakeReason::Timeout
                };
                answered.push((waiter, reason));
            }
            *queue = kept;
            !queue.is_empty()
        });
        assert!(answered.len() <= self.count);
        self.count -= answered.len();
        answered
    }

    /// Removes the waiter of `command` (deadlock found, request cancelled).
    pub fn remove(&mut self, command: CommandId) -> Option<Waiter> {
        let key = self
            .queues
            .iter()
            .find(|(_, queue)| queue.iter().any(|w| w.command == command))
            .map(|(key, _)| key.clone())?;
        let queue = self.queues.get_mut(&key).expect("found above");
        let index = queue
            .iter()
            .position(|w| w.command == command)
            .expect("found above");
        let waiter = queue.remove(index);
        if queue.is_empty() {
            self.queues.remove(&key);
        }
        self.count -= 1;
        waiter
    }

    /// Removes the waiter of transaction `start_ts` on `key`, if one is queued: a request
    /// sent again (its first answer was cut off) replaces its earlier self, as TiKV's
    /// wait table does.
    pub fn remove_duplicate(&mut self, key: &[u8], start_ts: TimeStamp) -> Option<Waiter> {
        let queue = self.queues.get_mut(key)?;
        let index = queue.iter().position(|w| w.start_ts == start_ts)?;
        let waiter = queue.remove(index);
        if queue.is_empty() {
            self.queues.remove(key);
        }
        self.count -= 1;
        waiter
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.queues.values().flatten().map(|w| w.deadline_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(command: u64, key: &[u8], lock_ts: u64, deadline_ms: u64) -> Waiter {
        Waiter {
            command: CommandId(command),
            start_ts: TimeStamp(100 + command),
            lock_info: kvrpcpb::LockInfo {
                key: key.to_vec(),
                lock_version: lock_ts,
                primary_lock: b"p".to_vec(),
                ..Default::default()
            },
            deadline_ms,
            woken_early: false,
        }
    }

    #[test]
    fn timeouts_follow_tikv_encoding() {
        assert_eq!(wait_timeout_ms(-1), None);
        assert_eq!(wait_timeout_ms(0), Some(limits::LOCK_WAIT_TIMEOUT_MS_MAX));
        assert_eq!(wait_timeout_ms(5), Some(5));
        assert_eq!(
            wait_timeout_ms(i64::MAX),
            Some(limits::LOCK_WAIT_TIMEOUT_MS_MAX)
        );
    }

    #[test]
    fn release_wakes_first_then_the_rest_after_the_delay() {
        let mut queues = LockWaitQueues::new();
        for command in 1..=3 {
            queues.push(waiter(command, b"k", 7, 900), 0).unwrap();
        }
        queues.push(waiter(4, b"other", 7, 900), 0).unwrap();
        let first = queues.on_lock_released(b"k", TimeStamp(7), 100).unwrap();
        assert_eq!(first.command, CommandId(1));
        assert!(queues.expire(119).is_empty());
        let woken = queues.expire(120);
        let commands: Vec<_> = woken.iter().map(|(w, r)| (w.command, *r)).collect();
        assert_eq!(
            commands,
            vec![
                (CommandId(2), WakeReason::DelayedWakeUp),
                (CommandId(3), WakeReason::DelayedWakeUp)
            ]
        );
        let error = woken[0]
            .0
            .wake_error(WakeReason::DelayedWakeUp, TimeStamp(9));
        assert!(matches!(
            error,
            Error::WriteConflict {
                reason: ConflictReason::PessimisticRetry,
                ..
            }
        ));
        assert_eq!(queues.len(), 1);
        assert_eq!(queues.next_deadline_ms(), Some(900));
        let timed_out = queues.expire(900);
        assert_eq!(timed_out[0].1, WakeReason::Timeout);
        assert!(matches!(
            timed_out[0]
                .0
                .wake_error(WakeReason::Timeout, TimeStamp::ZERO),
            Error::KeyIsLocked(_)
        ));
        assert!(queues.is_empty());
    }

    #[test]
    fn remove_and_bounds() {
        let mut queues = LockWaitQueues::new();
        queues.push(waiter(1, b"k", 7, 10), 0).unwrap();
        queues.push(waiter(2, b"k", 8, 10), 0).unwrap();
        assert_eq!(queues.remove(CommandId(1)).unwrap().command, CommandId(1));
        assert!(queues.remove(CommandId(1)).is_none());
        // A release of another lock on the key wakes nobody.
        assert!(queues.on_lock_released(b"k", TimeStamp(7), 0).is_none());
        assert_eq!(queues.len(), 1);
    }
}
