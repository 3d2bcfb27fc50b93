//! The bridge against the real peers (oidc-provider and the MCP Python
//! SDK's server): a host writes JSON-RPC lines and reads what comes back,
//! as it would over the bridge's stdin and stdout.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{HeadlessHandler, Peers};
use mcp_oauth_client::{
    FileStorage, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, ProviderConfig, TokenStorage,
};
use mcp_oauth_proxy::{ProxyConfig, TransportStrategy, run};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

const REDIRECT: &str = "http://127.0.0.1:3030/callback";

fn provider(url: &str, storage: Arc<dyn TokenStorage>, person: Arc<HeadlessHandler>) -> OAuthClientProvider {
    let mut meta = OAuthClientMetadata::new(vec![REDIRECT.into()]);
    meta.client_name = Some("proxy tests".into());
    let mut cfg = ProviderConfig::new(url.to_string(), meta);
    cfg.timeout = Duration::from_secs(10);
    OAuthClientProvider::new(cfg, storage, Some(person)).unwrap()
}

/// The host's side of a running bridge.
struct Host {
    stdin: Option<DuplexStream>,
    stdout: Lines<BufReader<DuplexStream>>,
    bridge: tokio::task::JoinHandle<Result<(), mcp_oauth_proxy::ProxyError>>,
}

impl Host {
    fn start(cfg: ProxyConfig) -> Host {
        let (host_in, bridge_in) = tokio::io::duplex(1 << 20);
        let (bridge_out, host_out) = tokio::io::duplex(1 << 20);
        let bridge = tokio::spawn(run(cfg, bridge_in, bridge_out));
        Host {
            stdin: Some(host_in),
            stdout: BufReader::new(host_out).lines(),
            bridge,
        }
    }

    async fn send(&mut self, msg: Value) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(format!("{msg}\n").as_bytes()).await.unwrap();
    }

    /// The next line on stdout: one JSON-RPC message, nothing else.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .expect("no message from the bridge within 30 s")
            .unwrap()
            .expect("the bridge closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carried a line that is not JSON ({e}): {line}"))
    }

    /// The response to request `id` (server notifications before it are skipped).
    async fn response(&mut self, id: i64) -> Value {
        loop {
            let m = self.next().await;
            if m.get("id") == Some(&json!(id)) && m.get("method").is_none() {
                return m;
            }
        }
    }

    async fn close(mut self) {
        drop(self.stdin.take());
        let r = tokio::time::timeout(Duration::from_secs(30), self.bridge)
            .await
            .expect("the bridge did not stop after stdin closed");
        r.unwrap().unwrap();
        // Nothing more on stdout.
        assert!(self.stdout.next_line().await.unwrap().is_none());
    }
}

fn initialize(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "proxy-test-host", "version": "0"}}})
}

