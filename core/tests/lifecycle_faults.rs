//! The token lifecycle under faults, against an in-process server: outages
//! keep every stored token, only `invalid_grant` drops them, `invalid_client`
//! re-registers or names the configured client, tokens and secrets stay with
//! their issuer, flights outlive their callers, hostile answers store nothing,
//! and every wait has a deadline. (The same against real peers and real
//! processes: `lifecycle.rs`.)

mod calls;
mod fixture;
mod mock;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fixture::*;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, ErrorKind, FileStorage, MemoryStorage, NetworkFailure,
    OAuthClientInformationFull, OAuthClientProvider, OAuthToken, ResourceParameter, Secret, StaticClient, Step,
    TokenStorage, Verdict,
};
use mock::{Mock, Reply};
use serde_json::json;
use url::Url;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Tokens as a store would hold them: issued by `issuer`, expired or not.
fn tokens(at: &str, rt: &str, issuer: &str, expired: bool) -> OAuthToken {
    let mut t = OAuthToken::bearer(at);
    t.refresh_token = Some(Secret::new(rt));
    t.scope = Some("read".into());
    t.expires_in = Some(3600);
    t.expires_at = Some(if expired { now() - 10.0 } else { now() + 3600.0 });
    t.issuer = Some(issuer.to_string());
    t
}

/// A store holding tokens and the registration they were issued to.
async fn seed(store: &dyn TokenStorage, m: &Mock, t: OAuthToken) {
    store.set_tokens(t).await.unwrap();
    let mut info = OAuthClientInformationFull::new("stored-client", None);
    info.issuer = Some(m.base.clone());
    store.set_client_info(info).await.unwrap();
}

fn standard(m: &Mock) {
    m.standard_prm(&m.base);
    m.standard_as("");
}

fn stored_rt(t: Option<OAuthToken>) -> Option<String> {
    t.and_then(|t| t.refresh_token).map(|r| r.expose().to_string())
}

