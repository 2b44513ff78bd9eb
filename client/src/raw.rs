//! The raw KV client: routes each key to its region's leader through the region cache,
//! retries region errors with backoff until a deadline, and splits batches and scans by
//! region.
//!
//! Until PD exists, routes come from the stores themselves (`FerroAdmin.Regions`): the
//! client asks every store it knows and keeps, per region, the newest epoch reported.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ferrokv_core::types::{KeyRange, RegionId};
use ferrokv_proto::errorpb;
use ferrokv_proto::ferrokv_raftpb::ferro_admin_client::FerroAdminClient;
use ferrokv_proto::ferrokv_raftpb::RegionInfoRequest;
use ferrokv_proto::kvrpcpb::{self, Context};
use ferrokv_proto::metapb;
use ferrokv_proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;
use crate::region_cache::{RegionCache, Route};
use ferrokv_core::planted::{self, PlantedBug};

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
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
}

/// What one attempt returned.
enum Attempt<T> {
    /// The call succeeded.
    Done(T),
    /// A region error; the cache was corrected, retry.
    Region,
    /// The server rejected the input; retrying cannot help.
    Invalid(String),
    /// Nothing was sent (no route, no connection): safe to retry.
    Failed(String),
    /// Sent without an answer (timeout, transport error): it may or may not have applied.
    Ambiguous(String),
}

