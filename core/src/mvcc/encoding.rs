//! Byte-level helpers for the lock and write record formats (TiKV's `txn_types` layout).
//!
//! - **Inputs**: values to append (`Encoder`), or a stored record to read (`Decoder`).
//! - **Outputs**: bytes; decoded values or a typed [`RecordError`] naming the offset.
//! - **Invariants**: decoding never panics and never reads past the end; every failure is a
//!   `RecordError`. Variable-length integers are LEB128 (at most 10 bytes); "compact bytes"
//!   are a zigzag var-i64 length followed by the bytes.

/// Why a stored lock or write record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record has no bytes at all.
    #[error("empty record")]
    Empty,
    /// The leading type byte is not one we write.
    #[error("unknown record type {0:#04x}")]
    UnknownType(u8),
    /// The record ends inside a field.
    #[error("record truncated at offset {offset}")]
    Truncated { offset: usize },
    /// A variable-length integer is longer than 10 bytes or overflows 64 bits.
    #[error("variable-length integer overflows at offset {offset}")]
    VarIntOverflow { offset: usize },
    /// A length is negative or larger than the record.
    #[error("bad length {length} at offset {offset}")]
    BadLength { offset: usize, length: i64 },
    /// An optional field tag we never write.
    #[error("unknown field tag {tag:#04x} at offset {offset}")]
    UnknownTag { offset: usize, tag: u8 },
    /// Every field decoded, but together they break a record invariant.
    #[error("inconsistent record: {reason}")]
    Inconsistent { reason: &'static str },
}

/// Most bytes a LEB128 `u64` takes.
pub const VAR_U64_BYTES_MAX: usize = 10;

/// Appends `value` as LEB128.
pub fn put_var_u64(out: &mut Vec<u8>, mut value: u64) {
    let start = out.len();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    assert!(out.len() - start <= VAR_U64_BYTES_MAX);
}

/// Appends `bytes` as a zigzag var-i64 length followed by the bytes.
pub fn put_compact_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let length = i64::try_from(bytes.len()).expect("length fits i64");
    let zigzag = ((length << 1) ^ (length >> 63)) as u64;
    put_var_u64(out, zigzag);
    out.extend_from_slice(bytes);
}

/// A bounds-checked reader over one stored record.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Decoder<'a> {
    /// Starts reading at the first byte.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, offset: 0 }
    }

    /// True when every byte has been read.
    pub fn is_done(&self) -> bool {
        self.offset == self.bytes.len()
    }

    /// The current read position.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, RecordError> {
        let byte = *self.bytes.get(self.offset).ok_or(RecordError::Truncated {
            offset: self.offset,
        })?;
        self.offset += 1;
        Ok(byte)
    }

    /// Reads `count` bytes.
    pub fn take(&mut self, count: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .offset
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(RecordError::Truncated {
            offset: self.offset,
        })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    /// Reads a big-endian `u64`.
    pub fn u64_be(&mut self) -> Result<u64, RecordError> {
        let bytes = self.take(8)?;
        Ok(u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// Reads a LEB128 `u64`.
    pub fn var_u64(&mut self) -> Result<u64, RecordError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for index in 0..VAR_U64_BYTES_MAX {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * index as u32;
            // The tenth byte may carry only the top bit of a u64.
            if index == VAR_U64_BYTES_MAX - 1 && bits > 1 {
                return Err(RecordError::VarIntOverflow { offset: start });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::VarIntOverflow { offset: start })
    }

    /// Reads compact bytes (zigzag var-i64 length + bytes).
    pub fn compact_bytes(&mut self) -> Result<Vec<u8>, RecordError> {
        let start = self.offset;
        let zigzag = self.var_u64()?;
        let length = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let remaining = self.bytes.len() - self.offset;
        if length < 0 || length as u64 > remaining as u64 {
            return Err(RecordError::BadLength {
                offset: start,
                length,
            });
        }
        Ok(self.take(length as usize)?.to_vec())
    }

    /// Reads a count that prefixes a list, refusing counts the rest of the record cannot hold
    /// (each element takes at least `element_bytes_min` bytes), so garbage cannot make the
    /// caller allocate without bound.
    pub fn count(&mut self, element_bytes_min: usize) -> Result<usize, RecordError> {
        assert!(element_bytes_min > 0);
        let start = self.offset;
        let count = self.var_u64()?;
        let remaining = (self.bytes.len() - self.offset) as u64;
        if count > remaining / element_bytes_min as u64 {
            return Err(RecordError::BadLength {
                offset: start,
                length: i64::try_from(count).unwrap_or(i64::MAX),
            });
        }
        Ok(count as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn var_u64_known_bytes() {
        let mut out = Vec::new();
        put_var_u64(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        put_var_u64(&mut out, u64::MAX);
        assert_eq!(out.len(), VAR_U64_BYTES_MAX);
        assert_eq!(Decoder::new(&out).var_u64(), Ok(u64::MAX));
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            Decoder::new(&[0x80, 0x80]).var_u64(),
            Err(RecordError::Truncated { offset: 2 })
        );
        let overflow = [0xff; 11];
        assert_eq!(
            Decoder::new(&overflow).var_u64(),
            Err(RecordError::VarIntOverflow { offset: 0 })
        );
        let too_big_tenth = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Decoder::new(&too_big_tenth).var_u64().is_err());
        // Length 5 (zigzag 10) but only two bytes follow.
        assert_eq!(
            Decoder::new(&[10, 1, 2]).compact_bytes(),
            Err(RecordError::BadLength {
                offset: 0,
                length: 5
            })
        );
        // Negative length (zigzag 1 = -1).
        assert!(Decoder::new(&[1]).compact_bytes().is_err());
        assert!(Decoder::new(&[200, 1]).count(8).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(value in any::<u64>(),
                     bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            put_var_u64(&mut out, value);
            put_compact_bytes(&mut out, &bytes);
            let mut decoder = Decoder::new(&out);
            prop_assert_eq!(decoder.var_u64().unwrap(), value);
            prop_assert_eq!(decoder.compact_bytes().unwrap(), bytes);
            prop_assert!(decoder.is_done());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut decoder = Decoder::new(&bytes);
            let _ = decoder.var_u64();
            let _ = decoder.compact_bytes();
            let _ = decoder.count(1);
            let _ = decoder.u64_be();
        }
    }
}
