//! Typed PD calls: each builds its request, runs it through `PdClient::call` (leader
//! discovery, retries) and turns a header error into `PdClientError::Header`.

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::{metapb, pdpb};

use super::{check_header, PdClient, PdClientError};

/// A region with its leader, as PD's route answers give it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRoute {
    /// The region.
    pub region: metapb::Region,
    /// Its leader, if PD knows it.
    pub leader: Option<metapb::Peer>,
    /// Peers still catching up.
    pub pending_peers: Vec<metapb::Peer>,
}

fn route(response: pdpb::GetRegionResponse) -> Result<Option<RegionRoute>, PdClientError> {
    check_header(response.header.as_ref())?;
    Ok(response.region.map(|region| RegionRoute {
        region,
        leader: response.leader,
        pending_peers: response.pending_peers,
    }))
}

macro_rules! unary {
    ($self:ident, $method:ident, |$header:ident| $request:expr) => {{
        let response = $self
            .call(|mut rpc, $header| {
                let request = $request;
                async move { Ok(rpc.$method(request).await?.into_inner()) }
            })
            .await?;
        check_header(response.header.as_ref())?;
        response
    }};
}

impl PdClient {
    /// One fresh id.
    pub async fn alloc_id(&self) -> Result<u64, PdClientError> {
        let response = unary!(self, alloc_id, |header| pdpb::AllocIdRequest {
            header: Some(header)
        });
        (response.id != 0)
            .then_some(response.id)
            .ok_or(PdClientError::Malformed("id 0"))
    }

    /// True if the cluster has its first store and region.
    pub async fn is_bootstrapped(&self) -> Result<bool, PdClientError> {
        let response = unary!(self, is_bootstrapped, |header| {
            pdpb::IsBootstrappedRequest {
                header: Some(header),
            }
        });
        Ok(response.bootstrapped)
    }

    /// Creates the cluster with its first store and region.
    pub async fn bootstrap(
        &self,
        store: metapb::Store,
        region: metapb::Region,
    ) -> Result<(), PdClientError> {
        unary!(self, bootstrap, |header| pdpb::BootstrapRequest {
            header: Some(header),
            store: Some(store.clone()),
            region: Some(region.clone()),
        });
        Ok(())
    }

    /// Registers or updates a store.
    pub async fn put_store(&self, store: metapb::Store) -> Result<(), PdClientError> {
        unary!(self, put_store, |header| pdpb::PutStoreRequest {
            header: Some(header),
            store: Some(store.clone()),
        });
        Ok(())
    }

    /// One store.
    pub async fn get_store(&self, store_id: u64) -> Result<metapb::Store, PdClientError> {
        let response = unary!(self, get_store, |header| pdpb::GetStoreRequest {
            header: Some(header),
            store_id,
        });
        response.store.ok_or(PdClientError::Malformed("no store"))
    }

    /// Every store (tombstones included unless excluded).
    pub async fn get_all_stores(
        &self,
        exclude_tombstone_stores: bool,
    ) -> Result<Vec<metapb::Store>, PdClientError> {
        let response = unary!(self, get_all_stores, |header| {
            pdpb::GetAllStoresRequest {
                header: Some(header),
                exclude_tombstone_stores,
            }
        });
        Ok(response.stores)
    }

    /// The region holding `key`, if PD knows one.
    pub async fn get_region(&self, key: &[u8]) -> Result<Option<RegionRoute>, PdClientError> {
        let response = unary!(self, get_region, |header| pdpb::GetRegionRequest {
            header: Some(header),
            region_key: key.to_vec(),
            need_buckets: false,
        });
        route(response)
    }

    /// The region before the one holding `key`.
    pub async fn get_prev_region(&self, key: &[u8]) -> Result<Option<RegionRoute>, PdClientError> {
        let response = unary!(self, get_prev_region, |header| pdpb::GetRegionRequest {
            header: Some(header),
            region_key: key.to_vec(),
            need_buckets: false,
        });
        route(response)
    }

    /// The region with this id.
    pub async fn get_region_by_id(
        &self,
        region_id: u64,
    ) -> Result<Option<RegionRoute>, PdClientError> {
        let response = unary!(self, get_region_by_id, |header| {
            pdpb::GetRegionByIdRequest {
                header: Some(header),
                region_id,
                need_buckets: false,
            }
        });
        route(response)
    }

