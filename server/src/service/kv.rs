//! The `Tikv` service, raw KV part: validate, turn into store requests, answer in kvproto's
//! terms. Region errors travel in `region_error` so clients refresh routes and retry; bad
//! input travels in `error` (or as `InvalidArgument` where the response has no such field).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferrokv_core::env::{Clock, Direction};
use ferrokv_core::raw::{value, RawRead, RawReadResult};
use ferrokv_core::store::{
    Request as StoreRequest, RequestHeader, Response as StoreResponse, WriteOutcome,
};
use ferrokv_proto::errorpb;
use ferrokv_proto::ferrokv_raftpb::{
    write_op, CasOp, CfName, DeleteOp, DeleteRangeOp, PutOp, WriteOp,
};
use ferrokv_proto::kvrpcpb::{self, KvPair};
use ferrokv_proto::tikvpb::tikv_server::Tikv;
use tonic::{Request, Response, Status};

use super::txn::{done_into, refuse_unsupported_prewrite, region_error_setter, respond};
use super::validate::{self, InputError};
use crate::clock::RuntimeClock;
use crate::node::NodeHandle;
use ferrokv_core::txn::{request as txn_request, response as txn_response, CommandResult};

/// Why a request was not served.
enum Failure {
    /// The node took the request and cannot say whether it applied (it stopped, or the
    /// proposal's fate is unknown): answered as gRPC `Unavailable`, which clients treat as
    /// ambiguous.
    Lost,
    Region(Box<errorpb::Error>),
    Other(String),
}

impl From<InputError> for Failure {
    fn from(error: InputError) -> Self {
        Failure::Other(error.to_string())
    }
}

/// Splits a failure into a response's `(region_error, error)` fields; an unknown outcome
/// becomes `Unavailable` so clients treat it as ambiguous.
fn split(failure: Failure) -> Result<(Option<errorpb::Error>, String), Status> {
    match failure {
        Failure::Lost => Err(lost()),
        Failure::Region(error) => Ok((Some(*error), String::new())),
        Failure::Other(message) => Ok((None, message)),
    }
}

fn lost() -> Status {
    Status::unavailable("the outcome of the request is unknown: it may or may not have applied")
}

/// For responses without an `error` field: bad input becomes `InvalidArgument`.
fn region_only(failure: Failure) -> Result<Option<errorpb::Error>, Status> {
    match failure {
        Failure::Lost => Err(lost()),
        Failure::Region(error) => Ok(Some(*error)),
        Failure::Other(message) => Err(Status::invalid_argument(message)),
    }
}

fn put_op(key: Vec<u8>, stored: Vec<u8>) -> WriteOp {
    WriteOp {
        op: Some(write_op::Op::Put(PutOp {
            cf: CfName::CfRaw as i32,
            key,
            value: stored,
        })),
    }
}

fn delete_op(key: Vec<u8>) -> WriteOp {
    WriteOp {
        op: Some(write_op::Op::Delete(DeleteOp {
            cf: CfName::CfRaw as i32,
            key,
        })),
    }
}

