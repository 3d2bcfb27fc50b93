//! The two moments a person is involved: sending them to the authorization
//! URL (the redirect step) and receiving them back (the callback step).
//!
//! Built-ins: [`open_browser`] (the system browser, or the URL printed when
//! there is none), and [`LoopbackReceiver`], an RFC 8252 §7.3 loopback
//! redirect receiver. [`BrowserLoopbackHandler`] joins the two.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::authorize::AuthorizationCodeResult;
use crate::error::{Error, Result, Step};

/// The host's part of the authorization-code flow.
#[async_trait]
pub trait AuthorizationHandler: Send + Sync {
    /// Get the person to `authorization_url` (open a browser, print it, ...).
    async fn redirect(&self, authorization_url: &Url) -> Result<()>;
    /// Wait for the person to come back and return what the redirect carried.
    async fn callback(&self) -> Result<AuthorizationCodeResult>;
}

/// Open `url` in the system browser. Honors `$BROWSER` (a `:`-separated list
/// of commands; `%s` is replaced by the URL, else the URL is appended), then
/// tries the platform opener. The URL is also printed on standard error, so
/// the person can open it by hand when no browser appears.
pub async fn open_browser(url: &Url) -> Result<()> {
    let url_s = url.as_str().to_string();
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(b) = std::env::var("BROWSER") {
        for cmd in b.split(':').filter(|c| !c.trim().is_empty()) {
            let mut parts: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
            if parts.iter().any(|p| p.contains("%s")) {
                for p in parts.iter_mut() {
                    *p = p.replace("%s", &url_s);
                }
            } else {
                parts.push(url_s.clone());
            }
            candidates.push(parts);
        }
    }
    if cfg!(target_os = "macos") {
        candidates.push(vec!["open".into(), url_s.clone()]);
    } else if cfg!(windows) {
        candidates.push(vec![
            "rundll32".into(),
            "url.dll,FileProtocolHandler".into(),
            url_s.clone(),
        ]);
    } else {
        candidates.push(vec!["xdg-open".into(), url_s.clone()]);
    }
    for argv in candidates {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match cmd.spawn() {
            Ok(mut child) => {
                // Reap the child in the background; a browser may keep running.
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
                tracing::info!(program = %argv[0], "opened the authorization URL");
                // An opener can start and still show nothing (no display, no
                // default browser): the person can always use the URL itself.
                eprintln!("If no browser opened, open this URL to authorize:\n  {url_s}");
                return Ok(());
            }
            Err(_) => continue,
        }
    }
    eprintln!("Open this URL in a browser to authorize:\n  {url_s}");
    Ok(())
}

/// A loopback HTTP listener for the redirect back from the authorization
/// server (RFC 8252 §7.3). Bind it first, then use its
/// [`redirect_uri`](Self::redirect_uri) (with the real port when the port
/// asked for was 0) in the client metadata.
///
/// It serves any number of connections at once, so a browser's pre-connect
/// or a favicon request never holds up the redirect, and it stops listening
/// as soon as the redirect arrived: nothing else on the machine can reach it
/// afterwards. The next [`listen`](Self::listen) or [`wait`](Self::wait)
/// (another authorization, a step-up) listens again on the same port.
///
/// For `localhost`, which a browser may resolve to `127.0.0.1` or `::1`, it
/// listens on both, on the same port (on `127.0.0.1` alone where the machine
/// has no IPv6 loopback).
pub struct LoopbackReceiver {
    /// Where to listen: one address, or 127.0.0.1 and ::1 for `localhost`,
    /// all on the same port.
    addrs: Vec<SocketAddr>,
    /// The listening sockets, present while waiting for a redirect.
    listeners: tokio::sync::Mutex<Option<Vec<TcpListener>>>,
    redirect_uri: String,
    timeout: Duration,
    shared: Arc<Shared>,
}

/// What each connection's task needs to judge its request.
struct Shared {
    path: String,
    expected_state: std::sync::Mutex<Option<String>>,
}

