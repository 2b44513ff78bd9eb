//! The on-"disk" record format of SimEngine's log: one record per write batch.
//!
//! ```text
//! record   = header | payload
//! header   = magic "FKVR": u32 LE | seq: u64 LE | payload_len: u32 LE
//!            | crc32c(payload): u32 LE | crc32c(first 20 header bytes): u32 LE
//! payload  = mutation*
//! mutation = tag: u8 | cf: u8 | key_len: u32 LE | key | (value_len | value | end_len | end)?
//! ```
//!
//! Inputs: a batch and its sequence number (the record's position in the log, counted from the
//! checkpoint the log continues). Output: bytes, or on reading, the batch or the damage found.
//!
//! Invariants:
//! - Every cut of a record reads as `Cut`, never as a batch.
//! - Every single flipped bit reads as damage, never as a batch and never as `Cut`: the header
//!   has its own checksum, so a flipped length cannot pass for a torn tail.
//! - A record is self-identifying: its sequence number is inside the checksummed header, so a
//!   valid record copied to the wrong place (a misdirected write) reads as `Misdirected`.
//! - A header of zeros (a sector that never reached the platter) never passes its checksum.

use std::fmt;

use ferrokv_core::env::{Cf, Mutation, WriteBatch};

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 24;
const MAGIC: u32 = u32::from_le_bytes(*b"FKVR");
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_DELETE_RANGE: u8 = 3;

/// What is wrong with the record at some log offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordDamage {
    /// The log ends inside the record (a torn write).
    Cut,
    /// The header reads as zeros (sectors that never reached the platter).
    Zeros,
    /// The header fails its checksum or magic (garbage or a flipped bit).
    Header,
    /// A valid record, but not the one that belongs here (a misdirected write).
    Misdirected {
        /// The sequence number this position should hold.
        expected: u64,
        /// The sequence number of the record found.
        found: u64,
    },
    /// The payload fails its checksum.
    Payload,
    /// The payload passes its checksum but does not decode.
    Undecodable,
    /// A sector under the record cannot be read (a latent sector error).
    Unreadable,
}

impl fmt::Display for RecordDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordDamage::Cut => write!(f, "record cut short"),
            RecordDamage::Zeros => write!(f, "record header reads as zeros"),
            RecordDamage::Header => write!(f, "record header checksum mismatch"),
            RecordDamage::Misdirected { expected, found } => {
                write!(
                    f,
                    "misdirected record: seq {found} where {expected} belongs"
                )
            }
            RecordDamage::Payload => write!(f, "record payload checksum mismatch"),
            RecordDamage::Undecodable => write!(f, "record payload does not decode"),
            RecordDamage::Unreadable => write!(f, "record sector unreadable"),
        }
    }
}

/// What reading one record from a byte log found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadRecord {
    /// A valid record with the expected sequence number, and the total bytes it occupies.
    Batch(WriteBatch, usize),
    /// No valid record with the expected sequence number starts here.
    Damaged(RecordDamage),
}

struct Header {
    seq: u64,
    payload_len: usize,
    payload_crc: u32,
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

fn parse_header(log: &[u8]) -> Result<Header, RecordDamage> {
    let Some(header) = log.get(..HEADER_BYTES) else {
        return Err(RecordDamage::Cut);
    };
    if le_u32(&header[..4]) != MAGIC {
        if header.iter().all(|byte| *byte == 0) {
            return Err(RecordDamage::Zeros);
        }
        return Err(RecordDamage::Header);
    }
    if le_u32(&header[20..24]) != crc32c::crc32c(&header[..20]) {
        return Err(RecordDamage::Header);
    }
    Ok(Header {
        seq: u64::from_le_bytes(header[4..12].try_into().expect("8 bytes")),
        payload_len: le_u32(&header[12..16]) as usize,
        payload_crc: le_u32(&header[16..20]),
    })
}

fn payload<'a>(log: &'a [u8], header: &Header) -> Result<&'a [u8], RecordDamage> {
    let payload = log
        .get(HEADER_BYTES..HEADER_BYTES + header.payload_len)
        .ok_or(RecordDamage::Cut)?;
    if crc32c::crc32c(payload) != header.payload_crc {
        return Err(RecordDamage::Payload);
    }
    Ok(payload)
}

/// The bytes a read of the record at the start of `log` touches (for sector read errors):
/// the whole record if its header is valid, else the header.
pub fn span(log: &[u8]) -> usize {
    match parse_header(log) {
        Ok(header) => (HEADER_BYTES + header.payload_len).min(log.len()),
        Err(_) => HEADER_BYTES.min(log.len()),
    }
}

