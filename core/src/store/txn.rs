//! Transactional requests on a store: latches, a linearizable snapshot, one proposal.
//!
//! - **Inputs**: `Request::TxnRead` / `Request::TxnWrite` (through `Store::request`),
//!   snapshots of reads that became linearizable, and the answers of the proposals made
//!   here (intercepted before any deadline filter, so latches always come back).
//! - **Outputs**: `Response::TxnRead` / `Response::TxnWrite`, proposals of MVCC
//!   modifications through the region's peer, and commands to start again once woken.
//! - **Invariants**: a write command holds the latches of every key it touches from before
//!   its snapshot is taken until its proposal applied or failed, so the next command on a
//!   key always computes on a snapshot holding the previous one's result; every task ends
//!   with its latches released exactly once; a command whose request already got its
//!   deadline answer proposes nothing (it may only release its latches).
//!
//! A write command goes: `submit` (latches; wait if another holds one) → `Peer::read_txn`
//! with `ReadOp::TxnWrite` (ReadIndex or lease) → `on_snapshot` (`process_write` on the
//! snapshot; answered at once if it writes nothing, else proposed) → `on_answer` for the
//! proposal's outcome → latches released, the woken commands started in order.
//!
//! **Lock waits** (`lock_waits.rs`): a `PessimisticLock` that meets another transaction's
//! lock and may wait gives its latches back and becomes a waiter; the commands that remove
//! locks wake their waiters once applied.

use std::collections::BTreeMap;

use super::cmd::{RequestHeader, Response, Token, TxnFailure};
use super::error::RegionError;
use super::lock_waits::LockWaits;
use super::max_ts_sync::MaxTsSync;
use crate::env::Snapshot;
use crate::limits;
use crate::mvcc::{Modify, MvccReader};
use crate::planted::{self, PlantedBug};
use crate::txn::{
    process_read, process_write, Command, CommandId, CommandResult, ConcurrencyManager, LatchLock,
    Latches, ReadCommand, WriteResult,
};
use crate::types::RegionId;
use crate::types::TimeStamp;

/// Where a write command stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for latches, or for its snapshot.
    Pending,
    /// Proposed; answered with this once applied.
    Proposed(Box<WriteResult>),
}

#[derive(Debug)]
struct Task {
    token: Token,
    header: RequestHeader,
    command: Command,
    lock: LatchLock,
    stage: Stage,
}

/// A command ready to take its snapshot: the store hands it to its region's peer.
#[derive(Debug)]
pub(crate) struct Start {
    pub token: Token,
    pub header: RequestHeader,
}

/// What the store must do after a snapshot was computed on.
#[derive(Debug)]
pub(crate) enum Next {
    /// Answer now (nothing to write, or the command failed); start the woken commands.
    Answer(Response, Vec<Start>),
    /// Propose these writes for the token's region; report the outcome with
    /// `proposal_failed` if the peer refuses them.
    Propose(Vec<ferrokv_proto::ferrokv_raftpb::WriteOp>),
    /// The request was already answered (deadline): nothing to answer; start these.
    Dropped(Vec<Start>),
    /// The command waits for a lock (answered later, through `take_wake_answers`); start
    /// these.
    Waiting(Vec<Start>),
}

/// The store's transactional state.
#[derive(Debug)]
pub(crate) struct TxnDriver {
    latches: Latches,
    manager: ConcurrencyManager,
    max_ts_sync: MaxTsSync,
    next_id: u64,
    tasks: BTreeMap<CommandId, Task>,
    by_token: BTreeMap<Token, CommandId>,
    waits: LockWaits,
}

impl Default for TxnDriver {
    fn default() -> Self {
        // max_ts starts at zero and no region is synced: async commit and 1PC wait for a
        // PD timestamp (`max_ts_synced`); plain two-phase commit does not use max_ts.
        TxnDriver {
            latches: Latches::new(limits::LATCH_SLOTS_DEFAULT),
            manager: ConcurrencyManager::new(TimeStamp::ZERO),
            max_ts_sync: MaxTsSync::default(),
            next_id: 1,
            tasks: BTreeMap::new(),
            by_token: BTreeMap::new(),
            waits: LockWaits::default(),
        }
    }
}