#[tokio::test]
async fn an_outage_is_not_a_revocation() {
    let html = Reply {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html><body>Bad gateway</body></html>".to_vec(),
        delay: Duration::ZERO,
    };
    let mut malformed = Reply::json(200, json!({}));
    malformed.body = b"{\"access_token\": ".to_vec();
    let cases: Vec<(&str, Reply, Option<u16>)> = vec![
        (
            "503 JSON",
            Reply::json(503, json!({"error": "temporarily_unavailable"})).header("retry-after", "7"),
            Some(503),
        ),
        ("502 HTML", html, Some(502)),
        ("429", Reply::status(429).header("retry-after", "3"), Some(429)),
        (
            "500 server_error",
            Reply::json(500, json!({"error": "server_error"})),
            Some(500),
        ),
        (
            "400 temporarily_unavailable",
            Reply::json(400, json!({"error": "temporarily_unavailable"})),
            Some(400),
        ),
        ("malformed 200", malformed, Some(200)),
        ("JSON array", Reply::json(200, json!([1, 2])), Some(200)),
    ];
    for (name, reply, status) in cases {
        let m = Mock::start().await;
        standard(&m);
        m.fixed("/token", reply);
        let store = Arc::new(MemoryStorage::new());
        let before = tokens("at-0", "rt-0", &m.base, true);
        seed(store.as_ref(), &m, before.clone()).await;
        let person = Arc::new(Person::default());
        let p = build(cfg(&m), store.clone(), person.clone());

        let e = calls::header(&p).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{name}: {e}");
        assert_eq!(e.status(), status, "{name}: {e}");
        assert_eq!(e.step(), Some(Step::Refresh), "{name}: {e}");
        if name == "503 JSON" {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{name}");
        }
        // The server's 401 does not turn the outage into a new consent either.
        let e = calls::respond(&p, 401, &[CHALLENGE], None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{name}: {e}");
        assert_eq!(
            person.redirects.load(Ordering::SeqCst),
            0,
            "{name}: nobody is sent to consent"
        );
        assert_eq!(
            store.get_tokens().await.unwrap(),
            Some(before.clone()),
            "{name}: the tokens are kept as they were"
        );

        // Recovery: the next request refreshes silently.
        m.standard_as("");
        assert_eq!(
            calls::header(&p).await.unwrap().as_deref(),
            Some("Bearer at-1"),
            "{name}"
        );
        assert_eq!(
            stored_rt(store.get_tokens().await.unwrap()).as_deref(),
            Some("rt-1"),
            "{name}"
        );
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{name}");
    }
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_is_a_timeout_that_keeps_the_tokens() {
    let m = Mock::start().await;
    standard(&m);
    m.fixed("/token", Reply::json(200, json!({})).delayed(Duration::from_secs(30)));
    let store = Arc::new(MemoryStorage::new());
    let before = tokens("at-0", "rt-0", &m.base, true);
    seed(store.as_ref(), &m, before.clone()).await;
    let mut c = cfg(&m);
    c.timeout = Duration::from_millis(300);
    let p = build(c, store.clone(), Arc::new(Person::default()));
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert_eq!(e.network_failure(), Some(NetworkFailure::Timeout), "{e}");
    assert_eq!(store.get_tokens().await.unwrap(), Some(before));
}

#[tokio::test]
async fn an_early_refresh_that_fails_uses_the_still_valid_token() {
    let m = Mock::start().await;
    standard(&m);
    m.fixed("/token", Reply::status(503));
    let store = Arc::new(MemoryStorage::new());
    // Due for refresh (inside the margin) but not expired.
    let mut t = tokens("at-0", "rt-0", &m.base, false);
    t.expires_at = Some(now() + 5.0);
    seed(store.as_ref(), &m, t).await;
    let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-0"));
    assert_eq!(m.count("/token"), 1);
}

#[tokio::test]
async fn invalid_client_registers_again_or_names_the_configured_client() {
    // A dynamic registration the server no longer knows: forgotten, done again.
    let m = Mock::start().await;
    standard(&m);
    m.route("/token", |s| {
        let form = s.form();
        if form["grant_type"] == "refresh_token" {
            Reply::json(401, json!({"error": "invalid_client"}))
        } else {
            Reply::json(
                200,
                json!({"access_token": "new-at", "token_type": "Bearer", "client": form.get("client_id")}),
            )
        }
    });
    let store = Arc::new(MemoryStorage::new());
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), store.clone(), person.clone());
    let retry = calls::retried(
        calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-0"))
            .await
            .unwrap(),
    );
    assert_eq!(retry.as_deref(), Some("Bearer new-at"));
    assert_eq!(m.count("/register"), 1, "registered again");
    assert_eq!(person.last_query()["client_id"], "registered-client");
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().client_id,
        "registered-client"
    );
    assert_eq!(
        m.requests_to("/token").last().unwrap().form()["client_id"],
        "registered-client"
    );

    // Configured credentials: only the host can fix them.
    let m = Mock::start().await;
    standard(&m);
    m.fixed(
        "/token",
        Reply::json(401, json!({"error": "invalid_client", "error_description": "unknown"})),
    );
    let store = Arc::new(MemoryStorage::new());
    let before = tokens("at-0", "rt-0", &m.base, true);
    store.set_tokens(before.clone()).await.unwrap();
    let mut c = cfg(&m);
    c.static_client = Some(StaticClient::new("svc-client", Some(Secret::new("SECRETVALUE"))));
    let person = Arc::new(Person::default());
    let p = build(c, store.clone(), person.clone());
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
    assert!(e.to_string().contains("svc-client"), "{e}");
    assert!(!e.to_string().contains("SECRETVALUE"), "{e}");
    assert_eq!(e.oauth_error(), Some("invalid_client"));
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
    assert_eq!(m.count("/register"), 0);
}

