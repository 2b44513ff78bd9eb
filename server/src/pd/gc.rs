//! The store's GC worker, driven by PD's GC safe point. The client that advances it
//! (`ferrokv_client::txn::TxnClient::gc`, as TiDB's GC leader) first resolves every lock
//! below it, so collecting versions never strands a secondary lock whose primary's commit
//! record is gone.
//!
//! Every `gc_interval`: ask PD for the safe point; publish it to the KV service (data reads
//! below it are refused from then on); then, in every region this store leads that was not
//! yet collected at that safe point, collect the versions no read at or above the safe
//! point can see (`KvService::gc_region`). A region that fails is tried again next round.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use ferrokv_core::env::KvEngine;
use ferrokv_core::store::RegionStatus;
use ferrokv_core::types::codec::decode_bytes;
use ferrokv_core::types::{KeyRange, TimeStamp};
use ferrokv_proto::kvrpcpb::Context;
use ferrokv_proto::metapb;

use super::worker::PdWorker;
use crate::service::txn::Served;

/// The user-key range of a transactional region: its bounds decoded (`None` if a bound
/// is not an encoded key: a raw region holds no transactional data).
fn txn_range(region: &metapb::Region) -> Option<KeyRange> {
    let decode = |bound: &[u8]| match bound {
        [] => Some(Vec::new()),
        encoded => decode_bytes(encoded).ok().map(|(key, _)| key),
    };
    let (start, end) = (decode(&region.start_key)?, decode(&region.end_key)?);
    (end.is_empty() || start <= end).then(|| KeyRange::new(start, end))
}

/// The request context for this store's peer of a region it leads.
fn leader_context(status: &RegionStatus, store_id: u64) -> Option<Context> {
    let peer = status
        .region
        .peers
        .iter()
        .find(|peer| peer.store_id == store_id)?;
    Some(Context {
        region_id: status.region.id,
        region_epoch: status.region.region_epoch,
        peer: Some(*peer),
        ..Default::default()
    })
}

impl<E: KvEngine> PdWorker<E> {
    /// The GC loop (see the module note).
    pub(super) async fn gc(self: std::sync::Arc<Self>) {
        // Region id -> the safe point it was last collected at.
        let mut collected: BTreeMap<u64, u64> = BTreeMap::new();
        loop {
            tokio::time::sleep(self.options.gc_interval).await;
            let safe_point = match self.pd.get_gc_safe_point().await {
                Ok(safe_point) => safe_point,
                Err(error) => {
                    tracing::debug!(%error, "reading the GC safe point failed");
                    continue;
                }
            };
            let published = self.gc_safe_point.fetch_max(safe_point, Ordering::AcqRel);
            let safe_point = safe_point.max(published);
            if safe_point == 0 {
                continue;
            }
            let Some(regions) = self.regions().await else {
                return;
            };
            collected.retain(|id, _| regions.iter().any(|status| status.region.id == *id));
            for status in regions.iter().filter(|status| status.is_leader) {
                if collected.get(&status.region.id) >= Some(&safe_point) {
                    continue;
                }
                if self.collect_region(status, TimeStamp(safe_point)).await {
                    collected.insert(status.region.id, safe_point);
                }
            }
        }
    }

    /// Collects the old versions of one region; true if that went through.
    async fn collect_region(&self, status: &RegionStatus, safe_point: TimeStamp) -> bool {
        let (Some(_), Some(context)) = (
            txn_range(&status.region),
            leader_context(status, self.store_id),
        ) else {
            return true; // nothing transactional here
        };
        match self.kv.gc_region(Some(&context), safe_point).await {
            Ok(Served::Done(Ok(_))) => true,
            Ok(Served::Done(Err(error))) => {
                tracing::warn!(region = status.region.id, %error, "GC refused");
                false
            }
            Ok(Served::Region(error)) => {
                tracing::debug!(region = status.region.id, ?error, "GC: region error");
                false
            }
            Err(status_error) => {
                tracing::debug!(region = status.region.id, %status_error, "GC failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokv_core::types::codec::encode_bytes;

    fn region(start: &[u8], end: &[u8]) -> metapb::Region {
        metapb::Region {
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn transactional_regions_decode_and_raw_ones_hold_nothing() {
        let range = txn_range(&region(&encode_bytes(b"a"), &encode_bytes(b"m"))).unwrap();
        assert_eq!(
            (range.start.as_slice(), range.end.as_slice()),
            (&b"a"[..], &b"m"[..])
        );
        let open = txn_range(&region(b"", b"")).unwrap();
        assert!(open.start.is_empty() && open.end.is_empty());
        assert!(
            txn_range(&region(b"k011", b"")).is_none(),
            "a raw bound is no encoded key"
        );
    }
}
