//! `GetMembers` (no cluster-id check, as upstream: clients learn the id here) and
//! `GetClusterConfig`.
//!
//! Followers answer `GetMembers` too, naming the leader they know, so a client that hit a
//! follower reconnects to the leader. Without a known leader `leader` is left empty (the
//! official client then counts the endpoint as failed and tries another).

use ferrokv_proto::{metapb, pdpb};

use super::{header, PdService};
use crate::config::Member;

fn url(addr: &str) -> String {
    format!("http://{addr}")
}

fn member(member: &Member) -> pdpb::Member {
    pdpb::Member {
        name: member.name.clone(),
        member_id: member.id,
        peer_urls: vec![url(&member.peer_addr)],
        client_urls: vec![url(&member.client_addr)],
        binary_version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

impl PdService {
    pub(super) fn members_response(&self) -> pdpb::GetMembersResponse {
        let members: Vec<pdpb::Member> = self.members.iter().map(member).collect();
        let leader = self
            .shared
            .leader()
            .and_then(|id| members.iter().find(|m| m.member_id == id).cloned());
        pdpb::GetMembersResponse {
            header: header::ok(self.cluster_id()),
            members,
            etcd_leader: leader.clone(),
            leader,
            ..Default::default()
        }
    }

    pub(super) fn cluster_config(&self) -> pdpb::GetClusterConfigResponse {
        pdpb::GetClusterConfigResponse {
            header: header::ok(self.cluster_id()),
            cluster: Some(metapb::Cluster {
                id: self.cluster_id(),
                max_peer_count: u32::try_from(self.max_replicas).unwrap_or(u32::MAX),
            }),
        }
    }
}
