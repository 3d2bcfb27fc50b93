//! Token sources: where a new token comes from when none is usable.
//!
//! Each grant is one type implementing [`TokenSource`]: the authorization
//! code with a person ([`AuthorizationCode`]), the device authorization
//! grant with a person on another device ([`DeviceCode`]), client credentials
//! ([`ClientCredentials`]), and the JWT-bearer grant ([`JwtBearer`], RFC
//! 7523, on which enterprise and workload-identity grants build). The engine
//! (`crate::provider`) does what they share: discovery, the client identity,
//! storing, single flight, and refresh ([`refresh`]), which every source's
//! tokens use alike.

mod authorization_code;
mod client_credentials;
pub(crate) mod device_code;
mod identity_assertion;
mod jwt_bearer;
mod refresh;

use std::time::Duration;

use url::Url;

pub use authorization_code::AuthorizationCode;
pub use client_credentials::ClientCredentials;
pub use device_code::{
    DEFAULT_INTERVAL, DEVICE_CODE_GRANT, DeviceAuthorization, DeviceCode, DeviceCodeHandler, MAX_DEVICE_CODE_LIFETIME,
    MAX_INTERVAL, MAX_USER_CODE_LEN, SLOW_DOWN_STEP,
};
pub use identity_assertion::{
    ID_JAG_TYPE, ID_TOKEN_TYPE, IdJagExchange, IdentityProvider, JwtFn, JwtInput, JwtReader, TOKEN_EXCHANGE_GRANT,
    WorkloadToken,
};
pub use jwt_bearer::{GrantAssertion, JWT_BEARER_GRANT, JwtBearer};
pub use refresh::refresh;

use crate::binding::TokenBinding;
use crate::discovery::Discovered;
use crate::error::Result;
use crate::http::Http;
use crate::model::{OAuthClientInformationFull, OAuthClientMetadata, OAuthToken};
use crate::token::{ClientAuthentication, Grant};

/// What a source works with: everything discovery and client identification
/// settled, and the settings for real servers.
pub struct SourceContext<'a> {
    /// The HTTP layer, with the deadline that applies to this operation.
    pub http: &'a Http,
    /// The resource and its authorization server.
    pub discovered: &'a Discovered,
    /// The client identity.
    pub client: &'a OAuthClientInformationFull,
    /// How the client authenticates at the token endpoint.
    pub client_auth: &'a ClientAuthentication,
    /// The token endpoint (checked: HTTPS or loopback).
    pub token_endpoint: &'a Url,
    /// The `resource` to send, or `None` when the configuration omits it.
    pub resource: Option<&'a str>,
    /// Extra parameters for the authorization request.
    pub extra_authorization_params: &'a [(String, String)],
    /// Extra parameters for token requests.
    pub extra_token_params: &'a [(String, String)],
    /// The client's metadata (redirect URIs).
    pub client_metadata: &'a OAuthClientMetadata,
    /// Accept servers that do not advertise PKCE methods.
    pub assume_s256_when_pkce_unadvertised: bool,
    /// The deadline of an interactive authorization, end to end.
    pub authorization_timeout: Duration,
    /// How tokens are presented; it adds its proof to token requests.
    pub binding: &'a dyn TokenBinding,
}

impl SourceContext<'_> {
    /// Send `grant` to the token endpoint, authenticated as the client, with
    /// the resource and the extra token parameters.
    pub async fn request_token(&self, grant: &Grant) -> Result<OAuthToken> {
        crate::token::request_token(
            self.http,
            self.token_endpoint,
            &self.discovered.issuer,
            grant,
            self.client_auth,
            self.resource,
            self.extra_token_params,
            self.binding,
        )
        .await
    }
}

/// A way to obtain new tokens.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A short name for logs and diagnostics (`authorization_code`, ...).
    fn name(&self) -> &'static str;

    /// Whether a person takes part. Such a source starts only when a server
    /// answers 401 (or the host asks to log in), never to prepare a request.
    fn needs_person(&self) -> bool;

    /// Whether the client may register itself (RFC 7591) for this grant.
    /// Machine-to-machine grants use pre-registered credentials.
    fn may_register(&self) -> bool;

    /// Whether the authorization server must support PKCE (S256) for this
    /// source: those that send the person to the authorization endpoint.
    fn uses_pkce(&self) -> bool {
        self.needs_person()
    }

    /// What this source needs of the authorization server beyond the token
    /// endpoint, checked without traffic for diagnostics
    /// ([`crate::OAuthClientProvider::inspect`]): `None` when nothing,
    /// else a short name of the check and its outcome (what was found, or
    /// what is missing).
    fn check_server(
        &self,
        server: &crate::model::AuthorizationServerMetadata,
    ) -> Option<(&'static str, Result<String>)> {
        let _ = server;
        None
    }

    /// Obtain tokens for `scope`. The engine records their issuer and
    /// resource, checks their type against the binding, and stores them.
    async fn obtain(&self, ctx: &SourceContext<'_>, scope: Option<&str>) -> Result<OAuthToken>;
}
