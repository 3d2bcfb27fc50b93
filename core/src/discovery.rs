//! Discovery: RFC 9728 protected resource metadata, then RFC 8414 / OpenID
//! Connect Discovery authorization server metadata (MCP authorization spec,
//! "Authorization Server Discovery").

use std::sync::Arc;

use url::Url;

use crate::challenge::{BearerChallenge, find_bearer};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, HttpResponse, looks_like_json, parse_server_url};
use crate::model::{AuthorizationServerMetadata, ProtectedResourceMetadata};

/// Decides whether a protected resource metadata `resource` may be used for
/// the MCP server URL. Return `Err(reason)` to refuse.
pub type ResourceValidator = Arc<dyn Fn(&Url, &str) -> std::result::Result<(), String> + Send + Sync>;

/// Picks one of several authorization servers (returns an index into the list).
pub type AuthorizationServerSelector = Arc<dyn Fn(&[String]) -> usize + Send + Sync>;

/// The canonical URI of an MCP server for the `resource` parameter (RFC 8707,
/// MCP "Canonical Server URI"): lower-case scheme and host, no fragment, no
/// query-less trailing slash.
pub fn canonical_resource(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let mut s = u.to_string();
    if u.query().is_none() && s.ends_with('/') {
        s.pop();
    }
    s
}

/// The protected resource metadata URLs to try, in order: the challenge's
/// `resource_metadata`, the path-aware well-known URL, the root well-known URL.
pub fn resource_metadata_urls(server: &Url, from_challenge: Option<&str>) -> Vec<Url> {
    let mut out = Vec::new();
    if let Some(s) = from_challenge {
        match Url::parse(s).or_else(|_| server.join(s)) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => out.push(u),
            _ => tracing::warn!("ignoring resource_metadata that is not an http(s) URL"),
        }
    }
    let path = server.path().trim_end_matches('/');
    let origin = server.origin().ascii_serialization();
    if !path.is_empty() {
        if let Ok(u) = Url::parse(&format!("{origin}/.well-known/oauth-protected-resource{path}")) {
            out.push(u);
        }
    }
    if let Ok(u) = Url::parse(&format!("{origin}/.well-known/oauth-protected-resource")) {
        out.push(u);
    }
    let mut seen = Vec::new();
    out.retain(|u| {
        let keep = !seen.contains(u);
        seen.push(u.clone());
        keep
    });
    out
}

/// The authorization server metadata URLs to try for an issuer, in order.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let list = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    list.into_iter().filter_map(|s| Url::parse(&s).ok()).collect()
}

/// The default resource check: same scheme, host and port, and the metadata's
/// path equal to, or a path-segment prefix of, the server's path.
pub fn default_resource_check(server: &Url, resource: &str) -> std::result::Result<(), String> {
    let res = Url::parse(resource).map_err(|e| format!("resource {resource:?} is not a URL ({e})"))?;
    if res.scheme() != server.scheme()
        || res.host_str().map(str::to_ascii_lowercase) != server.host_str().map(str::to_ascii_lowercase)
        || res.port_or_known_default() != server.port_or_known_default()
    {
        return Err(format!(
            "resource {resource:?} is on another origin than the MCP server {server}"
        ));
    }
    let rp = res.path().trim_end_matches('/');
    let sp = server.path().trim_end_matches('/');
    if rp.is_empty() || sp == rp || sp.starts_with(&format!("{rp}/")) {
        Ok(())
    } else {
        Err(format!(
            "resource {resource:?} does not cover the MCP server path {sp:?}"
        ))
    }
}

enum Fetched<T> {
    Found(T),
    NotFound,
}

/// What one step of discovery concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The step succeeded.
    Ok,
    /// Nothing there; the next candidate is tried.
    NotFound,
    /// Something unusable there (not JSON, the wrong shape); the next candidate is tried.
    Skipped,
    /// The chain goes on, but only through a fallback or a departure from
    /// the specification that the server should fix.
    Warning,
    /// The chain stops here.
    Failed,
}

