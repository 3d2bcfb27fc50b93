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
}

/// What sends HTTP requests. The default is reqwest with rustls; a host may
/// supply its own (for its proxy settings, or to route through its stack).
#[async_trait]
pub trait HttpTransport: Send + Sync {
    /// Send one request; never follow redirects.
    async fn send(&self, request: HttpRequest) -> std::result::Result<HttpResponse, TransportError>;
}

/// The default transport.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with rustls, no redirects, and no cookies.
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-oauth-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client })
    }
}

fn classify(e: &reqwest::Error) -> NetworkFailure {
    if e.is_timeout() {
        NetworkFailure::Timeout
    } else if e.is_connect() {
        NetworkFailure::Connect
    } else {
        NetworkFailure::Other
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
    async fn send(&self, request: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
        let method = match request.method {
            "POST" => reqwest::Method::POST,
            _ => reqwest::Method::GET,
        };
        let mut rb = self
            .client
            .request(method, request.url.clone())
            .timeout(request.timeout);
        for (k, v) in &request.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(body) = request.body {
            rb = rb.body(body);
        }
        let fut = async {
            let mut resp = rb.send().await.map_err(|e| TransportError {
                failure: classify(&e),
                message: describe(&e),
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                .collect();
            if let Some(len) = resp.content_length() {
                if len as usize > request.max_response_bytes {
                    return Err(TransportError {
                        failure: NetworkFailure::ResponseTooLarge,
                        message: format!(
                            "response of {len} bytes is over the limit of {}",
                            request.max_response_bytes
                        ),
                    });
                }
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| TransportError {
                failure: classify(&e),
                message: describe(&e),
            })? {
                if body.len() + chunk.len() > request.max_response_bytes {
                    return Err(TransportError {
                        failure: NetworkFailure::ResponseTooLarge,
                        message: format!("response is over the limit of {} bytes", request.max_response_bytes),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse { status, headers, body })
        };
        // The reqwest timeout covers the body too, but a slow-drip body could
        // keep resetting nothing: bound the whole exchange as well.
        match tokio::time::timeout(request.timeout + Duration::from_millis(100), fut).await {
            Ok(r) => r,
            Err(_) => Err(TransportError {
                failure: NetworkFailure::Timeout,
                message: "timed out".into(),
            }),
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
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(Error::flow(
            step,
            format!("{what} must use https (plain http is allowed only on loopback)"),
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
}

impl Http {
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

    pub(crate) async fn send(&self, req: HttpRequest, step: Step) -> Result<HttpResponse> {
        let url = req.url.clone();
        tracing::debug!(method = req.method, url = %redact_query(&url), step = %step, "sending");
        let resp = self
            .transport
            .send(req)
            .await
            .map_err(|e| Error::network(step, e.failure, e.message).with_url(&url))?;
        tracing::debug!(status = resp.status, url = %redact_query(&url), "received");
        Ok(resp)
    }
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
}
