//! Linearizable reads: ReadIndex, and leader-lease local reads where the lease is provably
//! valid (`lease.rs`).
//!
//! A read is accepted only on the leader. Inside a valid lease it waits only until the commit
//! index known now is applied. Otherwise reads accepted since the last poll share one
//! ReadIndex round; raft-rs answers it once a quorum confirmed leadership, and the reads are
//! served when that index is applied. A round answered in another term than it was issued
//! in, or after a step-down, serves nothing: raft-rs drops its read-only state on every role
//! change, so unconfirmed reads are failed (NotLeader) at once instead of hanging.

use std::collections::VecDeque;

use crate::env::{Instant, KvEngine};
use crate::planted::{self, PlantedBug};
use crate::raft::apply::check_ranges_in_region;
use crate::raft::effects::{Effects, ReadOp, ReadyRead};
use crate::raw::RawRead;
use crate::store::{RegionError, RequestHeader, Response, Token};

use super::Peer;

/// A read waiting to be served.
#[derive(Clone, Debug)]
pub struct PendingRead {
    /// Who asked.
    pub token: Token,
    /// What to read.
    pub read: ReadOp,
    /// Wall-clock time of the request.
    pub now_ms: u64,
}

impl PendingRead {
    /// The answer of this read failing with `error`, shaped as its request's response.
    pub fn failed(&self, error: RegionError) -> (Token, Response) {
        use crate::store::TxnFailure;
        let response = match &self.read {
            ReadOp::Raw(_) => Response::Read(Err(error)),
            ReadOp::Txn(_) => Response::TxnRead(Err(TxnFailure::Region(error))),
            ReadOp::TxnWrite => Response::TxnWrite(Err(TxnFailure::Region(error))),
        };
        (self.token, response)
    }
}

#[derive(Debug)]
struct ReadBatch {
    id: u64,
    reads: Vec<PendingRead>,
    issued_at: Instant,
    term: u64,
    /// The read index once confirmed (at once for lease reads).
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
    pub(super) fn len(&self) -> usize {
        self.unsent.len() + self.waiting.iter().map(|b| b.reads.len()).sum::<usize>()
    }

    /// Every read not yet served.
    pub(super) fn drain(&mut self) -> Vec<PendingRead> {
        let before = self.len();
        let mut all: Vec<PendingRead> = self.unsent.drain(..).collect();
        for batch in self.waiting.drain(..) {
            all.extend(batch.reads);
        }
        assert_eq!(all.len(), before, "every read is drained once");
        all
    }

