//! The store's pessimistic-lock waiters (TiKV's legacy wake-up mode), around the pure
//! queues and deadlock detector of `crate::txn`.
//!
//! - **Inputs**: a waiter per `PessimisticLock` command that met another transaction's lock
//!   and may wait (its latches already released), locks released by applied commands, the
//!   store's monotonic clock, and requests answered by their deadline.
//! - **Outputs**: one answer per waiter (`take_answers`): `WriteConflict(PessimisticRetry)`
//!   when the lock it waits for goes (the first waiter at once, the others of the key
//!   after the wake-up delay), `KeyIsLocked` at its timeout; or at once, instead of
//!   waiting, `Deadlock` (the wait would close a cycle) or `KeyIsLocked` (queues full).
//! - **Invariants**: every queued waiter has exactly one request and vice versa; the
//!   detector holds exactly the edges of queued waiters that are not their transaction's
//!   first lock; a request sent again (its first answer cut off) replaces its earlier
//!   self; a request answered by its deadline leaves the queue and the graph.
//!
//! The local detector refuses a cycle among this store's waits at once. Every edge is also
//! reported to the cluster's detector (`detector.rs`, on the first region's leader) as a
//! `DetectorCall`, with a clean-up when the wait ends; a `Deadlock` it finds for an edge
//! ends that waiter (`on_remote_deadlock`). Calls wait in a bounded queue until the driver
//! takes them; when it is full they are dropped (a cycle across stores then ends by the
//! waits' timeouts, and the client resolves the locks once their TTL runs out). A waiter
//! whose region changes leader hears nothing more here and times out (at most
//! `LOCK_WAIT_TIMEOUT_MS_MAX`).

use std::collections::BTreeMap;

use super::cmd::{Response, Token, TxnFailure};
use super::detector::DetectorCall;
use ferrokv_proto::kvrpcpb;

use crate::limits;
use crate::mvcc::{self, WaitForEdge};
use crate::txn::{
    key_hash, CommandId, Deadlock, DeadlockDetector, DetectError, LockWaitQueues, Waiter,
    WakeReason,
};
use crate::types::TimeStamp;

/// What the waiters came to, since the store started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockWaitCounts {
    /// Requests queued to wait.
    pub waited: u64,
    /// Waiters woken because the lock went (at once, or after the delay).
    pub woken: u64,
    /// Waiters answered `KeyIsLocked` at their timeout.
    pub timed_out: u64,
    /// Waits refused with `Deadlock`.
    pub deadlocks: u64,
    /// Waiters replaced by the same request sent again.
    pub replaced: u64,
    /// Of `deadlocks`, waiters ended by the cluster's detector (a cycle across stores).
    pub remote_deadlocks: u64,
    /// Calls for the cluster's detector dropped because its queue was full.
    pub detector_calls_dropped: u64,
}

#[derive(Debug)]
pub(crate) struct LockWaits {
    queues: LockWaitQueues,
    detector: DeadlockDetector,
    /// The request of each queued waiter, and its edge if the detector holds one.
    waiting: BTreeMap<CommandId, (Token, Option<WaitForEdge>)>,
    /// The waiter of each queued request.
    waiter_of: BTreeMap<Token, CommandId>,
    /// Queued waiters whose edge the detector holds.
    edges: usize,
    /// Answers for waiters, until the store takes them.
    answers: Vec<(Token, Response)>,
    /// The store's monotonic clock, in ms.
    now_ms: u64,
    counts: LockWaitCounts,
    /// Waiters whose request was answered by its deadline.
    cancelled: u64,
    /// Calls for the cluster's detector, until the driver takes them.
    detector_calls: Vec<DetectorCall>,
}

impl Default for LockWaits {
    fn default() -> Self {
        LockWaits {
            queues: LockWaitQueues::new(),
            detector: DeadlockDetector::new(limits::LOCK_WAIT_TIMEOUT_MS_MAX),
            waiting: BTreeMap::new(),
            waiter_of: BTreeMap::new(),
            edges: 0,
            answers: Vec::new(),
            now_ms: 0,
            counts: LockWaitCounts::default(),
            cancelled: 0,
            detector_calls: Vec::new(),
        }
    }
}

