//! Raw (non-transactional) key-value semantics: value encoding with TTL, and read evaluation
//! over an engine snapshot. Writes are replicated as `WriteOp`s and applied by `raft::apply`.

mod read;
pub mod value;

pub use read::{execute_read, RawRead, RawReadResult};
