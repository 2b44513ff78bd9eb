//! `Store::drive`: poll the dirty peers and execute their effects, in order:
//! send leader messages -> write + sync the Raft log batch -> release persisted-only
//! messages and acknowledge -> write the apply batch -> answer requests and serve reads.
//! One log sync covers every peer polled in the round (group commit).

use super::cmd::{Response, Token, TxnFailure};
use super::error::RegionError;
use super::fsm::Store;
use super::txn::{Next, Start};
use crate::env::{EngineError, KvEngine, SendError, Snapshot, Transport, WriteOptions};
use crate::planted::{self, PlantedBug};
use crate::raft::{Effects, OutMessage, ReadOp, SnapshotTask};
use crate::raw::execute_read;

/// Rounds of poll-and-execute per `drive` call; more work waits for the next call so that
/// new inputs are not starved.
const DRIVE_ROUNDS_MAX: usize = 4;

/// What a `drive` call produced for the caller.
#[derive(Debug, Default)]
pub struct DriveOutput {
    /// Answers to requests (each accepted request is answered exactly once).
    pub responses: Vec<(Token, Response)>,
    /// Snapshots to generate off the event loop; feed each result back with
    /// `Store::on_snapshot_generated`.
    pub snapshot_tasks: Vec<SnapshotTask>,
    /// Raft log bytes written (for metrics and benchmarks).
    pub log_bytes: usize,
    /// Synced writes issued.
    pub syncs: usize,
}

impl<E: KvEngine> Store<E> {
    /// Polls every peer with work and executes the effects, then answers requests whose
    /// deadline passed. A storage error is returned and the store must stop: its in-memory
    /// state may be ahead of the disk.
    pub fn drive<T: Transport>(&mut self, transport: &T) -> Result<DriveOutput, EngineError> {
        assert!(
            !self.failed,
            "store {}: driven again after a storage failure; reload it from disk",
            self.store_id
        );
        let mut output = DriveOutput::default();
        let outgoing = std::mem::take(&mut self.outgoing);
        self.send(outgoing, transport);
        for round in 0..DRIVE_ROUNDS_MAX {
            let mut effects = self
                .poll_dirty()
                .map_err(|error| self.engine_error(error))?;
            if effects.is_empty() && (round > 0 || self.pending_persist.is_empty()) {
                break;
            }
            self.execute(&mut effects, transport, &mut output)
                .map_err(|error| self.engine_error(error))?;
        }
        let answers = std::mem::take(&mut self.store_answers);
        self.deliver_answers(answers, &mut output);
        let expired = self.deadlines.expire(self.now);
        self.stats.requests_timed_out += expired.len() as u64;
        for (token, _) in &expired {
            self.txn.cancel_wait(*token);
        }
        output.responses.extend(expired);
        self.check_invariants();
        Ok(output)
    }

    /// Polls the dirty peers. A storage error while applying is returned before anything
    /// of the round is executed: the caller stops the store, which restarts from disk.
    fn poll_dirty(&mut self) -> Result<Effects, EngineError> {
        let mut effects = Effects::default();
        let now = self.now;
        let dirty = std::mem::take(&mut self.dirty);
        for region_id in dirty {
            if let Some(peer) = self.peers.get_mut(&region_id) {
                peer.poll(&mut effects, now)?;
                assert_eq!(
                    peer.region_id(),
                    region_id,
                    "a poll keeps the peer's region"
                );
            }
        }
        self.handle_events(&mut effects);
        Ok(effects)
    }

    fn execute<T: Transport>(
        &mut self,
        effects: &mut Effects,
        transport: &T,
        output: &mut DriveOutput,
    ) -> Result<(), EngineError> {
        let send_now = std::mem::take(&mut effects.send_now);
        self.send(send_now, transport);
        let store_records = std::mem::take(&mut self.pending_persist);
        let pending = effects.take_persist_after(store_records);
        if !pending.batch().is_empty() {
            let sync = !planted::active(PlantedBug::SkipRaftLogSync);
            output.log_bytes += pending.batch().bytes();
            output.syncs += usize::from(sync);
            self.engine.write(pending.batch(), WriteOptions { sync })?;
        }
        let persisted = pending.persisted();
        for (region_id, number) in persisted.acks {
            if let Some(peer) = self.peers.get_mut(&region_id) {
                peer.on_persisted(number);
                self.dirty.insert(region_id);
            }
        }
        self.send(persisted.messages, transport);
        if !effects.apply.is_empty() {
            output.syncs += usize::from(effects.apply_sync);
            let sync = effects.apply_sync;
            self.engine.write(&effects.apply, WriteOptions { sync })?;
        }
        let responses = std::mem::take(&mut effects.responses);
        self.deliver_answers(responses, output);
        if !effects.reads.is_empty() {
            let view = self.engine.snapshot();
            let mut answers = Vec::with_capacity(effects.reads.len());
            let mut txn_writes = Vec::new();
            for read in effects.reads.drain(..) {
                let response = match read.read {
                    ReadOp::Raw(raw) => Response::Read(
                        execute_read(&view, &raw, read.now_ms).map_err(RegionError::from),
                    ),
                    ReadOp::Txn(command) => self.txn.read(&view, &command),
                    ReadOp::TxnWrite => {
                        txn_writes.push((read.token, read.term));
                        continue;
                    }
                };
                answers.push((read.token, response));
            }
            self.deliver_answers(answers, output);
            for (token, term) in txn_writes {
                self.on_txn_snapshot(token, term, &view, output);
            }
        }
        output.snapshot_tasks.append(&mut effects.snapshot_tasks);
        Ok(())
    }

