//! What a provider is configured with: the server, the client, the grant, and
//! the settings real servers need, as data.

use std::sync::Arc;
use std::time::Duration;

use crate::binding::TokenBinding;
use crate::discovery::{AuthorizationServerSelector, ResourceValidator};
use crate::http::{HttpTransport, TransportOptions};
use crate::jwt::AssertionProvider;
use crate::model::{OAuthClientMetadata, Secret};
use crate::provider::flight::TaskWrapper;
use crate::sources::TokenSource;

/// How the provider obtains tokens when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GrantKind {
    /// The authorization-code flow with PKCE, through the host's handlers.
    #[default]
    AuthorizationCode,
    /// The client credentials grant: no person involved.
    ClientCredentials,
}

/// Pre-registered client credentials.
#[derive(Clone)]
pub struct StaticClient {
    /// The client ID.
    pub client_id: String,
    /// The secret, for confidential clients.
    pub client_secret: Option<Secret>,
    /// `none`, `client_secret_basic`, `client_secret_post` or
    /// `private_key_jwt`; chosen from the server's metadata when absent.
    pub token_endpoint_auth_method: Option<String>,
    /// The issuer of the authorization server these credentials belong to.
    /// When set, metadata from any other issuer is refused, so the secret
    /// never leaves for another server.
    pub issuer: Option<String>,
}

impl StaticClient {
    /// Credentials for `client_id`, with an optional secret.
    pub fn new(client_id: impl Into<String>, client_secret: Option<Secret>) -> Self {
        StaticClient {
            client_id: client_id.into(),
            client_secret,
            token_endpoint_auth_method: None,
            issuer: None,
        }
    }
}

impl std::fmt::Debug for StaticClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("token_endpoint_auth_method", &self.token_endpoint_auth_method)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// The RFC 8707 `resource` parameter of authorization and token requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResourceParameter {
    /// Send the discovered resource (the MCP spec's rule; the default).
    #[default]
    Send,
    /// Send none (Microsoft Entra ID rejects it in some tenants: AADSTS901002).
    Omit,
    /// Send this value instead.
    Override(String),
}

/// Everything a provider is configured with.
#[derive(Clone)]
pub struct ProviderConfig {
    /// The MCP server URL.
    pub server_url: String,
    /// The client's registration metadata. Its `scope`, when set, is the
    /// application's scope and is never replaced.
    pub client_metadata: OAuthClientMetadata,
    /// A Client ID Metadata Document URL (HTTPS, non-root path).
    pub client_metadata_url: Option<String>,
    /// Pre-registered credentials.
    pub static_client: Option<StaticClient>,
    /// How tokens are obtained (ignored when `source` is set).
    pub grant: GrantKind,
    /// A token source of the host's (replaces the one `grant` names).
    pub source: Option<Arc<dyn TokenSource>>,
    /// How tokens are presented (default: Bearer).
    pub binding: Option<Arc<dyn TokenBinding>>,
    /// Deadline of each HTTP request the provider makes (connect, send, and
    /// the whole body).
    pub timeout: Duration,
    /// Deadline of an interactive authorization, from sending the person to
    /// the authorization endpoint to the redirect coming back.
    pub authorization_timeout: Duration,
    /// How long to wait for another process's refresh of the same store
    /// before giving up with a storage error.
    pub lease_wait: Duration,
    /// How long a refresh lease is held at most.
    pub lease_ttl: Duration,
    /// Accept authorization servers whose metadata omits
    /// `code_challenge_methods_supported` (Entra ID, Cognito) and use S256
    /// anyway. Servers that list methods without S256 are still refused.
    pub assume_s256_when_pkce_unadvertised: bool,
    /// Hosts (names or addresses, any port) whose authorization-server
    /// endpoints may use plain `http`: a development setup such as
    /// `http://keycloak:8080` in docker compose. Everywhere else they must be
    /// HTTPS, loopback excepted. Tokens and secrets then cross the network
    /// in the clear: never list a host of a real deployment.
    pub allow_http_hosts: Vec<String>,
    /// Let the server's scope (its challenge's, else its protected resource
    /// metadata's) replace the configured `client_metadata.scope`, as the MCP
    /// Python SDK does. Off by default: the MCP spec says a scope the
    /// application configured is never overwritten.
    pub server_scope_replaces_configured: bool,
    /// Skip the check that the protected resource metadata's `resource`
    /// matches the server URL. Prefer `resource_validator`.
    pub skip_resource_check: bool,
    /// Replaces the default resource check.
    pub resource_validator: Option<ResourceValidator>,
    /// Picks among several authorization servers (default: the first).
    pub authorization_server_selector: Option<AuthorizationServerSelector>,
    /// The `resource` parameter: sent (default), omitted, or overridden.
    pub resource_parameter: ResourceParameter,
    /// Extra parameters of the authorization request (Auth0's `audience`).
    /// They never replace a parameter the protocol sets.
    pub extra_authorization_params: Vec<(String, String)>,
    /// Extra parameters of every token request.
    pub extra_token_params: Vec<(String, String)>,
    /// Sent as `MCP-Protocol-Version` on discovery requests.
    pub protocol_version: Option<String>,
    /// How many step-up attempts for one challenged scope before giving up.
    pub max_step_up_attempts: u32,
    /// The HTTP transport (default: reqwest with rustls, built from
    /// `transport_options`).
    pub transport: Option<Arc<dyn HttpTransport>>,
    /// Options of the default transport: CA certificates to trust beside the
    /// operating system's, for private authorization servers.
    pub transport_options: TransportOptions,
    /// Client assertions for `private_key_jwt` client authentication of the
    /// pre-registered client (RFC 7523): a [`crate::jwt::JwtSigner`] with the
    /// client's key, or the host's own provider.
    pub client_assertion: Option<Arc<dyn AssertionProvider>>,
    /// Wraps the tasks that run refreshes and flows, in the context of the
    /// request that starts them (a language binding uses it to carry its
    /// event loop into the task).
    pub task_wrapper: Option<TaskWrapper>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("server_url", &self.server_url)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("static_client", &self.static_client)
            .field("grant", &self.grant)
            .field("timeout", &self.timeout)
            .field("resource_parameter", &self.resource_parameter)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    /// A configuration with defaults: authorization code, Bearer tokens, 30 s
    /// per request, 5 minutes for a person to authorize, PKCE and resource
    /// checks on, `resource` sent, 3 step-up attempts per scope.
    pub fn new(server_url: impl Into<String>, client_metadata: OAuthClientMetadata) -> Self {
        ProviderConfig {
            server_url: server_url.into(),
            client_metadata,
            client_metadata_url: None,
            static_client: None,
            grant: GrantKind::AuthorizationCode,
            source: None,
            binding: None,
            timeout: Duration::from_secs(30),
            authorization_timeout: Duration::from_secs(300),
            lease_wait: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(60),
            assume_s256_when_pkce_unadvertised: false,
            allow_http_hosts: Vec::new(),
            server_scope_replaces_configured: false,
            skip_resource_check: false,
            resource_validator: None,
            authorization_server_selector: None,
            resource_parameter: ResourceParameter::Send,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            protocol_version: None,
            max_step_up_attempts: 3,
            transport: None,
            transport_options: TransportOptions::default(),
            client_assertion: None,
            task_wrapper: None,
        }
    }
}