impl Verdict {
    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NotFound => "not_found",
            Verdict::Skipped => "skipped",
            Verdict::Warning => "warning",
            Verdict::Failed => "failed",
        }
    }
}

/// One step of discovery, in the order the client took it: a URL fetched and
/// its status, or a check and its outcome.
#[derive(Debug, Clone)]
pub struct DiscoveryStep {
    /// The protocol step it belongs to.
    pub step: Step,
    /// What was done, in a few words ("protected resource metadata", "issuer check", ...).
    pub what: String,
    /// The URL fetched, if any (query stripped).
    pub url: Option<String>,
    /// The HTTP status, if a response came.
    pub status: Option<u16>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in the client's words.
    pub detail: String,
    /// For a failed step or a warning: what would fix it.
    pub hint: Option<String>,
}

/// Every step of a discovery, for error messages and diagnostic tools.
pub type Trace = Vec<DiscoveryStep>;

pub(crate) fn record(
    trace: &mut Trace,
    step: Step,
    what: &str,
    url: Option<&Url>,
    status: Option<u16>,
    verdict: Verdict,
    detail: impl Into<String>,
) {
    let detail = detail.into();
    let hint = match verdict {
        Verdict::Failed | Verdict::Warning | Verdict::Skipped => remedy(what, status, verdict, &detail),
        Verdict::Ok | Verdict::NotFound => None,
    };
    trace.push(DiscoveryStep {
        step,
        what: what.to_string(),
        url: url.map(crate::http::redact_query),
        status,
        verdict,
        detail,
        hint,
    });
}

