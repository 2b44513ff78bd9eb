//! Hybrid timestamps as TSO hands them out: `physical_ms << 18 | logical`.
//!
//! The layout is TiKV's, so timestamps from our PD and from `tikv-client` agree bit for bit.

use std::fmt;

/// Bits of the logical counter below the physical milliseconds.
pub const LOGICAL_BITS: u32 = 18;
/// The largest logical counter value within one millisecond.
pub const LOGICAL_MAX: u64 = (1 << LOGICAL_BITS) - 1;

/// A TSO timestamp.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimeStamp(pub u64);

impl TimeStamp {
    /// The zero timestamp: before every real one.
    pub const ZERO: TimeStamp = TimeStamp(0);
    /// The largest timestamp: reads at MAX see every committed write.
    pub const MAX: TimeStamp = TimeStamp(u64::MAX);

    /// Composes a timestamp; panics if `logical` does not fit its bits or the physical part
    /// would overflow (both are caller bugs).
    pub fn compose(physical_ms: u64, logical: u64) -> TimeStamp {
        assert!(
            logical <= LOGICAL_MAX,
            "logical {logical} exceeds {LOGICAL_MAX}"
        );
        assert!(
            physical_ms < (1 << (64 - LOGICAL_BITS)),
            "physical {physical_ms} overflows"
        );
        TimeStamp((physical_ms << LOGICAL_BITS) | logical)
    }

    /// Milliseconds part.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Logical counter part.
    pub const fn logical(self) -> u64 {
        self.0 & LOGICAL_MAX
    }

    /// The raw integer.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next timestamp; panics at MAX.
    pub fn next(self) -> TimeStamp {
        TimeStamp(self.0.checked_add(1).expect("timestamp overflow"))
    }

    /// The previous timestamp, saturating at zero.
    pub fn prev(self) -> TimeStamp {
        TimeStamp(self.0.saturating_sub(1))
    }
}

impl fmt::Debug for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ts({}:{})", self.physical_ms(), self.logical())
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for TimeStamp {
    fn from(raw: u64) -> Self {
        TimeStamp(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_splits_back() {
        let ts = TimeStamp::compose(1_700_000_000_123, 42);
        assert_eq!(ts.physical_ms(), 1_700_000_000_123);
        assert_eq!(ts.logical(), 42);
        assert_eq!(ts.get(), (1_700_000_000_123 << 18) | 42);
    }

    #[test]
    fn order_follows_physical_then_logical() {
        assert!(TimeStamp::compose(5, LOGICAL_MAX) < TimeStamp::compose(6, 0));
        assert!(TimeStamp::compose(5, 1) < TimeStamp::compose(5, 2));
        assert_eq!(
            TimeStamp::compose(5, LOGICAL_MAX).next(),
            TimeStamp::compose(6, 0)
        );
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn logical_overflow_is_a_bug() {
        let _ = TimeStamp::compose(1, LOGICAL_MAX + 1);
    }

    #[test]
    fn prev_saturates() {
        assert_eq!(TimeStamp::ZERO.prev(), TimeStamp::ZERO);
        assert_eq!(TimeStamp(10).prev(), TimeStamp(9));
    }
}
