//! Percolator write records, stored in CF `write` at `keys::version_key(user_key, commit_ts)`
//! (a rollback at `key@start_ts`).
//!
//! - **Inputs**: a commit or rollback decision; stored bytes.
//! - **Outputs**: the encoded record; the decoded [`Write`].
//! - **Invariants**: `start_ts` is never zero; only a `Put` carries a data value (a protected
//!   `Rollback` carries the marker `p`); an inline value is at most
//!   `lock::SHORT_VALUE_BYTES_MAX` bytes. Encode asserts them; decode returns a
//!   [`RecordError`] for every malformed record.
//!
//! Layout (TiKV `txn_types::Write`): type byte `P`/`D`/`L`/`R`; start_ts var-u64; then
//! optional tagged fields: `v` u8 len + short value; `R` overlapped-rollback flag. We never
//! write TiKV's `F` (gc_fence), `l` (last_change) or `S` (txn_source); an unknown tag is an
//! error.

use super::encoding::{put_var_u64, Decoder, RecordError};
use super::lock::{LockType, SHORT_VALUE_BYTES_MAX};
use crate::types::TimeStamp;

const TAG_SHORT_VALUE: u8 = b'v';
const TAG_OVERLAPPED_ROLLBACK: u8 = b'R';
/// The short value that marks a rollback as protected (never collapsed).
pub const PROTECTED_ROLLBACK_MARKER: &[u8] = b"p";

/// What a write record says about its version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteType {
    /// A committed value.
    Put,
    /// A committed deletion.
    Delete,
    /// A committed read lock: no data change.
    Lock,
    /// The transaction with this start_ts was rolled back on this key.
    Rollback,
}

impl WriteType {
    fn to_byte(self) -> u8 {
        match self {
            WriteType::Put => b'P',
            WriteType::Delete => b'D',
            WriteType::Lock => b'L',
            WriteType::Rollback => b'R',
        }
    }

    fn from_byte(byte: u8) -> Result<WriteType, RecordError> {
        match byte {
            b'P' => Ok(WriteType::Put),
            b'D' => Ok(WriteType::Delete),
            b'L' => Ok(WriteType::Lock),
            b'R' => Ok(WriteType::Rollback),
            other => Err(RecordError::UnknownType(other)),
        }
    }

    /// The record a committed lock of `lock_type` becomes; a pessimistic lock never commits.
    pub fn from_lock_type(lock_type: LockType) -> Option<WriteType> {
        match lock_type {
            LockType::Put => Some(WriteType::Put),
            LockType::Delete => Some(WriteType::Delete),
            LockType::Lock => Some(WriteType::Lock),
            LockType::Pessimistic => None,
        }
    }

    /// True for `Put` and `Delete`: the records that decide a key's value.
    pub fn is_data(self) -> bool {
        matches!(self, WriteType::Put | WriteType::Delete)
    }
}

/// A decoded write record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Write {
    /// Kind of record.
    pub write_type: WriteType,
    /// Start timestamp of the transaction that wrote it.
    pub start_ts: TimeStamp,
    /// `Put`: the value when short; protected `Rollback`: the marker.
    pub short_value: Option<Vec<u8>>,
    /// A rollback of another transaction whose start_ts equals this record's commit_ts was
    /// folded into this record (the two would share one key).
    pub has_overlapped_rollback: bool,
}

impl Write {
    /// A record without value or flags.
    pub fn new(write_type: WriteType, start_ts: TimeStamp, short_value: Option<Vec<u8>>) -> Write {
        let write = Write {
            write_type,
            start_ts,
            short_value,
            has_overlapped_rollback: false,
        };
        write.check_invariants();
        write
    }

    /// A rollback record; a protected one is never collapsed by later rollbacks.
    pub fn new_rollback(start_ts: TimeStamp, protected: bool) -> Write {
        let marker = protected.then(|| PROTECTED_ROLLBACK_MARKER.to_vec());
        Write::new(WriteType::Rollback, start_ts, marker)
    }

    /// True for a rollback that carries the protection marker.
    pub fn is_protected_rollback(&self) -> bool {
        self.write_type == WriteType::Rollback
            && self.short_value.as_deref() == Some(PROTECTED_ROLLBACK_MARKER)
    }