#[tokio::test]
async fn a_refresh_token_rotated_by_another_process_is_never_sent_again() {
    let m = Mock::start().await;
    standard(&m);
    let dir = tempfile::tempdir().unwrap();
    let store = || Arc::new(FileStorage::new(dir.path(), &m.url("/mcp")).unwrap());
    let other_process = store();
    seed(other_process.as_ref(), &m, tokens("at-0", "rt-0", &m.base, false)).await;
    let p = build(cfg(&m), store(), Arc::new(Person::default()));
    assert_eq!(
        calls::header(&p).await.unwrap().as_deref(),
        Some("Bearer at-0"),
        "this process holds RT0"
    );

    // The other process rotated RT0 to RT-A, and its access token expired too.
    other_process
        .set_tokens(tokens("at-A", "rt-A", &m.base, true))
        .await
        .unwrap();
    let retry = calls::retried(
        calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-0"))
            .await
            .unwrap(),
    );
    assert_eq!(retry.as_deref(), Some("Bearer at-1"));
    let refreshes = m.requests_to("/token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(
        refreshes[0].form()["refresh_token"],
        "rt-A",
        "the newest refresh token, never RT0"
    );

    // It rotated again, and its access token is fresh: adopted, no request.
    other_process
        .set_tokens(tokens("at-B", "rt-B", &m.base, false))
        .await
        .unwrap();
    let retry = calls::retried(
        calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-1"))
            .await
            .unwrap(),
    );
    assert_eq!(retry.as_deref(), Some("Bearer at-B"));
    assert_eq!(m.count("/token"), 1);
    for seen in m.requests_to("/token") {
        assert!(!seen.body.contains("rt-0"), "RT0 was sent");
    }
}

#[tokio::test]
async fn tokens_and_secrets_stay_with_their_issuer() {
    // Tokens from another authorization server: their refresh token is not
    // sent to this one, after a restart included; a new authorization runs.
    let m = Mock::start().await;
    standard(&m);
    let store = Arc::new(MemoryStorage::new());
    store
        .set_tokens(tokens("at-x", "rt-elsewhere", "https://as.elsewhere.example", true))
        .await
        .unwrap();
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), store.clone(), person.clone());
    let retry = calls::retried(
        calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-x"))
            .await
            .unwrap(),
    );
    assert_eq!(retry.as_deref(), Some("Bearer at-1"));
    assert_eq!(person.redirects.load(Ordering::SeqCst), 1);
    for seen in m.seen.lock().unwrap().iter() {
        assert!(
            !seen.body.contains("rt-elsewhere"),
            "the refresh token went to {}",
            seen.path
        );
    }
    assert_eq!(
        store.get_tokens().await.unwrap().unwrap().issuer.as_deref(),
        Some(m.base.as_str()),
        "stored tokens carry their issuer"
    );

    // Credentials pinned to an issuer: metadata naming another is refused
    // before any request could carry the secret.
    let m = Mock::start().await;
    standard(&m);
    let mut c = cfg(&m);
    let mut sc = StaticClient::new("pinned-client", Some(Secret::new("SECRETVALUE")));
    sc.issuer = Some("https://login.example.com/tenant".into());
    c.static_client = Some(sc);
    let person = Arc::new(Person::default());
    let p = build(c, Arc::new(MemoryStorage::new()), person.clone());
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
    assert!(e.to_string().contains("pinned"), "{e}");
    assert_eq!(m.count("/token") + m.count("/register"), 0);
    assert_eq!(m.count("/.well-known/oauth-authorization-server"), 0);
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refresh_outlives_its_cancelled_caller() {
    let m = Mock::start().await;
    standard(&m);
    let served = Arc::new(AtomicUsize::new(0));
    let s = served.clone();
    m.route("/token", move |_| {
        let n = s.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(200, json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": format!("rt-{n}")}))
            .delayed(Duration::from_millis(400))
    });
    let store = Arc::new(MemoryStorage::new());
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    // The caller gives up once the refresh is on the wire.
    let caller = tokio::spawn({
        let p = p.clone();
        async move { calls::header(&p).await }
    });
    while m.count("/token") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    // The rotated token is stored and held all the same.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored_rt(store.get_tokens().await.unwrap()).as_deref() != Some("rt-1") {
        assert!(std::time::Instant::now() < deadline, "the refresh never completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-1"));
    assert_eq!(served.load(Ordering::SeqCst), 1, "no second refresh");
}