/// How long a connection may stay open without sending its request. Browsers
/// open connections before they need them; one that sends nothing in this
/// time is closed without an answer, which a browser handles by opening
/// another.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; more are closed as they arrive, so a local
/// process cannot exhaust the receiver's memory.
const MAX_CONNECTIONS: usize = 64;

/// The receiver's pages (RFC 8252 §7.3: the person lands here in their
/// browser). Small, readable and accessible: a language, a title, one
/// heading, and plain text saying what happened and what to do next. Fixed
/// text only: nothing from the request (no `error_description`, no code) is
/// ever written into a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The redirect carried a code.
    Success,
    /// The person declined (or the server says access was denied).
    Denied,
    /// The server reported another error, or the redirect carried neither.
    Error,
}

/// The pages' one stylesheet, allowed by its hash in the Content-Security-Policy.
const PAGE_STYLE: &str = "body{font:1.125rem/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}h1{font-size:1.5rem;line-height:1.3}";

impl Page {
    fn for_result(result: &AuthorizationCodeResult) -> Page {
        match (&result.code, result.error.as_ref().map(|e| e.error.as_str())) {
            (_, Some("access_denied")) => Page::Denied,
            (Some(_), None) => Page::Success,
            _ => Page::Error,
        }
    }

    fn texts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Page::Success => (
                "Signed in",
                "You are signed in",
                "The application received your authorization. You can close this tab and return to the application.",
            ),
            Page::Denied => (
                "Sign-in cancelled",
                "Sign-in was cancelled",
                "Access was not granted, so the application is not signed in. Close this tab and return to the application. To try again, start signing in from the application.",
            ),
            Page::Error => (
                "Sign-in failed",
                "Sign-in did not complete",
                "The authorization server reported a problem, so the application is not signed in. Close this tab and return to the application, which shows what went wrong, and try again from there.",
            ),
        }
    }

    pub(crate) fn html(self) -> String {
        let (title, heading, text) = self.texts();
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{PAGE_STYLE}</style></head>\n\
<body><main><h1>{heading}</h1><p>{text}</p></main></body></html>\n"
        )
    }
}

