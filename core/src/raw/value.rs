//! How raw values are stored: the user's value plus an optional expiry, in one engine value.
//!
//! ```text
//! value ++ [0x00]                      no TTL
//! value ++ expire_ms(be u64) ++ [0x01] expires at wall-clock expire_ms
//! ```
//! An expired value is invisible to every read and to compare-and-swap.

use crate::env::EngineError;

const NO_TTL: u8 = 0;
const WITH_TTL: u8 = 1;

/// A decoded raw value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    /// The user's bytes.
    pub value: Vec<u8>,
    /// Wall-clock expiry in ms since the epoch, if the value has a TTL.
    pub expire_ms: Option<u64>,
}

impl RawValue {
    /// True if the value is visible at wall-clock `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expire_ms.is_none_or(|expire| now_ms < expire)
    }

    /// Remaining TTL in whole seconds (rounded up), `Some(0)` meaning "no TTL".
    pub fn ttl_seconds(&self, now_ms: u64) -> u64 {
        self.expire_ms
            .map_or(0, |expire| expire.saturating_sub(now_ms).div_ceil(1000))
    }
}

/// Encodes a raw value for storage.
pub fn encode(value: &[u8], expire_ms: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    out.extend_from_slice(value);
    match expire_ms {
        None => out.push(NO_TTL),
        Some(expire) => {
            out.extend_from_slice(&expire.to_be_bytes());
            out.push(WITH_TTL);
        }
    }
    out
}

/// Decodes a stored raw value.
pub fn decode(stored: &[u8]) -> Result<RawValue, EngineError> {
    let corrupt = || EngineError::Corruption(format!("bad raw value of {} bytes", stored.len()));
    let (&flag, rest) = stored.split_last().ok_or_else(corrupt)?;
    match flag {
        NO_TTL => Ok(RawValue {
            value: rest.to_vec(),
            expire_ms: None,
        }),
        WITH_TTL if rest.len() >= 8 => {
            let (value, expire) = rest.split_at(rest.len() - 8);
            let expire = u64::from_be_bytes(expire.try_into().expect("8 bytes"));
            Ok(RawValue {
                value: value.to_vec(),
                expire_ms: Some(expire),
            })
        }
        _ => Err(corrupt()),
    }
}

/// The live user value of a stored raw value at `now_ms`, if any.
pub fn live_value(stored: Option<&[u8]>, now_ms: u64) -> Result<Option<Vec<u8>>, EngineError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let raw = decode(stored)?;
    Ok(raw.is_live(now_ms).then_some(raw.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_and_without_ttl() {
        let plain = decode(&encode(b"v", None)).unwrap();
        assert_eq!(
            plain,
            RawValue {
                value: b"v".to_vec(),
                expire_ms: None
            }
        );
        let timed = decode(&encode(b"", Some(5_000))).unwrap();
        assert_eq!(
            timed,
            RawValue {
                value: Vec::new(),
                expire_ms: Some(5_000)
            }
        );
    }

    #[test]
    fn expiry_hides_values() {
        let stored = encode(b"v", Some(10_000));
        assert_eq!(
            live_value(Some(&stored), 9_999).unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(live_value(Some(&stored), 10_000).unwrap(), None);
        assert_eq!(decode(&stored).unwrap().ttl_seconds(8_500), 2);
        assert_eq!(decode(&encode(b"v", None)).unwrap().ttl_seconds(1), 0);
    }

    #[test]
    fn garbage_is_corruption() {
        assert!(decode(b"").is_err());
        assert!(
            decode(b"abc\x01").is_err(),
            "ttl flag without 8 expiry bytes"
        );
        assert!(decode(b"abc\x07").is_err());
    }
}
