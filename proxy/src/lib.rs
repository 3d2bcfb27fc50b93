//! A stdio bridge to an OAuth-protected MCP server.
//!
//! A host that only launches MCP servers as local processes speaks JSON-RPC,
//! one message per line, on the bridge's stdin and stdout; the bridge speaks
//! HTTP to the remote server and lets [`OAuthClientProvider`] authorize every
//! request (the flow on the first 401, refresh, step-up on 403, DPoP), so the
//! host never sees OAuth. Stdout carries nothing but protocol; logs go to
//! stderr through `tracing`.
//!
//! Transports:
//! - **Streamable HTTP** (MCP 2025-03-26 and later): each message is POSTed;
//!   the answer is JSON or a server-sent event stream, relayed as it comes
//!   (server requests and notifications included). The `Mcp-Session-Id` the
//!   server assigns is kept and sent back, the negotiated
//!   `MCP-Protocol-Version` too, and a GET stream carries what the server
//!   sends on its own. A message that carries its protocol version in
//!   `params._meta` (the 2026-07-28 stateless wire) gets it as
//!   `MCP-Protocol-Version`, with `Mcp-Method` and `Mcp-Name`.
//! - **HTTP+SSE** (MCP 2024-11-05), as a fallback: a GET stream whose first
//!   event names the endpoint to POST messages to; every answer comes on
//!   the stream.
//!
//! Messages are forwarded byte for byte when they are one line already;
//! the bridge reads only what it needs (the method, the id, the name) and
//! answers a request it could not deliver with a JSON-RPC error, so the host
//! is never left waiting.

pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mcp_oauth_client::{OAuthClientProvider, RequestInfo, ResponseAction, ResponseInfo};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use url::Url;

/// Which MCP transport to speak, and in which order to try them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportStrategy {
    /// Streamable HTTP; HTTP+SSE when the server answers the first POST with 404 or 405.
    #[default]
    HttpFirst,
    /// HTTP+SSE; Streamable HTTP when the server refuses the GET (400, 404,
    /// 405, 406: a Streamable HTTP server answers a GET without a session so).
    SseFirst,
    /// Streamable HTTP only.
    HttpOnly,
    /// HTTP+SSE only.
    SseOnly,
}

impl std::str::FromStr for TransportStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http-first" => Ok(Self::HttpFirst),
            "sse-first" => Ok(Self::SseFirst),
            "http-only" => Ok(Self::HttpOnly),
            "sse-only" => Ok(Self::SseOnly),
            _ => Err(format!(
                "unknown transport {s:?} (http-first, sse-first, http-only, sse-only)"
            )),
        }
    }
}

/// What the bridge needs.
pub struct ProxyConfig {
    /// The MCP server's URL.
    pub server_url: Url,
    pub transport: TransportStrategy,
    /// Headers sent with every request (the host's own: an API key, a tenant).
    pub headers: HeaderMap,
    /// Authorizes the requests; `None` sends them as they are.
    pub provider: Option<OAuthClientProvider>,
    /// Sends them; `None` builds one (no redirects followed, the system's roots).
    pub client: Option<reqwest::Client>,
    /// The largest message accepted from either side, in bytes.
    pub max_message: usize,
}

impl ProxyConfig {
    pub fn new(server_url: Url) -> ProxyConfig {
        ProxyConfig {
            server_url,
            transport: TransportStrategy::default(),
            headers: HeaderMap::new(),
            provider: None,
            client: None,
            max_message: 16 * 1024 * 1024,
        }
    }
}

/// Why the bridge stopped.
#[derive(Debug)]
pub struct ProxyError(pub String);

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyError {}

/// A failure to deliver one message, told to the host as a JSON-RPC error.
#[derive(Debug)]
struct Failed {
    message: String,
    status: Option<u16>,
}

