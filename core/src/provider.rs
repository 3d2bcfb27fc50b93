//! The provider: the `Authorization` header for each request, and what to do
//! when a response says 401 or 403.
//!
//! The hot path (a valid token is held) reads an atomically swapped snapshot:
//! no I/O, no lock that any HTTP request holds, one string allocation.
//! Everything slow (loading from storage, refresh, the full flow, step-up)
//! runs under one async mutex, so one is in flight per provider and every
//! waiting request shares its result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use url::Url;

use crate::authorize::{AuthorizationParams, build_authorization, validate_callback};
use crate::challenge::{BearerChallenge, find_bearer};
use crate::discovery::{
    AuthorizationServerSelector, ResourceValidator, canonical_resource, check_pkce_support, check_resource,
    fetch_authorization_server_metadata, fetch_resource_metadata, legacy_default_metadata,
};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::handler::AuthorizationHandler;
use crate::http::{Http, HttpTransport, ReqwestTransport, parse_server_url, require_secure};
use crate::jwt::{AssertionProvider, PrivateKeyJwt};
use crate::model::{
    AuthorizationServerMetadata, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken,
    ProtectedResourceMetadata, Secret,
};
use crate::registration::{bound_to, register, validate_cimd_url};
use crate::scope::{initial_scope, step_up_scope};
use crate::storage::TokenStorage;
use crate::token::{ClientAuthentication, Grant, request_token};

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
    /// `none`, `client_secret_basic` or `client_secret_post`; chosen from the
    /// server's metadata when absent.
    pub token_endpoint_auth_method: Option<String>,
}

impl std::fmt::Debug for StaticClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("token_endpoint_auth_method", &self.token_endpoint_auth_method)
            .finish()
    }
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
    /// How tokens are obtained.
    pub grant: GrantKind,
    /// Timeout of each HTTP request the provider makes.
    pub timeout: Duration,
    /// Accept authorization servers whose metadata omits
    /// `code_challenge_methods_supported` (Entra ID, Cognito) and use S256
    /// anyway. Servers that list methods without S256 are still refused.
    pub assume_s256_when_pkce_unadvertised: bool,
    /// Skip the check that the protected resource metadata's `resource`
    /// matches the server URL. Prefer `resource_validator`.
    pub skip_resource_check: bool,
    /// Replaces the default resource check.
    pub resource_validator: Option<ResourceValidator>,
    /// Picks among several authorization servers (default: the first).
    pub authorization_server_selector: Option<AuthorizationServerSelector>,
    /// Sent as `MCP-Protocol-Version` on discovery requests.
    pub protocol_version: Option<String>,
    /// How many step-up attempts in a row before giving up.
    pub max_step_up_attempts: u32,
    /// The HTTP transport (default: reqwest with rustls).
    pub transport: Option<Arc<dyn HttpTransport>>,
    /// Client assertions for `private_key_jwt` client authentication of the
    /// pre-registered client (RFC 7523): a [`crate::jwt::JwtSigner`] with the client's
    /// key, or the host's own provider.
    pub client_assertion: Option<Arc<dyn AssertionProvider>>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("server_url", &self.server_url)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("static_client", &self.static_client)
            .field("grant", &self.grant)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    /// A configuration with defaults: authorization code, 30 s timeout,
    /// PKCE and resource checks on, 3 step-up attempts.
    pub fn new(server_url: impl Into<String>, client_metadata: OAuthClientMetadata) -> Self {
        ProviderConfig {
            server_url: server_url.into(),
            client_metadata,
            client_metadata_url: None,
            static_client: None,
            grant: GrantKind::AuthorizationCode,
            timeout: Duration::from_secs(30),
            assume_s256_when_pkce_unadvertised: false,
            skip_resource_check: false,
            resource_validator: None,
            authorization_server_selector: None,
            protocol_version: None,
            max_step_up_attempts: 3,
            transport: None,
            client_assertion: None,
        }
    }
}

/// What the caller should do after handing a response to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Send the request again, once, with this `Authorization` value.
    Retry(String),
    /// Nothing to do: pass the response to the application.
    Done,
}

struct Discovered {
    resource_metadata: Option<ProtectedResourceMetadata>,
    issuer: String,
    server: AuthorizationServerMetadata,
    resource: String,
}

