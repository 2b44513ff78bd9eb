//! The driver: runs the sans-IO PD leader (`PdLeader`) on the member that leads the PD
//! region, replicating `PdState` through that region.
//!
//! Roles follow the region's Raft role (from `status::poll`):
//! - **Follower**: every call is answered `NotLeader` (the service turns that into gRPC
//!   `Unavailable`; `GetMembers` names the leader so clients redirect).
//! - **Starting** (just became Raft leader in term T): a linearizable read of the state key
//!   (answered only once every entry of earlier terms is applied), then `PdState::restore`
//!   and `PdLeader::start`. Calls are answered `NotReady` until then.
//! - **Leading** (`leading.rs`): calls run against the leader's memory and its adopted state.
//!   Commands are applied to a copy of the state and the copy's snapshot is proposed, one
//!   proposal at a time, commands waiting meanwhile batched into the next; only a committed
//!   write is adopted and reported with `on_applied` (a failed one with
//!   `on_proposal_dropped`).
//!
//! On any change of term or loss of leadership the leader's memory is dropped, waiting calls
//! fail and store streams end. **TSO safety**: timestamps are handed out only while the
//! member's clock reads before the region's `lease_until` (minus `LEASE_MARGIN`), so a
//! deposed leader stops before a new one can exist; the new one starts above the persisted
//! window, which holds every window the old one used.

mod call;
mod leading;
mod shared;
mod status;

use std::sync::Arc;
use std::time::Duration;

use ferrokv_core::env::{Clock, SeededRng};
use ferrokv_core::raw::{value, RawRead, RawReadResult};
use ferrokv_core::store::{Request, RequestHeader, Response};
use ferrokv_core::types::{RegionEpoch, RegionId};
use ferrokv_pd_core::{PdLeader, PdState, Proposals};
use ferrokv_server::clock::RuntimeClock;
use ferrokv_server::node::NodeHandle;
use tokio::sync::{mpsc, watch};

pub use call::{Call, DriverHandle, PdError, Query, Reply, Serving, CALL_QUEUE_MAX};
use leading::{Ctx, Leading};
pub use shared::{DriverCounters, Shared, StreamSender, STREAM_QUEUE_MAX};
pub use status::{RegionView, STATUS_INTERVAL};

use crate::config::PD_REGION_ID;

/// The key of the replicated PD state in the PD region (column family default).
pub const STATE_KEY: &[u8] = b"pd/state";
/// Timestamps stop this long before the lease ends (slack for the status's age is not
/// needed: a lease end is absolute; this covers the time between the check and the reply).
pub const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// Events from the driver's own helper tasks, tagged with the term they belong to.
enum Event {
    /// The state read of a take-over finished.
    StateRead {
        term: u64,
        result: Result<Option<Vec<u8>>, String>,
    },
    /// A state write finished.
    Proposed {
        term: u64,
        result: Result<(), String>,
    },
}

enum Role {
    Follower,
    Starting { term: u64, reading: bool },
    Leading(Box<Leading>),
}

/// The PD driver of one member.
pub struct Driver {
    node: NodeHandle,
    clock: RuntimeClock,
    schedule: ferrokv_pd_core::Config,
    tick_interval: Duration,
    rng: SeededRng,
    calls: mpsc::Receiver<Call>,
    views: watch::Receiver<Option<RegionView>>,
    events: mpsc::Receiver<Event>,
    event_sender: mpsc::Sender<Event>,
    view: Option<RegionView>,
    role: Role,
    shared: Arc<Shared>,
}

/// What `Driver::new` needs.
pub struct DriverParts {
    /// The member's node.
    pub node: NodeHandle,
    /// The member's clock (the node's: leases are on it).
    pub clock: RuntimeClock,
    /// Scheduling configuration.
    pub schedule: ferrokv_pd_core::Config,
    /// Period of the leader's tick.
    pub tick_interval: Duration,
    /// Seed of the planners' random stream.
    pub seed: u64,
    /// The configured cluster id.
    pub cluster_id: u64,
}