/// The Content-Security-Policy of every answer: nothing may load or run,
/// except the pages' own stylesheet.
fn content_security_policy() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(PAGE_STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

impl LoopbackReceiver {
    /// Bind a receiver for `redirect_uri`, which must be `http` on
    /// `127.0.0.1`, `[::1]` or `localhost`; port 0 picks a free port.
    /// `timeout` bounds the wait for the person.
    pub async fn bind(redirect_uri: &str, timeout: Duration) -> Result<Self> {
        let mut url = Url::parse(redirect_uri)
            .map_err(|e| Error::config(format!("loopback redirect URI {redirect_uri:?} is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Error::config("a loopback redirect URI uses http (RFC 8252 §7.3)"));
        }
        let ips: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => vec![ip.into()],
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => vec![ip.into()],
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
            }
            _ => {
                return Err(Error::config(format!(
                    "loopback redirect URI {redirect_uri:?} must be on 127.0.0.1, [::1] or localhost"
                )));
            }
        };
        let (listeners, addrs) = bind_same_port(&ips, url.port().unwrap_or(80)).await?;
        let port = addrs.first().map(|a| a.port()).unwrap_or(0);
        let _ = url.set_port(Some(port));
        let path = if url.path().is_empty() {
            "/".to_string()
        } else {
            url.path().to_string()
        };
        Ok(LoopbackReceiver {
            addrs,
            listeners: tokio::sync::Mutex::new(Some(listeners)),
            redirect_uri: url.to_string(),
            timeout,
            shared: Arc::new(Shared {
                path,
                expected_state: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The redirect URI to register and send, with the bound port.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Only accept a redirect carrying this `state`; others get a 400 and the
    /// receiver keeps waiting (a stray or forged request cannot end the wait).
    pub fn expect_state(&self, state: Option<String>) {
        if let Ok(mut s) = self.shared.expected_state.lock() {
            *s = state;
        }
    }

    /// Listen again, on the same addresses and port, if a redirect already
    /// arrived (no-op otherwise). Call it before sending the person to the
    /// authorization server a second time, so the redirect finds the
    /// receiver listening; [`wait`](Self::wait) does it too, but later.
    pub async fn listen(&self) -> Result<()> {
        let mut listeners = self.listeners.lock().await;
        if listeners.is_none() {
            *listeners = Some(self.listen_again().await?);
        }
        Ok(())
    }

    async fn listen_again(&self) -> Result<Vec<TcpListener>> {
        let mut listeners = Vec::with_capacity(self.addrs.len());
        for addr in &self.addrs {
            listeners.push(TcpListener::bind(addr).await.map_err(|e| {
                Error::handler(
                    Step::Callback,
                    format!("cannot listen on {addr} again for the redirect: {e}"),
                )
            })?);
        }
        Ok(listeners)
    }

    /// Wait for the redirect and return what it carried. Stops listening
    /// once it arrived.
    pub async fn wait(&self) -> Result<AuthorizationCodeResult> {
        let mut held = self.listeners.lock().await;
        let listeners = match held.take() {
            Some(listeners) => listeners,
            None => self.listen_again().await?,
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        // Each connection is served by a task of its own; dropping the set
        // when the wait ends closes the ones still open.
        let mut connections: tokio::task::JoinSet<Option<AuthorizationCodeResult>> = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = accept_any(&listeners) => match accepted {
                    Ok(stream) if connections.len() < MAX_CONNECTIONS => {
                        connections.spawn(serve(stream, self.shared.clone()));
                    }
                    Ok(stream) => drop(stream),
                    Err(e) => tracing::warn!(error = %e, "accept failed on the loopback receiver"),
                },
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Ok(Some(result)) = done {
                        // The listeners are dropped here: the port is closed.
                        return Ok(result);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    // Keep listening: the person may still come back, to a
                    // later wait.
                    *held = Some(listeners);
                    return Err(Error::handler(
                        Step::Callback,
                        format!("no redirect arrived at {} within {:?}", self.redirect_uri, self.timeout),
                    ));
                }
            }
        }
    }
}

/// Listen on every one of `ips` with the same port. Port 0 picks one that is
/// free on all of them. An address the machine does not have (`::1` without
/// IPv6) is left out, as long as one remains.
async fn bind_same_port(ips: &[IpAddr], port: u16) -> Result<(Vec<TcpListener>, Vec<SocketAddr>)> {
    // With port 0, the port picked on the first address may be taken on
    // another: pick again, a few times.
    let attempts = if port == 0 { 8 } else { 1 };
    let mut last_error = None;
    'attempt: for _ in 0..attempts {
        let mut listeners = Vec::with_capacity(ips.len());
        let mut addrs = Vec::with_capacity(ips.len());
        let mut port = port;
        for (i, ip) in ips.iter().enumerate() {
            let addr = SocketAddr::new(*ip, port);
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let bound = listener
                        .local_addr()
                        .map_err(|e| Error::config(format!("cannot read the listening address: {e}")))?;
                    port = bound.port();
                    listeners.push(listener);
                    addrs.push(bound);
                }
                Err(e) if i > 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    last_error = Some(format!(
                        "cannot listen on {addr} for the redirect: {e} (another program holds the port)"
                    ));
                    continue 'attempt;
                }
                Err(e) if i > 0 => {
                    tracing::debug!(address = %addr, error = %e, "no such loopback address here; not listening on it");
                }
                Err(e) => return Err(Error::config(format!("cannot listen on {addr} for the redirect: {e}"))),
            }
        }
        return Ok((listeners, addrs));
    }
    Err(Error::config(
        last_error.unwrap_or_else(|| "cannot listen for the redirect".into()),
    ))
}

/// The next connection on any of `listeners`.
async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<TcpStream> {
    std::future::poll_fn(|cx| {
        for listener in listeners {
            if let std::task::Poll::Ready(accepted) = listener.poll_accept(cx) {
                return std::task::Poll::Ready(accepted.map(|(stream, _)| stream));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Serve one connection: answer its request, and return what it carried if
/// it was the redirect.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) -> Option<AuthorizationCodeResult> {
    let head = match tokio::time::timeout(IDLE_CONNECTION_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) if !head.is_empty() => head,
        // Closed, or idle too long, before sending a request: nothing to answer.
        Ok(Ok(_)) | Err(_) => return None,
        Ok(Err(_)) => {
            let _ = respond(&mut stream, &Answer::bad_request("bad request")).await;
            return None;
        }
    };
    let expected = shared.expected_state.lock().ok().and_then(|s| s.clone());
    let answer = answer_request(&head, &shared.path, expected.as_deref());
    let _ = respond(&mut stream, &answer).await;
    answer.result
}

/// What the receiver answers to one request, and what the request carried
/// when it was the redirect.
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    /// Fixed text: nothing of the request is ever written here.
    pub(crate) body: String,
    pub(crate) result: Option<AuthorizationCodeResult>,
}

impl Answer {
    fn bad_request(body: &str) -> Answer {
        Answer {
            code: 400,
            reason: "Bad Request",
            body: body.to_string(),
            result: None,
        }
    }
}

/// Judge one request head (the bytes read from the socket, up to the blank
/// line): only `GET <path>` with the redirect's path, and the expected
/// `state` when one is set, is the redirect.
pub(crate) fn answer_request(head: &[u8], path: &str, expected_state: Option<&str>) -> Answer {
    let head = String::from_utf8_lossy(head);
    let Some(url) = request_target(&head).and_then(|t| Url::parse("http://loopback").and_then(|b| b.join(&t)).ok())
    else {
        return Answer::bad_request("bad request");
    };
    if url.path() != path {
        return Answer {
            code: 404,
            reason: "Not Found",
            body: "not found".into(),
            result: None,
        };
    }
    let result = AuthorizationCodeResult::from_pairs(url.query_pairs());
    if let Some(expected) = expected_state {
        if result.state.as_deref() != Some(expected) {
            return Answer::bad_request("unexpected state");
        }
    }
    Answer {
        code: 200,
        reason: "OK",
        body: Page::for_result(&result).html(),
        result: Some(result),
    }
}

/// The longest request head read; a longer one is answered 400.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Add a chunk read from the socket to `buf`. `Ok(true)` once the head is
/// complete (its blank line arrived); an error when it grows too large.
pub(crate) fn push_head_chunk(buf: &mut Vec<u8>, chunk: &[u8]) -> std::io::Result<bool> {
    buf.extend_from_slice(chunk);
    if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
        return Ok(true);
    }
    if buf.len() > MAX_HEAD_BYTES {
        return Err(std::io::Error::other("request head too large"));
    }
    Ok(false)
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || push_head_chunk(&mut buf, &chunk[..n])? {
            break;
        }
    }
    Ok(buf)
}

fn request_target(head: &str) -> Option<String> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET" && target.starts_with('/')).then(|| target.to_string())
}

