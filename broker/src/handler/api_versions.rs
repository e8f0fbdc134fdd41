//! ApiVersions: lists [`crate::protocol::SUPPORTED_APIS`].

use crate::protocol::SUPPORTED_APIS;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

pub(crate) fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|a| {
                ApiVersion::default()
                    .with_api_key(a.key as i16)
                    .with_min_version(a.min)
                    .with_max_version(a.max)
            })
            .collect(),
    )
}
