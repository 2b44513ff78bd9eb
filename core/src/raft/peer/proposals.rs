//! Proposals waiting for their entries to apply, and the rules that answer them.
//!
//! A proposal is `(index, term)` of the entry raft-rs appended for it. Once entries apply:
//! - the entry at its index with its term answers it with the command's result;
//! - the entry at its index with another term means it was overwritten: `StaleCommand`,
//!   a definite "never applied";
//! - an applied entry of a *higher* term proves every pending proposal of a lower term dead
//!   too, whatever its index: a committed entry of term `t` at index `i` is followed in every
//!   future log only by entries of term `>= t` (Raft's log matching), so a lower-term entry
//!   after `i` can never commit. This answers proposals on an idle region after a leader
//!   change instead of leaving them to hang;
//! - a snapshot covering its index means its entry may have applied inside the snapshot:
//!   `OutcomeUnknown`, never a retryable error (a client retry could apply it twice).
//!
//! Invariants: indexes strictly increase along the queue (a new leader's proposal displaces
//! older-term ones at or past its index, answered unknown); `bytes` is the sum of the queued
//! proposals' entry sizes.

use std::collections::VecDeque;

use crate::store::Token;

/// A proposal waiting for its entry to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Proposal {
    pub index: u64,
    pub term: u64,
    pub token: Token,
    pub bytes: usize,
}

/// How a proposal ended, before the peer turns it into a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// Its entry applied at `(index, term)`; the caller answers with the command's result.
    Applied,
    /// It will never apply.
    Stale,
    /// It may have applied.
    Unknown(&'static str),
}

/// The queue of one peer.
#[derive(Debug, Default)]
pub(super) struct ProposalQueue {
    queue: VecDeque<Proposal>,
    bytes: usize,
}

impl ProposalQueue {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues a proposal the leader just appended, and returns the queued proposals it
    /// displaces: those at or past its index, which are of an older term (a later leader
    /// overwrote their entries in this log, and this peer leads again). Their entries may
    /// still commit through a leader that kept them, so they are answered unknown.
    #[must_use = "displaced proposals must be answered"]
    pub fn push(&mut self, proposal: Proposal) -> Vec<(Token, Settled)> {
        let mut displaced = Vec::new();
        while self
            .queue
            .back()
            .is_some_and(|last| last.index >= proposal.index)
        {
            let last = self.queue.pop_back().expect("back exists");
            assert!(
                last.term < proposal.term,
                "a proposal's index is reused only by a later term: ({}, {}) then ({}, {})",
                last.index,
                last.term,
                proposal.index,
                proposal.term
            );
            self.bytes -= last.bytes;
            displaced.push((
                last.token,
                Settled::Unknown("a later leader replaced its entry in this log"),
            ));
        }
        displaced.reverse();
        if let Some(last) = self.queue.back() {
            assert!(last.term <= proposal.term, "proposal terms never decrease");
        }
        self.bytes += proposal.bytes;
        self.queue.push_back(proposal);
        displaced
    }

    /// Indexes increase, terms never decrease nor pass `current_term`, and `bytes` is the sum.
    pub fn check_invariants(&self, current_term: u64) {
        for (a, b) in self.queue.iter().zip(self.queue.iter().skip(1)) {
            assert!(a.index < b.index, "proposal indexes increase");
            assert!(a.term <= b.term, "proposal terms never decrease");
        }
        if let Some(last) = self.queue.back() {
            assert!(last.term <= current_term, "a proposal from a future term");
        }
        debug_assert_eq!(
            self.bytes,
            self.queue.iter().map(|p| p.bytes).sum::<usize>(),
            "queued bytes are the sum of the proposals'"
        );
    }

    fn pop_front(&mut self) -> Option<Proposal> {
        let proposal = self.queue.pop_front()?;
        self.bytes -= proposal.bytes;
        Some(proposal)
    }

    /// Settles everything the applied entry `(index, term)` decides: proposals up to its
    /// index, and lower-term proposals after it.
    pub fn on_applied(&mut self, index: u64, term: u64) -> Vec<(Token, Settled)> {
        let mut settled = Vec::new();
        while let Some(front) = self.queue.front() {
            if front.index > index {
                break;
            }
            let proposal = self.pop_front().expect("front exists");
            let outcome = if proposal.index < index {
                // Skipped: applied inside a snapshot that did not answer it (never expected,
                // since `on_snapshot` settles those; safe either way).
                Settled::Unknown("its entry was applied out of sight")
            } else if proposal.term == term {
                Settled::Applied
            } else {
                Settled::Stale
            };
            settled.push((proposal.token, outcome));
        }
        settled.extend(self.drop_lower_terms(term));
        settled
    }

