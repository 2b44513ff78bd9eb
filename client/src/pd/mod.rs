//! A Placement Driver client: finds the PD leader through `GetMembers`, stamps the cluster
//! id into every request, and retries on `Unavailable` (a follower, a leader not ready, a
//! leader change) by asking the members again, until the call's deadline.
//!
//! Used by stores (joining, heartbeats, split ids), by `ferrokv ctl`, by the PD-backed route
//! source of `RawClient`, and by the simulator's clients. It compiles under madsim too.

mod calls;

pub use calls::RegionRoute;

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ferrokv_proto::pdpb::pd_client::PdClient as PdGrpc;
use ferrokv_proto::pdpb::{self, ErrorType};
use tonic::transport::{Channel, Endpoint};

/// The gRPC client type calls get.
pub type PdRpc = PdGrpc<Channel>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Why a PD call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdClientError {
    /// No member answered with a leader before the deadline.
    #[error("PD unavailable: {0}")]
    Unavailable(String),
    /// PD answered with a typed error in the response header.
    #[error("PD error {kind:?}: {message}")]
    Header { kind: ErrorType, message: String },
    /// PD refused the request (not retryable).
    #[error("PD refused the request: {0}")]
    Refused(String),
    /// PD's answer lacks something it must carry.
    #[error("malformed PD answer: {0}")]
    Malformed(&'static str),
}

/// The leader connection and what `GetMembers` said.
#[derive(Clone)]
struct Leader {
    cluster_id: u64,
    rpc: PdRpc,
    members: pdpb::GetMembersResponse,
}

/// A PD client over a list of member endpoints (`host:port`).
pub struct PdClient {
    endpoints: Vec<String>,
    timeout: Duration,
    leader: Mutex<Option<Leader>>,
    /// Client URLs of every member the last `GetMembers` named (tried after `endpoints`).
    member_urls: Mutex<Vec<String>>,
}

/// `host:port` of a PD URL (`http://host:port` or bare).
pub fn strip_scheme(url: &str) -> &str {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
}

async fn connect(addr: &str) -> Result<PdRpc, String> {
    let endpoint = Endpoint::new(format!("http://{}", strip_scheme(addr)))
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    Ok(PdGrpc::new(channel)
        .max_decoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX))
}

/// Turns a response header into a typed error.
pub fn check_header(header: Option<&pdpb::ResponseHeader>) -> Result<(), PdClientError> {
    let header = header.ok_or(PdClientError::Malformed("response without header"))?;
    match &header.error {
        Some(error) if error.r#type != ErrorType::Ok as i32 => Err(PdClientError::Header {
            kind: ErrorType::try_from(error.r#type).unwrap_or(ErrorType::Unknown),
            message: error.message.clone(),
        }),
        _ => Ok(()),
    }
}

