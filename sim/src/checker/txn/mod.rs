//! Transaction-history checkers for snapshot-isolation testing, driven by the VOPR's
//! transactional workloads (`crate::vopr::txn_workload`).
//!
//! * [`list_append`]: an Elle-style dependency-graph checker for list-append histories
//!   (G0, G1a/b/c, G-single, G-nonadjacent, G2, lost update, ...).
//! * [`bank`]: a bank-workload checker (constant total, provenance of every observed
//!   balance, non-negativity, fractured reads, lost updates).
//! * [`oracle`]: the exact timestamp oracle (every read returns exactly the versions
//!   committed below its start_ts).
//!
//! Both are deterministic (no hashing, no clocks) and self-tested on hand-built histories.

pub mod bank;
pub mod list_append;
pub mod oracle;
