//! The provider: the headers for each request, and what to do when a
//! response says 401 or 403.
//!
//! It is a small engine around pluggable parts:
//! - the hot path ([`OAuthClientProvider::cached_headers`]): an atomically
//!   swapped snapshot of the held token; no I/O, no lock, one allocation;
//! - keyed single flights (`flight`), each a task of its own, for loading,
//!   refreshing, the full flow and step-up;
//! - the error policy of the token lifecycle (`lifecycle`): what drops
//!   tokens and what keeps them;
//! - the client identity (`identity`);
//! - token sources ([`crate::sources`]) and the token binding
//!   ([`crate::binding`]).

mod config;
pub(crate) mod flight;
mod identity;
mod lifecycle;
mod revoke;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use url::Url;

pub use config::{GrantKind, ProviderConfig, ResourceParameter, StaticClient};
pub use flight::TaskWrapper;
pub use revoke::LogoutOutcome;

use crate::authorize::AuthorizationCodeResult;
use crate::binding::{AuthHeaders, Bearer, TokenBinding};
use crate::challenge::{BearerChallenge, find_bearer};
use crate::discovery::{DiscoveryOptions, DiscoveryReport, Verdict, check_pkce_support, discover, record};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::handler::AuthorizationHandler;
use crate::http::{Http, HttpTransport, ReqwestTransport};
use crate::model::{OAuthToken, split_scopes};
use crate::registration::validate_cimd_url;
use crate::scope::{configured_scope, initial_scope, step_up_scope};
use crate::sources::{AuthorizationCode, ClientCredentials, TokenSource};
use crate::storage::{TokenStorage, Version};
use flight::{FlightKey, Flights, header_key};

/// The request a header is for, or a response belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The absolute URL. A token is only ever given for the MCP server's origin.
    pub url: &'a str,
    /// The `Authorization` value the request carried, if any (for
    /// [`OAuthClientProvider::handle_response`]).
    pub authorization: Option<&'a str>,
    /// The host's own per-request timeout, when it configured one: it then
    /// bounds each OAuth request this call makes, instead of the provider's.
    pub timeout: Option<Duration>,
}

impl<'a> RequestInfo<'a> {
    /// A request with a method and URL.
    pub fn new(method: &'a str, url: &'a str) -> Self {
        RequestInfo {
            method,
            url,
            authorization: None,
            timeout: None,
        }
    }

    /// The `Authorization` value the request carried.
    pub fn with_authorization(mut self, authorization: Option<&'a str>) -> Self {
        self.authorization = authorization;
        self
    }

    /// The host's per-request timeout.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A response, as the provider needs it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo<'a> {
    /// The HTTP status.
    pub status: u16,
    /// Its headers (names in any case; every `WWW-Authenticate` is read).
    pub headers: &'a [(String, String)],
}

impl<'a> ResponseInfo<'a> {
    /// A response with a status and headers.
    pub fn new(status: u16, headers: &'a [(String, String)]) -> Self {
        ResponseInfo { status, headers }
    }

    /// Whether this is a resource server's DPoP nonce challenge (401,
    /// `error="use_dpop_nonce"`, with a `DPoP-Nonce`): the one response that
    /// may be handed to [`OAuthClientProvider::handle_response`] again after
    /// a retry, since a retry carrying a new token can meet it first.
    pub fn is_dpop_nonce_challenge(&self) -> bool {
        self.status == 401
            && self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("dpop-nonce"))
            && find_bearer(&self.challenges()).is_some_and(|c| c.error.as_deref() == Some("use_dpop_nonce"))
    }

    fn challenges(&self) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the caller should do after handing a response to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Send the request again, once, with these headers.
    Retry(AuthHeaders),
    /// Nothing to do: pass the response to the application.
    Done,
}

/// A held token with what the hot path needs precomputed.
pub(crate) struct Held {
    pub(crate) token: OAuthToken,
    /// What the binding prepared once for this token (the `Authorization`
    /// value), overwritten when dropped.
    pub(crate) prepared: zeroize::Zeroizing<String>,
    /// The store's version of it (`ABSENT` when not stored).
    pub(crate) version: Version,
    /// [`OAuthToken::refresh_at`] as a time, computed once off the hot path,
    /// which then compares two times (no arithmetic on the clock's reading).
    refresh_at: Option<SystemTime>,
    /// When the provider took the token up (obtained it, or loaded it).
    pub(crate) held_since: tokio::time::Instant,
}

