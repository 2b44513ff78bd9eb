//! The runtime's clocks as a `Clock`. Under madsim both are virtual and seeded.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrokv_core::env::{Clock, Instant};

/// Monotonic time since the clock was made, plus the wall clock with an adjustable skew
/// (zero in production; the simulator jumps it).
#[derive(Clone, Debug)]
pub struct RuntimeClock {
    origin: tokio::time::Instant,
    skew_ms: Arc<AtomicI64>,
}

impl RuntimeClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> RuntimeClock {
        RuntimeClock::with_skew(Arc::new(AtomicI64::new(0)))
    }

    /// A clock whose wall-clock readings are offset by the shared `skew_ms`.
    pub fn with_skew(skew_ms: Arc<AtomicI64>) -> RuntimeClock {
        RuntimeClock {
            origin: tokio::time::Instant::now(),
            skew_ms,
        }
    }
}

impl Default for RuntimeClock {
    fn default() -> Self {
        RuntimeClock::new()
    }
}

impl Clock for RuntimeClock {
    fn now(&self) -> Instant {
        let elapsed = tokio::time::Instant::now().duration_since(self.origin);
        Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    fn realtime_ms(&self) -> u64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let real = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        real.saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }
}