/// What would fix a step that failed or only held through a fallback, in a
/// sentence for the person who runs the server or configures the client.
/// `None` when there is nothing specific to say.
pub fn remedy(what: &str, status: Option<u16>, verdict: Verdict, detail: &str) -> Option<String> {
    let server_error = status.is_some_and(|s| s == 429 || s >= 500);
    // A fetch that got no response at all (the network error is the detail).
    let fetched = matches!(
        what,
        PROBE | "protected resource metadata" | "authorization server metadata"
    );
    let unreachable = fetched
        && verdict == Verdict::Failed
        && status.is_none()
        && !detail.starts_with("no authorization server metadata found");
    let hint = match what {
        PROBE if server_error => {
            "the MCP server itself fails before any OAuth step: check that it (and any proxy in front of it) is up, then try again"
        }
        PROBE if unreachable => "check the URL, and that the MCP server is running and reachable from here",
        PROBE if status == Some(200) => {
            "the server did not ask for a token: if it should, check that its authorization covers this endpoint"
        }
        PROBE if status == Some(401) => {
            "a 401 must carry `WWW-Authenticate: Bearer resource_metadata=\"<URL>\"` (RFC 9728 §5.1, MCP authorization)"
        }
        PROBE => "check that the URL is the MCP endpoint itself (where initialize is POSTed)",
        _ if unreachable => "check that the server is running and reachable from here (the URL, DNS, TLS, a proxy)",
        _ if server_error => {
            "the server fails at this URL; the client does not fall back past a server error: fix it, or try again later"
        }
        "protected resource metadata" => {
            "serve JSON with `resource` and `authorization_servers` (RFC 9728 §2), with Content-Type application/json"
        }
        "authorization server metadata" if verdict == Verdict::Skipped => {
            "serve RFC 8414 JSON metadata with Content-Type application/json"
        }
        "authorization server metadata" => {
            "publish RFC 8414 metadata (/.well-known/oauth-authorization-server) or OpenID Connect Discovery for this issuer, or correct the issuer URL in the protected resource metadata's `authorization_servers`"
        }
        "legacy mode" => {
            "serve RFC 9728 protected resource metadata (/.well-known/oauth-protected-resource) naming the authorization server: MCP 2025-06-18 and later require it, and the 2025-03-26 fallback only works when the MCP server's own origin is the authorization server"
        }
        "default endpoints" => {
            "the origin publishes no authorization server metadata either: /authorize, /token and /register are assumed, not verified"
        }
        "resource check" => {
            "the metadata's `resource` must name this MCP server (same scheme, host and port, and its path or a parent of it; RFC 9728 §3.3): correct `resource` in the server's protected resource metadata, or use the URL it names"
        }
        "authorization servers" => "list the authorization server's issuer URL in `authorization_servers`",
        "issuer check" => {
            "the metadata's `issuer` must be exactly the URL listed in `authorization_servers` (RFC 8414 §3.3, against mix-up attacks): make the two identical, trailing slash included"
        }
        "endpoint check" | "issuer transport" => {
            "authorization server endpoints must use https (loopback addresses excepted): serve them over https, or allow the host for testing (allow_http_hosts)"
        }
        "pinned issuer" => {
            "the pre-registered client belongs to another authorization server: use credentials issued by the one the MCP server names"
        }
        "PKCE" if verdict == Verdict::Warning => {
            "PKCE S256 is assumed, not advertised: if the authorization server rejects the code_challenge, S256 is not supported there"
        }
        "PKCE" if detail.contains("no code_challenge_methods_supported") => {
            "the authorization server omits code_challenge_methods_supported (Microsoft Entra ID does): if it supports S256 all the same, allow it with assume_s256_when_pkce_unadvertised; otherwise enable PKCE S256 there"
        }
        "PKCE" => "enable PKCE with S256 at the authorization server (`plain` is not accepted)",
        "device authorization" => {
            "the authorization server advertises no device_authorization_endpoint: enable the device authorization grant (RFC 8628) there, or log in with a browser"
        }
        "client identity" => {
            "pre-register a client with the authorization server and configure its client_id, or enable dynamic client registration (RFC 7591) or Client ID Metadata Documents there"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// The `what` of the first step of a diagnosis: the unauthenticated request
/// to the MCP server and its challenge.
pub const PROBE: &str = "MCP server";

fn outage_error(step: Step, what: &str, resp: &HttpResponse, url: &Url) -> Error {
    Error::new(
        ErrorKind::Server,
        step,
        format!("{what} request failed with a server error; not falling back"),
    )
    .with_status(resp.status)
    .with_url(url)
    .with_retry_after(crate::http::retry_after(resp))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &Url,
    step: Step,
    what: &str,
    trace: &mut Trace,
) -> Result<Fetched<T>> {
    let resp = match http.send(http.request("GET", url.clone()), step).await {
        Ok(r) => r,
        Err(e) => {
            record(
                trace,
                step,
                what,
                Some(url),
                None,
                Verdict::Failed,
                e.message().to_string(),
            );
            return Err(e);
        }
    };
    match resp.status {
        200 => {
            if !looks_like_json(&resp) {
                record(trace, step, what, Some(url), Some(200), Verdict::Skipped, "not JSON");
                return Ok(Fetched::NotFound);
            }
            match serde_json::from_slice::<T>(&resp.body) {
                Ok(v) => Ok(Fetched::Found(v)),
                Err(e) => {
                    let detail = format!("not valid JSON of the expected shape ({e})");
                    record(
                        trace,
                        step,
                        what,
                        Some(url),
                        Some(200),
                        Verdict::Skipped,
                        detail.clone(),
                    );
                    Err(Error::flow(step, format!("{what} is {detail}"))
                        .with_status(200)
                        .with_url(url))
                }
            }
        }
        429 | 500..=599 => {
            record(
                trace,
                step,
                what,
                Some(url),
                Some(resp.status),
                Verdict::Failed,
                "server error",
            );
            Err(outage_error(step, what, &resp, url))
        }
        status => {
            record(
                trace,
                step,
                what,
                Some(url),
                Some(status),
                Verdict::NotFound,
                "not found here",
            );
            Ok(Fetched::NotFound)
        }
    }
}

/// Fetch protected resource metadata. `Ok(None)` means none exists at any URL
/// (the 2025-03-26 legacy mode applies).
pub async fn fetch_resource_metadata(
    http: &Http,
    server: &Url,
    from_challenge: Option<&str>,
    trace: &mut Trace,
) -> Result<Option<(ProtectedResourceMetadata, Url)>> {
    let what = "protected resource metadata";
    for url in resource_metadata_urls(server, from_challenge) {
        match get_json::<ProtectedResourceMetadata>(http, &url, Step::ResourceMetadata, what, trace).await {
            Ok(Fetched::Found(prm)) => {
                record(
                    trace,
                    Step::ResourceMetadata,
                    what,
                    Some(&url),
                    Some(200),
                    Verdict::Ok,
                    "found",
                );
                return Ok(Some((prm, url)));
            }
            Ok(Fetched::NotFound) => continue,
            // A malformed document at one URL: try the next, as a missing one.
            Err(e) if e.kind() == ErrorKind::Flow && e.status() == Some(200) => {
                tracing::warn!(error = %e, "skipping invalid protected resource metadata");
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Check a protected resource metadata document against the MCP server URL.
pub fn check_resource(
    server: &Url,
    prm: &ProtectedResourceMetadata,
    validator: Option<&ResourceValidator>,
) -> Result<()> {
    let outcome = match validator {
        Some(v) => v(server, &prm.resource),
        None => default_resource_check(server, &prm.resource),
    };
    outcome.map_err(|reason| {
        Error::flow(
            Step::ResourceMetadata,
            format!("protected resource metadata does not match the MCP server: {reason}"),
        )
    })
}

/// Whether two issuer identifiers are the same (RFC 8414 §3.3: identical;
/// an empty path and `/` are the same URL).
pub fn same_issuer(expected: &str, got: &str) -> bool {
    expected == got
        || expected.trim_end_matches('/') == got && Url::parse(got).is_ok_and(|u| u.path() == "/")
        || got.trim_end_matches('/') == expected && Url::parse(expected).is_ok_and(|u| u.path() == "/")
}

/// Fetch and validate authorization server metadata for `issuer`.
/// `Ok(None)` means no metadata at any URL.
pub async fn fetch_authorization_server_metadata(
    http: &Http,
    issuer: &str,
    trace: &mut Trace,
) -> Result<Option<AuthorizationServerMetadata>> {
    let what = "authorization server metadata";
    let step = Step::AuthorizationServerMetadata;
    let issuer_url = parse_server_url(issuer, "authorization server issuer", step)?;
    if let Err(e) = http.require_secure(&issuer_url, "authorization server issuer", step) {
        record(
            trace,
            step,
            "issuer transport",
            Some(&issuer_url),
            None,
            Verdict::Failed,
            e.message(),
        );
        return Err(e);
    }
    for url in authorization_server_metadata_urls(&issuer_url) {
        match get_json::<AuthorizationServerMetadata>(http, &url, step, what, trace).await {
            Ok(Fetched::Found(meta)) => {
                if !same_issuer(issuer, &meta.issuer) {
                    let e = Error::flow(
                        step,
                        format!(
                            "authorization server metadata names issuer {:?}, not {:?}; refusing to use it",
                            meta.issuer, issuer
                        ),
                    )
                    .with_url(&url);
                    record(
                        trace,
                        step,
                        "issuer check",
                        Some(&url),
                        Some(200),
                        Verdict::Failed,
                        e.message(),
                    );
                    return Err(e);
                }
                if let Err(e) = validate_endpoints(http, &meta) {
                    record(
                        trace,
                        step,
                        "endpoint check",
                        Some(&url),
                        Some(200),
                        Verdict::Failed,
                        e.message(),
                    );
                    return Err(e);
                }
                record(trace, step, what, Some(&url), Some(200), Verdict::Ok, "found");
                record(
                    trace,
                    step,
                    "issuer check",
                    None,
                    None,
                    Verdict::Ok,
                    format!("issuer is {issuer}"),
                );
                return Ok(Some(meta));
            }
            Ok(Fetched::NotFound) => continue,
            Err(e) if e.kind() == ErrorKind::Flow && e.status() == Some(200) => {
                tracing::warn!(error = %e, "skipping invalid authorization server metadata");
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn validate_endpoints(http: &Http, meta: &AuthorizationServerMetadata) -> Result<()> {
    for (name, value) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("registration_endpoint", &meta.registration_endpoint),
    ] {
        if let Some(v) = value {
            let u = parse_server_url(v, name, Step::AuthorizationServerMetadata)?;
            http.require_secure(&u, name, Step::AuthorizationServerMetadata)?;
        }
    }
    Ok(())
}

/// Metadata for the 2025-03-26 legacy mode when the server publishes none:
/// the default endpoints at the MCP server's origin.
pub fn legacy_default_metadata(origin: &Url) -> AuthorizationServerMetadata {
    let base = origin.origin().ascii_serialization();
    AuthorizationServerMetadata {
        issuer: base.clone(),
        authorization_endpoint: Some(format!("{base}/authorize")),
        token_endpoint: Some(format!("{base}/token")),
        registration_endpoint: Some(format!("{base}/register")),
        scopes_supported: None,
        response_types_supported: None,
        grant_types_supported: None,
        token_endpoint_auth_methods_supported: None,
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        authorization_response_iss_parameter_supported: None,
        client_id_metadata_document_supported: None,
        revocation_endpoint: None,
        device_authorization_endpoint: None,
        extra: Default::default(),
    }
}

/// Refuse authorization servers that do not advertise PKCE S256, unless the
/// host opted out.
pub fn check_pkce_support(meta: &AuthorizationServerMetadata, assume_s256_when_unadvertised: bool) -> Result<()> {
    match &meta.code_challenge_methods_supported {
        Some(methods) if methods.iter().any(|m| m == "S256") => Ok(()),
        Some(_) => Err(Error::flow(
            Step::AuthorizationServerMetadata,
            "the authorization server does not support PKCE S256 (code_challenge_methods_supported lacks it); refusing to proceed",
        )),
        None if assume_s256_when_unadvertised => Ok(()),
        None => Err(Error::flow(
            Step::AuthorizationServerMetadata,
            "the authorization server metadata has no code_challenge_methods_supported, so PKCE support is unknown; refusing to proceed (set assume_s256_when_pkce_unadvertised to allow such servers)",
        )),
    }
}

/// What discovery found: the resource, its authorization server and that
/// server's metadata.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The protected resource metadata, when the server publishes it.
    pub resource_metadata: Option<ProtectedResourceMetadata>,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Its metadata (or the 2025-03-26 defaults).
    pub server: AuthorizationServerMetadata,
    /// The resource identifier tokens are requested for: the PRM `resource`
    /// byte for byte, else the canonical server URI.
    pub resource: String,
}

/// What discovery may be told.
#[derive(Clone, Default)]
pub struct DiscoveryOptions {
    /// Skip the PRM `resource` check.
    pub skip_resource_check: bool,
    /// Replaces the default resource check.
    pub resource_validator: Option<ResourceValidator>,
    /// Picks among several authorization servers.
    pub selector: Option<AuthorizationServerSelector>,
    /// The only issuer whose metadata may be used (pre-registered credentials
    /// pinned to their authorization server).
    pub pinned_issuer: Option<String>,
}

fn pinned_refusal(trace: &mut Trace, pinned: &str, named: &[String]) -> Error {
    let e = Error::config(format!(
        "the pre-registered client is pinned to the authorization server {pinned:?}, but the MCP server names {named:?}; refusing to send its credentials elsewhere"
    ))
    .in_step(Step::AuthorizationServerMetadata);
    record(
        trace,
        Step::AuthorizationServerMetadata,
        "pinned issuer",
        None,
        None,
        Verdict::Failed,
        e.message(),
    );
    e
}

/// Run discovery for `server`: protected resource metadata (or the legacy
/// mode), the resource check, the choice of authorization server, its
/// metadata and the issuer check. Every step lands in `trace`.
pub async fn discover(
    http: &Http,
    server: &Url,
    from_challenge: Option<&str>,
    options: &DiscoveryOptions,
    trace: &mut Trace,
) -> Result<Discovered> {
    let d = match fetch_resource_metadata(http, server, from_challenge, trace).await? {
        Some((prm, prm_url)) => {
            if options.skip_resource_check {
                record(
                    trace,
                    Step::ResourceMetadata,
                    "resource check",
                    None,
                    None,
                    Verdict::Skipped,
                    "skipped by configuration",
                );
            } else if let Err(e) = check_resource(server, &prm, options.resource_validator.as_ref()) {
                record(
                    trace,
                    Step::ResourceMetadata,
                    "resource check",
                    Some(&prm_url),
                    None,
                    Verdict::Failed,
                    e.message(),
                );
                return Err(e.with_url(&prm_url));
            } else {
                record(
                    trace,
                    Step::ResourceMetadata,
                    "resource check",
                    None,
                    None,
                    Verdict::Ok,
                    format!("resource {:?} covers the server", prm.resource),
                );
            }
            if prm.authorization_servers.is_empty() {
                let e = Error::flow(
                    Step::ResourceMetadata,
                    "the protected resource metadata lists no authorization_servers",
                )
                .with_url(&prm_url);
                record(
                    trace,
                    Step::ResourceMetadata,
                    "authorization servers",
                    Some(&prm_url),
                    None,
                    Verdict::Failed,
                    e.message(),
                );
                return Err(e);
            }
            let listed = &prm.authorization_servers;
            let idx = match (&options.pinned_issuer, &options.selector) {
                (Some(pinned), _) => match listed.iter().position(|s| same_issuer(pinned, s)) {
                    Some(i) => i,
                    None => return Err(pinned_refusal(trace, pinned, listed)),
                },
                (None, Some(sel)) => sel(listed),
                (None, None) => 0,
            };
            let issuer = listed
                .get(idx)
                .cloned()
                .ok_or_else(|| Error::config("the authorization server selector returned an index out of range"))?;
            record(
                trace,
                Step::ResourceMetadata,
                "authorization server",
                None,
                None,
                Verdict::Ok,
                format!("using {issuer} (of {})", listed.len()),
            );
            let Some(meta) = fetch_authorization_server_metadata(http, &issuer, trace).await? else {
                // A document that was there but unusable says more than "none".
                let unusable = trace
                    .iter()
                    .rev()
                    .find(|s| s.step == Step::AuthorizationServerMetadata && s.verdict == Verdict::Skipped)
                    .map(|s| format!(" ({} at {}: {})", s.what, s.url.as_deref().unwrap_or("?"), s.detail))
                    .unwrap_or_default();
                let e = Error::flow(
                    Step::AuthorizationServerMetadata,
                    format!("no authorization server metadata found for issuer {issuer:?}{unusable}"),
                );
                record(
                    trace,
                    Step::AuthorizationServerMetadata,
                    "authorization server metadata",
                    None,
                    None,
                    Verdict::Failed,
                    e.message(),
                );
                return Err(e);
            };
            // The PRM's identifier, byte for byte: it is what the resource
            // server checks the token's audience against.
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
            record(
                trace,
                Step::ResourceMetadata,
                "legacy mode",
                None,
                None,
                Verdict::Warning,
                "no protected resource metadata; the server's origin is the authorization server (2025-03-26)",
            );
            let origin = server.origin().ascii_serialization();
            let meta = match fetch_authorization_server_metadata(http, &origin, trace).await? {
                Some(m) => m,
                None => {
                    record(
                        trace,
                        Step::AuthorizationServerMetadata,
                        "default endpoints",
                        None,
                        None,
                        Verdict::Warning,
                        "no metadata; using /authorize, /token, /register at the origin",
                    );
                    legacy_default_metadata(server)
                }
            };
            if let Some(pinned) = &options.pinned_issuer {
                if !same_issuer(pinned, &meta.issuer) {
                    return Err(pinned_refusal(trace, pinned, std::slice::from_ref(&meta.issuer)));
                }
            }
            Discovered {
                resource_metadata: None,
                issuer: meta.issuer.clone(),
                server: meta,
                resource: canonical_resource(server),
            }
        }
    };
    tracing::info!(issuer = %d.issuer, resource = %d.resource, "discovered the authorization server");
    Ok(d)
}

/// The first request of a diagnosis: an MCP `initialize` without a token,
/// as a client's first request goes out, recorded with its status and the
/// Bearer challenge it carried. A server error or no answer breaks the
/// chain; a server that asks for nothing, or answers 401 without a usable
/// challenge, is a warning (discovery goes on from the well-known URLs).
pub(crate) async fn probe(http: &Http, server: &Url, trace: &mut Trace) -> Result<Option<BearerChallenge>> {
    let step = Step::Request;
    let version = http.protocol_version.as_deref().unwrap_or(PROBE_PROTOCOL_VERSION);
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-oauth-client diagnosis", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let mut req = http.request("POST", server.clone());
    req.headers.retain(|(k, _)| k != "accept");
    req.headers
        .push(("accept".into(), "application/json, text/event-stream".into()));
    req.headers.push(("content-type".into(), "application/json".into()));
    req.body = Some(body.to_string().into_bytes());
    let resp = match http.send(req, step).await {
        Ok(r) => r,
        Err(e) => {
            record(
                trace,
                step,
                PROBE,
                Some(server),
                None,
                Verdict::Failed,
                e.message().to_string(),
            );
            return Err(e);
        }
    };
    let challenges: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    let status = Some(resp.status);
    match resp.status {
        401 => match find_bearer(&challenges) {
            Some(c) => {
                let mut parts = vec![format!("401 with a Bearer challenge")];
                match &c.resource_metadata {
                    Some(r) => parts.push(format!("resource_metadata={r}")),
                    None => parts.push("no resource_metadata (the well-known URLs are tried)".into()),
                }
                if let Some(sc) = &c.scope {
                    parts.push(format!("scope={sc:?}"));
                }
                if let Some(err) = &c.error {
                    parts.push(format!("error={err}"));
                }
                record(trace, step, PROBE, Some(server), status, Verdict::Ok, parts.join(", "));
                Ok(Some(c))
            }
            None if challenges.is_empty() => {
                record(
                    trace,
                    step,
                    PROBE,
                    Some(server),
                    status,
                    Verdict::Warning,
                    "401 with no WWW-Authenticate header",
                );
                Ok(None)
            }
            None => {
                record(
                    trace,
                    step,
                    PROBE,
                    Some(server),
                    status,
                    Verdict::Warning,
                    "401 without a Bearer challenge in WWW-Authenticate",
                );
                Ok(None)
            }
        },
        429 | 500..=599 => {
            record(
                trace,
                step,
                PROBE,
                Some(server),
                status,
                Verdict::Failed,
                "server error",
            );
            Err(outage_error(step, "the MCP server's", &resp, server))
        }
        200..=299 => {
            record(
                trace,
                step,
                PROBE,
                Some(server),
                status,
                Verdict::Warning,
                "answered without asking for a token",
            );
            Ok(None)
        }
        other => {
            record(
                trace,
                step,
                PROBE,
                Some(server),
                status,
                Verdict::Warning,
                format!("answered {other}, not 401 with a challenge"),
            );
            Ok(None)
        }
    }
}

/// The MCP protocol version a diagnosis's `initialize` names when the
/// provider is configured with none.
pub const PROBE_PROTOCOL_VERSION: &str = "2025-06-18";

/// Everything a discovery found, step by step, and where it stopped.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryReport {
    /// Each step with its verdict, in order.
    pub steps: Trace,
    /// What was found, when the chain held.
    pub discovered: Option<Discovered>,
    /// Which client identity would be used, and why.
    pub client_identity: Option<String>,
    /// The scope that would be requested.
    pub scope: Option<String>,
    /// Where the chain broke, if it did.
    pub error: Option<Error>,
    /// The MCP server's Bearer challenge to an unauthenticated request, when
    /// the diagnosis sent one ([`crate::OAuthClientProvider::diagnose`]).
    pub challenge: Option<BearerChallenge>,
}

impl DiscoveryReport {
    /// Whether every step held.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// Whether a step held only through a fallback or a departure from the
    /// specification.
    pub fn has_warnings(&self) -> bool {
        self.steps.iter().any(|s| s.verdict == Verdict::Warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn prm_urls_in_spec_order() {
        assert_eq!(
            strs(resource_metadata_urls(
                &u("https://ex.com/public/mcp"),
                Some("https://ex.com/custom/prm")
            )),
            vec![
                "https://ex.com/custom/prm",
                "https://ex.com/.well-known/oauth-protected-resource/public/mcp",
                "https://ex.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strs(resource_metadata_urls(&u("https://ex.com/"), None)),
            vec!["https://ex.com/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            strs(resource_metadata_urls(
                &u("http://127.0.0.1:8000/mcp/"),
                Some("ftp://x/y")
            )),
            vec![
                "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:8000/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn as_urls_with_path_insertion() {
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://auth.ex.com/tenant1/"))),
            vec![
                "https://auth.ex.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.ex.com/.well-known/openid-configuration/tenant1",
                "https://auth.ex.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://auth.ex.com"))),
            vec![
                "https://auth.ex.com/.well-known/oauth-authorization-server",
                "https://auth.ex.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn resource_check() {
        let s = u("https://api.ex.com/v1/mcp");
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp/").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v1").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com").is_ok());
        assert!(default_resource_check(&s, "https://API.ex.com:443/v1").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v").is_err());
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp/more").is_err());
        assert!(default_resource_check(&s, "https://evil.com/v1/mcp").is_err());
        assert!(default_resource_check(&s, "http://api.ex.com/v1/mcp").is_err());
        assert!(default_resource_check(&s, "https://api.ex.com:8443/v1/mcp").is_err());
        assert!(default_resource_check(&s, "not a url").is_err());
    }

    #[test]
    fn canonical() {
        assert_eq!(canonical_resource(&u("HTTPS://Ex.COM/mcp#frag")), "https://ex.com/mcp");
        assert_eq!(canonical_resource(&u("https://ex.com/")), "https://ex.com");
        assert_eq!(canonical_resource(&u("https://ex.com/mcp/")), "https://ex.com/mcp");
        assert_eq!(canonical_resource(&u("https://ex.com:443/mcp")), "https://ex.com/mcp");
    }

    #[test]
    fn issuer_identity() {
        assert!(same_issuer("https://a.ex", "https://a.ex"));
        assert!(same_issuer("https://a.ex/", "https://a.ex"));
        assert!(same_issuer("https://a.ex", "https://a.ex/"));
        assert!(!same_issuer("https://a.ex/t1", "https://a.ex/t1/"));
        assert!(!same_issuer("https://a.ex", "https://b.ex"));
        assert!(!same_issuer("https://a.ex/t1", "https://a.ex/t2"));
    }

    #[test]
    fn pkce_rule() {
        let mut m = legacy_default_metadata(&u("https://x.ex/mcp"));
        assert!(check_pkce_support(&m, false).is_ok());
        m.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert!(check_pkce_support(&m, true).is_err());
        m.code_challenge_methods_supported = None;
        let e = check_pkce_support(&m, false).unwrap_err();
        assert!(e.to_string().contains("assume_s256_when_pkce_unadvertised"));
        assert!(check_pkce_support(&m, true).is_ok());
    }
}