    /// Passes on answers for requests still waiting; a request already answered by its
    /// deadline gets nothing more. An answer for a transactional write command goes
    /// through its driver first (whatever the deadline): it releases the latches.
    pub(super) fn deliver_answers(
        &mut self,
        answers: Vec<(Token, Response)>,
        output: &mut DriveOutput,
    ) {
        for (token, mut response) in answers {
            if self.txn.owns(token) {
                let (answer, woken) = self.txn.on_answer(token, response);
                response = answer;
                for start in woken {
                    self.start_txn_write(start);
                }
            }
            if self.deadlines.answer(token) {
                output.responses.push((token, response));
            }
        }
        for (token, response) in self.txn.take_wake_answers() {
            assert!(!self.txn.owns(token), "a waiter's request holds no task");
            if self.deadlines.answer(token) {
                output.responses.push((token, response));
            }
        }
    }

    /// A transactional write command's snapshot, confirmed in `term`, is ready: compute
    /// it, then answer or propose its writes. Its peer must still lead in `term` (TiKV's
    /// term check): the proposal goes out in this same step, so no other leader can commit
    /// between the snapshot and it.
    fn on_txn_snapshot<S: Snapshot>(
        &mut self,
        token: Token,
        term: u64,
        view: &S,
        output: &mut DriveOutput,
    ) {
        assert!(
            self.txn.owns(token),
            "a transactional snapshot names a live command"
        );
        let header = self.txn.header(token);
        let ranges = self.txn.user_ranges(token);
        let keys_ok = match self.peers.get(&header.region_id) {
            Some(peer) if !peer.is_leader() || peer.term() != term => {
                Err(RegionError::StaleCommand)
            }
            Some(peer) => peer.check_txn_ranges(&ranges),
            None => Err(RegionError::RegionNotFound(header.region_id)),
        };
        let waiting = self.deadlines.is_waiting(token);
        match self.txn.on_snapshot(token, term, view, waiting, keys_ok) {
            Next::Answer(response, woken) => {
                self.deliver_answers(vec![(token, response)], output);
                woken
                    .into_iter()
                    .for_each(|start| self.start_txn_write(start));
            }
            Next::Dropped(woken) | Next::Waiting(woken) => woken
                .into_iter()
                .for_each(|start| self.start_txn_write(start)),
            Next::Propose(ops) => {
                assert!(!ops.is_empty(), "only writes are proposed");
                let proposed = match self.peers.get_mut(&header.region_id) {
                    Some(peer) => peer.propose_write(token, &header, ops),
                    None => Err(RegionError::RegionNotFound(header.region_id)),
                };
                self.dirty.insert(header.region_id);
                if let Err(error) = proposed {
                    self.deliver_answers(vec![(token, Response::Write(Err(error)))], output);
                }
            }
        }
    }

    /// A write command holds its latches: ask its region's leader for a linearizable
    /// snapshot. A refusal is answered through `store_answers` (the driver sees it there).
    pub(super) fn start_txn_write(&mut self, start: Start) {
        if !self.deadlines.is_waiting(start.token) {
            // Answered by its deadline while it waited for latches: never run it.
            for next in self.txn.drop_unstarted(start.token) {
                self.start_txn_write(next);
            }
            return;
        }
        assert!(
            self.txn.owns(start.token),
            "a started command is a live task"
        );
        let region_id = start.header.region_id;
        let now = self.now;
        let asked = match self.peers.get_mut(&region_id) {
            Some(peer) => peer.read_txn(start.token, &start.header, ReadOp::TxnWrite, now),
            None => Err(RegionError::RegionNotFound(region_id)),
        };
        self.dirty.insert(region_id);
        if let Err(error) = asked {
            let response = Response::TxnWrite(Err(TxnFailure::Region(error)));
            self.store_answers.push((start.token, response));
        }
    }

    fn send<T: Transport>(&mut self, messages: Vec<OutMessage>, transport: &T) {
        for OutMessage { to_store, message } in messages {
            let region_id = crate::types::RegionId(message.region_id);
            let to_peer = message.to_peer.as_ref().map_or(0, |peer| peer.id);
            let is_snapshot = message.is_snapshot;
            let Err(error) = transport.send(to_store, message) else {
                continue;
            };
            tracing::debug!(%region_id, %error, "raft message not sent");
            let Some(peer) = self.peers.get_mut(&region_id) else {
                continue;
            };
            if matches!(error, SendError::Unreachable(_)) {
                peer.report_unreachable(to_peer);
            }
            if is_snapshot {
                // Never sent, so never reported by the transport: without this report the
                // follower would wait in snapshot state until the report timeout.
                peer.report_snapshot(to_peer, false);
                self.dirty.insert(region_id);
            }
        }
    }

    pub(super) fn engine_error(&mut self, error: EngineError) -> EngineError {
        self.failed = true;
        tracing::error!(store_id = %self.store_id, %error, "storage failed; the store stops");
        error
    }
}
