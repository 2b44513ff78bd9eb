//! Time as an input. The core never reads a clock itself; drivers pass one in.

use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A point on a node's monotonic clock, in nanoseconds since an arbitrary origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant {
    /// Nanoseconds since the clock's origin.
    pub nanos: u64,
}

impl Instant {
    /// The instant `nanos` after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    /// Time since `earlier`, zero if `earlier` is later (clocks never run backwards, but
    /// callers may compare instants from different moments in either order).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).expect("duration fits in u64 nanoseconds");
        Instant {
            nanos: self.nanos.checked_add(nanos).expect("instant overflow"),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        assert!(self >= rhs, "instant subtraction underflow");
        Duration::from_nanos(self.nanos - rhs.nanos)
    }
}

/// A node's clocks.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time for ticks, leases and timeouts. Never goes backwards.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch, for TSO and TTLs. May jump either way.
    fn realtime_ms(&self) -> u64;
}

/// A clock that only moves when told to; for tests and the L1 harness.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    realtime_offset_ms: AtomicU64,
}

impl ManualClock {
    /// A clock at monotonic zero whose wall clock reads `realtime_ms` there.
    pub fn new(realtime_ms: u64) -> ManualClock {
        ManualClock {
            nanos: AtomicU64::new(0),
            realtime_offset_ms: AtomicU64::new(realtime_ms),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).expect("duration fits in u64 nanoseconds");
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Jumps the wall clock by `delta_ms` (either sign) without moving monotonic time.
    pub fn jump_realtime(&self, delta_ms: i64) {
        let offset = self.realtime_offset_ms.load(Ordering::SeqCst);
        let moved = offset
            .checked_add_signed(delta_ms)
            .expect("wall clock stays positive");
        self.realtime_offset_ms.store(moved, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn realtime_ms(&self) -> u64 {
        self.realtime_offset_ms.load(Ordering::SeqCst) + self.now().nanos / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now(), Instant::from_nanos(0));
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now().nanos, 5_000_000);
        assert_eq!(clock.realtime_ms(), 1_005);
        clock.jump_realtime(-500);
        assert_eq!(clock.realtime_ms(), 505);
        assert_eq!(
            clock.now().nanos,
            5_000_000,
            "a wall-clock jump leaves monotonic time alone"
        );
    }

    #[test]
    fn instant_arithmetic() {
        let start = Instant::from_nanos(100);
        let later = start + Duration::from_nanos(50);
        assert_eq!(later - start, Duration::from_nanos(50));
        assert_eq!(start.saturating_since(later), Duration::ZERO);
    }
}