impl ProviderConfig {
    /// Enterprise-managed authorization: tokens from the JWT-bearer grant
    /// with an ID-JAG that the enterprise `idp` issues for the user's
    /// `id_token` (both legs). The pre-registered client (`static_client`)
    /// authenticates leg 2; the application's scope, if any, is asked for in
    /// the ID-JAG too.
    pub fn use_identity_assertion(
        &mut self,
        idp: crate::sources::IdentityProvider,
        id_token: crate::sources::JwtInput,
    ) {
        let scope = self.client_metadata.scope.clone();
        let exchange = crate::sources::IdJagExchange::new(idp, id_token, scope);
        self.use_grant_assertion(Arc::new(exchange));
    }

    /// Workload identity: tokens from the JWT-bearer grant with the
    /// platform's JWT, for the pre-registered `client_id` without a secret.
    pub fn use_workload_identity(&mut self, token: crate::sources::JwtInput) {
        self.use_grant_assertion(Arc::new(crate::sources::WorkloadToken::new(token)));
    }

    /// Tokens from the JWT-bearer grant with assertions from `assertion`
    /// (an ID-JAG the host obtains itself, for instance).
    pub fn use_grant_assertion(&mut self, assertion: Arc<dyn crate::sources::GrantAssertion>) {
        self.client_metadata.grant_types = vec![crate::sources::JWT_BEARER_GRANT.to_string()];
        self.client_metadata.response_types = Vec::new();
        self.source = Some(Arc::new(crate::sources::JwtBearer::new(assertion)));
    }

    /// Tokens from the device authorization grant (RFC 8628), for hosts
    /// where the person cannot use a browser on this machine: `handler`
    /// shows the user code and verification URI, and the provider polls the
    /// token endpoint while the person approves on another device. The
    /// authorization server must advertise a `device_authorization_endpoint`;
    /// a dynamic registration asks for the device code and refresh token
    /// grants, without redirect URIs. The person's part is bounded by the
    /// code's lifetime and by `authorization_timeout`.
    pub fn use_device_code(&mut self, handler: Arc<dyn crate::sources::DeviceCodeHandler>) {
        self.client_metadata.grant_types = vec![
            crate::sources::DEVICE_CODE_GRANT.to_string(),
            "refresh_token".to_string(),
        ];
        self.client_metadata.response_types = Vec::new();
        self.client_metadata.redirect_uris = Vec::new();
        self.source = Some(Arc::new(crate::sources::DeviceCode::new(handler)));
    }

    /// DPoP-bound tokens (RFC 9449), with `signer`'s key, or with a key of
    /// the provider's own when `None`.
    pub fn use_dpop(&mut self, signer: Option<Arc<dyn crate::keys::Signer>>) -> crate::error::Result<()> {
        let dpop = match signer {
            Some(s) => crate::dpop::Dpop::new(s)?,
            None => crate::dpop::Dpop::generate(),
        };
        self.binding = Some(Arc::new(dpop));
        Ok(())
    }
}
