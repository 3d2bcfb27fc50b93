//! The token lifecycle as a user observes it, against the real peers
//! (node-oidc-provider with rotating refresh tokens and reuse detection, and
//! the MCP Python SDK's protected server; see tests/peers/README.md):
//!
//! - processes sharing one file store rotate a refresh token once, together;
//! - an outage of the token endpoint is an error, never a new authorization,
//!   and the refresh token survives it;
//! - `invalid_grant` drops the dead tokens and nothing else;
//! - a refresh whose caller gave up still lands in the store.
//!
//! Nothing here waits for a duration, except for an access token to expire:
//! then the server's short lifetime is used and the store is polled until the
//! token's `expires_at` has passed. Once expiry is no longer wanted, the
//! authorization server is told to issue long-lived access tokens, so no
//! assertion depends on how fast the machine is.

mod calls;
mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use common::*;
use mcp_oauth_client::storage::fingerprint;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, Error, ErrorKind, FileStorage, NetworkFailure, OAuthClientMetadata,
    OAuthClientProvider, OAuthToken, ProviderConfig, Step, TokenStorage,
};
use serde_json::{Value, json};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:3030/callback";

/// How long a wait for a condition may take before the test fails instead
/// of hanging. Not a timing assumption: every wait ends when its condition holds.
const PATIENCE: Duration = Duration::from_secs(60);

/// The lifetime of access tokens once no test wants them to expire.
const LONG_TTL: u64 = 3600;

// The child process of the cross-process tests reads these.
const ENV_MCP_URL: &str = "LIFECYCLE_CHILD_MCP_URL";
const ENV_STORE: &str = "LIFECYCLE_CHILD_STORE";
const ENV_NAME: &str = "LIFECYCLE_CHILD_NAME";
const ENV_READY: &str = "LIFECYCLE_CHILD_READY";
const ENV_GO: &str = "LIFECYCLE_CHILD_GO";
const CHILD_TEST: &str = "lifecycle_child";
const CHILD_LINE: &str = "CHILD-RESULT ";

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

fn metadata() -> OAuthClientMetadata {
    let mut m = OAuthClientMetadata::new(vec![REDIRECT.into()]);
    m.client_name = Some("core lifecycle tests".into());
    m
}

/// A provider over the file store in `dir`, as a process would build it.
fn provider(
    mcp_url: &str,
    dir: &Path,
    handler: Arc<dyn AuthorizationHandler>,
    timeout: Duration,
) -> OAuthClientProvider {
    let mut cfg = ProviderConfig::new(mcp_url.to_string(), metadata());
    cfg.timeout = timeout;
    let store = Arc::new(FileStorage::new(dir, mcp_url).unwrap());
    OAuthClientProvider::new(cfg, store, Some(handler)).unwrap()
}

/// A handler for providers that must never involve the person: it counts
/// and refuses (an error, not a panic, so a child process can report it).
#[derive(Default)]
struct Refusing {
    asked: AtomicUsize,
}

#[async_trait]
impl AuthorizationHandler for Refusing {
    async fn redirect(&self, _url: &Url) -> mcp_oauth_client::Result<()> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Err(Error::handler(
            Step::Authorization,
            "no authorization was expected in this test",
        ))
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        Err(Error::handler(
            Step::Authorization,
            "no authorization was expected in this test",
        ))
    }
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Poll `ready` until it holds.
async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
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

async fn stored(store: &FileStorage) -> OAuthToken {
    store.get_tokens().await.unwrap().expect("tokens are stored")
}

/// The same tokens (access and refresh token). Not `==`: `expires_at` may
/// come back from the file store's JSON a rounding step off the held value.
fn assert_same(a: &OAuthToken, b: &OAuthToken) {
    assert!(fingerprint(a) == fingerprint(b), "different tokens: {a:?} and {b:?}");
}

fn rt(t: &OAuthToken) -> String {
    t.refresh_token.as_ref().expect("a refresh token").expose().to_string()
}

/// Wait until the stored access token has expired; returns the stored tokens.
async fn wait_for_expiry(store: &FileStorage) -> OAuthToken {
    let t = stored(store).await;
    let at = t.expires_at.expect("the access token has an expiry");
    wait_until("the stored access token to expire", || async { now_unix() >= at }).await;
    assert!(t.is_expired());
    t
}

