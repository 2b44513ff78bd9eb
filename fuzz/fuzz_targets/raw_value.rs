//! Raw values with and without TTL: decoding arbitrary stored bytes gives a value or a
//! typed Corruption error, never a panic, and whatever decodes re-encodes to the same bytes.
#![no_main]

use ferrokv_core::env::EngineError;
use ferrokv_core::raw::value::{decode, encode, live_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(raw) => {
            assert_eq!(encode(&raw.value, raw.expire_ms), data, "decoding is exact");
            let now = raw.expire_ms.unwrap_or(0);
            assert_eq!(
                live_value(Some(data), now).expect("decodes").is_some(),
                raw.is_live(now)
            );
            if let Some(expire) = raw.expire_ms {
                assert!(!raw.is_live(expire), "a value is dead at its expiry");
                assert!(raw.ttl_seconds(expire.saturating_sub(1)) <= 1);
            }
        }
        Err(EngineError::Corruption(_)) => assert!(live_value(Some(data), 0).is_err()),
        Err(other) => panic!("decoding gave a non-corruption error: {other}"),
    }
    let (value, expire) = data.split_at(data.len().saturating_sub(8));
    let expire = (expire.len() == 8).then(|| u64::from_be_bytes(expire.try_into().expect("8")));
    let stored = encode(value, expire);
    let raw = decode(&stored).expect("own encoding decodes");
    assert_eq!((raw.value.as_slice(), raw.expire_ms), (value, expire));
});
