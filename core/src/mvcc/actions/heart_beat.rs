//! TxnHeartBeat (TiKV `commands/txn_heart_beat.rs`): keeps a long transaction's primary lock
//! alive.
//!
//! - **Inputs**: the transaction's buffer (its start_ts), a reader, the primary key, the TTL
//!   the client would like.
//! - **Outputs**: the lock's TTL after the call; the lock rewritten if the TTL grew.
//! - **Invariants**: a TTL never shrinks; only this transaction's lock is touched; no lock
//!   means `TxnNotFound`.

use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;

/// Raises the TTL of this transaction's lock on `primary` to at least `advise_ttl_ms`.
pub fn txn_heart_beat<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    primary: &[u8],
    advise_ttl_ms: u64,
) -> Result<u64> {
    let start_ts = txn.start_ts();
    match reader.load_lock(primary)? {
        Some(mut lock) if lock.ts == start_ts => {
            if lock.ttl_ms < advise_ttl_ms {
                lock.ttl_ms = advise_ttl_ms;
                txn.put_lock(primary, &lock);
            }
            assert!(lock.ttl_ms >= advise_ttl_ms);
            Ok(lock.ttl_ms)
        }
        _ => Err(Error::TxnNotFound {
            start_ts,
            key: primary.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::actions::test_util::TestEnv;

    #[test]
    fn ttl_only_grows() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"p", b"v", b"p", 10);
        let beat = |env: &mut TestEnv, ttl| {
            env.run(10, |txn, reader| txn_heart_beat(txn, reader, b"p", ttl))
        };
        assert_eq!(beat(&mut env, 10_000), Ok(10_000));
        assert_eq!(env.lock(b"p").unwrap().ttl_ms, 10_000);
        assert_eq!(beat(&mut env, 5), Ok(10_000));
        assert_eq!(env.lock(b"p").unwrap().ttl_ms, 10_000);
    }

    #[test]
    fn missing_or_foreign_lock_is_not_found() {
        let mut env = TestEnv::new();
        let beat = |env: &mut TestEnv, ts| {
            env.run(ts, |txn, reader| txn_heart_beat(txn, reader, b"p", 100))
        };
        assert!(matches!(beat(&mut env, 10), Err(Error::TxnNotFound { .. })));
        env.prewrite_put(b"p", b"v", b"p", 10);
        assert!(matches!(beat(&mut env, 11), Err(Error::TxnNotFound { .. })));
    }
}
