//! Test support: start the real peers (oidc-provider and the protected MCP
//! server) through `tests/peers/launch.py`, a tiny MCP client, and handlers
//! that play the person's browser.

#![allow(dead_code)]

pub mod redis_servers;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_client::{
    AuthHeaders, AuthorizationCodeResult, AuthorizationHandler, LoopbackReceiver, OAuthClientProvider, RequestInfo,
    ResponseAction, ResponseInfo,
};
use serde_json::{Value, json};
use url::Url;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Running peers; stopped when dropped (the launcher exits when its stdin closes).
pub struct Peers {
    child: Child,
    pub issuer: String,
    pub mcp_url: String,
    pub control_url: String,
    /// The MCP server's test controls (DPoP nonces, counters).
    pub mcp_control_url: String,
}

impl Peers {
    pub fn start(extra_args: &[&str]) -> Peers {
        let root = repo_root();
        let python = std::env::var("MCP_OAUTH_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh first (it installs the test peers)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tests/peers/launch.py"))
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("PEERS_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start tests/peers/launch.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("launcher said {line:?}: {e}"));
        Peers {
            child,
            issuer: info["issuer"].as_str().unwrap().to_string(),
            mcp_url: info["mcp_url"].as_str().unwrap().to_string(),
            control_url: info["control_url"].as_str().unwrap().to_string(),
            mcp_control_url: info["mcp_control_url"].as_str().unwrap().to_string(),
        }
    }

    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/state", self.control_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn authorizations(&self) -> u64 {
        self.state().await["authorizations"].as_u64().unwrap_or(0)
    }

    pub async fn deny_next(&self, error: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/deny-next", self.control_url))
            .json(&json!({"error": error, "error_description": "the person said no"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Arm (or clear, or release) a fault of the authorization server's token
    /// endpoint: `POST /__control/token-fault` with this body.
    pub async fn token_fault(&self, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/token-fault", self.control_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "token-fault {body}: {}", r.status());
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays the person: fetches the authorization URL without following the
/// redirect and returns what the `Location` carries. Counts its uses.
#[derive(Default)]
pub struct HeadlessHandler {
    location: std::sync::Mutex<Option<String>>,
    pub redirects: AtomicUsize,
}

#[async_trait]
impl AuthorizationHandler for HeadlessHandler {
    async fn redirect(&self, url: &Url) -> mcp_oauth_client::Result<()> {
        self.redirects.fetch_add(1, Ordering::SeqCst);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client.get(url.clone()).send().await.unwrap();
        assert!(
            resp.status().is_redirection(),
            "authorization endpoint answered {}",
            resp.status()
        );
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        *self.location.lock().unwrap() = Some(loc);
        Ok(())
    }

    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        let loc = self.location.lock().unwrap().take().expect("callback before redirect");
        AuthorizationCodeResult::from_redirect(&loc)
    }
}

/// A handler that fails the test if the person is ever involved.
pub struct NoPersonHandler;

#[async_trait]
impl AuthorizationHandler for NoPersonHandler {
    async fn redirect(&self, _url: &Url) -> mcp_oauth_client::Result<()> {
        panic!("no authorization was expected");
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        panic!("no authorization was expected");
    }
}

/// The real loopback receiver, with a "browser" that follows the
/// authorization server's redirect to it.
pub struct FollowingBrowser {
    pub receiver: Arc<LoopbackReceiver>,
}

#[async_trait]
impl AuthorizationHandler for FollowingBrowser {
    async fn redirect(&self, url: &Url) -> mcp_oauth_client::Result<()> {
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        self.receiver.expect_state(state);
        let url = url.clone();
        tokio::spawn(async move {
            let _ = reqwest::get(url).await;
        });
        Ok(())
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        self.receiver.wait().await
    }
}

/// A minimal streamable-HTTP MCP client driven by the provider in header mode.
pub struct Mcp {
    pub url: String,
    pub provider: OAuthClientProvider,
    http: reqwest::Client,
    session: std::sync::Mutex<Option<String>>,
    /// Every `DPoP` proof sent, in order.
    pub proofs: std::sync::Mutex<Vec<String>>,
}

pub struct McpReply {
    pub status: u16,
    pub body: Value,
}

impl Mcp {
    pub fn new(url: &str, provider: OAuthClientProvider) -> Mcp {
        Mcp {
            url: url.into(),
            provider,
            http: reqwest::Client::new(),
            session: Default::default(),
            proofs: Default::default(),
        }
    }

    async fn send_once(&self, body: &Value, auth: Option<&AuthHeaders>) -> reqwest::Response {
        let mut rb = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .json(body);
        for (name, value) in auth.iter().flat_map(|h| h.iter()) {
            rb = rb.header(name, value);
        }
        if let Some(proof) = auth.and_then(AuthHeaders::dpop) {
            self.proofs.lock().unwrap().push(proof.to_string());
        }
        if let Some(s) = self.session.lock().unwrap().clone() {
            rb = rb.header("mcp-session-id", s);
        }
        rb.send().await.unwrap()
    }

    /// One JSON-RPC call with the OAuth dance: header, then on 401/403 the
    /// provider's verdict and at most one retry.
    pub async fn call(&self, method: &str, params: Value) -> mcp_oauth_client::Result<McpReply> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let url = self.provider.server_url().to_string();
        let auth = self.provider.headers(&RequestInfo::new("POST", &url)).await?;
        let mut resp = self.send_once(&body, auth.as_ref()).await;
        let status = resp.status().as_u16();
        let headers = header_pairs(&resp);
        if status == 401 || status == 403 {
            let request = RequestInfo::new("POST", &url).with_authorization(auth.as_ref().map(|h| h.authorization()));
            match self
                .provider
                .handle_response(&request, &ResponseInfo::new(status, &headers))
                .await?
            {
                ResponseAction::Retry(h) => {
                    resp = self.send_once(&body, Some(&h)).await;
                    self.provider.observe_response(&url, &header_pairs(&resp));
                }
                ResponseAction::Done => {}
            }
        } else {
            // A DPoP-Nonce may come with any answer.
            self.provider.observe_response(&url, &headers);
        }
        let status = resp.status().as_u16();
        if let Some(s) = resp.headers().get("mcp-session-id") {
            *self.session.lock().unwrap() = Some(s.to_str().unwrap().to_string());
        }
        let text = resp.text().await.unwrap();
        let body = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        } else {
            // SSE: take the last data line.
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(|d| serde_json::from_str(d.trim()).ok())
                .unwrap_or(Value::Null)
        };
        Ok(McpReply { status, body })
    }

    pub async fn initialize(&self) -> mcp_oauth_client::Result<McpReply> {
        let r = self
            .call(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "core-tests", "version": "0"}}),
            )
            .await?;
        if r.status == 200 {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let auth = self.provider.cached_headers("POST", &self.url);
            self.send_once(&note, auth.as_ref()).await;
        }
        Ok(r)
    }

    pub async fn tool(&self, name: &str, args: Value) -> mcp_oauth_client::Result<McpReply> {
        self.call("tools/call", json!({"name": name, "arguments": args})).await
    }
}

/// A response's headers as (name, value) pairs.
fn header_pairs(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect()
}

/// The JOSE header of a JWT, without checking it.
pub fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The claims of a JWT, without checking it (the MCP server checks it).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