    /// Regions overlapping `[start, end)` in key order (`limit` 0: PD's maximum).
    pub async fn scan_regions(
        &self,
        start: &[u8],
        end: &[u8],
        limit: i32,
    ) -> Result<Vec<RegionRoute>, PdClientError> {
        let response = unary!(self, scan_regions, |header| pdpb::ScanRegionsRequest {
            header: Some(header),
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            limit,
        });
        Ok(response
            .regions
            .into_iter()
            .filter_map(|region| {
                Some(RegionRoute {
                    region: region.region?,
                    leader: region.leader,
                    pending_peers: region.pending_peers,
                })
            })
            .collect())
    }

    /// Ids for splitting `region` into `split_count + 1` regions.
    pub async fn ask_batch_split(
        &self,
        region: metapb::Region,
        split_count: u32,
    ) -> Result<Vec<pdpb::SplitId>, PdClientError> {
        let response = unary!(self, ask_batch_split, |header| {
            pdpb::AskBatchSplitRequest {
                header: Some(header),
                region: Some(region.clone()),
                split_count,
            }
        });
        if response.ids.len() != split_count as usize {
            return Err(PdClientError::Malformed("wrong number of split ids"));
        }
        Ok(response.ids)
    }

    /// Reports the regions a split produced.
    pub async fn report_batch_split(
        &self,
        regions: Vec<metapb::Region>,
    ) -> Result<(), PdClientError> {
        unary!(self, report_batch_split, |header| {
            pdpb::ReportBatchSplitRequest {
                header: Some(header),
                regions: regions.clone(),
            }
        });
        Ok(())
    }

    /// Sends a store heartbeat.
    pub async fn store_heartbeat(&self, stats: pdpb::StoreStats) -> Result<(), PdClientError> {
        unary!(self, store_heartbeat, |header| {
            pdpb::StoreHeartbeatRequest {
                header: Some(header),
                stats: Some(stats.clone()),
            }
        });
        Ok(())
    }

    /// The GC safe point.
    pub async fn get_gc_safe_point(&self) -> Result<u64, PdClientError> {
        let response = unary!(self, get_gc_safe_point, |header| {
            pdpb::GetGcSafePointRequest {
                header: Some(header),
            }
        });
        Ok(response.safe_point)
    }

    /// Raises the GC safe point; returns the safe point in force afterwards.
    pub async fn update_gc_safe_point(&self, safe_point: u64) -> Result<u64, PdClientError> {
        let response = unary!(self, update_gc_safe_point, |header| {
            pdpb::UpdateGcSafePointRequest {
                header: Some(header),
                safe_point,
            }
        });
        Ok(response.new_safe_point)
    }

    /// The operator running on a region (`None` if none).
    pub async fn get_operator(
        &self,
        region_id: u64,
    ) -> Result<Option<pdpb::GetOperatorResponse>, PdClientError> {
        let result = self
            .call(|mut rpc, header| {
                let request = pdpb::GetOperatorRequest {
                    header: Some(header),
                    region_id,
                };
                async move { Ok(rpc.get_operator(request).await?.into_inner()) }
            })
            .await?;
        match check_header(result.header.as_ref()) {
            Ok(()) => Ok(Some(result)),
            Err(PdClientError::Header {
                kind: pdpb::ErrorType::RegionNotFound,
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `count` timestamps over a fresh `Tso` stream; returns the largest.
    pub async fn tso(&self, count: u32) -> Result<TimeStamp, PdClientError> {
        let response = self
            .call(|mut rpc, header| {
                let request = pdpb::TsoRequest {
                    header: Some(header),
                    count,
                    dc_location: String::new(),
                };
                async move {
                    let outbound = futures::stream::iter(vec![request]);
                    let mut inbound = rpc.tso(outbound).await?.into_inner();
                    let response = inbound.message().await?;
                    response.ok_or_else(|| tonic::Status::unavailable("tso stream ended"))
                }
            })
            .await?;
        if response.count != count {
            return Err(PdClientError::Malformed("tso count differs"));
        }
        let timestamp = response
            .timestamp
            .ok_or(PdClientError::Malformed("no timestamp"))?;
        let physical = u64::try_from(timestamp.physical)
            .map_err(|_| PdClientError::Malformed("negative physical"))?;
        let logical = u64::try_from(timestamp.logical)
            .map_err(|_| PdClientError::Malformed("negative logical"))?;
        Ok(TimeStamp::compose(physical, logical))
    }
}
