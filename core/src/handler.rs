//! The two moments a person is involved: sending them to the authorization
//! URL (the redirect step) and receiving them back (the callback step).
//!
//! Built-ins: [`open_browser`] (the system browser, or the URL printed when
//! there is none), and [`LoopbackReceiver`], an RFC 8252 §7.3 loopback
//! redirect receiver. [`BrowserLoopbackHandler`] joins the two.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
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
pub struct LoopbackReceiver {
    listener: tokio::sync::Mutex<TcpListener>,
    redirect_uri: String,
    path: String,
    timeout: Duration,
    expected_state: std::sync::Mutex<Option<String>>,
}

const SUCCESS_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed in</title></head>\
<body style=\"font-family:sans-serif;margin:3em\"><h1>You are signed in</h1>\
<p>You can close this window and return to the application.</p></body></html>";

const FAILURE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
<body style=\"font-family:sans-serif;margin:3em\"><h1>Sign-in did not complete</h1>\
<p>The authorization server reported an error. Return to the application for details.</p></body></html>";

impl LoopbackReceiver {
    /// Bind a receiver for `redirect_uri`, which must be `http` on
    /// `127.0.0.1`, `[::1]` or `localhost` (bound as 127.0.0.1); port 0 picks
    /// a free port. `timeout` bounds the wait for the person.
    pub async fn bind(redirect_uri: &str, timeout: Duration) -> Result<Self> {
        let mut url = Url::parse(redirect_uri)
            .map_err(|e| Error::config(format!("loopback redirect URI {redirect_uri:?} is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Error::config("a loopback redirect URI uses http (RFC 8252 §7.3)"));
        }
        let ip: std::net::IpAddr = match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => ip.into(),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => ip.into(),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => [127, 0, 0, 1].into(),
            _ => {
                return Err(Error::config(format!(
                    "loopback redirect URI {redirect_uri:?} must be on 127.0.0.1, [::1] or localhost"
                )));
            }
        };
        let port = url.port().unwrap_or(80);
        let listener = TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .map_err(|e| Error::config(format!("cannot listen on {ip}:{port} for the redirect: {e}")))?;
        let actual = listener
            .local_addr()
            .map_err(|e| Error::config(format!("cannot read the listening address: {e}")))?;
        let _ = url.set_port(Some(actual.port()));
        let path = if url.path().is_empty() {
            "/".to_string()
        } else {
            url.path().to_string()
        };
        Ok(LoopbackReceiver {
            listener: tokio::sync::Mutex::new(listener),
            redirect_uri: url.to_string(),
            path,
            timeout,
            expected_state: std::sync::Mutex::new(None),
        })
    }

    /// The redirect URI to register and send, with the bound port.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Only accept a redirect carrying this `state`; others get a 400 and the
    /// receiver keeps waiting (a stray or forged request cannot end the wait).
    pub fn expect_state(&self, state: Option<String>) {
        if let Ok(mut s) = self.expected_state.lock() {
            *s = state;
        }
    }

    /// Wait for the redirect and return what it carried.
    pub async fn wait(&self) -> Result<AuthorizationCodeResult> {
        let listener = self.listener.lock().await;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
            let (mut stream, _) = match accepted {
                Err(_) => {
                    return Err(Error::handler(
                        Step::Callback,
                        format!("no redirect arrived at {} within {:?}", self.redirect_uri, self.timeout),
                    ));
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "accept failed on the loopback receiver");
                    continue;
                }
                Ok(Ok(s)) => s,
            };
            let request = match tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream)).await {
                Ok(Ok(r)) => r,
                _ => {
                    let _ = respond(&mut stream, 400, "Bad Request", "bad request").await;
                    continue;
                }
            };
            let Some(target) = request_target(&request) else {
                let _ = respond(&mut stream, 400, "Bad Request", "bad request").await;
                continue;
            };
            let Ok(url) = Url::parse("http://loopback").and_then(|b| b.join(&target)) else {
                let _ = respond(&mut stream, 400, "Bad Request", "bad request").await;
                continue;
            };
            if url.path() != self.path {
                let _ = respond(&mut stream, 404, "Not Found", "not found").await;
                continue;
            }
            let result = AuthorizationCodeResult::from_pairs(url.query_pairs());
            let expected = self.expected_state.lock().ok().and_then(|s| s.clone());
            if let Some(exp) = expected {
                if result.state.as_deref() != Some(exp.as_str()) {
                    let _ = respond(&mut stream, 400, "Bad Request", "unexpected state").await;
                    continue;
                }
            }
            let page = if result.error.is_some() {
                FAILURE_PAGE
            } else {
                SUCCESS_PAGE
            };
            let _ = respond(&mut stream, 200, "OK", page).await;
            return Ok(result);
        }
    }
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn request_target(head: &str) -> Option<String> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET" && target.starts_with('/')).then(|| target.to_string())
}

async fn respond(stream: &mut tokio::net::TcpStream, code: u16, reason: &str, body: &str) -> std::io::Result<()> {
    let ct = if body.starts_with("<!doctype") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
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
