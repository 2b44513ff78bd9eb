//! The leading role: the adopted state, the leader's memory, the proposal pipeline and the
//! calls parked until a window or id batch is replicated.
//!
//! Pipeline invariant: at most one state write is in flight; it carries the adopted state
//! with every command of its batch applied, in order. The adopted state changes only when
//! that write commits, and then each command is reported with `on_applied` (with the
//! outcome computed on the copy, which equals what every member would compute). A failed
//! write reports every command of its batch with `on_proposal_dropped`; since the next
//! write carries the whole adopted state, a failed write that commits later is overwritten
//! by a state that never relied on it.

use std::collections::VecDeque;
use std::time::Duration;

use ferrokv_core::env::{Clock, Instant, SeededRng};
use ferrokv_core::types::TimeStamp;
use ferrokv_pd_core::ask_split::AskSplitError;
use ferrokv_pd_core::id_alloc::IdError;
use ferrokv_pd_core::tso::TsoError;
use ferrokv_pd_core::{PdCommand, PdLeader, PdOutcome, PdState, Proposals};
use ferrokv_server::clock::RuntimeClock;

use super::call::{Call, PdError, Reply, Serving};
use super::shared::Shared;
use super::status::RegionView;
use super::LEASE_MARGIN;

/// Commands waiting for the next write before new ones are refused.
const QUEUE_MAX: usize = 65_536;
/// Most commands in one state write.
const BATCH_MAX: usize = 4_096;
/// Calls parked (waiting for a window, ids or the lease) before new ones are refused.
const PARKED_MAX: usize = 16_384;
/// How long a parked call may wait before it is answered `NotReady`.
const PARK_MAX: Duration = Duration::from_secs(1);

/// What one call needs from the driver.
pub(super) struct Ctx<'a> {
    pub clock: &'a RuntimeClock,
    pub now_ms: u64,
    pub rng: &'a mut SeededRng,
    pub shared: &'a Shared,
}

type Waiting = (PdCommand, Option<Reply<PdOutcome>>);

struct InFlight {
    batch: Vec<Waiting>,
    outcomes: Vec<PdOutcome>,
    next: PdState,
}

struct Parked {
    until: Instant,
    call: Call,
}

/// A call's answer now, or "park it and retry later".
enum Answer<T> {
    Now(Result<T, PdError>),
    Later,
}

pub(super) struct Leading {
    term: u64,
    state: PdState,
    leader: PdLeader,
    lease_until: Option<Instant>,
    queue: Vec<Waiting>,
    in_flight: Option<InFlight>,
    parked: VecDeque<Parked>,
}