impl PdClient {
    /// A client over `endpoints`; each call (retries included) ends by `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> PdClient {
        assert!(!endpoints.is_empty(), "a PD client needs an endpoint");
        PdClient {
            endpoints,
            timeout,
            leader: Mutex::new(None),
            member_urls: Mutex::new(Vec::new()),
        }
    }

    /// The member endpoints this client was given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Asks each known member for the leader and connects to it.
    async fn discover(&self) -> Result<Leader, String> {
        let mut candidates: Vec<String> = self.endpoints.clone();
        candidates.extend(
            self.member_urls
                .lock()
                .expect("members lock")
                .iter()
                .cloned(),
        );
        let mut last = String::from("no endpoint");
        for endpoint in candidates {
            match self.ask_members(&endpoint).await {
                Ok(leader) => return Ok(leader),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    async fn ask_members(&self, endpoint: &str) -> Result<Leader, String> {
        let mut rpc = connect(endpoint).await?;
        let call = rpc.get_members(pdpb::GetMembersRequest::default());
        let members = tokio::time::timeout(CONNECT_TIMEOUT, call)
            .await
            .map_err(|_| format!("{endpoint}: GetMembers timed out"))?
            .map_err(|status| format!("{endpoint}: {status}"))?
            .into_inner();
        check_header(members.header.as_ref()).map_err(|e| e.to_string())?;
        let cluster_id = members.header.as_ref().map_or(0, |h| h.cluster_id);
        let leader = members.leader.as_ref().ok_or("no leader yet")?;
        let url = leader
            .client_urls
            .first()
            .ok_or("leader without client url")?;
        let rpc = if strip_scheme(url) == strip_scheme(endpoint) {
            rpc
        } else {
            connect(url).await?
        };
        let urls = members.members.iter().flat_map(|m| m.client_urls.iter());
        let urls: Vec<String> = urls.map(|url| strip_scheme(url).to_string()).collect();
        *self.member_urls.lock().expect("members lock") = urls;
        Ok(Leader {
            cluster_id,
            rpc,
            members,
        })
    }

    async fn leader(&self) -> Result<Leader, String> {
        if let Some(leader) = self.leader.lock().expect("leader lock").clone() {
            return Ok(leader);
        }
        let leader = self.discover().await?;
        *self.leader.lock().expect("leader lock") = Some(leader.clone());
        Ok(leader)
    }

    fn forget_leader(&self) {
        self.leader.lock().expect("leader lock").take();
    }

    /// Forgets the leader connection: the next call asks the members again (after a
    /// stream to the leader broke).
    pub fn reconnect(&self) {
        self.forget_leader();
    }

    /// Opens a `RegionHeartbeat` stream to the leader (one attempt).
    pub async fn region_heartbeat(
        &self,
        outbound: impl tonic::IntoStreamingRequest<Message = pdpb::RegionHeartbeatRequest>,
    ) -> Result<tonic::Streaming<pdpb::RegionHeartbeatResponse>, PdClientError> {
        let mut leader = self.leader().await.map_err(PdClientError::Unavailable)?;
        match leader.rpc.region_heartbeat(outbound).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                self.forget_leader();
                Err(PdClientError::Unavailable(status.to_string()))
            }
        }
    }

    /// The leader connection, asking the members (again) until the deadline.
    async fn leader_until_deadline(&self) -> Result<Leader, PdClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.leader().await {
                Ok(leader) => return Ok(leader),
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(PdClientError::Unavailable(error))
                }
                Err(_) => tokio::time::sleep(RETRY_BACKOFF).await,
            }
        }
    }

    /// The cluster id (asks the members if not connected yet).
    pub async fn cluster_id(&self) -> Result<u64, PdClientError> {
        Ok(self.leader_until_deadline().await?.cluster_id)
    }

    /// A fresh `GetMembers` answer from a member that knows the leader.
    pub async fn members(&self) -> Result<pdpb::GetMembersResponse, PdClientError> {
        self.forget_leader();
        Ok(self.leader_until_deadline().await?.members)
    }

    /// Runs `attempt` on the leader with a request header, retrying unavailability (a
    /// follower, a leader change, a refused connection) until the deadline.
    pub async fn call<T, F, Fut>(&self, attempt: F) -> Result<T, PdClientError>
    where
        F: Fn(PdRpc, pdpb::RequestHeader) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last = String::from("no attempt finished");
        while tokio::time::Instant::now() < deadline {
            match self.leader().await {
                Err(error) => last = error,
                Ok(leader) => {
                    let header = pdpb::RequestHeader {
                        cluster_id: leader.cluster_id,
                        sender_id: 0,
                    };
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, attempt(leader.rpc, header)).await {
                        Err(_) => last = "timed out".into(),
                        Ok(Ok(value)) => return Ok(value),
                        Ok(Err(status)) if retryable(&status) => last = status.to_string(),
                        Ok(Err(status)) => return Err(PdClientError::Refused(status.to_string())),
                    }
                    self.forget_leader();
                }
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        Err(PdClientError::Unavailable(last))
    }
}

fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}
