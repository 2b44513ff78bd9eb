//! A test client over the harness: routes by key to the leader it can see, retries region
//! errors until a deadline, like a real client with a region cache would.

use std::time::Duration;

use ferrokv_core::raw::{value, RawRead, RawReadResult};
use ferrokv_core::store::{AdminOutcome, RegionError, Request, RequestHeader, Response};
use ferrokv_core::types::{KeyRange, RegionEpoch, RegionId, StoreId};
use ferrokv_proto::ferrokv_raftpb::{
    write_op, AdminRequest, CasOp, CfName, DeleteOp, PutOp, WriteOp,
};
use ferrokv_proto::metapb;

use super::Cluster;

/// Pause between retries.
const RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Why a client call gave up.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// No answer in time: the outcome is unknown.
    Timeout,
    /// A definite, non-retryable error.
    Failed(String),
}

fn retryable(error: &RegionError) -> bool {
    matches!(
        error,
        RegionError::NotLeader { .. }
            | RegionError::EpochNotMatch { .. }
            | RegionError::RegionNotFound(_)
            | RegionError::StaleCommand
            | RegionError::ServerIsBusy(_)
            | RegionError::KeyNotInRegion { .. }
    )
}

/// A raw put op storing `value` without TTL.
pub fn put_op(key: &[u8], value_bytes: &[u8]) -> WriteOp {
    let put = PutOp {
        cf: CfName::CfRaw as i32,
        key: key.to_vec(),
        value: value::encode(value_bytes, None),
    };
    WriteOp {
        op: Some(write_op::Op::Put(put)),
    }
}

/// A raw delete op.
pub fn delete_op(key: &[u8]) -> WriteOp {
    WriteOp {
        op: Some(write_op::Op::Delete(DeleteOp {
            cf: CfName::CfRaw as i32,
            key: key.to_vec(),
        })),
    }
}

impl Cluster {
    /// The newest region containing `key` that some running store knows, and the store to
    /// ask (its leader if known).
    pub fn route(&self, key: &[u8]) -> Option<(metapb::Region, StoreId)> {
        // Newest epoch first; among equals a leader, and among leaders the highest term (a
        // deposed leader cut off from its peers still believes it leads).
        let mut best: Option<((u64, bool, u64), metapb::Region, StoreId)> = None;
        for id in self.store_ids() {
            for status in self.regions(id) {
                let range = KeyRange::new(
                    status.region.start_key.clone(),
                    status.region.end_key.clone(),
                );
                if !range.contains(key) {
                    continue;
                }
                let version = status.region.region_epoch.map_or(0, |e| e.version);
                let rank = (version, status.is_leader, status.term);
                if best.as_ref().is_none_or(|(known, _, _)| rank > *known) {
                    best = Some((rank, status.region.clone(), id));
                }
            }
        }
        best.map(|(_, region, id)| (region, id))
    }

    fn call(
        &mut self,
        key: &[u8],
        timeout: Duration,
        make: &dyn Fn(RequestHeader) -> Request,
    ) -> Result<Response, CallError> {
        let deadline = self.now() + timeout;
        let mut hint: Option<StoreId> = None;
        loop {
            if self.now() >= deadline {
                return Err(CallError::Timeout);
            }
            let Some((region, routed)) = self.route(key) else {
                self.run_for(RETRY_BACKOFF);
                continue;
            };
            let store = hint.take().filter(|id| self.is_up(*id)).unwrap_or(routed);
            let epoch = RegionEpoch::from(region.region_epoch);
            let header = RequestHeader {
                region_id: RegionId(region.id),
                epoch,
            };
            let token = self.submit(store, make(header));
            let remaining = deadline.saturating_since(self.now());
            let Some(response) = self.wait(token, remaining) else {
                return Err(CallError::Timeout);
            };
            match region_error(&response) {
                None => return Ok(response),
                Some(RegionError::NotLeader {
                    leader: Some(leader),
                    ..
                }) => {
                    hint = Some(StoreId(leader.store_id));
                }
                Some(error) if retryable(error) => self.run_for(RETRY_BACKOFF),
                Some(error) => return Err(CallError::Failed(error.to_string())),
            }
        }
    }

    /// Writes `ops` (all within one region, routed by `key`).
    pub fn write(
        &mut self,
        key: &[u8],
        ops: Vec<WriteOp>,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.call(key, timeout, &|header| Request::Write {
            header,
            ops: ops.clone(),
        })
    }

    /// Raw put.
    pub fn put(
        &mut self,
        key: &[u8],
        value_bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), CallError> {
        self.write(key, vec![put_op(key, value_bytes)], timeout)
            .map(|_| ())
    }

    /// Raw delete.
    pub fn delete(&mut self, key: &[u8], timeout: Duration) -> Result<(), CallError> {
        self.write(key, vec![delete_op(key)], timeout).map(|_| ())
    }

    /// Raw compare-and-swap: returns (swapped, previous value).
    pub fn cas(
        &mut self,
        key: &[u8],
        previous: Option<&[u8]>,
        new_value: &[u8],
        timeout: Duration,
    ) -> Result<(bool, Option<Vec<u8>>), CallError> {
        let cas = CasOp {
            key: key.to_vec(),
            previous_not_exist: previous.is_none(),
            previous_value: previous.unwrap_or_default().to_vec(),
            value: value::encode(new_value, None),
            now_ms: 0,
        };
        let op = WriteOp {
            op: Some(write_op::Op::Cas(cas)),
        };
        match self.write(key, vec![op], timeout)? {
            Response::Write(Ok(outcome)) => Ok(outcome.cas.expect("a CAS reports its outcome")),
            other => Err(CallError::Failed(format!("unexpected response {other:?}"))),
        }
    }

    /// Linearizable raw get.
    pub fn get(&mut self, key: &[u8], timeout: Duration) -> Result<Option<Vec<u8>>, CallError> {
        let read = RawRead::Get { key: key.to_vec() };
        let response = self.call(key, timeout, &|header| Request::Read {
            header,
            read: read.clone(),
            now_ms: 0,
        })?;
        match response {
            Response::Read(Ok(RawReadResult::Value(value))) => Ok(value),
            other => Err(CallError::Failed(format!("unexpected response {other:?}"))),
        }
    }

    /// An admin command on the region containing `key`, sent to its leader.
    pub fn admin(
        &mut self,
        key: &[u8],
        make: impl Fn(u64) -> AdminRequest,
        timeout: Duration,
    ) -> Result<AdminOutcome, CallError> {
        let response = self.call(key, timeout, &|header| {
            Request::Admin(make(header.region_id.get()))
        })?;
        match response {
            Response::Admin(Ok(outcome)) => Ok(outcome),
            other => Err(CallError::Failed(format!("unexpected response {other:?}"))),
        }
    }
}

/// The region error inside a response, if any.
pub fn region_error(response: &Response) -> Option<&RegionError> {
    match response {
        Response::Write(Err(error)) | Response::Read(Err(error)) | Response::Admin(Err(error)) => {
            Some(error)
        }
        _ => None,
    }
}
