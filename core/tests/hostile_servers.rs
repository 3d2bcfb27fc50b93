//! Hostile servers, end to end through the provider (issue 16): a request
//! gets a 401, the flow runs against a server that lies, and the test checks
//! what a user would see. Each case asserts three things:
//!
//! - the call comes back with a clear error (its kind, and a message that
//!   names the problem);
//! - nothing the hostile answer produced is stored or held;
//! - no token, code, verifier or client secret reached an origin it does not
//!   belong to: every request each in-process server received is recorded and
//!   searched.
//!
//! Three origins take part: `rs` (the MCP server), `auth` (its authorization
//! server) and `evil` (anything else: another authorization server, the
//! target of a redirect).

mod calls;
mod fixture;
mod mock;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fixture::*;
use mcp_oauth_client::{
    ErrorKind, MemoryStorage, OAuthClientInformationFull, OAuthClientProvider, OAuthToken, RequestInfo, ResponseAction,
    ResponseInfo, Secret, StaticClient, Step, TokenStorage,
};
use mock::{Mock, Reply, Seen};
use serde_json::{Value, json};

/// The code the fixture's person brings back.
const CODE: &str = "the-code";

/// The MCP server, its authorization server, and a third origin.
struct World {
    rs: Mock,
    auth: Mock,
    evil: Mock,
}

impl World {
    /// `rs` publishes metadata naming `auth`; `auth` is a standard
    /// authorization server whose tokens are `AT-auth-N` / `RT-auth-N`.
    async fn start() -> World {
        let (rs, auth, evil) = (Mock::start().await, Mock::start().await, Mock::start().await);
        rs.standard_prm(&auth.base);
        auth.standard_as("");
        issue_tokens(&auth, "auth");
        World { rs, auth, evil }
    }

    fn provider(&self, store: Arc<MemoryStorage>, person: Arc<Person>) -> OAuthClientProvider {
        build(cfg(&self.rs), store, person)
    }

    fn all(&self) -> [(&'static str, &Mock); 3] {
        [("rs", &self.rs), ("auth", &self.auth), ("evil", &self.evil)]
    }
}

/// Tokens `AT-{tag}-N` / `RT-{tag}-N` from `m`'s token endpoint.
fn issue_tokens(m: &Mock, tag: &'static str) {
    let n = Arc::new(AtomicUsize::new(0));
    m.route("/token", move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(
            200,
            json!({"access_token": format!("AT-{tag}-{i}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": format!("RT-{tag}-{i}")}),
        )
    });
}

/// Everything of a request a secret could hide in.
fn everything(s: &Seen) -> String {
    let mut all = format!("{} {}?{}\n", s.method, s.path, s.query);
    for (k, v) in &s.headers {
        all.push_str(&format!("{k}: {v}\n"));
    }
    all.push_str(&s.body);
    all
}

/// No request `m` received carried credentials (an `Authorization` or `DPoP`
/// header, a client assertion, a code, a verifier, a refresh token, a client
/// secret) or any of `secrets`.
fn assert_clean(m: &Mock, name: &str, secrets: &[&str], case: &str) {
    for s in m.seen.lock().unwrap().iter() {
        let all = everything(s);
        assert!(
            !s.headers.contains_key("authorization") && !s.headers.contains_key("dpop"),
            "{case}: credentials in a header sent to {name}: {} {}",
            s.method,
            s.path
        );
        let form = s.form();
        for field in [
            "code",
            "code_verifier",
            "refresh_token",
            "client_secret",
            "client_assertion",
            "assertion",
            "subject_token",
        ] {
            assert!(
                !form.contains_key(field),
                "{case}: {field} sent to {name}: {} {}",
                s.method,
                s.path
            );
        }
        for secret in secrets.iter().chain([&CODE]) {
            assert!(!all.contains(secret), "{case}: {secret:?} reached {name}: {all}");
        }
    }
}

/// None of `secrets` reached `m`, in any part of any request.
fn assert_none_of(m: &Mock, name: &str, secrets: &[&str], case: &str) {
    for s in m.seen.lock().unwrap().iter() {
        let all = everything(s);
        for secret in secrets {
            assert!(!all.contains(secret), "{case}: {secret:?} reached {name}: {all}");
        }
    }
}

/// Nothing is stored or held.
async fn assert_nothing_kept(p: &OAuthClientProvider, store: &MemoryStorage, case: &str) {
    assert!(store.get_tokens().await.unwrap().is_none(), "{case}: tokens stored");
    assert!(p.current_token().is_none(), "{case}: a token is held");
    assert_eq!(calls::header(p).await.unwrap(), None, "{case}: a token would be sent");
}

/// `e` is of `kind` and its message says each of `words`.
fn assert_says(e: &mcp_oauth_client::Error, kind: ErrorKind, words: &[&str], case: &str) {
    assert_eq!(e.kind(), kind, "{case}: {e}");
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "{case}: the error does not say {w:?}: {text}");
    }
}

