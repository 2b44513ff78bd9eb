//! The `Tikv` service, transactional part: each Kv* request is validated into a command
//! (`ferrokv_core::txn::request`), served by the store (`Request::TxnRead` /
//! `Request::TxnWrite`), and shaped as TiKV shapes its response
//! (`ferrokv_core::txn::response`). Region errors travel in `region_error` so the client
//! refreshes its routes and retries; key errors in the response's own error fields; a
//! malformed request is `InvalidArgument` and changes nothing; an outcome the store cannot
//! know (the node stopped, a proposal's fate unknown) is `Unavailable`.
//!
//! A data read below the GC safe point this store last heard of from PD is refused
//! (`InvalidArgument`, naming both timestamps): the versions it needs may be gone.
//!
//! A pessimistic lock that meets another transaction's lock waits for it, as TiKV does:
//! up to `wait_timeout` (0 means the default, 1 s; negative, no wait), then `KeyIsLocked`;
//! `WriteConflict` if the lock went meanwhile; `Deadlock` if the wait closes a cycle on
//! this store (`ferrokv_core::store::txn`).
//!
//! Async commit and one-phase commit are served on stores run by PD only (a new leader's
//! max_ts is synced from PD's timestamps first); without PD they get a clear status.

use ferrokv_core::store::{Request as StoreRequest, Response as StoreResponse, TxnFailure};
use ferrokv_core::txn::{self, request, response, Command, CommandResult, ReadCommand, ReadResult};
use ferrokv_core::types::{KeyRange, TimeStamp};
use ferrokv_proto::errorpb;
use ferrokv_proto::kvrpcpb::{self, Context};
use tonic::Status;

use super::kv::KvService;
use super::validate;

/// How long an async-commit or 1PC prewrite waits for its region's max_ts to be synced.
const MAX_TS_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often it tries again meanwhile.
const MAX_TS_SYNC_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// What serving a transactional request came to, before the response is shaped.
pub(crate) enum Served<T> {
    /// The region could not serve it: the client retries with fresh routes.
    Region(Box<errorpb::Error>),
    /// The transaction layer's answer (a key error travels in the response).
    Done(Result<T, txn::Error>),
}

fn lost() -> Status {
    Status::unavailable("the outcome of the request is unknown: it may or may not have applied")
}

fn failure<T>(failure: TxnFailure) -> Result<Served<T>, Status> {
    match failure {
        TxnFailure::Region(error) if error.is_ambiguous() => Err(lost()),
        TxnFailure::Region(error) => Ok(Served::Region(Box::new(error.to_proto()))),
        TxnFailure::Txn(error) => Ok(Served::Done(Err(error))),
    }
}

/// Region errors for the transaction layer's refusals that are not key errors: busy and
/// unsynced max_ts make the client back off and retry; a malformed request is a status.
fn shape<T, R: Default>(
    served: Served<T>,
    respond: impl FnOnce(Result<T, txn::Error>) -> Result<R, txn::Error>,
    set_region_error: impl FnOnce(&mut R, errorpb::Error),
) -> Result<R, Status> {
    let region_error = |message: String| errorpb::Error {
        message,
        ..Default::default()
    };
    let error = match served {
        Served::Region(error) => *error,
        Served::Done(result) => match respond(result) {
            Ok(response) => return Ok(response),
            Err(txn::Error::ServerIsBusy(reason)) => errorpb::Error {
                server_is_busy: Some(errorpb::ServerIsBusy {
                    reason: reason.clone(),
                    ..Default::default()
                }),
                ..region_error(reason)
            },
            Err(txn::Error::MaxTimestampNotSynced) => errorpb::Error {
                max_timestamp_not_synced: Some(errorpb::MaxTimestampNotSynced::default()),
                ..region_error("max timestamp not synced".into())
            },
            Err(other) => return Err(Status::invalid_argument(other.to_string())),
        },
    };
    let mut response = R::default();
    set_region_error(&mut response, error);
    Ok(response)
}

