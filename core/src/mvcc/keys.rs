//! Where transactional data lives in the engine, and why it never meets raw data.
//!
//! - **Inputs**: raw user keys (as a client sends them) and timestamps.
//! - **Outputs**: storage keys for the three data column families, and back.
//! - **Invariants**: every transactional key in every column family starts with
//!   [`TXN_KEY_PREFIX`], so all of it lies in `[TXN_KEY_PREFIX, TXN_KEY_PREFIX + 1)`; user-key
//!   order equals storage-key order; all versions of one user key are contiguous, newest first.
//!
//! ```text
//! CF lock:    'x' ++ encode_bytes(user_key)                 -> Lock
//! CF write:   'x' ++ encode_bytes(user_key) ++ !commit_ts   -> Write (a Rollback at !start_ts)
//! CF default: 'x' ++ encode_bytes(user_key) ++ !start_ts    -> value longer than 255 bytes
//! ```
//!
//! **Raw data never meets it.** Raw KV keeps its pairs in a column family of its own (CF
//! raw, keys as the client sends them), so CF default, lock and write hold only
//! transactional records and no raw key can land on an MVCC key. The prefix stays: it gives
//! the transactional layer a key space no MVCC read or write ever leaves (scans are clipped
//! to it, [`storage_range`]), and `'x'` is the byte TiKV's API V2 uses for its
//! transactional key space, so the layout lines up with V2 if we adopt it.
//!
//! **Regions.** tikv-client's transactional API looks regions up by `encode_bytes(key)`, so a
//! region serving transactions has memcomparable-encoded boundaries `[s, e)`; its
//! transactional data is exactly `['x' ++ s, 'x' ++ e)` (or up to `'y'` when `e` is empty) in
//! each transactional CF: see [`region_storage_range`]; `raft::storage::region_data_ranges`
//! lists it beside the raw range for snapshots, hashes, destruction and the apply check.

use crate::types::codec::{self, encode_bytes_into, encoded_len, CodecError, TS_BYTES};
use crate::types::{KeyRange, TimeStamp};

/// First byte of every transactional key in every data column family.
pub const TXN_KEY_PREFIX: u8 = b'x';

/// Length of the lock key of a `user_key_len`-byte key.
pub const fn lock_key_len(user_key_len: usize) -> usize {
    1 + encoded_len(user_key_len)
}

/// The CF lock key of `user_key`; also the start of all its versions in CF write/default.
pub fn lock_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lock_key_len(user_key.len()) + TS_BYTES);
    out.push(TXN_KEY_PREFIX);
    encode_bytes_into(user_key, &mut out);
    out
}

/// The CF write/default key of `user_key` at `ts`: newer timestamps sort first.
pub fn version_key(user_key: &[u8], ts: TimeStamp) -> Vec<u8> {
    let mut out = lock_key(user_key);
    codec::append_ts(&mut out, ts);
    out
}

/// An exclusive end above every version of `user_key` and below every other user key.
pub fn versions_end(user_key: &[u8]) -> Vec<u8> {
    let mut out = version_key(user_key, TimeStamp::ZERO);
    out.push(0);
    out
}

/// The range holding every version of `user_key` with a timestamp ≤ `ts`.
pub fn versions_at_or_below(user_key: &[u8], ts: TimeStamp) -> KeyRange {
    KeyRange::new(version_key(user_key, ts), versions_end(user_key))
}

fn strip_prefix(stored: &[u8]) -> Result<&[u8], CodecError> {
    match stored.split_first() {
        Some((&TXN_KEY_PREFIX, rest)) => Ok(rest),
        Some((&marker, _)) => Err(CodecError::BadMarker { offset: 0, marker }),
        None => Err(CodecError::UnexpectedEnd { offset: 0 }),
    }
}

/// The user key of a CF lock key.
pub fn decode_lock_key(stored: &[u8]) -> Result<Vec<u8>, CodecError> {
    let encoded = strip_prefix(stored)?;
    let (user_key, used) = codec::decode_bytes(encoded)?;
    if used != encoded.len() {
        return Err(CodecError::UnexpectedEnd { offset: used + 1 });
    }
    Ok(user_key)
}

/// The user key and timestamp of a CF write/default key.
pub fn decode_version_key(stored: &[u8]) -> Result<(Vec<u8>, TimeStamp), CodecError> {
    codec::decode_mvcc_key(strip_prefix(stored)?)
}

/// The timestamp of a CF write/default key, without decoding the user key.
pub fn version_ts(stored: &[u8]) -> Result<TimeStamp, CodecError> {
    Ok(codec::split_ts(stored)?.1)
}