impl TxnDriver {
    /// Checks the driver's invariants: the two indexes name the same tasks; a proposed
    /// task holds all its latches; ids are below the next id; the latch table holds at
    /// least one entry per latch a task owns, and none without a task.
    pub fn check_invariants(&self) {
        assert_eq!(self.tasks.len(), self.by_token.len(), "indexes agree");
        let mut owned = 0;
        for (id, task) in &self.tasks {
            assert!(id.0 < self.next_id, "task id {id:?} never handed out");
            assert_eq!(
                self.by_token.get(&task.token),
                Some(id),
                "token indexes its task"
            );
            if matches!(task.stage, Stage::Proposed(_)) {
                assert!(task.lock.acquired(), "a proposed command holds its latches");
            }
            owned += task.lock.owned_count();
        }
        assert!(
            self.latches.entries() >= owned,
            "every latch a task owns is in the table"
        );
        if self.tasks.is_empty() {
            assert_eq!(self.latches.entries(), 0, "no latch outlives its task");
        }
        self.waits.check_invariants();
        assert!(
            self.tasks.keys().all(|id| !self.waits.has(*id)),
            "a waiter holds no task (its latches are released)"
        );
    }

    /// Tasks in flight (waiting, reading or proposed).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        assert_eq!(self.tasks.len(), self.by_token.len(), "indexes agree");
        self.tasks.len()
    }

    /// True if `token` is a write command of this driver.
    pub fn owns(&self, token: Token) -> bool {
        self.by_token.contains_key(&token)
    }

    /// Accepts a write command: `Some(start)` if it holds its latches now, `None` if it
    /// waits for them (a later release returns it). Busy latch queues refuse it.
    pub fn submit(
        &mut self,
        token: Token,
        header: RequestHeader,
        command: Command,
    ) -> Result<Option<Start>, TxnFailure> {
        assert!(!self.by_token.contains_key(&token), "token submitted twice");
        assert!(
            !command.latch_keys().is_empty() || matches!(command, Command::DeleteRange { .. }),
            "a write command names the keys it latches"
        );
        let id = CommandId(self.next_id);
        self.next_id += 1;
        let mut lock = LatchLock::new(&command.latch_keys());
        let acquired = self
            .latches
            .acquire(&mut lock, id)
            .map_err(|busy| TxnFailure::Region(RegionError::ServerIsBusy(busy.to_string())))?;
        let start = acquired.then(|| Start {
            token,
            header: header.clone(),
        });
        self.tasks.insert(
            id,
            Task {
                token,
                header,
                command,
                lock,
                stage: Stage::Pending,
            },
        );
        self.by_token.insert(token, id);
        Ok(start)
    }

    /// Serves a transactional read on `view`.
    pub fn read<S: Snapshot>(&mut self, view: &S, command: &ReadCommand) -> Response {
        let reader = MvccReader::new(view);
        let result = process_read(command, &reader, &mut self.manager);
        Response::TxnRead(result.map_err(TxnFailure::Txn))
    }

    /// The leaders of `leaders` (region, term) whose max_ts is not synced for that term.
    pub fn max_ts_unsynced(
        &self,
        leaders: impl Iterator<Item = (RegionId, u64)>,
    ) -> Vec<(RegionId, u64)> {
        if planted::active(PlantedBug::MaxTsNeverSynced) {
            return Vec::new();
        }
        self.max_ts_sync.unsynced(leaders)
    }

    /// `pd_ts`, requested after `listed` was taken, raised max_ts: the listed leaders still
    /// leading in their term (`current`) may use it.
    pub fn max_ts_synced(
        &mut self,
        listed: &[(RegionId, u64)],
        pd_ts: TimeStamp,
        current: &BTreeMap<RegionId, u64>,
    ) {
        self.manager.sync(pd_ts);
        self.max_ts_sync.synced(listed, current);
    }

    /// True if a command computing its commit ts from max_ts may run in `region` led in
    /// `term`.
    fn max_ts_usable(&self, region: RegionId, term: u64) -> bool {
        self.max_ts_sync.is_synced(region, term) || planted::active(PlantedBug::MaxTsNeverSynced)
    }

    /// The command of `token` got its snapshot, confirmed by its region's leader in `term`:
    /// compute it. `still_waiting` is false if the request was already answered by its
    /// deadline; `keys_ok` is the region check of the command's keys at snapshot time.
    pub fn on_snapshot<S: Snapshot>(
        &mut self,
        token: Token,
        term: u64,
        view: &S,
        still_waiting: bool,
        keys_ok: Result<(), RegionError>,
    ) -> Next {
        let id = self.by_token[&token];
        assert!(
            self.tasks[&id].lock.acquired(),
            "only a command holding its latches takes a snapshot"
        );
        assert!(
            matches!(self.tasks[&id].stage, Stage::Pending),
            "one snapshot per command"
        );
        if !still_waiting {
            return Next::Dropped(self.finish(id));
        }
        if let Err(error) = keys_ok {
            let woken = self.finish(id);
            return Next::Answer(Response::TxnWrite(Err(TxnFailure::Region(error))), woken);
        }
        let task = &self.tasks[&id];
        if task.command.computes_commit_ts() && !self.max_ts_usable(task.header.region_id, term) {
            let woken = self.finish(id);
            let refused = TxnFailure::Txn(crate::txn::Error::MaxTimestampNotSynced);
            return Next::Answer(Response::TxnWrite(Err(refused)), woken);
        }
        let task = self.tasks.get_mut(&id).expect("indexed");
        let reader = MvccReader::new(view);
        let computed = process_write(&task.command, &reader, &mut self.manager);
        match computed {
            Err(error) => {
                let woken = self.finish(id);
                Next::Answer(Response::TxnWrite(Err(TxnFailure::Txn(error))), woken)
            }
            Ok(result) if result.modifies.is_empty() => {
                self.manager.unlock_keys(&result.memory_locks);
                let lock = match &task.command {
                    Command::PessimisticLock(lock) => Some((lock.start_ts, lock.is_first_lock)),
                    _ => None,
                };
                let woken = self.finish(id);
                match (result.result, lock) {
                    (
                        CommandResult::WaitForLock {
                            lock_info,
                            wait_timeout_ms,
                        },
                        Some(lock),
                    ) => match self
                        .waits
                        .wait(token, id, lock, *lock_info, wait_timeout_ms)
                    {
                        Ok(()) => Next::Waiting(woken),
                        Err(refused) => {
                            let refused = TxnFailure::Txn(refused.into());
                            Next::Answer(Response::TxnWrite(Err(refused)), woken)
                        }
                    },
                    (result, _) => Next::Answer(Response::TxnWrite(Ok(result)), woken),
                }
            }
            Ok(result) => {
                assert!(
                    matches!(result.result, CommandResult::Prewrite { ref errors, .. } if errors.is_empty())
                        || !matches!(result.result, CommandResult::Prewrite { .. }),
                    "a prewrite that met lock errors writes nothing"
                );
                let ops: Vec<_> = result.modifies.iter().map(Modify::to_write_op).collect();
                assert_eq!(ops.len(), result.modifies.len());
                task.stage = Stage::Proposed(Box::new(result));
                Next::Propose(ops)
            }
        }
    }

    /// The header of `token`'s command.
    pub fn header(&self, token: Token) -> RequestHeader {
        self.tasks[&self.by_token[&token]].header.clone()
    }

    /// The user-key ranges `token`'s command touches.
    pub fn user_ranges(&self, token: Token) -> Vec<crate::types::KeyRange> {
        self.tasks[&self.by_token[&token]].command.user_ranges()
    }

    /// An answer for `token` came out of the store (its proposal applied or failed, its
    /// snapshot read failed): shape it as a transactional answer and release the latches.
    pub fn on_answer(&mut self, token: Token, response: Response) -> (Response, Vec<Start>) {
        let id = self.by_token[&token];
        let task = self.tasks.get_mut(&id).expect("indexed");
        let stage = std::mem::replace(&mut task.stage, Stage::Pending);
        let answer = match (stage, response) {
            (Stage::Proposed(result), Response::Write(Ok(_))) => {
                self.manager.unlock_keys(&result.memory_locks);
                for (key, lock_ts) in &result.released_locks {
                    self.waits.on_lock_released(key, *lock_ts);
                }
                Response::TxnWrite(Ok(result.result))
            }
            (Stage::Proposed(result), Response::Write(Err(error))) => {
                self.manager.unlock_keys(&result.memory_locks);
                Response::TxnWrite(Err(TxnFailure::Region(error)))
            }
            (_, answer @ Response::TxnWrite(_)) => answer,
            (_, other) => {
                tracing::error!(?other, "unexpected answer for a transactional write");
                let error = RegionError::Invalid(format!("unexpected store answer {other:?}"));
                Response::TxnWrite(Err(TxnFailure::Region(error)))
            }
        };
        (answer, self.finish(id))
    }

    /// The store's clock at a tick: answers the waiters whose time came.
    pub fn tick(&mut self, now_ms: u64) {
        self.waits.tick(now_ms);
    }

    /// The store's clock moved.
    pub fn set_now(&mut self, now_ms: u64) {
        self.waits.set_now(now_ms);
    }

    /// The request of `token` was answered by its deadline (a waiter leaves its queue).
    pub fn cancel_wait(&mut self, token: Token) {
        self.waits.cancel(token);
    }

    /// Calls for the cluster's deadlock detector since the last call.
    pub fn take_detector_calls(&mut self) -> Vec<super::DetectorCall> {
        self.waits.take_detector_calls()
    }

    /// The cluster's detector refused the wait `edge` (see `LockWaits::on_remote_deadlock`).
    pub fn on_remote_deadlock(
        &mut self,
        edge: &crate::mvcc::WaitForEdge,
        found: crate::txn::Deadlock,
    ) {
        self.waits.on_remote_deadlock(edge, found);
    }

    /// Answers for waiters, woken or timed out, since the last call.
    pub fn take_wake_answers(&mut self) -> Vec<(Token, Response)> {
        self.waits.take_answers()
    }

    /// What the lock waiters came to so far.
    pub fn lock_wait_counts(&self) -> super::lock_waits::LockWaitCounts {
        self.waits.counts()
    }

    /// Requests waiting for a lock.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waits.len()
    }

    /// A task whose request was already answered (deadline) before it could start: release
    /// its latches without computing anything.
    pub fn drop_unstarted(&mut self, token: Token) -> Vec<Start> {
        let id = self.by_token[&token];
        self.finish(id)
    }

    /// Releases a task's latches and forgets it; the commands now first in line for a
    /// released latch that hold all theirs are returned to start.
    fn finish(&mut self, id: CommandId) -> Vec<Start> {
        let task = self.tasks.remove(&id).expect("finished once");
        assert_eq!(self.by_token.remove(&task.token), Some(id), "indexes agree");
        let entries_before = self.latches.entries();
        if !task.lock.acquired() {
            // Only a task holding every latch ever takes a snapshot.
            unreachable!("a task finished before it held its latches");
        }
        let woken = self.latches.release(&task.lock, id);
        assert_eq!(
            self.latches.entries() + task.lock.owned_count(),
            entries_before,
            "release frees exactly the latches the task owned"
        );
        assert!(!woken.contains(&id), "a finished task never wakes itself");
        let mut starts = Vec::new();
        for next in woken {
            let Some(waiting) = self.tasks.get_mut(&next) else {
                continue;
            };
            let acquired = self
                .latches
                .acquire(&mut waiting.lock, next)
                .expect("a queued command is never refused");
            if acquired {
                starts.push(Start {
                    token: waiting.token,
                    header: waiting.header.clone(),
                });
            }
        }
        starts
    }
}