impl LockWaits {
    /// The store's clock moved: new waits are timed from it.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Queues `waiter` for `token`'s request once the deadlock detector accepts its edge
    /// (skipped for a transaction's first lock: nothing can wait for it yet). A cycle is
    /// refused with `Deadlock`; full queues or graph with `KeyIsLocked`, as if it could not
    /// wait.
    /// `lock` is the waiting transaction's start_ts and whether this is its first lock;
    /// the wait ends at the latest `wait_timeout_ms` from now.
    pub fn wait(
        &mut self,
        token: Token,
        command: CommandId,
        (start_ts, is_first_lock): (TimeStamp, bool),
        lock_info: kvrpcpb::LockInfo,
        wait_timeout_ms: u64,
    ) -> Result<(), mvcc::Error> {
        assert!(!self.waiter_of.contains_key(&token), "a request waits once");
        let waiter = Waiter {
            command,
            start_ts,
            lock_info,
            deadline_ms: self.now_ms + wait_timeout_ms,
            woken_early: false,
        };
        let holder = TimeStamp(waiter.lock_info.lock_version);
        let hash = key_hash(waiter.key());
        let locked = || mvcc::Error::KeyIsLocked(Box::new(waiter.lock_info.clone()));
        if let Some(earlier) = self.queues.remove_duplicate(waiter.key(), waiter.start_ts) {
            self.answer(earlier, WakeReason::Timeout);
            // Answered as a timeout (KeyIsLocked), but counted apart: it did not time out.
            self.counts.timed_out -= 1;
            self.counts.replaced += 1;
        }
        let edge = (!is_first_lock).then(|| WaitForEdge {
            txn: start_ts,
            wait_for_txn: holder,
            key_hash: hash,
            key: waiter.key().to_vec(),
        });
        if edge.is_some() {
            let now_ms = self.now_ms;
            match self
                .detector
                .detect(waiter.start_ts, holder, hash, waiter.key(), now_ms)
            {
                Ok(()) => {}
                Err(DetectError::Deadlock(found)) => {
                    self.counts.deadlocks += 1;
                    return Err(found.into_error(waiter.start_ts, &waiter.lock_info));
                }
                Err(DetectError::Full) => return Err(locked()),
            }
        }
        if self.queues.push(waiter.clone(), self.now_ms).is_err() {
            if edge.is_some() {
                self.detector.clean_up_wait_for(start_ts, holder, hash);
            }
            return Err(locked());
        }
        if let Some(edge) = &edge {
            self.call_detector(DetectorCall::Detect(edge.clone()));
        }
        self.edges += usize::from(edge.is_some());
        assert!(self.waiting.insert(command, (token, edge)).is_none());
        self.waiter_of.insert(token, command);
        self.counts.waited += 1;
        Ok(())
    }

    /// The lock of `lock_ts` on `key` is gone (its removal applied): wakes its first
    /// waiter now, the others after the wake-up delay.
    pub fn on_lock_released(&mut self, key: &[u8], lock_ts: TimeStamp) {
        if let Some(waiter) = self.queues.on_lock_released(key, lock_ts, self.now_ms) {
            self.answer(waiter, WakeReason::LockReleased);
        }
    }

    /// A tick at `now_ms`: answers the waiters whose time came (timed out, or woken after
    /// the delay) and expires old edges.
    pub fn tick(&mut self, now_ms: u64) {
        self.set_now(now_ms);
        for (waiter, reason) in self.queues.expire(self.now_ms) {
            self.answer(waiter, reason);
        }
        self.detector.expire(self.now_ms);
    }

    /// The request of `token` was answered by its deadline: if it waits, it leaves the
    /// queue (a wake-up must go to a live waiter) and the graph, unanswered.
    pub fn cancel(&mut self, token: Token) {
        let Some(command) = self.waiter_of.get(&token).copied() else {
            return;
        };
        let waiter = self
            .queues
            .remove(command)
            .expect("an indexed waiter is queued");
        self.forget(&waiter);
    }

    /// Answers for waiters since the last call.
    pub fn take_answers(&mut self) -> Vec<(Token, Response)> {
        std::mem::take(&mut self.answers)
    }

    /// Calls for the cluster's detector since the last call, oldest first.
    pub fn take_detector_calls(&mut self) -> Vec<DetectorCall> {
        std::mem::take(&mut self.detector_calls)
    }

