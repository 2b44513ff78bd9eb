//! The checkpoint image: every live key of the engine when the log was folded, as one
//! checksummed blob.
//!
//! ```text
//! image  = header | entry*
//! header = magic "FKVI": u32 LE | base_seq: u64 LE | entries: u64 LE | body_len: u64 LE
//!          | crc32c(body): u32 LE | crc32c(first 32 header bytes): u32 LE
//! entry  = key_len: u32 LE | internal key | value_len: u32 LE | value
//! ```
//!
//! Inputs: the memtable's latest image and `base_seq`, the sequence number of the first log
//! record written after it. Output: bytes, or on reading, the entries or why they are corrupt.
//! Invariant: any single flipped bit, and any truncation, fails to decode (never wrong data).

const MAGIC: u32 = u32::from_le_bytes(*b"FKVI");
const HEADER_BYTES: usize = 36;

/// A decoded checkpoint image.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// The sequence number of the first log record that follows the image.
    pub base_seq: u64,
    /// Internal keys and values, in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("sim image field fits u32");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes `entries` (internal keys, sorted) as an image followed by log record `base_seq`.
pub fn encode(entries: &[(Vec<u8>, Vec<u8>)], base_seq: u64) -> Vec<u8> {
    assert!(
        entries.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "image entries are sorted and unique"
    );
    let mut body = Vec::new();
    for (key, value) in entries {
        put_field(&mut body, key);
        put_field(&mut body, value);
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&base_seq.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let header_crc = crc32c::crc32c(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(&body);
    out
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes an image written by `encode`; any damage is an error naming what failed.
pub fn decode(bytes: &[u8]) -> Result<Image, String> {
    let header = bytes
        .get(..HEADER_BYTES)
        .ok_or_else(|| format!("image of {} bytes has no header", bytes.len()))?;
    if crc32c::crc32c(&header[..32]) != u32_at(header, 32) || u32_at(header, 0) != MAGIC {
        return Err("image header checksum mismatch".to_string());
    }
    let body = &bytes[HEADER_BYTES..];
    if u64_at(header, 20) != body.len() as u64 {
        return Err(format!(
            "image body is {} bytes, header says {}",
            body.len(),
            u64_at(header, 20)
        ));
    }
    if crc32c::crc32c(body) != u32_at(header, 28) {
        return Err("image body checksum mismatch".to_string());
    }
    let entries = decode_entries(body).ok_or("image body does not decode")?;
    if entries.len() as u64 != u64_at(header, 12) {
        return Err("image entry count mismatch".to_string());
    }
    Ok(Image {
        base_seq: u64_at(header, 4),
        entries,
    })
}

fn take_field<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let field = body.get(4..4 + len)?;
    *body = &body[4 + len..];
    Some(field)
}

fn decode_entries(mut body: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    while !body.is_empty() {
        let key = take_field(&mut body)?.to_vec();
        let value = take_field(&mut body)?.to_vec();
        if entries.last().is_some_and(|(last, _)| *last >= key) {
            return None;
        }
        entries.push((key, value));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b"\0a".to_vec(), b"1".to_vec()),
            (b"\0b".to_vec(), Vec::new()),
            (b"\x03raft".to_vec(), vec![9; 40]),
        ]
    }

    #[test]
    fn roundtrip() {
        let bytes = encode(&sample(), 42);
        let image = decode(&bytes).unwrap();
        assert_eq!(image.base_seq, 42);
        assert_eq!(image.entries, sample());
        assert_eq!(decode(&encode(&[], 0)).unwrap(), Image::default());
    }

    #[test]
    fn every_flipped_bit_and_every_cut_fails_to_decode() {
        let bytes = encode(&sample(), 42);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&flipped).is_err(), "bit {bit}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