#[tokio::test]
async fn waiters_on_a_dead_authorization_server_wait_once_together() {
    let m = Mock::start().await;
    standard(&m);
    m.fixed("/token", Reply::status(503).delayed(Duration::from_millis(300)));
    let store = Arc::new(MemoryStorage::new());
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let p = build(cfg(&m), store, Arc::new(Person::default()));
    let calls: Vec<_> = (0..20).map(|_| calls::header(&p)).collect();
    let outcomes = futures_util::future::join_all(calls).await;
    assert_eq!(m.count("/token"), 1, "one refresh for everyone");
    for o in outcomes {
        assert_eq!(o.unwrap_err().kind(), ErrorKind::Server);
    }
}

#[tokio::test]
async fn a_token_known_to_be_expired_is_never_sent() {
    // As a store written by another SDK keeps it: `expires_in: 0`, no absolute expiry.
    let m = Mock::start().await;
    standard(&m);
    let store = Arc::new(MemoryStorage::new());
    let mut t = OAuthToken::bearer("at-0");
    t.refresh_token = Some(Secret::new("rt-0"));
    t.expires_in = Some(0);
    seed(store.as_ref(), &m, t).await;
    let p = build(cfg(&m), store, Arc::new(Person::default()));
    let calls: Vec<_> = (0..200).map(|_| calls::header(&p)).collect();
    for o in futures_util::future::join_all(calls).await {
        assert_eq!(o.unwrap().as_deref(), Some("Bearer at-1"));
    }
    assert_eq!(m.count("/token"), 1);

    // Without a refresh token: no header at all, and the server's 401 starts the flow.
    let m = Mock::start().await;
    standard(&m);
    let store = Arc::new(MemoryStorage::new());
    let mut t = OAuthToken::bearer("at-0");
    t.expires_in = Some(3600);
    t.expires_at = Some(now() - 1.0);
    store.set_tokens(t).await.unwrap();
    let p = build(cfg(&m), store, Arc::new(Person::default()));
    assert_eq!(calls::header(&p).await.unwrap(), None);
}

#[tokio::test]
async fn hostile_token_responses_store_nothing_and_leak_nothing() {
    let bodies = [
        json!({"access_token": "SECRET VALUE", "token_type": "Bearer"}),
        json!({"access_token": "SECRETVALUE\r\nX-Injected: 1", "token_type": "Bearer"}),
        json!({"access_token": "SECRETVALUE\u{7}", "token_type": "Bearer"}),
        json!({"access_token": "", "token_type": "Bearer"}),
        json!({"access_token": "SECRETVALUE", "token_type": "Bearer", "expires_in": -5}),
        json!({"access_token": "SECRETVALUE", "token_type": "Bearer", "expires_in": 400_000_000u64}),
        json!({"access_token": "SECRETVALUE", "token_type": "mac"}),
        json!({"access_token": "SECRETVALUE", "token_type": "DPoP"}),
        json!(["SECRETVALUE"]),
    ];
    for body in bodies {
        let m = Mock::start().await;
        standard(&m);
        m.fixed("/token", Reply::json(200, body.clone()));
        let store = Arc::new(MemoryStorage::new());
        let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_eq!(e.step(), Some(Step::TokenExchange), "{body}: {e}");
        assert!(!format!("{e} {e:?}").contains("SECRET"), "{body}: {e}");
        assert!(store.get_tokens().await.unwrap().is_none(), "{body}: stored");
        assert!(p.current_token().is_none(), "{body}: held");

        // On a refresh, the stored tokens stay exactly as they were.
        let store = Arc::new(MemoryStorage::new());
        let before = tokens("at-0", "rt-0", &m.base, true);
        seed(store.as_ref(), &m, before.clone()).await;
        let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
        let e = calls::header(&p).await.unwrap_err();
        assert_eq!(e.step(), Some(Step::Refresh), "{body}: {e}");
        assert!(!format!("{e} {e:?}").contains("SECRET"), "{body}: {e}");
        assert_eq!(store.get_tokens().await.unwrap(), Some(before), "{body}");
    }
}

