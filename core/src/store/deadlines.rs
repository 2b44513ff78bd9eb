//! Request deadlines: every request a store accepts is answered, by its peer or, once its
//! deadline passes, by the store: a write or admin command as `OutcomeUnknown` (it may still
//! commit), a read as `Timeout` (it had no effect). A peer's late answer for an expired
//! request is dropped, so each request is answered exactly once.

use std::collections::{BTreeMap, BTreeSet};

use super::cmd::{Response, Token, TxnFailure};
use super::error::RegionError;
use crate::env::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Admin,
    TxnRead,
    TxnWrite,
}

/// Accepted requests by token and by deadline.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    by_token: BTreeMap<Token, (Instant, Kind)>,
    by_deadline: BTreeSet<(Instant, Token)>,
}

impl Deadlines {
    /// Records an accepted request; `shape` is any response of the request's kind.
    pub fn accept(&mut self, token: Token, deadline: Instant, shape: &Response) {
        let kind = match shape {
            Response::Write(_) => Kind::Write,
            Response::Read(_) => Kind::Read,
            Response::Admin(_) => Kind::Admin,
            Response::TxnRead(_) => Kind::TxnRead,
            Response::TxnWrite(_) => Kind::TxnWrite,
        };
        let fresh = self.by_token.insert(token, (deadline, kind)).is_none();
        assert!(fresh, "token {token:?} accepted twice");
        self.by_deadline.insert((deadline, token));
    }

    /// True if `token` still waits for its answer.
    pub fn is_waiting(&self, token: Token) -> bool {
        self.by_token.contains_key(&token)
    }

    /// True (and forgotten) if `token` still waits: its answer should be delivered.
    pub fn answer(&mut self, token: Token) -> bool {
        match self.by_token.remove(&token) {
            Some((deadline, _)) => {
                assert!(self.by_deadline.remove(&(deadline, token)), "indexes agree");
                true
            }
            None => false,
        }
    }

    /// Answers every request whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(Token, Response)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, token)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            let (_, kind) = self.by_token.remove(&token).expect("indexes agree");
            let response = match kind {
                Kind::Write => Response::Write(Err(unknown())),
                Kind::Admin => Response::Admin(Err(unknown())),
                Kind::Read => Response::Read(Err(timeout())),
                Kind::TxnRead => Response::TxnRead(Err(TxnFailure::Region(timeout()))),
                // A transactional write may still apply: its outcome is unknown.
                Kind::TxnWrite => Response::TxnWrite(Err(TxnFailure::Region(unknown()))),
            };
            expired.push((token, response));
        }
        expired
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }
}

fn timeout() -> RegionError {
    RegionError::Timeout("no answer before the request deadline".into())
}

fn unknown() -> RegionError {
    RegionError::OutcomeUnknown("no answer before the request deadline".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn each_request_is_answered_once_by_peer_or_deadline() {
        let mut deadlines = Deadlines::default();
        deadlines.accept(
            Token(1),
            at(10),
            &Response::Write(Err(RegionError::StaleCommand)),
        );
        deadlines.accept(
            Token(2),
            at(20),
            &Response::Read(Err(RegionError::StaleCommand)),
        );
        deadlines.accept(
            Token(3),
            at(5),
            &Response::Admin(Err(RegionError::StaleCommand)),
        );
        assert!(deadlines.answer(Token(3)), "answered by its peer in time");
        let expired = deadlines.expire(at(15));
        assert_eq!(expired.len(), 1);
        assert!(matches!(
            expired[0],
            (
                Token(1),
                Response::Write(Err(RegionError::OutcomeUnknown(_)))
            )
        ));
        assert!(!deadlines.answer(Token(1)), "a late peer answer is dropped");
        let expired = deadlines.expire(at(20));
        assert!(matches!(
            expired[0],
            (Token(2), Response::Read(Err(RegionError::Timeout(_))))
        ));
        assert_eq!(deadlines.len(), 0);
    }
}
