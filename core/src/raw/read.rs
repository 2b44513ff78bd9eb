//! Raw reads, evaluated on a snapshot taken after the read's index is applied.

use crate::env::{Cf, Direction, EngineError, KvPair, Snapshot};
use crate::limits;
use crate::types::KeyRange;

use super::value;

/// A raw read request, already validated and clamped to the serving region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawRead {
    /// One key.
    Get { key: Vec<u8> },
    /// Several keys; absent and expired keys are left out.
    BatchGet { keys: Vec<Vec<u8>> },
    /// Up to `limit` live pairs in `range`.
    Scan {
        range: KeyRange,
        limit: usize,
        key_only: bool,
        direction: Direction,
    },
    /// Up to `each_limit` live pairs in each range.
    BatchScan {
        ranges: Vec<KeyRange>,
        each_limit: usize,
        key_only: bool,
        direction: Direction,
    },
    /// Remaining TTL of one key.
    GetKeyTtl { key: Vec<u8> },
}

impl RawRead {
    /// The read with its scan ranges cut to `region` (a client may ask past a region's end;
    /// the region serves its part). Point reads are unchanged.
    pub fn clamped_to(self, region: &KeyRange) -> RawRead {
        match self {
            RawRead::Scan {
                range,
                limit,
                key_only,
                direction,
            } => RawRead::Scan {
                range: intersect(&range, region),
                limit,
                key_only,
                direction,
            },
            RawRead::BatchScan {
                ranges,
                each_limit,
                key_only,
                direction,
            } => RawRead::BatchScan {
                ranges: ranges
                    .iter()
                    .map(|range| intersect(range, region))
                    .collect(),
                each_limit,
                key_only,
                direction,
            },
            point => point,
        }
    }

    /// Every key or range the read touches, as ranges, for region checks.
    pub fn ranges(&self) -> Vec<KeyRange> {
        let point = |key: &Vec<u8>| {
            let mut end = key.clone();
            end.push(0);
            KeyRange::new(key.clone(), end)
        };
        match self {
            RawRead::Get { key } | RawRead::GetKeyTtl { key } => vec![point(key)],
            RawRead::BatchGet { keys } => keys.iter().map(point).collect(),
            RawRead::Scan { range, .. } => vec![range.clone()],
            RawRead::BatchScan { ranges, .. } => ranges.clone(),
        }
    }
}

/// The part of `range` inside `region`; an empty range at the region's start when disjoint.
fn intersect(range: &KeyRange, region: &KeyRange) -> KeyRange {
    let start = range.start.clone().max(region.start.clone());
    let end = if KeyRange::cmp_end(&range.end, &region.end).is_le() {
        range.end.clone()
    } else {
        region.end.clone()
    };
    if !end.is_empty() && start >= end {
        return KeyRange::new(start.clone(), start);
    }
    KeyRange::new(start, end)
}

/// What a raw read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawReadResult {
    /// A point read: the live value, if any.
    Value(Option<Vec<u8>>),
    /// Pairs, in request order (ranges concatenated for batch scans).
    Pairs(Vec<KvPair>),
    /// Remaining TTL in seconds: `Some(0)` for "no TTL", `None` for "no such key".
    Ttl(Option<u64>),
}

fn get<S: Snapshot>(view: &S, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, EngineError> {
    value::live_value(view.get(Cf::Raw, key)?.as_deref(), now_ms)
}

/// Up to `limit` live pairs of `range`, paging past expired values.
fn scan<S: Snapshot>(
    view: &S,
    range: &KeyRange,
    limit: usize,
    key_only: bool,
    direction: Direction,
    now_ms: u64,
) -> Result<Vec<KvPair>, EngineError> {
    assert!(
        limit <= limits::SCAN_LIMIT_MAX,
        "scan limit validated at the edge"
    );
    let mut out = Vec::with_capacity(limit.min(256));
    let mut remaining = range.clone();
    while out.len() < limit {
        let want = limit - out.len();
        let page = view.scan(Cf::Raw, &remaining, want, direction)?;
        let page_full = page.len() == want;
        let Some((last_key, _)) = page.last() else {
            break;
        };
        let last_key = last_key.clone();
        for (key, stored) in page {
            if let Some(live) = value::live_value(Some(&stored), now_ms)? {
                out.push((key, if key_only { Vec::new() } else { live }));
            }
        }
        if !page_full {
            break;
        }
        match direction {
            Direction::Forward => {
                let mut next = last_key;
                next.push(0);
                remaining.start = next;
            }
            Direction::Reverse => remaining.end = last_key,
        }
        if remaining.is_empty() || (direction == Direction::Reverse && remaining.end.is_empty()) {
            break;
        }
    }
    Ok(out)
}

/// Evaluates `read` on `view` at wall-clock `now_ms`.
pub fn execute_read<S: Snapshot>(
    view: &S,
    read: &RawRead,
    now_ms: u64,
) -> Result<RawReadResult, EngineError> {
    Ok(match read {
        RawRead::Get { key } => RawReadResult::Value(get(view, key, now_ms)?),
        RawRead::BatchGet { keys } => {
            let mut pairs = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(value) = get(view, key, now_ms)? {
                    pairs.push((key.clone(), value));
                }
            }
            RawReadResult::Pairs(pairs)
        }
        RawRead::Scan {
            range,
            limit,
            key_only,
            direction,
        } => RawReadResult::Pairs(scan(view, range, *limit, *key_only, *direction, now_ms)?),
        RawRead::BatchScan {
            ranges,
            each_limit,
            key_only,
            direction,
        } => {
            let mut pairs = Vec::new();
            for range in ranges {
                pairs.extend(scan(
                    view,
                    range,
                    *each_limit,
                    *key_only,
                    *direction,
                    now_ms,
                )?);
            }
            RawReadResult::Pairs(pairs)
        }
        RawRead::GetKeyTtl { key } => {
            let stored = view.get(Cf::Raw, key)?;
            let raw = stored.as_deref().map(value::decode).transpose()?;
            let live = raw.filter(|raw| raw.is_live(now_ms));
            RawReadResult::Ttl(live.map(|raw| raw.ttl_seconds(now_ms)))
        }
    })
}