fn pairs(found: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<KvPair> {
    found
        .into_iter()
        .map(|(key, value)| KvPair {
            key,
            value,
            ..Default::default()
        })
        .collect()
}

fn direction(reverse: bool) -> Direction {
    if reverse {
        Direction::Reverse
    } else {
        Direction::Forward
    }
}

/// The KV endpoint of one node (raw and transactional).
#[derive(Clone)]
pub struct KvService {
    node: NodeHandle,
    clock: RuntimeClock,
    /// The GC safe point this store last heard of from PD (0: none); data reads below it
    /// are refused.
    gc_safe_point: Arc<AtomicU64>,
    /// True when a PD syncs max_ts (async commit and 1PC are served only then).
    with_pd: bool,
}

impl KvService {
    /// A service over `node`.
    pub fn new(node: NodeHandle, clock: RuntimeClock) -> KvService {
        KvService {
            node,
            clock,
            gc_safe_point: Arc::default(),
            with_pd: false,
        }
    }

    /// The same service on a store run by PD: data reads below the safe point
    /// `gc_safe_point` holds are refused, and async commit and 1PC are served (PD syncs
    /// max_ts).
    pub fn with_pd(self, gc_safe_point: Arc<AtomicU64>) -> KvService {
        KvService {
            gc_safe_point,
            with_pd: true,
            ..self
        }
    }

    /// `read`, unless it would read below the GC safe point.
    pub(super) fn above_gc_safe_point(
        &self,
        read: ferrokv_core::txn::ReadCommand,
    ) -> Result<ferrokv_core::txn::ReadCommand, ferrokv_core::txn::Error> {
        let safe_point = self.gc_safe_point.load(Ordering::Acquire);
        match read.snapshot_ts() {
            Some(ts) if ts.get() < safe_point => Err(ferrokv_core::txn::Error::InvalidRequest(
                format!(
                    "read at ts {} is below the GC safe point {safe_point}: versions it needs may be gone",
                    ts.get()
                ),
            )),
            _ => Ok(read),
        }
    }

    /// The node this service serves.
    pub(super) fn node(&self) -> &NodeHandle {
        &self.node
    }

    async fn write(
        &self,
        header: RequestHeader,
        ops: Vec<WriteOp>,
    ) -> Result<WriteOutcome, Failure> {
        if buggify!() {
            let busy = ferrokv_core::store::RegionError::ServerIsBusy("buggify".into());
            return Err(Failure::Region(Box::new(busy.to_proto())));
        }
        match self
            .node
            .request(StoreRequest::Write { header, ops })
            .await
            .map_err(|_| Failure::Lost)?
        {
            StoreResponse::Write(Ok(outcome)) => Ok(outcome),
            StoreResponse::Write(Err(error)) | StoreResponse::Admin(Err(error))
                if error.is_ambiguous() =>
            {
                Err(Failure::Lost)
            }
            StoreResponse::Write(Err(error)) | StoreResponse::Admin(Err(error)) => {
                Err(Failure::Region(Box::new(error.to_proto())))
            }
            other => Err(Failure::Other(format!("unexpected store answer {other:?}"))),
        }
    }

    async fn read(&self, header: RequestHeader, read: RawRead) -> Result<RawReadResult, Failure> {
        let now_ms = self.clock.realtime_ms();
        match self
            .node
            .request(StoreRequest::Read {
                header,
                read,
                now_ms,
            })
            .await
            .map_err(|_| Failure::Lost)?
        {
            StoreResponse::Read(Ok(result)) => Ok(result),
            StoreResponse::Read(Err(error)) | StoreResponse::Write(Err(error)) => {
                Err(Failure::Region(Box::new(error.to_proto())))
            }
            other => Err(Failure::Other(format!("unexpected store answer {other:?}"))),
        }
    }

    async fn get(&self, request: kvrpcpb::RawGetRequest) -> Result<Option<Vec<u8>>, Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        validate::bound_key(&request.key)?;
        match self.read(header, RawRead::Get { key: request.key }).await? {
            RawReadResult::Value(found) => Ok(found),
            other => Err(Failure::Other(format!("unexpected read result {other:?}"))),
        }
    }

    async fn batch_get(
        &self,
        request: kvrpcpb::RawBatchGetRequest,
    ) -> Result<Vec<KvPair>, Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        let bytes = request.keys.iter().map(Vec::len).sum();
        validate::batch(request.keys.len(), bytes)?;
        request
            .keys
            .iter()
            .try_for_each(|key| validate::bound_key(key))?;
        match self
            .read(header, RawRead::BatchGet { keys: request.keys })
            .await?
        {
            RawReadResult::Pairs(found) => Ok(pairs(found)),
            other => Err(Failure::Other(format!("unexpected read result {other:?}"))),
        }
    }

    async fn put(&self, request: kvrpcpb::RawPutRequest) -> Result<(), Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        validate::key(&request.key)?;
        validate::value(&request.value)?;
        let expire = validate::expiry(request.ttl, self.clock.realtime_ms())?;
        let op = put_op(request.key, value::encode(&request.value, expire));
        self.write(header, vec![op]).await.map(|_| ())
    }

    async fn batch_put(&self, request: kvrpcpb::RawBatchPutRequest) -> Result<(), Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        let bytes = request
            .pairs
            .iter()
            .map(|pair| pair.key.len() + pair.value.len())
            .sum();
        validate::batch(request.pairs.len(), bytes)?;
        // kvproto: no TTLs, one per pair, or one for every pair.
        let one_for_all = request.ttls.len() == 1;
        if !request.ttls.is_empty() && !one_for_all && request.ttls.len() != request.pairs.len() {
            return Err(InputError(
                "ttls must be empty, one for all pairs, or one per pair".into(),
            )
            .into());
        }
        let now_ms = self.clock.realtime_ms();
        let mut ops = Vec::with_capacity(request.pairs.len());
        for (position, pair) in request.pairs.into_iter().enumerate() {
            validate::key(&pair.key)?;
            validate::value(&pair.value)?;
            let position = if one_for_all { 0 } else { position };
            // Older clients send one `ttl` for the whole batch.
            #[allow(deprecated)]
            let ttl = request.ttls.get(position).copied().unwrap_or(request.ttl);
            let expire = validate::expiry(ttl, now_ms)?;
            ops.push(put_op(pair.key, value::encode(&pair.value, expire)));
        }
        self.write(header, ops).await.map(|_| ())
    }

    async fn delete(&self, header: RequestHeader, keys: Vec<Vec<u8>>) -> Result<(), Failure> {
        let bytes = keys.iter().map(Vec::len).sum();
        validate::batch(keys.len(), bytes)?;
        keys.iter().try_for_each(|key| validate::key(key))?;
        self.write(header, keys.into_iter().map(delete_op).collect())
            .await
            .map(|_| ())
    }

    async fn scan(&self, request: kvrpcpb::RawScanRequest) -> Result<Vec<KvPair>, Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        let limit = validate::scan_limit(request.limit)?;
        let range = if request.reverse {
            validate::reverse_range(&request.start_key, &request.end_key)?
        } else {
            validate::range(&request.start_key, &request.end_key)?
        };
        let read = RawRead::Scan {
            range,
            limit,
            key_only: request.key_only,
            direction: direction(request.reverse),
        };
        match self.read(header, read).await? {
            RawReadResult::Pairs(found) => Ok(pairs(found)),
            other => Err(Failure::Other(format!("unexpected read result {other:?}"))),
        }
    }

    async fn batch_scan(
        &self,
        request: kvrpcpb::RawBatchScanRequest,
    ) -> Result<Vec<KvPair>, Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        let each_limit = validate::scan_limit(request.each_limit)?;
        if request.ranges.is_empty()
            || request.ranges.len() > ferrokv_core::limits::BATCH_SCAN_RANGES_MAX
        {
            return Err(InputError(format!(
                "{} ranges outside 1..={}",
                request.ranges.len(),
                ferrokv_core::limits::BATCH_SCAN_RANGES_MAX
            ))
            .into());
        }
        let mut ranges = Vec::with_capacity(request.ranges.len());
        for range in &request.ranges {
            ranges.push(if request.reverse {
                validate::reverse_range(&range.start_key, &range.end_key)?
            } else {
                validate::range(&range.start_key, &range.end_key)?
            });
        }
        let read = RawRead::BatchScan {
            ranges,
            each_limit,
            key_only: request.key_only,
            direction: direction(request.reverse),
        };
        match self.read(header, read).await? {
            RawReadResult::Pairs(found) => Ok(pairs(found)),
            other => Err(Failure::Other(format!("unexpected read result {other:?}"))),
        }
    }

    async fn delete_range(&self, request: kvrpcpb::RawDeleteRangeRequest) -> Result<(), Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        let range = validate::range(&request.start_key, &request.end_key)?;
        let op = DeleteRangeOp {
            cf: CfName::CfRaw as i32,
            start_key: range.start,
            end_key: range.end,
        };
        let op = WriteOp {
            op: Some(write_op::Op::DeleteRange(op)),
        };
        self.write(header, vec![op]).await.map(|_| ())
    }

    async fn key_ttl(&self, request: kvrpcpb::RawGetKeyTtlRequest) -> Result<Option<u64>, Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        validate::bound_key(&request.key)?;
        match self
            .read(header, RawRead::GetKeyTtl { key: request.key })
            .await?
        {
            RawReadResult::Ttl(ttl) => Ok(ttl),
            other => Err(Failure::Other(format!("unexpected read result {other:?}"))),
        }
    }

    async fn cas(
        &self,
        request: kvrpcpb::RawCasRequest,
    ) -> Result<(bool, Option<Vec<u8>>), Failure> {
        let header = validate::header(request.context.as_ref())?;
        validate::column_family(&request.cf)?;
        validate::key(&request.key)?;
        validate::value(&request.value)?;
        validate::value(&request.previous_value)?;
        let bytes = request.key.len() + request.value.len() + request.previous_value.len();
        validate::batch(1, bytes)?;
        let now_ms = self.clock.realtime_ms();
        let expire = validate::expiry(request.ttl, now_ms)?;
        let cas = CasOp {
            key: request.key,
            previous_not_exist: request.previous_not_exist,
            previous_value: request.previous_value,
            value: value::encode(&request.value, expire),
            now_ms,
        };
        let outcome = self
            .write(
                header,
                vec![WriteOp {
                    op: Some(write_op::Op::Cas(cas)),
                }],
            )
            .await?;
        outcome
            .cas
            .ok_or_else(|| Failure::Other("compare-and-swap reported no outcome".into()))
    }
}

