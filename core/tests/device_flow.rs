//! The device authorization grant (RFC 8628) against an in-process
//! authorization server, on paused time: polling honours `interval` and
//! `slow_down`, `expired_token`, `access_denied` and the code's expiry end it
//! with clear errors, a cancelled operation stops polling, and hostile device
//! authorization responses are refused before anything is shown or stored.

mod calls;
mod mock;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_client::{
    DeviceAuthorization, DeviceCodeHandler, ErrorKind, MemoryStorage, OAuthClientMetadata, OAuthClientProvider,
    ProviderConfig, Step, TokenStorage,
};
use mock::{Mock, Reply};
use serde_json::json;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Default)]
struct Screen {
    shown: Mutex<Vec<DeviceAuthorization>>,
    notify: tokio::sync::Notify,
}

#[async_trait]
impl DeviceCodeHandler for Screen {
    async fn show(&self, a: &DeviceAuthorization) -> mcp_oauth_client::Result<()> {
        self.shown.lock().unwrap().push(a.clone());
        self.notify.notify_waiters();
        Ok(())
    }
}

impl Screen {
    fn count(&self) -> usize {
        self.shown.lock().unwrap().len()
    }
}

/// An authorization server with a device authorization endpoint whose
/// answer is `device`, and a token endpoint answering from `token` (called
/// with the poll's number, from 1), recording when each poll came.
struct Server {
    mock: Mock,
    polls: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

async fn server(device: serde_json::Value, token: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
    let m = Mock::start().await;
    let meta = json!({
        "issuer": m.base,
        "authorization_endpoint": m.url("/authorize"),
        "token_endpoint": m.url("/token"),
        "registration_endpoint": m.url("/register"),
        "device_authorization_endpoint": m.url("/device"),
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "scopes_supported": ["read", "offline_access"],
    });
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    m.standard_prm(&m.base);
    m.route("/register", |seen| {
        let asked: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        let mut answer = asked.clone();
        answer["client_id"] = json!("device-client");
        Reply::json(201, answer)
    });
    m.fixed("/device", Reply::json(200, device));
    let polls: Arc<Mutex<Vec<tokio::time::Instant>>> = Arc::default();
    let p = polls.clone();
    m.route("/token", move |_| {
        let mut polls = p.lock().unwrap();
        polls.push(tokio::time::Instant::now());
        token(polls.len())
    });
    Server { mock: m, polls }
}

fn device_answer(interval: Option<u64>, expires_in: u64) -> serde_json::Value {
    let mut v = json!({
        "device_code": "the-device-code",
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://as.example/device",
        "verification_uri_complete": "https://as.example/device?user_code=WDJB-MJHT",
        "expires_in": expires_in,
    });
    if let Some(i) = interval {
        v["interval"] = json!(i);
    }
    v
}

fn oauth_error(code: &str) -> Reply {
    Reply::json(400, json!({"error": code}))
}

fn issued(n: usize) -> Reply {
    Reply::json(
        200,
        json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"}),
    )
}

fn provider(s: &Server, screen: Arc<Screen>, storage: Arc<dyn TokenStorage>) -> OAuthClientProvider {
    let mut metadata = OAuthClientMetadata::new(vec![]);
    metadata.client_name = Some("device test".into());
    metadata.scope = Some("read offline_access".into());
    let mut c = ProviderConfig::new(s.mock.url("/mcp"), metadata);
    c.use_device_code(screen);
    c.transport = Some(s.mock.transport());
    c.authorization_timeout = Duration::from_secs(3600);
    OAuthClientProvider::new(c, storage, None).unwrap()
}

fn gaps(polls: &[tokio::time::Instant], start: tokio::time::Instant) -> Vec<u64> {
    let mut out = Vec::new();
    let mut last = start;
    for p in polls {
        out.push((*p - last).as_secs());
        last = *p;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn polls_at_the_interval_slows_down_when_asked_and_stores_the_tokens() {
    let s = server(device_answer(Some(2), 600), |n| match n {
        1 => oauth_error("authorization_pending"),
        2 => oauth_error("slow_down"),
        3 => oauth_error("authorization_pending"),
        n => issued(n),
    })
    .await;
    let screen = Arc::new(Screen::default());
    let storage = Arc::new(MemoryStorage::default());
    let p = provider(&s, screen.clone(), storage.clone());
    let start = tokio::time::Instant::now();
    p.authorize().await.unwrap();

    // The person saw the code and where to enter it.
    let shown = screen.shown.lock().unwrap().clone();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].user_code, "WDJB-MJHT");
    assert_eq!(shown[0].verification_uri.as_str(), "https://as.example/device");
    assert_eq!(
        shown[0].verification_uri_complete.as_ref().map(|u| u.as_str()),
        Some("https://as.example/device?user_code=WDJB-MJHT")
    );
    assert!(
        !format!("{:?}", shown[0]).contains("WDJB"),
        "the user code is kept out of Debug"
    );

    // Every 2 s, then 7 s after slow_down.
    assert_eq!(gaps(&s.polls.lock().unwrap(), start), vec![2, 2, 7, 7]);

    // The registration asked for the device grant, without redirect URIs.
    let reg: serde_json::Value = serde_json::from_str(&s.mock.requests_to("/register")[0].body).unwrap();
    assert_eq!(reg["grant_types"], json!([DEVICE_GRANT, "refresh_token"]));
    assert!(reg["redirect_uris"].as_array().is_none_or(|a| a.is_empty()));
    // The device request carries the client, the scope and the resource.
    let asked = s.mock.requests_to("/device")[0].form();
    assert_eq!(asked["client_id"], "device-client");
    assert_eq!(asked["scope"], "read offline_access");
    assert_eq!(asked["resource"], s.mock.url("/mcp"));
    // Each poll sends the device code with its grant type.
    let poll = s.mock.requests_to("/token")[0].form();
    assert_eq!(poll["grant_type"], DEVICE_GRANT);
    assert_eq!(poll["device_code"], "the-device-code");
    assert_eq!(poll["client_id"], "device-client");

    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-4"));
    let stored = storage.get_tokens().await.unwrap().unwrap();
    assert_eq!(stored.access_token.expose(), "at-4");
}

#[tokio::test(start_paused = true)]
async fn without_an_interval_it_polls_every_five_seconds() {
    let s = server(device_answer(None, 600), |n| match n {
        1 => oauth_error("authorization_pending"),
        n => issued(n),
    })
    .await;
    let p = provider(&s, Arc::default(), Arc::new(MemoryStorage::default()));
    let start = tokio::time::Instant::now();
    p.authorize().await.unwrap();
    assert_eq!(gaps(&s.polls.lock().unwrap(), start), vec![5, 5]);
}

async fn failure(s: &Server) -> (mcp_oauth_client::Error, Arc<MemoryStorage>) {
    let storage = Arc::new(MemoryStorage::default());
    let p = provider(s, Arc::default(), storage.clone());
    let e = p.authorize().await.unwrap_err();
    assert!(storage.get_tokens().await.unwrap().is_none(), "nothing is stored");
    assert!(p.current_token().is_none());
    (e, storage)
}

#[tokio::test(start_paused = true)]
async fn expired_token_ends_polling_with_a_clear_error() {
    let s = server(device_answer(Some(1), 600), |n| match n {
        1 | 2 => oauth_error("authorization_pending"),
        _ => oauth_error("expired_token"),
    })
    .await;
    let (e, _) = failure(&s).await;
    assert_eq!(e.kind(), ErrorKind::Token);
    assert_eq!(e.step(), Some(Step::DeviceAuthorization));
    assert_eq!(e.oauth_error(), Some("expired_token"));
    assert!(e.message().contains("expired before the person approved"), "{e}");
    assert_eq!(s.polls.lock().unwrap().len(), 3, "no poll after expired_token");
}

#[tokio::test(start_paused = true)]
async fn access_denied_ends_polling_with_a_clear_error() {
    let s = server(device_answer(Some(1), 600), |n| match n {
        1 => oauth_error("authorization_pending"),
        _ => oauth_error("access_denied"),
    })
    .await;
    let (e, _) = failure(&s).await;
    assert_eq!(e.kind(), ErrorKind::Token);
    assert_eq!(e.oauth_error(), Some("access_denied"));
    assert!(e.message().contains("denied"), "{e}");
    assert_eq!(s.polls.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_codes_own_expiry_ends_polling_when_the_server_never_says_so() {
    let s = server(device_answer(Some(5), 30), |_| oauth_error("authorization_pending")).await;
    let start = tokio::time::Instant::now();
    let (e, _) = failure(&s).await;
    assert_eq!(e.step(), Some(Step::DeviceAuthorization));
    assert!(e.message().contains("device code expired (30 s)"), "{e}");
    // Polls at 5 .. 25 s; none at or after the expiry.
    assert_eq!(s.polls.lock().unwrap().len(), 5);
    assert_eq!((tokio::time::Instant::now() - start).as_secs(), 30);
}

#[tokio::test(start_paused = true)]
async fn an_outage_while_polling_is_retried_until_the_person_approves() {
    let s = server(device_answer(Some(1), 600), |n| match n {
        1 => Reply::status(503),
        2 => oauth_error("authorization_pending"),
        n => issued(n),
    })
    .await;
    let p = provider(&s, Arc::default(), Arc::new(MemoryStorage::default()));
    p.authorize().await.unwrap();
    assert_eq!(s.polls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_operation_stops_polling() {
    let s = server(device_answer(Some(1), 600), |_| oauth_error("authorization_pending")).await;
    let screen = Arc::new(Screen::default());
    let p = provider(&s, screen.clone(), Arc::new(MemoryStorage::default()));
    let login = {
        let p = p.clone();
        tokio::spawn(async move { p.authorize().await })
    };
    // Wait (on the paused clock, with a deadline) until it polls.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.polls.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "it never polled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    login.abort();
    assert!(login.await.unwrap_err().is_cancelled());
    let at_cancel = s.polls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        s.polls.lock().unwrap().len(),
        at_cancel,
        "polling went on after the cancel"
    );

    // The next log-in starts over with a new code.
    s.mock.route("/token", |_| issued(9));
    p.authorize().await.unwrap();
    assert_eq!(s.mock.count("/device"), 2);
    assert_eq!(screen.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_server_without_the_device_grant_is_a_clear_error() {
    let s = server(device_answer(Some(1), 600), issued).await;
    let meta = json!({
        "issuer": s.mock.base,
        "authorization_endpoint": s.mock.url("/authorize"),
        "token_endpoint": s.mock.url("/token"),
        "registration_endpoint": s.mock.url("/register"),
    });
    s.mock
        .fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    let (e, _) = failure(&s).await;
    assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata));
    assert!(e.message().contains("device_authorization_endpoint"), "{e}");
    assert_eq!(s.mock.count("/device"), 0);
}

#[tokio::test(start_paused = true)]
async fn hostile_device_authorization_responses_are_refused_before_anything_is_shown() {
    let good = device_answer(Some(5), 600);
    let with = |k: &str, v: serde_json::Value| {
        let mut a = good.clone();
        a[k] = v;
        a
    };
    let without = |k: &str| {
        let mut a = good.clone();
        a.as_object_mut().unwrap().remove(k);
        a
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "plain http off loopback",
            with("verification_uri", json!("http://as.example/device")),
            "verification_uri must use https",
        ),
        (
            "credentials in the URI",
            with("verification_uri", json!("https://user:pw@as.example/device")),
            "has credentials in it",
        ),
        (
            "a javascript: URI",
            with("verification_uri_complete", json!("javascript:alert(1)")),
            "verification_uri_complete must use https",
        ),
        (
            "no verification URI",
            without("verification_uri"),
            "no verification_uri",
        ),
        (
            "terminal escapes in the user code",
            with("user_code", json!("\u{1b}[2JABCD")),
            "no usable user_code",
        ),
        (
            "a very long user code",
            with("user_code", json!("A".repeat(200))),
            "no usable user_code",
        ),
        (
            "an empty user code",
            with("user_code", json!("")),
            "no usable user_code",
        ),
        ("no device code", without("device_code"), "no usable device_code"),
        (
            "a device code with a newline",
            with("device_code", json!("a\nb")),
            "no usable device_code",
        ),
        ("expires_in 0", with("expires_in", json!(0)), "expires_in (0 s)"),
        (
            "expires_in a week",
            with("expires_in", json!(604800)),
            "expires_in (604800 s)",
        ),
        ("no expires_in", without("expires_in"), "no expires_in"),
        (
            "a negative expires_in",
            with("expires_in", json!(-5)),
            "expires_in is not a whole number",
        ),
        ("interval 0", with("interval", json!(0)), "interval (0 s)"),
        ("interval an hour", with("interval", json!(3600)), "interval (3600 s)"),
        (
            "interval as text",
            with("interval", json!("5")),
            "interval is not a whole number",
        ),
    ];
    for (what, answer, expected) in cases {
        let s = server(answer, issued).await;
        let screen = Arc::new(Screen::default());
        let storage = Arc::new(MemoryStorage::default());
        let p = provider(&s, screen.clone(), storage.clone());
        let e = p.authorize().await.unwrap_err();
        assert_eq!(e.step(), Some(Step::DeviceAuthorization), "{what}: {e}");
        assert!(e.message().contains(expected), "{what}: {e}");
        assert_eq!(screen.count(), 0, "{what}: shown to the person");
        assert_eq!(s.mock.count("/token"), 0, "{what}: polled");
        assert!(storage.get_tokens().await.unwrap().is_none(), "{what}: stored");
        assert!(
            !e.to_string().contains("the-device-code"),
            "{what}: the device code leaked"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_at_the_device_endpoint_is_a_token_error_with_the_servers_code() {
    let s = server(json!({}), issued).await;
    s.mock.fixed(
        "/device",
        Reply::json(
            400,
            json!({"error": "invalid_scope", "error_description": "no such scope"}),
        ),
    );
    let (e, _) = failure(&s).await;
    assert_eq!(e.kind(), ErrorKind::Token);
    assert_eq!(e.oauth_error(), Some("invalid_scope"));
    assert_eq!(s.mock.count("/token"), 0);
}

#[tokio::test(start_paused = true)]
async fn inspect_checks_the_device_endpoint_instead_of_pkce() {
    let s = server(device_answer(Some(5), 600), issued).await;
    let p = provider(&s, Arc::default(), Arc::new(MemoryStorage::default()));
    let report = p.inspect().await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let device = report
        .steps
        .iter()
        .find(|st| st.what == "device authorization")
        .expect("a device step");
    assert_eq!(device.verdict, mcp_oauth_client::Verdict::Ok);
    assert_eq!(device.detail, s.mock.url("/device"));
    // The metadata advertises no PKCE methods: the device flow does not need them.
    assert!(report.steps.iter().all(|st| st.what != "PKCE"));

    let meta = json!({"issuer": s.mock.base, "token_endpoint": s.mock.url("/token"), "registration_endpoint": s.mock.url("/register")});
    s.mock
        .fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    let p = provider(&s, Arc::default(), Arc::new(MemoryStorage::default()));
    let report = p.inspect().await;
    let device = report
        .steps
        .iter()
        .find(|st| st.what == "device authorization")
        .unwrap();
    assert_eq!(device.verdict, mcp_oauth_client::Verdict::Failed);
    assert!(
        report
            .error
            .unwrap()
            .message()
            .contains("device_authorization_endpoint")
    );
}