impl KvService {
    /// Serves a transactional read.
    pub(crate) async fn txn_read(
        &self,
        context: Option<&Context>,
        read: Result<ReadCommand, txn::Error>,
    ) -> Result<Served<ReadResult>, Status> {
        let read = read.and_then(|read| self.above_gc_safe_point(read));
        let request = |header, read| StoreRequest::TxnRead { header, read };
        self.serve(context, read, request, |answer| match answer {
            StoreResponse::TxnRead(result) => Ok(result),
            other => Err(other),
        })
        .await
    }

    /// Serves a transactional write command.
    pub(super) async fn txn_write(
        &self,
        context: Option<&Context>,
        command: Result<Command, txn::Error>,
    ) -> Result<Served<CommandResult>, Status> {
        let request = |header, command| StoreRequest::TxnWrite { header, command };
        self.serve(context, command, request, |answer| match answer {
            StoreResponse::TxnWrite(result) => Ok(result),
            other => Err(other),
        })
        .await
    }

    /// Serves a prewrite; an async-commit or 1PC one that meets a new leader whose max_ts is
    /// not synced yet waits for the sync (the PD worker polls every 100 ms) and tries again,
    /// for up to `MAX_TS_SYNC_WAIT`, before answering `MaxTimestampNotSynced`: tikv-client
    /// 0.4 does not retry that error, and its other batches would leave async locks it
    /// cannot decide.
    pub(super) async fn prewrite(
        &self,
        context: Option<&Context>,
        command: Result<Command, txn::Error>,
    ) -> Result<Served<CommandResult>, Status> {
        let waited = tokio::time::Instant::now();
        loop {
            let served = self.txn_write(context, command.clone()).await?;
            let unsynced = matches!(served, Served::Done(Err(txn::Error::MaxTimestampNotSynced)));
            if !unsynced || waited.elapsed() >= MAX_TS_SYNC_WAIT {
                return Ok(served);
            }
            tokio::time::sleep(MAX_TS_SYNC_RETRY).await;
        }
    }

