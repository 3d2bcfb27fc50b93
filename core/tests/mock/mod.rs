//! A small in-process HTTP server for edge cases no real peer produces on
//! demand: lying metadata, server errors, oversized or slow bodies.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, v: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query, without `?` (empty when none).
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }
}

type Route = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct Mock {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    pub async fn start() -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mock = Mock {
            base,
            routes: Default::default(),
            seen: Default::default(),
        };
        let m = mock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    let Some(seen) = read_request(&mut s).await else { return };
                    m.seen.lock().unwrap().push(seen.clone());
                    let route = m.routes.lock().unwrap().get(&seen.path).cloned();
                    let reply = match route {
                        Some(r) => r(&seen),
                        None => Reply::status(404),
                    };
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&reply.body).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        mock
    }

    pub fn route(&self, path: &str, f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) {
        self.routes.lock().unwrap().insert(path.to_string(), Arc::new(f));
    }

    pub fn fixed(&self, path: &str, reply: Reply) {
        self.route(path, move |_| reply.clone());
    }

    pub fn count(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).count()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A standard authorization server at this origin: metadata, DCR, token
    /// endpoint issuing `at-N` / `rt-N`.
    pub fn standard_as(&self, issuer_path: &str) {
        let issuer = format!("{}{}", self.base, issuer_path);
        let meta = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{}/authorize", self.base),
            "token_endpoint": format!("{}/token", self.base),
            "registration_endpoint": format!("{}/register", self.base),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["read", "write", "offline_access"],
        });
        self.fixed(
            &format!("/.well-known/oauth-authorization-server{issuer_path}"),
            Reply::json(200, meta),
        );
        self.route("/register", |_| {
            Reply::json(
                201,
                serde_json::json!({"client_id": "registered-client", "redirect_uris": ["http://127.0.0.1:9/cb"]}),
            )
        });
        let counter = Arc::new(Mutex::new(0));
        self.route("/token", move |_| {
            let mut n = counter.lock().unwrap();
            *n += 1;
            Reply::json(200, serde_json::json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": format!("rt-{n}")}))
        });
    }

    /// A transport that answers from these routes in-process, without a
    /// socket: for tests that run on paused time (a request through it takes
    /// no time, and a reply's delay is slept on the test's clock).
    pub fn transport(&self) -> Arc<dyn mcp_oauth_client::HttpTransport> {
        Arc::new(InProcess(self.clone()))
    }

    /// Protected resource metadata for `{base}/mcp` naming `as_url`.
    pub fn standard_prm(&self, as_url: &str) {
        let prm = serde_json::json!({"resource": self.url("/mcp"), "authorization_servers": [as_url], "scopes_supported": ["read"]});
        self.fixed("/.well-known/oauth-protected-resource/mcp", Reply::json(200, prm));
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        path,
        query,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

struct InProcess(Mock);

#[async_trait::async_trait]
impl mcp_oauth_client::HttpTransport for InProcess {
    async fn send(
        &self,
        request: mcp_oauth_client::HttpRequest,
    ) -> Result<mcp_oauth_client::HttpResponse, mcp_oauth_client::TransportError> {
        let seen = Seen {
            method: request.method.to_string(),
            path: request.url.path().to_string(),
            query: request.url.query().unwrap_or("").to_string(),
            headers: request
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: String::from_utf8_lossy(request.body.as_deref().unwrap_or(&[])).into_owned(),
        };
        self.0.seen.lock().unwrap().push(seen.clone());
        let route = self.0.routes.lock().unwrap().get(&seen.path).cloned();
        let reply = match route {
            Some(r) => r(&seen),
            None => Reply::status(404),
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        Ok(mcp_oauth_client::HttpResponse {
            status: reply.status,
            headers: reply
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: reply.body,
        })
    }
}
