//! The memcomparable codec: decoding arbitrary bytes never panics, encoding round-trips,
//! and encoding preserves order.
#![no_main]

use ferrokv_core::types::codec::{decode_bytes, decode_mvcc_key, encode_bytes, mvcc_key};
use ferrokv_core::types::TimeStamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_bytes(data);
    let _ = decode_mvcc_key(data);
    let (left, right) = data.split_at(data.len() / 2);
    let encoded = encode_bytes(left);
    let (decoded, used) = decode_bytes(&encoded).expect("own encoding decodes");
    assert_eq!(decoded, left);
    assert_eq!(used, encoded.len());
    assert_eq!(left.cmp(right), encoded.cmp(&encode_bytes(right)));
    let ts = TimeStamp(u64::from(data.len() as u32) * 7919);
    assert_eq!(decode_mvcc_key(&mvcc_key(left, ts)).expect("decodes"), (left.to_vec(), ts));
});
