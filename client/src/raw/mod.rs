//! The raw KV client: routes each call to its region's leader through the region cache,
//! retries region errors with backoff until a deadline, and splits multi-key calls and scans
//! by region (`multi.rs`), reporting how each part went.
//!
//! Routes come from one of two sources. By default from the stores themselves
//! (`FerroAdmin.Regions`, without data hashes): the client asks every store it knows and
//! keeps, per region, the newest epoch reported (the simulator uses this). A client made
//! with `with_pd` asks the Placement Driver instead (`GetRegion`, `GetPrevRegion`,
//! `ScanRegions`) and resolves store addresses with `GetStore`, as the official client does.
//!
//! Ambiguity: a call that failed before anything was sent (no route, refused connection,
//! region error) is definite and retried; a call that may have reached a store without an
//! answer (timeout, broken connection, the server's "outcome unknown") is retried only if
//! it is a read. A write reports `ClientError::Unknown` instead: a retry could apply it twice.

mod multi;
mod single;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_core::types::RegionId;
use ferrokv_proto::errorpb;
use ferrokv_proto::ferrokv_raftpb::ferro_admin_client::FerroAdminClient;
use ferrokv_proto::ferrokv_raftpb::RegionInfoRequest;
use ferrokv_proto::kvrpcpb::Context;
use ferrokv_proto::metapb;
use ferrokv_proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::{Channel, Endpoint};

pub use multi::{KeysPart, Pair, RangePart};

use crate::error::ClientError;
use crate::pd::PdClient;
use crate::region_cache::{RegionCache, Route};

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// A pause uniform in `[backoff / 2, backoff]`: clients that failed together do not retry
/// together.
fn jittered(backoff: Duration, rng: &mut impl ferrokv_core::env::Rng) -> Duration {
    let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
    let half = nanos / 2;
    Duration::from_nanos(half + rng.below(nanos - half + 1))
}

/// Status codes that say the request was refused before anything was done, and would be
/// refused again: malformed (InvalidArgument, OutOfRange: over a size limit), not servable
/// here (FailedPrecondition: async commit without PD; Unimplemented), too large to decode
/// (ResourceExhausted).
fn refused_for_good(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::ResourceExhausted
    )
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Client settings.
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// Store id -> `host:port`.
    pub stores: BTreeMap<u64, String>,
    /// Overall deadline per call, retries included.
    pub timeout: Duration,
    /// Deadline of one RPC attempt.
    pub attempt_timeout: Duration,
    /// Where each call's first attempt goes.
    pub first_attempt: FirstAttempt,
}

/// Where a call's first attempt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FirstAttempt {
    /// The cached leader (normal operation).
    #[default]
    Leader,
    /// A peer of the region picked with a seeded random stream, then wherever errors point:
    /// the way Jepsen-style tests reach every side of a partition (tests and simulation).
    RandomPeer { seed: u64 },
}

impl RawConfig {
    /// A configuration over `stores` with the given deadlines, routing to leaders.
    pub fn new(
        stores: BTreeMap<u64, String>,
        timeout: Duration,
        attempt_timeout: Duration,
    ) -> RawConfig {
        RawConfig {
            stores,
            timeout,
            attempt_timeout,
            first_attempt: FirstAttempt::Leader,
        }
    }
}