/// A raw KV client.
pub struct RawClient {
    config: RawConfig,
    cache: Mutex<RegionCache>,
    channels: Mutex<BTreeMap<u64, Channel>>,
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
        RawClient {
            config,
            cache: Mutex::new(RegionCache::new()),
            channels: Mutex::new(BTreeMap::new()),
        }
    }

    async fn channel(&self, store_id: u64) -> Result<Channel, String> {
        if let Some(channel) = self.channels.lock().expect("channels lock").get(&store_id) {
            return Ok(channel.clone());
        }
        let address = self
            .config
            .stores
            .get(&store_id)
            .ok_or(format!("no address for store {store_id}"))?;
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

    /// Reloads routes from every reachable store.
    pub async fn refresh(&self) {
        let mut newest: BTreeMap<u64, (metapb::Region, Option<metapb::Peer>)> = BTreeMap::new();
        let store_ids: Vec<u64> = self.config.stores.keys().copied().collect();
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
                let version =
                    |r: &metapb::Region| r.region_epoch.map_or((0, 0), |e| (e.version, e.conf_ver));
                let replace = newest.get(&region.id).is_none_or(|(known, leader)| {
                    version(&region) > version(known)
                        || (version(&region) == version(known) && leader.is_none())
                });
                if replace {
                    newest.insert(region.id, (region, info.leader));
                }
            }
        }
        let mut cache = self.cache.lock().expect("cache lock");
        for (region, leader) in newest.into_values() {
            cache.insert(region, leader);
        }
    }

    fn route_for(&self, key: &[u8]) -> Option<Route> {
        self.cache.lock().expect("cache lock").locate(key).cloned()
    }

    fn note_region_error(&self, route: &Route, error: &errorpb::Error) {
        if error.server_is_busy.is_some() {
            return; // the route is right; the store is overloaded: back off and retry
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
    /// definite error occurs, or the deadline passes. Region errors and failures before
    /// sending are always retried (nothing was applied). After an ambiguous failure (sent,
    /// no answer) only reads retry: a retried write could apply twice, so writes report
    /// `Unknown` and leave the decision to the caller.
    async fn call<T, F, Fut>(
        &self,
        key: &[u8],
        retry_ambiguous: bool,
        attempt: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Result<(Option<errorpb::Error>, String, T), tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut backoff = BACKOFF_MIN;
        let mut peer_turn = 0usize;
        let mut last_failure = String::from("no attempt finished");
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Unavailable(last_failure));
            }
            match self.attempt_once(key, &mut peer_turn, &attempt).await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Region => {}
                Attempt::Invalid(message) => return Err(ClientError::Invalid(message)),
                Attempt::Ambiguous(_)
                    if !retry_ambiguous && !planted::active(PlantedBug::RetryAmbiguousWrite) =>
                {
                    return Err(ClientError::Unknown)
                }
                Attempt::Ambiguous(message) | Attempt::Failed(message) => last_failure = message,
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn attempt_once<T, F, Fut>(
        &self,
        key: &[u8],
        peer_turn: &mut usize,
        attempt: &F,
    ) -> Attempt<T>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Result<(Option<errorpb::Error>, String, T), tonic::Status>>,
    {
        let route = match self.route_for(key) {
            Some(route) => route,
            None => {
                self.refresh().await;
                match self.route_for(key) {
                    Some(route) => route,
                    None => return Attempt::Failed("no route".into()),
                }
            }
        };
        let target = route.leader.or_else(|| {
            *peer_turn += 1;
            route
                .region
                .peers
                .get(*peer_turn % route.region.peers.len().max(1))
                .copied()
        });
        let Some(target) = target else {
            return Attempt::Failed("region has no peers".into());
        };
        let channel = match self.channel(target.store_id).await {
            Ok(channel) => channel,
            Err(error) => {
                self.cache
                    .lock()
                    .expect("cache lock")
                    .invalidate(RegionId(route.region.id));
                return Attempt::Failed(error);
            }
        };
        let call = attempt(
            TikvClient::new(channel),
            context(&route, &target),
            route.clone(),
        );
        match tokio::time::timeout(self.config.attempt_timeout, call).await {
            Err(_) => Attempt::Ambiguous("attempt timed out".into()),
            Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                Attempt::Invalid(status.message().to_string())
            }
            Ok(Err(status)) if nothing_sent(&status) => {
                self.forget_channel(target.store_id);
                Attempt::Failed(status.to_string())
            }
            Ok(Err(status)) => {
                self.forget_channel(target.store_id);
                self.cache
                    .lock()
                    .expect("cache lock")
                    .invalidate(RegionId(route.region.id));
                Attempt::Ambiguous(status.to_string())
            }
            Ok(Ok((Some(error), _, _))) => {
                if error.not_leader.is_none()
                    && error.epoch_not_match.is_none()
                    && error.server_is_busy.is_none()
                    && error.stale_command.is_none()
                {
                    tracing::debug!(?error, "region error");
                }
                self.note_region_error(&route, &error);
                Attempt::Region
            }
            Ok(Ok((None, message, _))) if !message.is_empty() => Attempt::Invalid(message),
            Ok(Ok((None, _, value))) => Attempt::Done(value),
        }
    }

    /// Reads one key.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.call(key, true, |mut rpc, context, _| {
            let request = kvrpcpb::RawGetRequest {
                context: Some(context),
                key: key.to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_get(request).await?.into_inner();
                let value = (!response.not_found).then_some(response.value);
                Ok((response.region_error, response.error, value))
            }
        })
        .await
    }

    /// Writes one key, with an optional TTL in seconds (0: none). Not retried after an
    /// ambiguous failure (`ClientError::Unknown`): a retry could apply it twice.
    pub async fn put(&self, key: &[u8], value: &[u8], ttl_seconds: u64) -> Result<(), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawPutRequest {
                context: Some(context),
                key: key.to_vec(),
                value: value.to_vec(),
                ttl: ttl_seconds,
                ..Default::default()
            };
            async move {
                let response = rpc.raw_put(request).await?.into_inner();
                Ok((response.region_error, response.error, ()))
            }
        })
        .await
    }

    /// Deletes one key. Not retried after an ambiguous failure (`ClientError::Unknown`).
    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawDeleteRequest {
                context: Some(context),
                key: key.to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_delete(request).await?.into_inner();
                Ok((response.region_error, response.error, ()))
            }
        })
        .await
    }

    /// Compare-and-swap: sets `value` if the current value is `previous` (`None`: absent).
    /// Returns whether it swapped and the value found. Not retried after an ambiguous
    /// failure (`ClientError::Unknown`).
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        previous: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(bool, Option<Vec<u8>>), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawCasRequest {
                context: Some(context),
                key: key.to_vec(),
                value: value.to_vec(),
                previous_not_exist: previous.is_none(),
                previous_value: previous.unwrap_or_default().to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_compare_and_swap(request).await?.into_inner();
                let found = (!response.previous_not_exist).then_some(response.previous_value);
                Ok((
                    response.region_error,
                    response.error,
                    (response.succeed, found),
                ))
            }
        })
        .await
    }

    /// Up to `limit` pairs in `[start, end)` (empty end: unbounded), across regions.
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ClientError> {
        let mut out = Vec::new();
        let mut cursor = start.to_vec();
        while out.len() < limit as usize {
            let want = limit - out.len() as u32;
            let (pairs, region_end) = self
                .call(&cursor, true, |mut rpc, context, route| {
                    let request = kvrpcpb::RawScanRequest {
                        context: Some(context),
                        start_key: cursor.clone(),
                        end_key: end.to_vec(),
                        limit: want,
                        ..Default::default()
                    };
                    async move {
                        let response = rpc.raw_scan(request).await?.into_inner();
                        let pairs: Vec<_> = response
                            .kvs
                            .into_iter()
                            .map(|kv| (kv.key, kv.value))
                            .collect();
                        Ok((
                            response.region_error,
                            String::new(),
                            (pairs, route.region.end_key),
                        ))
                    }
                })
                .await?;
            out.extend(pairs);
            let range = KeyRange::new(cursor.clone(), end.to_vec());
            if region_end.is_empty() || !range.contains(&region_end) || out.len() >= limit as usize
            {
                break;
            }
            cursor = region_end;
        }
        Ok(out)
    }
}