    /// The one path of both: validate the header, send the store request built from the
    /// validated input, and sort its answer (`expected` picks the answer of the request's
    /// kind; anything else is an internal error).
    async fn serve<I, T>(
        &self,
        context: Option<&Context>,
        input: Result<I, txn::Error>,
        request: impl FnOnce(ferrokv_core::store::RequestHeader, I) -> StoreRequest,
        expected: impl FnOnce(StoreResponse) -> Result<Result<T, TxnFailure>, StoreResponse>,
    ) -> Result<Served<T>, Status> {
        let header =
            validate::header(context).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let input = match input {
            Ok(input) => input,
            Err(error) => return Ok(Served::Done(Err(error))),
        };
        let answer = self
            .node()
            .request(request(header, input))
            .await
            .map_err(|_| lost())?;
        match expected(answer) {
            Ok(Ok(result)) => Ok(Served::Done(Ok(result))),
            Ok(Err(error)) => failure(error),
            Err(other) => Err(Status::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    /// KvResolveLock: with keys, one command; without, every lock of the named
    /// transactions in the region, a batch at a time (scan, then resolve what it found).
    pub(super) async fn resolve_lock(
        &self,
        wire: &kvrpcpb::ResolveLockRequest,
    ) -> Result<Served<CommandResult>, Status> {
        let (txn_status, keys) = match request::resolve_lock(wire) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Served::Done(Err(error))),
        };
        let context = wire.context.as_ref();
        if !keys.is_empty() {
            let command = Command::ResolveLock { txn_status, keys };
            return self.txn_write(context, Ok(command)).await;
        }
        let scan = |range| ReadCommand::ResolveLockScan {
            txn_status: txn_status.clone(),
            range,
        };
        let resolve = |keys| Command::ResolveLock {
            txn_status: txn_status.clone(),
            keys,
        };
        self.region_pass(context, scan, resolve).await
    }

    /// GC of the region at `safe_point` (KvGC, and the store's GC worker): every key with
    /// versions, a batch at a time, keeps what reads at or above the safe point see.
    pub(crate) async fn gc_region(
        &self,
        context: Option<&Context>,
        safe_point: TimeStamp,
    ) -> Result<Served<CommandResult>, Status> {
        if safe_point == TimeStamp::ZERO {
            let invalid = txn::Error::InvalidRequest("GC needs a safe point above zero".into());
            return Ok(Served::Done(Err(invalid)));
        }
        let scan = |range| ReadCommand::GcScan { range };
        let collect = |keys| Command::Gc { safe_point, keys };
        self.region_pass(context, scan, collect).await
    }

    /// One pass over the region a batch at a time: `scan(range)` finds the next batch of
    /// keys from the range's start (the store cuts the scan to the region, its bounds
    /// decoded), `write(keys)` is the command for them.
    async fn region_pass(
        &self,
        context: Option<&Context>,
        scan: impl Fn(KeyRange) -> ReadCommand,
        write: impl Fn(Vec<Vec<u8>>) -> Command,
    ) -> Result<Served<CommandResult>, Status> {
        let mut start = Vec::new();
        loop {
            let range = KeyRange::new(start.clone(), Vec::new());
            let (keys, next) = match self.txn_read(context, Ok(scan(range))).await? {
                Served::Done(Ok(ReadResult::Keys { keys, next_start })) => (keys, next_start),
                Served::Done(Ok(other)) => {
                    return Err(Status::internal(format!(
                        "unexpected scan result {other:?}"
                    )))
                }
                Served::Done(Err(error)) => return Ok(Served::Done(Err(error))),
                Served::Region(error) => return Ok(Served::Region(error)),
            };
            if !keys.is_empty() {
                match self.txn_write(context, Ok(write(keys))).await? {
                    Served::Done(Ok(_)) => {}
                    other => return Ok(other),
                }
            }
            match next {
                Some(next) => {
                    assert!(next > start, "a region pass moves forward");
                    start = next;
                }
                None => return Ok(Served::Done(Ok(CommandResult::Done))),
            }
        }
    }
}

/// Sets a response's `region_error`.
macro_rules! region_error_setter {
    () => {
        |response, error| response.region_error = Some(error)
    };
}
pub(super) use region_error_setter;

/// The shaping of every served response.
pub(super) fn respond<T, R: Default>(
    served: Served<T>,
    respond: impl FnOnce(Result<T, txn::Error>) -> Result<R, txn::Error>,
    set_region_error: impl FnOnce(&mut R, errorpb::Error),
) -> Result<tonic::Response<R>, Status> {
    shape(served, respond, set_region_error).map(tonic::Response::new)
}

/// Async commit and 1PC need max_ts synced from PD after every leader change: a store run
/// without PD refuses them (and writes nothing).
pub(super) fn refuse_unsupported_prewrite(
    wire: &kvrpcpb::PrewriteRequest,
    with_pd: bool,
) -> Result<(), Status> {
    if (wire.use_async_commit || wire.try_one_pc) && !with_pd {
        return Err(Status::failed_precondition(
            "async commit and one-phase commit need a PD (their commit timestamps must stay \
             above every read after a leader change) and this store runs without one: use \
             two-phase commit",
        ));
    }
    Ok(())
}

/// `response` for commands answered with "done" (no fields but errors).
pub(super) fn done_into<R: Default>(
    set_error: impl FnOnce(&mut R, Option<kvrpcpb::KeyError>),
) -> impl FnOnce(Result<CommandResult, txn::Error>) -> Result<R, txn::Error> {
    move |result| {
        let error = response::done(result)?;
        let mut out = R::default();
        set_error(&mut out, error);
        Ok(out)
    }
}