#[tokio::test]
async fn hostile_registrations_are_refused_before_any_browser_opens() {
    let cases = [
        ("drops our redirect URI", json!({"client_id": "c", "redirect_uris": []})),
        (
            "substitutes another",
            json!({"client_id": "c", "redirect_uris": ["https://evil.example/cb"]}),
        ),
        (
            "adds another",
            json!({"client_id": "c", "redirect_uris": ["http://127.0.0.1:9/cb", "https://evil.example/cb"]}),
        ),
        (
            "switches to a method we cannot perform",
            json!({"client_id": "c", "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
        ),
        (
            "a secret method without a secret",
            json!({"client_id": "c", "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
        ),
    ];
    for (name, body) in cases {
        let m = Mock::start().await;
        standard(&m);
        m.fixed("/register", Reply::json(201, body));
        let store = Arc::new(MemoryStorage::new());
        let person = Arc::new(Person::default());
        let p = build(cfg(&m), store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Registration, "{name}: {e}");
        assert_eq!(e.step(), Some(Step::Registration), "{name}: {e}");
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{name}: a browser opened");
        assert!(store.get_client_info().await.unwrap().is_none(), "{name}: stored");
        assert_eq!(m.count("/token"), 0, "{name}");
    }
}

/// A person who never comes back.
struct Gone;

#[async_trait]
impl AuthorizationHandler for Gone {
    async fn redirect(&self, _url: &Url) -> mcp_oauth_client::Result<()> {
        Ok(())
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn every_wait_has_a_deadline() {
    // The person's step.
    let m = Mock::start().await;
    standard(&m);
    let mut c = cfg(&m);
    c.authorization_timeout = Duration::from_millis(200);
    let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), Some(Arc::new(Gone))).unwrap();
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Handler, "{e}");
    assert!(e.to_string().contains("did not complete"), "{e}");

    // Another process holding the store's refresh lease.
    let m = Mock::start().await;
    standard(&m);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStorage::new(dir.path(), &m.url("/mcp")).unwrap());
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let holder = FileStorage::new(dir.path(), &m.url("/mcp")).unwrap();
    let _held = holder
        .acquire_lease(Duration::from_secs(60), Duration::from_secs(1))
        .await
        .unwrap();
    let mut c = cfg(&m);
    c.lease_wait = Duration::from_millis(200);
    let p = build(c, store, Arc::new(Person::default()));
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("lease"), "{e}");
    assert_eq!(m.count("/token"), 0);
}

#[tokio::test]
async fn settings_for_real_servers() {
    // Entra ID: no `resource`; Auth0: an `audience`.
    let m = Mock::start().await;
    standard(&m);
    let mut c = cfg(&m);
    c.resource_parameter = ResourceParameter::Omit;
    c.extra_authorization_params = vec![("audience".into(), "https://api.example".into())];
    c.extra_token_params = vec![("audience".into(), "https://api.example".into())];
    let person = Arc::new(Person::default());
    let p = build(c, Arc::new(MemoryStorage::new()), person.clone());
    on_401(&p, CHALLENGE).await.unwrap();
    let q = person.last_query();
    assert!(!q.contains_key("resource"));
    assert_eq!(q["audience"], "https://api.example");
    let form = m.requests_to("/token")[0].form();
    assert!(!form.contains_key("resource"));
    assert_eq!(form["audience"], "https://api.example");

    let m = Mock::start().await;
    standard(&m);
    let mut c = cfg(&m);
    c.resource_parameter = ResourceParameter::Override("api://my-app".into());
    let person = Arc::new(Person::default());
    let p = build(c, Arc::new(MemoryStorage::new()), person.clone());
    on_401(&p, CHALLENGE).await.unwrap();
    assert_eq!(person.last_query()["resource"], "api://my-app");
    assert_eq!(m.requests_to("/token")[0].form()["resource"], "api://my-app");
}

#[tokio::test]
async fn discovery_is_an_inspectable_result() {
    let m = Mock::start().await;
    standard(&m);
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let report = p.inspect().await;
    assert!(report.is_ok(), "{:?}", report.error);
    let whats: Vec<&str> = report.steps.iter().map(|s| s.what.as_str()).collect();
    for expected in [
        "protected resource metadata",
        "resource check",
        "authorization server metadata",
        "issuer check",
        "PKCE",
        "client identity",
        "scope",
    ] {
        assert!(whats.contains(&expected), "{expected} missing from {whats:?}");
    }
    assert!(report.client_identity.unwrap().contains("dynamic registration"));
    assert_eq!(m.count("/register") + m.count("/token"), 0, "nothing registered");

    // A broken chain says where it broke.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(
            200,
            json!({"issuer": m.base, "authorization_endpoint": m.url("/a"), "token_endpoint": m.url("/t")}),
        ),
    );
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let report = p.inspect().await;
    assert!(
        report
            .error
            .unwrap()
            .to_string()
            .contains("code_challenge_methods_supported")
    );
    let pkce = report.steps.iter().find(|s| s.what == "PKCE").unwrap();
    assert_eq!(pkce.verdict, Verdict::Failed);
}