impl Leading {
    pub fn new(term: u64, state: PdState, leader: PdLeader, view: Option<&RegionView>) -> Leading {
        let lease_until = view.filter(|v| v.term == term).and_then(|v| v.lease_until);
        Leading {
            term,
            state,
            leader,
            lease_until,
            queue: Vec::new(),
            in_flight: None,
            parked: VecDeque::new(),
        }
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// A fresh status of the PD region in this term.
    pub fn on_view(&mut self, view: &RegionView) {
        assert_eq!(view.term, self.term, "a view of another term");
        assert!(view.is_leader);
        self.lease_until = view.lease_until;
    }

    /// True while no other leader can exist for at least `LEASE_MARGIN`.
    fn lease_holds(&self, clock: &RuntimeClock) -> bool {
        self.lease_until
            .is_some_and(|until| clock.now() + LEASE_MARGIN < until)
    }

    /// Queues commands the leader core produced.
    pub fn enqueue(&mut self, mut proposals: Proposals) {
        for command in proposals.drain() {
            if self.queue.len() >= QUEUE_MAX {
                self.leader.on_proposal_dropped(&command);
                continue;
            }
            self.queue.push((command, None));
        }
    }

    pub fn on_call(&mut self, call: Call, ctx: &mut Ctx<'_>) {
        if let Some(call) = self.serve(call, ctx) {
            if self.parked.len() >= PARKED_MAX {
                call.fail(PdError::Busy("too many waiting calls"));
                return;
            }
            let until = ctx.clock.now() + PARK_MAX;
            self.parked.push_back(Parked { until, call });
        }
    }

    /// Retries parked calls (after a write applied, a tick or a lease renewal); those past
    /// their wait are answered `NotReady`.
    pub fn retry_parked(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.clock.now();
        for parked in std::mem::take(&mut self.parked) {
            if now >= parked.until {
                parked.call.fail(PdError::NotReady);
                continue;
            }
            if let Some(call) = self.serve(parked.call, ctx) {
                self.parked.push_back(Parked {
                    until: parked.until,
                    call,
                });
            }
        }
    }

    /// Serves `call`, or gives it back to be parked.
    fn serve(&mut self, call: Call, ctx: &mut Ctx<'_>) -> Option<Call> {
        match call {
            Call::Tso { count, reply } => match self.timestamp(count, ctx) {
                Answer::Now(result) => drop(reply.send(result)),
                Answer::Later => return Some(Call::Tso { count, reply }),
            },
            Call::AllocId { reply } => match self.alloc_id() {
                Answer::Now(result) => drop(reply.send(result)),
                Answer::Later => return Some(Call::AllocId { reply }),
            },
            Call::AskBatchSplit { request, reply } => match self.ask_split(&request) {
                Answer::Now(result) => drop(reply.send(result)),
                Answer::Later => return Some(Call::AskBatchSplit { request, reply }),
            },
            Call::Propose { command, reply } => {
                if self.queue.len() >= QUEUE_MAX {
                    let _ = reply.send(Err(PdError::Busy("proposal queue full")));
                } else {
                    self.queue.push((*command, Some(reply)));
                }
            }
            Call::RegionHeartbeat { request, reply } => {
                let mut proposals = Proposals::new();
                let result = self.leader.on_region_heartbeat(
                    &self.state,
                    &request,
                    ctx.now_ms,
                    ctx.rng,
                    &mut proposals,
                );
                self.enqueue(proposals);
                let _ = reply.send(Ok(result));
            }
            Call::StoreHeartbeat { stats, reply } => {
                let result = self
                    .leader
                    .on_store_heartbeat(&self.state, &stats, ctx.now_ms);
                let _ = reply.send(Ok(result));
            }
            Call::Query(query) => query(Ok(Serving {
                state: &self.state,
                leader: &self.leader,
                now_ms: ctx.now_ms,
            })),
        }
        None
    }

    fn timestamp(&mut self, count: u32, ctx: &mut Ctx<'_>) -> Answer<TimeStamp> {
        if !self.lease_holds(ctx.clock) {
            ctx.shared.count(|c| c.tso_lease_refusals += 1);
            return Answer::Later;
        }
        match self.leader.get_timestamp(count) {
            Ok(ts) => {
                ctx.shared.count(|c| c.tso_served += 1);
                Answer::Now(Ok(ts))
            }
            Err(TsoError::InvalidCount { count }) => {
                Answer::Now(Err(PdError::Invalid(format!("timestamp count {count}"))))
            }
            Err(TsoError::LogicalExhausted | TsoError::WindowNotPersisted) => Answer::Later,
        }
    }

    fn alloc_id(&mut self) -> Answer<u64> {
        let mut proposals = Proposals::new();
        let result = self.leader.alloc_id(&mut proposals);
        self.enqueue(proposals);
        match result {
            Ok(id) => Answer::Now(Ok(id)),
            Err(IdError::WindowPending) => Answer::Later,
        }
    }

    fn ask_split(
        &mut self,
        request: &ferrokv_proto::pdpb::AskBatchSplitRequest,
    ) -> Answer<Result<Vec<ferrokv_proto::pdpb::SplitId>, AskSplitError>> {
        let mut proposals = Proposals::new();
        let result = self
            .leader
            .ask_batch_split(&self.state, request, &mut proposals);
        self.enqueue(proposals);
        match result {
            Err(AskSplitError::IdsPending) => Answer::Later,
            other => Answer::Now(Ok(other)),
        }
    }

    /// Periodic work: TSO window, id window, operator expiry, schedulers; instructions for
    /// new operators go to the stores' streams.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let mut proposals = Proposals::new();
        let dispatches = self
            .leader
            .tick(&self.state, ctx.now_ms, ctx.rng, &mut proposals);
        self.enqueue(proposals);
        for dispatch in dispatches {
            ctx.shared.push(dispatch.store_id.get(), dispatch.response);
        }
        self.retry_parked(ctx);
    }

    /// The snapshot to write next, if no write is in flight and commands wait. Batches that
    /// change nothing are adopted at once without a write.
    pub fn next_proposal(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        while self.in_flight.is_none() && !self.queue.is_empty() {
            let take = self.queue.len().min(BATCH_MAX);
            let batch: Vec<Waiting> = self.queue.drain(..take).collect();
            let mut next = self.state.clone();
            let outcomes: Vec<PdOutcome> = batch.iter().map(|(c, _)| next.apply(c)).collect();
            let in_flight = InFlight {
                batch,
                outcomes,
                next,
            };
            if in_flight.next == self.state {
                self.adopt(in_flight, shared);
                continue;
            }
            let snapshot = in_flight.next.snapshot();
            self.in_flight = Some(in_flight);
            return Some(snapshot);
        }
        None
    }