fn as_metadata(m: &Mock, extra: Value) -> Value {
    let mut meta = json!({
        "issuer": m.base,
        "authorization_endpoint": m.url("/authorize"),
        "token_endpoint": m.url("/token"),
        "registration_endpoint": m.url("/register"),
        "code_challenge_methods_supported": ["S256"],
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            meta.as_object_mut().unwrap().remove(k);
        } else {
            meta[k] = v.clone();
        }
    }
    meta
}

fn serve_as_metadata(m: &Mock, meta: Value) {
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
}

// ---------------------------------------------------------------------------
// Mix-up: issuer, callback `iss`.

#[tokio::test]
async fn mix_up_metadata_naming_another_issuer_is_refused() {
    let w = World::start().await;
    // The metadata claims to be `evil`, with evil's endpoints.
    serve_as_metadata(
        &w.auth,
        json!({"issuer": w.evil.base, "authorization_endpoint": w.evil.url("/authorize"), "token_endpoint": w.evil.url("/token"), "registration_endpoint": w.evil.url("/register"), "code_challenge_methods_supported": ["S256"]}),
    );
    let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let p = w.provider(store.clone(), person.clone());
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_says(&e, ErrorKind::Flow, &["issuer", "refusing"], "issuer mix-up");
    assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata));
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "no person sent anywhere");
    assert!(
        w.evil.seen.lock().unwrap().is_empty(),
        "nothing goes to the other server"
    );
    assert_eq!(w.auth.count("/register") + w.auth.count("/token"), 0);
    assert!(store.get_client_info().await.unwrap().is_none());
    assert_nothing_kept(&p, &store, "issuer mix-up").await;
}

#[tokio::test]
async fn mix_up_callback_iss_of_another_server_or_missing_is_refused() {
    for (case, advertised, iss) in [
        ("iss of another server", false, Some("evil")),
        ("iss of another server, advertised", true, Some("evil")),
        ("iss missing though advertised", true, None),
        ("iss differing by a trailing slash", true, Some("slash")),
    ] {
        let w = World::start().await;
        if advertised {
            serve_as_metadata(
                &w.auth,
                as_metadata(&w.auth, json!({"authorization_response_iss_parameter_supported": true})),
            );
        }
        let iss = iss.map(|i| match i {
            "evil" => w.evil.base.clone(),
            _ => format!("{}/", w.auth.base),
        });
        let person = Arc::new(Person {
            iss,
            ..Default::default()
        });
        let store = Arc::new(MemoryStorage::new());
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_says(&e, ErrorKind::Flow, &["iss"], case);
        assert_eq!(e.step(), Some(Step::Callback), "{case}: {e}");
        for (name, m) in w.all() {
            assert_eq!(m.count("/token"), 0, "{case}: the code went to {name}");
            assert_clean(m, name, &[], case);
        }
        assert_nothing_kept(&p, &store, case).await;
    }
}

// ---------------------------------------------------------------------------
// Protected resource metadata.

#[tokio::test]
async fn resource_metadata_naming_another_resource_is_refused() {
    let w = World::start().await;
    w.rs.fixed(
        "/.well-known/oauth-protected-resource/mcp",
        Reply::json(
            200,
            json!({"resource": w.evil.url("/mcp"), "authorization_servers": [w.auth.base]}),
        ),
    );
    let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let p = w.provider(store.clone(), person.clone());
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_says(
        &e,
        ErrorKind::Flow,
        &["does not match the MCP server", "another origin"],
        "resource",
    );
    assert_eq!(e.step(), Some(Step::ResourceMetadata));
    assert!(
        w.auth.seen.lock().unwrap().is_empty(),
        "the named server is never asked"
    );
    assert!(w.evil.seen.lock().unwrap().is_empty());
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
    assert_nothing_kept(&p, &store, "resource").await;
}