#[tokio::test]
async fn diagnosis_starts_with_the_servers_401_and_uses_its_challenge() {
    let m = Mock::start().await;
    m.standard_as("");
    // The metadata only where the challenge says, and a scope in the challenge.
    m.fixed(
        "/prm",
        Reply::json(
            200,
            json!({"resource": m.url("/mcp"), "authorization_servers": [m.base]}),
        ),
    );
    let challenge = format!("Bearer resource_metadata=\"{}\", scope=\"read write\"", m.url("/prm"));
    m.fixed("/mcp", Reply::status(401).header("www-authenticate", &challenge));
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let report = p.diagnose().await;
    assert!(report.is_ok(), "{:?}", report.error);
    assert!(!report.has_warnings());
    let first = &report.steps[0];
    assert_eq!(first.what, mcp_oauth_client::discovery::PROBE);
    assert_eq!((first.status, first.verdict), (Some(401), Verdict::Ok));
    assert_eq!(m.requests_to("/mcp")[0].method, "POST");
    assert!(m.requests_to("/mcp")[0].body.contains("\"initialize\""));
    assert_eq!(report.challenge.unwrap().scope.as_deref(), Some("read write"));
    assert_eq!(report.steps[1].url.as_deref(), Some(m.url("/prm").as_str()));
    assert_eq!(report.scope.as_deref(), Some("read write offline_access"));
    assert_eq!(m.count("/register") + m.count("/token"), 0, "nothing registered");

    // A server error at the first request breaks the chain there, with a fix.
    m.fixed("/mcp", Reply::status(503));
    let report = p.diagnose().await;
    assert_eq!(report.error.unwrap().status(), Some(503));
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].verdict, Verdict::Failed);
    assert!(
        report.steps[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("MCP server itself fails")
    );
}

/// A store that fails its token writes while `failing` is set.
struct Flaky {
    inner: MemoryStorage,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TokenStorage for Flaky {
    async fn get_tokens(&self) -> mcp_oauth_client::Result<Option<OAuthToken>> {
        self.inner.get_tokens().await
    }
    async fn set_tokens(&self, tokens: OAuthToken) -> mcp_oauth_client::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(mcp_oauth_client::Error::storage("the disk is full"));
        }
        self.inner.set_tokens(tokens).await
    }
    async fn get_client_info(&self) -> mcp_oauth_client::Result<Option<OAuthClientInformationFull>> {
        self.inner.get_client_info().await
    }
    async fn set_client_info(&self, info: OAuthClientInformationFull) -> mcp_oauth_client::Result<()> {
        self.inner.set_client_info(info).await
    }
}

