//! Memcomparable key codec (TiKV's `codec::bytes` layout) and MVCC key composition.
//!
//! `encode_bytes` maps any byte string to one whose lexicographic order equals the original's,
//! and which can be followed by more data without ambiguity: the input is cut into 8-byte
//! groups, the last one zero-padded, and each group is followed by a marker byte
//! `0xFF - pad_count`. MVCC keys append the timestamp as `!ts` big-endian, so newer versions
//! of a key sort first.

use super::timestamp::TimeStamp;

const GROUP_BYTES: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0;
/// Bytes `!ts` adds to an encoded key.
pub const TS_BYTES: usize = 8;

/// A key that is not validly encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("encoded key ends inside a group at offset {offset}")]
    UnexpectedEnd { offset: usize },
    #[error("bad group marker {marker:#04x} at offset {offset}")]
    BadMarker { offset: usize, marker: u8 },
    #[error("non-zero padding byte at offset {offset}")]
    BadPadding { offset: usize },
    #[error("key of {len} bytes is too short to hold a timestamp")]
    NoTimestamp { len: usize },
}

/// Length of `encode_bytes(input)` for an input of `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    (len / GROUP_BYTES + 1) * (GROUP_BYTES + 1)
}

/// Appends the memcomparable encoding of `input` to `out`.
pub fn encode_bytes_into(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(encoded_len(input.len()));
    let mut chunks = input.chunks_exact(GROUP_BYTES);
    for group in &mut chunks {
        out.extend_from_slice(group);
        out.push(MARKER);
    }
    let tail = chunks.remainder();
    let pad_count = GROUP_BYTES - tail.len();
    out.extend_from_slice(tail);
    out.resize(out.len() + pad_count, PAD);
    out.push(MARKER - pad_count as u8);
    debug_assert_eq!(out.len() - start, encoded_len(input.len()));
}

/// The memcomparable encoding of `input`.
pub fn encode_bytes(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(input.len()));
    encode_bytes_into(input, &mut out);
    out
}

/// Decodes one encoded byte string from the front of `encoded`; returns it and the number of
/// bytes consumed.
pub fn decode_bytes(encoded: &[u8]) -> Result<(Vec<u8>, usize), CodecError> {
    let mut out = Vec::with_capacity(encoded.len() / (GROUP_BYTES + 1) * GROUP_BYTES);
    let mut offset = 0;
    loop {
        let group_end = offset + GROUP_BYTES;
        if group_end >= encoded.len() {
            return Err(CodecError::UnexpectedEnd { offset });
        }
        let marker = encoded[group_end];
        let pad_count = usize::from(MARKER - marker);
        if pad_count > GROUP_BYTES {
            return Err(CodecError::BadMarker {
                offset: group_end,
                marker,
            });
        }
        let data_end = group_end - pad_count;
        out.extend_from_slice(&encoded[offset..data_end]);
        if pad_count > 0 {
            if let Some(bad) = encoded[data_end..group_end].iter().position(|&b| b != PAD) {
                return Err(CodecError::BadPadding {
                    offset: data_end + bad,
                });
            }
            return Ok((out, group_end + 1));
        }
        offset = group_end + 1;
    }
}

/// Appends a timestamp so that larger timestamps sort first.
pub fn append_ts(key: &mut Vec<u8>, ts: TimeStamp) {
    key.extend_from_slice(&(!ts.get()).to_be_bytes());
}

/// An MVCC key: `encode_bytes(user_key) ++ !ts`.
pub fn mvcc_key(user_key: &[u8], ts: TimeStamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(user_key.len()) + TS_BYTES);
    encode_bytes_into(user_key, &mut out);
    append_ts(&mut out, ts);
    out
}

/// Splits an encoded key with a timestamp suffix into (encoded key, timestamp).
pub fn split_ts(key_with_ts: &[u8]) -> Result<(&[u8], TimeStamp), CodecError> {
    let len = key_with_ts.len();
    if len < TS_BYTES {
        return Err(CodecError::NoTimestamp { len });
    }
    let (key, ts) = key_with_ts.split_at(len - TS_BYTES);
    let raw = u64::from_be_bytes(ts.try_into().expect("exactly 8 bytes"));
    Ok((key, TimeStamp(!raw)))
}

/// Decodes an MVCC key back to (user key, timestamp).
pub fn decode_mvcc_key(key_with_ts: &[u8]) -> Result<(Vec<u8>, TimeStamp), CodecError> {
    let (encoded, ts) = split_ts(key_with_ts)?;
    let (user_key, used) = decode_bytes(encoded)?;
    if used != encoded.len() {
        return Err(CodecError::UnexpectedEnd { offset: used });
    }
    Ok((user_key, ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_tikv() {
        assert_eq!(encode_bytes(b""), vec![0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(
            encode_bytes(b"\x01\x02\x03"),
            vec![1, 2, 3, 0, 0, 0, 0, 0, 0xFA]
        );
        assert_eq!(
            encode_bytes(b"12345678"),
            [b"12345678".as_slice(), &[0xFF], &[0; 8], &[0xF7]].concat()
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(
            decode_bytes(b"abc"),
            Err(CodecError::UnexpectedEnd { offset: 0 })
        );
        let bad_marker = [0u8, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(matches!(
            decode_bytes(&bad_marker),
            Err(CodecError::BadMarker { .. })
        ));
        let bad_pad = [1u8, 0, 0, 0, 0, 0, 0, 9, 0xF8];
        assert_eq!(
            decode_bytes(&bad_pad),
            Err(CodecError::BadPadding { offset: 7 })
        );
        assert_eq!(
            decode_mvcc_key(b"short"),
            Err(CodecError::NoTimestamp { len: 5 })
        );
    }

    #[test]
    fn newer_versions_sort_first() {
        let old = mvcc_key(b"k", TimeStamp(10));
        let new = mvcc_key(b"k", TimeStamp(20));
        assert!(new < old);
        assert!(mvcc_key(b"k", TimeStamp(1)) < mvcc_key(b"k\0", TimeStamp(99)));
    }

    proptest! {
        #[test]
        fn roundtrip(input in proptest::collection::vec(any::<u8>(), 0..40)) {
            let encoded = encode_bytes(&input);
            prop_assert_eq!(encoded.len(), encoded_len(input.len()));
            let (decoded, used) = decode_bytes(&encoded).unwrap();
            prop_assert_eq!(used, encoded.len());
            prop_assert_eq!(decoded, input);
        }

        #[test]
        fn order_is_preserved(a in proptest::collection::vec(any::<u8>(), 0..20),
                              b in proptest::collection::vec(any::<u8>(), 0..20)) {
            prop_assert_eq!(a.cmp(&b), encode_bytes(&a).cmp(&encode_bytes(&b)));
        }

        #[test]
        fn mvcc_roundtrip(key in proptest::collection::vec(any::<u8>(), 0..20), ts in any::<u64>()) {
            let encoded = mvcc_key(&key, TimeStamp(ts));
            prop_assert_eq!(decode_mvcc_key(&encoded).unwrap(), (key, TimeStamp(ts)));
        }
    }
}