/// The lock-key part of a CF write/default key (the key without its timestamp).
pub fn version_key_prefix(stored: &[u8]) -> Result<&[u8], CodecError> {
    Ok(codec::split_ts(stored)?.0)
}

/// The end of the whole transactional key space.
pub fn txn_space_end() -> Vec<u8> {
    vec![TXN_KEY_PREFIX + 1]
}

/// The storage range, in every data CF, of the user keys in `user_range`.
pub fn storage_range(user_range: &KeyRange) -> KeyRange {
    let start = lock_key(&user_range.start);
    let end = if user_range.end.is_empty() {
        txn_space_end()
    } else {
        lock_key(&user_range.end)
    };
    KeyRange::new(start, end)
}

/// The storage range of a region whose boundaries are already memcomparable-encoded (as the
/// transactional client sees regions): the prefix in front of each bound.
pub fn region_storage_range(encoded_region: &KeyRange) -> KeyRange {
    let mut start = vec![TXN_KEY_PREFIX];
    start.extend_from_slice(&encoded_region.start);
    let end = if encoded_region.end.is_empty() {
        txn_space_end()
    } else {
        let mut end = vec![TXN_KEY_PREFIX];
        end.extend_from_slice(&encoded_region.end);
        end
    };
    KeyRange::new(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_key_is_in_the_txn_space() {
        let space = KeyRange::new(vec![TXN_KEY_PREFIX], txn_space_end());
        for user_key in [&b""[..], b"a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff"] {
            assert!(space.contains(&lock_key(user_key)));
            assert!(space.contains(&version_key(user_key, TimeStamp::MAX)));
            assert!(space.contains(&versions_end(user_key)));
        }
        assert_eq!(lock_key(b"")[0], b'x');
    }

    #[test]
    fn garbage_keys_are_errors() {
        assert!(decode_lock_key(b"").is_err());
        assert!(decode_lock_key(b"rabc").is_err());
        assert!(decode_version_key(b"x12").is_err());
        let mut trailing = lock_key(b"k");
        trailing.push(1);
        assert!(decode_lock_key(&trailing).is_err());
    }

    #[test]
    fn region_range_prefixes_encoded_bounds() {
        let encoded = KeyRange::new(codec::encode_bytes(b"b"), codec::encode_bytes(b"d"));
        let range = region_storage_range(&encoded);
        assert!(range.contains(&version_key(b"c", TimeStamp(5))));
        assert!(range.contains(&lock_key(b"b")));
        assert!(!range.contains(&lock_key(b"d")));
        assert!(!range.contains(&versions_end(b"a")));
        let all = region_storage_range(&KeyRange::all());
        assert_eq!(all, KeyRange::new(vec![b'x'], vec![b'y']));
    }

    proptest! {
        #[test]
        fn roundtrip_and_order(a in proptest::collection::vec(any::<u8>(), 0..20),
                               b in proptest::collection::vec(any::<u8>(), 0..20),
                               ts in any::<u64>()) {
            prop_assert_eq!(decode_lock_key(&lock_key(&a)).unwrap(), a.clone());
            let version = version_key(&a, TimeStamp(ts));
            prop_assert_eq!(decode_version_key(&version).unwrap(), (a.clone(), TimeStamp(ts)));
            prop_assert_eq!(version_ts(&version).unwrap(), TimeStamp(ts));
            prop_assert_eq!(version_key_prefix(&version).unwrap(), &lock_key(&a)[..]);
            prop_assert_eq!(a.cmp(&b), lock_key(&a).cmp(&lock_key(&b)));
            // All versions of a lie between lock_key(a) and versions_end(a), and no key of b.
            prop_assert!(lock_key(&a) <= version && version < versions_end(&a));
            if a != b {
                let b_version = version_key(&b, TimeStamp(ts));
                let inside = lock_key(&a) <= b_version && b_version < versions_end(&a);
                prop_assert!(!inside);
            }
        }

        #[test]
        fn storage_range_keeps_membership(start in proptest::collection::vec(any::<u8>(), 0..6),
                                          len in 0..6usize,
                                          key in proptest::collection::vec(any::<u8>(), 0..8),
                                          ts in any::<u64>()) {
            let end = if len == 0 { vec![] } else { [start.clone(), vec![0xff; len]].concat() };
            let user = KeyRange::new(start, end);
            let stored = storage_range(&user);
            prop_assert_eq!(user.contains(&key), stored.contains(&lock_key(&key)));
            let version = version_key(&key, TimeStamp(ts));
            prop_assert_eq!(user.contains(&key), stored.contains(&version));
        }
    }
}