struct Held {
    token: OAuthToken,
    header: String,
}

#[derive(Default)]
struct Session {
    loaded: bool,
    discovered: Option<Arc<Discovered>>,
    client: Option<OAuthClientInformationFull>,
    last_failure: Option<Error>,
    /// The issuer the held tokens came from, when this process obtained them.
    token_issuer: Option<String>,
}

struct Inner {
    config: ProviderConfig,
    server_url: Url,
    http: Http,
    storage: Arc<dyn TokenStorage>,
    handler: Option<Arc<dyn AuthorizationHandler>>,
    current: ArcSwapOption<Held>,
    session: tokio::sync::Mutex<Session>,
    /// Completed slow operations; lets a waiter see that one finished while
    /// it waited, and share its outcome.
    completed: AtomicU64,
    step_ups: AtomicU32,
}

/// The OAuth client for one MCP server. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct OAuthClientProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuthClientProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientProvider")
            .field("server_url", &self.inner.server_url.as_str())
            .finish_non_exhaustive()
    }
}

fn handler_error(step: Step, e: Error) -> Error {
    match e.kind() {
        ErrorKind::Handler | ErrorKind::Network => e,
        _ => Error::handler(step, format!("the {step} handler failed: {}", e.message())),
    }
}

impl OAuthClientProvider {
    /// Build a provider. Everything that can be checked without traffic is
    /// checked here: the server URL, the client metadata, the CIMD URL, and
    /// that the chosen grant has what it needs.
    pub fn new(
        config: ProviderConfig,
        storage: Arc<dyn TokenStorage>,
        handler: Option<Arc<dyn AuthorizationHandler>>,
    ) -> Result<Self> {
        let server_url = Url::parse(&config.server_url)
            .map_err(|e| Error::config(format!("server_url {:?} is not a URL ({e})", config.server_url)))?;
        if !matches!(server_url.scheme(), "http" | "https") || server_url.host().is_none() {
            return Err(Error::config(format!(
                "server_url {:?} must be an http(s) URL",
                config.server_url
            )));
        }
        if let Some(u) = &config.client_metadata_url {
            validate_cimd_url(u)?;
        }
        match config.grant {
            GrantKind::AuthorizationCode => config.client_metadata.validate()?,
            GrantKind::ClientCredentials => {
                if config.static_client.is_none() {
                    return Err(Error::config(
                        "the client credentials grant needs a client_id (and usually a secret)",
                    ));
                }
            }
        }
        if config.timeout.is_zero() {
            return Err(Error::config("timeout must be greater than zero"));
        }
        let transport: Arc<dyn HttpTransport> = match &config.transport {
            Some(t) => t.clone(),
            None => Arc::new(ReqwestTransport::new()?),
        };
        let http = Http {
            transport,
            timeout: config.timeout,
            protocol_version: config.protocol_version.clone(),
        };
        Ok(OAuthClientProvider {
            inner: Arc::new(Inner {
                config,
                server_url,
                http,
                storage,
                handler,
                current: ArcSwapOption::empty(),
                session: tokio::sync::Mutex::new(Session::default()),
                completed: AtomicU64::new(0),
                step_ups: AtomicU32::new(0),
            }),
        })
    }

    /// The MCP server URL.
    pub fn server_url(&self) -> &Url {
        &self.inner.server_url
    }

    /// The configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// The hot path: the `Authorization` value when a token is held that is
    /// not about to expire. No I/O, no waiting.
    pub fn cached_authorization(&self) -> Option<String> {
        let guard = self.inner.current.load();
        let held = guard.as_ref()?;
        if held.token.needs_refresh() {
            None
        } else {
            Some(held.header.clone())
        }
    }

    /// The tokens held now, if any.
    pub fn current_token(&self) -> Option<OAuthToken> {
        self.inner.current.load().as_ref().map(|h| h.token.clone())
    }

