//! Checkers: linearizability of single-key raw operations, region tiling, replica
//! convergence, real-time order of PD timestamps (`tso`), and peers and leaders spread
//! over the stores once PD settled (`balance`). Each has self-tests with
//! hand-built bad inputs it must reject.

pub mod balance;
pub mod linearizability;
pub mod regions;
pub mod tso;
pub mod txn;
