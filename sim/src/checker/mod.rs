//! Checkers: linearizability of single-key raw operations, region tiling, replica
//! convergence, and real-time order of PD timestamps (`tso`). Each has self-tests with
//! hand-built bad inputs it must reject.

pub mod linearizability;
pub mod regions;
pub mod tso;
