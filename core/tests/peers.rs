//! The core against real peers: node-oidc-provider (an OpenID-certified
//! authorization server configured for MCP) and a protected MCP server built
//! with the MCP Python SDK. See tests/peers/README.md.

mod calls;
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mcp_oauth_client::{
    ErrorKind, FileStorage, LoopbackReceiver, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, ProviderConfig,
    TokenStorage,
};
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:3030/callback";

fn metadata() -> OAuthClientMetadata {
    let mut m = OAuthClientMetadata::new(vec![REDIRECT.into()]);
    m.client_name = Some("core integration tests".into());
    m
}

fn provider(
    peers: &Peers,
    meta: OAuthClientMetadata,
    storage: Arc<dyn TokenStorage>,
    handler: Arc<dyn mcp_oauth_client::AuthorizationHandler>,
) -> OAuthClientProvider {
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), meta);
    cfg.timeout = Duration::from_secs(10);
    OAuthClientProvider::new(cfg, storage, Some(handler)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_then_second_run_from_the_file_store() {
    let peers = Peers::start(&["--json-response"]);
    let dir = tempfile::tempdir().unwrap();

    // First run: discovery, dynamic registration, authorization through the
    // real loopback receiver, token exchange, and the MCP request succeeds.
    let receiver = Arc::new(
        LoopbackReceiver::bind("http://127.0.0.1:0/callback", Duration::from_secs(20))
            .await
            .unwrap(),
    );
    let meta = OAuthClientMetadata::new(vec![receiver.redirect_uri().to_string()]);
    let store = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
    let p = provider(
        &peers,
        meta.clone(),
        store.clone(),
        Arc::new(FollowingBrowser { receiver }),
    );
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    let init = mcp.initialize().await.unwrap();
    assert_eq!(init.status, 200, "{:?}", init.body);
    let tools = mcp.call("tools/list", json!({})).await.unwrap();
    let names: Vec<_> = tools.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"whoami".to_string()), "{names:?}");

    // The token is audience-bound to the MCP server.
    let token = p.current_token().unwrap();
    let claims = jwt_claims(token.access_token.expose());
    assert_eq!(claims["aud"], json!(peers.mcp_url));
    assert!(token.expires_at.is_some());
    assert_eq!(peers.authorizations().await, 1);
    let client_id = store.get_client_info().await.unwrap().unwrap().client_id;

    // Second run: a new provider over the same directory registers nothing
    // and asks no one.
    let store2 = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
    let p2 = provider(&peers, meta, store2.clone(), Arc::new(NoPersonHandler));
    let mcp2 = Mcp::new(&peers.mcp_url, p2.clone());
    let who = mcp2.initialize().await.unwrap();
    assert_eq!(who.status, 200);
    let who = mcp2.tool("whoami", json!({})).await.unwrap();
    assert_eq!(who.status, 200);
    assert!(who.body.to_string().contains(&client_id), "{}", who.body);
    assert_eq!(
        peers.authorizations().await,
        1,
        "the second run must not authorize again"
    );
    assert_eq!(store2.get_client_info().await.unwrap().unwrap().client_id, client_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_refresh_with_rotation() {
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let store = Arc::new(MemoryStorage::new());
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers, metadata(), store.clone(), handler.clone());
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
    let first = p.current_token().unwrap();
    assert!(
        first.refresh_token.is_some(),
        "the AS issues refresh tokens to clients with that grant"
    );

    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        calls::cached(&p).is_none(),
        "an expired token is not served from the hot path"
    );
    let r = mcp.tool("echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let second = p.current_token().unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token, "refresh tokens rotate");
    assert_eq!(
        handler.redirects.load(Ordering::SeqCst),
        1,
        "refresh, not a new authorization"
    );
    assert_eq!(
        store.get_tokens().await.unwrap().unwrap(),
        second,
        "the refreshed tokens are stored"
    );
    let state = peers.state().await;
    assert_eq!(state["token_requests"]["refresh_token"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_refresh_token_recovers_with_a_new_flow() {
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let store = Arc::new(MemoryStorage::new());
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers, metadata(), store.clone(), handler.clone());
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
    let stale = p.current_token().unwrap();
    let client_before = store.get_client_info().await.unwrap().unwrap();

    // Refresh once (rotates), then hand a second provider the stale copy,
    // as a process that missed the rotation would have.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(mcp.tool("echo", json!({"text": "a"})).await.unwrap().status, 200);

    let stale_store = Arc::new(MemoryStorage::new());
    stale_store.set_tokens(stale.clone()).await.unwrap();
    stale_store.set_client_info(client_before.clone()).await.unwrap();
    let handler2 = Arc::new(HeadlessHandler::default());
    let p2 = provider(&peers, metadata(), stale_store.clone(), handler2.clone());
    let mcp2 = Mcp::new(&peers.mcp_url, p2.clone());
    // The replay makes the server revoke the grant; the client recovers with
    // a new authorization, keeping its registration.
    let r = mcp2.initialize().await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(handler2.redirects.load(Ordering::SeqCst), 1);
    assert_eq!(
        stale_store.get_client_info().await.unwrap().unwrap(),
        client_before,
        "no new registration"
    );
    assert_ne!(
        stale_store.get_tokens().await.unwrap().unwrap().refresh_token,
        stale.refresh_token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_a_structured_error_and_loses_nothing() {
    let peers = Peers::start(&["--json-response"]);
    let store = Arc::new(MemoryStorage::new());
    let p = provider(&peers, metadata(), store.clone(), Arc::new(HeadlessHandler::default()));
    peers.deny_next("access_denied").await;
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    let e = mcp.initialize().await.err().expect("denied");
    assert_eq!(e.kind(), ErrorKind::Flow);
    assert_eq!(e.oauth_error(), Some("access_denied"));
    assert_eq!(
        e.oauth().unwrap().error_description.as_deref(),
        Some("the person said no")
    );
    // The registration survived; the next attempt works.
    assert!(store.get_client_info().await.unwrap().is_some());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_on_insufficient_scope() {
    let peers = Peers::start(&["--json-response"]);
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers, metadata(), Arc::new(MemoryStorage::new()), handler.clone());
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
    let before = p.current_token().unwrap().scopes();
    assert!(!before.contains(&"mcp:admin".to_string()));
    let r = mcp.tool("admin_action", json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let after = p.current_token().unwrap().scopes();
    assert!(
        after.contains(&"mcp:admin".to_string()) && after.contains(&"mcp:read".to_string()),
        "{after:?}"
    );
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 2);
}

async fn confidential_client(method: &str) {
    let peers = Peers::start(&["--json-response"]);
    let mut meta = metadata();
    meta.token_endpoint_auth_method = Some(method.into());
    let store = Arc::new(MemoryStorage::new());
    let p = provider(&peers, meta, store.clone(), Arc::new(HeadlessHandler::default()));
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
    let info = store.get_client_info().await.unwrap().unwrap();
    assert!(
        info.client_secret.is_some(),
        "a confidential registration gets a secret"
    );
    assert_eq!(info.token_endpoint_auth_method(), Some(method));
    assert!(!format!("{info:?}").contains(info.client_secret.as_ref().unwrap().expose()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic() {
    confidential_client("client_secret_basic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post() {
    confidential_client("client_secret_post").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_metadata_document() {
    let peers = Peers::start(&["--json-response"]);
    // Serve the document on loopback; the AS fetches https://127.0.0.1:P/...
    // from http on the same port (a test-only relaxation of its fetcher).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let doc_url = format!("https://127.0.0.1:{port}/client.json");
    let doc = json!({
        "client_id": doc_url,
        "client_name": "CIMD test client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
    .to_string();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let doc = doc.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                    doc.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let store = Arc::new(MemoryStorage::new());
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), metadata());
    cfg.client_metadata_url = Some(doc_url.clone());
    let p = OAuthClientProvider::new(cfg, store.clone(), Some(Arc::new(HeadlessHandler::default()))).unwrap();
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    assert_eq!(mcp.initialize().await.unwrap().status, 200);
    let who = mcp.tool("whoami", json!({})).await.unwrap();
    assert!(
        who.body.to_string().contains(&doc_url),
        "the URL is the client_id: {}",
        who.body
    );
    assert!(
        store.get_client_info().await.unwrap().is_none(),
        "no registration happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_flow() {
    let peers = Peers::start(&["--json-response", "--stateless"]);
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers, metadata(), Arc::new(MemoryStorage::new()), handler.clone());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mcp = Mcp::new(&peers.mcp_url, p.clone());
        tasks.push(tokio::spawn(async move {
            mcp.call("tools/list", json!({})).await.map(|r| (i, r.status))
        }));
    }
    for t in tasks {
        let (_, status) = t.await.unwrap().unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1, "one flow for all waiters");
    assert_eq!(peers.authorizations().await, 1);
}

/// A person who takes a while: the callback comes back after `delay`.
struct SlowPerson {
    inner: HeadlessHandler,
    delay: Duration,
}

#[async_trait::async_trait]
impl mcp_oauth_client::AuthorizationHandler for SlowPerson {
    async fn redirect(&self, url: &url::Url) -> mcp_oauth_client::Result<()> {
        self.inner.redirect(url).await
    }
    async fn callback(&self) -> mcp_oauth_client::Result<mcp_oauth_client::AuthorizationCodeResult> {
        tokio::time::sleep(self.delay).await;
        self.inner.callback().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_store_ask_the_person_once() {
    // Three providers, each with its own FileStorage on one directory (as
    // three processes would be), all without tokens, all getting a 401 at
    // once: one of them sends the person; the others wait for the store's
    // lease and use the tokens it stored.
    let peers = Peers::start(&["--json-response", "--stateless"]);
    let dir = tempfile::tempdir().unwrap();
    let mut persons = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let person = Arc::new(SlowPerson {
            inner: HeadlessHandler::default(),
            delay: Duration::from_millis(800),
        });
        persons.push(person.clone());
        let store = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
        let p = provider(&peers, metadata(), store, person);
        let mcp = Mcp::new(&peers.mcp_url, p);
        tasks.push(tokio::spawn(async move {
            mcp.call("tools/list", json!({})).await.map(|r| r.status)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let asked: usize = persons.iter().map(|p| p.inner.redirects.load(Ordering::SeqCst)).sum();
    assert_eq!(asked, 1, "the person was asked once for the three processes");
    assert_eq!(peers.authorizations().await, 1);
}