/// Seconds since the Unix epoch as a time: the epoch for a moment before it,
/// `None` for one that is never reached (not finite, or beyond what the
/// platform's time holds).
fn as_system_time(at: f64) -> Option<SystemTime> {
    if at <= 0.0 {
        return Some(UNIX_EPOCH);
    }
    Duration::try_from_secs_f64(at)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
}

/// How far behind the real time the coarse clock [`coarse_now`] may be (a
/// few scheduler ticks; its resolution is one tick, 1 to 10 ms): a token is
/// due this much before its refresh time, so a late reading never lets a
/// token due, or expired, be sent.
const COARSE_CLOCK_SLACK: Duration = Duration::from_millis(50);

/// The time of day, read where the hot path needs it: on Linux the kernel's
/// coarse clock (the time of the last tick, read without the hardware
/// counter: a few nanoseconds instead of tens), elsewhere the usual one.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_now() -> SystemTime {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0
        && let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
        && let Some(t) = UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    {
        return t;
    }
    SystemTime::now()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_now() -> SystemTime {
    SystemTime::now()
}

impl Held {
    fn new(token: OAuthToken, prepared: String, version: Version) -> Self {
        let refresh_at = token
            .refresh_at()
            .and_then(as_system_time)
            .map(|at| at.checked_sub(COARSE_CLOCK_SLACK).unwrap_or(UNIX_EPOCH));
        Held {
            token,
            prepared: zeroize::Zeroizing::new(prepared),
            version,
            refresh_at,
            held_since: tokio::time::Instant::now(),
        }
    }

    /// Whether a request that carried `sent` carried this token, and the
    /// server refused it soon after the provider took it up: a server that
    /// refuses a new token at once will refuse the next one too.
    pub(crate) fn refused_at_once(&self, sent: Option<&str>) -> bool {
        sent == Some(self.prepared.as_str()) && self.held_since.elapsed() < lifecycle::REFUSED_AT_ONCE
    }

    /// Due for refresh (or expired).
    pub(crate) fn due(&self) -> bool {
        self.refresh_at.is_some_and(|at| coarse_now() >= at)
    }
}

/// What the flights share; guarded by the state lock, held only by a flight.
#[derive(Default)]
pub(crate) struct State {
    loaded: bool,
    discovered: Option<Arc<crate::discovery::Discovered>>,
    client: Option<identity::Identity>,
    /// Registrations an authorization server refused (for stores that
    /// cannot remove them).
    dead_clients: HashSet<String>,
    /// Tokens known dead (for stores that cannot remove them).
    dead_tokens: HashSet<Version>,
    /// After an early refresh failed while the token was still valid.
    early_refresh_paused_until: Option<std::time::Instant>,
    /// New tokens the server refused (401) at once, in a row.
    refused_in_a_row: u32,
    /// Step-ups asked for at once after the last one, in a row.
    step_ups_in_a_row: u32,
}

pub(crate) struct Inner {
    config: ProviderConfig,
    server_url: Url,
    /// `scheme://host[:port]` of the server, for the hot path's origin check.
    origin: String,
    http: Http,
    storage: Arc<dyn TokenStorage>,
    source: Arc<dyn TokenSource>,
    binding: Arc<dyn TokenBinding>,
    current: ArcSwapOption<Held>,
    state: tokio::sync::Mutex<State>,
    flights: Arc<Flights>,
    /// Step-up attempts per challenged scope set, since a token covering it
    /// was last held.
    step_ups: std::sync::Mutex<HashMap<String, u32>>,
    /// What the last log-out did, for every request that joined it.
    last_logout: std::sync::Mutex<Option<LogoutOutcome>>,
}

impl Inner {
    fn discovery_options(&self) -> DiscoveryOptions {
        DiscoveryOptions {
            skip_resource_check: self.config.skip_resource_check,
            resource_validator: self.config.resource_validator.clone(),
            selector: self.config.authorization_server_selector.clone(),
            pinned_issuer: self.config.static_client.as_ref().and_then(|c| c.issuer.clone()),
        }
    }

