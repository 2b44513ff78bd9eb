//! The leader's id allocator: unique ids for stores, regions and peers.
//!
//! The leader hands ids out of an in-memory window `[next, limit)` whose `limit` has been
//! replicated (`PdState::id_limit`). When fewer than half a batch remain it proposes
//! `SetIdLimit(limit + batch)` and keeps serving from the current window; it never hands
//! out an id at or above a limit that is not yet applied. A new leader starts its window
//! at the replicated limit (after applying every entry of earlier terms), so no id handed
//! out by an earlier leader can repeat. Ids are never 0.

use crate::proposals::Proposals;
use crate::state::{PdCommand, PdOutcome};

/// Why no id can be handed out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The window is used up; a larger limit is being replicated. Retry shortly.
    #[error("id window exhausted; waiting for a new limit to be replicated")]
    WindowPending,
}

/// The leader-memory allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdAllocator {
    next: u64,
    limit: u64,
    requested: Option<u64>,
    batch: u64,
}

impl IdAllocator {
    /// Starts a leader's allocator at the replicated `applied_limit`. The window is empty
    /// until the limit it proposes now is applied.
    pub fn start(applied_limit: u64, batch: u64, proposals: &mut Proposals) -> IdAllocator {
        assert!(batch >= 2, "id batch too small");
        assert!(batch <= crate::limits::ID_BATCH_MAX);
        let next = applied_limit.max(1);
        let mut allocator = IdAllocator {
            next,
            limit: next,
            requested: None,
            batch,
        };
        allocator.request_if_low(proposals);
        assert!(allocator.requested.is_some());
        allocator
    }

    /// The next id.
    pub fn alloc(&mut self, proposals: &mut Proposals) -> Result<u64, IdError> {
        assert!(self.next <= self.limit);
        if self.next == self.limit {
            self.request_if_low(proposals);
            return Err(IdError::WindowPending);
        }
        let id = self.next;
        self.next += 1;
        self.request_if_low(proposals);
        assert!(id > 0 && id < self.limit);
        Ok(id)
    }

    /// Asks for a larger limit if the window is low and no request is in flight (called on
    /// every tick, so a dropped request is retried without waiting for an `alloc`).
    pub fn refill(&mut self, proposals: &mut Proposals) {
        self.request_if_low(proposals);
    }

    /// Ids left in the current window.
    pub fn remaining(&self) -> u64 {
        self.limit - self.next
    }

    fn request_if_low(&mut self, proposals: &mut Proposals) {
        if self.requested.is_some() || self.remaining() > self.batch / 2 {
            return;
        }
        let limit = self
            .limit
            .checked_add(self.batch)
            .expect("id space exhausted");
        self.requested = Some(limit);
        proposals.push(PdCommand::SetIdLimit { limit });
    }

    /// A command was applied with `outcome`; `state_id_limit` is the state's limit after it.
    pub fn on_applied(&mut self, command: &PdCommand, outcome: &PdOutcome, state_id_limit: u64) {
        assert!(
            state_id_limit >= self.limit,
            "replicated id limit moved back"
        );
        if let PdCommand::SetIdLimit { limit } = command {
            if self.requested == Some(*limit) {
                self.requested = None; // applied, or refused because a larger one applied
            }
        }
        let changed = !matches!(outcome, PdOutcome::Refused(_) | PdOutcome::Unchanged);
        if changed {
            // Ids named in applied metadata are used: never hand them out.
            self.next = self.next.max(command.max_id().saturating_add(1));
        }
        self.limit = state_id_limit;
        assert!(
            self.next <= self.limit,
            "applied ids are below the applied limit"
        );
    }

    /// A proposal of ours was dropped before commit: forget it so the next `alloc` asks again.
    pub fn on_proposal_dropped(&mut self, command: &PdCommand) {
        if let PdCommand::SetIdLimit { limit } = command {
            if self.requested == Some(*limit) {
                self.requested = None;
            }
        }
    }
}

/// Where planners get ids for new peers. `None` means "none available now": the planner
/// gives up this round (the allocator has asked for a larger limit).
pub trait IdSource {
    /// A fresh, never used id.
    fn next_id(&mut self) -> Option<u64>;
}

/// The leader's allocator as an `IdSource`, queueing limit extensions into `proposals`.
pub struct LeaderIds<'a> {
    /// The allocator.
    pub allocator: &'a mut IdAllocator,
    /// Where a `SetIdLimit` goes if the window runs low.
    pub proposals: &'a mut Proposals,
}

impl IdSource for LeaderIds<'_> {
    fn next_id(&mut self) -> Option<u64> {
        self.allocator.alloc(self.proposals).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(
        state: &mut crate::state::PdState,
        allocator: &mut IdAllocator,
        p: &mut Proposals,
    ) {
        for command in p.drain() {
            let outcome = state.apply(&command);
            allocator.on_applied(&command, &outcome, state.id_limit());
        }
    }

    #[test]
    fn nothing_is_handed_out_before_the_first_limit_applies() {
        let mut state = crate::state::PdState::new();
        let mut proposals = Proposals::new();
        let mut allocator = IdAllocator::start(state.id_limit(), 10, &mut proposals);
        assert_eq!(proposals.commands(), &[PdCommand::SetIdLimit { limit: 11 }]);
        let mut held = Proposals::new();
        assert_eq!(allocator.alloc(&mut held), Err(IdError::WindowPending));
        assert!(held.is_empty(), "one request in flight at a time");
        apply_all(&mut state, &mut allocator, &mut proposals);
        assert_eq!(allocator.alloc(&mut proposals), Ok(1));
        assert_eq!(allocator.remaining(), 9);
    }

    #[test]
    fn the_window_is_extended_at_half_a_batch() {
        let mut state = crate::state::PdState::new();
        let mut proposals = Proposals::new();
        let mut allocator = IdAllocator::start(0, 10, &mut proposals);
        apply_all(&mut state, &mut allocator, &mut proposals);
        let ids: Vec<u64> = (0..5)
            .map(|_| allocator.alloc(&mut proposals).unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(proposals.commands(), &[PdCommand::SetIdLimit { limit: 21 }]);
        let more: Vec<u64> = (0..5)
            .map(|_| allocator.alloc(&mut proposals).unwrap())
            .collect();
        assert_eq!(more, vec![6, 7, 8, 9, 10]);
        assert_eq!(allocator.alloc(&mut proposals), Err(IdError::WindowPending));
        apply_all(&mut state, &mut allocator, &mut proposals);
        assert_eq!(allocator.alloc(&mut proposals), Ok(11));
    }

    #[test]
    fn a_dropped_request_is_asked_again() {
        let mut proposals = Proposals::new();
        let mut allocator = IdAllocator::start(100, 10, &mut proposals);
        let dropped = proposals.drain().remove(0);
        allocator.on_proposal_dropped(&dropped);
        assert_eq!(allocator.alloc(&mut proposals), Err(IdError::WindowPending));
        assert_eq!(
            proposals.commands(),
            &[PdCommand::SetIdLimit { limit: 110 }]
        );
    }
}