impl Failed {
    fn new(message: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            status: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Mode {
    /// Not decided yet (nothing sent).
    Unknown,
    Streamable,
    /// HTTP+SSE: messages go to this endpoint.
    Sse(Url),
}

struct State {
    mode: Mode,
    session: Option<String>,
    protocol_version: Option<String>,
    get_stream: bool,
}

struct Bridge {
    cfg: ProxyConfig,
    client: reqwest::Client,
    out: mpsc::Sender<String>,
    state: Mutex<State>,
    /// Ends the bridge when the server's SSE stream (HTTP+SSE) closes.
    closed: tokio::sync::Notify,
    background: std::sync::Mutex<JoinSet<()>>,
}

const JSONRPC_BRIDGE_ERROR: i64 = -32000;

/// Run the bridge until `input` ends (the host closed stdin) or the server
/// closes an HTTP+SSE stream. Messages still being answered when the input
/// ends are finished first; then the session is ended with a DELETE.
pub async fn run<R, W>(cfg: ProxyConfig, input: R, output: W) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let client = match cfg.client.clone() {
        Some(c) => c,
        None => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProxyError(format!("cannot build the HTTP client: {e}")))?,
    };
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(line) = rx.recv().await {
            if output.write_all(line.as_bytes()).await.is_err()
                || output.write_all(b"\n").await.is_err()
                || output.flush().await.is_err()
            {
                tracing::warn!("stdout is closed: the host stopped reading");
                break;
            }
        }
    });
    let max = cfg.max_message;
    let bridge = Arc::new(Bridge {
        cfg,
        client,
        out: tx,
        state: Mutex::new(State {
            mode: Mode::Unknown,
            session: None,
            protocol_version: None,
            get_stream: false,
        }),
        closed: tokio::sync::Notify::new(),
        background: std::sync::Mutex::new(JoinSet::new()),
    });

    let mut reader = BufReader::new(input);
    let mut tasks = JoinSet::new();
    let mut first = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(max as u64 + 1);
        let read = tokio::select! {
            r = limited.read_until(b'\n', &mut line) => r,
            _ = bridge.closed.notified() => {
                tracing::warn!("the server closed its event stream: stopping");
                break;
            }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("reading stdin: {e}");
                break;
            }
        }
        if line.len() > max && !line.ends_with(b"\n") {
            tracing::error!("a message on stdin is larger than {max} bytes: stopping");
            break;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(_) => {
                tracing::warn!("dropped a line on stdin that is not UTF-8");
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("dropped a line on stdin that is not JSON: {e}");
                continue;
            }
        };
        let body = Bytes::copy_from_slice(text.as_bytes());
        if first {
            // The first message decides the transport: wait for it.
            first = false;
            bridge.clone().deliver(msg, body).await;
        } else {
            tasks.spawn(bridge.clone().deliver(msg, body));
        }
    }
    while tasks.join_next().await.is_some() {}
    bridge.end_session().await;
    bridge.background.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    let Bridge { out, .. } = match Arc::try_unwrap(bridge) {
        Ok(b) => b,
        Err(b) => {
            // A background task still holds it: stop waiting for it.
            drop(b);
            return finish(writer).await;
        }
    };
    drop(out);
    finish(writer).await
}

async fn finish(writer: tokio::task::JoinHandle<()>) -> Result<(), ProxyError> {
    match tokio::time::timeout(Duration::from_secs(5), writer).await {
        Ok(_) => Ok(()),
        Err(_) => Err(ProxyError("stdout did not drain within 5 s".into())),
    }
}

/// What the bridge reads of a message.
struct Shape<'a> {
    method: Option<&'a str>,
    id: Option<&'a Value>,
}

fn shape(msg: &Value) -> Shape<'_> {
    Shape {
        method: msg.get("method").and_then(Value::as_str),
        id: msg.get("id").filter(|_| msg.get("method").is_some()),
    }
}

/// The protocol version a stateless-wire message carries in `params._meta`.
fn meta_protocol_version(msg: &Value) -> Option<&str> {
    msg.get("params")?
        .get("_meta")?
        .get("io.modelcontextprotocol/protocolVersion")?
        .as_str()
}

/// What `Mcp-Name` mirrors: the tool or prompt's name, the resource's URI.
fn mcp_name(msg: &Value) -> Option<&str> {
    let params = msg.get("params")?;
    match msg.get("method")?.as_str()? {
        "tools/call" | "prompts/get" => params.get("name")?.as_str(),
        "resources/read" => params.get("uri")?.as_str(),
        _ => None,
    }
}

fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 1024 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Bridge {
    async fn write(&self, line: String) {
        let _ = self.out.send(line).await;
    }

    /// Write a message from the server: as it is when it is one line of
    /// JSON, else re-serialized on one line.
    async fn relay(&self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !text.contains(['\n', '\r']) && serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() {
            self.write(text.to_string()).await;
            return;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.write(v.to_string()).await,
            Err(e) => tracing::warn!("dropped a message from the server that is not JSON: {e}"),
        }
    }

    async fn fail(&self, id: Option<&Value>, f: Failed) {
        tracing::warn!("{}", f.message);
        let Some(id) = id else { return };
        let mut error = json!({"code": JSONRPC_BRIDGE_ERROR, "message": f.message});
        if let Some(s) = f.status {
            error["data"] = json!({"httpStatus": s});
        }
        self.write(json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string())
            .await;
    }

    async fn deliver(self: Arc<Self>, msg: Value, body: Bytes) {
        let s = shape(&msg);
        let result = self.clone().deliver_inner(&msg, body).await;
        if let Err(f) = result {
            let what = s.method.unwrap_or("a response");
            self.fail(
                s.id,
                Failed {
                    message: format!("mcp-oauth proxy: {what}: {}", f.message),
                    status: f.status,
                },
            )
            .await;
        }
    }

    async fn deliver_inner(self: Arc<Self>, msg: &Value, body: Bytes) -> Result<(), Failed> {
        let mode = self.state.lock().await.mode.clone();
        match mode {
            Mode::Streamable => self.post_streamable(msg, body, false).await,
            Mode::Sse(endpoint) => self.post_sse(&endpoint, body).await,
            Mode::Unknown => match self.cfg.transport {
                TransportStrategy::HttpOnly => self.post_streamable(msg, body, false).await,
                TransportStrategy::HttpFirst => self.post_streamable(msg, body, true).await,
                TransportStrategy::SseOnly | TransportStrategy::SseFirst => match self.clone().open_sse().await {
                    Ok(endpoint) => self.post_sse(&endpoint, body).await,
                    Err(f)
                        if self.cfg.transport == TransportStrategy::SseFirst
                            && matches!(f.status, Some(400 | 404 | 405 | 406)) =>
                    {
                        tracing::info!("no HTTP+SSE endpoint (HTTP {:?}): trying Streamable HTTP", f.status);
                        self.post_streamable(msg, body, false).await
                    }
                    Err(f) => Err(f),
                },
            },
        }
    }

    /// Send a request, authorized: the provider's headers, and on a 401 or
    /// 403 what the provider says (refresh, the flow, step-up), once, plus
    /// one more round for a DPoP nonce challenge.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &Url,
        extra: &HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, Failed> {
        let url_s = url.as_str();
        let mut auth = match &self.cfg.provider {
            Some(p) => p
                .headers(&RequestInfo::new(method.as_str(), url_s))
                .await
                .map_err(|e| Failed::new(format!("authorization: {e}")))?,
            None => None,
        };
        let mut rounds = 0;
        loop {
            let mut rb = self
                .client
                .request(method.clone(), url.clone())
                .headers(self.cfg.headers.clone())
                .headers(extra.clone());
            if let Some(h) = &auth {
                for (name, value) in h.iter() {
                    rb = rb.header(name, value);
                }
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = rb.send().await.map_err(|e| Failed::new(describe(&e, url)))?;
            let Some(provider) = &self.cfg.provider else {
                return Ok(resp);
            };
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            if !(status == 401 || status == 403) {
                provider.observe_response(url_s, &headers);
                return Ok(resp);
            }
            let info = ResponseInfo::new(status, &headers);
            if rounds >= 2 || (rounds == 1 && !info.is_dpop_nonce_challenge()) {
                return Ok(resp);
            }
            let request = RequestInfo {
                authorization: auth.as_ref().map(|h| h.authorization()),
                ..RequestInfo::new(method.as_str(), url_s)
            };
            match provider.handle_response(&request, &info).await {
                Ok(ResponseAction::Retry(h)) => {
                    tracing::debug!("authorized: sending the request again");
                    auth = Some(h);
                    rounds += 1;
                }
                Ok(ResponseAction::Done) => return Ok(resp),
                Err(e) => {
                    return Err(Failed {
                        message: format!("authorization: {e}"),
                        status: Some(status),
                    });
                }
            }
        }
    }

    async fn post_streamable(self: Arc<Self>, msg: &Value, body: Bytes, may_fall_back: bool) -> Result<(), Failed> {
        let s = shape(msg);
        let url = self.cfg.server_url.clone();
        let mut extra = HeaderMap::new();
        extra.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        extra.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let stateless_version = meta_protocol_version(msg).filter(|v| header_safe(v));
        {
            let st = self.state.lock().await;
            if let Some(sid) = st.session.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                extra.insert("mcp-session-id", sid);
            }
            let version = stateless_version.or(st.protocol_version.as_deref());
            if let Some(v) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
                extra.insert("mcp-protocol-version", v);
            }
        }
        if stateless_version.is_some() {
            if let Some(m) = s
                .method
                .filter(|m| header_safe(m))
                .and_then(|m| HeaderValue::from_str(m).ok())
            {
                extra.insert("mcp-method", m);
            }
            if let Some(n) = mcp_name(msg)
                .filter(|n| header_safe(n))
                .and_then(|n| HeaderValue::from_str(n).ok())
            {
                extra.insert("mcp-name", n);
            }
        }
        let resp = self
            .send(reqwest::Method::POST, &url, &extra, Some(body.clone()))
            .await?;
        let status = resp.status().as_u16();
        if may_fall_back && matches!(status, 404 | 405) {
            tracing::info!("the server answered the first POST with HTTP {status}: trying HTTP+SSE");
            let endpoint = self.clone().open_sse().await?;
            return self.post_sse(&endpoint, body).await;
        }
        {
            let mut st = self.state.lock().await;
            if matches!(st.mode, Mode::Unknown) && resp.status().is_success() {
                st.mode = Mode::Streamable;
            }
        }
        if status == 404 && self.state.lock().await.session.is_some() {
            self.state.lock().await.session = None;
            return Err(Failed {
                message: "the server no longer knows the session (HTTP 404): initialize again".into(),
                status: Some(404),
            });
        }
        if !resp.status().is_success() {
            return Err(http_failure(resp).await);
        }
        if s.method == Some("initialize") {
            if let Some(sid) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                if header_safe(sid) {
                    self.state.lock().await.session = Some(sid.to_string());
                } else {
                    tracing::warn!("ignored an Mcp-Session-Id that is not visible ASCII");
                }
            }
        }
        if status == 202 || status == 204 {
            return Ok(());
        }
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        if is_sse {
            self.pump(resp, |b, ev| async move {
                if s_is_message(&ev.event) {
                    b.remember_version(&ev.data).await;
                    b.relay(&ev.data).await;
                }
            })
            .await?;
        } else {
            let text = read_bounded(resp, self.cfg.max_message).await?;
            self.remember_version(&text).await;
            self.relay(&text).await;
        }
        if s.method == Some("notifications/initialized") {
            self.clone().start_get_stream().await;
        }
        Ok(())
    }

    /// After `initialize`, keep the negotiated version for the
    /// `MCP-Protocol-Version` header of later requests.
    async fn remember_version(&self, text: &str) {
        if !text.contains("protocolVersion") {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(pv) = v
            .get("result")
            .and_then(|r| r.get("protocolVersion"))
            .and_then(Value::as_str)
            .filter(|pv| header_safe(pv))
        {
            self.state.lock().await.protocol_version = Some(pv.to_string());
        }
    }

    /// Read a server-sent event stream to its end, handing each event to `each`.
    async fn pump<F, Fut>(self: &Arc<Self>, resp: reqwest::Response, each: F) -> Result<(), Failed>
    where
        F: Fn(Arc<Bridge>, sse::Event) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut parser = sse::Parser::new(self.cfg.max_message);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Failed::new(format!("the server's event stream broke: {e}")))?;
            let events = parser
                .feed(&chunk)
                .map_err(|e| Failed::new(format!("the server's event stream: {e}")))?;
            for ev in events {
                each(self.clone(), ev).await;
            }
        }
        Ok(())
    }

    /// The GET stream for what the server sends on its own (stateful
    /// Streamable HTTP). A server without one answers 405.
    async fn start_get_stream(self: Arc<Self>) {
        {
            let mut st = self.state.lock().await;
            if st.get_stream || !matches!(st.mode, Mode::Streamable) {
                return;
            }
            if st.protocol_version.as_deref().is_some_and(|v| v >= "2026-07-28") {
                return; // the stateless wire has no GET stream
            }
            st.get_stream = true;
        }
        let bridge = self.clone();
        let task = async move {
            let mut last_id: Option<String> = None;
            let mut failures = 0u32;
            while failures < 5 {
                let mut extra = HeaderMap::new();
                extra.insert(reqwest::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
                {
                    let st = bridge.state.lock().await;
                    if let Some(sid) = st.session.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                        extra.insert("mcp-session-id", sid);
                    }
                    if let Some(v) = st
                        .protocol_version
                        .as_deref()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                    {
                        extra.insert("mcp-protocol-version", v);
                    }
                }
                if let Some(id) = last_id.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    extra.insert("last-event-id", id);
                }
                let url = bridge.cfg.server_url.clone();
                let resp = match bridge.send(reqwest::Method::GET, &url, &extra, None).await {
                    Ok(r) => r,
                    Err(f) => {
                        tracing::debug!("GET stream: {}", f.message);
                        failures += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if resp.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
                    tracing::debug!("the server offers no GET stream");
                    return;
                }
                if !resp.status().is_success() {
                    tracing::debug!("GET stream: HTTP {}", resp.status());
                    failures += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                failures = 0;
                let ids = Arc::new(std::sync::Mutex::new(None::<String>));
                let seen = ids.clone();
                let _ = bridge
                    .pump(resp, move |b, ev| {
                        let seen = seen.clone();
                        async move {
                            if ev.id.is_some() {
                                *seen.lock().unwrap_or_else(|p| p.into_inner()) = ev.id.clone();
                            }
                            if s_is_message(&ev.event) {
                                b.relay(&ev.data).await;
                            }
                        }
                    })
                    .await;
                last_id = ids.lock().unwrap_or_else(|p| p.into_inner()).clone().or(last_id);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        self.background.lock().unwrap_or_else(|p| p.into_inner()).spawn(task);
    }

    /// HTTP+SSE: open the stream, wait for its `endpoint` event, and relay
    /// every later event to the host. The endpoint must be on the server's origin.
    async fn open_sse(self: Arc<Self>) -> Result<Url, Failed> {
        let mut extra = HeaderMap::new();
        extra.insert(reqwest::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        let url = self.cfg.server_url.clone();
        let resp = self.send(reqwest::Method::GET, &url, &extra, None).await?;
        if !resp.status().is_success() {
            return Err(http_failure(resp).await);
        }
        let (tx, rx) = oneshot::channel::<Result<Url, Failed>>();
        let bridge = self.clone();
        let task = async move {
            let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
            let give = tx.clone();
            let server = bridge.cfg.server_url.clone();
            let outcome = bridge
                .pump(resp, move |b, ev| {
                    let give = give.clone();
                    let server = server.clone();
                    async move {
                        if ev.event == "endpoint" {
                            let Some(tx) = give.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                                return;
                            };
                            let endpoint = server.join(ev.data.trim()).map_err(|e| {
                                Failed::new(format!("the server's endpoint event is not a URL: {e}"))
                            });
                            let endpoint = endpoint.and_then(|e| {
                                if e.origin() == server.origin() {
                                    Ok(e)
                                } else {
                                    Err(Failed::new(
                                        "the server's endpoint event names another origin: refused (tokens stay with the server)",
                                    ))
                                }
                            });
                            if let Ok(e) = &endpoint {
                                b.state.lock().await.mode = Mode::Sse(e.clone());
                            }
                            let _ = tx.send(endpoint);
                        } else if s_is_message(&ev.event) {
                            b.relay(&ev.data).await;
                        }
                    }
                })
                .await;
            if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(Err(Failed::new(
                    "the server's event stream ended before naming an endpoint",
                )));
            }
            if let Err(f) = outcome {
                tracing::warn!("{}", f.message);
            }
            bridge.closed.notify_one();
        };
        self.background.lock().unwrap_or_else(|p| p.into_inner()).spawn(task);
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Failed::new("the server's event stream ended before naming an endpoint")),
            Err(_) => Err(Failed::new("the server's event stream named no endpoint within 60 s")),
        }
    }

    async fn post_sse(&self, endpoint: &Url, body: Bytes) -> Result<(), Failed> {
        let mut extra = HeaderMap::new();
        extra.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let resp = self.send(reqwest::Method::POST, endpoint, &extra, Some(body)).await?;
        if !resp.status().is_success() {
            return Err(http_failure(resp).await);
        }
        Ok(())
    }

    /// End a Streamable HTTP session (the server may refuse: 405).
    async fn end_session(&self) {
        let sid = self.state.lock().await.session.clone();
        let Some(sid) = sid.and_then(|s| HeaderValue::from_str(&s).ok()) else {
            return;
        };
        let mut extra = HeaderMap::new();
        extra.insert("mcp-session-id", sid);
        let url = self.cfg.server_url.clone();
        let ended = tokio::time::timeout(
            Duration::from_secs(5),
            self.send(reqwest::Method::DELETE, &url, &extra, None),
        )
        .await;
        tracing::debug!(
            "ended the session: {}",
            match ended {
                Ok(Ok(r)) => format!("HTTP {}", r.status()),
                Ok(Err(f)) => f.message,
                Err(_) => "no answer within 5 s".into(),
            }
        );
    }
}