    /// Settles proposals covered by an installed snapshot of `(index, term)`.
    pub fn on_snapshot(&mut self, index: u64, term: u64) -> Vec<(Token, Settled)> {
        let mut settled = Vec::new();
        while self.queue.front().is_some_and(|p| p.index <= index) {
            let proposal = self.pop_front().expect("front exists");
            settled.push((
                proposal.token,
                Settled::Unknown("a snapshot replaced the log that held its entry"),
            ));
        }
        settled.extend(self.drop_lower_terms(term));
        settled
    }

    /// Proposals of a term below `term` that remain after an applied entry of `term`.
    fn drop_lower_terms(&mut self, term: u64) -> Vec<(Token, Settled)> {
        // Terms never decrease along the queue (asserted on push): the lower-term
        // proposals are a prefix, so this costs what it settles, not the queue's length.
        let mut settled = Vec::new();
        while self.queue.front().is_some_and(|p| p.term < term) {
            let proposal = self.pop_front().expect("front exists");
            settled.push((proposal.token, Settled::Stale));
        }
        settled
    }

    /// Every pending proposal, for a peer that is going away: each may still commit.
    pub fn drain_unknown(&mut self) -> Vec<(Token, Settled)> {
        let settled = self
            .queue
            .drain(..)
            .map(|p| (p.token, Settled::Unknown("the peer was destroyed")))
            .collect();
        self.bytes = 0;
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(entries: &[(u64, u64)]) -> ProposalQueue {
        let mut queue = ProposalQueue::default();
        for (n, &(index, term)) in entries.iter().enumerate() {
            let displaced = queue.push(Proposal {
                index,
                term,
                token: Token(n as u64),
                bytes: 10,
            });
            assert!(displaced.is_empty());
        }
        queue
    }

    #[test]
    fn a_new_leaders_proposal_displaces_older_term_proposals_at_or_past_its_index() {
        // We proposed 10-12 in term 5, a term-6 leader overwrote 10 in our log (truncating
        // 11 and 12), and we lead again in term 7 with our no-op at 11: the next proposal
        // lands at 12 while the queue still holds (11, 5) and (12, 5). Those entries are gone
        // from our log but may still commit through a leader that kept them: unknown.
        let mut q = queue(&[(10, 5), (11, 5), (12, 5)]);
        let displaced = q.push(Proposal {
            index: 12,
            term: 7,
            token: Token(9),
            bytes: 10,
        });
        let unknown = Settled::Unknown("a later leader replaced its entry in this log");
        assert_eq!(displaced, vec![(Token(2), unknown)]);
        assert_eq!((q.len(), q.bytes()), (3, 30));
        // (11, 5) stays: our term-7 no-op at 11 is not a proposal. The committed (10, 6)
        // settles both term-5 proposals: nothing after it can be of a lower term.
        assert_eq!(
            q.on_applied(10, 6),
            vec![(Token(0), Settled::Stale), (Token(1), Settled::Stale)]
        );
        assert_eq!(q.on_applied(12, 7), vec![(Token(9), Settled::Applied)]);
    }

    #[test]
    fn matching_entry_applies_and_a_different_term_is_stale() {
        let mut q = queue(&[(5, 2), (6, 2)]);
        assert_eq!(q.on_applied(5, 2), vec![(Token(0), Settled::Applied)]);
        assert_eq!(q.bytes(), 10);
        assert_eq!(q.on_applied(6, 3), vec![(Token(1), Settled::Stale)]);
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }

    #[test]
    fn a_higher_term_entry_before_the_index_kills_lower_term_proposals() {
        // An idle region: the new leader's no-op lands at index 4, below our proposal.
        let mut q = queue(&[(5, 2), (6, 3)]);
        assert_eq!(q.on_applied(4, 3), vec![(Token(0), Settled::Stale)]);
        assert_eq!(q.len(), 1, "a proposal of the same term may still commit");
    }

    #[test]
    fn a_snapshot_makes_covered_proposals_unknown() {
        let mut q = queue(&[(5, 2), (9, 2), (12, 4)]);
        let settled = q.on_snapshot(10, 3);
        assert_eq!(settled.len(), 2);
        assert!(matches!(settled[0], (Token(0), Settled::Unknown(_))));
        assert!(matches!(settled[1], (Token(1), Settled::Unknown(_))));
        assert_eq!(q.len(), 1);
        let mut q = queue(&[(12, 2)]);
        assert_eq!(q.on_snapshot(10, 3), vec![(Token(0), Settled::Stale)]);
    }

    #[test]
    #[should_panic(expected = "reused only by a later term")]
    fn out_of_order_proposals_are_a_bug() {
        queue(&[(5, 2), (5, 2)]);
    }
}