#[tokio::test]
async fn an_authorization_server_over_plain_http_off_loopback_is_refused() {
    let w = World::start().await;
    for server in ["http://as.example", "http://10.0.0.1:8080/realms/x"] {
        w.rs.fixed(
            "/.well-known/oauth-protected-resource/mcp",
            Reply::json(
                200,
                json!({"resource": w.rs.url("/mcp"), "authorization_servers": [server]}),
            ),
        );
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_says(&e, ErrorKind::Flow, &["must use https", "issuer"], server);
        assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata), "{server}: {e}");
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
        assert_nothing_kept(&p, &store, server).await;
    }
    assert!(w.auth.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_challenge_pointing_at_metadata_on_another_origin_never_gets_credentials() {
    // The challenge names metadata at `evil`, which names itself as the
    // resource and itself as authorization server: refused by the resource
    // check (RFC 9728 §3.3), before anything is sent to evil's endpoints.
    let w = World::start().await;
    w.evil.fixed(
        "/prm",
        Reply::json(
            200,
            json!({"resource": w.evil.url("/mcp"), "authorization_servers": [w.evil.base]}),
        ),
    );
    w.evil.standard_as("");
    let store = Arc::new(MemoryStorage::new());
    let mut held = OAuthToken::bearer("AT-held");
    held.refresh_token = Some(Secret::new("RT-held"));
    store.set_tokens(held).await.unwrap();
    let mut info = OAuthClientInformationFull::new("held-client", Some(Secret::new("held-secret")));
    info.issuer = Some(w.auth.base.clone());
    store.set_client_info(info).await.unwrap();
    let person = Arc::new(Person::default());
    let p = w.provider(store.clone(), person.clone());
    let challenge = format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{}\"",
        w.evil.url("/prm")
    );
    let e = calls::respond(&p, 401, &[&challenge], Some("Bearer AT-held"))
        .await
        .unwrap_err();
    assert_says(&e, ErrorKind::Flow, &["another origin"], "cross-origin metadata");
    assert_eq!(
        w.evil.count("/prm"),
        1,
        "the metadata itself is fetched, as RFC 9728 says"
    );
    assert_eq!(w.evil.seen.lock().unwrap().len(), 1, "and nothing else is sent to evil");
    assert_clean(
        &w.evil,
        "evil",
        &["AT-held", "RT-held", "held-secret"],
        "cross-origin metadata",
    );
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
    assert_eq!(
        store
            .get_tokens()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .unwrap()
            .expose(),
        "RT-held",
        "what was stored is kept"
    );

    // A resource_metadata with a scheme that is not http(s) is ignored: the
    // well-known URL on the server's own origin is used.
    for bad in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:application/json,{}",
        "ftp://evil.example/prm",
    ] {
        let w = World::start().await;
        let p = w.provider(Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let challenge = format!("Bearer resource_metadata=\"{bad}\"");
        let a = on_401(&p, &challenge).await.unwrap();
        assert_eq!(a, calls::retry("Bearer AT-auth-1"), "{bad}");
        assert_eq!(w.rs.count("/.well-known/oauth-protected-resource/mcp"), 1, "{bad}");
    }
}

// ---------------------------------------------------------------------------
// PKCE.

#[tokio::test]
async fn an_authorization_server_without_pkce_s256_is_refused() {
    for (case, methods) in [
        ("missing", Value::Null),
        ("plain only", json!(["plain"])),
        ("empty", json!([])),
        ("lower-case s256", json!(["s256"])),
    ] {
        let w = World::start().await;
        serve_as_metadata(
            &w.auth,
            as_metadata(&w.auth, json!({"code_challenge_methods_supported": methods})),
        );
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_says(
            &e,
            ErrorKind::Flow,
            &["code_challenge_methods_supported", "refusing"],
            case,
        );
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{case}: a person was sent");
        assert_eq!(w.auth.count("/token"), 0, "{case}");
        assert_eq!(w.auth.count("/register"), 0, "{case}: registered with it");
        assert!(store.get_client_info().await.unwrap().is_none(), "{case}");
        assert_nothing_kept(&p, &store, case).await;
    }
}

// ---------------------------------------------------------------------------
// Token responses.

/// A token response and what the error must say.
struct Bad {
    case: &'static str,
    reply: Reply,
    kind: ErrorKind,
    says: &'static [&'static str],
}

