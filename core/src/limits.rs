//! Every bound in one place. Each queue, batch, scan and message has a named maximum here;
//! when a bound is hit the system answers `ServerIsBusy` or a typed error instead of growing
//! memory. Relations between bounds are checked at compile time below.

/// Largest user key, in bytes.
pub const KEY_BYTES_MAX: usize = 8 * 1024;
/// Largest user value, in bytes.
pub const VALUE_BYTES_MAX: usize = 6 * 1024 * 1024;
/// Largest Raft entry (one proposal), in bytes.
pub const RAFT_ENTRY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest gRPC message either way, in bytes.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Most keys in one batch request (batch get/put/delete).
pub const BATCH_KEYS_MAX: usize = 10_240;
/// Largest sum of key and value bytes in one batch request.
pub const BATCH_BYTES_MAX: usize = RAFT_ENTRY_BYTES_MAX - 64 * 1024;
/// Most pairs one engine scan may return.
pub const ENGINE_SCAN_KEYS_MAX: usize = 100_000;
/// Most pairs one client scan request may ask for.
pub const SCAN_LIMIT_MAX: usize = 10_240;
/// Most ranges in one batch scan request.
pub const BATCH_SCAN_RANGES_MAX: usize = 256;
/// Bytes of Raft log entries fetched in one read.
pub const RAFT_LOG_FETCH_BYTES_MAX: u64 = 4 * 1024 * 1024;

const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX < RAFT_ENTRY_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX < RAFT_ENTRY_BYTES_MAX);
const _: () = assert!(RAFT_ENTRY_BYTES_MAX < GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(SCAN_LIMIT_MAX <= ENGINE_SCAN_KEYS_MAX);
const _: () = assert!(BATCH_KEYS_MAX <= ENGINE_SCAN_KEYS_MAX);
