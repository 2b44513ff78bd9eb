//! Headers and errors as upstream PD shapes them (`pkg/utils/grpcutil`, `grpc_service.go`):
//! every response header carries the cluster id (error headers too, never 0 with OK); a
//! request naming another cluster fails with `FailedPrecondition`; a member that cannot
//! serve (follower, leader not ready, overloaded) answers gRPC `Unavailable`, which makes
//! clients ask `GetMembers` for the leader and reconnect.

use ferrokv_proto::pdpb::{self, ErrorType};
use tonic::Status;

use crate::driver::PdError;

/// An OK header.
pub fn ok(cluster_id: u64) -> Option<pdpb::ResponseHeader> {
    assert_ne!(cluster_id, 0, "never answer with cluster id 0");
    Some(pdpb::ResponseHeader {
        cluster_id,
        error: None,
    })
}

/// A header carrying a typed error.
pub fn error(
    cluster_id: u64,
    kind: ErrorType,
    message: impl Into<String>,
) -> Option<pdpb::ResponseHeader> {
    assert_ne!(cluster_id, 0, "never answer with cluster id 0");
    Some(pdpb::ResponseHeader {
        cluster_id,
        error: Some(pdpb::Error {
            r#type: kind as i32,
            message: message.into(),
        }),
    })
}

/// Checks the request's cluster id (every request but `GetMembers`).
pub fn check(cluster_id: u64, header: Option<&pdpb::RequestHeader>) -> Result<(), Status> {
    let got = header.map_or(0, |header| header.cluster_id);
    if got != cluster_id {
        return Err(Status::failed_precondition(format!(
            "mismatch cluster id, need {cluster_id} but got {got}"
        )));
    }
    Ok(())
}

/// The gRPC status for a driver that cannot answer.
pub fn status(error: PdError) -> Status {
    match error {
        PdError::Invalid(message) => Status::invalid_argument(message),
        other => Status::unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_mismatch_is_failed_precondition() {
        let header = pdpb::RequestHeader {
            cluster_id: 5,
            sender_id: 0,
        };
        assert!(check(5, Some(&header)).is_ok());
        let status = check(6, Some(&header)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("need 6 but got 5"));
        assert_eq!(
            check(6, None).unwrap_err().code(),
            tonic::Code::FailedPrecondition
        );
    }

    #[test]
    fn errors_carry_the_cluster_id_and_type() {
        let header = error(9, ErrorType::NotBootstrapped, "no").unwrap();
        assert_eq!(header.cluster_id, 9);
        assert_eq!(
            header.error.unwrap().r#type,
            ErrorType::NotBootstrapped as i32
        );
        let not_leader = status(PdError::NotLeader { leader: Some(2) });
        assert_eq!(not_leader.code(), tonic::Code::Unavailable);
        assert_eq!(
            status(PdError::Invalid("x".into())).code(),
            tonic::Code::InvalidArgument
        );
    }
}
