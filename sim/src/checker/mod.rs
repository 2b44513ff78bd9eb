//! Checkers: linearizability of single-key raw operations, region tiling, and replica
//! convergence. Each has self-tests with hand-built bad inputs it must reject.

pub mod linearizability;
pub mod regions;
