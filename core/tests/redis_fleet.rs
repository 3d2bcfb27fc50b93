//! A fleet of processes sharing one Redis store (one instance, and a
//! three-node Redis Cluster), against the real peers: node-oidc-provider with
//! rotating refresh tokens and reuse detection, and the MCP Python SDK's
//! protected server (tests/peers/README.md). Each scenario runs on both.
//!
//! - 8 processes with an expired token, each sending requests at once: one
//!   refresh reaches the authorization server, nobody sees `invalid_grant`,
//!   every request succeeds;
//! - the lease holder killed with SIGKILL while its refresh is held at the
//!   token endpoint: the others proceed once its lease has expired;
//! - Redis stopped and restarted in the middle of a run: a valid token keeps
//!   working, a refresh fails with an error naming the store, and once Redis
//!   is back the refresh succeeds with what was stored;
//! - a value altered in Redis: refused, reported, not used, left as it is.
//!
//! The Redis servers are started by the tests (tests/common/redis_servers.rs)
//! on free ports and stopped after; without `redis-server` the tests fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use common::redis_servers::{RedisCluster, RedisServer};
use common::*;
use mcp_oauth_client::storage::fingerprint;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, EncryptionKey, Error, ErrorKind, OAuthClientMetadata,
    OAuthClientProvider, OAuthToken, ProviderConfig, RedisOptions, RedisStorage, Step, TokenStorage,
};
use serde_json::{Value, json};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:3030/callback";
const PATIENCE: Duration = Duration::from_secs(90);
const LONG_TTL: u64 = 3600;
/// The fleet's encryption key (a test key: 32 bytes of 0x42).
const KEY_ID: &str = "fleet-2026";
const PROCESSES: usize = 8;
const REQUESTS_PER_PROCESS: usize = 4;

const ENV_MCP_URL: &str = "FLEET_CHILD_MCP_URL";
const ENV_REDIS: &str = "FLEET_CHILD_REDIS";
const ENV_CLUSTER: &str = "FLEET_CHILD_CLUSTER";
const ENV_NAME: &str = "FLEET_CHILD_NAME";
const ENV_LEASE_TTL_MS: &str = "FLEET_CHILD_LEASE_TTL_MS";
const ENV_READY: &str = "FLEET_CHILD_READY";
const ENV_GO: &str = "FLEET_CHILD_GO";
const CHILD_TEST: &str = "fleet_child";
const CHILD_LINE: &str = "CHILD-RESULT ";

fn key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x42u8; 32])
}

fn init_tracing(to_stderr: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("mcp_oauth_client=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if to_stderr {
        builder.with_writer(std::io::stderr).try_init()
    } else {
        builder.with_test_writer().try_init()
    };
}

/// The Redis of a scenario: one instance or a cluster.
enum Backend {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    fn single() -> Backend {
        Backend::Single(RedisServer::single())
    }

    fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start())
    }

    /// The URLs as a host configures them: one, or the nodes comma-separated.
    fn urls(&self) -> String {
        match self {
            Backend::Single(s) => s.url(),
            Backend::Cluster(c) => c.urls().join(","),
        }
    }

    fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }

    fn options(urls: &str, cluster: bool) -> RedisOptions {
        let list: Vec<&str> = urls.split(',').collect();
        let opts = if cluster {
            RedisOptions::cluster(&list)
        } else {
            RedisOptions::new(list[0])
        };
        opts.key_prefix("fleet-test")
            .encryption_key(EncryptionKey::from_base64(KEY_ID, &key_b64()).unwrap())
            .timeout(Duration::from_secs(3))
    }

    fn store(&self, mcp_url: &str) -> RedisStorage {
        RedisStorage::new(Backend::options(&self.urls(), self.is_cluster()), mcp_url).unwrap()
    }

    /// `redis-cli` on the node holding `key`.
    fn cli_for(&self, key: &str, args: &[&str]) -> String {
        match self {
            Backend::Single(s) => s.cli(args),
            Backend::Cluster(c) => c.node_for(key).cli(args),
        }
    }

    fn stop_saving(&mut self) {
        match self {
            Backend::Single(s) => s.stop_saving(),
            Backend::Cluster(c) => c.nodes.iter_mut().for_each(RedisServer::stop_saving),
        }
    }

    fn restart(&mut self) {
        match self {
            Backend::Single(s) => s.start(),
            Backend::Cluster(c) => {
                c.nodes.iter_mut().for_each(RedisServer::start);
                let deadline = Instant::now() + PATIENCE;
                for n in &c.nodes {
                    while !n.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                        assert!(Instant::now() < deadline, "the cluster did not come back");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    }
}

fn metadata() -> OAuthClientMetadata {
    let mut m = OAuthClientMetadata::new(vec![REDIRECT.into()]);
    m.client_name = Some("redis fleet tests".into());
    m
}

fn provider(
    mcp_url: &str,
    store: RedisStorage,
    handler: Arc<dyn AuthorizationHandler>,
    lease_ttl: Option<Duration>,
) -> OAuthClientProvider {
    let mut cfg = ProviderConfig::new(mcp_url.to_string(), metadata());
    cfg.timeout = Duration::from_secs(10);
    if let Some(ttl) = lease_ttl {
        cfg.lease_ttl = ttl;
    }
    OAuthClientProvider::new(cfg, Arc::new(store), Some(handler)).unwrap()
}

/// Refuses (and counts) any attempt to involve the person.
#[derive(Default)]
struct Refusing {
    asked: AtomicUsize,
}

#[async_trait]
impl AuthorizationHandler for Refusing {
    async fn redirect(&self, _url: &Url) -> mcp_oauth_client::Result<()> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Err(Error::handler(Step::Authorization, "no authorization was expected"))
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        Err(Error::handler(Step::Authorization, "no authorization was expected"))
    }
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if ready().await {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stored(store: &RedisStorage) -> OAuthToken {
    store.get_tokens().await.unwrap().expect("tokens are stored")
}

fn rt(t: &OAuthToken) -> String {
    t.refresh_token.as_ref().expect("a refresh token").expose().to_string()
}

async fn wait_for_expiry(store: &RedisStorage) -> OAuthToken {
    let t = stored(store).await;
    let at = t.expires_at.expect("an expiry");
    wait_until("the stored access token to expire", || async { now_unix() >= at }).await;
    t
}

async fn access_token_ttl(peers: &Peers, seconds: u64) {
    let r = reqwest::Client::new()
        .post(format!("{}/access-token-ttl", peers.control_url))
        .json(&json!({"seconds": seconds}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

fn refreshes(state: &Value) -> u64 {
    state["token_requests"]["refresh_token"].as_u64().unwrap_or(0)
}

/// Log in once through a provider over the Redis store; the tokens (with a
/// short access token) and the registration end up in Redis.
async fn log_in(peers: &Peers, backend: &Backend) -> Mcp {
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers.mcp_url, backend.store(&peers.mcp_url), handler.clone(), None);
    let mcp = Mcp::new(&peers.mcp_url, p);
    let r = mcp.tool("echo", json!({"text": "login"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1);
    mcp
}

// ---------------------------------------------------------------------------
// The child process.

/// Runs in a process of its own (the parent re-executes this test binary): a
/// provider over the parent's Redis store waits for the parent's go (when
/// given one), then sends its requests at once and prints one
/// `CHILD-RESULT {json}` line. Without the parent's environment it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the fleet tests, which run it themselves"]
async fn fleet_child() {
    let (Ok(mcp_url), Ok(urls), Ok(name)) = (
        std::env::var(ENV_MCP_URL),
        std::env::var(ENV_REDIS),
        std::env::var(ENV_NAME),
    ) else {
        return;
    };
    init_tracing(true);
    let cluster = std::env::var(ENV_CLUSTER).is_ok();
    let lease_ttl = std::env::var(ENV_LEASE_TTL_MS)
        .ok()
        .map(|ms| Duration::from_millis(ms.parse().unwrap()));
    let store = RedisStorage::new(Backend::options(&urls, cluster), &mcp_url).unwrap();
    let refusing = Arc::new(Refusing::default());
    let p = provider(&mcp_url, store, refusing.clone(), lease_ttl);
    if let (Ok(ready), Ok(go)) = (std::env::var(ENV_READY), std::env::var(ENV_GO)) {
        std::fs::write(&ready, b"").unwrap();
        wait_until("the parent's go", || async { Path::new(&go).exists() }).await;
    }
    let mcp = Arc::new(Mcp::new(&mcp_url, p.clone()));
    let calls: Vec<_> = (0..REQUESTS_PER_PROCESS)
        .map(|i| {
            let mcp = mcp.clone();
            let text = format!("{name}-{i}");
            tokio::spawn(async move { mcp.tool("echo", json!({"text": text})).await })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut errors = Vec::new();
    for c in calls {
        match c.await.unwrap() {
            Ok(r) => statuses.push(r.status),
            Err(e) => errors
                .push(json!({"kind": e.kind().as_str(), "oauth_error": e.oauth_error(), "message": e.to_string()})),
        }
    }
    let report = json!({
        "name": name,
        "statuses": statuses,
        "errors": errors,
        "asked_person": refusing.asked.load(Ordering::SeqCst),
        "held": p.current_token().map(|t| fingerprint(&t).0),
    });
    println!("{CHILD_LINE}{report}");
}

struct ChildProcess {
    name: String,
    child: Child,
}

struct ChildReport {
    report: Value,
    output: String,
}

fn spawn_child(
    name: &str,
    peers: &Peers,
    backend: &Backend,
    lease_ttl: Option<Duration>,
    barrier: Option<(&Path, &Path)>,
) -> ChildProcess {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([CHILD_TEST, "--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_MCP_URL, &peers.mcp_url)
        .env(ENV_REDIS, backend.urls())
        .env(ENV_NAME, name)
        .env_remove(ENV_CLUSTER)
        .env_remove(ENV_LEASE_TTL_MS)
        .env_remove(ENV_READY)
        .env_remove(ENV_GO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if backend.is_cluster() {
        cmd.env(ENV_CLUSTER, "1");
    }
    if let Some(ttl) = lease_ttl {
        cmd.env(ENV_LEASE_TTL_MS, ttl.as_millis().to_string());
    }
    if let Some((ready, go)) = barrier {
        cmd.env(ENV_READY, ready).env(ENV_GO, go);
    }
    ChildProcess {
        name: name.to_string(),
        child: cmd.spawn().expect("re-execute the test binary"),
    }
}

impl ChildProcess {
    async fn finish(self) -> ChildReport {
        let name = self.name;
        let out = tokio::task::spawn_blocking(move || self.child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let output = format!(
            "--- child {name} stdout ---\n{stdout}\n--- child {name} stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child {name} failed ({}):\n{output}", out.status);
        let line = stdout
            .lines()
            .find_map(|l| l.find(CHILD_LINE).map(|i| &l[i + CHILD_LINE.len()..]))
            .unwrap_or_else(|| panic!("child {name} printed no result:\n{output}"));
        ChildReport {
            report: serde_json::from_str(line).unwrap(),
            output,
        }
    }
}

impl ChildReport {
    /// Every request succeeded, nobody was asked, and it holds `tokens`.
    fn assert_served_with(&self, tokens: &OAuthToken) {
        let r = &self.report;
        assert_eq!(r["errors"], json!([]), "{}", self.output);
        assert_eq!(r["statuses"], json!(vec![200; REQUESTS_PER_PROCESS]), "{}", self.output);
        assert_eq!(r["asked_person"], json!(0), "{}", self.output);
        assert_eq!(r["held"], json!(fingerprint(tokens).0), "{}", self.output);
    }
}

/// Start `n` children held at a barrier, then let them go at once.
async fn start_together(
    n: usize,
    peers: &Peers,
    backend: &Backend,
    lease_ttl: Option<Duration>,
    barrier: &Path,
) -> Vec<ChildProcess> {
    let go = barrier.join("go");
    let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let ready: Vec<PathBuf> = names.iter().map(|n| barrier.join(n)).collect();
    let children = names
        .iter()
        .zip(&ready)
        .map(|(n, r)| spawn_child(n, peers, backend, lease_ttl, Some((r, &go))))
        .collect();
    wait_until("every child to be ready", || async { ready.iter().all(|r| r.exists()) }).await;
    std::fs::write(&go, b"").unwrap();
    children
}

// ---------------------------------------------------------------------------
// 1. Eight processes, one refresh.

async fn eight_processes_refresh_once(mut backend: Backend) {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--stateless", "--access-token-ttl", "2"]);
    let store = backend.store(&peers.mcp_url);
    log_in(&peers, &backend).await;
    let t0 = wait_for_expiry(&store).await;
    access_token_ttl(&peers, LONG_TTL).await;

    // The first refresh is held at the token endpoint until every process
    // is refreshing (each has loaded RT0 and run discovery), so all eight
    // contend for the same rotation.
    peers.token_fault(json!({"mode": "delay", "ms": 60_000})).await;
    let discoveries = peers.state().await["metadata_requests"].as_u64().unwrap();
    let barrier = tempfile::tempdir().unwrap();
    let children = start_together(PROCESSES, &peers, &backend, None, barrier.path()).await;
    wait_until("one refresh held and every process refreshing", || async {
        let s = peers.state().await;
        s["delayed_token_requests"] == json!(1)
            && s["metadata_requests"].as_u64() >= Some(discoveries + PROCESSES as u64)
    })
    .await;
    peers.token_fault(json!({"mode": "release"})).await;
    let mut reports = Vec::new();
    for c in children {
        reports.push(c.finish().await);
    }

    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0), "the refresh token rotated");
    for r in &reports {
        r.assert_served_with(&t1);
    }
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "exactly one refresh: {state}");
    assert_eq!(
        state["token_endpoint_posts"],
        json!(2),
        "the code and the one refresh: {state}"
    );
    assert_eq!(state["token_errors"], json!({}), "no invalid_grant: {state}");
    assert_eq!(state["authorizations"], json!(1));
    drop(peers);
    backend.stop_saving();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_refresh_once_on_one_instance() {
    eight_processes_refresh_once(Backend::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_refresh_once_on_a_cluster() {
    eight_processes_refresh_once(Backend::cluster()).await;
}

// ---------------------------------------------------------------------------
// 2. The lease holder killed mid-refresh.

async fn a_killed_lease_holder_lets_the_next_proceed(backend: Backend) {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--stateless", "--access-token-ttl", "2"]);
    let store = backend.store(&peers.mcp_url);
    log_in(&peers, &backend).await;
    let t0 = wait_for_expiry(&store).await;
    access_token_ttl(&peers, LONG_TTL).await;

    // The victim takes the lease and its refresh is held at the token
    // endpoint; then it is killed (SIGKILL: no release, no cleanup). Its
    // request dies with its connection and never reaches the server.
    let lease_ttl = Duration::from_secs(3);
    peers.token_fault(json!({"mode": "delay", "ms": 60_000})).await;
    let mut victim = spawn_child("victim", &peers, &backend, Some(lease_ttl), None);
    wait_until("the victim's refresh to be held", || async {
        peers.state().await["delayed_token_requests"] == json!(1)
    })
    .await;
    let lease_key = store.lease_key().to_string();
    let holder = backend.cli_for(&lease_key, &["get", &lease_key]);
    assert!(!holder.trim().is_empty(), "the victim holds the lease");
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    wait_until("the victim's request to be dropped", || async {
        peers.state().await["delayed_token_requests"] == json!(0)
    })
    .await;
    assert_eq!(
        backend.cli_for(&lease_key, &["get", &lease_key]),
        holder,
        "nobody released the dead holder's lease"
    );

    // The others, at once: they wait for the lease to expire, one refreshes
    // with RT0 (never used: the victim's request did not arrive), the others
    // take its tokens.
    let barrier = tempfile::tempdir().unwrap();
    let children = start_together(PROCESSES - 1, &peers, &backend, Some(lease_ttl), barrier.path()).await;
    let mut reports = Vec::new();
    for c in children {
        reports.push(c.finish().await);
    }
    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0));
    for r in &reports {
        r.assert_served_with(&t1);
    }
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "{state}");
    assert_eq!(
        state["token_endpoint_posts"],
        json!(3),
        "the code, the victim's dropped request and the one refresh: {state}"
    );
    assert_eq!(state["token_errors"], json!({}), "{state}");
    assert_eq!(state["authorizations"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_lets_the_next_proceed_on_one_instance() {
    a_killed_lease_holder_lets_the_next_proceed(Backend::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lease_holder_lets_the_next_proceed_on_a_cluster() {
    a_killed_lease_holder_lets_the_next_proceed(Backend::cluster()).await;
}

// ---------------------------------------------------------------------------
// 3. Redis stopped and restarted mid-run.

async fn redis_down_then_back(mut backend: Backend) {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--stateless", "--access-token-ttl", "2"]);
    let store = backend.store(&peers.mcp_url);
    let mcp = log_in(&peers, &backend).await;
    let client = store.get_client_info().await.unwrap().unwrap();
    wait_for_expiry(&store).await;
    // The next tokens live long enough to be used while Redis is down.
    access_token_ttl(&peers, 10).await;
    assert_eq!(mcp.tool("echo", json!({"text": "before"})).await.unwrap().status, 200);
    let t1 = stored(&store).await;
    assert_eq!(refreshes(&peers.state().await), 1);

    backend.stop_saving();

    // A valid token keeps working: the provider holds it, Redis is not asked.
    let mut served = 0;
    while mcp.provider.current_token().unwrap().expires_at.unwrap() > now_unix() + 2.0 {
        let r = mcp.tool("echo", json!({"text": "redis is down"})).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        served += 1;
        if served >= 5 {
            break;
        }
    }
    assert!(
        served >= 1,
        "the machine was too slow to use the token before it expired"
    );

    // Once expired, the refresh needs the store: a clear error naming it,
    // and nothing is asked of the authorization server.
    wait_until("the held token to expire", || async {
        mcp.provider.current_token().unwrap().is_expired()
    })
    .await;
    access_token_ttl(&peers, LONG_TTL).await;
    let e = mcp
        .tool("echo", json!({"text": "refresh"}))
        .await
        .err()
        .expect("the store is down");
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    let first_url = backend.urls().split(',').next().unwrap().to_string();
    assert!(e.to_string().contains(&first_url), "names the store: {e}");
    // A process started meanwhile cannot load its tokens: the same error.
    let fresh = provider(
        &peers.mcp_url,
        backend.store(&peers.mcp_url),
        Arc::new(Refusing::default()),
        None,
    );
    let e = Mcp::new(&peers.mcp_url, fresh)
        .tool("echo", json!({"text": "new process"}))
        .await
        .err()
        .expect("the store is down");
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "{state}");

    // Back: the next request refreshes with the stored refresh token.
    backend.restart();
    wait_until("the store to answer again", || async {
        store.load_tokens().await.is_ok()
    })
    .await;
    let r = mcp.tool("echo", json!({"text": "back"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let t2 = stored(&store).await;
    assert_ne!(rt(&t2), rt(&t1), "the refresh token rotated");
    assert_eq!(fingerprint(&mcp.provider.current_token().unwrap()), fingerprint(&t2));
    assert_eq!(store.get_client_info().await.unwrap().unwrap(), client);
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 2, "{state}");
    assert_eq!(state["token_errors"], json!({}), "{state}");
    assert_eq!(state["authorizations"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_on_one_instance() {
    redis_down_then_back(Backend::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_on_a_cluster() {
    redis_down_then_back(Backend::cluster()).await;
}

// ---------------------------------------------------------------------------
// 4. A value altered in Redis.

async fn a_tampered_value_is_refused(backend: Backend) {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--stateless"]);
    let store = backend.store(&peers.mcp_url);
    log_in(&peers, &backend).await;
    let key = store.tokens_key().to_string();
    let raw = backend.cli_for(&key, &["hget", &key, "d"]);
    let raw = raw.trim_end_matches('\n');
    assert!(raw.starts_with(&format!("aes256gcm:{KEY_ID}:")), "{raw}");
    // Flip a character of the ciphertext.
    let mut bytes = raw.as_bytes().to_vec();
    let i = bytes.len() - 4;
    bytes[i] = if bytes[i] == b'Q' { b'R' } else { b'Q' };
    let tampered = String::from_utf8(bytes).unwrap();
    backend.cli_for(&key, &["hset", &key, "d", &tampered]);

    // A process starting now: its request fails with an error naming the
    // key, it holds no token, and nothing went to the servers.
    let before = peers.state().await;
    let refusing = Arc::new(Refusing::default());
    let p = provider(&peers.mcp_url, backend.store(&peers.mcp_url), refusing.clone(), None);
    let e = Mcp::new(&peers.mcp_url, p.clone())
        .tool("echo", json!({"text": "tampered"}))
        .await
        .err()
        .expect("the altered value is refused");
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&key) && msg.contains("not used"), "{msg}");
    assert!(p.current_token().is_none());
    assert_eq!(refusing.asked.load(Ordering::SeqCst), 0);
    assert_eq!(peers.state().await, before, "nothing reached the authorization server");
    // Left as it is, for whoever investigates.
    assert_eq!(
        backend.cli_for(&key, &["hget", &key, "d"]).trim_end_matches('\n'),
        tampered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_value_is_refused_on_one_instance() {
    a_tampered_value_is_refused(Backend::single()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_value_is_refused_on_a_cluster() {
    a_tampered_value_is_refused(Backend::cluster()).await;
}
