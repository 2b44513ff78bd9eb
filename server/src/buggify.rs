//! `buggify!()`: FoundationDB's BUGGIFY. True with probability 1/4 at fault points in
//! production code, but only under simulation and only when the run enabled it; always
//! false in a normal build. The `cfg` switch lives here, never in the logic that uses it.
//!
//! The switch is per thread: a madsim runtime runs on one thread, so parallel seeds in one
//! process do not leak into each other. It is separate from madsim's own buggify, which
//! also delays 10% of simulated network sends by seconds; the nemesis turns that on only
//! for "slow network" windows.

#[cfg(madsim)]
thread_local! {
    static ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns FerroKV's fault points on or off for this simulation thread.
#[cfg(madsim)]
pub fn set_enabled(enabled: bool) {
    ENABLED.with(|flag| flag.set(enabled));
}

/// One roll of the dice: 1 in 4 when enabled.
#[cfg(madsim)]
pub fn fire() -> bool {
    use madsim::rand::Rng as _;
    ENABLED.with(|flag| flag.get()) && madsim::rand::thread_rng().gen_ratio(1, 4)
}

/// Outside simulation fault points never fire.
#[cfg(not(madsim))]
pub fn fire() -> bool {
    false
}

/// True rarely, under simulation only.
macro_rules! buggify {
    () => {
        $crate::buggify::fire()
    };
}
