//! The on-"disk" record format of SimEngine's log: one record per write batch.
//!
//! ```text
//! record  = header | payload
//! header  = payload_len: u32 LE | crc32c(payload): u32 LE | crc32c(first 8 header bytes): u32 LE
//! payload = mutation*
//! mutation = tag: u8 | cf: u8 | key_len: u32 LE | key | (value_len | value | end_len | end)?
//! ```
//! A record cut short (a torn write at crash) is recognised as such; a complete record whose
//! checksum fails is corruption (a flipped bit), never silently skipped. The header has its
//! own checksum, so a flipped bit in a length field cannot pass for a torn tail (which would
//! truncate durable records after it).

use ferrokv_core::env::{Cf, Mutation, WriteBatch};

const HEADER_BYTES: usize = 12;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_DELETE_RANGE: u8 = 3;

/// What reading one record from a byte log found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadRecord {
    /// A valid record and the total bytes it occupies.
    Batch(WriteBatch, usize),
    /// The log ends inside this record: a torn write.
    Torn,
    /// A complete record fails its checksum or does not decode.
    Corrupt(String),
}

fn cf_code(cf: Cf) -> u8 {
    match cf {
        Cf::Default => 0,
        Cf::Lock => 1,
        Cf::Write => 2,
        Cf::Raft => 3,
    }
}

fn cf_from_code(code: u8) -> Option<Cf> {
    Cf::ALL.into_iter().find(|cf| cf_code(*cf) == code)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("sim record field fits u32");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the encoded record for `batch` to `out`.
pub fn encode(batch: &WriteBatch, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(batch.bytes() + batch.len() * 10);
    for mutation in batch.mutations() {
        match mutation {
            Mutation::Put { cf, key, value } => {
                payload.extend_from_slice(&[TAG_PUT, cf_code(*cf)]);
                put_bytes(&mut payload, key);
                put_bytes(&mut payload, value);
            }
            Mutation::Delete { cf, key } => {
                payload.extend_from_slice(&[TAG_DELETE, cf_code(*cf)]);
                put_bytes(&mut payload, key);
            }
            Mutation::DeleteRange { cf, start, end } => {
                payload.extend_from_slice(&[TAG_DELETE_RANGE, cf_code(*cf)]);
                put_bytes(&mut payload, start);
                put_bytes(&mut payload, end);
            }
        }
    }
    let len = u32::try_from(payload.len()).expect("sim record fits u32");
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..8]);
    header[8..].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
}

/// Reads the record at the start of `log`.
pub fn read(log: &[u8]) -> ReadRecord {
    let Some(header) = log.get(..HEADER_BYTES) else {
        return ReadRecord::Torn;
    };
    let header_crc = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&header[..8]) != header_crc {
        return ReadRecord::Corrupt("record header checksum mismatch".to_string());
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let Some(payload) = log.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return ReadRecord::Torn;
    };
    if crc32c::crc32c(payload) != crc {
        return ReadRecord::Corrupt(format!("record checksum mismatch ({len} byte payload)"));
    }
    match decode_payload(payload) {
        Some(batch) => ReadRecord::Batch(batch, HEADER_BYTES + len),
        None => ReadRecord::Corrupt("record payload does not decode".to_string()),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.bytes.get(..4)?.try_into().ok()?) as usize;
        let field = self.bytes.get(4..4 + len)?;
        self.bytes = &self.bytes[4 + len..];
        Some(field)
    }
}

fn decode_payload(payload: &[u8]) -> Option<WriteBatch> {
    let mut cursor = Cursor { bytes: payload };
    let mut batch = WriteBatch::new();
    while !cursor.bytes.is_empty() {
        let tag = cursor.byte()?;
        let cf = cf_from_code(cursor.byte()?)?;
        let first = cursor.field()?;
        match tag {
            TAG_PUT => batch.put(cf, first, cursor.field()?),
            TAG_DELETE => batch.delete(cf, first),
            TAG_DELETE_RANGE => batch.delete_range(cf, first, cursor.field()?),
            _ => return None,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, b"k1", b"v1");
        batch.put(Cf::Lock, b"", b"");
        batch.delete(Cf::Write, b"gone");
        batch.delete_range(Cf::Raft, b"a", b"z");
        batch
    }

    #[test]
    fn roundtrip() {
        let mut log = Vec::new();
        encode(&sample(), &mut log);
        assert_eq!(read(&log), ReadRecord::Batch(sample(), log.len()));
    }

    #[test]
    fn every_cut_is_torn_never_a_batch() {
        let mut log = Vec::new();
        encode(&sample(), &mut log);
        for cut in 0..log.len() {
            assert_eq!(read(&log[..cut]), ReadRecord::Torn, "cut at {cut}");
        }
    }

    #[test]
    fn every_flipped_bit_is_corruption_never_a_torn_tail() {
        let mut log = Vec::new();
        encode(&sample(), &mut log);
        for bit in 0..log.len() * 8 {
            let mut flipped = log.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(read(&flipped), ReadRecord::Corrupt(_)),
                "bit {bit}"
            );
        }
    }
}