impl Driver {
    /// A driver, the handle the service calls it through, and the shared view.
    pub fn new(parts: DriverParts) -> (Driver, DriverHandle, Arc<Shared>) {
        let (handle, calls) = DriverHandle::channel();
        let (view_sender, views) = watch::channel(None);
        tokio::spawn(status::poll(parts.node.clone(), view_sender));
        let (event_sender, events) = mpsc::channel(16);
        let shared = Arc::new(Shared::new(parts.cluster_id));
        let driver = Driver {
            node: parts.node,
            clock: parts.clock,
            schedule: parts.schedule,
            tick_interval: parts.tick_interval,
            rng: SeededRng::new(parts.seed),
            calls,
            views,
            events,
            event_sender,
            view: None,
            role: Role::Follower,
            shared: shared.clone(),
        };
        (driver, handle, shared)
    }

    /// Runs until the service and the status poller are gone.
    pub async fn run(mut self) {
        let mut next_tick = tokio::time::Instant::now() + self.tick_interval;
        loop {
            tokio::select! {
                biased;
                changed = self.views.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let view = self.views.borrow_and_update().clone();
                    self.on_view(view);
                }
                Some(event) = self.events.recv() => self.on_event(event),
                call = self.calls.recv() => match call {
                    Some(call) => self.on_call(call),
                    None => break,
                },
                _ = tokio::time::sleep_until(next_tick) => {}
            }
            if tokio::time::Instant::now() >= next_tick {
                self.tick();
                next_tick = tokio::time::Instant::now() + self.tick_interval;
            }
        }
        self.step_down("driver stopping");
    }

    fn now_ms(&self) -> u64 {
        self.clock.realtime_ms()
    }

    fn on_view(&mut self, view: Option<RegionView>) {
        self.shared.set_leader(view.as_ref().and_then(|v| v.leader));
        self.view = view.clone();
        let Some(view) = view.filter(|view| view.is_leader) else {
            if !matches!(self.role, Role::Follower) {
                self.step_down("lost leadership");
            }
            return;
        };
        let current_term = match &self.role {
            Role::Follower => None,
            Role::Starting { term, .. } => Some(*term),
            Role::Leading(leading) => Some(leading.term()),
        };
        if current_term != Some(view.term) {
            if current_term.is_some() {
                self.step_down("term changed");
            }
            self.role = Role::Starting {
                term: view.term,
                reading: false,
            };
            self.start_reading();
            return;
        }
        let now_ms = self.now_ms();
        if let Role::Leading(leading) = &mut self.role {
            leading.on_view(&view);
            let mut ctx = Ctx {
                clock: &self.clock,
                now_ms,
                rng: &mut self.rng,
                shared: &self.shared,
            };
            leading.retry_parked(&mut ctx);
            self.propose_next();
        }
    }

    fn step_down(&mut self, why: &str) {
        let previous = std::mem::replace(&mut self.role, Role::Follower);
        if let Role::Leading(leading) = previous {
            tracing::info!(term = leading.term(), why, "PD leader stepping down");
            leading.fail_all(PdError::NotLeader {
                leader: self.shared.leader(),
            });
            self.shared.count(|c| c.step_downs += 1);
            self.shared.end_streams();
        }
    }

    fn header(&self) -> RequestHeader {
        RequestHeader {
            region_id: RegionId(PD_REGION_ID),
            epoch: self
                .view
                .as_ref()
                .map_or(RegionEpoch::default(), |view| view.epoch),
        }
    }

    /// Spawns the take-over read of the state key (linearizable: the store answers only
    /// after this term's first entry committed, so every earlier write is applied).
    fn start_reading(&mut self) {
        let Role::Starting { term, reading } = &mut self.role else {
            return;
        };
        if *reading {
            return;
        }
        *reading = true;
        let term = *term;
        let request = Request::Read {
            header: self.header(),
            read: RawRead::Get {
                key: STATE_KEY.to_vec(),
            },
            now_ms: self.now_ms(),
        };
        let node = self.node.clone();
        let events = self.event_sender.clone();
        tokio::spawn(async move {
            let result = match node.request(request).await {
                Ok(Response::Read(Ok(RawReadResult::Value(found)))) => Ok(found),
                Ok(other) => Err(format!("state read answered {other:?}")),
                Err(error) => Err(error.to_string()),
            };
            let _ = events.send(Event::StateRead { term, result }).await;
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::StateRead { term, result } => self.on_state_read(term, result),
            Event::Proposed { term, result } => {
                let now_ms = self.now_ms();
                if let Role::Leading(leading) = &mut self.role {
                    if leading.term() == term {
                        leading.on_proposed(result, &self.shared);
                        let mut ctx = Ctx {
                            clock: &self.clock,
                            now_ms,
                            rng: &mut self.rng,
                            shared: &self.shared,
                        };
                        leading.retry_parked(&mut ctx);
                    }
                }
                self.propose_next();
            }
        }
    }

    fn on_state_read(&mut self, term: u64, result: Result<Option<Vec<u8>>, String>) {
        let Role::Starting {
            term: starting,
            reading,
        } = &mut self.role
        else {
            return;
        };
        if *starting != term {
            return;
        }
        *reading = false;
        let state = match result.map(|found| found.map(|bytes| PdState::restore(&bytes))) {
            Ok(None) => PdState::new(),
            Ok(Some(Ok(state))) => state,
            Ok(Some(Err(error))) => {
                tracing::error!(%error, "the replicated PD state does not decode; not serving");
                return;
            }
            Err(error) => {
                tracing::info!(%error, "PD state read failed; retrying");
                return;
            }
        };
        self.take_over(term, state);
    }

    fn take_over(&mut self, term: u64, state: PdState) {
        let mut proposals = Proposals::new();
        let now_ms = self.now_ms();
        let leader = PdLeader::start(&state, self.schedule.clone(), now_ms, &mut proposals);
        if state.is_bootstrapped() {
            self.shared.set_cluster_id(state.cluster_id());
        }
        tracing::info!(
            term,
            regions = state.regions().len(),
            tso_limit_ms = state.tso_limit_ms(),
            "PD leader taking over"
        );
        let mut leading = Leading::new(term, state, leader, self.view.as_ref());
        leading.enqueue(proposals);
        self.role = Role::Leading(Box::new(leading));
        self.shared.count(|c| c.leader_starts += 1);
        self.propose_next();
    }

    fn on_call(&mut self, call: Call) {
        let now_ms = self.now_ms();
        match &mut self.role {
            Role::Follower => call.fail(PdError::NotLeader {
                leader: self.shared.leader(),
            }),
            Role::Starting { .. } => call.fail(PdError::NotReady),
            Role::Leading(leading) => {
                let mut ctx = Ctx {
                    clock: &self.clock,
                    now_ms,
                    rng: &mut self.rng,
                    shared: &self.shared,
                };
                leading.on_call(call, &mut ctx);
                self.propose_next();
            }
        }
    }

    fn tick(&mut self) {
        let now_ms = self.now_ms();
        match &mut self.role {
            Role::Starting { .. } => self.start_reading(),
            Role::Leading(leading) => {
                let mut ctx = Ctx {
                    clock: &self.clock,
                    now_ms,
                    rng: &mut self.rng,
                    shared: &self.shared,
                };
                leading.tick(&mut ctx);
                self.propose_next();
            }
            Role::Follower => {}
        }
    }

    /// Proposes the next batch if none is in flight.
    fn propose_next(&mut self) {
        let header = self.header();
        let Role::Leading(leading) = &mut self.role else {
            return;
        };
        let Some(snapshot) = leading.next_proposal(&self.shared) else {
            return;
        };
        let term = leading.term();
        let ops = vec![put_state(snapshot)];
        let node = self.node.clone();
        let events = self.event_sender.clone();
        tokio::spawn(async move {
            let result = match node.request(Request::Write { header, ops }).await {
                Ok(Response::Write(Ok(_))) => Ok(()),
                Ok(other) => Err(format!("state write answered {other:?}")),
                Err(error) => Err(error.to_string()),
            };
            let _ = events.send(Event::Proposed { term, result }).await;
        });
    }
}

/// The write op that stores a state snapshot under `STATE_KEY`.
fn put_state(snapshot: Vec<u8>) -> ferrokv_proto::ferrokv_raftpb::WriteOp {
    use ferrokv_proto::ferrokv_raftpb::{write_op, CfName, PutOp, WriteOp};
    WriteOp {
        op: Some(write_op::Op::Put(PutOp {
            cf: CfName::CfRaw as i32,
            key: STATE_KEY.to_vec(),
            value: value::encode(&snapshot, None),
        })),
    }
}