/// Which region a call goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// The region holding this key.
    Key(&'a [u8]),
    /// The region holding the keys just below this bound (empty: the last region), for
    /// reverse scans.
    Before(&'a [u8]),
}

/// What one attempt returned.
enum Attempt<T> {
    /// The call succeeded.
    Done(T),
    /// A region error; the cache was corrected, retry.
    Region,
    /// The keys of the call no longer share one region: split the call again.
    Reshard,
    /// The server rejected the input; retrying cannot help.
    Invalid(String),
    /// Nothing was sent (no route, no connection): safe to retry.
    Failed(String),
    /// Sent without an answer (timeout, transport error): it may or may not have applied.
    Ambiguous(String),
}

/// Why a call ended without a value.
pub(crate) enum CallError {
    Client(ClientError),
    /// The keys no longer share one region.
    Reshard,
}

/// The answer of one RPC: `(region_error, error message, value)`.
pub(crate) type Answer<T> = Result<(Option<errorpb::Error>, String, T), tonic::Status>;

/// A raw KV client.
pub struct RawClient {
    config: RawConfig,
    cache: Mutex<RegionCache>,
    channels: Mutex<BTreeMap<u64, Channel>>,
    rng: Mutex<ferrokv_core::env::SeededRng>,
    /// Draws backoff jitter; its own stream, so peer choices do not depend on retries.
    backoff_rng: Mutex<ferrokv_core::env::SeededRng>,
    /// PD, if any: where addresses of unlisted stores come from, and routes too if
    /// `routes_from_pd`.
    pd: Option<Arc<PdClient>>,
    /// Routes come from PD (else from the listed stores).
    routes_from_pd: bool,
    /// Store addresses learned from PD.
    addresses: Mutex<BTreeMap<u64, String>>,
}

fn context(route: &Route, leader: &metapb::Peer) -> Context {
    Context {
        region_id: route.region.id,
        region_epoch: route.region.region_epoch,
        peer: Some(*leader),
        ..Default::default()
    }
}

/// True if a failed call provably sent nothing: the connection was refused, so the
/// server never saw the request and the failure is definite (retrying is safe). Any other
/// transport failure may have lost the answer, not the request.
fn nothing_sent(status: &tonic::Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    status.code() == tonic::Code::Unavailable
        && (message.contains("connection refused")
            || message.contains("error trying to connect")
            || message.contains("tcp connect error"))
}

impl RawClient {
    /// A client over the given stores; routes load lazily.
    pub fn new(config: RawConfig) -> RawClient {
        let seed = match config.first_attempt {
            FirstAttempt::RandomPeer { seed } => seed,
            FirstAttempt::Leader => 0,
        };
        RawClient {
            config,
            cache: Mutex::new(RegionCache::new()),
            channels: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(ferrokv_core::env::SeededRng::new(seed)),
            backoff_rng: Mutex::new(ferrokv_core::env::SeededRng::new(
                seed ^ 0x6a09_e667_f3bc_c908,
            )),
            pd: None,
            routes_from_pd: false,
            addresses: Mutex::new(BTreeMap::new()),
        }
    }

    /// A client whose routes and store addresses come from PD.
    pub fn with_pd(pd: Arc<PdClient>, timeout: Duration, attempt_timeout: Duration) -> RawClient {
        let config = RawConfig::new(BTreeMap::new(), timeout, attempt_timeout);
        RawClient::with_pd_config(pd, config)
    }

    /// A client whose routes come from PD, with `config`'s deadlines and first attempts
    /// (store addresses it lists are used as given; the others are learned from PD).
    pub fn with_pd_config(pd: Arc<PdClient>, config: RawConfig) -> RawClient {
        RawClient {
            pd: Some(pd),
            routes_from_pd: true,
            ..RawClient::new(config)
        }
    }

    /// A client whose routes come from the stores `config` lists (like `new`), that asks
    /// PD only for the address of a store it does not list (one that joined later).
    pub fn with_store_directory(pd: Arc<PdClient>, config: RawConfig) -> RawClient {
        RawClient {
            pd: Some(pd),
            routes_from_pd: false,
            ..RawClient::new(config)
        }
    }

    /// The overall deadline of one call, retries included.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// How long one attempt may take before it is retried.
    pub fn attempt_timeout(&self) -> Duration {
        self.config.attempt_timeout
    }

    /// The address of `store_id`: configured, or learned from PD.
    async fn address(&self, store_id: u64) -> Result<String, String> {
        if let Some(address) = self.config.stores.get(&store_id) {
            return Ok(address.clone());
        }
        if let Some(address) = self
            .addresses
            .lock()
            .expect("addresses lock")
            .get(&store_id)
        {
            return Ok(address.clone());
        }
        let pd = self
            .pd
            .as_ref()
            .ok_or(format!("no address for store {store_id}"))?;
        let store = pd.get_store(store_id).await.map_err(|e| e.to_string())?;
        let address = crate::pd::strip_scheme(&store.address).to_string();
        self.addresses
            .lock()
            .expect("addresses lock")
            .insert(store_id, address.clone());
        Ok(address)
    }

    /// The peer a call's first attempt goes to under `FirstAttempt::RandomPeer`.
    fn random_peer(&self, route: &Route) -> Option<metapb::Peer> {
        use ferrokv_core::env::Rng as _;
        let peers = &route.region.peers;
        if peers.is_empty() {
            return None;
        }
        let pick = self.rng.lock().expect("rng lock").below(peers.len() as u64) as usize;
        Some(peers[pick])
    }

    async fn channel(&self, store_id: u64) -> Result<Channel, String> {
        if let Some(channel) = self.channels.lock().expect("channels lock").get(&store_id) {
            return Ok(channel.clone());
        }
        let address = self.address(store_id).await?;
        let endpoint = Endpoint::new(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| format!("connect to store {store_id} timed out"))?
            .map_err(|e| e.to_string())?;
        self.channels
            .lock()
            .expect("channels lock")
            .insert(store_id, channel.clone());
        Ok(channel)
    }

    fn forget_channel(&self, store_id: u64) {
        self.channels
            .lock()
            .expect("channels lock")
            .remove(&store_id);
    }

    fn rpc(channel: Channel) -> TikvClient<Channel> {
        TikvClient::new(channel)
            .max_decoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX)
    }

    /// Reloads routes from every reachable store (cheap: no data hashes). For each region
    /// the newest epoch wins; among reports of one epoch, the leader claimed in the highest
    /// term (a deposed leader cut off from its peers still claims its old term).
    pub async fn refresh(&self) {
        let mut newest: BTreeMap<u64, (metapb::Region, Option<metapb::Peer>, u64)> =
            BTreeMap::new();
        let learned: Vec<u64> = self
            .addresses
            .lock()
            .expect("addresses lock")
            .keys()
            .copied()
            .collect();
        let store_ids: std::collections::BTreeSet<u64> =
            self.config.stores.keys().copied().chain(learned).collect();
        for store_id in store_ids {
            let Ok(channel) = self.channel(store_id).await else {
                continue;
            };
            let mut admin = FerroAdminClient::new(channel);
            let call = admin.regions(RegionInfoRequest {
                with_data_hash: false,
            });
            let Ok(Ok(reply)) = tokio::time::timeout(self.config.attempt_timeout, call).await
            else {
                self.forget_channel(store_id);
                continue;
            };
            for info in reply.into_inner().regions {
                let Some(region) = info.region else { continue };
                let rank = |r: &metapb::Region, leader: &Option<metapb::Peer>, term: u64| {
                    let epoch = r.region_epoch.map_or((0, 0), |e| (e.version, e.conf_ver));
                    (epoch, leader.is_some(), term)
                };
                let candidate = rank(&region, &info.leader, info.term);
                let better = newest
                    .get(&region.id)
                    .is_none_or(|(known, leader, term)| candidate > rank(known, leader, *term));
                if better {
                    newest.insert(region.id, (region, info.leader, info.term));
                }
            }
        }
        let mut cache = self.cache.lock().expect("cache lock");
        for (region, leader, _) in newest.into_values() {
            cache.insert(region, leader);
        }
    }

    /// Asks PD for the region `target` names and caches what it answers.
    async fn refresh_from_pd(&self, pd: &PdClient, target: Target<'_>) {
        let found = match target {
            Target::Key(key) => pd.get_region(key).await.map(|r| r.into_iter().collect()),
            Target::Before([]) => pd.scan_regions(b"", b"", 0).await,
            Target::Before(bound) => match pd.get_region(bound).await {
                Ok(Some(route)) if route.region.start_key.as_slice() < bound => Ok(vec![route]),
                Ok(_) => pd
                    .get_prev_region(bound)
                    .await
                    .map(|r| r.into_iter().collect()),
                Err(error) => Err(error),
            },
        };
        match found {
            Ok(routes) => {
                let mut cache = self.cache.lock().expect("cache lock");
                for route in routes {
                    cache.insert(route.region, route.leader);
                }
            }
            Err(error) => tracing::debug!(%error, "PD route lookup failed"),
        }
    }

    fn cached_route(&self, target: Target<'_>) -> Option<Route> {
        let cache = self.cache.lock().expect("cache lock");
        match target {
            Target::Key(key) => cache.locate(key).cloned(),
            Target::Before(bound) => cache.locate_before(bound).cloned(),
        }
    }

    async fn route(&self, target: Target<'_>) -> Option<Route> {
        if let Some(route) = self.cached_route(target) {
            return Some(route);
        }
        match &self.pd {
            Some(pd) if self.routes_from_pd => self.refresh_from_pd(pd, target).await,
            _ => self.refresh().await,
        }
        self.cached_route(target)
    }

    fn note_region_error(&self, route: &Route, error: &errorpb::Error) {
        if error.server_is_busy.is_some() || error.max_timestamp_not_synced.is_some() {
            // The route is right: the store is overloaded, or its new leader waits for a
            // PD timestamp. Back off and retry.
            return;
        }
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(leader) = error
            .not_leader
            .as_ref()
            .and_then(|not_leader| not_leader.leader)
        {
            if cache.update_leader(RegionId(route.region.id), leader) {
                return;
            }
        }
        if let Some(epoch) = &error.epoch_not_match {
            if !epoch.current_regions.is_empty() {
                for region in &epoch.current_regions {
                    cache.insert(region.clone(), None);
                }
                return;
            }
        }
        cache.invalidate(RegionId(route.region.id));
    }

    /// Runs `attempt` against the leader of the region holding `key` until it succeeds, a
    /// definite error occurs, or the deadline passes.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        key: &[u8],
        retry_ambiguous: bool,
        attempt: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        match self
            .call_in_region(Target::Key(key), &[], retry_ambiguous, attempt)
            .await
        {
            Ok(value) => Ok(value),
            Err(CallError::Client(error)) => Err(error),
            Err(CallError::Reshard) => unreachable!("a single-key call never reshards"),
        }
    }

    /// Runs `attempt` against the leader of `target`'s region until it succeeds, a definite
    /// error occurs, or the deadline passes; `keys` must all lie in that region, or the call
    /// ends with `Reshard`. Region errors and failures before sending are retried (nothing
    /// was applied). After an ambiguous failure only reads (`retry_ambiguous`) retry.
    pub(crate) async fn call_in_region<T, F, Fut>(
        &self,
        target: Target<'_>,
        keys: &[Vec<u8>],
        retry_ambiguous: bool,
        attempt: F,
    ) -> Result<T, CallError>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut backoff = BACKOFF_MIN;
        let mut peer_turn = 0usize;
        let mut last_failure = String::from("no attempt finished");
        let mut first = true;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(CallError::Client(ClientError::Unavailable(last_failure)));
            }
            let retry = retry_ambiguous || planted::active(PlantedBug::RetryAmbiguousWrite);
            let random_first = first && self.config.first_attempt != FirstAttempt::Leader;
            first = false;
            match self
                .attempt_once(target, keys, &mut peer_turn, random_first, &attempt)
                .await
            {
                Attempt::Done(value) => return Ok(value),
                Attempt::Reshard => return Err(CallError::Reshard),
                Attempt::Region => {}
                Attempt::Invalid(message) => {
                    return Err(CallError::Client(ClientError::Invalid(message)))
                }
                Attempt::Ambiguous(_) if !retry => {
                    return Err(CallError::Client(ClientError::Unknown))
                }
                Attempt::Ambiguous(message) | Attempt::Failed(message) => last_failure = message,
            }
            let pause = jittered(backoff, &mut *self.backoff_rng.lock().expect("rng lock"));
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn attempt_once<T, F, Fut>(
        &self,
        target: Target<'_>,
        keys: &[Vec<u8>],
        peer_turn: &mut usize,
        random_first: bool,
        attempt: &F,
    ) -> Attempt<T>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        let Some(route) = self.route(target).await else {
            return Attempt::Failed("no route".into());
        };
        if !keys.iter().all(|key| route.contains(key)) {
            return Attempt::Reshard;
        }
        let chosen = if random_first {
            self.random_peer(&route)
        } else {
            route.leader
        };
        let leader = chosen.or_else(|| {
            *peer_turn += 1;
            let peers = &route.region.peers;
            peers.get(*peer_turn % peers.len().max(1)).copied()
        });
        let Some(leader) = leader else {
            return Attempt::Failed("region has no peers".into());
        };
        let channel = match self.channel(leader.store_id).await {
            Ok(channel) => channel,
            Err(error) => {
                let mut cache = self.cache.lock().expect("cache lock");
                cache.invalidate(RegionId(route.region.id));
                return Attempt::Failed(error);
            }
        };
        let call = attempt(Self::rpc(channel), context(&route, &leader), route.clone());
        let answer = tokio::time::timeout(self.config.attempt_timeout, call).await;
        self.judge(answer, &route, leader.store_id)
    }

    fn judge<T>(
        &self,
        answer: Result<Answer<T>, tokio::time::error::Elapsed>,
        route: &Route,
        store_id: u64,
    ) -> Attempt<T> {
        match answer {
            Err(_) => Attempt::Ambiguous("attempt timed out".into()),
            // Refused as malformed, or as not servable by this store (async commit on a
            // store without PD): definite, nothing was done.
            // Refused before anything was done, for good: retrying cannot help (a message over
            // the size limits, a method this server does not serve).
            Ok(Err(status)) if refused_for_good(status.code()) => {
                Attempt::Invalid(status.message().to_string())
            }
            Ok(Err(status)) => {
                self.forget_channel(store_id);
                let mut cache = self.cache.lock().expect("cache lock");
                cache.invalidate(RegionId(route.region.id));
                if nothing_sent(&status) {
                    Attempt::Failed(status.to_string())
                } else {
                    Attempt::Ambiguous(status.to_string())
                }
            }
            Ok(Ok((Some(error), _, _))) if error.raft_entry_too_large.is_some() => {
                // Nothing was proposed, and the same request is as large next time.
                Attempt::Invalid(format!(
                    "request too large for one Raft entry: {}",
                    error.message
                ))
            }
            Ok(Ok((Some(error), _, _))) => {
                tracing::debug!(?error, "region error");
                self.note_region_error(route, &error);
                Attempt::Region
            }
            Ok(Ok((None, message, _))) if !message.is_empty() => Attempt::Invalid(message),
            Ok(Ok((None, _, value))) => Attempt::Done(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding (issue 11): retries backed off without jitter, so clients that failed
    /// together retried together.
    #[test]
    fn backoff_pauses_are_jittered_within_half_to_whole() {
        let mut rng = ferrokv_core::env::SeededRng::new(5);
        let backoff = Duration::from_millis(40);
        let pauses: Vec<Duration> = (0..200).map(|_| jittered(backoff, &mut rng)).collect();
        assert!(pauses.iter().all(|p| *p >= backoff / 2 && *p <= backoff));
        let distinct: std::collections::BTreeSet<_> = pauses.iter().collect();
        assert!(
            distinct.len() > 100,
            "pauses vary: {} distinct",
            distinct.len()
        );
        assert_eq!(jittered(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    /// Review finding (issue 11): every status but InvalidArgument counted as "maybe
    /// applied", even refusals that happen before anything is done.
    #[test]
    fn refusals_before_anything_is_done_are_definite() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::OutOfRange,
            tonic::Code::Unimplemented,
            tonic::Code::FailedPrecondition,
            tonic::Code::ResourceExhausted,
        ] {
            assert!(refused_for_good(code), "{code:?}");
        }
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::Internal,
        ] {
            assert!(!refused_for_good(code), "{code:?} may have applied");
        }
    }
}