#[tokio::test]
async fn tokens_that_could_not_be_saved_are_used_and_saved_with_the_next_refresh() {
    let m = Mock::start().await;
    standard(&m);
    let store = Arc::new(Flaky {
        inner: MemoryStorage::new(),
        failing: false.into(),
    });
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    store.failing.store(true, Ordering::SeqCst);
    // The refresh worked but its tokens could not be saved: the caller is told.
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    // They are held all the same, and used.
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-1"));
    assert_eq!(m.count("/token"), 1);
    // The next refresh starts from them, not from the stale stored RT0, and
    // saves once the store works again.
    store.failing.store(false, Ordering::SeqCst);
    let retry = calls::retried(
        calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-1"))
            .await
            .unwrap(),
    );
    assert_eq!(retry.as_deref(), Some("Bearer at-2"));
    assert_eq!(m.requests_to("/token")[1].form()["refresh_token"], "rt-1");
    assert_eq!(stored_rt(store.get_tokens().await.unwrap()).as_deref(), Some("rt-2"));
}

/// A shared store that went away after the provider loaded from it: its
/// lease fails while `down` is set (a Redis that stopped answering).
struct LeaseDown {
    inner: MemoryStorage,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TokenStorage for LeaseDown {
    async fn get_tokens(&self) -> mcp_oauth_client::Result<Option<OAuthToken>> {
        self.inner.get_tokens().await
    }
    async fn set_tokens(&self, tokens: OAuthToken) -> mcp_oauth_client::Result<()> {
        self.inner.set_tokens(tokens).await
    }
    async fn get_client_info(&self) -> mcp_oauth_client::Result<Option<OAuthClientInformationFull>> {
        self.inner.get_client_info().await
    }
    async fn set_client_info(&self, info: OAuthClientInformationFull) -> mcp_oauth_client::Result<()> {
        self.inner.set_client_info(info).await
    }
    async fn acquire_lease(&self, ttl: Duration, _wait: Duration) -> mcp_oauth_client::Result<mcp_oauth_client::Lease> {
        if self.down.load(Ordering::SeqCst) {
            return Err(mcp_oauth_client::Error::storage("the shared store is unreachable"));
        }
        Ok(mcp_oauth_client::Lease::unguarded(ttl))
    }
}

/// The store is down when a still-valid token is due for its early refresh:
/// the request goes out with that token and nothing is asked of the server.
/// With an expired token the refresh fails with the store's error, asking
/// nothing of the server either; once the store is back, the refresh happens.
#[tokio::test]
async fn a_store_down_at_an_early_refresh_keeps_the_valid_token_in_use() {
    let m = Mock::start().await;
    standard(&m);
    let store = Arc::new(LeaseDown {
        inner: MemoryStorage::new(),
        down: true.into(),
    });
    // Due (inside the 30 s margin of a one-hour token) but valid.
    let mut t = tokens("at-0", "rt-0", &m.base, false);
    t.expires_at = Some(now() + 20.0);
    seed(store.as_ref(), &m, t).await;
    let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-0"));
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-0"));
    assert_eq!(m.count("/token"), 0);

    // Expired: the store's error, and still nothing sent.
    seed(store.as_ref(), &m, tokens("at-0", "rt-0", &m.base, true)).await;
    let restarted = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    let e = calls::header(&restarted).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("unreachable"), "{e}");
    assert_eq!(m.count("/token"), 0);

    // Back: the refresh happens.
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(calls::header(&restarted).await.unwrap().as_deref(), Some("Bearer at-1"));
    assert_eq!(m.count("/token"), 1);
}