/// From now on the authorization server issues access tokens that outlive the test.
async fn long_lived_tokens_from_now_on(peers: &Peers) {
    let r = reqwest::Client::new()
        .post(format!("{}/access-token-ttl", peers.control_url))
        .json(&json!({"seconds": LONG_TTL}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

fn count(state: &Value, what: &str, key: &str) -> u64 {
    state[what][key].as_u64().unwrap_or(0)
}

fn refreshes(state: &Value) -> u64 {
    count(state, "token_requests", "refresh_token")
}

fn assert_no_token_errors(state: &Value) {
    assert_eq!(
        state["token_errors"],
        json!({}),
        "the token endpoint refused nothing: {state}"
    );
}

/// The full flow, once, with the person played headlessly; the tokens and
/// the registration end up in the file store in `dir`.
/// A provider on a file store of its own, logged in through a first MCP call.
struct LoggedIn {
    dir: tempfile::TempDir,
    store: FileStorage,
    handler: Arc<HeadlessHandler>,
    mcp: Mcp,
}

impl LoggedIn {
    async fn start(peers: &Peers) -> LoggedIn {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStorage::new(dir.path(), &peers.mcp_url).unwrap();
        let handler = Arc::new(HeadlessHandler::default());
        let p = provider(&peers.mcp_url, dir.path(), handler.clone(), Duration::from_secs(10));
        let mcp = Mcp::new(&peers.mcp_url, p);
        assert_eq!(mcp.initialize().await.unwrap().status, 200);
        LoggedIn {
            dir,
            store,
            handler,
            mcp,
        }
    }
}

async fn log_in(peers: &Peers, dir: &Path) -> OAuthToken {
    let handler = Arc::new(HeadlessHandler::default());
    let p = provider(&peers.mcp_url, dir, handler.clone(), Duration::from_secs(10));
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    let r = mcp.initialize().await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1);
    let t = p.current_token().unwrap();
    assert!(t.refresh_token.is_some(), "the AS issues refresh tokens");
    t
}

// ---------------------------------------------------------------------------
// The child process of the cross-process tests.

/// Runs in a process of its own (the parent re-executes this test binary):
/// a provider over the parent's file store waits for the parent's go (when
/// given one), initializes an MCP session and calls a tool, then prints one
/// `CHILD-RESULT {json}` line. Without the parent's environment it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the cross-process tests, which run it themselves"]
async fn lifecycle_child() {
    let (Ok(mcp_url), Ok(dir), Ok(name)) = (
        std::env::var(ENV_MCP_URL),
        std::env::var(ENV_STORE),
        std::env::var(ENV_NAME),
    ) else {
        return;
    };
    init_tracing(true);
    let refusing = Arc::new(Refusing::default());
    let p = provider(&mcp_url, Path::new(&dir), refusing.clone(), Duration::from_secs(10));
    if let (Ok(ready), Ok(go)) = (std::env::var(ENV_READY), std::env::var(ENV_GO)) {
        std::fs::write(&ready, b"").unwrap();
        wait_until("the parent's go", || async { Path::new(&go).exists() }).await;
    }
    let mcp = Mcp::new(&mcp_url, p.clone());
    let mut report = json!({"name": name});
    let outcome = async {
        let init = mcp.initialize().await?;
        report["init"] = json!(init.status);
        let tool = mcp.tool("echo", json!({"text": name})).await?;
        report["tool"] = json!(tool.status);
        report["echo"] = tool.body;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = &outcome {
        report["error"] = json!({"kind": e.kind().as_str(), "oauth_error": e.oauth_error(), "message": e.to_string()});
    }
    report["asked_person"] = json!(refusing.asked.load(Ordering::SeqCst));
    report["held"] = json!(p.current_token().map(|t| fingerprint(&t).0));
    println!("{CHILD_LINE}{report}");
    outcome.unwrap();
    assert_eq!(report["init"], json!(200));
    assert_eq!(report["tool"], json!(200));
}

/// A child process running [`lifecycle_child`], with its outcome.
struct ChildProcess {
    name: String,
    child: Child,
}

struct ChildReport {
    /// The `CHILD-RESULT` line's JSON.
    report: Value,
    /// What it printed, for failure messages.
    output: String,
}

fn spawn_child(name: &str, peers: &Peers, dir: &Path, barrier: Option<(&Path, &Path)>) -> ChildProcess {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([CHILD_TEST, "--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_MCP_URL, &peers.mcp_url)
        .env(ENV_STORE, dir)
        .env(ENV_NAME, name)
        .env_remove(ENV_READY)
        .env_remove(ENV_GO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((ready, go)) = barrier {
        cmd.env(ENV_READY, ready).env(ENV_GO, go);
    }
    ChildProcess {
        name: name.to_string(),
        child: cmd.spawn().expect("re-execute the test binary"),
    }
}

impl ChildProcess {
    /// Wait for it to exit; it must have succeeded and reported.
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
        let report: Value = serde_json::from_str(line).unwrap();
        assert_eq!(report["name"], json!(name), "{output}");
        ChildReport { report, output }
    }
}

impl ChildReport {
    /// It initialized, called its tool, and asked no one.
    fn assert_served(&self) {
        let r = &self.report;
        assert!(r.get("error").is_none(), "{}", self.output);
        assert_eq!(r["init"], json!(200), "{}", self.output);
        assert_eq!(r["tool"], json!(200), "{}", self.output);
        let name = r["name"].as_str().unwrap();
        assert!(
            r["echo"].to_string().contains(name),
            "the tool answered: {}",
            self.output
        );
        assert_eq!(r["asked_person"], json!(0), "{}", self.output);
    }

    fn held(&self) -> u64 {
        self.report["held"].as_u64().expect("holds tokens")
    }
}

// ---------------------------------------------------------------------------
// 1. Rotation across processes.

/// Two processes share one file store, both holding an expired access token:
/// exactly one refresh reaches the authorization server (a second one would
/// present a used refresh token, and the server would revoke the grant),
/// neither sees `invalid_grant`, and both go on calling tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_rotate_the_refresh_token_once() {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = FileStorage::new(dir.path(), &peers.mcp_url).unwrap();
    log_in(&peers, dir.path()).await;
    let t0 = wait_for_expiry(&store).await;
    // The tokens of the one refresh outlive the test: a second refresh could
    // then only come from a process that missed the first.
    long_lived_tokens_from_now_on(&peers).await;

    // The first refresh to reach the token endpoint is held there until both
    // children are refreshing: the second has loaded RT0 too, before any
    // rotation could land (each child's discovery runs after it loaded the
    // stored tokens and found them expired).
    peers.token_fault(json!({"mode": "delay", "ms": 60_000})).await;
    let discoveries = peers.state().await["metadata_requests"].as_u64().unwrap();

    // Both start, then wait at the barrier before their first request.
    let barrier = tempfile::tempdir().unwrap();
    let go = barrier.path().join("go");
    let ready: Vec<PathBuf> = ["a", "b"].iter().map(|n| barrier.path().join(n)).collect();
    let children: Vec<ChildProcess> = ["a", "b"]
        .iter()
        .zip(&ready)
        .map(|(n, r)| spawn_child(n, &peers, dir.path(), Some((r, &go))))
        .collect();
    wait_until("both children to be ready", || async {
        ready.iter().all(|r| r.exists())
    })
    .await;
    std::fs::write(&go, b"").unwrap();
    wait_until(
        "one refresh held at the token endpoint and both children refreshing",
        || async {
            let s = peers.state().await;
            s["delayed_token_requests"] == json!(1) && s["metadata_requests"] == json!(discoveries + 2)
        },
    )
    .await;
    peers.token_fault(json!({"mode": "release"})).await;
    let mut reports = Vec::new();
    for c in children {
        reports.push(c.finish().await);
    }

    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0), "the refresh token rotated");
    assert_eq!(t1.expires_in, Some(LONG_TTL));
    for r in &reports {
        println!("{}", r.output);
        r.assert_served();
        assert_eq!(
            r.held(),
            fingerprint(&t1).0,
            "both hold the stored tokens: {}",
            r.output
        );
    }
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "exactly one refresh: {state}");
    assert_eq!(
        state["token_endpoint_posts"],
        json!(2),
        "the code exchange and the one refresh reached the token endpoint, nothing else: {state}"
    );
    assert_no_token_errors(&state);
    assert_eq!(state["authorizations"], json!(1));
}

/// Process A has rotated RT0 to RT1 in the store while B still holds RT0 in
/// memory with an expired access token. B must not send RT0 (the server would
/// revoke the grant): it adopts A's tokens, or refreshes with the newest
/// refresh token. Both happen here: B2 finds an expired access token with RT1
/// and refreshes with RT1; B1 then finds B2's fresh tokens and adopts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_holding_a_rotated_refresh_token_never_sends_it() {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = FileStorage::new(dir.path(), &peers.mcp_url).unwrap();
    log_in(&peers, dir.path()).await;
    let t0 = wait_for_expiry(&store).await;

    // B1 and B2 load RT0 with its expired access token; their refresh meets an
    // outage (answered before the authorization server sees the token), so
    // they keep holding RT0.
    peers.token_fault(json!({"mode": "503-json", "count": 2})).await;
    let refusing = Arc::new(Refusing::default());
    let b: Vec<Mcp> = (0..2)
        .map(|_| {
            let p = provider(&peers.mcp_url, dir.path(), refusing.clone(), Duration::from_secs(10));
            Mcp::new(&peers.mcp_url, p)
        })
        .collect();
    for m in &b {
        let e = m.initialize().await.err().expect("the token endpoint is down");
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        let held = m.provider.current_token().expect("the tokens are still held");
        assert_eq!(rt(&held), rt(&t0));
        assert!(held.is_expired());
    }
    assert_eq!(refreshes(&peers.state().await), 0);

    // Process A rotates RT0 to RT1.
    spawn_child("a", &peers, dir.path(), None)
        .finish()
        .await
        .assert_served();
    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0));
    assert_eq!(refreshes(&peers.state().await), 1);

    // B2 (holding RT0) once A's access token has expired too: it refreshes
    // with RT1, the newest.
    assert_eq!(wait_for_expiry(&store).await, t1);
    long_lived_tokens_from_now_on(&peers).await;
    let (b1, b2) = (&b[0], &b[1]);
    assert_eq!(b2.initialize().await.unwrap().status, 200);
    assert_eq!(b2.tool("echo", json!({"text": "b2"})).await.unwrap().status, 200);
    let t2 = stored(&store).await;
    assert_ne!(rt(&t2), rt(&t1), "B2 refreshed with RT1, which rotated");
    assert_same(&b2.provider.current_token().unwrap(), &t2);
    assert_eq!(refreshes(&peers.state().await), 2);

    // B1 (holding RT0) finds B2's fresh tokens: it adopts them, no refresh.
    assert_eq!(b1.initialize().await.unwrap().status, 200);
    assert_eq!(b1.tool("echo", json!({"text": "b1"})).await.unwrap().status, 200);
    assert_same(&b1.provider.current_token().unwrap(), &t2);
    assert_same(&stored(&store).await, &t2);

    let state = peers.state().await;
    assert_eq!(refreshes(&state), 2, "{state}");
    assert_no_token_errors(&state);
    assert_eq!(
        state["token_endpoint_posts"],
        json!(5),
        "the code exchange, the two refused by the outage, A's refresh and B2's: {state}"
    );
    assert_eq!(state["authorizations"], json!(1));
    assert_eq!(refusing.asked.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// 2. An outage after a restart.

/// After a restart (a new provider over the same file store) with an expired
/// access token, the token endpoint answers the refresh with a 503 JSON error
/// (with Retry-After), then a 502 HTML page, then not at all. Each is an error
/// of kind `Server` or `Network` for the caller; none starts an authorization
/// or costs the stored refresh token; once the server is back, the next
/// request refreshes silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_after_a_restart_keeps_the_refresh_token() {
    init_tracing(false);
    // Stateless: the restarted provider's first request may be a tool call.
    let peers = Peers::start(&["--json-response", "--stateless", "--access-token-ttl", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = FileStorage::new(dir.path(), &peers.mcp_url).unwrap();
    log_in(&peers, dir.path()).await;
    let client_id = store.get_client_info().await.unwrap().unwrap().client_id;

    // The restart: the first provider is gone; a new one uses the same store,
    // with a short per-request timeout.
    let handler = Arc::new(HeadlessHandler::default());
    let timeout = Duration::from_secs(2);
    let mcp = Mcp::new(
        &peers.mcp_url,
        provider(&peers.mcp_url, dir.path(), handler.clone(), timeout),
    );
    let t0 = wait_for_expiry(&store).await;

    let faults = [
        json!({"mode": "503-json", "retry_after": 7}),
        json!({"mode": "502-html"}),
        json!({"mode": "hang"}),
    ];
    for (i, fault) in faults.iter().enumerate() {
        peers.token_fault(fault.clone()).await;
        let started = Instant::now();
        let e = mcp
            .tool("echo", json!({"text": "down"}))
            .await
            .err()
            .unwrap_or_else(|| panic!("an error during the outage ({fault})"));
        match fault["mode"].as_str().unwrap() {
            "503-json" => {
                assert_eq!(e.kind(), ErrorKind::Server, "{e}");
                assert_eq!(e.status(), Some(503), "{e}");
                assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e}");
                assert_eq!(e.oauth_error(), Some("temporarily_unavailable"), "{e}");
            }
            "502-html" => {
                assert_eq!(e.kind(), ErrorKind::Server, "{e}");
                assert_eq!(e.status(), Some(502), "{e}");
                assert_eq!(e.oauth_error(), None, "{e}");
            }
            _ => {
                assert_eq!(e.kind(), ErrorKind::Network, "{e}");
                assert_eq!(e.network_failure(), Some(NetworkFailure::Timeout), "{e}");
                // The provider's 2 s, not a default (30 s) nor the peer's cap (120 s).
                let took = started.elapsed();
                assert!(
                    took >= timeout && took < Duration::from_secs(20),
                    "the request's timeout applied: {took:?}"
                );
            }
        }
        assert_eq!(e.step(), Some(Step::Refresh), "{e}");
        let state = peers.state().await;
        assert_eq!(
            state["authorizations"],
            json!(1),
            "no authorization after {fault}: {state}"
        );
        assert_eq!(handler.redirects.load(Ordering::SeqCst), 0);
        assert_eq!(state["token_endpoint_posts"], json!(2 + i), "{state}");
        assert_eq!(refreshes(&state), 0);
        let kept = stored(&store).await;
        assert_eq!(kept, t0, "the stored tokens are untouched by {fault}");
        assert_eq!(rt(&kept), rt(&t0));
    }

    // Back up: the next request refreshes and calls its tool, asking no one.
    long_lived_tokens_from_now_on(&peers).await;
    let r = mcp.tool("echo", json!({"text": "back"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0));
    assert_same(&mcp.provider.current_token().unwrap(), &t1);
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "{state}");
    assert_eq!(state["authorizations"], json!(1));
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 0);
    assert_no_token_errors(&state);
    assert_eq!(store.get_client_info().await.unwrap().unwrap().client_id, client_id);
}

