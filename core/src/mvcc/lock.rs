//! Percolator lock records, stored in CF `lock` at `keys::lock_key(user_key)`.
//!
//! - **Inputs**: a transaction's prewrite or pessimistic-lock decision; stored bytes.
//! - **Outputs**: the encoded record; the decoded [`Lock`]; the `kvrpcpb::LockInfo` a client
//!   needs to resolve it.
//! - **Invariants**: `ts` is never zero; an inline value is at most [`SHORT_VALUE_BYTES_MAX`];
//!   only async-commit locks carry secondaries; a pessimistic lock carries no value. Encode
//!   asserts them, decode rejects every malformed record with a [`RecordError`].
//!
//! Layout (TiKV `txn_types::Lock`): type byte `P`/`D`/`L`/`S`; primary as compact bytes;
//! start_ts var-u64; ttl_ms var-u64; then optional tagged fields in this order: `v` u8 len +
//! short value; `f` for_update_ts u64 BE; `t` txn_size u64 BE; `c` min_commit_ts u64 BE; `a`
//! var-u64 count + compact-bytes secondaries (async commit); `r` var-u64 count + u64 BE
//! rollback timestamps. Unlike TiKV, an unknown tag is an error: we are the only writer, so
//! it means corruption rather than a newer version.

use ferrokv_proto::kvrpcpb;

use super::encoding::{put_compact_bytes, put_var_u64, Decoder, RecordError};
use crate::types::TimeStamp;

/// Values up to this many bytes live inside the lock or write record; longer ones in CF
/// default at `key@start_ts`.
pub const SHORT_VALUE_BYTES_MAX: usize = 255;

const TAG_SHORT_VALUE: u8 = b'v';
const TAG_FOR_UPDATE_TS: u8 = b'f';
const TAG_TXN_SIZE: u8 = b't';
const TAG_MIN_COMMIT_TS: u8 = b'c';
const TAG_ASYNC_COMMIT: u8 = b'a';
const TAG_ROLLBACK_TS: u8 = b'r';

/// What a lock will become when committed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockType {
    /// A prewritten put.
    Put,
    /// A prewritten delete.
    Delete,
    /// A prewritten read lock (commits to a `Lock` write record).
    Lock,
    /// A pessimistic lock taken before prewrite; never committed itself.
    Pessimistic,
}

impl LockType {
    fn to_byte(self) -> u8 {
        match self {
            LockType::Put => b'P',
            LockType::Delete => b'D',
            LockType::Lock => b'L',
            LockType::Pessimistic => b'S',
        }
    }

    fn from_byte(byte: u8) -> Result<LockType, RecordError> {
        match byte {
            b'P' => Ok(LockType::Put),
            b'D' => Ok(LockType::Delete),
            b'L' => Ok(LockType::Lock),
            b'S' => Ok(LockType::Pessimistic),
            other => Err(RecordError::UnknownType(other)),
        }
    }

    /// The `kvrpcpb::Op` a `LockInfo` reports.
    pub fn to_op(self) -> kvrpcpb::Op {
        match self {
            LockType::Put => kvrpcpb::Op::Put,
            LockType::Delete => kvrpcpb::Op::Del,
            LockType::Lock => kvrpcpb::Op::Lock,
            LockType::Pessimistic => kvrpcpb::Op::PessimisticLock,
        }
    }
}

/// A decoded lock record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lock {
    /// Kind of lock.
    pub lock_type: LockType,
    /// The transaction's primary key (a raw user key).
    pub primary: Vec<u8>,
    /// The transaction's start_ts.
    pub ts: TimeStamp,
    /// Time to live in ms, measured from `ts.physical_ms()`.
    pub ttl_ms: u64,
    /// The value when it is at most `SHORT_VALUE_BYTES_MAX` bytes.
    pub short_value: Option<Vec<u8>>,
    /// Pessimistic transactions: the lock's for_update_ts (zero otherwise).
    pub for_update_ts: TimeStamp,
    /// Keys of the transaction in this region (a hint for lock resolution).
    pub txn_size: u64,
    /// The transaction may not commit below this (zero: no bound).
    pub min_commit_ts: TimeStamp,
    /// Async commit: the transaction is committed once all its locks exist.
    pub use_async_commit: bool,
    /// Async commit, primary only: every other key of the transaction.
    pub secondaries: Vec<Vec<u8>>,
    /// Start timestamps of other transactions whose rollback of this key collided with this
    /// lock; if this lock commits at one of them, its write record is marked overlapped.
    pub rollback_ts: Vec<TimeStamp>,
}

