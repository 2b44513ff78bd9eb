//! The memcomparable codec and the MVCC key layout: decoding arbitrary bytes never panics,
//! encoding round-trips, and encoding preserves order.
#![no_main]

use ferrokv_core::mvcc::keys::{decode_lock_key, decode_version_key, lock_key, version_key};
use ferrokv_core::types::codec::{decode_bytes, decode_mvcc_key, encode_bytes, mvcc_key};
use ferrokv_core::types::TimeStamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_bytes(data);
    let _ = decode_mvcc_key(data);
    let _ = decode_lock_key(data);
    let _ = decode_version_key(data);
    let (left, right) = data.split_at(data.len() / 2);
    let encoded = encode_bytes(left);
    let (decoded, used) = decode_bytes(&encoded).expect("own encoding decodes");
    assert_eq!(decoded, left);
    assert_eq!(used, encoded.len());
    assert_eq!(left.cmp(right), encoded.cmp(&encode_bytes(right)));
    let ts = TimeStamp(u64::from(data.len() as u32) * 7919);
    assert_eq!(
        decode_mvcc_key(&mvcc_key(left, ts)).expect("decodes"),
        (left.to_vec(), ts)
    );
    assert_eq!(decode_lock_key(&lock_key(left)).expect("decodes"), left);
    assert_eq!(
        decode_version_key(&version_key(left, ts)).expect("decodes"),
        (left.to_vec(), ts)
    );
    // Versions of one key sort newest first; keys sort by user key before timestamp.
    let older = TimeStamp(ts.0.saturating_sub(1));
    if older < ts {
        assert!(version_key(left, ts) < version_key(left, older));
    }
    if left < right {
        assert!(version_key(left, TimeStamp(0)) < version_key(right, TimeStamp(u64::MAX)));
    }
});
