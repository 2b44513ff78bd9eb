//! Property test: ids and timestamps never repeat or go back across leader failovers and
//! restarts, whatever the wall clock does.
//!
//! A world holds the replicated `PdState`, one `PdLeader`, the queue of its uncommitted
//! proposals and a wall clock that may jump backwards. Random operations allocate ids and
//! timestamps, advance the clock (ticking the leader), commit or drop the oldest proposal,
//! and fail over: a prefix of the pending proposals commits, the rest is lost, and a new
//! leader starts from the state (for a restart, from the state's snapshot bytes). Checked:
//! every id is above every earlier id and below the replicated id limit at the moment it is
//! handed out; every timestamp batch starts above every earlier timestamp and its physical
//! part is below the replicated TSO limit; and once proposals commit, both are served again.

use std::collections::VecDeque;

use ferrokv_core::env::SeededRng;
use ferrokv_core::types::TimeStamp;
use ferrokv_pd_core::tso::TsoError;
use ferrokv_pd_core::{Config, PdCommand, PdLeader, PdState, Proposals};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    Timestamps(u32),
    Advance(i32),
    CommitOne,
    DropOne,
    Failover { committed: usize, clock_jump: i32 },
    Restart { committed: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Alloc),
        4 => (1u32..=64).prop_map(Op::Timestamps),
        3 => (-5_000i32..5_000).prop_map(Op::Advance),
        5 => Just(Op::CommitOne),
        1 => Just(Op::DropOne),
        1 => (any::<usize>(), -20_000i32..20_000)
            .prop_map(|(committed, clock_jump)| Op::Failover { committed, clock_jump }),
        1 => any::<usize>().prop_map(|committed| Op::Restart { committed }),
    ]
}

struct World {
    state: PdState,
    leader: PdLeader,
    pending: VecDeque<PdCommand>,
    now_ms: u64,
    last_id: u64,
    last_ts: TimeStamp,
    rng: SeededRng,
    config: Config,
}

impl World {
    fn new() -> World {
        let config = Config {
            id_batch: 8,
            ..Config::default()
        };
        let state = PdState::new();
        let mut proposals = Proposals::new();
        let now_ms = 1_000_000;
        let leader = PdLeader::start(&state, config.clone(), now_ms, &mut proposals);
        World {
            state,
            leader,
            pending: proposals.drain().into(),
            now_ms,
            last_id: 0,
            last_ts: TimeStamp::ZERO,
            rng: SeededRng::new(1),
            config,
        }
    }

    fn queue(&mut self, mut proposals: Proposals) {
        self.pending.extend(proposals.drain());
    }

    fn alloc(&mut self) -> bool {
        let mut proposals = Proposals::new();
        let result = self.leader.alloc_id(&mut proposals);
        self.queue(proposals);
        let Ok(id) = result else { return false };
        assert!(id > self.last_id, "id {id} after {}", self.last_id);
        assert!(
            id < self.state.id_limit(),
            "id {id} at or above the replicated limit"
        );
        self.last_id = id;
        true
    }

    fn timestamps(&mut self, count: u32) -> bool {
        let Ok(largest) = self.leader.get_timestamp(count) else {
            return false;
        };
        let first = largest.get() - u64::from(count - 1);
        assert!(
            first > self.last_ts.get(),
            "{largest:?} batch starts at or below {:?}",
            self.last_ts
        );
        assert!(
            largest.physical_ms() < self.state.tso_limit_ms(),
            "beyond the replicated window"
        );
        self.last_ts = largest;
        true
    }

    fn advance(&mut self, delta_ms: i32) {
        self.now_ms = self.now_ms.saturating_add_signed(i64::from(delta_ms));
        let mut proposals = Proposals::new();
        let dispatches = self
            .leader
            .tick(&self.state, self.now_ms, &mut self.rng, &mut proposals);
        assert!(
            dispatches.is_empty(),
            "nothing to schedule in an empty cluster"
        );
        self.queue(proposals);
    }

    fn commit_one(&mut self) {
        if let Some(command) = self.pending.pop_front() {
            let outcome = self.state.apply(&command);
            self.leader.on_applied(&self.state, &command, &outcome);
        }
    }

    fn drop_one(&mut self) {
        if let Some(command) = self.pending.pop_front() {
            self.leader.on_proposal_dropped(&command);
        }
    }

    fn fail_over(&mut self, committed: usize, clock_jump_ms: i32, restart: bool) {
        let committed = committed % (self.pending.len() + 1);
        for command in self.pending.drain(..).take(committed) {
            self.state.apply(&command);
        }
        if restart {
            self.state = PdState::restore(&self.state.snapshot()).expect("snapshot restores");
        }
        self.now_ms = self.now_ms.saturating_add_signed(i64::from(clock_jump_ms));
        let mut proposals = Proposals::new();
        self.leader = PdLeader::start(
            &self.state,
            self.config.clone(),
            self.now_ms,
            &mut proposals,
        );
        self.queue(proposals);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc => {
                self.alloc();
            }
            Op::Timestamps(count) => {
                self.timestamps(count);
            }
            Op::Advance(delta_ms) => self.advance(delta_ms),
            Op::CommitOne => self.commit_one(),
            Op::DropOne => self.drop_one(),
            Op::Failover {
                committed,
                clock_jump,
            } => self.fail_over(committed, clock_jump, false),
            Op::Restart { committed } => self.fail_over(committed, 0, true),
        }
    }

    /// Commits everything, ticks, and commits again: service must resume.
    fn settle(&mut self) {
        for _ in 0..3 {
            while !self.pending.is_empty() {
                self.commit_one();
            }
            self.advance(1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ids_and_timestamps_never_repeat_across_failovers(ops in proptest::collection::vec(op(), 1..200)) {
        let mut world = World::new();
        for op in ops {
            world.apply(op);
        }
        world.settle();
        prop_assert!(world.alloc(), "ids are served once proposals commit");
        let served = world.timestamps(1);
        prop_assert!(served, "timestamps are served once proposals commit");
    }
}

#[test]
fn a_new_leader_starts_above_the_old_one_after_the_clock_went_back() {
    let mut world = World::new();
    world.settle();
    assert!(world.timestamps(10));
    let old = world.last_ts;
    world.fail_over(usize::MAX, -60_000, false);
    assert_eq!(
        world.leader.get_timestamp(1),
        Err(TsoError::WindowNotPersisted)
    );
    world.settle();
    assert!(world.timestamps(1));
    assert!(world.last_ts > old);
    assert!(world.last_ts.physical_ms() > old.physical_ms());
}