    /// Reads not yet confirmed by a ReadIndex round.
    fn drain_unconfirmed(&mut self) -> Vec<PendingRead> {
        let mut all: Vec<PendingRead> = self.unsent.drain(..).collect();
        let (confirmed, unconfirmed): (VecDeque<_>, VecDeque<_>) = self
            .waiting
            .drain(..)
            .partition(|batch| batch.index.is_some());
        self.waiting = confirmed;
        assert!(self.waiting.iter().all(|batch| batch.index.is_some()));
        for batch in unconfirmed {
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

    fn push(
        &mut self,
        reads: Vec<PendingRead>,
        issued_at: Instant,
        term: u64,
        index: Option<u64>,
    ) -> u64 {
        assert!(
            !reads.is_empty() || index.is_none(),
            "only a lease round goes empty"
        );
        assert!(
            self.waiting.back().is_none_or(|last| last.term <= term),
            "rounds are issued in term order"
        );
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back(ReadBatch {
            id,
            reads,
            issued_at,
            term,
            index,
        });
        id
    }
}

fn ctx_of(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn id_of(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(ctx.try_into().ok()?))
}

impl<E: KvEngine> Peer<E> {
    /// Accepts a raw read; it is served once linearizable (see the module doc).
    pub fn read(
        &mut self,
        token: Token,
        header: &RequestHeader,
        read: RawRead,
        now_ms: u64,
        now: Instant,
    ) -> Result<(), RegionError> {
        let stale_reads = planted::active(PlantedBug::StaleLocalReads);
        let kept_lease = !self.is_leader() && self.lease.kept_after_step_down(now);
        if !stale_reads && !kept_lease {
            self.check_leader_and_epoch(header)?;
        }
        let read = ReadOp::Raw(self.clamp_read(read)?);
        self.accept_read(token, read, now_ms, now, stale_reads, kept_lease)
    }

    /// Accepts a transactional read, or the snapshot of a transactional write command
    /// (`ReadOp::TxnWrite`, whose keys the store checked): served once linearizable, on the
    /// leader only (no planted stale reads, no lease kept past a step-down).
    pub fn read_txn(
        &mut self,
        token: Token,
        header: &RequestHeader,
        read: ReadOp,
        now: Instant,
    ) -> Result<(), RegionError> {
        assert!(
            !matches!(read, ReadOp::Raw(_)),
            "raw reads go through `read`"
        );
        self.check_leader_and_epoch(header)?;
        let mut read = read;
        if let ReadOp::Txn(command) = &mut read {
            command.clamp_region_scan(&self.user_key_range()?);
            self.check_txn_ranges(&command.user_ranges())?;
        }
        assert!(
            self.is_leader(),
            "transactional reads are served by the leader only"
        );
        self.accept_read(token, read, 0, now, false, false)
    }

    /// This region's range in transactional user keys: its bounds decoded (the
    /// transactional client splits at encoded keys); a bound that is not an encoded key is
    /// refused.
    pub fn user_key_range(&self) -> Result<crate::types::KeyRange, RegionError> {
        let decode = |bound: &[u8]| -> Result<Vec<u8>, RegionError> {
            if bound.is_empty() {
                return Ok(Vec::new());
            }
            crate::types::codec::decode_bytes(bound)
                .map(|(decoded, _)| decoded)
                .map_err(|_| {
                    RegionError::Invalid(format!(
                        "region {} has bound {bound:?}, not a transactional (encoded) key",
                        self.region_id
                    ))
                })
        };
        let region = self.region();
        Ok(crate::types::KeyRange::new(
            decode(&region.start_key)?,
            decode(&region.end_key)?,
        ))
    }

    /// Checks that transactional user-key ranges lie in this region (by encoded key).
    pub fn check_txn_ranges(&self, user: &[crate::types::KeyRange]) -> Result<(), RegionError> {
        check_ranges_in_region(&crate::txn::encoded_ranges(user), self.region())
    }

    fn accept_read(
        &mut self,
        token: Token,
        read: ReadOp,
        now_ms: u64,
        now: Instant,
        stale_reads: bool,
        kept_lease: bool,
    ) -> Result<(), RegionError> {
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
        let term = self.term();
        if stale_reads {
            // The planted bug reads whatever this peer applied, on any peer.
            self.reads.push(vec![pending], now, term, Some(0));
        } else if kept_lease || self.lease_valid(now) {
            // Local read: linearizable once everything committed so far is applied.
            let committed = self.raw.raft.raft_log.committed;
            self.reads.push(vec![pending], now, term, Some(committed));
        } else {
            self.reads.unsent.push(pending);
        }
        Ok(())
    }

    /// Cuts scans to this region; a read entirely outside it is `KeyNotInRegion`.
    fn clamp_read(&self, read: RawRead) -> Result<RawRead, RegionError> {
        let region_range = crate::raft::storage::region_range(self.region());
        let asked: Vec<_> = read.ranges();
        let read = read.clamped_to(&region_range);
        let outside = read
            .ranges()
            .iter()
            .zip(&asked)
            .any(|(kept, asked)| kept.is_empty() && !asked.is_empty());
        if outside {
            return Err(RegionError::KeyNotInRegion {
                key: asked[0].start.clone(),
                region: Box::new(self.region().clone()),
            });
        }
        check_ranges_in_region(&read.ranges(), self.region())?;
        Ok(read)
    }

    /// The end of the leader lease if it is valid at `now`.
    pub fn lease_until(&self, now: Instant) -> Option<Instant> {
        if !self.lease_valid(now) {
            return None;
        }
        self.lease.until()
    }

    fn lease_valid(&self, now: Instant) -> bool {
        let transferring = self.raw.raft.lead_transferee.is_some()
            && !planted::active(PlantedBug::LeaseKeptAfterStepDown);
        self.is_leader() && !transferring && self.lease.valid(now, self.term())
    }

    /// Sends one ReadIndex round for all reads accepted since the last poll. raft-rs drops
    /// ReadIndex requests until the leader has committed an entry of its term, so until then
    /// the reads wait here.
    pub(super) fn flush_reads(&mut self, now: Instant) {
        if self.reads.unsent.is_empty()
            || !self.is_leader()
            || !self.raw.raft.commit_to_current_term()
        {
            return;
        }
        let reads = std::mem::take(&mut self.reads.unsent);
        self.start_read_round(reads, now);
    }

    fn start_read_round(&mut self, reads: Vec<PendingRead>, now: Instant) {
        assert!(self.is_leader(), "only a leader starts ReadIndex rounds");
        let id = self.reads.push(reads, now, self.term(), None);
        self.raw.read_index(ctx_of(id));
    }

    /// Re-sends ReadIndex rounds unanswered for an election timeout (their heartbeats or
    /// answers were lost), and on a leader whose lease is about to lapse, starts an empty
    /// round to renew it.
    pub(super) fn renew_lease_if_needed(&mut self, now: Instant) {
        if !self.is_leader() || !self.raw.raft.commit_to_current_term() {
            return;
        }
        let patience = self.config.tick_interval * self.config.election_tick as u32;
        let (stale, fresh): (VecDeque<_>, VecDeque<_>) =
            self.reads.waiting.drain(..).partition(|batch| {
                batch.index.is_none() && now.saturating_since(batch.issued_at) > patience
            });
        self.reads.waiting = fresh;
        for batch in stale {
            self.start_read_round(batch.reads, now);
        }
        let pointless =
            !self.lease.can_earn(self.term()) || self.config.effective_lease().is_zero();
        if pointless
            || self.reads.lease_round_in_flight()
            || self.raw.raft.lead_transferee.is_some()
        {
            return;
        }
        let soon = now + self.config.tick_interval * 2;
        if self.lease.until().is_none_or(|until| until <= soon) {
            self.start_read_round(Vec::new(), now);
        }
    }

    /// Records ReadIndex answers from a Ready. Only a round issued and answered in the
    /// current term on a leader confirms reads and extends the lease.
    pub(super) fn on_read_states(&mut self, states: Vec<raft::ReadState>) {
        let term = self.term();
        let leader = self.is_leader();
        let leading = leader && self.raw.raft.lead_transferee.is_none();
        let committed = self.raw.raft.raft_log.committed;
        let lease = self.config.effective_lease();
        for state in states {
            let Some(id) = id_of(&state.request_ctx) else {
                continue;
            };
            let Some(batch) = self.reads.waiting.iter_mut().find(|batch| batch.id == id) else {
                continue;
            };
            if batch.term != term || !leader {
                continue;
            }
            assert!(
                state.index <= committed,
                "a read index never exceeds the commit index"
            );
            batch.index = Some(state.index);
            if leading {
                self.lease.extend(term, batch.issued_at + lease);
            }
        }
    }

    /// Moves reads whose index is applied into `effects`, re-checking the region: a split
    /// since the read arrived answers with a region error instead.
    pub(super) fn release_ready_reads(&mut self, effects: &mut Effects) {
        let applied = self.applied_index();
        let (ready, kept): (VecDeque<_>, VecDeque<_>) = self
            .reads
            .waiting
            .drain(..)
            .partition(|batch| batch.index.is_some_and(|index| index <= applied));
        self.reads.waiting = kept;
        assert!(ready
            .iter()
            .all(|batch| batch.index.is_some_and(|i| i <= applied)));
        let ignore_epoch = planted::active(PlantedBug::ApplyIgnoresEpoch);
        let reads = ready
            .into_iter()
            .flat_map(|batch| batch.reads.into_iter().map(move |read| (batch.term, read)));
        for (term, read) in reads {
            let checked = match &read.read {
                _ if ignore_epoch => Ok(()),
                ReadOp::Raw(raw) => check_ranges_in_region(&raw.ranges(), self.region()),
                ReadOp::Txn(command) => self.check_txn_ranges(&command.user_ranges()),
                // The store re-checks the command's keys when it takes the snapshot.
                ReadOp::TxnWrite => Ok(()),
            };
            match checked {
                Ok(()) => effects.reads.push(ReadyRead {
                    token: read.token,
                    read: read.read,
                    now_ms: read.now_ms,
                    term,
                }),
                Err(error) => effects.responses.push(read.failed(error)),
            }
        }
    }

    /// Leadership was lost: reads not yet confirmed can never be (raft-rs dropped their
    /// rounds), so they fail now; confirmed reads stay and are served once applied.
    pub(super) fn fail_unconfirmed_reads(&mut self) {
        if planted::active(PlantedBug::StaleLocalReads) {
            return;
        }
        let error = self.not_leader();
        for read in self.reads.drain_unconfirmed() {
            self.answers.push(read.failed(error.clone()));
        }
    }
}