    /// The `Authorization` value for the next request. Loads stored tokens
    /// on first use and refreshes an expiring token, but never starts the
    /// interactive flow: with no usable token it returns `None`, the request
    /// goes out without one, and the server's 401 starts the flow.
    pub async fn authorization(&self) -> Result<Option<String>> {
        if let Some(h) = self.cached_authorization() {
            return Ok(Some(h));
        }
        let seen = self.inner.completed.load(Ordering::Acquire);
        let mut s = self.inner.session.lock().await;
        if let Some(h) = self.cached_authorization() {
            return Ok(Some(h));
        }
        if self.inner.completed.load(Ordering::Acquire) != seen {
            if let Some(e) = &s.last_failure {
                return Err(e.clone());
            }
        }
        self.load_if_needed(&mut s).await?;
        if let Some(h) = self.cached_authorization() {
            return Ok(Some(h));
        }
        let has_refresh = self
            .inner
            .current
            .load()
            .as_ref()
            .is_some_and(|h| h.token.refresh_token.is_some());
        if has_refresh {
            let outcome = self.refresh(&mut s).await;
            match outcome {
                Ok(()) => return Ok(self.cached_authorization()),
                Err(e) if e.kind() == ErrorKind::Token => {
                    tracing::info!(error = %e, "refresh refused; a new authorization will be needed");
                }
                Err(e) => return Err(e),
            }
        } else if self.inner.config.grant == GrantKind::ClientCredentials {
            let outcome = self.obtain(&mut s, None, None).await;
            self.finish(&mut s, &outcome);
            outcome?;
            return Ok(self.cached_authorization());
        }
        Ok(None)
    }

    /// Hand the provider a response. On 401 it refreshes or runs the flow; on
    /// 403 `insufficient_scope` it steps up. `sent` is the `Authorization`
    /// value the request carried. Call it at most once per request: after a
    /// retry, pass a second 401/403 to the application.
    pub async fn handle_response<S: AsRef<str>>(
        &self,
        status: u16,
        www_authenticate: &[S],
        sent: Option<&str>,
    ) -> Result<ResponseAction> {
        match status {
            401 => {
                let challenge = find_bearer(www_authenticate);
                self.on_unauthorized(challenge, sent).await.map(ResponseAction::Retry)
            }
            403 => {
                let challenge = find_bearer(www_authenticate);
                match challenge {
                    Some(c) if c.error.as_deref() == Some("insufficient_scope") => {
                        self.on_insufficient_scope(c, sent).await.map(ResponseAction::Retry)
                    }
                    _ => Ok(ResponseAction::Done),
                }
            }
            200..=399 => {
                self.inner.step_ups.store(0, Ordering::Relaxed);
                Ok(ResponseAction::Done)
            }
            _ => Ok(ResponseAction::Done),
        }
    }

    /// Run discovery and the whole flow now, before any request (a "log in"
    /// command). Replaces any tokens held.
    pub async fn authorize(&self) -> Result<()> {
        let mut s = self.inner.session.lock().await;
        let outcome = self.obtain(&mut s, None, None).await;
        self.finish(&mut s, &outcome);
        outcome
    }

