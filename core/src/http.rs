//! The HTTP layer: a small transport trait (so a host may bring its own), the
//! reqwest implementation, and the rules every OAuth request follows here:
//! a per-request timeout, a cap on the response size, no redirects followed,
//! and HTTPS for authorization-server endpoints except on loopback.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::error::{Error, NetworkFailure, Result, Step};

/// Largest response body accepted for metadata, registration and token
/// responses. Real ones are a few kilobytes.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An HTTP request as this crate sends it.
#[derive(Clone)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Where to.
    pub url: Url,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body, for POST.
    pub body: Option<Vec<u8>>,
    /// Time allowed for the whole exchange.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies and headers may hold secrets (client secrets, codes, tokens).
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (at most `max_response_bytes`).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (name lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A transport failure.
#[derive(Debug, Clone)]
pub struct TransportError {
    /// What kind.
    pub failure: NetworkFailure,
    /// Description (never holding request bodies).
    pub message: String,
    /// The host's own code, when a host transport refused the request
    /// (kept in the error as its callback code).
    pub callback_code: Option<i64>,
}

impl TransportError {
    fn timeout(timeout: Duration) -> Self {
        TransportError {
            failure: NetworkFailure::Timeout,
            message: format!("no complete response within {timeout:?}"),
            callback_code: None,
        }
    }

    fn too_large(len: Option<u64>, limit: usize) -> Self {
        let message = match len {
            Some(len) => format!("response of {len} bytes is over the limit of {limit} bytes"),
            None => format!("response is over the limit of {limit} bytes"),
        };
        TransportError {
            failure: NetworkFailure::ResponseTooLarge,
            message,
            callback_code: None,
        }
    }
}

/// What sends HTTP requests. The default is [`ReqwestTransport`]; a host may
/// supply its own (to route through its own HTTP stack).
///
/// Whatever the transport, every request this crate sends is bounded by the
/// request's `timeout`, and a body over `max_response_bytes` is refused; a
/// transport should stop reading there too, so an oversized answer costs no
/// memory.
#[async_trait]
pub trait HttpTransport: Send + Sync {
    /// Send one request; never follow redirects.
    async fn send(&self, request: HttpRequest) -> std::result::Result<HttpResponse, TransportError>;
}

/// How long a pooled connection may sit idle and still be reused. Servers
/// close idle keep-alive connections on their own timer (Node's default
/// keep-alive timeout and uvicorn's are both 5 s); a request written on a
/// connection the server is closing fails with a reset. Dropping ours sooner
/// keeps that race rare; the one retry of a GET in [`ReqwestTransport`]
/// covers what remains.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings of the default transport.
#[derive(Clone, Default)]
pub struct TransportOptions {
    /// PEM-encoded CA certificates to trust besides the system's roots, for
    /// authorization servers with a private CA. Prefer
    /// [`add_root_certificates_pem`](Self::add_root_certificates_pem) and
    /// [`add_root_certificates_file`](Self::add_root_certificates_file),
    /// which check what they are given.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportOptions")
            .field("extra_root_certificates", &self.extra_root_certificates.len())
            .finish()
    }
}

impl TransportOptions {
    /// Trust the CA certificates in `pem` (one or more `CERTIFICATE`
    /// sections). Fails when it is not PEM or holds no certificate.
    pub fn add_root_certificates_pem(&mut self, pem: &[u8]) -> Result<()> {
        parse_root_certificates(pem, "the PEM data")?;
        self.extra_root_certificates.push(pem.to_vec());
        Ok(())
    }

    /// Trust the CA certificates in the PEM file at `path`.
    pub fn add_root_certificates_file(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| Error::config(format!("cannot read the CA certificate file {}: {e}", path.display())))?;
        parse_root_certificates(&pem, &format!("the CA certificate file {}", path.display()))?;
        self.extra_root_certificates.push(pem);
        Ok(())
    }
}

