//! Multi-key raw calls, split by region: batch get/put/delete, delete-range and scans.
//!
//! A multi-key call is atomic only within one region (one Raft entry, or one snapshot for
//! reads). Each call is therefore cut into parts, one per region the keys fall in, and the
//! `*_parts` methods report every part as it was executed: the keys (or key range) it
//! covered and its own result. A part whose keys stop sharing a region (a split raced the
//! call) is cut again. Scans page region by region (and by `SCAN_LIMIT_MAX` within one),
//! forward or in reverse. The plain methods fold the parts: the first error wins.

use ferrokv_core::limits::SCAN_LIMIT_MAX;
use ferrokv_core::types::KeyRange;
use ferrokv_proto::kvrpcpb::{self, KvPair};

use super::{CallError, RawClient, Target};
use crate::error::ClientError;
use crate::region_cache::Route;

/// A pair read back.
pub type Pair = (Vec<u8>, Vec<u8>);

/// One region's share of a multi-key call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysPart<T> {
    /// The keys this part covered, in request order.
    pub keys: Vec<Vec<u8>>,
    /// Its outcome.
    pub result: Result<T, ClientError>,
}

/// One region's share of a range call (a scan page or a delete-range piece).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePart<T> {
    /// The range this part covered.
    pub range: KeyRange,
    /// The pair limit it ran with (scans; 0 for deletes).
    pub limit: usize,
    /// Its outcome.
    pub result: Result<T, ClientError>,
}

/// A caller's `[start, end)` whose bounded end lies below its start is refused before
/// anything is sent: one failed part, so the caller gets a clear error instead of a panic.
fn refuse_inverted<T>(start: &[u8], end: &[u8]) -> Option<Vec<RangePart<T>>> {
    let inverted = !end.is_empty() && start > end;
    inverted.then(|| {
        vec![RangePart {
            range: KeyRange::new(start.to_vec(), start.to_vec()),
            limit: 0,
            result: Err(ClientError::Invalid(format!(
                "range end {end:?} is below its start {start:?}"
            ))),
        }]
    })
}