fn text_of(resp: &Value) -> String {
    resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A whole session as a stdio host runs it: initialize, initialized,
/// tools/list, tools/call; the first request meets a 401 and the bridge
/// logs in.
async fn session(peer_args: &[&str], transport: TransportStrategy) -> (Peers, Arc<HeadlessHandler>) {
    let peers = Peers::start(peer_args);
    let person = Arc::new(HeadlessHandler::default());
    let mut cfg = ProxyConfig::new(peers.mcp_url.parse().unwrap());
    cfg.transport = transport;
    cfg.provider = Some(provider(&peers.mcp_url, Arc::new(MemoryStorage::new()), person.clone()));
    let mut host = Host::start(cfg);
    host.send(initialize(1)).await;
    let init = host.response(1).await;
    assert!(init["result"]["protocolVersion"].is_string(), "initialize: {init}");
    host.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    host.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let tools = host.response(2).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: {tools}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    host.send(json!({"jsonrpc": "2.0", "id": "three", "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "over the bridge"}}}))
        .await;
    let call = loop {
        let m = host.next().await;
        if m["id"] == json!("three") {
            break m;
        }
    };
    assert_eq!(text_of(&call), "over the bridge", "{call}");
    host.close().await;
    assert_eq!(person.redirects.load(Ordering::SeqCst), 1, "one log-in");
    (peers, person)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_with_event_stream_answers_and_a_session() {
    let (peers, _) = session(&[], TransportStrategy::HttpFirst).await;
    assert_eq!(peers.authorizations().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_stateless_with_json_answers() {
    session(&["--json-response", "--stateless"], TransportStrategy::HttpOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sse_when_the_server_has_no_streamable_http() {
    // The server speaks only the 2024-11-05 transport: the first POST gets
    // 405, and the bridge falls back to GET /sse and its endpoint.
    session(&["--sse"], TransportStrategy::HttpFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_first_and_sse_only() {
    session(&["--sse"], TransportStrategy::SseOnly).await;
    session(&[], TransportStrategy::SseFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_on_403_is_invisible_to_the_host() {
    let peers = Peers::start(&["--json-response"]);
    let person = Arc::new(HeadlessHandler::default());
    let mut cfg = ProxyConfig::new(peers.mcp_url.parse().unwrap());
    cfg.provider = Some(provider(&peers.mcp_url, Arc::new(MemoryStorage::new()), person.clone()));
    let mut host = Host::start(cfg);
    host.send(initialize(1)).await;
    host.response(1).await;
    host.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    host.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "admin_action", "arguments": {}}}))
        .await;
    let r = host.response(2).await;
    assert_eq!(text_of(&r), "admin action done", "{r}");
    host.close().await;
    assert_eq!(
        person.redirects.load(Ordering::SeqCst),
        2,
        "the log-in, then the step-up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_delivered_is_answered_with_an_error() {
    // Nothing listens on the server's port: the host still gets an answer
    // to each request (with its id), and none to a notification.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut cfg = ProxyConfig::new(url.parse().unwrap());
    cfg.transport = TransportStrategy::HttpOnly;
    let mut host = Host::start(cfg);
    host.send(initialize(7)).await;
    let r = host.response(7).await;
    assert_eq!(r["error"]["code"], json!(-32000), "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cannot connect"), "{msg}");
    host.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    host.send(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}))
        .await;
    assert_eq!(host.response(8).await["id"], json!(8));
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_that_are_not_json_are_dropped_and_the_session_goes_on() {
    let peers = Peers::start(&["--json-response"]);
    let person = Arc::new(HeadlessHandler::default());
    let mut cfg = ProxyConfig::new(peers.mcp_url.parse().unwrap());
    cfg.provider = Some(provider(&peers.mcp_url, Arc::new(MemoryStorage::new()), person));
    let mut host = Host::start(cfg);
    host.stdin
        .as_mut()
        .unwrap()
        .write_all(b"not json\n\n{\"half\": \n")
        .await
        .unwrap();
    host.send(initialize(1)).await;
    assert!(host.response(1).await["result"].is_object());
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_at_once_share_one_log_in() {
    // A host often starts the same server twice: two bridges, one file
    // store, no tokens yet; the person is asked once.
    let peers = Peers::start(&["--json-response"]);
    let dir = tempfile::tempdir().unwrap();
    let mut persons = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let person = Arc::new(HeadlessHandler::default());
        persons.push(person.clone());
        let store = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
        let mut cfg = ProxyConfig::new(peers.mcp_url.parse().unwrap());
        cfg.provider = Some(provider(&peers.mcp_url, store, person));
        hosts.push(Host::start(cfg));
    }
    for h in hosts.iter_mut() {
        h.send(initialize(1)).await;
    }
    for h in hosts.iter_mut() {
        assert!(h.response(1).await["result"].is_object());
    }
    for h in hosts {
        h.close().await;
    }
    let asked: usize = persons.iter().map(|p| p.redirects.load(Ordering::SeqCst)).sum();
    assert_eq!(asked, 1, "one person-facing flow for both bridges");
    assert_eq!(peers.authorizations().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_notifications_and_requests_are_relayed_both_ways() {
    // The tool logs (a notification on the request's event stream), then
    // asks the host (an elicitation request); the host answers on stdin and
    // the tool's result carries the answer.
    let peers = Peers::start(&[]);
    let person = Arc::new(HeadlessHandler::default());
    let mut cfg = ProxyConfig::new(peers.mcp_url.parse().unwrap());
    cfg.provider = Some(provider(&peers.mcp_url, Arc::new(MemoryStorage::new()), person));
    let mut host = Host::start(cfg);
    host.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}},
        "clientInfo": {"name": "proxy-test-host", "version": "0"}}}))
        .await;
    host.response(1).await;
    host.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    host.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "ask_host", "arguments": {"question": "which colour?"}}}))
        .await;
    let mut logged = false;
    let result = loop {
        let m = host.next().await;
        match m["method"].as_str() {
            Some("notifications/message") => logged = true,
            Some("elicitation/create") => {
                assert_eq!(m["params"]["message"], "which colour?", "{m}");
                host.send(json!({"jsonrpc": "2.0", "id": m["id"], "result": {
                    "action": "accept", "content": {"answer": "blue"}}}))
                    .await;
            }
            Some(other) => panic!("unexpected request from the server: {other}"),
            None if m["id"] == json!(2) => break m,
            None => panic!("unexpected message: {m}"),
        }
    };
    assert!(logged, "the log notification reached the host");
    assert_eq!(text_of(&result), "the host said: blue", "{result}");
    host.close().await;
}