    /// The cluster's detector found that the wait `edge` closes a cycle: its waiter, if
    /// still queued, is answered `Deadlock`. A chain that does not start with `edge` is
    /// not about it and is ignored.
    pub fn on_remote_deadlock(&mut self, edge: &WaitForEdge, found: Deadlock) {
        if found.wait_chain.first() != Some(edge) {
            tracing::warn!(
                ?edge,
                "a deadlock report whose chain does not start at its edge"
            );
            return;
        }
        let command = self
            .waiting
            .iter()
            .find(|(_, (_, held))| held.as_ref() == Some(edge))
            .map(|(command, _)| *command);
        let Some(waiter) = command.and_then(|command| self.queues.remove(command)) else {
            return; // it ended meanwhile
        };
        self.counts.deadlocks += 1;
        self.counts.remote_deadlocks += 1;
        let token = self.forget(&waiter);
        let error = found.into_error(waiter.start_ts, &waiter.lock_info);
        let response = Response::TxnWrite(Err(TxnFailure::Txn(error.into())));
        self.answers.push((token, response));
    }

    /// Queues `call` for the cluster's detector. A clean-up whose detect is still queued
    /// cancels it (the detector never needs either). When the queue is full, the oldest
    /// detect goes first (a lost detect only misses a cycle; a lost clean-up leaves an edge
    /// that can refuse a later wait until its TTL), and a clean-up only when nothing else
    /// is left to drop.
    fn call_detector(&mut self, call: DetectorCall) {
        if let DetectorCall::CleanUpWaitFor(edge) = &call {
            let queued = DetectorCall::Detect(edge.clone());
            if let Some(at) = self.detector_calls.iter().position(|c| *c == queued) {
                self.detector_calls.remove(at);
                return;
            }
        }
        if self.detector_calls.len() >= limits::DETECTOR_CALLS_QUEUED_MAX {
            let victim = self
                .detector_calls
                .iter()
                .position(|c| matches!(c, DetectorCall::Detect(_)))
                .unwrap_or(0);
            self.detector_calls.remove(victim);
            self.counts.detector_calls_dropped += 1;
        }
        self.detector_calls.push(call);
    }

    /// Requests waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True if `command` is a queued waiter.
    pub fn has(&self, command: CommandId) -> bool {
        self.waiting.contains_key(&command)
    }

    /// Checks the invariants of the module doc.
    pub fn check_invariants(&self) {
        let c = self.counts;
        assert_eq!(
            c.waited,
            c.woken
                + c.timed_out
                + c.replaced
                + c.remote_deadlocks
                + self.waiting.len() as u64
                + self.cancelled,
            "every wait ends once: woken, timed out, replaced, deadlocked, cancelled, or \
             still queued"
        );
        assert!(
            self.detector_calls.len() <= limits::DETECTOR_CALLS_QUEUED_MAX,
            "the detector's queue is bounded"
        );
        assert_eq!(
            self.waiting.len(),
            self.queues.len(),
            "one request per waiter"
        );
        assert_eq!(self.waiter_of.len(), self.waiting.len(), "indexes agree");
        assert_eq!(
            self.detector.edge_count(),
            self.edges,
            "the detector holds exactly the edges of queued waiters"
        );
    }

    /// What the waiters came to so far.
    pub fn counts(&self) -> LockWaitCounts {
        self.counts
    }

    fn answer(&mut self, waiter: Waiter, reason: WakeReason) {
        match reason {
            WakeReason::LockReleased | WakeReason::DelayedWakeUp => self.counts.woken += 1,
            WakeReason::Timeout => self.counts.timed_out += 1,
        }
        let token = self.forget(&waiter);
        let error = waiter.wake_error(reason, TimeStamp::ZERO);
        let response = Response::TxnWrite(Err(TxnFailure::Txn(error.into())));
        self.answers.push((token, response));
    }

    /// Takes `waiter` (already out of the queues) off the books: request and edge.
    fn forget(&mut self, waiter: &Waiter) -> Token {
        let (token, edge) = self
            .waiting
            .remove(&waiter.command)
            .expect("a queued waiter has a request");
        assert_eq!(self.waiter_of.remove(&token), Some(waiter.command));
        if let Some(edge) = edge {
            assert_eq!(edge.txn, waiter.start_ts, "the edge is the waiter's");
            self.detector
                .clean_up_wait_for(edge.txn, edge.wait_for_txn, edge.key_hash);
            self.edges -= 1;
            self.call_detector(DetectorCall::CleanUpWaitFor(edge));
        }
        token
    }
}
