//! The runtime's clocks as a `Clock`. Under madsim both are virtual and seeded.
//!
//! The monotonic clock can run at its own rate and jump forward (`ClockControl`), as a real
//! machine's can within its oscillator's tolerance; the simulator uses that to drift nodes
//! apart, which is what makes a lease bug visible. The node loop converts its deadlines to
//! runtime sleeps with `runtime_until`, so its ticks follow the drifting clock. In
//! production the rate is exactly 1 and nothing jumps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrokv_core::env::{Clock, Instant};

/// Rate and jumps of one node's monotonic clock, shared by every clone of its clock.
#[derive(Debug)]
struct Monotonic {
    /// Runtime instant and node-clock nanoseconds at the last rate change.
    anchor_runtime: tokio::time::Instant,
    anchor_nanos: u64,
    /// Clock rate in parts per million of real time (1_000_000 = exact).
    rate_ppm: u64,
}

impl Monotonic {
    fn nanos_at(&self, runtime: tokio::time::Instant) -> u64 {
        let elapsed = runtime
            .saturating_duration_since(self.anchor_runtime)
            .as_nanos();
        let scaled = elapsed * u128::from(self.rate_ppm) / 1_000_000;
        self.anchor_nanos
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// Monotonic time since the clock was made (at an adjustable rate), plus the wall clock with
/// an adjustable skew (zero in production; the simulator jumps it).
#[derive(Clone, Debug)]
pub struct RuntimeClock {
    monotonic: Arc<Mutex<Monotonic>>,
    skew_ms: Arc<AtomicI64>,
}

/// The knobs of a `RuntimeClock`, for the simulator's nemesis.
#[derive(Clone, Debug)]
pub struct ClockControl {
    clock: RuntimeClock,
}

impl RuntimeClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> RuntimeClock {
        RuntimeClock::with_skew(Arc::new(AtomicI64::new(0)))
    }

    /// A clock whose wall-clock readings are offset by the shared `skew_ms`.
    pub fn with_skew(skew_ms: Arc<AtomicI64>) -> RuntimeClock {
        let monotonic = Monotonic {
            anchor_runtime: tokio::time::Instant::now(),
            anchor_nanos: 0,
            rate_ppm: 1_000_000,
        };
        RuntimeClock {
            monotonic: Arc::new(Mutex::new(monotonic)),
            skew_ms,
        }
    }

    /// The handle that changes this clock's rate and makes it jump.
    pub fn control(&self) -> ClockControl {
        ClockControl {
            clock: self.clone(),
        }
    }

    /// How long the runtime must sleep until this clock reads `deadline`.
    pub fn runtime_until(&self, deadline: Instant) -> Duration {
        let monotonic = self.monotonic.lock().expect("clock lock");
        let now = monotonic.nanos_at(tokio::time::Instant::now());
        let ahead = deadline.nanos.saturating_sub(now);
        let runtime = u128::from(ahead) * 1_000_000 / u128::from(monotonic.rate_ppm.max(1));
        Duration::from_nanos(u64::try_from(runtime).unwrap_or(u64::MAX)) + Duration::from_nanos(1)
    }
}

impl ClockControl {
    /// Runs the monotonic clock at `rate_ppm` parts per million of real time from now on.
    pub fn set_rate_ppm(&self, rate_ppm: u64) {
        assert!(rate_ppm > 0, "a clock must move forward");
        let mut monotonic = self.clock.monotonic.lock().expect("clock lock");
        let now = tokio::time::Instant::now();
        monotonic.anchor_nanos = monotonic.nanos_at(now);
        monotonic.anchor_runtime = now;
        monotonic.rate_ppm = rate_ppm;
    }

    /// The monotonic clock's rate in parts per million of real time.
    pub fn rate_ppm(&self) -> u64 {
        self.clock.monotonic.lock().expect("clock lock").rate_ppm
    }

    /// Moves the monotonic clock forward by `by` at once.
    pub fn jump(&self, by: Duration) {
        let mut monotonic = self.clock.monotonic.lock().expect("clock lock");
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        monotonic.anchor_nanos = monotonic.anchor_nanos.saturating_add(nanos);
    }

    /// Shifts the wall clock by `delta_ms` (either sign).
    pub fn skew_wall_clock(&self, delta_ms: i64) {
        self.clock.skew_ms.fetch_add(delta_ms, Ordering::Relaxed);
    }

    /// Resets the wall-clock skew and the monotonic rate (jumps stay: clocks never go back).
    pub fn correct(&self) {
        self.clock.skew_ms.store(0, Ordering::Relaxed);
        self.set_rate_ppm(1_000_000);
    }
}

impl Default for RuntimeClock {
    fn default() -> Self {
        RuntimeClock::new()
    }
}

impl Clock for RuntimeClock {
    fn now(&self) -> Instant {
        let monotonic = self.monotonic.lock().expect("clock lock");
        Instant::from_nanos(monotonic.nanos_at(tokio::time::Instant::now()))
    }

    fn realtime_ms(&self) -> u64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let real = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        real.saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }
}