/// The sequence number and length of a valid record at the start of `log`, whatever its
/// sequence number (for finding records stranded after a damaged one).
pub fn read_any(log: &[u8]) -> Option<(u64, usize)> {
    let header = parse_header(log).ok()?;
    payload(log, &header).ok()?;
    Some((header.seq, HEADER_BYTES + header.payload_len))
}

/// Reads the record at the start of `log`, which must carry sequence number `expected_seq`.
pub fn read(log: &[u8], expected_seq: u64) -> ReadRecord {
    let header = match parse_header(log) {
        Ok(header) => header,
        Err(damage) => return ReadRecord::Damaged(damage),
    };
    if header.seq != expected_seq {
        return ReadRecord::Damaged(RecordDamage::Misdirected {
            expected: expected_seq,
            found: header.seq,
        });
    }
    match payload(log, &header).map(decode_payload) {
        Ok(Some(batch)) => ReadRecord::Batch(batch, HEADER_BYTES + header.payload_len),
        Ok(None) => ReadRecord::Damaged(RecordDamage::Undecodable),
        Err(damage) => ReadRecord::Damaged(damage),
    }
}

fn cf_code(cf: Cf) -> u8 {
    match cf {
        Cf::Default => 0,
        Cf::Lock => 1,
        Cf::Write => 2,
        Cf::Raft => 3,
        Cf::Raw => 4,
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

fn encode_payload(batch: &WriteBatch) -> Vec<u8> {
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
    payload
}

/// Appends the encoded record for `batch`, log position `seq`, to `out`.
pub fn encode(batch: &WriteBatch, seq: u64, out: &mut Vec<u8>) {
    let payload = encode_payload(batch);
    let len = u32::try_from(payload.len()).expect("sim record fits u32");
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..12].copy_from_slice(&seq.to_le_bytes());
    header[12..16].copy_from_slice(&len.to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..20]);
    header[20..].copy_from_slice(&header_crc.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    debug_assert_eq!(
        span(&out[start..]),
        out.len() - start,
        "an encoded record's header reads back"
    );
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
            TAG_DELETE_RANGE => {
                let end = cursor.field()?;
                if end.is_empty() || first > end {
                    return None;
                }
                batch.delete_range(cf, first, end);
            }
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

    fn encoded(seq: u64) -> Vec<u8> {
        let mut log = Vec::new();
        encode(&sample(), seq, &mut log);
        log
    }

    #[test]
    fn roundtrip() {
        let log = encoded(7);
        assert_eq!(read(&log, 7), ReadRecord::Batch(sample(), log.len()));
        assert_eq!(read_any(&log), Some((7, log.len())));
        assert_eq!(span(&log), log.len());
    }

    #[test]
    fn every_cut_is_torn_never_a_batch() {
        let log = encoded(0);
        for cut in 0..log.len() {
            assert_eq!(
                read(&log[..cut], 0),
                ReadRecord::Damaged(RecordDamage::Cut),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_damage_never_a_batch_or_a_cut() {
        let log = encoded(3);
        for bit in 0..log.len() * 8 {
            let mut flipped = log.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let ReadRecord::Damaged(damage) = read(&flipped, 3) else {
                panic!("bit {bit} read as a batch");
            };
            let expected = if bit < HEADER_BYTES * 8 {
                RecordDamage::Header
            } else {
                RecordDamage::Payload
            };
            assert_eq!(damage, expected, "bit {bit}");
            assert_eq!(read_any(&flipped), None, "bit {bit}");
        }
    }

    #[test]
    fn a_record_at_the_wrong_position_is_misdirected() {
        let log = encoded(4);
        assert_eq!(
            read(&log, 5),
            ReadRecord::Damaged(RecordDamage::Misdirected {
                expected: 5,
                found: 4
            })
        );
    }

    #[test]
    fn zeros_are_never_a_record() {
        assert_eq!(
            read(&[0u8; 512], 0),
            ReadRecord::Damaged(RecordDamage::Zeros)
        );
        assert_eq!(read_any(&[0u8; 512]), None);
        let mut log = encoded(0);
        let len = log.len();
        log[HEADER_BYTES..].fill(0);
        assert_eq!(read(&log, 0), ReadRecord::Damaged(RecordDamage::Payload));
        assert_eq!(span(&log), len);
    }
}
