//! Shorthands for tests that send their requests to the MCP server URL
//! itself: the provider's request-aware calls with that method and URL.

#![allow(dead_code)]

pub use mcp_oauth_client::ResponseAction;
use mcp_oauth_client::{AuthHeaders, OAuthClientProvider, RequestInfo, ResponseInfo};

/// The `Authorization` value for a POST to the server URL.
pub async fn header(p: &OAuthClientProvider) -> mcp_oauth_client::Result<Option<String>> {
    let url = p.server_url().to_string();
    Ok(p.headers(&RequestInfo::new("POST", &url))
        .await?
        .map(AuthHeaders::into_authorization))
}

/// The hot path for a POST to the server URL.
pub fn cached(p: &OAuthClientProvider) -> Option<String> {
    p.cached_headers("POST", p.server_url().as_str())
        .map(AuthHeaders::into_authorization)
}

/// Hand the provider a response with these `WWW-Authenticate` values to a
/// POST to the server URL that carried `sent`.
pub async fn respond(
    p: &OAuthClientProvider,
    status: u16,
    challenges: &[&str],
    sent: Option<&str>,
) -> mcp_oauth_client::Result<ResponseAction> {
    let url = p.server_url().to_string();
    let headers: Vec<(String, String)> = challenges
        .iter()
        .map(|c| ("WWW-Authenticate".to_string(), c.to_string()))
        .collect();
    p.handle_response(
        &RequestInfo::new("POST", &url).with_authorization(sent),
        &ResponseInfo::new(status, &headers),
    )
    .await
}

/// The action "retry with this Authorization value".
pub fn retry(authorization: &str) -> ResponseAction {
    ResponseAction::Retry(AuthHeaders::authorization_only(authorization.to_string()))
}

/// The Authorization value of a retry.
pub fn retried(action: ResponseAction) -> Option<String> {
    match action {
        ResponseAction::Retry(h) => Some(h.into_authorization()),
        ResponseAction::Done => None,
    }
}