    /// Whether `url` is on the MCP server's origin: a prefix comparison on
    /// the hot path, a parse only when that is inconclusive.
    fn same_origin(&self, url: &str) -> bool {
        let (o, u) = (self.origin.as_bytes(), url.as_bytes());
        if u.len() >= o.len()
            // A plain comparison first: hosts send the URL they configured.
            && (u[..o.len()] == *o || u[..o.len()].eq_ignore_ascii_case(o))
            && matches!(u.get(o.len()), None | Some(b'/' | b'?' | b'#'))
        {
            return true;
        }
        Url::parse(url).is_ok_and(|p| p.origin() == self.server_url.origin())
    }

    /// Whether an origin given as parts is the MCP server's: `host` as sent
    /// (ASCII, an IPv6 address with or without brackets), `port` `None` for
    /// the scheme's default.
    fn is_origin(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let u = &self.server_url;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let ours = u.host_str().unwrap_or("");
        let ours = ours.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(ours);
        scheme.eq_ignore_ascii_case(u.scheme())
            && host.eq_ignore_ascii_case(ours)
            && port.or_else(|| default_port(scheme)) == u.port_or_known_default()
    }
}

/// The default port of a URL scheme the MCP server can have.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
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
            .field("source", &self.inner.source.name())
            .finish_non_exhaustive()
    }
}

/// The source of an authorization-code provider built without handlers: it
/// fails, clearly, only if a person is ever needed.
struct NoHandler;