    /// The write in flight finished.
    pub fn on_proposed(&mut self, result: Result<(), String>, shared: &Shared) {
        let in_flight = self.in_flight.take().expect("a write was in flight");
        match result {
            Ok(()) => {
                shared.count(|c| c.proposals_applied += 1);
                self.adopt(in_flight, shared);
            }
            Err(error) => {
                tracing::info!(term = self.term, %error, "PD state write failed");
                shared.count(|c| c.proposals_failed += 1);
                for (command, reply) in in_flight.batch {
                    self.leader.on_proposal_dropped(&command);
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(PdError::ProposalFailed(error.clone())));
                    }
                }
            }
        }
    }

    fn adopt(&mut self, in_flight: InFlight, shared: &Shared) {
        let InFlight {
            batch,
            outcomes,
            next,
        } = in_flight;
        assert!(next.tso_limit_ms() >= self.state.tso_limit_ms());
        assert!(next.id_limit() >= self.state.id_limit());
        self.state = next;
        if self.state.is_bootstrapped() {
            shared.set_cluster_id(self.state.cluster_id());
        }
        for ((command, reply), outcome) in batch.into_iter().zip(outcomes) {
            self.leader.on_applied(&self.state, &command, &outcome);
            if let Some(reply) = reply {
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// Leadership ended: every waiting call fails with `error`.
    pub fn fail_all(self, error: PdError) {
        let in_flight = self.in_flight.into_iter().flat_map(|f| f.batch);
        for (_, reply) in self.queue.into_iter().chain(in_flight) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        for parked in self.parked {
            parked.call.fail(error.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokv_pd_core::state::ApplyError;
    use tokio::sync::oneshot;

    fn leading() -> (Leading, Shared) {
        let state = PdState::new();
        let mut proposals = Proposals::new();
        let config = ferrokv_pd_core::Config::default();
        let leader = PdLeader::start(&state, config, 1_000_000, &mut proposals);
        let mut leading = Leading::new(7, state, leader, None);
        leading.enqueue(proposals);
        (leading, Shared::new(42))
    }

    fn gc(safe_point: u64) -> PdCommand {
        PdCommand::UpdateGcSafePoint { safe_point }
    }

    #[test]
    fn one_write_in_flight_carries_every_waiting_command() {
        let (mut leading, shared) = leading();
        let snapshot = leading
            .next_proposal(&shared)
            .expect("the first windows are written");
        let written = PdState::restore(&snapshot).unwrap();
        assert!(
            written.tso_limit_ms() > 0 && written.id_limit() > 0,
            "both windows in one write"
        );
        assert_eq!(
            leading.next_proposal(&shared),
            None,
            "nothing while a write is in flight"
        );
        assert_eq!(
            leading.state.tso_limit_ms(),
            0,
            "not adopted before it commits"
        );
        leading.on_proposed(Ok(()), &shared);
        assert_eq!(leading.state, written, "adopted once committed");
        assert_eq!(shared.counters().proposals_applied, 1);
    }

    #[test]
    fn refusals_are_answered_without_a_write_and_failures_are_reported() {
        let (mut leading, shared) = leading();
        let first = leading.next_proposal(&shared).unwrap();
        leading.on_proposed(Ok(()), &shared);
        assert!(!first.is_empty());
        let (reply, mut answer) = oneshot::channel();
        leading.queue.push((gc(5), Some(reply)));
        assert_eq!(
            leading.next_proposal(&shared),
            None,
            "a refusal changes nothing: no write"
        );
        let refused = answer.try_recv().unwrap().unwrap();
        assert_eq!(refused, PdOutcome::Refused(ApplyError::NotBootstrapped));
        let (reply, mut answer) = oneshot::channel();
        leading.queue.push((
            PdCommand::SetTsoLimit {
                limit_ms: u64::MAX / 2,
            },
            Some(reply),
        ));
        assert!(leading.next_proposal(&shared).is_some());
        leading.on_proposed(Err("not leader".into()), &shared);
        let failed = answer.try_recv().unwrap();
        assert!(
            matches!(failed, Err(PdError::ProposalFailed(_))),
            "{failed:?}"
        );
        assert!(
            leading.state.tso_limit_ms() < u64::MAX / 2,
            "a failed write is not adopted"
        );
        assert_eq!(shared.counters().proposals_failed, 1);
    }

    #[test]
    fn stepping_down_fails_every_waiting_call() {
        let (mut leading, shared) = leading();
        let _ = leading.next_proposal(&shared);
        let (queued, mut queued_answer) = oneshot::channel();
        leading.queue.push((gc(1), Some(queued)));
        let (tso, mut tso_answer) = oneshot::channel();
        let until = Instant::from_nanos(u64::MAX);
        let call = Call::Tso {
            count: 1,
            reply: tso,
        };
        leading.parked.push_back(Parked { until, call });
        leading.fail_all(PdError::NotLeader { leader: Some(2) });
        let not_leader = Err(PdError::NotLeader { leader: Some(2) });
        assert_eq!(queued_answer.try_recv().unwrap(), not_leader);
        assert!(matches!(
            tso_answer.try_recv().unwrap(),
            Err(PdError::NotLeader { .. })
        ));
    }
}