/// The certificates of a PEM bundle, each checked to be one rustls accepts as
/// a root. `source` names the bundle in errors.
fn parse_root_certificates(pem: &[u8], source: &str) -> Result<Vec<reqwest::Certificate>> {
    use rustls_pki_types::pem::{PemObject, SectionKind};

    let mut certificates = Vec::new();
    let mut sections = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        // The parser's own messages may quote the input, which could be a
        // private key pasted by mistake: describe the problem in our words.
        let (kind, der) = section.map_err(|e| {
            let what = match e {
                rustls_pki_types::pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
                rustls_pki_types::pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
                rustls_pki_types::pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
                _ => "it cannot be read as PEM",
            };
            Error::config(format!("{source} is not valid PEM: {what}"))
        })?;
        sections += 1;
        if kind != SectionKind::Certificate {
            continue;
        }
        let der = rustls_pki_types::CertificateDer::from(der);
        rustls::RootCertStore::empty().add(der.clone()).map_err(|e| {
            Error::config(format!(
                "certificate {} in {source} is not a usable X.509 certificate: {e}",
                certificates.len() + 1
            ))
        })?;
        certificates.push(
            reqwest::Certificate::from_der(&der)
                .map_err(|e| Error::config(format!("certificate in {source} is not usable: {e}")))?,
        );
    }
    if sections == 0 {
        return Err(Error::config(format!(
            "{source} is not PEM: no \"-----BEGIN CERTIFICATE-----\" section in it"
        )));
    }
    if certificates.is_empty() {
        return Err(Error::config(format!(
            "{source} holds no certificate: none of its PEM sections is a CERTIFICATE"
        )));
    }
    Ok(certificates)
}

