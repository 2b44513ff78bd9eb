//! The timestamp oracle (TSO), as PD runs it.
//!
//! Timestamps are `physical_ms << 18 | logical`. The oracle keeps its physical time within
//! a *window* whose upper limit is persisted before use: after a restart or leader change the
//! new oracle starts above the persisted limit, so timestamps never repeat or go backwards,
//! even if the wall clock does.

use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_core::types::{TimeStamp, LOGICAL_MAX};

/// How far ahead of the current physical time the persisted limit is pushed, in ms.
pub const WINDOW_MS: u64 = 3_000;
/// Most timestamps one request may take.
pub const BATCH_MAX: u64 = 1 << 16;

/// Why timestamps could not be handed out now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsoError {
    /// The request asked for zero or too many timestamps.
    #[error("invalid timestamp count {count} (1..={BATCH_MAX})")]
    InvalidCount { count: u64 },
    /// This millisecond's logical counter is spent; retry after the next `update`.
    #[error("logical clock exhausted; retry after the next tick")]
    LogicalExhausted,
    /// The window limit must be persisted before more time can be handed out.
    #[error("waiting for the timestamp window to be persisted")]
    WindowNotPersisted,
}

/// The oracle's state.
#[derive(Debug, Clone)]
pub struct Tso {
    physical_ms: u64,
    logical: u64,
    persisted_limit_ms: u64,
    requested_limit_ms: Option<u64>,
}

impl Tso {
    /// Starts an oracle after `persisted_limit_ms` (0 for a new cluster), at `now_ms` or just
    /// above the limit, whichever is later. Returns the oracle and the first window limit,
    /// which the caller must persist and then acknowledge with `on_window_persisted`.
    pub fn start(persisted_limit_ms: u64, now_ms: u64) -> (Tso, u64) {
        if planted::active(PlantedBug::TsoFromWallClock) {
            return Tso::start_from_wall_clock(persisted_limit_ms, now_ms);
        }
        let physical_ms = now_ms.max(persisted_limit_ms + 1);
        let limit = physical_ms + WINDOW_MS;
        let tso = Tso {
            physical_ms,
            logical: 0,
            persisted_limit_ms: persisted_limit_ms.min(physical_ms),
            requested_limit_ms: Some(limit),
        };
        (tso, limit)
    }

    /// The planted bug `TsoFromWallClock` (simulation only): the oracle starts at the wall
    /// clock and treats the old window as usable, so after a clock jump back it hands out
    /// timestamps below the previous leader's.
    fn start_from_wall_clock(persisted_limit_ms: u64, now_ms: u64) -> (Tso, u64) {
        let limit = (now_ms + WINDOW_MS).max(persisted_limit_ms + 1);
        let tso = Tso {
            physical_ms: now_ms,
            logical: 0,
            persisted_limit_ms,
            requested_limit_ms: Some(limit),
        };
        (tso, limit)
    }

    /// Moves physical time forward to `now_ms` if the wall clock advanced (it never moves
    /// back), and asks for a new window limit when the current one is near. Call every tick.
    pub fn update(&mut self, now_ms: u64) -> Option<u64> {
        let usable = self.persisted_limit_ms;
        let logical_half_spent = self.logical > LOGICAL_MAX / 2;
        let target = if now_ms > self.physical_ms {
            now_ms
        } else {
            self.physical_ms + 1
        };
        if (now_ms > self.physical_ms || logical_half_spent) && target < usable {
            self.physical_ms = target;
            self.logical = 0;
        }
        let wanted = self.physical_ms.max(now_ms) + WINDOW_MS;
        let near_limit = self.persisted_limit_ms < self.physical_ms.max(now_ms) + WINDOW_MS / 3;
        if near_limit
            && self
                .requested_limit_ms
                .is_none_or(|requested| requested < wanted)
        {
            self.requested_limit_ms = Some(wanted);
            return Some(wanted);
        }
        None
    }

    /// The caller persisted `limit_ms`.
    pub fn on_window_persisted(&mut self, limit_ms: u64) {
        assert!(
            limit_ms >= self.persisted_limit_ms,
            "window limit moved backwards"
        );
        self.persisted_limit_ms = limit_ms;
        if self
            .requested_limit_ms
            .is_some_and(|requested| requested <= limit_ms)
        {
            self.requested_limit_ms = None;
        }
    }