// ---------------------------------------------------------------------------
// 3. invalid_grant drops the dead tokens only.

/// The grant is revoked at the authorization server (a used refresh token is
/// replayed to it, which oidc-provider answers by revoking the whole grant).
/// The next refresh gets `invalid_grant`: the dead tokens leave the store,
/// the registration stays, and the next request runs the whole flow again
/// and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_drops_only_the_dead_tokens() {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let LoggedIn {
        dir: _dir,
        store,
        handler,
        mcp,
    } = LoggedIn::start(&peers).await;
    let p = mcp.provider.clone();
    let client = store.get_client_info().await.unwrap().unwrap();

    // One refresh: RT0 is used, RT1 is current.
    let t0 = wait_for_expiry(&store).await;
    assert_eq!(mcp.tool("echo", json!({"text": "a"})).await.unwrap().status, 200);
    let t1 = stored(&store).await;
    assert_ne!(rt(&t1), rt(&t0));

    // Replaying RT0, authenticated as the client, revokes the grant, RT1 with it.
    let used = rt(&t0);
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", used.as_str())];
    let mut replay = reqwest::Client::new().post(format!("{}/token", peers.issuer));
    match &client.client_secret {
        Some(secret) => replay = replay.basic_auth(&client.client_id, Some(secret.expose())),
        None => form.push(("client_id", client.client_id.as_str())),
    }
    let replay = replay.form(&form).send().await.unwrap();
    let status = replay.status();
    let body: Value = replay.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], json!("invalid_grant"), "{body}");

    // Once the access token expires, the refresh with RT1 is refused: the
    // tokens are dropped from memory and from the store, and no flow starts
    // before the server asks for one.
    wait_for_expiry(&store).await;
    long_lived_tokens_from_now_on(&peers).await;
    let header = calls::header(&p).await.unwrap();
    assert_eq!(header, None, "no token to send once the grant is dead");
    assert!(p.current_token().is_none());
    assert!(
        store.get_tokens().await.unwrap().is_none(),
        "the dead tokens left the store"
    );
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap(),
        client,
        "the registration stays"
    );
    let state = peers.state().await;
    assert_eq!(
        count(&state, "token_errors", "invalid_grant"),
        2,
        "the replay and the refresh: {state}"
    );
    assert_eq!(state["authorizations"], json!(1));

    // The next request: 401, the whole flow with the same registration, success.
    let r = mcp.tool("echo", json!({"text": "b"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let state = peers.state().await;
    assert_eq!(state["authorizations"], json!(2), "{state}");
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 2);
    assert_eq!(count(&state, "token_requests", "authorization_code"), 2);
    assert_eq!(refreshes(&state), 1);
    let t2 = stored(&store).await;
    assert_ne!(rt(&t2), rt(&t1));
    assert_same(&p.current_token().unwrap(), &t2);
    assert_eq!(store.get_client_info().await.unwrap().unwrap(), client);
}

// ---------------------------------------------------------------------------
// 4. A refresh outlives its cancelled caller.

/// A request whose header needs a refresh is cancelled while the refresh is
/// at the token endpoint. The refresh completes anyway: the rotated tokens
/// are stored, and the next request uses them with no other refresh (had the
/// refresh been cancelled after the server rotated, the stored refresh token
/// would be a used one, and the next refresh would revoke the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_caller_is_cancelled_completes() {
    init_tracing(false);
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);
    let LoggedIn {
        dir: _dir,
        store,
        handler,
        mcp,
    } = LoggedIn::start(&peers).await;
    let p = mcp.provider.clone();
    let t0 = wait_for_expiry(&store).await;
    long_lived_tokens_from_now_on(&peers).await;

    // The token endpoint holds the refresh until released.
    peers.token_fault(json!({"mode": "delay", "ms": 60_000})).await;
    {
        let call = mcp.tool("echo", json!({"text": "cancelled"}));
        tokio::pin!(call);
        tokio::select! {
            r = &mut call => panic!("the call ended while its refresh was held: {:?}", r.map(|r| r.status)),
            _ = wait_until("the refresh to reach the token endpoint", || async {
                peers.state().await["delayed_token_requests"] == json!(1)
            }) => {}
        }
        // Dropping the call cancels it.
    }
    peers.token_fault(json!({"mode": "release"})).await;
    wait_until("the rotated tokens to be stored", || async {
        store
            .get_tokens()
            .await
            .unwrap()
            .is_some_and(|t| t.refresh_token != t0.refresh_token)
    })
    .await;
    let t1 = stored(&store).await;
    assert_eq!(t1.expires_in, Some(LONG_TTL));

    let r = mcp.tool("echo", json!({"text": "next"})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_same(&p.current_token().unwrap(), &t1);
    assert_same(&stored(&store).await, &t1);
    let state = peers.state().await;
    assert_eq!(refreshes(&state), 1, "the cancelled one only: {state}");
    assert_eq!(state["token_endpoint_posts"], json!(2), "{state}");
    assert_no_token_errors(&state);
    assert_eq!(state["authorizations"], json!(1));
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1);
}
