//! Clock faults. Wall clocks jump and drift (TTLs, timestamps). Monotonic clocks, the ones
//! ticks and leases use, run at their own rate within the drift bound the lease tolerates
//! (`RaftConfig::max_clock_drift_permille`: each node stays within half of it of real time,
//! so any two differ by at most the bound), and jump forward (a resumed VM catching up).

use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};

use super::{secs, Fault, Nemesis};

/// Pairwise monotonic drift the lease tolerates, in permille (the server default).
pub const DRIFT_BOUND_PERMILLE: u64 = 50;

/// A clock rate within half the drift bound of real time, in parts per million.
pub fn rate_within_bound(rng: &mut SeededRng) -> u64 {
    let half = DRIFT_BOUND_PERMILLE * 1000 / 2;
    rng.range(1_000_000 - half, 1_000_000 + half + 1)
}

impl Nemesis {
    /// Jumps one store's wall clock, or lets it drift, for a while; then takes back exactly
    /// the skew it added (another wall-clock fault on the same store keeps its own, and the
    /// monotonic rate is not this fault's to touch).
    pub(super) async fn wall_clock(&self, rng: &mut SeededRng) {
        let stores = self.healthy_stores();
        let id = stores[rng.below(stores.len() as u64) as usize];
        let clock = self.cluster.store(id).clock.clone();
        let sign = if rng.ratio(1, 2) { 1 } else { -1 };
        let span = secs(rng, 2, 8);
        self.count(Fault::WallClock);
        let mut added_ms = 0;
        if rng.ratio(1, 2) {
            let jump = rng.range(100, 10_000) as i64 * sign;
            self.note(format!("store {id} wall clock jumps {jump} ms"));
            clock.skew_wall_clock(jump);
            added_ms += jump;
            tokio::time::sleep(span).await;
        } else {
            let per_step = rng.range(1, 50) as i64 * sign;
            self.note(format!(
                "store {id} wall clock drifts {per_step} ms per 100 ms"
            ));
            for _ in 0..span.as_millis() / 100 {
                clock.skew_wall_clock(per_step);
                added_ms += per_step;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        clock.skew_wall_clock(-added_ms);
        self.note(format!(
            "store {id} wall clock corrected (its {added_ms} ms skew taken back)"
        ));
    }

    /// Runs one store's monotonic clock at another rate within the bound for a while, then
    /// puts back the rate it found (one drift per store at a time; wall-clock skew and
    /// jumps are other faults' business).
    pub(super) async fn clock_drift(&self, rng: &mut SeededRng) {
        let stores = self.healthy_stores();
        let id = stores[rng.below(stores.len() as u64) as usize];
        if !self.state.lock().expect("nemesis lock").drifting.insert(id) {
            return self.noop(format!("clock drift: store {id} already drifts"));
        }
        let clock = self.cluster.store(id).clock.clone();
        let found = clock.rate_ppm();
        let rate = rate_within_bound(rng);
        self.count(Fault::ClockDrift);
        self.note(format!(
            "store {id} monotonic clock runs at {rate} ppm (was {found})"
        ));
        clock.set_rate_ppm(rate);
        tokio::time::sleep(secs(rng, 3, 15)).await;
        clock.set_rate_ppm(found);
        self.state
            .lock()
            .expect("nemesis lock")
            .drifting
            .remove(&id);
        self.note(format!("store {id} monotonic clock back to {found} ppm"));
    }

    /// Jumps one store's monotonic clock forward (nothing to restore: clocks never go back).
    pub(super) async fn monotonic_jump(&self, rng: &mut SeededRng) {
        let stores = self.healthy_stores();
        let id = stores[rng.below(stores.len() as u64) as usize];
        let jump = Duration::from_millis(rng.range(100, 5000));
        self.count(Fault::MonotonicJump);
        self.note(format!("store {id} monotonic clock jumps {jump:?} forward"));
        self.cluster.store(id).clock.jump(jump);
    }
}