    /// A window limit this oracle asked for was dropped or refused before it applied:
    /// forget the request so the next `update` asks again.
    pub fn on_window_request_lost(&mut self, limit_ms: u64) {
        if self.requested_limit_ms == Some(limit_ms) {
            self.requested_limit_ms = None;
        }
    }

    /// The persisted window limit this oracle knows of.
    pub fn persisted_limit_ms(&self) -> u64 {
        self.persisted_limit_ms
    }

    /// Hands out `count` consecutive timestamps; returns the largest.
    pub fn allocate(&mut self, count: u64) -> Result<TimeStamp, TsoError> {
        if count == 0 || count > BATCH_MAX {
            return Err(TsoError::InvalidCount { count });
        }
        if self.physical_ms >= self.persisted_limit_ms {
            return Err(TsoError::WindowNotPersisted);
        }
        if self.logical + count > LOGICAL_MAX {
            return Err(TsoError::LogicalExhausted);
        }
        self.logical += count;
        Ok(TimeStamp::compose(self.physical_ms, self.logical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(persisted: u64, now: u64) -> Tso {
        let (mut tso, limit) = Tso::start(persisted, now);
        tso.on_window_persisted(limit);
        tso
    }

    #[test]
    fn timestamps_strictly_increase() {
        let mut tso = started(0, 1_000);
        let mut last = TimeStamp::ZERO;
        for round in 0..50u64 {
            tso.update(1_000 + round / 3);
            let ts = tso.allocate(1 + round % 5).unwrap();
            assert!(ts > last, "{ts:?} after {last:?}");
            last = ts;
        }
    }

    #[test]
    fn nothing_before_the_window_is_persisted() {
        let (mut tso, limit) = Tso::start(0, 1_000);
        assert_eq!(tso.allocate(1), Err(TsoError::WindowNotPersisted));
        tso.on_window_persisted(limit);
        assert!(tso.allocate(1).is_ok());
    }

    #[test]
    fn restart_never_repeats_even_if_the_clock_went_back() {
        let mut first = started(0, 5_000);
        let before = first.allocate(10).unwrap();
        let persisted = first.persisted_limit_ms;
        let mut second = started(persisted, 1_000);
        let after = second.allocate(1).unwrap();
        assert!(after > before);
        assert!(after.physical_ms() > persisted);
    }

    #[test]
    fn backwards_wall_clock_does_not_move_time_back() {
        let mut tso = started(0, 10_000);
        let a = tso.allocate(1).unwrap();
        tso.update(9_000);
        let b = tso.allocate(1).unwrap();
        assert!(b > a);
    }

    #[test]
    fn window_is_extended_before_it_runs_out() {
        let mut tso = started(0, 1_000);
        let request = tso
            .update(1_000 + WINDOW_MS - 100)
            .expect("asks for a new window");
        assert!(request > 1_000 + WINDOW_MS);
        assert_eq!(tso.update(1_000 + WINDOW_MS - 100), None, "asks once");
        tso.on_window_persisted(request);
        tso.update(1_000 + WINDOW_MS + 10);
        assert!(tso.allocate(1).unwrap().physical_ms() >= 1_000 + WINDOW_MS + 10);
    }

    #[test]
    fn logical_exhaustion_and_bad_counts_are_typed_errors() {
        let mut tso = started(0, 1_000);
        assert_eq!(tso.allocate(0), Err(TsoError::InvalidCount { count: 0 }));
        assert_eq!(
            tso.allocate(BATCH_MAX + 1),
            Err(TsoError::InvalidCount {
                count: BATCH_MAX + 1
            })
        );
        while tso.allocate(BATCH_MAX).is_ok() {}
        assert_eq!(tso.allocate(BATCH_MAX), Err(TsoError::LogicalExhausted));
        tso.update(1_000);
        assert!(
            tso.allocate(1).is_ok(),
            "an update moves to the next millisecond"
        );
    }

    #[test]
    fn a_lost_window_request_is_asked_again() {
        let mut tso = started(0, 1_000);
        let near_end = 1_000 + WINDOW_MS - 100;
        let request = tso.update(near_end).expect("asks for a new window");
        assert_eq!(tso.update(near_end), None, "one request in flight");
        tso.on_window_request_lost(request);
        assert_eq!(tso.update(near_end), Some(request), "asked again");
        tso.on_window_request_lost(request + 1);
        assert_eq!(
            tso.update(near_end),
            None,
            "another limit's loss changes nothing"
        );
        assert_eq!(tso.persisted_limit_ms(), 1_000 + WINDOW_MS);
    }
}