fn bad(case: &'static str, body: Value, says: &'static [&'static str]) -> Bad {
    Bad {
        case,
        reply: Reply::json(200, body),
        kind: ErrorKind::Server,
        says,
    }
}

fn raw(status: u16, content_type: &str, body: &str) -> Reply {
    let mut r = Reply::status(status).header("content-type", content_type);
    r.body = body.as_bytes().to_vec();
    r
}

fn hostile_token_responses() -> Vec<Bad> {
    let t = |extra: Value| {
        let mut v = json!({"access_token": "HOSTILE-AT", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "HOSTILE-RT"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    vec![
        bad(
            "token_type mac",
            t(json!({"token_type": "mac"})),
            &["token_type", "\"mac\""],
        ),
        bad("token_type N_A", t(json!({"token_type": "N_A"})), &["token_type"]),
        bad("token_type Basic", t(json!({"token_type": "Basic"})), &["token_type"]),
        bad("token_type empty", t(json!({"token_type": ""})), &["token_type"]),
        bad(
            "negative expires_in",
            t(json!({"expires_in": -5})),
            &["negative expires_in"],
        ),
        bad(
            "negative fractional expires_in",
            t(json!({"expires_in": -0.5})),
            &["negative expires_in"],
        ),
        bad(
            "absurd expires_in",
            t(json!({"expires_in": 400_000_000u64})),
            &["expires_in", "more than a year"],
        ),
        bad(
            "expires_in past u64",
            t(json!({"expires_in": 1e300})),
            &["expires_in", "more than a year"],
        ),
        bad(
            "expires_in u64::MAX",
            t(json!({"expires_in": u64::MAX})),
            &["expires_in", "more than a year"],
        ),
        bad("expires_in a word", t(json!({"expires_in": "soon"})), &["malformed"]),
        bad(
            "empty access token",
            t(json!({"access_token": ""})),
            &["empty access_token"],
        ),
        bad("no access token", json!({"token_type": "Bearer"}), &["malformed"]),
        bad(
            "access token a number",
            t(json!({"access_token": 12345})),
            &["malformed"],
        ),
        bad(
            "access token with a space",
            t(json!({"access_token": "HOSTILE AT"})),
            &["access_token", "b64token"],
        ),
        bad(
            "access token smuggling a header",
            t(json!({"access_token": "HOSTILE-AT\r\nX-Injected: 1"})),
            &["access_token", "b64token"],
        ),
        bad(
            "access token with a control character",
            t(json!({"access_token": "HOSTILE-AT\u{7}"})),
            &["access_token", "b64token"],
        ),
        bad(
            "access token not ASCII",
            t(json!({"access_token": "HOSTILE-ÄT"})),
            &["access_token", "b64token"],
        ),
        bad(
            "access token with a quote",
            t(json!({"access_token": "HOSTILE\"AT"})),
            &["access_token", "b64token"],
        ),
        bad(
            "refresh token with a newline",
            t(json!({"refresh_token": "HOSTILE-RT\n"})),
            &["refresh_token"],
        ),
        bad("a JSON array", json!(["HOSTILE-AT"]), &["not a JSON object"]),
        bad("a JSON string", json!("HOSTILE-AT"), &["not a JSON object"]),
        bad("JSON null", Value::Null, &["not a JSON object"]),
        Bad {
            case: "an error with HTTP 200",
            reply: Reply::json(
                200,
                json!({"error": "invalid_request", "error_description": "no such thing"}),
            ),
            kind: ErrorKind::Token,
            says: &["refused", "invalid_request", "HTTP 200"],
        },
        Bad {
            case: "an HTML page with HTTP 200",
            reply: raw(200, "text/html", "<html><body>Sign in HOSTILE-AT</body></html>"),
            kind: ErrorKind::Server,
            says: &["not a JSON object", "HTTP 200"],
        },
        Bad {
            case: "an HTML page labelled JSON",
            reply: raw(200, "application/json", "<html>HOSTILE-AT</html>"),
            kind: ErrorKind::Server,
            says: &["not a JSON object"],
        },
        Bad {
            case: "an HTML error page",
            reply: raw(502, "text/html", "<html>Bad gateway</html>"),
            kind: ErrorKind::Server,
            says: &["error status", "HTTP 502"],
        },
        Bad {
            case: "an empty body",
            reply: raw(200, "application/json", ""),
            kind: ErrorKind::Server,
            says: &["not a JSON object"],
        },
    ]
}

#[tokio::test]
async fn hostile_token_responses_are_refused_in_the_authorization_code_flow() {
    for b in hostile_token_responses() {
        let w = World::start().await;
        w.auth.fixed("/token", b.reply.clone());
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_says(&e, b.kind, b.says, b.case);
        assert_eq!(e.step(), Some(Step::TokenExchange), "{}: {e}", b.case);
        assert!(!format!("{e} {e:?}").contains("HOSTILE"), "{}: {e}", b.case);
        assert_eq!(w.auth.count("/token"), 1, "{}: sent again", b.case);
        assert_eq!(person.redirects.load(Ordering::SeqCst), 1, "{}", b.case);
        assert_nothing_kept(&p, &store, b.case).await;
        // The code went to the token endpoint and nowhere else.
        assert_clean(&w.rs, "rs", &[], b.case);
        assert_clean(&w.evil, "evil", &[], b.case);
    }
}

#[tokio::test]
async fn hostile_token_responses_to_a_refresh_keep_what_was_stored() {
    for b in hostile_token_responses() {
        let w = World::start().await;
        w.auth.fixed("/token", b.reply.clone());
        let store = Arc::new(MemoryStorage::new());
        let mut held = OAuthToken::bearer("AT-old");
        held.refresh_token = Some(Secret::new("RT-old"));
        held.expires_in = Some(60);
        held.expires_at = Some(1.0);
        held.issuer = Some(w.auth.base.clone());
        store.set_tokens(held).await.unwrap();
        let mut info = OAuthClientInformationFull::new("stored-client", None);
        info.issuer = Some(w.auth.base.clone());
        store.set_client_info(info).await.unwrap();
        let before = store.get_tokens().await.unwrap();
        let person = Arc::new(Person::default());
        let p = w.provider(store.clone(), person.clone());
        let e = calls::header(&p).await.unwrap_err();
        assert_says(&e, b.kind, b.says, b.case);
        assert_eq!(e.step(), Some(Step::Refresh), "{}: {e}", b.case);
        assert_eq!(
            store.get_tokens().await.unwrap(),
            before,
            "{}: stored tokens changed",
            b.case
        );
        assert!(p.current_token().is_none_or(|t| t.access_token.expose() == "AT-old"));
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{}", b.case);
        assert_clean(&w.rs, "rs", &["RT-old"], b.case);
        assert_clean(&w.evil, "evil", &["RT-old"], b.case);
    }
}

// ---------------------------------------------------------------------------
// Registration responses.

#[tokio::test]
async fn hostile_registration_responses_are_refused_before_any_person_is_sent() {
    let ours = "http://127.0.0.1:9/cb";
    let cases: Vec<(&str, Reply, &[&str])> = vec![
        (
            "drops our redirect URI",
            Reply::json(201, json!({"client_id": "c", "redirect_uris": []})),
            &["does not keep our redirect URI"],
        ),
        (
            "swaps it for another",
            Reply::json(
                201,
                json!({"client_id": "c", "client_secret": "HOSTILE-SECRET", "redirect_uris": ["https://evil.example/cb"]}),
            ),
            &["does not keep our redirect URI"],
        ),
        (
            "adds another",
            Reply::json(
                201,
                json!({"client_id": "c", "redirect_uris": [ours, "https://evil.example/cb"]}),
            ),
            &["adds a redirect URI"],
        ),
        (
            "redirect_uris not a list",
            Reply::json(201, json!({"client_id": "c", "redirect_uris": ours})),
            &["redirect_uris is not a list"],
        ),
        (
            "switches to mutual TLS",
            Reply::json(
                201,
                json!({"client_id": "c", "client_secret": "HOSTILE-SECRET", "redirect_uris": [ours], "token_endpoint_auth_method": "tls_client_auth"}),
            ),
            &["token_endpoint_auth_method", "tls_client_auth", "cannot perform"],
        ),
        (
            "switches to private_key_jwt without a key",
            Reply::json(
                201,
                json!({"client_id": "c", "redirect_uris": [ours], "token_endpoint_auth_method": "private_key_jwt"}),
            ),
            &["private_key_jwt", "cannot perform"],
        ),
        (
            "a secret method without a secret",
            Reply::json(
                201,
                json!({"client_id": "c", "redirect_uris": [ours], "token_endpoint_auth_method": "client_secret_post"}),
            ),
            &["client_secret_post", "no client_secret"],
        ),
        (
            "an empty client_id",
            Reply::json(201, json!({"client_id": "", "redirect_uris": [ours]})),
            &["empty client_id"],
        ),
        (
            "no client_id",
            Reply::json(201, json!({"redirect_uris": [ours]})),
            &["malformed"],
        ),
        (
            "a JSON array",
            Reply::json(201, json!([{"client_id": "c"}])),
            &["malformed"],
        ),
        (
            "an HTML page",
            raw(200, "text/html", "<html>welcome</html>"),
            &["not JSON"],
        ),
    ];
    for (case, reply, says) in cases {
        let w = World::start().await;
        w.auth.fixed("/register", reply);
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_says(&e, ErrorKind::Registration, says, case);
        assert_eq!(e.step(), Some(Step::Registration), "{case}: {e}");
        assert!(!format!("{e} {e:?}").contains("HOSTILE"), "{case}: {e}");
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{case}: a person was sent");
        assert!(store.get_client_info().await.unwrap().is_none(), "{case}: stored");
        assert!(p.client_information().is_none(), "{case}: held");
        assert_eq!(w.auth.count("/token"), 0, "{case}");
        for (name, m) in w.all() {
            assert_clean(m, name, &["HOSTILE-SECRET"], case);
        }
        assert_nothing_kept(&p, &store, case).await;
    }
}

// ---------------------------------------------------------------------------
// A second authorization server after the first issued credentials.

#[tokio::test]
async fn a_second_authorization_server_gets_a_new_registration_and_nothing_of_the_first() {
    let w = World::start().await;
    let second = w.evil.clone();
    w.auth.route("/register", |_| {
        Reply::json(
            201,
            json!({"client_id": "first-client", "client_secret": "FIRST-SECRET", "token_endpoint_auth_method": "client_secret_post", "redirect_uris": ["http://127.0.0.1:9/cb"]}),
        )
    });
    second.standard_as("");
    issue_tokens(&second, "second");
    let named = Arc::new(std::sync::Mutex::new(w.auth.base.clone()));
    let (resource, n2) = (w.rs.url("/mcp"), named.clone());
    w.rs.route("/.well-known/oauth-protected-resource/mcp", move |_| {
        Reply::json(
            200,
            json!({"resource": resource, "authorization_servers": [n2.lock().unwrap().clone()]}),
        )
    });
    let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let p = w.provider(store.clone(), person.clone());
    let first = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();
    assert_eq!(first, "Bearer AT-auth-1");
    let first_verifier = w.auth.requests_to("/token")[0].form()["code_verifier"].clone();
    let before = w.auth.seen.lock().unwrap().len();

    *named.lock().unwrap() = second.base.clone();
    let again = calls::retried(calls::respond(&p, 401, &[CHALLENGE], Some(&first)).await.unwrap()).unwrap();
    assert_eq!(again, "Bearer AT-second-1");
    assert_eq!(second.count("/register"), 1, "registered again");
    assert_eq!(person.last_query()["client_id"], "registered-client");
    assert_eq!(
        w.auth.seen.lock().unwrap().len(),
        before,
        "the first server is not asked to refresh"
    );
    assert_none_of(
        &second,
        "the second server",
        &[
            "first-client",
            "FIRST-SECRET",
            "AT-auth-1",
            "RT-auth-1",
            &first_verifier,
        ],
        "migration",
    );
    // Only the second server's code went to it: the first flow's code never did.
    let tok = &second.requests_to("/token")[0];
    assert_eq!(tok.form()["client_id"], "registered-client");
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().issuer.as_deref(),
        Some(second.base.as_str())
    );
    assert_eq!(
        store.get_tokens().await.unwrap().unwrap().access_token.expose(),
        "AT-second-1"
    );
}

// ---------------------------------------------------------------------------
// Redirects on requests that carry credentials.

#[tokio::test]
async fn redirects_on_token_and_registration_requests_are_not_followed() {
    for endpoint in ["/token", "/register"] {
        for status in [301u16, 302, 303, 307, 308] {
            for cross_origin in [false, true] {
                let w = World::start().await;
                let target = if cross_origin {
                    w.evil.url(endpoint)
                } else {
                    w.auth.url("/moved")
                };
                let case = format!("{status} on {endpoint} to {target}");
                w.auth
                    .fixed(endpoint, Reply::status(status).header("location", &target));
                // A client with a secret, so there is one to leak.
                let mut c = cfg(&w.rs);
                if endpoint == "/token" {
                    c.static_client = Some(StaticClient {
                        client_id: "static-client".into(),
                        client_secret: Some(Secret::new("STATIC-SECRET")),
                        token_endpoint_auth_method: Some("client_secret_basic".into()),
                        issuer: None,
                    });
                }
                let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
                let p = build(c, store.clone(), person.clone());
                let e = on_401(&p, CHALLENGE).await.unwrap_err();
                let kind = if endpoint == "/token" {
                    ErrorKind::Server
                } else {
                    ErrorKind::Registration
                };
                assert_says(&e, kind, &["redirect", "not followed"], &case);
                assert_eq!(e.status(), Some(status), "{case}");
                assert_eq!(w.auth.count(endpoint), 1, "{case}: sent once");
                assert_eq!(w.auth.count("/moved"), 0, "{case}: followed on the same origin");
                assert!(w.evil.seen.lock().unwrap().is_empty(), "{case}: followed to evil");
                assert_nothing_kept(&p, &store, &case).await;
                assert!(store.get_client_info().await.unwrap().is_none(), "{case}");
            }
        }
    }
}

#[tokio::test]
async fn a_redirect_on_a_refresh_keeps_the_refresh_token_home() {
    let w = World::start().await;
    w.auth
        .fixed("/token", Reply::status(307).header("location", &w.evil.url("/token")));
    let store = Arc::new(MemoryStorage::new());
    let mut held = OAuthToken::bearer("AT-old");
    held.refresh_token = Some(Secret::new("RT-old"));
    held.expires_in = Some(60);
    held.expires_at = Some(1.0);
    store.set_tokens(held).await.unwrap();
    let mut info = OAuthClientInformationFull::new("stored-client", Some(Secret::new("STORED-SECRET")));
    info.issuer = Some(w.auth.base.clone());
    store.set_client_info(info).await.unwrap();
    let before = store.get_tokens().await.unwrap();
    let p = w.provider(store.clone(), Arc::new(Person::default()));
    let e = calls::header(&p).await.unwrap_err();
    assert_says(&e, ErrorKind::Server, &["redirect", "not followed"], "refresh");
    assert_eq!(store.get_tokens().await.unwrap(), before, "an outage: the tokens stay");
    assert!(w.evil.seen.lock().unwrap().is_empty());
    assert_clean(&w.evil, "evil", &["RT-old", "STORED-SECRET"], "refresh");
}

#[tokio::test]
async fn redirects_on_metadata_are_not_followed_either() {
    let w = World::start().await;
    // Every metadata URL redirects to evil, which would answer.
    w.evil.standard_as("");
    w.evil.standard_prm(&w.evil.base);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        w.rs.fixed(path, Reply::status(302).header("location", &w.evil.url(path)));
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        w.rs.fixed(path, Reply::status(302).header("location", &w.evil.url(path)));
    }
    let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let p = w.provider(store.clone(), person.clone());
    // No metadata at all: the 2025-03-26 defaults at the server's own origin,
    // which has no /register here.
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Registration, "{e}");
    assert!(w.evil.seen.lock().unwrap().is_empty(), "a redirect was followed");
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
    assert_nothing_kept(&p, &store, "metadata redirects").await;
}

// ---------------------------------------------------------------------------
// Metadata nested thousands of levels deep.

fn nested(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 8);
    for _ in 0..depth {
        s.push_str("{\"a\":[");
    }
    for _ in 0..depth {
        s.push_str("]}");
    }
    s
}