/// Methods of `Tikv` this node does not serve yet answer `Unimplemented`, naming the method.
/// (madsim's generated trait has no default stubs, so they are spelled out.)
macro_rules! not_served {
    ($($method:ident($request:ident) -> $response:ident;)*) => {
        $(
            // Spelled as `async_trait` expands an `async fn`, since it cannot see inside a
            // macro invocation.
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _: Request<kvrpcpb::$request>,
            ) -> std::pin::Pin<Box<
                dyn std::future::Future<Output = Result<Response<kvrpcpb::$response>, Status>>
                    + Send
                    + 'async_trait,
            >>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                let method = concat!("tikvpb.Tikv/", stringify!($method), " is not served yet");
                Box::pin(async move { Err(Status::unimplemented(method)) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Tikv for KvService {
    not_served! {
        raw_checksum(RawChecksumRequest) -> RawChecksumResponse;
        raw_coprocessor(RawCoprocessorRequest) -> RawCoprocessorResponse;
    }

    async fn kv_get(
        &self,
        request: Request<kvrpcpb::GetRequest>,
    ) -> Result<Response<kvrpcpb::GetResponse>, Status> {
        let wire = request.into_inner();
        let served = self
            .txn_read(wire.context.as_ref(), txn_request::get(&wire))
            .await?;
        respond(served, txn_response::get, region_error_setter!())
    }

    async fn kv_batch_get(
        &self,
        request: Request<kvrpcpb::BatchGetRequest>,
    ) -> Result<Response<kvrpcpb::BatchGetResponse>, Status> {
        let wire = request.into_inner();
        let read = txn_request::batch_get(&wire);
        let served = self.txn_read(wire.context.as_ref(), read).await?;
        respond(served, txn_response::batch_get, region_error_setter!())
    }

    async fn kv_scan(
        &self,
        request: Request<kvrpcpb::ScanRequest>,
    ) -> Result<Response<kvrpcpb::ScanResponse>, Status> {
        let wire = request.into_inner();
        let served = self
            .txn_read(wire.context.as_ref(), txn_request::scan(&wire))
            .await?;
        respond(served, txn_response::scan, region_error_setter!())
    }

    async fn kv_scan_lock(
        &self,
        request: Request<kvrpcpb::ScanLockRequest>,
    ) -> Result<Response<kvrpcpb::ScanLockResponse>, Status> {
        let wire = request.into_inner();
        let read = txn_request::scan_lock(&wire);
        let served = self.txn_read(wire.context.as_ref(), read).await?;
        respond(served, txn_response::scan_lock, region_error_setter!())
    }

    async fn kv_prewrite(
        &self,
        request: Request<kvrpcpb::PrewriteRequest>,
    ) -> Result<Response<kvrpcpb::PrewriteResponse>, Status> {
        let wire = request.into_inner();
        refuse_unsupported_prewrite(&wire, self.with_pd)?;
        let command = txn_request::prewrite(&wire);
        let served = self.prewrite(wire.context.as_ref(), command).await?;
        respond(served, txn_response::prewrite, region_error_setter!())
    }

    async fn kv_commit(
        &self,
        request: Request<kvrpcpb::CommitRequest>,
    ) -> Result<Response<kvrpcpb::CommitResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::commit(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(served, txn_response::commit, region_error_setter!())
    }

    async fn kv_batch_rollback(
        &self,
        request: Request<kvrpcpb::BatchRollbackRequest>,
    ) -> Result<Response<kvrpcpb::BatchRollbackResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::batch_rollback(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        let done = done_into(|r: &mut kvrpcpb::BatchRollbackResponse, e| r.error = e);
        respond(served, done, region_error_setter!())
    }

    async fn kv_cleanup(
        &self,
        request: Request<kvrpcpb::CleanupRequest>,
    ) -> Result<Response<kvrpcpb::CleanupResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::cleanup(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(served, txn_response::cleanup, region_error_setter!())
    }

    async fn kv_check_txn_status(
        &self,
        request: Request<kvrpcpb::CheckTxnStatusRequest>,
    ) -> Result<Response<kvrpcpb::CheckTxnStatusResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::check_txn_status(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(
            served,
            txn_response::check_txn_status,
            region_error_setter!(),
        )
    }

    async fn kv_check_secondary_locks(
        &self,
        request: Request<kvrpcpb::CheckSecondaryLocksRequest>,
    ) -> Result<Response<kvrpcpb::CheckSecondaryLocksResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::check_secondary_locks(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(
            served,
            txn_response::check_secondary_locks,
            region_error_setter!(),
        )
    }

    async fn kv_txn_heart_beat(
        &self,
        request: Request<kvrpcpb::TxnHeartBeatRequest>,
    ) -> Result<Response<kvrpcpb::TxnHeartBeatResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::txn_heart_beat(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(served, txn_response::txn_heart_beat, region_error_setter!())
    }

    async fn kv_pessimistic_lock(
        &self,
        request: Request<kvrpcpb::PessimisticLockRequest>,
    ) -> Result<Response<kvrpcpb::PessimisticLockResponse>, Status> {
        let wire = request.into_inner();
        // A conflict waits up to `wait_timeout` (0: the default 1 s; negative: no wait) for
        // the lock to go (the store's transaction driver).
        let command = txn_request::pessimistic_lock(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(
            served,
            txn_response::pessimistic_lock,
            region_error_setter!(),
        )
    }

    async fn kv_pessimistic_rollback(
        &self,
        request: Request<kvrpcpb::PessimisticRollbackRequest>,
    ) -> Result<Response<kvrpcpb::PessimisticRollbackResponse>, Status> {
        let wire = request.into_inner();
        let command = txn_request::pessimistic_rollback(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        respond(
            served,
            txn_response::pessimistic_rollback,
            region_error_setter!(),
        )
    }

    async fn kv_resolve_lock(
        &self,
        request: Request<kvrpcpb::ResolveLockRequest>,
    ) -> Result<Response<kvrpcpb::ResolveLockResponse>, Status> {
        let wire = request.into_inner();
        let served = self.resolve_lock(&wire).await?;
        let done = done_into(|r: &mut kvrpcpb::ResolveLockResponse, e| r.error = e);
        respond(served, done, region_error_setter!())
    }

    async fn kv_gc(
        &self,
        request: Request<kvrpcpb::GcRequest>,
    ) -> Result<Response<kvrpcpb::GcResponse>, Status> {
        let wire = request.into_inner();
        // Collecting above PD's safe point would take versions running transactions read,
        // and the locks below it were resolved only up to PD's: refuse it.
        let known = self.gc_safe_point.load(Ordering::Acquire);
        if wire.safe_point > known {
            return Err(Status::invalid_argument(format!(
                "GC safe point {} is above the cluster's GC safe point {known}: advance PD's first (after resolving the locks below it)",
                wire.safe_point
            )));
        }
        let safe_point = ferrokv_core::types::TimeStamp(wire.safe_point);
        let served = self.gc_region(wire.context.as_ref(), safe_point).await?;
        let done = done_into(|r: &mut kvrpcpb::GcResponse, e| r.error = e);
        respond(served, done, region_error_setter!())
    }

    async fn kv_delete_range(
        &self,
        request: Request<kvrpcpb::DeleteRangeRequest>,
    ) -> Result<Response<kvrpcpb::DeleteRangeResponse>, Status> {
        let wire = request.into_inner();
        if wire.notify_only {
            // TiKV: only notify (for other engines), never delete.
            return Ok(Response::new(kvrpcpb::DeleteRangeResponse::default()));
        }
        if wire.end_key.is_empty() || wire.start_key >= wire.end_key {
            return Err(Status::invalid_argument(
                "delete range needs start_key < end_key (a bounded range)",
            ));
        }
        let command = txn_request::delete_range(&wire);
        let served = self.txn_write(wire.context.as_ref(), command).await?;
        let done = |result: Result<CommandResult, ferrokv_core::txn::Error>| {
            let error = txn_response::done(result)?;
            Ok(kvrpcpb::DeleteRangeResponse {
                error: error.map(|e| format!("{e:?}")).unwrap_or_default(),
                ..Default::default()
            })
        };
        respond(served, done, region_error_setter!())
    }

    async fn coprocessor(
        &self,
        _: Request<ferrokv_proto::coprocessor::Request>,
    ) -> Result<Response<ferrokv_proto::coprocessor::Response>, Status> {
        Err(Status::unimplemented(
            "tikvpb.Tikv/coprocessor is not served yet",
        ))
    }

    async fn raw_get(
        &self,
        request: Request<kvrpcpb::RawGetRequest>,
    ) -> Result<Response<kvrpcpb::RawGetResponse>, Status> {
        let mut response = kvrpcpb::RawGetResponse::default();
        match self.get(request.into_inner()).await {
            Ok(Some(found)) => response.value = found,
            Ok(None) => response.not_found = true,
            Err(failure) => (response.region_error, response.error) = split(failure)?,
        }
        Ok(Response::new(response))
    }

    async fn raw_batch_get(
        &self,
        request: Request<kvrpcpb::RawBatchGetRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchGetResponse>, Status> {
        let mut response = kvrpcpb::RawBatchGetResponse::default();
        match self.batch_get(request.into_inner()).await {
            Ok(found) => response.pairs = found,
            Err(failure) => response.region_error = region_only(failure)?,
        }
        Ok(Response::new(response))
    }

    async fn raw_put(
        &self,
        request: Request<kvrpcpb::RawPutRequest>,
    ) -> Result<Response<kvrpcpb::RawPutResponse>, Status> {
        let mut response = kvrpcpb::RawPutResponse::default();
        if let Err(failure) = self.put(request.into_inner()).await {
            (response.region_error, response.error) = split(failure)?;
        }
        Ok(Response::new(response))
    }

    async fn raw_batch_put(
        &self,
        request: Request<kvrpcpb::RawBatchPutRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchPutResponse>, Status> {
        let mut response = kvrpcpb::RawBatchPutResponse::default();
        if let Err(failure) = self.batch_put(request.into_inner()).await {
            (response.region_error, response.error) = split(failure)?;
        }
        Ok(Response::new(response))
    }

    async fn raw_delete(
        &self,
        request: Request<kvrpcpb::RawDeleteRequest>,
    ) -> Result<Response<kvrpcpb::RawDeleteResponse>, Status> {
        let request = request.into_inner();
        let mut response = kvrpcpb::RawDeleteResponse::default();
        let result = match (
            validate::header(request.context.as_ref()),
            validate::column_family(&request.cf),
        ) {
            (Ok(header), Ok(())) => self.delete(header, vec![request.key]).await,
            (Err(error), _) | (_, Err(error)) => Err(error.into()),
        };
        if let Err(failure) = result {
            (response.region_error, response.error) = split(failure)?;
        }
        Ok(Response::new(response))
    }

    async fn raw_batch_delete(
        &self,
        request: Request<kvrpcpb::RawBatchDeleteRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchDeleteResponse>, Status> {
        let request = request.into_inner();
        let mut response = kvrpcpb::RawBatchDeleteResponse::default();
        let result = match (
            validate::header(request.context.as_ref()),
            validate::column_family(&request.cf),
        ) {
            (Ok(header), Ok(())) => self.delete(header, request.keys).await,
            (Err(error), _) | (_, Err(error)) => Err(error.into()),
        };
        if let Err(failure) = result {
            (response.region_error, response.error) = split(failure)?;
        }
        Ok(Response::new(response))
    }

    async fn raw_scan(
        &self,
        request: Request<kvrpcpb::RawScanRequest>,
    ) -> Result<Response<kvrpcpb::RawScanResponse>, Status> {
        let mut response = kvrpcpb::RawScanResponse::default();
        match self.scan(request.into_inner()).await {
            Ok(found) => response.kvs = found,
            Err(failure) => response.region_error = region_only(failure)?,
        }
        Ok(Response::new(response))
    }

    async fn raw_batch_scan(
        &self,
        request: Request<kvrpcpb::RawBatchScanRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchScanResponse>, Status> {
        let mut response = kvrpcpb::RawBatchScanResponse::default();
        match self.batch_scan(request.into_inner()).await {
            Ok(found) => response.kvs = found,
            Err(failure) => response.region_error = region_only(failure)?,
        }
        Ok(Response::new(response))
    }

    async fn raw_delete_range(
        &self,
        request: Request<kvrpcpb::RawDeleteRangeRequest>,
    ) -> Result<Response<kvrpcpb::RawDeleteRangeResponse>, Status> {
        let mut response = kvrpcpb::RawDeleteRangeResponse::default();
        if let Err(failure) = self.delete_range(request.into_inner()).await {
            (response.region_error, response.error) = split(failure)?;
        }
        Ok(Response::new(response))
    }

    async fn raw_get_key_ttl(
        &self,
        request: Request<kvrpcpb::RawGetKeyTtlRequest>,
    ) -> Result<Response<kvrpcpb::RawGetKeyTtlResponse>, Status> {
        let mut response = kvrpcpb::RawGetKeyTtlResponse::default();
        match self.key_ttl(request.into_inner()).await {
            Ok(Some(ttl)) => response.ttl = ttl,
            Ok(None) => response.not_found = true,
            Err(failure) => (response.region_error, response.error) = split(failure)?,
        }
        Ok(Response::new(response))
    }

    async fn raw_compare_and_swap(
        &self,
        request: Request<kvrpcpb::RawCasRequest>,
    ) -> Result<Response<kvrpcpb::RawCasResponse>, Status> {
        let mut response = kvrpcpb::RawCasResponse::default();
        match self.cas(request.into_inner()).await {
            Ok((succeed, previous)) => {
                response.succeed = succeed;
                response.previous_not_exist = previous.is_none();
                response.previous_value = previous.unwrap_or_default();
            }
            Err(failure) => (response.region_error, response.error) = split(failure)?,
        }
        Ok(Response::new(response))
    }
}