    fn check_invariants(&self) {
        assert!(self.start_ts > TimeStamp::ZERO, "write without start_ts");
        if let Some(value) = &self.short_value {
            assert!(
                value.len() <= SHORT_VALUE_BYTES_MAX,
                "inline value too long"
            );
            assert!(
                self.write_type == WriteType::Put || self.is_protected_rollback(),
                "a {:?} record carries no value",
                self.write_type
            );
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        self.check_invariants();
        let value_bytes = self.short_value.as_ref().map_or(0, |value| value.len() + 2);
        let mut out = Vec::with_capacity(12 + value_bytes);
        out.push(self.write_type.to_byte());
        put_var_u64(&mut out, self.start_ts.get());
        if let Some(value) = &self.short_value {
            out.push(TAG_SHORT_VALUE);
            out.push(u8::try_from(value.len()).expect("checked above"));
            out.extend_from_slice(value);
        }
        if self.has_overlapped_rollback {
            out.push(TAG_OVERLAPPED_ROLLBACK);
        }
        out
    }

    /// Decodes a stored write record.
    pub fn decode(bytes: &[u8]) -> Result<Write, RecordError> {
        let mut decoder = Decoder::new(bytes);
        let type_byte = decoder.u8().map_err(|_| RecordError::Empty)?;
        let write_type = WriteType::from_byte(type_byte)?;
        let start_ts = TimeStamp(decoder.var_u64()?);
        let mut write = Write {
            write_type,
            start_ts,
            short_value: None,
            has_overlapped_rollback: false,
        };
        while !decoder.is_done() {
            let offset = decoder.offset();
            match decoder.u8()? {
                TAG_SHORT_VALUE if write.short_value.is_none() => {
                    let length = decoder.u8()?;
                    write.short_value = Some(decoder.take(usize::from(length))?.to_vec());
                }
                TAG_OVERLAPPED_ROLLBACK => write.has_overlapped_rollback = true,
                tag => return Err(RecordError::UnknownTag { offset, tag }),
            }
        }
        write.check_decoded()?;
        Ok(write)
    }

    fn check_decoded(&self) -> Result<(), RecordError> {
        if self.start_ts == TimeStamp::ZERO {
            return Err(RecordError::Inconsistent {
                reason: "zero start_ts",
            });
        }
        let value_allowed = self.write_type == WriteType::Put || self.is_protected_rollback();
        if self.short_value.is_some() && !value_allowed {
            return Err(RecordError::Inconsistent {
                reason: "value on a record that carries none",
            });
        }
        self.check_invariants();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    prop_compose! {
        fn any_write()(kind in 0..5u8, start_ts in 1..u64::MAX,
                       value in proptest::collection::vec(any::<u8>(), 0..256),
                       with_value in any::<bool>(), overlapped in any::<bool>()) -> Write {
            let start_ts = TimeStamp(start_ts);
            let mut write = match kind {
                0 => Write::new(WriteType::Put, start_ts, with_value.then_some(value)),
                1 => Write::new(WriteType::Delete, start_ts, None),
                2 => Write::new(WriteType::Lock, start_ts, None),
                3 => Write::new_rollback(start_ts, true),
                _ => Write::new_rollback(start_ts, false),
            };
            write.has_overlapped_rollback = overlapped;
            write
        }
    }

    proptest! {
        #[test]
        fn roundtrip(write in any_write()) {
            prop_assert_eq!(Write::decode(&write.encode()).unwrap(), write);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Write::decode(&bytes);
        }
    }

    #[test]
    fn known_layout_matches_tikv() {
        let put = Write::new(WriteType::Put, TimeStamp(300), Some(b"ab".to_vec()));
        assert_eq!(put.encode(), vec![b'P', 0xac, 0x02, b'v', 2, b'a', b'b']);
        let rollback = Write::new_rollback(TimeStamp(1), true);
        assert_eq!(rollback.encode(), vec![b'R', 1, b'v', 1, b'p']);
        assert!(rollback.is_protected_rollback());
        assert!(!Write::new_rollback(TimeStamp(1), false).is_protected_rollback());
    }

    #[test]
    fn decode_rejects_bad_records() {
        assert_eq!(Write::decode(b""), Err(RecordError::Empty));
        assert_eq!(Write::decode(b"Q\x01"), Err(RecordError::UnknownType(b'Q')));
        assert!(matches!(
            Write::decode(b"D\x01v\x01x"),
            Err(RecordError::Inconsistent { .. })
        ));
        assert!(matches!(
            Write::decode(b"P\x01v\x05ab"),
            Err(RecordError::Truncated { .. })
        ));
        assert!(matches!(
            Write::decode(b"P\x00"),
            Err(RecordError::Inconsistent { .. })
        ));
        assert!(matches!(
            Write::decode(b"P\x01Z"),
            Err(RecordError::UnknownTag { tag: b'Z', .. })
        ));
    }
}