fn pairs_of(kvs: Vec<KvPair>) -> Vec<Pair> {
    kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

fn fold<T>(parts: Vec<KeysPart<Vec<T>>>) -> Result<Vec<T>, ClientError> {
    let mut all = Vec::new();
    for part in parts {
        all.extend(part.result?);
    }
    Ok(all)
}

impl RawClient {
    /// Groups `keys` by the region the cache places them in (refreshing for unknown keys);
    /// keys without a route form their own part, which then fails with "no route".
    async fn shard(&self, keys: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
        let mut shards: Vec<(Option<u64>, Vec<Vec<u8>>)> = Vec::new();
        for key in keys {
            let region = self.route(Target::Key(&key)).await.map(|r| r.region.id);
            match shards
                .iter_mut()
                .find(|(id, _)| *id == region && region.is_some())
            {
                Some((_, group)) => group.push(key),
                None => shards.push((region, vec![key])),
            }
        }
        shards.into_iter().map(|(_, keys)| keys).collect()
    }

    /// Runs `one` on each region's share of `keys`, re-cutting shares that a split broke.
    pub(crate) async fn for_each_shard<T, F, Fut>(
        &self,
        keys: Vec<Vec<u8>>,
        one: F,
    ) -> Vec<KeysPart<T>>
    where
        F: Fn(Vec<Vec<u8>>) -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let mut parts = Vec::new();
        let mut queue = self.shard(keys).await;
        let mut reshards = 0usize;
        while let Some(part) = queue.pop() {
            match one(part.clone()).await {
                Ok(value) => parts.push(KeysPart {
                    keys: part,
                    result: Ok(value),
                }),
                Err(CallError::Client(error)) => parts.push(KeysPart {
                    keys: part,
                    result: Err(error),
                }),
                Err(CallError::Reshard) => {
                    reshards += 1;
                    assert!(reshards < 10_000, "resharding never settles");
                    queue.extend(self.shard(part).await);
                }
            }
        }
        parts
    }

    /// Reads several keys, one part per region; absent keys are left out.
    pub async fn batch_get_parts(&self, keys: &[Vec<u8>]) -> Vec<KeysPart<Vec<Pair>>> {
        self.for_each_shard(keys.to_vec(), |part| async move {
            let first = part[0].clone();
            self.call_in_region(Target::Key(&first), &part, true, |mut rpc, context, _| {
                let request = kvrpcpb::RawBatchGetRequest {
                    context: Some(context),
                    keys: part.clone(),
                    ..Default::default()
                };
                async move {
                    let response = rpc.raw_batch_get(request).await?.into_inner();
                    Ok((
                        response.region_error,
                        String::new(),
                        pairs_of(response.pairs),
                    ))
                }
            })
            .await
        })
        .await
    }

    /// Reads several keys; absent keys are left out.
    pub async fn batch_get(&self, keys: &[Vec<u8>]) -> Result<Vec<Pair>, ClientError> {
        fold(self.batch_get_parts(keys).await)
    }

    /// Writes several pairs, one atomic part per region (TTL in seconds, 0: none).
    pub async fn batch_put_parts(&self, pairs: &[Pair], ttl_seconds: u64) -> Vec<KeysPart<()>> {
        let keys: Vec<Vec<u8>> = pairs.iter().map(|(key, _)| key.clone()).collect();
        self.for_each_shard(keys, |part| async move {
            let first = part[0].clone();
            let kvs: Vec<KvPair> = part
                .iter()
                .map(|key| {
                    let value = pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .expect("own key")
                        .1
                        .clone();
                    KvPair {
                        key: key.clone(),
                        value,
                        ..Default::default()
                    }
                })
                .collect();
            self.call_in_region(Target::Key(&first), &part, false, |mut rpc, context, _| {
                let ttls = if ttl_seconds == 0 {
                    Vec::new()
                } else {
                    vec![ttl_seconds; kvs.len()]
                };
                let request = kvrpcpb::RawBatchPutRequest {
                    context: Some(context),
                    pairs: kvs.clone(),
                    ttls,
                    ..Default::default()
                };
                async move {
                    let response = rpc.raw_batch_put(request).await?.into_inner();
                    Ok((response.region_error, response.error, ()))
                }
            })
            .await
        })
        .await
    }

    /// Writes several pairs (atomic per region).
    pub async fn batch_put(&self, pairs: &[Pair], ttl_seconds: u64) -> Result<(), ClientError> {
        for part in self.batch_put_parts(pairs, ttl_seconds).await {
            part.result?;
        }
        Ok(())
    }

    /// Deletes several keys, one atomic part per region.
    pub async fn batch_delete_parts(&self, keys: &[Vec<u8>]) -> Vec<KeysPart<()>> {
        self.for_each_shard(keys.to_vec(), |part| async move {
            let first = part[0].clone();
            self.call_in_region(Target::Key(&first), &part, false, |mut rpc, context, _| {
                let request = kvrpcpb::RawBatchDeleteRequest {
                    context: Some(context),
                    keys: part.clone(),
                    ..Default::default()
                };
                async move {
                    let response = rpc.raw_batch_delete(request).await?.into_inner();
                    Ok((response.region_error, response.error, ()))
                }
            })
            .await
        })
        .await
    }

    /// Deletes several keys (atomic per region).
    pub async fn batch_delete(&self, keys: &[Vec<u8>]) -> Result<(), ClientError> {
        for part in self.batch_delete_parts(keys).await {
            part.result?;
        }
        Ok(())
    }

    /// Deletes every key in `[start, end)` (empty end: unbounded), one atomic piece per
    /// region, in key order.
    pub async fn delete_range_parts(&self, start: &[u8], end: &[u8]) -> Vec<RangePart<()>> {
        if let Some(refused) = refuse_inverted(start, end) {
            return refused;
        }
        let mut parts = Vec::new();
        let mut cursor = start.to_vec();
        loop {
            // The piece the last attempt sent: an ambiguous failure may have deleted exactly
            // that piece, so it is what the failed part reports.
            let attempted = std::sync::Mutex::new(None);
            let outcome = self
                .call_in_region(
                    Target::Key(&cursor),
                    &[],
                    false,
                    |mut rpc, context, route| {
                        let piece = clamp_forward(&cursor, end, &route);
                        *attempted.lock().expect("attempt lock") = Some(piece.clone());
                        let request = kvrpcpb::RawDeleteRangeRequest {
                            context: Some(context),
                            start_key: piece.start.clone(),
                            end_key: piece.end.clone(),
                            ..Default::default()
                        };
                        async move {
                            let response = rpc.raw_delete_range(request).await?.into_inner();
                            Ok((response.region_error, response.error, piece))
                        }
                    },
                )
                .await;
            let (piece, result) = match outcome {
                Ok(piece) => (piece, Ok(())),
                Err(CallError::Client(error)) => {
                    let last = attempted.lock().expect("attempt lock").clone();
                    let piece = last.unwrap_or_else(|| KeyRange::new(cursor.clone(), end.to_vec()));
                    (piece, Err(error))
                }
                Err(CallError::Reshard) => unreachable!("range pieces never reshard"),
            };
            let failed = result.is_err();
            let next = piece.end.clone();
            parts.push(RangePart {
                range: piece,
                limit: 0,
                result,
            });
            if failed || next.is_empty() || next == end {
                return parts;
            }
            cursor = next;
        }
    }

    /// Deletes every key in `[start, end)`.
    pub async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<(), ClientError> {
        for part in self.delete_range_parts(start, end).await {
            part.result?;
        }
        Ok(())
    }

    /// Up to `limit` pairs in `[start, end)` (empty end: unbounded), one page per region
    /// (and per `SCAN_LIMIT_MAX` pairs), ascending or, with `reverse`, descending.
    pub async fn scan_pages(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Vec<RangePart<Vec<Pair>>> {
        if let Some(refused) = refuse_inverted(start, end) {
            return refused;
        }
        let mut pages = Vec::new();
        let mut remaining = KeyRange::new(start.to_vec(), end.to_vec());
        let mut left = limit;
        while left > 0 && !remaining.is_empty() {
            let page_limit = left.min(SCAN_LIMIT_MAX);
            let page = self.scan_page(&remaining, page_limit, reverse).await;
            let failed = page.result.is_err();
            let found = page.result.as_ref().map_or(0, Vec::len);
            let next = next_remaining(&remaining, &page, reverse);
            pages.push(page);
            left -= found.min(left);
            match next {
                Some(next) if !failed => remaining = next,
                _ => break,
            }
        }
        pages
    }

    async fn scan_page(
        &self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> RangePart<Vec<Pair>> {
        let target = if reverse {
            Target::Before(&range.end)
        } else {
            Target::Key(&range.start)
        };
        let outcome = self
            .call_in_region(target, &[], true, |mut rpc, context, route| {
                let piece = if reverse {
                    clamp_reverse(&range.start, &range.end, &route)
                } else {
                    clamp_forward(&range.start, &range.end, &route)
                };
                // TiKV names the upper bound `start_key` in reverse scans.
                let (start_key, end_key) = if reverse {
                    (piece.end.clone(), piece.start.clone())
                } else {
                    (piece.start.clone(), piece.end.clone())
                };
                let request = kvrpcpb::RawScanRequest {
                    context: Some(context),
                    start_key,
                    end_key,
                    limit: limit as u32,
                    reverse,
                    ..Default::default()
                };
                async move {
                    let response = rpc.raw_scan(request).await?.into_inner();
                    Ok((
                        response.region_error,
                        String::new(),
                        (piece, pairs_of(response.kvs)),
                    ))
                }
            })
            .await;
        match outcome {
            Ok((piece, pairs)) => {
                let result = check_page(&piece, &pairs, limit, reverse)
                    .map(|()| pairs)
                    .map_err(ClientError::Unavailable);
                RangePart {
                    range: piece,
                    limit,
                    result,
                }
            }
            Err(CallError::Client(error)) => RangePart {
                range: range.clone(),
                limit,
                result: Err(error),
            },
            Err(CallError::Reshard) => unreachable!("scan pages never reshard"),
        }
    }

    /// Up to `limit` pairs in `[start, end)`, ascending (or descending with `reverse`).
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Result<Vec<Pair>, ClientError> {
        self.scan_ordered(start, end, limit as usize, false).await
    }

    /// Up to `limit` pairs in `[start, end)`, in the given order.
    pub async fn scan_ordered(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<Pair>, ClientError> {
        let mut all = Vec::new();
        for page in self.scan_pages(start, end, limit, reverse).await {
            all.extend(page.result?);
        }
        all.truncate(limit);
        Ok(all)
    }
}

/// `[start, end)` cut to the region of `route` (which holds `start`).
fn clamp_forward(start: &[u8], end: &[u8], route: &Route) -> KeyRange {
    let region_end = &route.region.end_key;
    let end = if KeyRange::cmp_end(end, region_end).is_le() {
        end.to_vec()
    } else {
        region_end.clone()
    };
    KeyRange::new(start.to_vec(), end)
}

/// `[start, end)` cut to the region of `route` (which holds the keys just below `end`).
fn clamp_reverse(start: &[u8], end: &[u8], route: &Route) -> KeyRange {
    let start = start.max(route.region.start_key.as_slice()).to_vec();
    let end = if end.is_empty() || (!start.is_empty() && end.to_vec() >= start) {
        end.to_vec()
    } else {
        start.clone()
    };
    KeyRange::new(start, end)
}

/// A store's scan page must hold at most `limit` pairs, inside the piece asked for, in
/// strict scan order: the next page starts after the last key, so a page that breaks this
/// would make the client skip keys, repeat them, or build an inverted range.
fn check_page(piece: &KeyRange, pairs: &[Pair], limit: usize, reverse: bool) -> Result<(), String> {
    if pairs.len() > limit {
        return Err(format!(
            "a scan page of {} pairs for a limit of {limit}",
            pairs.len()
        ));
    }
    if let Some((key, _)) = pairs.iter().find(|(key, _)| !piece.contains(key)) {
        return Err(format!(
            "a scan page holds key {key:?} outside the range asked for"
        ));
    }
    let ordered = pairs.windows(2).all(|pair| {
        let (first, second) = (&pair[0].0, &pair[1].0);
        if reverse {
            first > second
        } else {
            first < second
        }
    });
    if !ordered {
        return Err("a scan page out of order".into());
    }
    Ok(())
}

/// What is left of `remaining` after `page` (None: nothing, or the page ended the scan).
fn next_remaining(
    remaining: &KeyRange,
    page: &RangePart<Vec<Pair>>,
    reverse: bool,
) -> Option<KeyRange> {
    let pairs = page.result.as_ref().ok()?;
    let full = pairs.len() == page.limit;
    if reverse {
        // Continue below the last key read, or below the page when it was not full.
        let upper = match (full, pairs.last()) {
            (true, Some((key, _))) => key.clone(),
            _ => page.range.start.clone(),
        };
        if upper.is_empty() || upper <= remaining.start {
            return None;
        }
        Some(KeyRange::new(remaining.start.clone(), upper))
    } else {
        let lower = match (full, pairs.last()) {
            (true, Some((key, _))) => {
                let mut next = key.clone();
                next.push(0);
                next
            }
            _ => page.range.end.clone(),
        };
        if lower.is_empty() {
            return None;
        }
        let next = KeyRange::new(lower, remaining.end.clone());
        (!next.is_empty()).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review (issue 11): a scan or delete-range over `[b"z", b"a")` reached
    /// `KeyRange::new` and panicked the caller's task.
    #[test]
    fn an_inverted_range_is_refused_with_a_clear_error() {
        let refused = refuse_inverted::<()>(b"z", b"a").expect("refused");
        assert_eq!(refused.len(), 1);
        let error = refused[0].result.as_ref().unwrap_err();
        assert!(matches!(error, ClientError::Invalid(why) if why.contains("below its start")));
        assert!(refuse_inverted::<()>(b"a", b"z").is_none());
        assert!(
            refuse_inverted::<()>(b"z", b"").is_none(),
            "an empty end is unbounded"
        );
        assert!(
            refuse_inverted::<()>(b"a", b"a").is_none(),
            "an empty range is no error"
        );
    }

    /// Review finding (issue 11): the next page started after the last key a store
    /// returned, unchecked; a key at or past the range's end panicked in `KeyRange::new`.
    #[test]
    fn a_scan_page_outside_its_range_or_out_of_order_is_refused() {
        let piece = KeyRange::new(b"b".to_vec(), b"m".to_vec());
        let pair = |key: &[u8]| (key.to_vec(), Vec::new());
        assert!(check_page(&piece, &[pair(b"b"), pair(b"c")], 2, false).is_ok());
        assert!(check_page(&piece, &[pair(b"c"), pair(b"b")], 2, true).is_ok());
        assert!(
            check_page(&piece, &[pair(b"c"), pair(b"z")], 2, false).is_err(),
            "past the end"
        );
        assert!(
            check_page(&piece, &[pair(b"a")], 2, false).is_err(),
            "below the start"
        );
        assert!(
            check_page(&piece, &[pair(b"c"), pair(b"b")], 2, false).is_err(),
            "order"
        );
        assert!(
            check_page(&piece, &[pair(b"c"), pair(b"c")], 2, false).is_err(),
            "repeat"
        );
        assert!(
            check_page(&piece, &[pair(b"c"), pair(b"d")], 1, false).is_err(),
            "over limit"
        );
    }
}
