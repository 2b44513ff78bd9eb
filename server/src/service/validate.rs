//! Input validation at the service edge: every bound from `limits.rs`, before anything is
//! allocated for the request or proposed to Raft. A bad request changes nothing.

use ferrokv_core::limits;
use ferrokv_core::store::RequestHeader;
use ferrokv_core::types::{KeyRange, RegionEpoch, RegionId};
use ferrokv_proto::kvrpcpb::Context;

/// A request that breaks a rule; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {0}")]
pub struct InputError(pub String);

fn invalid(message: String) -> InputError {
    InputError(message)
}

/// The routing header of a request.
pub fn header(context: Option<&Context>) -> Result<RequestHeader, InputError> {
    let context = context.ok_or_else(|| invalid("missing context".into()))?;
    if context.region_id == 0 {
        return Err(invalid("context.region_id is 0".into()));
    }
    let epoch = RegionEpoch::from(context.region_epoch);
    Ok(RequestHeader {
        region_id: RegionId(context.region_id),
        epoch,
    })
}

/// Raw requests serve the default column family only.
pub fn column_family(cf: &str) -> Result<(), InputError> {
    match cf {
        "" | "default" => Ok(()),
        other => Err(invalid(format!(
            "column family {other:?} is not served for raw requests"
        ))),
    }
}

/// A key to write: non-empty and within `KEY_BYTES_MAX`.
pub fn key(key: &[u8]) -> Result<(), InputError> {
    if key.is_empty() {
        return Err(invalid("key is empty".into()));
    }
    bound_key(key)
}

/// A key used as a bound (may be empty): within `KEY_BYTES_MAX`.
pub fn bound_key(key: &[u8]) -> Result<(), InputError> {
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(invalid(format!(
            "key of {} bytes exceeds {}",
            key.len(),
            limits::KEY_BYTES_MAX
        )));
    }
    Ok(())
}

/// A value: within `VALUE_BYTES_MAX`.
pub fn value(value: &[u8]) -> Result<(), InputError> {
    if value.len() > limits::VALUE_BYTES_MAX {
        let bound = limits::VALUE_BYTES_MAX;
        return Err(invalid(format!(
            "value of {} bytes exceeds {bound}",
            value.len()
        )));
    }
    Ok(())
}

/// A batch: at most `BATCH_KEYS_MAX` items and `BATCH_BYTES_MAX` bytes.
pub fn batch(count: usize, bytes: usize) -> Result<(), InputError> {
    if count == 0 {
        return Err(invalid("batch is empty".into()));
    }
    if count > limits::BATCH_KEYS_MAX {
        return Err(invalid(format!(
            "batch of {count} keys exceeds {}",
            limits::BATCH_KEYS_MAX
        )));
    }
    if bytes > limits::BATCH_BYTES_MAX {
        return Err(invalid(format!(
            "batch of {bytes} bytes exceeds {}",
            limits::BATCH_BYTES_MAX
        )));
    }
    Ok(())
}

/// A scan limit: 1..=`SCAN_LIMIT_MAX`.
pub fn scan_limit(limit: u32) -> Result<usize, InputError> {
    let limit = limit as usize;
    if limit == 0 || limit > limits::SCAN_LIMIT_MAX {
        return Err(invalid(format!(
            "scan limit {limit} outside 1..={}",
            limits::SCAN_LIMIT_MAX
        )));
    }
    Ok(limit)
}

/// A forward range `[start, end)` (empty end: unbounded).
pub fn range(start: &[u8], end: &[u8]) -> Result<KeyRange, InputError> {
    bound_key(start)?;
    bound_key(end)?;
    if !end.is_empty() && start > end {
        return Err(invalid("range start is above its end".into()));
    }
    Ok(KeyRange::new(start.to_vec(), end.to_vec()))
}

/// TiKV's reverse scans name the upper bound `start_key` and the lower bound `end_key`.
pub fn reverse_range(upper: &[u8], lower: &[u8]) -> Result<KeyRange, InputError> {
    bound_key(upper)?;
    bound_key(lower)?;
    if !upper.is_empty() && lower > upper {
        return Err(invalid(
            "reverse range lower bound is above its upper bound".into(),
        ));
    }
    Ok(KeyRange::new(lower.to_vec(), upper.to_vec()))
}

/// The expiry of a value written at `now_ms` with `ttl_seconds` (0: none).
pub fn expiry(ttl_seconds: u64, now_ms: u64) -> Result<Option<u64>, InputError> {
    if ttl_seconds == 0 {
        return Ok(None);
    }
    let ttl_ms = ttl_seconds
        .checked_mul(1000)
        .ok_or_else(|| invalid("ttl overflows".into()))?;
    now_ms
        .checked_add(ttl_ms)
        .map(Some)
        .ok_or_else(|| invalid("ttl overflows".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_with_named_errors() {
        assert!(key(b"").unwrap_err().0.contains("empty"));
        assert!(key(&vec![0; limits::KEY_BYTES_MAX + 1])
            .unwrap_err()
            .0
            .contains("exceeds"));
        assert!(value(&vec![0; limits::VALUE_BYTES_MAX + 1]).is_err());
        assert!(batch(limits::BATCH_KEYS_MAX + 1, 1).is_err());
        assert!(batch(0, 0).is_err());
        assert!(scan_limit(0).is_err());
        assert_eq!(scan_limit(10), Ok(10));
        assert!(range(b"b", b"a").is_err());
        assert_eq!(
            range(b"b", b"").unwrap(),
            KeyRange::new(b"b".to_vec(), vec![])
        );
        assert_eq!(
            reverse_range(b"z", b"a").unwrap(),
            KeyRange::new(b"a".to_vec(), b"z".to_vec())
        );
        assert!(column_family("lock").is_err());
        assert!(header(None).is_err());
        assert_eq!(expiry(0, 5), Ok(None));
        assert_eq!(expiry(2, 5), Ok(Some(2005)));
        assert!(expiry(u64::MAX, 5).is_err());
    }
}