    async fn on_unauthorized(&self, challenge: Option<BearerChallenge>, sent: Option<&str>) -> Result<String> {
        let mut s = match self.enter_flight(sent).await {
            Ok(s) => s,
            Err(answered) => return answered,
        };
        self.load_if_needed(&mut s).await?;
        if let Some(h) = self.fresh_header_other_than(sent) {
            return Ok(h);
        }
        // A 401 may mean the resource moved to another authorization server:
        // discovery is not cached across it.
        s.discovered = None;
        let d = self.discover(&mut s, challenge.as_ref()).await?;
        // A refresh token is tried before a new authorization, when the
        // tokens came from the authorization server in use now.
        let has_refresh = self
            .inner
            .current
            .load()
            .as_ref()
            .is_some_and(|h| h.token.refresh_token.is_some());
        let same_server = s
            .token_issuer
            .as_deref()
            .is_none_or(|i| crate::discovery::same_issuer(i, &d.issuer));
        if has_refresh && !same_server {
            tracing::info!("the authorization server changed; the held tokens are not refreshed there");
            self.inner.current.store(None);
        }
        if has_refresh && same_server {
            match self.refresh(&mut s).await {
                Ok(()) => {
                    self.inner.completed.fetch_add(1, Ordering::AcqRel);
                    s.last_failure = None;
                    if let Some(h) = self.fresh_header_other_than(sent) {
                        return Ok(h);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Token => {
                    tracing::info!(error = %e, "refresh refused; starting a new authorization");
                }
                Err(e) => return Err(e),
            }
        }
        let outcome = self.obtain(&mut s, challenge.as_ref(), None).await;
        self.finish(&mut s, &outcome);
        outcome?;
        self.current_header()
    }

    async fn on_insufficient_scope(&self, challenge: BearerChallenge, sent: Option<&str>) -> Result<String> {
        let mut s = match self.enter_flight(sent).await {
            Ok(s) => s,
            Err(answered) => return answered,
        };
        let held_scope = self
            .inner
            .current
            .load()
            .as_ref()
            .and_then(|h| h.token.scope.clone())
            .or_else(|| self.inner.config.client_metadata.scope.clone());
        let wanted = step_up_scope(held_scope.as_deref(), challenge.scope.as_deref());
        let held_set = crate::model::split_scopes(held_scope.as_deref());
        let wanted_set = crate::model::split_scopes(wanted.as_deref());
        if held_scope.is_some() && wanted_set.iter().all(|w| held_set.contains(w)) {
            return Err(Error::flow(
                Step::StepUp,
                format!(
                    "the server answers insufficient_scope for scopes already granted ({}); authorizing again would not help",
                    challenge.scope.as_deref().unwrap_or("none named")
                ),
            )
            .with_url(&self.inner.server_url)
            .with_status(403));
        }
        let attempts = self.inner.step_ups.fetch_add(1, Ordering::AcqRel) + 1;
        if attempts > self.inner.config.max_step_up_attempts {
            return Err(Error::flow(
                Step::StepUp,
                format!(
                    "the server still answers insufficient_scope after {} step-up attempts; giving up",
                    self.inner.config.max_step_up_attempts
                ),
            )
            .with_url(&self.inner.server_url)
            .with_status(403));
        }
        tracing::info!(
            scope = wanted.as_deref().unwrap_or(""),
            attempt = attempts,
            "stepping up"
        );
        let outcome = self.obtain(&mut s, Some(&challenge), Some(wanted)).await;
        self.finish(&mut s, &outcome);
        outcome?;
        self.current_header()
    }

    /// Join the single flight. `Err` carries the answer when a flight that
    /// finished while this caller waited already settles it: a header other
    /// than the one the failed request sent, or that flight's failure.
    async fn enter_flight(
        &self,
        sent: Option<&str>,
    ) -> std::result::Result<tokio::sync::MutexGuard<'_, Session>, Result<String>> {
        let seen = self.inner.completed.load(Ordering::Acquire);
        let s = self.inner.session.lock().await;
        if let Some(h) = self.fresh_header_other_than(sent) {
            return Err(Ok(h));
        }
        if self.inner.completed.load(Ordering::Acquire) != seen {
            if let Some(e) = &s.last_failure {
                return Err(Err(e.clone()));
            }
        }
        Ok(s)
    }

    fn finish(&self, s: &mut Session, outcome: &Result<()>) {
        s.last_failure = outcome.as_ref().err().cloned();
        self.inner.completed.fetch_add(1, Ordering::AcqRel);
    }

    fn current_header(&self) -> Result<String> {
        self.inner
            .current
            .load()
            .as_ref()
            .map(|h| h.header.clone())
            .ok_or_else(|| Error::flow(Step::Request, "no token after a completed flow"))
    }

    fn fresh_header_other_than(&self, sent: Option<&str>) -> Option<String> {
        let h = self.cached_authorization()?;
        (Some(h.as_str()) != sent).then_some(h)
    }

    async fn load_if_needed(&self, s: &mut Session) -> Result<()> {
        if s.loaded {
            return Ok(());
        }
        let stored = self.inner.storage.get_tokens().await?;
        s.loaded = true;
        if let Some(t) = stored {
            if self.inner.current.load().is_none() {
                self.set_current(t);
            }
        }
        Ok(())
    }

    fn set_current(&self, token: OAuthToken) {
        let header = token.header_value();
        self.inner.current.store(Some(Arc::new(Held { token, header })));
    }

    async fn save_token(&self, token: OAuthToken) -> Result<()> {
        self.set_current(token.clone());
        // The token stays usable in memory even when the store fails; the
        // failure is still reported.
        self.inner.storage.set_tokens(token).await
    }

    /// Discovery, cached per session until a challenge points elsewhere.
    async fn discover(&self, s: &mut Session, challenge: Option<&BearerChallenge>) -> Result<Arc<Discovered>> {
        if let Some(d) = &s.discovered {
            return Ok(d.clone());
        }
        let http = &self.inner.http;
        let server = &self.inner.server_url;
        let from_challenge = challenge.and_then(|c| c.resource_metadata.as_deref());
        let d = match fetch_resource_metadata(http, server, from_challenge).await? {
            Some((prm, prm_url)) => {
                if !self.inner.config.skip_resource_check {
                    check_resource(server, &prm, self.inner.config.resource_validator.as_ref())?;
                }
                if prm.authorization_servers.is_empty() {
                    return Err(Error::flow(
                        Step::ResourceMetadata,
                        "the protected resource metadata lists no authorization_servers",
                    )
                    .with_url(&prm_url));
                }
                let idx = match &self.inner.config.authorization_server_selector {
                    Some(sel) => sel(&prm.authorization_servers),
                    None => 0,
                };
                let issuer =
                    prm.authorization_servers.get(idx).cloned().ok_or_else(|| {
                        Error::config("the authorization server selector returned an index out of range")
                    })?;
                let meta = fetch_authorization_server_metadata(http, &issuer)
                    .await?
                    .ok_or_else(|| {
                        Error::flow(
                            Step::AuthorizationServerMetadata,
                            format!("no authorization server metadata found for issuer {issuer:?}"),
                        )
                    })?;
                // The PRM's identifier, byte for byte: it is what the
                // resource server checks the token's audience against.
                let resource = prm.resource.clone();
                Discovered {
                    resource_metadata: Some(prm),
                    issuer,
                    server: meta,
                    resource,
                }
            }
            None => {
                // 2025-03-26 mode: the MCP server's origin is the authorization server.
                tracing::info!("no protected resource metadata; using the server's origin as authorization server");
                let origin = server.origin().ascii_serialization();
                let meta = match fetch_authorization_server_metadata(http, &origin).await? {
                    Some(m) => m,
                    None => legacy_default_metadata(server),
                };
                Discovered {
                    resource_metadata: None,
                    issuer: meta.issuer.clone(),
                    server: meta,
                    resource: canonical_resource(server),
                }
            }
        };
        tracing::info!(issuer = %d.issuer, resource = %d.resource, "discovered the authorization server");
        let d = Arc::new(d);
        s.discovered = Some(d.clone());
        Ok(d)
    }

    /// The client identity for an authorization server, in the spec's order.
    async fn client_identity(
        &self,
        s: &mut Session,
        d: &Discovered,
        scope: Option<&str>,
    ) -> Result<OAuthClientInformationFull> {
        if let Some(c) = self.existing_client(s, d).await? {
            return Ok(c);
        }
        if self.inner.config.grant == GrantKind::ClientCredentials {
            return Err(Error::config(
                "the client credentials grant needs pre-registered credentials",
            ));
        }
        let info = register(&self.inner.http, &d.server, &self.inner.config.client_metadata, scope).await?;
        s.client = Some(info.clone());
        self.inner.storage.set_client_info(info.clone()).await?;
        Ok(info)
    }

    /// The client identity that needs no registration: stored, pre-registered,
    /// or a Client ID Metadata Document the server accepts.
    async fn existing_client(&self, s: &mut Session, d: &Discovered) -> Result<Option<OAuthClientInformationFull>> {
        if let Some(c) = &s.client {
            if bound_to(c, &d.issuer) {
                return Ok(Some(c.clone()));
            }
        }
        if let Some(stored) = self.inner.storage.get_client_info_for(&d.issuer).await? {
            if bound_to(&stored, &d.issuer) && !stored.secret_expired() && self.stored_client_allowed(&stored) {
                s.client = Some(stored.clone());
                return Ok(Some(stored));
            }
            tracing::info!("stored client information belongs to another authorization server; not reusing it");
        }
        if let Some(sc) = &self.inner.config.static_client {
            let mut info = OAuthClientInformationFull::new(sc.client_id.clone(), sc.client_secret.clone());
            if let Some(m) = &sc.token_endpoint_auth_method {
                info.set_token_endpoint_auth_method(m);
            }
            info.issuer = Some(d.issuer.clone());
            s.client = Some(info.clone());
            return Ok(Some(info));
        }
        if let Some(cimd) = &self.inner.config.client_metadata_url {
            if d.server.client_id_metadata_document_supported == Some(true) {
                let mut info = OAuthClientInformationFull::new(cimd.clone(), None);
                info.set_token_endpoint_auth_method("none");
                info.issuer = Some(d.issuer.clone());
                tracing::info!(client_id = %cimd, "using the client ID metadata document URL as client_id");
                s.client = Some(info.clone());
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    fn stored_client_allowed(&self, stored: &OAuthClientInformationFull) -> bool {
        // Configured credentials win over a stored registration for another client ID.
        match &self.inner.config.static_client {
            Some(sc) => sc.client_id == stored.client_id,
            None => true,
        }
    }

    fn client_auth(&self, info: &OAuthClientInformationFull, d: &Discovered) -> Result<ClientAuthentication> {
        if let Some(signer) = &self.inner.config.client_assertion {
            let registered = info.token_endpoint_auth_method();
            if registered.is_none() || registered == Some("private_key_jwt") {
                return Ok(ClientAuthentication::Custom(Arc::new(PrivateKeyJwt::new(
                    info.client_id.clone(),
                    signer.clone(),
                ))));
            }
        }
        ClientAuthentication::for_client(
            &info.client_id,
            info.client_secret.as_ref(),
            info.token_endpoint_auth_method(),
            d.server.token_endpoint_auth_methods_supported.as_deref(),
        )
    }

    fn token_endpoint(&self, d: &Discovered, step: Step) -> Result<Url> {
        let ep = d.server.token_endpoint.as_deref().ok_or_else(|| {
            Error::flow(
                Step::AuthorizationServerMetadata,
                "the authorization server metadata has no token_endpoint",
            )
        })?;
        let url = parse_server_url(ep, "token_endpoint", step)?;
        require_secure(&url, "token endpoint", step)?;
        Ok(url)
    }

    /// Refresh the held tokens (RFC 6749 §6), inside the store's exclusive
    /// section so processes sharing the store do not refresh twice.
    async fn refresh(&self, s: &mut Session) -> Result<()> {
        let Some(held) = self.inner.current.load_full() else {
            return Err(Error::flow(Step::Refresh, "no tokens to refresh"));
        };
        let Some(refresh_token) = held.token.refresh_token.clone() else {
            return Err(Error::flow(Step::Refresh, "no refresh token"));
        };
        let _lease = self
            .inner
            .storage
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(30))
            .await?;
        // Another process may have refreshed already (rotating tokens are single-use).
        if let Some(stored) = self.inner.storage.get_tokens().await? {
            if stored.refresh_token != held.token.refresh_token && !stored.needs_refresh() {
                tracing::info!("using tokens another process refreshed");
                self.set_current(stored);
                return Ok(());
            }
        }
        let d = self.discover(s, None).await?;
        let Some(client) = self.existing_client(s, &d).await? else {
            self.inner.current.store(None);
            return Err(Error::new(
                ErrorKind::Token,
                Step::Refresh,
                "no client registration with this authorization server; a new authorization is needed",
            ));
        };
        let auth = self.client_auth(&client, &d)?;
        let endpoint = self.token_endpoint(&d, Step::Refresh)?;
        let grant = Grant::RefreshToken {
            refresh_token: refresh_token.clone(),
            scope: held.token.scope.clone(),
        };
        match request_token(&self.inner.http, &endpoint, &d.issuer, &grant, &auth, Some(&d.resource)).await {
            Ok(mut token) => {
                if token.refresh_token.is_none() {
                    token.refresh_token = Some(refresh_token);
                }
                if token.scope.is_none() {
                    token.scope = held.token.scope.clone();
                }
                tracing::info!("refreshed the access token");
                s.token_issuer = Some(d.issuer.clone());
                self.save_token(token).await
            }
            Err(e) => {
                if e.kind() == ErrorKind::Token {
                    // Drop only the tokens that failed: if another process
                    // stored different ones meanwhile, use those.
                    let replacement = self.inner.storage.get_tokens().await.ok().flatten();
                    match replacement {
                        Some(t) if t.refresh_token != held.token.refresh_token => self.set_current(t),
                        _ => self.inner.current.store(None),
                    }
                }
                Err(e)
            }
        }
    }

    /// Obtain new tokens by the configured grant.
    async fn obtain(
        &self,
        s: &mut Session,
        challenge: Option<&BearerChallenge>,
        scope_override: Option<Option<String>>,
    ) -> Result<()> {
        let d = self.discover(s, challenge).await?;
        let cfg = &self.inner.config;
        let scope = match scope_override {
            Some(sc) => sc,
            None => initial_scope(
                cfg.client_metadata.scope.as_deref(),
                challenge.and_then(|c| c.scope.as_deref()),
                d.resource_metadata.as_ref().and_then(|p| p.scopes_supported.as_deref()),
                Some(&d.server),
                &cfg.client_metadata.grant_types,
            ),
        };
        match cfg.grant {
            GrantKind::ClientCredentials => {
                let client = self.client_identity(s, &d, scope.as_deref()).await?;
                let auth = self.client_auth(&client, &d)?;
                let endpoint = self.token_endpoint(&d, Step::Grant)?;
                let token = request_token(
                    &self.inner.http,
                    &endpoint,
                    &d.issuer,
                    &Grant::ClientCredentials { scope: scope.clone() },
                    &auth,
                    Some(&d.resource),
                )
                .await?;
                s.token_issuer = Some(d.issuer.clone());
                self.save_token(token).await
            }
            GrantKind::AuthorizationCode => self.authorization_code_flow(s, &d, scope).await,
        }
    }

    async fn authorization_code_flow(&self, s: &mut Session, d: &Discovered, scope: Option<String>) -> Result<()> {
        let handler =
            self.inner.handler.clone().ok_or_else(|| {
                Error::config("authorization is needed but no redirect/callback handler is configured")
            })?;
        check_pkce_support(&d.server, self.inner.config.assume_s256_when_pkce_unadvertised)?;
        let client = self.client_identity(s, d, scope.as_deref()).await?;
        let auth = self.client_auth(&client, d)?;
        let ep = d.server.authorization_endpoint.as_deref().ok_or_else(|| {
            Error::flow(
                Step::AuthorizationServerMetadata,
                "the authorization server metadata has no authorization_endpoint",
            )
        })?;
        let auth_endpoint = parse_server_url(ep, "authorization_endpoint", Step::Authorization)?;
        require_secure(&auth_endpoint, "authorization endpoint", Step::Authorization)?;
        let redirect_uri = self
            .inner
            .config
            .client_metadata
            .redirect_uris
            .first()
            .cloned()
            .ok_or_else(|| Error::config("client metadata has no redirect_uris"))?;
        let pending = build_authorization(AuthorizationParams {
            authorization_endpoint: &auth_endpoint,
            client_id: &client.client_id,
            redirect_uri: &redirect_uri,
            scope: scope.as_deref(),
            resource: &d.resource,
            expected_issuer: &d.server.issuer,
            iss_supported: d.server.authorization_response_iss_parameter_supported == Some(true),
        })?;
        tracing::info!(endpoint = %crate::http::redact_query(&auth_endpoint), "sending the person to the authorization endpoint");
        handler
            .redirect(&pending.url)
            .await
            .map_err(|e| handler_error(Step::Authorization, e))?;
        let result = handler.callback().await.map_err(|e| handler_error(Step::Callback, e))?;
        let code = validate_callback(&pending, &result)?;
        let endpoint = self.token_endpoint(d, Step::TokenExchange)?;
        let grant = Grant::AuthorizationCode {
            code,
            redirect_uri: pending.redirect_uri.clone(),
            code_verifier: pending.pkce.verifier.clone(),
        };
        let mut token = request_token(&self.inner.http, &endpoint, &d.issuer, &grant, &auth, Some(&d.resource)).await?;
        if token.scope.is_none() {
            token.scope = scope;
        }
        tracing::info!("obtained tokens with the authorization code");
        s.token_issuer = Some(d.issuer.clone());
        self.save_token(token).await
    }
}