/// `doc` with a member `deep` nested `depth` levels.
fn with_deep_member(doc: Value, depth: usize) -> Vec<u8> {
    let text = doc.to_string();
    format!("{},\"deep\":{}}}", &text[..text.len() - 1], nested(depth)).into_bytes()
}

fn json_bytes(status: u16, body: Vec<u8>) -> Reply {
    let mut r = Reply::status(status).header("content-type", "application/json");
    r.body = body;
    r
}

/// Run `f` on a thread with a small stack (1 MiB, half the test threads'
/// default; a debug build's futures need about 300 KiB of it): a parser that
/// recursed once per level would overflow it long before 20 000 levels.
fn on_a_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the case panicked or overflowed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn deeply_nested_documents_are_errors_not_stack_overflows() {
    on_a_small_stack(|| {
        runtime().block_on(async {
            const DEPTH: usize = 20_000;
            // Authorization server metadata.
            let w = World::start().await;
            let meta = as_metadata(&w.auth, json!({}));
            w.auth.fixed(
                "/.well-known/oauth-authorization-server",
                json_bytes(200, with_deep_member(meta, DEPTH)),
            );
            let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
            let p = w.provider(store.clone(), person.clone());
            let e = on_401(&p, CHALLENGE).await.unwrap_err();
            assert_says(
                &e,
                ErrorKind::Flow,
                &["no authorization server metadata", "recursion limit"],
                "deep AS metadata",
            );
            assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
            assert_nothing_kept(&p, &store, "deep AS metadata").await;

            // Protected resource metadata: unusable at every URL, so the
            // 2025-03-26 mode applies, at the server's own origin only.
            let w = World::start().await;
            let prm = json!({"resource": w.rs.url("/mcp"), "authorization_servers": [w.auth.base]});
            w.rs.fixed(
                "/.well-known/oauth-protected-resource/mcp",
                json_bytes(200, with_deep_member(prm.clone(), DEPTH)),
            );
            w.rs.fixed(
                "/.well-known/oauth-protected-resource",
                json_bytes(200, nested(DEPTH).into_bytes()),
            );
            let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
            let p = w.provider(store.clone(), person.clone());
            let e = on_401(&p, CHALLENGE).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Registration, "{e}");
            assert!(w.auth.seen.lock().unwrap().is_empty());
            assert_nothing_kept(&p, &store, "deep PRM").await;

            // Registration and token responses.
            for (endpoint, kind, says) in [
                ("/register", ErrorKind::Registration, "not JSON"),
                ("/token", ErrorKind::Server, "not a JSON object"),
            ] {
                let w = World::start().await;
                let doc = json!({"client_id": "c", "access_token": "HOSTILE-AT", "token_type": "Bearer"});
                w.auth.fixed(endpoint, json_bytes(200, with_deep_member(doc, DEPTH)));
                let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
                let p = w.provider(store.clone(), person.clone());
                let e = on_401(&p, CHALLENGE).await.unwrap_err();
                assert_says(&e, kind, &[says], endpoint);
                assert!(store.get_client_info().await.unwrap().is_none() || endpoint == "/token");
                assert_nothing_kept(&p, &store, endpoint).await;
            }
        })
    });
}

