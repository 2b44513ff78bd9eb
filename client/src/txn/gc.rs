//! Advancing the GC safe point, as TiDB's GC leader (and tikv-client's `gc`) does: first
//! resolve every lock below the new safe point in the range, region by region, then tell PD.
//! The order matters. A store collecting versions may delete a primary's commit record
//! (a newer version at or below the safe point hides it); a secondary lock still waiting
//! for resolution would then find its primary neither locked nor committed and be rolled
//! back, losing a committed write. Resolving first leaves no such lock.
//!
//! The caller picks a safe point below the start_ts of every transaction still running.

use ferrokv_core::limits::SCAN_LOCK_LIMIT_MAX;
use ferrokv_core::types::codec::decode_bytes;
use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::{TxnClient, TxnError};
use crate::pd::PdClient;

/// What one region's scan found: its locks below the safe point and where to go next.
struct Page {
    locks: Vec<kvrpcpb::LockInfo>,
    /// The user key the next page starts at; `None` at the end of the range.
    next: Option<Vec<u8>>,
}

impl TxnClient {
    /// Resolves every lock below `safe_point` with a user key in `[start, end)` (empty
    /// `end`: to the end), then sets PD's GC safe point to `safe_point`. Stores then
    /// collect every region: the range must hold every transactional key of the cluster
    /// (the whole space above the raw/transactional bound), or locks outside it may be
    /// stranded.
    pub async fn gc(
        &self,
        pd: &PdClient,
        start: &[u8],
        end: &[u8],
        safe_point: TimeStamp,
    ) -> Result<(), TxnError> {
        if safe_point == TimeStamp::ZERO {
            return Err(TxnError::Oracle(
                "a GC safe point must be above zero".into(),
            ));
        }
        self.resolve_locks_below(start, end, safe_point).await?;
        pd.update_gc_safe_point(safe_point.get())
            .await
            .map(|_| ())
            .map_err(|error| TxnError::Oracle(format!("updating the GC safe point: {error}")))
    }

    /// Resolves the locks below `safe_point` in `[start, end)`; fails if one still lives
    /// (its transaction started below the safe point: the caller picked it too high).
    async fn resolve_locks_below(
        &self,
        start: &[u8],
        end: &[u8],
        safe_point: TimeStamp,
    ) -> Result<(), TxnError> {
        let mut from = start.to_vec();
        loop {
            let page = self.scan_locks_page(&from, end, safe_point).await?;
            for lock in &page.locks {
                if !self.resolve_lock(lock, safe_point).await? {
                    return Err(TxnError::NotCommitted(format!(
                        "a lock of txn {} below the safe point {safe_point:?} is alive",
                        lock.lock_version
                    )));
                }
            }
            match page.next {
                Some(next) => {
                    assert!(next > from, "lock scans move forward");
                    from = next;
                }
                None => return Ok(()),
            }
        }
    }

    /// One `KvScanLock` in the region holding `from`, cut at the region's end.
    async fn scan_locks_page(
        &self,
        from: &[u8],
        end: &[u8],
        safe_point: TimeStamp,
    ) -> Result<Page, TxnError> {
        let (locks, region_end) = self
            .call_key(from, |mut rpc, context, route| {
                let region_end = route.region.end_key.clone();
                let decoded_end = match region_end.as_slice() {
                    [] => Ok(Vec::new()),
                    bound => decode_bytes(bound).map(|(key, _)| key),
                };
                let cut = match decoded_end {
                    Ok(bound)
                        if end.is_empty() || (!bound.is_empty() && bound.as_slice() < end) =>
                    {
                        Ok(bound)
                    }
                    Ok(_) => Ok(end.to_vec()),
                    Err(error) => Err(error),
                };
                let request = cut.map(|end_key| kvrpcpb::ScanLockRequest {
                    context: Some(context),
                    max_version: safe_point.get() - 1,
                    start_key: from.to_vec(),
                    end_key,
                    limit: SCAN_LOCK_LIMIT_MAX as u32,
                });
                async move {
                    let Ok(request) = request else {
                        return Err(tonic::Status::invalid_argument(format!(
                            "region bound {region_end:?} is not a transactional key"
                        )));
                    };
                    let end_key = request.end_key.clone();
                    let response = rpc.kv_scan_lock(request).await?.into_inner();
                    let message = response.error.map(|e| format!("{e:?}")).unwrap_or_default();
                    Ok((response.region_error, message, (response.locks, end_key)))
                }
            })
            .await?;
        let next = if locks.len() >= SCAN_LOCK_LIMIT_MAX {
            let mut after = locks.last().expect("a full page").key.clone();
            after.push(0);
            Some(after)
        } else {
            (!region_end.is_empty() && region_end.as_slice() != end).then_some(region_end)
        };
        Ok(Page { locks, next })
    }
}