#[async_trait::async_trait]
impl AuthorizationHandler for NoHandler {
    async fn redirect(&self, _url: &Url) -> Result<()> {
        Err(Error::config(
            "authorization is needed but no redirect/callback handler is configured",
        ))
    }
    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        Err(Error::config(
            "authorization is needed but no redirect/callback handler is configured",
        ))
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
        if let Some(issuer) = config.static_client.as_ref().and_then(|c| c.issuer.as_deref()) {
            let u = Url::parse(issuer).map_err(|e| Error::config(format!("issuer {issuer:?} is not a URL ({e})")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(Error::config(format!("issuer {issuer:?} must be an http(s) URL")));
            }
        }
        let source: Arc<dyn TokenSource> = match (&config.source, config.grant) {
            (Some(s), _) => s.clone(),
            (None, GrantKind::AuthorizationCode) => {
                config.client_metadata.validate()?;
                Arc::new(AuthorizationCode::new(handler.unwrap_or_else(|| Arc::new(NoHandler))))
            }
            (None, GrantKind::ClientCredentials) => {
                if config.static_client.is_none() {
                    return Err(Error::config(
                        "the client credentials grant needs a client_id (and usually a secret)",
                    ));
                }
                Arc::new(ClientCredentials)
            }
        };
        for (what, d) in [
            ("timeout", config.timeout),
            ("authorization_timeout", config.authorization_timeout),
            ("lease_ttl", config.lease_ttl),
        ] {
            if d.is_zero() {
                return Err(Error::config(format!("{what} must be greater than zero")));
            }
        }
        let transport: Arc<dyn HttpTransport> = match &config.transport {
            Some(t) => t.clone(),
            None => Arc::new(ReqwestTransport::with_options(&config.transport_options)?),
        };
        let http = Http {
            transport,
            timeout: config.timeout,
            protocol_version: config.protocol_version.clone(),
            allow_http_hosts: config.allow_http_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        };
        let binding: Arc<dyn TokenBinding> = config.binding.clone().unwrap_or_else(|| Arc::new(Bearer));
        let origin = server_url.origin().ascii_serialization();
        Ok(OAuthClientProvider {
            inner: Arc::new(Inner {
                config,
                server_url,
                origin,
                http,
                storage,
                source,
                binding,
                current: ArcSwapOption::empty(),
                state: tokio::sync::Mutex::new(State::default()),
                flights: Arc::new(Flights::default()),
                step_ups: std::sync::Mutex::new(HashMap::new()),
                last_logout: std::sync::Mutex::new(None),
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

    /// The hot path: the headers for a request when a token is held that is
    /// not due for refresh, and the request goes to the MCP server's origin.
    /// No I/O, no lock, no waiting.
    pub fn cached_headers(&self, method: &str, url: &str) -> Option<AuthHeaders> {
        let guard = self.inner.current.load();
        let held = guard.as_ref()?;
        if held.due() || !self.inner.same_origin(url) {
            return None;
        }
        self.inner.binding.headers_now(&held.prepared, method, url)?.ok()
    }

    /// The hot path for a host that knows the request's origin as parts and
    /// would pay to make its URL a string (Python's httpx): where the held
    /// token's headers are the same for every request (no DPoP proof), `f`
    /// sees the `Authorization` value for a request to that origin.
    /// `Some(None)`: no headers to give without waiting (no usable token, a
    /// refresh due, another origin); `None`: the headers depend on the whole
    /// URL (a DPoP proof): call [`OAuthClientProvider::with_cached_headers`].
    pub fn with_cached_authorization_at<R>(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
        f: impl FnOnce(&str) -> R,
    ) -> Option<Option<R>> {
        let guard = self.inner.current.load();
        let Some(held) = guard.as_ref() else {
            return Some(None);
        };
        let authorization = self.inner.binding.fixed_authorization(&held.prepared)?;
        if held.due() || !self.inner.is_origin(scheme, host, port) {
            return Some(None);
        }
        Some(Some(f(authorization)))
    }

    /// The hot path for a caller that copies the headers into a buffer of its
    /// own (the C ABI): where [`OAuthClientProvider::cached_headers`] would
    /// give headers, `f` sees the `Authorization` value and the DPoP proof, if
    /// any, borrowed (no copy made here), and its result is returned. Header
    /// values are visible ASCII: the access token is a `b64token`, checked
    /// before a token is held, and proofs are base64url.
    pub fn with_cached_headers<R>(
        &self,
        method: &str,
        url: &str,
        f: impl FnOnce(&str, Option<&str>) -> R,
    ) -> Option<R> {
        let guard = self.inner.current.load();
        let held = guard.as_ref()?;
        if held.due() || !self.inner.same_origin(url) {
            return None;
        }
        if let Some(authorization) = self.inner.binding.fixed_authorization(&held.prepared) {
            return Some(f(authorization, None));
        }
        let headers = self.inner.binding.headers_now(&held.prepared, method, url)?.ok()?;
        Some(f(headers.authorization(), headers.dpop()))
    }

    /// The tokens held now, if any.
    pub fn current_token(&self) -> Option<OAuthToken> {
        self.inner.current.load().as_ref().map(|h| h.token.clone())
    }

    /// The headers for the next request. Loads stored tokens on first use,
    /// refreshes a token due for it, and obtains tokens from a source that
    /// needs no person; it never starts an interactive flow. With no usable
    /// token it returns `None`: the request goes out without one, and the
    /// server's 401 starts the flow. A token known to be expired is never
    /// returned.
    pub async fn headers(&self, request: &RequestInfo<'_>) -> Result<Option<AuthHeaders>> {
        if let Some(h) = self.cached_headers(request.method, request.url) {
            return Ok(Some(h));
        }
        if !self.inner.same_origin(request.url) {
            tracing::debug!("the request goes to another origin than the MCP server: no token for it");
            return Ok(None);
        }
        self.run(FlightKey::Ensure, request.timeout, |inner, http| {
            Box::pin(inner.ensure(http))
        })
        .await?;
        let guard = self.inner.current.load();
        match guard.as_ref() {
            Some(h) if !h.token.is_expired() => {
                let prepared = h.prepared.clone();
                drop(guard);
                self.inner
                    .binding
                    .headers(&prepared, request.method, request.url)
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Hand the provider a response to `request` (whose `authorization` is
    /// what it carried). On 401 it refreshes or runs the flow; on 403
    /// `insufficient_scope` it steps up. Call it at most once per request:
    /// after a retry, pass a second 401/403 to the application, except a DPoP
    /// nonce challenge ([`ResponseInfo::is_dpop_nonce_challenge`]), which may
    /// be handed over once more.
    pub async fn handle_response(
        &self,
        request: &RequestInfo<'_>,
        response: &ResponseInfo<'_>,
    ) -> Result<ResponseAction> {
        let nonce_changed = self.inner.binding.observe(request.url, response.headers);
        match response.status {
            401 => {
                let challenge = find_bearer(&response.challenges());
                if challenge.as_ref().and_then(|c| c.error.as_deref()) == Some("use_dpop_nonce") {
                    // RFC 9449 §9: the resource server wants its nonce in the
                    // proof. The token is fine: send again with a new proof.
                    if !nonce_changed
                        && !response
                            .headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case("dpop-nonce"))
                    {
                        return Err(Error::flow(
                            Step::Request,
                            "the server asks for a DPoP nonce (use_dpop_nonce) but sent none",
                        )
                        .with_status(401));
                    }
                    return self.retry_with_current(request).await;
                }
                let rejected = request.authorization.map(str::to_string);
                let key = FlightKey::Reauthorize(header_key(request.authorization));
                self.run(key, request.timeout, move |inner, http| {
                    Box::pin(inner.reauthorize(http, rejected, challenge))
                })
                .await?;
                self.retry_with_current(request).await
            }
            403 => match find_bearer(&response.challenges()) {
                Some(c) if c.error.as_deref() == Some("insufficient_scope") => {
                    self.on_insufficient_scope(request, c).await
                }
                _ => Ok(ResponseAction::Done),
            },
            _ => Ok(ResponseAction::Done),
        }
    }

    /// Run discovery and the whole flow now, before any request (a "log in"
    /// command). Replaces any tokens held.
    pub async fn authorize(&self) -> Result<()> {
        self.run(FlightKey::Authorize, None, |inner, http| {
            Box::pin(inner.authorize_now(http))
        })
        .await
        .map(|_| ())
    }

    /// Log out (RFC 7009): revoke the refresh token, then the access token,
    /// at the authorization server's `revocation_endpoint` when it advertises
    /// one, authenticated as the client; then delete the tokens stored for
    /// this server (the client registration is kept). Tokens are only sent to
    /// the authorization server that issued them. When revoking the refresh
    /// token fails (a refusal or an outage), the error is returned and
    /// nothing is deleted, so the person can try again. Discovery runs when
    /// it has not yet, so this works in a new process with stored tokens.
    pub async fn logout(&self) -> Result<LogoutOutcome> {
        self.run(FlightKey::Logout, None, |inner, http| {
            Box::pin(async move {
                let outcome = inner.clone().logout(http).await?;
                *inner.last_logout.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                Ok(())
            })
        })
        .await?;
        Ok(self
            .inner
            .last_logout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default())
    }

    /// What discovery last found, if it has run; `None` as well while a
    /// refresh or a flow is running (it holds the state this reads). No I/O,
    /// no waiting: for a host's read-only view of the provider.
    pub fn discovered(&self) -> Option<Arc<crate::discovery::Discovered>> {
        self.inner.state.try_lock().ok()?.discovered.clone()
    }

    /// The client identity in use (its secret included), if one was loaded,
    /// registered or configured; `None` as well while a refresh or a flow is
    /// running. No I/O, no waiting.
    pub fn client_information(&self) -> Option<crate::model::OAuthClientInformationFull> {
        self.inner
            .state
            .try_lock()
            .ok()?
            .client
            .as_ref()
            .map(|c| c.info.clone())
    }

    /// Discovery, step by step, without registering or involving anyone:
    /// each URL tried with its status and verdict, the resource, issuer and
    /// PKCE checks, the client identity that would be used and why, and the
    /// scope that would be requested. For error messages and diagnostic tools.
    pub async fn inspect(&self) -> DiscoveryReport {
        self.inspect_after(DiscoveryReport::default()).await
    }

    /// [`inspect`](Self::inspect), starting where a client starts: an MCP
    /// `initialize` without a token, whose 401 and `WWW-Authenticate`
    /// challenge are the first step; the challenge's `resource_metadata`
    /// and `scope` are then used as the flow would use them. Nothing is
    /// registered and no person is involved. For diagnostic tools.
    pub async fn diagnose(&self) -> DiscoveryReport {
        let mut report = DiscoveryReport::default();
        match crate::discovery::probe(&self.inner.http, &self.inner.server_url, &mut report.steps).await {
            Ok(challenge) => report.challenge = challenge,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        }
        self.inspect_after(report).await
    }

    async fn inspect_after(&self, mut report: DiscoveryReport) -> DiscoveryReport {
        let inner = &self.inner;
        let options = inner.discovery_options();
        let from_challenge = report.challenge.as_ref().and_then(|c| c.resource_metadata.clone());
        let challenge_scope = report.challenge.as_ref().and_then(|c| c.scope.clone());
        let d = match discover(
            &inner.http,
            &inner.server_url,
            from_challenge.as_deref(),
            &options,
            &mut report.steps,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
        let step = Step::AuthorizationServerMetadata;
        if let Some((what, outcome)) = inner.source.check_server(&d.server) {
            match outcome {
                Ok(found) => record(&mut report.steps, step, what, None, None, Verdict::Ok, found),
                Err(e) => {
                    record(&mut report.steps, step, what, None, None, Verdict::Failed, e.message());
                    report.error.get_or_insert(e);
                }
            }
        }
        if inner.source.uses_pkce() {
            match check_pkce_support(&d.server, inner.config.assume_s256_when_pkce_unadvertised) {
                Ok(()) => {
                    let assumed_defaults = report.steps.iter().any(|s| s.what == "default endpoints");
                    let detail = match &d.server.code_challenge_methods_supported {
                        Some(_) if assumed_defaults => "S256 (assumed with the default endpoints)",
                        Some(_) => "S256 (code_challenge_methods_supported lists it)",
                        None => "S256 assumed: the metadata does not say (assume_s256_when_pkce_unadvertised)",
                    };
                    let verdict = match &d.server.code_challenge_methods_supported {
                        Some(_) => Verdict::Ok,
                        None => Verdict::Warning,
                    };
                    record(&mut report.steps, step, "PKCE", None, None, verdict, detail)
                }
                Err(e) => {
                    record(
                        &mut report.steps,
                        step,
                        "PKCE",
                        None,
                        None,
                        Verdict::Failed,
                        e.message(),
                    );
                    report.error = Some(e);
                }
            }
        }
        let mut scratch = State::default();
        let identity = match inner.existing_client(&mut scratch, &d).await {
            Ok(Some(id)) => Ok(id.describe()),
            Ok(None) if inner.source.may_register() && d.server.registration_endpoint.is_some() => {
                Ok(match &inner.config.client_metadata_url {
                    Some(_) => "dynamic registration (RFC 7591): the authorization server does not advertise client_id_metadata_document_supported, so the client ID metadata document URL is not used".to_string(),
                    None => "dynamic registration (RFC 7591): no stored or configured client for this issuer".to_string(),
                })
            }
            Ok(None) => Err(Error::new(
                ErrorKind::Registration,
                Step::Registration,
                "no client identity: the authorization server offers no dynamic registration and no Client ID Metadata Documents, and no client_id is configured; pre-register the client",
            )),
            Err(e) => Err(e),
        };
        let (verdict, detail) = match &identity {
            Ok(why) => (Verdict::Ok, why.clone()),
            Err(e) => (Verdict::Failed, e.message().to_string()),
        };
        record(
            &mut report.steps,
            Step::Registration,
            "client identity",
            None,
            None,
            verdict,
            detail,
        );
        match identity {
            Ok(why) => report.client_identity = Some(why),
            Err(e) => {
                report.error.get_or_insert(e);
            }
        }
        let cfg = &inner.config;
        let resource_scopes = d.resource_metadata.as_ref().and_then(|p| p.scopes_supported.as_deref());
        report.scope = initial_scope(
            configured_scope(
                cfg.client_metadata.scope.as_deref(),
                cfg.server_scope_replaces_configured,
                challenge_scope.as_deref(),
                resource_scopes,
            ),
            challenge_scope.as_deref(),
            resource_scopes,
            Some(&d.server),
            &cfg.client_metadata.grant_types,
        );
        let configured = configured_scope(
            cfg.client_metadata.scope.as_deref(),
            cfg.server_scope_replaces_configured,
            challenge_scope.as_deref(),
            resource_scopes,
        );
        let from = if configured.is_some_and(|c| !c.trim().is_empty()) {
            "as configured"
        } else if challenge_scope.as_deref().is_some_and(|c| !c.trim().is_empty()) {
            "from the 401 challenge's scope"
        } else if resource_scopes.is_some() {
            "from the protected resource metadata's scopes_supported"
        } else {
            ""
        };
        let scope_detail = match &report.scope {
            Some(s) => format!("{s} ({from})"),
            None => "none: no scope is configured and the server names none".into(),
        };
        record(
            &mut report.steps,
            Step::Authorization,
            "scope",
            None,
            None,
            Verdict::Ok,
            scope_detail,
        );
        report.discovered = Some(d);
        report
    }

    /// Start or join the flight for `key` and wait for its outcome. Returns
    /// whether this call started it.
    async fn run(
        &self,
        key: FlightKey,
        timeout: Option<Duration>,
        body: impl FnOnce(Arc<Inner>, Http) -> futures_util::future::BoxFuture<'static, Result<()>>,
    ) -> Result<bool> {
        let inner = self.inner.clone();
        let http = self.inner.http_for(timeout);
        let (joined, started) = self
            .inner
            .flights
            .join(key, self.inner.config.task_wrapper.as_ref(), move || body(inner, http))?;
        joined.await?;
        Ok(started)
    }

    /// The headers to retry with: the held, unexpired token a completed flight
    /// left (it replaced the refused one, or the flight found one that had).
    async fn retry_with_current(&self, request: &RequestInfo<'_>) -> Result<ResponseAction> {
        let prepared = {
            let guard = self.inner.current.load();
            let held = guard
                .as_ref()
                .filter(|h| !h.token.is_expired())
                .ok_or_else(|| Error::flow(Step::Request, "no usable token after the authorization completed"))?;
            held.prepared.clone()
        };
        self.inner
            .binding
            .headers(&prepared, request.method, request.url)
            .await
            .map(ResponseAction::Retry)
    }

    /// See a response the provider was not asked to handle (any status), so
    /// that what it carries for later requests is kept: the `DPoP-Nonce` a
    /// server may send on any response. Cheap; does nothing with Bearer tokens.
    pub fn observe_response(&self, url: &str, headers: &[(String, String)]) {
        self.inner.binding.observe(url, headers);
    }

    async fn on_insufficient_scope(
        &self,
        request: &RequestInfo<'_>,
        challenge: BearerChallenge,
    ) -> Result<ResponseAction> {
        let inner = &self.inner;
        let challenged = split_scopes(challenge.scope.as_deref());
        let held = inner.current.load_full();
        let sent_current = held
            .as_ref()
            .is_some_and(|h| Some(h.prepared.as_str()) == request.authorization);
        // Another request's step-up may already hold what this one needs.
        if !sent_current && inner.covers(&challenged) && !challenged.is_empty() {
            return self.retry_with_current(request).await;
        }
        let held_scope = held
            .as_ref()
            .and_then(|h| h.token.scope.clone())
            .or_else(|| inner.config.client_metadata.scope.clone());
        let held_set = split_scopes(held_scope.as_deref());
        if held_scope.is_some() && challenged.iter().all(|w| held_set.contains(w)) {
            return Err(Error::flow(
                Step::StepUp,
                format!(
                    "the server answers insufficient_scope for scopes already granted ({}); authorizing again would not help",
                    challenge.scope.as_deref().unwrap_or("none named")
                ),
            )
            .with_url(&inner.server_url)
            .with_status(403));
        }
        let mut sorted = challenged.clone();
        sorted.sort();
        let key = sorted.join(" ");
        let attempts = inner
            .step_ups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0);
        if attempts >= inner.config.max_step_up_attempts {
            return Err(Error::flow(
                Step::StepUp,
                format!(
                    "the server still answers insufficient_scope for {key:?} after {attempts} step-up attempts; giving up"
                ),
            )
            .with_url(&inner.server_url)
            .with_status(403));
        }
        let at_once = held.as_ref().is_some_and(|h| h.refused_at_once(request.authorization));
        let wanted = step_up_scope(held_scope.as_deref(), challenge.scope.as_deref());
        let mut wanted_sorted = split_scopes(wanted.as_deref());
        wanted_sorted.sort();
        let flight = FlightKey::StepUp(wanted_sorted.join(" "));
        let outcome = self
            .run(flight, request.timeout, move |inner, http| {
                Box::pin(inner.step_up(http, challenge, wanted, at_once))
            })
            .await;
        if inner.covers(&challenged) {
            inner.step_ups.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            outcome?;
            return self.retry_with_current(request).await;
        }
        let mut counts = inner.step_ups.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(outcome, Ok(true)) || outcome.is_err() {
            *counts.entry(key.clone()).or_insert(0) += 1;
        }
        drop(counts);
        outcome?;
        Err(Error::flow(
            Step::StepUp,
            format!("the authorization server did not grant the scopes the server asks for ({key})"),
        )
        .with_url(&inner.server_url)
        .with_status(403))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now_unix;

    fn held(expires_in: Option<u64>, expires_at: Option<f64>) -> Held {
        let mut t = OAuthToken::bearer("AT");
        t.expires_in = expires_in;
        t.expires_at = expires_at;
        Held::new(t, "Bearer AT".into(), Version::ABSENT)
    }

    #[tokio::test]
    async fn the_origin_as_parts_is_compared_as_the_url_would_be() {
        let make = |server: &str| {
            let metadata = crate::model::OAuthClientMetadata::new(vec!["http://127.0.0.1:9/cb".into()]);
            let storage = Arc::new(crate::storage::MemoryStorage::default());
            OAuthClientProvider::new(ProviderConfig::new(server, metadata), storage, None).unwrap()
        };
        let p = make("https://MCP.example.com/mcp");
        let i = &p.inner;
        assert!(i.is_origin("https", "mcp.example.com", None));
        assert!(i.is_origin("HTTPS", "mcp.EXAMPLE.com", Some(443)));
        assert!(!i.is_origin("http", "mcp.example.com", None));
        assert!(!i.is_origin("https", "mcp.example.com", Some(8443)));
        assert!(!i.is_origin("https", "mcp.example.com.evil", None));
        assert!(!i.is_origin("https", "", None));
        let v6 = make("http://[::1]:8080/mcp");
        assert!(v6.inner.is_origin("http", "::1", Some(8080)));
        assert!(v6.inner.is_origin("http", "[::1]", Some(8080)));
        assert!(!v6.inner.is_origin("http", "::1", None));
        // No token held: nothing, and nothing asked of the URL.
        assert_eq!(
            p.with_cached_authorization_at("https", "mcp.example.com", None, |a| a.len()),
            Some(None)
        );
    }

    #[test]
    fn the_coarse_clock_never_lets_a_token_expiring_now_be_sent() {
        // The hot path reads a clock that may lag by a tick: a token with no
        // refresh margin (expires_in 0) that expires a few milliseconds from
        // now is already due, and the coarse reading is close to the real one.
        let now = now_unix();
        assert!(held(Some(0), Some(now + 0.005)).due());
        assert!(held(Some(0), Some(now + 0.040)).due());
        assert!(!held(Some(0), Some(now + 5.0)).due());
        let lag = SystemTime::now().duration_since(coarse_now()).unwrap_or(Duration::ZERO);
        assert!(lag < COARSE_CLOCK_SLACK, "the coarse clock lags by {lag:?}");
    }

    #[test]
    fn a_token_is_due_from_its_refresh_time_on() {
        let now = now_unix();
        // Expired, expiring now, or inside the refresh margin: due.
        assert!(held(Some(3600), Some(now - 1.0)).due());
        assert!(held(Some(0), Some(now)).due());
        assert!(held(Some(0), None).due());
        assert!(held(Some(3600), Some(now + 20.0)).due());
        // Valid beyond the margin, or without a known expiry: not due.
        assert!(!held(Some(3600), Some(now + 3600.0)).due());
        assert!(!held(None, None).due());
        assert!(!held(Some(3600), Some(f64::INFINITY)).due());
        assert!(!held(Some(3600), Some(1e300)).due());
    }
}