// ---------------------------------------------------------------------------
// Endpoints with schemes that are not HTTP.

const NOT_HTTP: [&str; 5] = [
    "file:///etc/passwd",
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://as.example/endpoint",
    "ws://as.example/endpoint",
];

#[tokio::test]
async fn endpoints_with_other_schemes_are_refused_before_any_use() {
    for field in ["authorization_endpoint", "token_endpoint", "registration_endpoint"] {
        for scheme in NOT_HTTP {
            let case = format!("{field} = {scheme}");
            let w = World::start().await;
            serve_as_metadata(&w.auth, as_metadata(&w.auth, json!({ field: scheme })));
            let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
            let p = w.provider(store.clone(), person.clone());
            let e = on_401(&p, CHALLENGE).await.unwrap_err();
            assert_says(&e, ErrorKind::Flow, &[field, "must use https"], &case);
            assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata), "{case}: {e}");
            assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{case}: a person was sent");
            assert_eq!(w.auth.count("/register") + w.auth.count("/token"), 0, "{case}");
            assert!(store.get_client_info().await.unwrap().is_none(), "{case}");
            assert_nothing_kept(&p, &store, &case).await;
        }
    }
    // The authorization server named in the resource metadata.
    for scheme in NOT_HTTP {
        let w = World::start().await;
        w.rs.fixed(
            "/.well-known/oauth-protected-resource/mcp",
            Reply::json(
                200,
                json!({"resource": w.rs.url("/mcp"), "authorization_servers": [scheme]}),
            ),
        );
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Flow, "{scheme}: {e}");
        assert!(
            e.to_string().contains("issuer"),
            "{scheme}: the error does not name the issuer: {e}"
        );
        assert_eq!(person.redirects.load(Ordering::SeqCst), 0, "{scheme}");
        assert!(w.auth.seen.lock().unwrap().is_empty(), "{scheme}");
        assert_nothing_kept(&p, &store, scheme).await;
    }
}

