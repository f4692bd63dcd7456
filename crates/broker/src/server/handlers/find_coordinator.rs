//! FindCoordinator, before the group coordinator exists: every key is answered with
//! COORDINATOR_NOT_AVAILABLE, which clients retry. It is served at all because
//! librdkafka enables LZ4 only for brokers that list FindCoordinator in ApiVersions.

use super::s;
use crate::protocol::errors;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::BrokerId;

pub fn handle(req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let code = errors::code(ResponseError::CoordinatorNotAvailable);
    let message = "the group coordinator is not available on this broker yet";
    if version < 4 {
        let mut r = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_host(s(""))
            .with_port(-1);
        if version >= 1 {
            r.error_message = Some(s(message));
        }
        return r;
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_host(s(""))
                .with_port(-1)
                .with_error_code(code)
                .with_error_message(Some(s(message)))
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
