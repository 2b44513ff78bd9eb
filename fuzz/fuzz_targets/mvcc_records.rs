//! MVCC lock and write records read from disk: arbitrary bytes decode to a record or a
//! typed error, never a panic; a decoded record re-encodes to bytes that decode to itself.
#![no_main]

use ferrokv_core::mvcc::{Lock, Write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lock) = Lock::decode(data) {
        assert_eq!(
            Lock::decode(&lock.encode()).expect("re-encoded lock decodes"),
            lock
        );
        let _ = lock.to_lock_info(b"key");
    }
    if let Ok(write) = Write::decode(data) {
        assert_eq!(
            Write::decode(&write.encode()).expect("re-encoded write decodes"),
            write
        );
    }
});