impl Lock {
    /// A lock with every optional field empty.
    pub fn new(lock_type: LockType, primary: Vec<u8>, ts: TimeStamp, ttl_ms: u64) -> Lock {
        assert!(ts > TimeStamp::ZERO, "a lock needs a start_ts");
        Lock {
            lock_type,
            primary,
            ts,
            ttl_ms,
            short_value: None,
            for_update_ts: TimeStamp::ZERO,
            txn_size: 0,
            min_commit_ts: TimeStamp::ZERO,
            use_async_commit: false,
            secondaries: Vec::new(),
            rollback_ts: Vec::new(),
        }
    }

    /// True if the lock was taken by a pessimistic transaction.
    pub fn is_pessimistic_txn(&self) -> bool {
        self.for_update_ts > TimeStamp::ZERO
    }

    /// True if the TTL has run out at `current_ts`: TiKV's
    /// `lock.ts.physical() + ttl < current_ts.physical()`, in ms.
    pub fn is_expired(&self, current_ts: TimeStamp) -> bool {
        self.ts.physical_ms().saturating_add(self.ttl_ms) < current_ts.physical_ms()
    }

    fn check_invariants(&self) {
        assert!(self.ts > TimeStamp::ZERO, "lock without start_ts");
        if let Some(value) = &self.short_value {
            assert!(
                value.len() <= SHORT_VALUE_BYTES_MAX,
                "inline value too long"
            );
        }
        assert!(
            self.use_async_commit || self.secondaries.is_empty(),
            "secondaries on a non-async lock"
        );
        assert!(
            self.lock_type != LockType::Pessimistic || self.short_value.is_none(),
            "pessimistic lock with a value"
        );
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        self.check_invariants();
        let mut out = Vec::with_capacity(32 + self.primary.len());
        out.push(self.lock_type.to_byte());
        put_compact_bytes(&mut out, &self.primary);
        put_var_u64(&mut out, self.ts.get());
        put_var_u64(&mut out, self.ttl_ms);
        if let Some(value) = &self.short_value {
            out.push(TAG_SHORT_VALUE);
            out.push(u8::try_from(value.len()).expect("checked above"));
            out.extend_from_slice(value);
        }
        self.encode_optional(&mut out);
        out
    }