/// The default transport: reqwest with rustls, no redirects, no cookies.
///
/// - TLS trusts the operating system's root certificates and the Mozilla
///   roots bundled with the library, plus any added through
///   [`TransportOptions`].
/// - Proxies come from the environment: `HTTPS_PROXY`, `HTTP_PROXY`,
///   `ALL_PROXY` and `NO_PROXY` (or their lower-case forms; `HTTP_PROXY` is
///   ignored under CGI, where a client could set it), and, on macOS and
///   Windows, the system proxy settings. They are read when the process's
///   first transport is built: providers without extra CA certificates share
///   one client.
/// - A pooled connection idle for [`POOL_IDLE_TIMEOUT`] is not reused, and a
///   GET the server answered by closing a pooled connection is sent once
///   more (see [`HttpTransport::send`] on this type).
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with the default options.
    pub fn new() -> Result<Self> {
        Self::with_options(&TransportOptions::default())
    }

    /// A transport with `options`. Without extra CA certificates every
    /// provider of the process shares one client: loading the operating
    /// system's roots takes milliseconds, and one pool serves them all.
    pub fn with_options(options: &TransportOptions) -> Result<Self> {
        if options.extra_root_certificates.is_empty() {
            static SHARED: std::sync::OnceLock<std::result::Result<reqwest::Client, String>> =
                std::sync::OnceLock::new();
            let client = SHARED
                .get_or_init(|| {
                    Self::build(options)
                        .map(|t| t.client)
                        .map_err(|e| e.message().to_string())
                })
                .clone()
                .map_err(Error::config)?;
            return Ok(ReqwestTransport { client });
        }
        Self::build(options)
    }

    fn build(options: &TransportOptions) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-oauth-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        for (i, pem) in options.extra_root_certificates.iter().enumerate() {
            for certificate in parse_root_certificates(pem, &format!("extra root certificate bundle {}", i + 1))? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client })
    }

    /// One attempt, within `deadline`.
    async fn attempt(
        &self,
        request: &HttpRequest,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<HttpResponse, Failed> {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(Failed::Late(TransportError::timeout(request.timeout)));
        }
        let method = match request.method {
            "POST" => reqwest::Method::POST,
            _ => reqwest::Method::GET,
        };
        // reqwest's timeout covers the whole exchange, body included.
        let mut rb = self.client.request(method, request.url.clone()).timeout(remaining);
        for (k, v) in &request.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &request.body {
            rb = rb.body(body.clone());
        }
        let mut resp = match rb.send().await {
            Ok(resp) => resp,
            Err(e) if closed_by_server(&e) => return Err(Failed::Closed(transport_error(&e))),
            Err(e) => return Err(Failed::Late(transport_error(&e))),
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        if let Some(len) = resp.content_length() {
            if len > request.max_response_bytes as u64 {
                return Err(Failed::Late(TransportError::too_large(
                    Some(len),
                    request.max_response_bytes,
                )));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Failed::Late(transport_error(&e)))? {
            if body.len() + chunk.len() > request.max_response_bytes {
                return Err(Failed::Late(TransportError::too_large(
                    None,
                    request.max_response_bytes,
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status, headers, body })
    }
}

/// How an attempt failed.
enum Failed {
    /// The server closed the connection before answering: the request may
    /// not have been seen, or was dropped unanswered.
    Closed(TransportError),
    /// Anything else, including failures after the response began.
    Late(TransportError),
}

/// Whether `e` says the server closed the connection before any response:
/// hyper's "connection closed before message completed", a reset, an abort
/// or a broken pipe. Not a timeout, and not a failure to connect (a refused
/// connection is not a stale one).
fn closed_by_server(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// Whether a TLS error (rustls's) is somewhere in `e`'s chain of causes. An
/// `io::Error` wraps its cause without listing it as its source (and hyper
/// nests two), so those are opened with `get_ref`.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = match s.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    false
}

fn transport_error(e: &reqwest::Error) -> TransportError {
    let failure = if e.is_timeout() {
        NetworkFailure::Timeout
    } else if is_tls(e) {
        NetworkFailure::Tls
    } else if e.is_connect() {
        NetworkFailure::Connect
    } else {
        NetworkFailure::Other
    };
    TransportError {
        failure,
        message: describe(e),
        callback_code: None,
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL (with query); keep only the kind and
    // the innermost cause.
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.push_str(&l);
    }
    msg
}

#[async_trait]
impl HttpTransport for ReqwestTransport {
    /// Send `request`, within its timeout. A GET the server answered by
    /// closing the connection (typically a pooled one it had just closed on
    /// its keep-alive timer) is sent once more, on another connection; a GET
    /// is idempotent, so a second delivery does no harm. A POST is never sent
    /// again: the server may have acted on it.
    async fn send(&self, request: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
        let deadline = tokio::time::Instant::now() + request.timeout;
        match self.attempt(&request, deadline).await {
            Ok(resp) => Ok(resp),
            Err(Failed::Closed(e)) if request.method == "GET" => {
                tracing::debug!(url = %redact_query(&request.url), error = %e.message,
                    "the server closed the connection before answering; sending the GET again");
                self.attempt(&request, deadline).await.map_err(Failed::into_error)
            }
            Err(f) => Err(f.into_error()),
        }
    }
}

impl Failed {
    fn into_error(self) -> TransportError {
        match self {
            Failed::Closed(e) | Failed::Late(e) => e,
        }
    }
}

/// Whether a URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Authorization-server endpoints must be HTTPS, except on loopback.
pub fn require_secure(url: &Url, what: &str, step: Step) -> Result<()> {
    require_secure_except(url, what, step, &[])
}

/// [`require_secure`], with plain `http` allowed as well on the hosts of
/// `allow_http_hosts` (lower-case names or addresses, any port).
pub fn require_secure_except(url: &Url, what: &str, step: Step, allow_http_hosts: &[String]) -> Result<()> {
    let allowed = || {
        url.host_str().is_some_and(|h| {
            allow_http_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h.trim_matches(['[', ']'])))
        })
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) || allowed() => Ok(()),
        _ => Err(Error::flow(
            step,
            format!(
                "{what} must use https (plain http is allowed only on loopback, or on a host listed in allow_http_hosts)"
            ),
        )
        .with_url(url)),
    }
}

/// Parse a URL that came from a server, naming what it is in the error.
pub fn parse_server_url(s: &str, what: &str, step: Step) -> Result<Url> {
    Url::parse(s).map_err(|e| Error::flow(step, format!("{what} is not a valid URL ({e})")))
}

/// The client's view of the HTTP layer: the transport plus the timeout.
#[derive(Clone)]
pub struct Http {
    pub(crate) transport: Arc<dyn HttpTransport>,
    pub(crate) timeout: Duration,
    pub(crate) protocol_version: Option<String>,
    /// Hosts whose authorization-server endpoints may use plain `http`
    /// (`ProviderConfig::allow_http_hosts`, lower-cased).
    pub(crate) allow_http_hosts: Arc<[String]>,
}

impl Http {
    /// [`require_secure`] with this provider's `allow_http_hosts`.
    pub(crate) fn require_secure(&self, url: &Url, what: &str, step: Step) -> Result<()> {
        require_secure_except(url, what, step, &self.allow_http_hosts)
    }

    pub(crate) fn request(&self, method: &'static str, url: Url) -> HttpRequest {
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if let Some(v) = &self.protocol_version {
            headers.push(("mcp-protocol-version".into(), v.clone()));
        }
        HttpRequest {
            method,
            url,
            headers,
            body: None,
            timeout: self.timeout,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Send `req` through the transport, whatever it is: the request's
    /// timeout bounds the whole exchange, a body over its
    /// `max_response_bytes` is refused, and a redirect answering a POST is an
    /// error (see [`redirect_refused`]).
    pub(crate) async fn send(&self, req: HttpRequest, step: Step) -> Result<HttpResponse> {
        let url = req.url.clone();
        let method = req.method;
        let (timeout, limit) = (req.timeout, req.max_response_bytes);
        tracing::debug!(method = req.method, url = %redact_query(&url), step = %step, "sending");
        let outcome = match tokio::time::timeout(timeout, self.transport.send(req)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TransportError::timeout(timeout)),
        };
        let resp = outcome
            .and_then(|resp| match resp.body.len() {
                len if len > limit => Err(TransportError::too_large(Some(len as u64), limit)),
                _ => Ok(resp),
            })
            .map_err(|e| {
                let err = Error::network(step, e.failure, e.message).with_url(&url);
                match e.callback_code {
                    Some(code) => err.with_callback_code(code),
                    None => err,
                }
            })?;
        tracing::debug!(status = resp.status, url = %redact_query(&url), "received");
        // The diagnosis's probe of the MCP server (step `Request`) carries no
        // credentials and reports a redirect itself.
        if method == "POST" && step != Step::Request && (300..400).contains(&resp.status) {
            return Err(redirect_refused(&resp, &url, step));
        }
        Ok(resp)
    }
}

/// The error for a redirect answering a POST. Every POST this crate sends to
/// an authorization server carries something for that server only (a code
/// and verifier, a refresh token, client credentials, a registration), and
/// no redirect is followed: the request went nowhere else. A redirect on a
/// registration is a registration error; on any other POST (token, device
/// authorization, revocation) the server failed to answer, as with an HTML
/// page: an outage, which keeps every stored token.
fn redirect_refused(resp: &HttpResponse, url: &Url, step: Step) -> Error {
    // Name only the origin it points to: its path and query are the
    // server's, and may be long or hostile.
    let to = resp
        .header("location")
        .and_then(|l| url.join(l).ok())
        .filter(|l| matches!(l.scheme(), "http" | "https"))
        .map(|l| format!(" to {}", l.origin().ascii_serialization()))
        .unwrap_or_default();
    let kind = match step {
        Step::Registration => crate::error::ErrorKind::Registration,
        _ => crate::error::ErrorKind::Server,
    };
    Error::new(
        kind,
        step,
        format!(
            "the server answered with a redirect (HTTP {}{to}); redirects are not followed, so the request and its credentials went nowhere else",
            resp.status
        ),
    )
    .with_status(resp.status)
    .with_url(url)
}

/// A URL without query and fragment, for logs.
pub fn redact_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Whether a response's content type is JSON (or absent, which some servers do).
pub(crate) fn looks_like_json(resp: &HttpResponse) -> bool {
    match resp.header("content-type") {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json") || ct.starts_with("text/plain")
        }
    }
}

/// The `Retry-After` of a response, in seconds form (RFC 9110 §10.2.3). The
/// HTTP-date form is rare from authorization servers and read as absent.
pub fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    let v = resp.header("retry-after")?.trim();
    v.parse::<u64>().ok().map(|s| Duration::from_secs(s.min(86_400)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host transport that never answers.
    struct Silent;

    #[async_trait]
    impl HttpTransport for Silent {
        async fn send(&self, _: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
            std::future::pending().await
        }
    }

    /// A host transport that returns whatever body it was given, ignoring the cap.
    struct Huge(usize);

    #[async_trait]
    impl HttpTransport for Huge {
        async fn send(&self, _: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![b' '; self.0],
            })
        }
    }

    fn http(transport: impl HttpTransport + 'static) -> Http {
        Http {
            transport: Arc::new(transport),
            timeout: Duration::from_secs(30),
            protocol_version: None,
            allow_http_hosts: Arc::from(Vec::new()),
        }
    }

    // The clock is paused: the runtime jumps to the deadline once nothing else
    // can run, so the test neither waits nor depends on a margin.
    #[tokio::test(start_paused = true)]
    async fn a_host_transport_that_never_answers_times_out() {
        let http = http(Silent);
        let url = Url::parse("https://as.example/.well-known/oauth-authorization-server?x=secret").unwrap();
        let e = http
            .send(http.request("GET", url), Step::AuthorizationServerMetadata)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Network);
        assert_eq!(e.network_failure(), Some(NetworkFailure::Timeout));
        assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata));
        assert_eq!(
            e.url(),
            Some("https://as.example/.well-known/oauth-authorization-server")
        );
        assert!(!e.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn a_host_transport_body_over_the_cap_is_refused() {
        let url = Url::parse("https://as.example/token").unwrap();
        let over = http(Huge(MAX_RESPONSE_BYTES + 1));
        let e = over
            .send(over.request("POST", url.clone()), Step::TokenExchange)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Network);
        assert_eq!(e.network_failure(), Some(NetworkFailure::ResponseTooLarge));
        assert_eq!(e.url(), Some("https://as.example/token"));

        let at = http(Huge(MAX_RESPONSE_BYTES));
        let resp = at.send(at.request("POST", url), Step::TokenExchange).await.unwrap();
        assert_eq!(resp.body.len(), MAX_RESPONSE_BYTES);
    }

    #[test]
    fn loopback_and_secure() {
        for (u, lb) in [
            ("http://127.0.0.1:8/x", true),
            ("http://127.9.9.9/", true),
            ("http://localhost:3000/cb", true),
            ("http://[::1]:80/", true),
            ("http://LOCALHOST/", true),
            ("http://localhost.evil.com/", false),
            ("http://10.0.0.1/", false),
            ("https://example.com/", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(u).unwrap()), lb, "{u}");
        }
        assert!(
            require_secure(
                &Url::parse("https://as.example/token").unwrap(),
                "token endpoint",
                Step::TokenExchange
            )
            .is_ok()
        );
        assert!(
            require_secure(
                &Url::parse("http://127.0.0.1/token").unwrap(),
                "token endpoint",
                Step::TokenExchange
            )
            .is_ok()
        );
        let e = require_secure(
            &Url::parse("http://as.example/token").unwrap(),
            "token endpoint",
            Step::TokenExchange,
        )
        .unwrap_err();
        assert!(e.to_string().contains("https"));
    }

    #[test]
    fn plain_http_only_on_the_hosts_allowed() {
        let allowed = ["keycloak".to_string(), "10.0.0.7".to_string(), "::2".to_string()];
        let check = |u: &str| {
            require_secure_except(&Url::parse(u).unwrap(), "token endpoint", Step::TokenExchange, &allowed).is_ok()
        };
        assert!(check("http://keycloak:8080/realms/mcp/token"));
        assert!(check("http://KEYCLOAK/token"));
        assert!(check("http://10.0.0.7/token"));
        assert!(check("http://[::2]:8080/token"));
        assert!(check("https://as.example/token"));
        assert!(!check("http://keycloak.example.com/token"));
        assert!(!check("http://as.example/token"));
        assert!(!check("ftp://keycloak/token"));
        let e = require_secure_except(
            &Url::parse("http://as.example/token").unwrap(),
            "token endpoint",
            Step::TokenExchange,
            &allowed,
        )
        .unwrap_err();
        assert!(e.to_string().contains("allow_http_hosts"), "{e}");
    }
}