#[tokio::test]
async fn a_revocation_endpoint_with_another_scheme_gets_no_token() {
    for scheme in NOT_HTTP {
        let w = World::start().await;
        serve_as_metadata(&w.auth, as_metadata(&w.auth, json!({"revocation_endpoint": scheme})));
        let store = Arc::new(MemoryStorage::new());
        let p = w.provider(store.clone(), Arc::new(Person::default()));
        on_401(&p, CHALLENGE).await.unwrap();
        let e = p.logout().await.unwrap_err();
        assert_says(&e, ErrorKind::Flow, &["revocation endpoint", "must use https"], scheme);
        for (name, m) in w.all() {
            assert!(m.requests_to("/revoke").is_empty(), "{scheme}: {name}");
        }
    }
}

// ---------------------------------------------------------------------------
// A resource server that never accepts, and one that always wants more.

/// A host as the documented pattern has it (the proxy's loop): the headers
/// before the request, a 401/403 handed to the provider once, one retry.
/// Returns the final status, or the provider's error.
async fn host_call(p: &OAuthClientProvider, client: &reqwest::Client) -> mcp_oauth_client::Result<u16> {
    let url = p.server_url().to_string();
    let mut auth = p
        .headers(&RequestInfo::new("POST", &url))
        .await?
        .map(|h| h.into_authorization());
    for round in 0..2 {
        let mut req = client.post(&url).body("{}");
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("the MCP server answers");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        if !matches!(status, 401 | 403) || round == 1 {
            return Ok(status);
        }
        let sent = RequestInfo::new("POST", &url).with_authorization(auth.as_deref());
        match p.handle_response(&sent, &ResponseInfo::new(status, &headers)).await? {
            ResponseAction::Retry(h) => auth = Some(h.into_authorization()),
            ResponseAction::Done => return Ok(status),
        }
    }
    unreachable!()
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_server_that_rejects_every_token_gets_a_bounded_number_of_authorizations() {
    for with_refresh in [false, true] {
        let case = if with_refresh {
            "refresh tokens issued"
        } else {
            "no refresh tokens"
        };
        let w = World::start().await;
        if !with_refresh {
            let n = Arc::new(AtomicUsize::new(0));
            w.auth.route("/token", move |_| {
                let i = n.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::json(
                    200,
                    json!({"access_token": format!("AT-auth-{i}"), "token_type": "Bearer", "expires_in": 3600}),
                )
            });
        }
        let challenge = format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{}\"",
            w.rs.url("/.well-known/oauth-protected-resource/mcp")
        );
        w.rs.fixed("/mcp", Reply::status(401).header("www-authenticate", &challenge));
        let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let p = w.provider(store.clone(), person.clone());
        let client = reqwest_client();
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            outcomes.push(host_call(&p, &client).await);
        }
        let authorizations = person.redirects.load(Ordering::SeqCst);
        let token_requests = w.auth.count("/token");
        println!("401 forever, {case}: 10 calls, {authorizations} authorizations, {token_requests} token requests");
        assert!(
            (1..=3).contains(&authorizations),
            "{case}: {authorizations} authorizations"
        );
        assert!(
            token_requests <= 3,
            "{case}: {token_requests} token requests for 10 calls"
        );
        let last = outcomes.last().unwrap().as_ref().unwrap_err();
        assert_says(
            last,
            ErrorKind::Flow,
            &["rejected", "in a row", "not authorizing again"],
            case,
        );
        assert_eq!(last.status(), Some(401), "{case}");
        // Tokens only ever went to the MCP server and the refresh tokens
        // only to the authorization server.
        assert_clean(&w.evil, "evil", &["AT-auth", "RT-auth"], case);
        for s in w.auth.seen.lock().unwrap().iter() {
            assert!(
                !everything(s).contains("AT-auth"),
                "{case}: an access token went to the AS"
            );
        }
        for s in w.rs.seen.lock().unwrap().iter() {
            assert!(!everything(s).contains("RT-auth"), "{case}: a refresh token went to rs");
        }
    }
}

