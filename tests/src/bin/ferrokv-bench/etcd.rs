//! The etcd peer: a 3-member cluster of Debian's `etcd` on loopback (data in a temp dir,
//! stopped on drop), and a client of its gRPC KV API (`Put`, linearizable `Range`) with
//! the messages declared here by hand (field numbers from etcd's `rpc.proto` and
//! `kv.proto`), so the bench needs no code generation and none of this enters the
//! simulator build.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.PutRequest` (the fields the bench sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse` (header only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

/// `etcdserverpb.RangeRequest`: one key, linearizable (`serializable` false).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.RangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
}

/// A client of one member's KV service.
#[derive(Clone)]
pub struct EtcdClient {
    channel: Channel,
}

impl EtcdClient {
    pub async fn connect(address: &str) -> Result<EtcdClient, String> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(EtcdClient { channel })
    }

    async fn unary<Q, R>(&self, path: &'static str, request: Q) -> Result<R, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec: ProstCodec<Q, R> = ProstCodec::default();
        let path = PathAndQuery::from_static(path);
        Ok(grpc
            .unary(tonic::Request::new(request), path, codec)
            .await?
            .into_inner())
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), tonic::Status> {
        let request = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        let _: PutResponse = self.unary("/etcdserverpb.KV/Put", request).await?;
        Ok(())
    }

    /// A linearizable read of `key`: its value, if any.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, tonic::Status> {
        let request = RangeRequest {
            key: key.to_vec(),
            serializable: false,
        };
        let response: RangeResponse = self.unary("/etcdserverpb.KV/Range", request).await?;
        Ok(response.kvs.into_iter().next().map(|kv| kv.value))
    }
}

/// Three etcd members on loopback, killed on drop.
pub struct EtcdCluster {
    children: Vec<Child>,
    /// Client addresses, `127.0.0.1:port`.
    pub clients: Vec<String>,
}

impl EtcdCluster {
    /// Starts the members with data under `dir`; `None` if `etcd` is not installed.
    pub fn start(dir: &Path, ports: &[(u16, u16); 3]) -> Option<EtcdCluster> {
        let binary = which("etcd")?;
        let peer = |p: u16| format!("http://127.0.0.1:{p}");
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer_port))| format!("m{i}={}", peer(*peer_port)))
            .collect();
        let mut cluster = EtcdCluster {
            children: Vec::new(),
            clients: Vec::new(),
        };
        for (i, (client_port, peer_port)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client_port}");
            let log = std::fs::File::create(dir.join(format!("etcd-m{i}.log"))).ok()?;
            let child = Command::new(&binary)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("etcd-m{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer(*peer_port)])
                .args(["--initial-advertise-peer-urls", &peer(*peer_port)])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "ferrokv-bench"])
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .ok()?;
            cluster.children.push(child);
            cluster.clients.push(format!("127.0.0.1:{client_port}"));
        }
        Some(cluster)
    }

    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits until a put through the first member succeeds.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let began = Instant::now();
        let mut last = String::new();
        while began.elapsed() < timeout {
            match EtcdClient::connect(&self.clients[0]).await {
                Ok(client) => match client.put(b"warmup", b"1").await {
                    Ok(()) => return Ok(()),
                    Err(error) => last = error.to_string(),
                },
                Err(error) => last = error,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("etcd did not come up in {timeout:?}: {last}"))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The path of `program` on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}
