//! Linearizable reads: ReadIndex, and leader-lease local reads where the lease is provably
//! valid.
//!
//! A ReadIndex round proves that, at the moment it was issued, this peer led a quorum. Since
//! followers with CheckQuorum ignore votes for an election timeout after hearing from their
//! leader, no other leader can exist before `issued_at + lease` (lease < election timeout, so
//! clock drift has a margin). Inside the lease a read needs no round: it waits only until the
//! commit index known now is applied.

use std::collections::VecDeque;

use crate::env::{Instant, KvEngine};
use crate::raft::apply::check_ranges_in_region;
use crate::raft::config::PlantedBug;
use crate::raft::effects::{Effects, ReadyRead};
use crate::raw::RawRead;
use crate::store::{RegionError, RequestHeader, Response, Token};

use super::Peer;

/// A read waiting to be served.
#[derive(Clone, Debug)]
pub struct PendingRead {
    /// Who asked.
    pub token: Token,
    /// What to read.
    pub read: RawRead,
    /// Wall-clock time of the request.
    pub now_ms: u64,
}

#[derive(Debug)]
struct ReadBatch {
    id: u64,
    reads: Vec<PendingRead>,
    issued_at: Instant,
    index: Option<u64>,
}

/// Reads in flight on one peer.
#[derive(Debug, Default)]
pub(super) struct ReadQueue {
    next_id: u64,
    unsent: Vec<PendingRead>,
    waiting: VecDeque<ReadBatch>,
}

impl ReadQueue {
    fn len(&self) -> usize {
        self.unsent.len()
            + self
                .waiting
                .iter()
                .map(|batch| batch.reads.len())
                .sum::<usize>()
    }

    /// Every read not yet served.
    pub(super) fn drain(&mut self) -> Vec<PendingRead> {
        let mut all: Vec<PendingRead> = self.unsent.drain(..).collect();
        for batch in self.waiting.drain(..) {
            all.extend(batch.reads);
        }
        all
    }

    /// True if some reads could be sent or released at `applied`.
    pub(super) fn has_releasable(&self, applied: u64) -> bool {
        !self.unsent.is_empty()
            || self
                .waiting
                .iter()
                .any(|batch| batch.index.is_some_and(|index| index <= applied))
    }

    fn lease_round_in_flight(&self) -> bool {
        self.waiting.iter().any(|batch| batch.index.is_none())
    }
}

fn ctx_of(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn id_of(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(ctx.try_into().ok()?))
}

impl<E: KvEngine> Peer<E> {
    /// Accepts a read; it is served once linearizable (see the module doc).
    pub fn read(
        &mut self,
        token: Token,
        header: &RequestHeader,
        read: RawRead,
        now_ms: u64,
        now: Instant,
    ) -> Result<(), RegionError> {
        let stale_reads = self.config.planted_bug == Some(PlantedBug::StaleLocalReads);
        if !stale_reads {
            self.check_leader_and_epoch(header)?;
        }
        let region_range = crate::raft::storage::region_range(self.region());
        let asked: Vec<_> = read.ranges();
        let read = read.clamped_to(&region_range);
        let outside = read
            .ranges()
            .iter()
            .zip(&asked)
            .any(|(kept, asked)| kept.is_empty() && !asked.is_empty());
        if outside {
            let key = asked[0].start.clone();
            return Err(RegionError::KeyNotInRegion {
                key,
                region: Box::new(self.region().clone()),
            });
        }
        check_ranges_in_region(&read.ranges(), self.region())?;
        if self.reads.len() >= self.config.pending_reads_max {
            return Err(RegionError::ServerIsBusy(format!(
                "region {} read queue full",
                self.region_id
            )));
        }
        let pending = PendingRead {
            token,
            read,
            now_ms,
        };
        if stale_reads || self.lease_valid(now) {
            // Local read: linearizable once everything committed so far is applied. (The
            // planted bug reads whatever this peer applied, on any peer.)
            let index = if stale_reads {
                0
            } else {
                self.raw.raft.raft_log.committed
            };
            let id = self.reads.next_id;
            self.reads.next_id += 1;
            let batch = ReadBatch {
                id,
                reads: vec![pending],
                issued_at: now,
                index: Some(index),
            };
            self.reads.waiting.push_back(batch);
        } else {
            self.reads.unsent.push(pending);
        }
        Ok(())
    }

