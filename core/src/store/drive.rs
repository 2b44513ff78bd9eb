//! `Store::drive`: poll the dirty peers and execute their effects, in order:
//! send leader messages -> write + sync the Raft log batch -> release persisted-only
//! messages and acknowledge -> write the apply batch -> answer requests and serve reads.
//! One log sync covers every peer polled in the round (group commit).

use super::cmd::{Response, Token};
use super::error::RegionError;
use super::fsm::Store;
use crate::env::{EngineError, KvEngine, SendError, Transport, WriteOptions};
use crate::planted::{self, PlantedBug};
use crate::raft::{Effects, OutMessage, SnapshotTask};
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
            for read in effects.reads.drain(..) {
                let result =
                    execute_read(&view, &read.read, read.now_ms).map_err(RegionError::from);
                answers.push((read.token, Response::Read(result)));
            }
            self.deliver_answers(answers, output);
        }
        output.snapshot_tasks.append(&mut effects.snapshot_tasks);
        Ok(())
    }

    /// Passes on answers for requests still waiting; a request already answered by its
    /// deadline gets nothing more.
    fn deliver_answers(&mut self, answers: Vec<(Token, Response)>, output: &mut DriveOutput) {
        for (token, response) in answers {
            if self.deadlines.answer(token) {
                output.responses.push((token, response));
            }
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