    fn encode_optional(&self, out: &mut Vec<u8>) {
        for (tag, value) in [
            (TAG_FOR_UPDATE_TS, self.for_update_ts.get()),
            (TAG_TXN_SIZE, self.txn_size),
            (TAG_MIN_COMMIT_TS, self.min_commit_ts.get()),
        ] {
            if value > 0 {
                out.push(tag);
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        if self.use_async_commit {
            out.push(TAG_ASYNC_COMMIT);
            put_var_u64(out, self.secondaries.len() as u64);
            for key in &self.secondaries {
                put_compact_bytes(out, key);
            }
        }
        if !self.rollback_ts.is_empty() {
            out.push(TAG_ROLLBACK_TS);
            put_var_u64(out, self.rollback_ts.len() as u64);
            for ts in &self.rollback_ts {
                out.extend_from_slice(&ts.get().to_be_bytes());
            }
        }
    }

    /// Decodes a stored lock.
    pub fn decode(bytes: &[u8]) -> Result<Lock, RecordError> {
        let mut decoder = Decoder::new(bytes);
        let type_byte = decoder.u8().map_err(|_| RecordError::Empty)?;
        let lock_type = LockType::from_byte(type_byte)?;
        let primary = decoder.compact_bytes()?;
        let ts = TimeStamp(decoder.var_u64()?);
        if ts == TimeStamp::ZERO {
            return Err(RecordError::Inconsistent {
                reason: "zero start_ts",
            });
        }
        let mut lock = Lock::new(lock_type, primary, ts, decoder.var_u64()?);
        while !decoder.is_done() {
            lock.decode_field(&mut decoder)?;
        }
        if lock.lock_type == LockType::Pessimistic && lock.short_value.is_some() {
            return Err(RecordError::Inconsistent {
                reason: "pessimistic lock with a value",
            });
        }
        lock.check_invariants();
        Ok(lock)
    }

    fn decode_field(&mut self, decoder: &mut Decoder<'_>) -> Result<(), RecordError> {
        let offset = decoder.offset();
        match decoder.u8()? {
            TAG_SHORT_VALUE => {
                let length = decoder.u8()?;
                self.short_value = Some(decoder.take(usize::from(length))?.to_vec());
            }
            TAG_FOR_UPDATE_TS => self.for_update_ts = TimeStamp(decoder.u64_be()?),
            TAG_TXN_SIZE => self.txn_size = decoder.u64_be()?,
            TAG_MIN_COMMIT_TS => self.min_commit_ts = TimeStamp(decoder.u64_be()?),
            TAG_ASYNC_COMMIT => {
                self.use_async_commit = true;
                let count = decoder.count(1)?;
                self.secondaries = (0..count)
                    .map(|_| decoder.compact_bytes())
                    .collect::<Result<_, _>>()?;
            }
            TAG_ROLLBACK_TS => {
                let count = decoder.count(8)?;
                self.rollback_ts = (0..count)
                    .map(|_| decoder.u64_be().map(TimeStamp))
                    .collect::<Result<_, _>>()?;
            }
            tag => return Err(RecordError::UnknownTag { offset, tag }),
        }
        Ok(())
    }

    /// What a client needs to resolve this lock on `key` (TiKV `Lock::into_lock_info`).
    pub fn to_lock_info(&self, key: &[u8]) -> kvrpcpb::LockInfo {
        kvrpcpb::LockInfo {
            primary_lock: self.primary.clone(),
            lock_version: self.ts.get(),
            key: key.to_vec(),
            lock_ttl: self.ttl_ms,
            txn_size: self.txn_size,
            lock_type: self.lock_type.to_op() as i32,
            lock_for_update_ts: self.for_update_ts.get(),
            use_async_commit: self.use_async_commit,
            min_commit_ts: self.min_commit_ts.get(),
            secondaries: self.secondaries.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lock_type() -> impl Strategy<Value = LockType> {
        prop_oneof![
            Just(LockType::Put),
            Just(LockType::Delete),
            Just(LockType::Lock),
            Just(LockType::Pessimistic),
        ]
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    prop_compose! {
        fn any_lock()(lock_type in lock_type(), primary in bytes(20), ts in 1..u64::MAX,
                      ttl in any::<u64>(), value in proptest::option::of(bytes(256)),
                      for_update in any::<u64>(), size in any::<u64>(), min_commit in any::<u64>(),
                      async_commit in any::<bool>(),
                      secondaries in proptest::collection::vec(bytes(10), 0..4),
                      rollback_ts in proptest::collection::vec(any::<u64>(), 0..4)) -> Lock {
            let mut lock = Lock::new(lock_type, primary, TimeStamp(ts), ttl);
            if lock_type != LockType::Pessimistic {
                lock.short_value = value;
            }
            lock.for_update_ts = TimeStamp(for_update);
            lock.txn_size = size;
            lock.min_commit_ts = TimeStamp(min_commit);
            lock.use_async_commit = async_commit;
            if async_commit {
                lock.secondaries = secondaries;
            }
            lock.rollback_ts = rollback_ts.into_iter().map(TimeStamp).collect();
            lock
        }
    }

    proptest! {
        #[test]
        fn roundtrip(lock in any_lock()) {
            let encoded = lock.encode();
            prop_assert_eq!(Lock::decode(&encoded).unwrap(), lock);
        }

        #[test]
        fn garbage_never_panics(bytes in bytes(64)) {
            let _ = Lock::decode(&bytes);
        }

        #[test]
        fn truncation_is_an_error(lock in any_lock(), cut in any::<prop::sample::Index>()) {
            let encoded = lock.encode();
            let cut = cut.index(encoded.len());
            // A prefix either fails or (when it ends at a field boundary) decodes to a lock
            // with fewer optional fields; it never decodes to the full lock.
            if let Ok(decoded) = Lock::decode(&encoded[..cut]) {
                prop_assert_ne!(decoded, lock);
            }
        }
    }

    #[test]
    fn known_layout_matches_tikv() {
        let mut lock = Lock::new(LockType::Put, b"pk".to_vec(), TimeStamp(5), 3000);
        lock.short_value = Some(b"v".to_vec());
        lock.min_commit_ts = TimeStamp(6);
        let mut expected = vec![b'P', 4, b'p', b'k', 5, 0xb8, 0x17, b'v', 1, b'v', b'c'];
        expected.extend_from_slice(&6u64.to_be_bytes());
        assert_eq!(lock.encode(), expected);
    }

    #[test]
    fn decode_rejects_bad_records() {
        assert_eq!(Lock::decode(b""), Err(RecordError::Empty));
        assert_eq!(Lock::decode(b"X"), Err(RecordError::UnknownType(b'X')));
        let good = Lock::new(LockType::Lock, b"p".to_vec(), TimeStamp(9), 1).encode();
        let mut unknown_tag = good.clone();
        unknown_tag.push(b'z');
        assert!(matches!(
            Lock::decode(&unknown_tag),
            Err(RecordError::UnknownTag { tag: b'z', .. })
        ));
        let mut zero_ts = good;
        zero_ts[3] = 0;
        assert!(Lock::decode(&zero_ts).is_err());
    }

    #[test]
    fn expiry_compares_physical_ms() {
        let lock = Lock::new(LockType::Put, vec![], TimeStamp::compose(100, 7), 50);
        assert!(!lock.is_expired(TimeStamp::compose(150, 99)));
        assert!(lock.is_expired(TimeStamp::compose(151, 0)));
        let info = lock.to_lock_info(b"k");
        assert_eq!(info.lock_ttl, 50);
        assert_eq!(info.lock_version, TimeStamp::compose(100, 7).get());
        assert_eq!(info.lock_type, kvrpcpb::Op::Put as i32);
    }
}