fn s_is_message(event: &str) -> bool {
    event == "message"
}

/// Read a body, refusing more than `max` bytes.
async fn read_bounded(resp: reqwest::Response, max: usize) -> Result<String, Failed> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failed::new(format!("reading the server's answer: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(Failed::new(format!("the server's answer is larger than {max} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| Failed::new("the server's answer is not UTF-8"))
}

/// An HTTP error as the host reads it: the status and the start of the
/// body, on one line of visible characters.
async fn http_failure(resp: reqwest::Response) -> Failed {
    let status = resp.status();
    let body = read_bounded(resp, 64 * 1024).await.unwrap_or_default();
    let snippet: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let snippet = snippet.trim();
    Failed {
        message: if snippet.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {snippet}")
        },
        status: Some(status.as_u16()),
    }
}

fn describe(e: &reqwest::Error, url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    if e.is_connect() {
        format!("cannot connect to {origin}")
    } else if e.is_timeout() {
        format!("{origin} did not answer in time")
    } else {
        format!("request to {origin} failed: {e}")
    }
}

/// Expand `${NAME}` in a header value from the environment (an unset name
/// is an error: a header silently sent empty would be worse).
pub fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated ${{ in {value:?}"));
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("not an environment variable name: {name:?}"));
        }
        let v = std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a `--header "Name: value"` argument (with `${ENV}` expanded).
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("a header is \"Name: value\", not {arg:?}"))?;
    let name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("not a header name: {:?}", name.trim()))?;
    let value = expand_env(value.trim())?;
    let value =
        HeaderValue::from_str(&value).map_err(|_| format!("the value of {name} is not a valid header value"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_expand_the_environment_and_refuse_what_is_unset() {
        // SAFETY: a test-only variable, set before any thread reads it.
        unsafe { std::env::set_var("MCP_OAUTH_PROXY_TEST_KEY", "k-123") };
        let (n, v) = parse_header("X-Api-Key: Bearer ${MCP_OAUTH_PROXY_TEST_KEY}").unwrap();
        assert_eq!(n.as_str(), "x-api-key");
        assert_eq!(v.to_str().unwrap(), "Bearer k-123");
        assert!(
            parse_header("X-A: ${MCP_OAUTH_PROXY_TEST_UNSET_NAME}")
                .unwrap_err()
                .contains("not set")
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("X-A: ${oops").is_err());
    }

    #[test]
    fn the_stateless_wire_is_read_from_the_message() {
        let m = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        assert_eq!(meta_protocol_version(&m), Some("2026-07-28"));
        assert_eq!(mcp_name(&m), Some("echo"));
        assert!(!header_safe("a\r\nb"));
    }
}