    fn lease_valid(&self, now: Instant) -> bool {
        self.is_leader()
            && self.raw.raft.lead_transferee.is_none()
            && self.lease_until.is_some_and(|until| now < until)
    }

    /// Sends one ReadIndex round for all reads accepted since the last poll. raft-rs drops
    /// ReadIndex requests until the leader has committed an entry of its term, so until then
    /// the reads wait here.
    pub(super) fn flush_reads(&mut self, now: Instant) {
        if self.reads.unsent.is_empty() || !self.raw.raft.commit_to_current_term() {
            return;
        }
        let reads = std::mem::take(&mut self.reads.unsent);
        self.start_read_round(reads, now);
    }

    fn start_read_round(&mut self, reads: Vec<PendingRead>, now: Instant) {
        let id = self.reads.next_id;
        self.reads.next_id += 1;
        self.raw.read_index(ctx_of(id));
        self.reads.waiting.push_back(ReadBatch {
            id,
            reads,
            issued_at: now,
            index: None,
        });
    }

    /// Re-sends ReadIndex rounds unanswered for an election timeout (their heartbeats or
    /// answers were lost), and on a leader whose lease is about to lapse, starts an empty
    /// round to renew it.
    pub(super) fn renew_lease_if_needed(&mut self, now: Instant) {
        if !self.is_leader() || !self.raw.raft.commit_to_current_term() {
            return;
        }
        let patience = self.config.tick_interval * self.config.election_tick as u32;
        let stale: Vec<u64> = self
            .reads
            .waiting
            .iter()
            .filter(|batch| {
                batch.index.is_none() && now.saturating_since(batch.issued_at) > patience
            })
            .map(|batch| batch.id)
            .collect();
        for id in stale {
            let position = self
                .reads
                .waiting
                .iter()
                .position(|b| b.id == id)
                .expect("present");
            let batch = self.reads.waiting.remove(position).expect("present");
            self.start_read_round(batch.reads, now);
        }
        if self.reads.lease_round_in_flight() {
            return;
        }
        let soon = now + self.config.tick_interval * 2;
        if self.lease_until.is_none_or(|until| until <= soon) {
            self.start_read_round(Vec::new(), now);
        }
    }

    /// Records ReadIndex answers from a Ready; each also extends the lease.
    pub(super) fn on_read_states(&mut self, states: Vec<raft::ReadState>) {
        for state in states {
            let Some(id) = id_of(&state.request_ctx) else {
                continue;
            };
            let Some(batch) = self.reads.waiting.iter_mut().find(|batch| batch.id == id) else {
                continue;
            };
            batch.index = Some(state.index);
            if self.raw.raft.lead_transferee.is_none() {
                let until = batch.issued_at + self.config.lease;
                self.lease_until = Some(self.lease_until.map_or(until, |old| old.max(until)));
            }
        }
    }

    /// Moves reads whose index is applied into `effects`, re-checking the region: a split
    /// since the read arrived answers with a region error instead.
    pub(super) fn release_ready_reads(&mut self, effects: &mut Effects) {
        let applied = self.applied_index();
        let mut ready = Vec::new();
        let mut kept = VecDeque::new();
        for batch in self.reads.waiting.drain(..) {
            match batch.index {
                Some(index) if index <= applied => ready.extend(batch.reads),
                _ => kept.push_back(batch),
            }
        }
        self.reads.waiting = kept;
        for read in ready {
            match check_ranges_in_region(&read.read.ranges(), self.region()) {
                Ok(()) => effects.reads.push(ReadyRead {
                    token: read.token,
                    read: read.read,
                    now_ms: read.now_ms,
                }),
                Err(error) => effects
                    .responses
                    .push((read.token, Response::Read(Err(error)))),
            }
        }
    }

    /// Leadership was lost: reads cannot be served here any more.
    pub(super) fn fail_reads_on_step_down(&mut self, effects: &mut Effects) {
        self.lease_until = None;
        if self.config.planted_bug == Some(PlantedBug::StaleLocalReads) {
            return;
        }
        let error = self.not_leader();
        for read in self.reads.drain() {
            effects
                .responses
                .push((read.token, Response::Read(Err(error.clone()))));
        }
    }
}