#[tokio::test]
async fn a_server_that_wants_a_new_scope_every_time_gets_a_bounded_number_of_step_ups() {
    let w = World::start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let prm = w.rs.url("/.well-known/oauth-protected-resource/mcp");
    w.rs.route("/mcp", move |s| {
        if !s.headers.contains_key("authorization") {
            return Reply::status(401).header(
                "www-authenticate",
                &format!("Bearer resource_metadata=\"{prm}\", scope=\"read\""),
            );
        }
        let i = n.fetch_add(1, Ordering::SeqCst);
        Reply::status(403).header(
            "www-authenticate",
            &format!("Bearer error=\"insufficient_scope\", scope=\"read more-{i}\", resource_metadata=\"{prm}\""),
        )
    });
    let (store, person) = (Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let p = w.provider(store.clone(), person.clone());
    let client = reqwest_client();
    let mut outcomes = Vec::new();
    for _ in 0..30 {
        outcomes.push(host_call(&p, &client).await);
    }
    let authorizations = person.redirects.load(Ordering::SeqCst);
    let token_requests = w.auth.count("/token");
    println!("step-up forever: 30 calls, {authorizations} authorizations, {token_requests} token requests");
    assert!(authorizations <= 11, "{authorizations} authorizations for 30 calls");
    assert!(token_requests <= 11, "{token_requests} token requests for 30 calls");
    let last = outcomes.last().unwrap().as_ref().unwrap_err();
    assert_says(last, ErrorKind::Flow, &["step-up", "in a row"], "step-up forever");
    assert_eq!(last.step(), Some(Step::StepUp));
    assert_eq!(last.status(), Some(403));
    assert_clean(&w.evil, "evil", &["AT-auth", "RT-auth"], "step-up forever");
}