/// The bytes of the answer: status line, headers, body.
pub(crate) fn response_bytes(answer: &Answer) -> Vec<u8> {
    let (code, reason, body) = (answer.code, answer.reason, &answer.body);
    let ct = if body.starts_with("<!doctype") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n\
Content-Security-Policy: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        content_security_policy()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

async fn respond(stream: &mut TcpStream, answer: &Answer) -> std::io::Result<()> {
    stream.write_all(&response_bytes(answer)).await?;
    stream.shutdown().await
}

/// The browser for the redirect step and the loopback receiver for the
/// callback step.
pub struct BrowserLoopbackHandler {
    receiver: Arc<LoopbackReceiver>,
}

impl BrowserLoopbackHandler {
    /// Join a bound receiver to the system browser.
    pub fn new(receiver: Arc<LoopbackReceiver>) -> Self {
        BrowserLoopbackHandler { receiver }
    }

    /// The redirect URI to put in the client metadata.
    pub fn redirect_uri(&self) -> &str {
        self.receiver.redirect_uri()
    }
}

#[async_trait]
impl AuthorizationHandler for BrowserLoopbackHandler {
    async fn redirect(&self, authorization_url: &Url) -> Result<()> {
        let state = authorization_url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        self.receiver.expect_state(state);
        // Listening before the browser opens: the redirect may come at once.
        self.receiver.listen().await?;
        open_browser(authorization_url).await
    }

    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        self.receiver.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn receiver_rejects_wrong_state_and_accepts_right_one() {
        let r = Arc::new(
            LoopbackReceiver::bind("http://127.0.0.1:0/callback", Duration::from_secs(5))
                .await
                .unwrap(),
        );
        let uri = Url::parse(r.redirect_uri()).unwrap();
        assert_ne!(uri.port(), Some(0));
        r.expect_state(Some("good".into()));
        let addr = format!("127.0.0.1:{}", uri.port().unwrap());
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait().await })
        };
        assert!(get(&addr, "/other?code=x&state=good").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(&addr, "/callback?code=x&state=evil")
                .await
                .starts_with("HTTP/1.1 400")
        );
        let ok = get(&addr, "/callback?code=abc&state=good&iss=https%3A%2F%2Fas").await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("signed in"));
        let res = waiter.await.unwrap().unwrap();
        assert_eq!(res.code.unwrap().expose(), "abc");
        assert_eq!(res.iss.as_deref(), Some("https://as"));
    }

    #[tokio::test]
    async fn pages_say_what_happened_reflect_nothing_and_carry_security_headers() {
        let cases = [
            ("code=abc&state=s", "You are signed in", "close this tab"),
            (
                "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=s",
                "Sign-in was cancelled",
                "start signing in from the application",
            ),
            (
                "error=server_error&error_description=%3Cb%3Eevil%3C%2Fb%3E&error_uri=https%3A%2F%2Fevil.example&state=s",
                "Sign-in did not complete",
                "try again",
            ),
            ("state=s", "Sign-in did not complete", "try again"),
        ];
        for (query, heading, next) in cases {
            let r = Arc::new(
                LoopbackReceiver::bind("http://127.0.0.1:0/cb", Duration::from_secs(5))
                    .await
                    .unwrap(),
            );
            r.expect_state(Some("s".into()));
            let addr = format!("127.0.0.1:{}", Url::parse(r.redirect_uri()).unwrap().port().unwrap());
            let waiter = {
                let r = r.clone();
                tokio::spawn(async move { r.wait().await })
            };
            let answer = get(&addr, &format!("/cb?{query}")).await;
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            let head = head.to_ascii_lowercase();
            for h in [
                "cache-control: no-store",
                "x-content-type-options: nosniff",
                "referrer-policy: no-referrer",
                "content-security-policy: default-src 'none'; style-src 'sha256-",
                "content-type: text/html; charset=utf-8",
            ] {
                assert!(head.contains(h), "{query}: no {h:?} in {head}");
            }
            assert!(body.contains("<html lang=\"en\">"), "{body}");
            assert_eq!(body.matches("<h1>").count(), 1, "{body}");
            assert!(body.contains(&format!("<h1>{heading}</h1>")), "{query}: {body}");
            assert!(body.contains(next), "{query}: {body}");
            for leaked in ["script", "alert", "evil", "abc"] {
                assert!(!body.contains(leaked), "{query}: {leaked:?} reflected: {body}");
            }
            assert!(!body.contains("<script"));
            waiter.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn receiver_times_out_and_refuses_non_loopback() {
        let r = LoopbackReceiver::bind("http://localhost:0/cb", Duration::from_millis(100))
            .await
            .unwrap();
        assert!(r.redirect_uri().starts_with("http://localhost:"));
        let e = r.wait().await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Handler);
        assert!(
            LoopbackReceiver::bind("http://example.com:0/cb", Duration::from_secs(1))
                .await
                .is_err()
        );
        assert!(
            LoopbackReceiver::bind("https://127.0.0.1:0/cb", Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
