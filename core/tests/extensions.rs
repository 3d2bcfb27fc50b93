//! The MCP extensions' grants and DPoP against an in-process server, for
//! what no real peer produces on demand: what each leg sends, refusals,
//! nonce loops, signing callbacks that fail or hang, rotated workload tokens.

mod calls;
mod fixture;
mod mock;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use fixture::*;
use mcp_oauth_client::error::Step;
use mcp_oauth_client::sources::{IdentityProvider, JwtInput, JwtReader};
use mcp_oauth_client::{
    Algorithm, CallbackSigner, ErrorKind, GrantKind, JwtSigner, MemoryStorage, OAuthClientProvider, ProviderConfig,
    RequestInfo, ResponseAction, ResponseInfo, Secret, SignFn, StaticClient,
};
use mock::{Mock, Reply};
use serde_json::{Value, json};

const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// A JWT-shaped string with these claims (unsigned: the client never
/// verifies what the IdP or platform gives it, it only reads `exp`).
fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn static_client(id: &str, secret: Option<&str>, method: &str) -> Option<StaticClient> {
    Some(StaticClient {
        client_id: id.into(),
        client_secret: secret.map(Secret::new),
        token_endpoint_auth_method: Some(method.into()),
        issuer: None,
    })
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn enterprise(m: &Mock, id_token: JwtInput) -> ProviderConfig {
    let mut c = cfg(m);
    c.static_client = static_client("mcp-client", Some("mcp-secret"), "client_secret_basic");
    let idp = IdentityProvider::new(
        &m.url("/idp/token"),
        Some("idp-client".into()),
        Some(Secret::new("idp-secret")),
    )
    .unwrap();
    c.use_identity_assertion(idp, id_token);
    c
}

#[tokio::test]
async fn enterprise_authorization_runs_both_legs_with_what_each_needs() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let id_jag = jwt(json!({"typ": "oauth-id-jag+jwt"}));
    let answer = id_jag.clone();
    m.route("/idp/token", move |_| {
        Reply::json(
            200,
            json!({"access_token": answer, "issued_token_type": ID_JAG_TYPE, "token_type": "N_A", "expires_in": 300}),
        )
    });
    let id_token = jwt(json!({"sub": "alice", "exp": now() + 600}));
    let p = OAuthClientProvider::new(
        enterprise(&m, JwtInput::Fixed(Secret::new(id_token.clone()))),
        Arc::new(MemoryStorage::new()),
        None,
    )
    .unwrap();
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer at-1"));

    let leg1 = &m.requests_to("/idp/token")[0];
    let f = leg1.form();
    assert_eq!(f["grant_type"], "urn:ietf:params:oauth:grant-type:token-exchange");
    assert_eq!(f["subject_token"], id_token);
    assert_eq!(f["subject_token_type"], "urn:ietf:params:oauth:token-type:id_token");
    assert_eq!(f["requested_token_type"], ID_JAG_TYPE);
    assert_eq!(f["audience"], m.base, "the MCP authorization server's issuer");
    assert_eq!(f["resource"], m.url("/mcp"));
    assert_eq!(leg1.headers["authorization"], basic("idp-client", "idp-secret"));

    let leg2 = &m.requests_to("/token")[0];
    let f = leg2.form();
    assert_eq!(f["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(f["assertion"], id_jag);
    assert_eq!(leg2.headers["authorization"], basic("mcp-client", "mcp-secret"));
    assert!(!f.contains_key("subject_token"), "the ID token goes to the IdP only");
}

#[tokio::test]
async fn an_idp_refusal_or_a_stale_id_token_stops_before_the_authorization_server() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed(
        "/idp/token",
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": "user not entitled"}),
        ),
    );
    let fresh = jwt(json!({"exp": now() + 600}));
    let p = OAuthClientProvider::new(
        enterprise(&m, JwtInput::Fixed(Secret::new(fresh))),
        Arc::new(MemoryStorage::new()),
        None,
    )
    .unwrap();
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!((e.kind(), e.step()), (ErrorKind::Token, Some(Step::IdentityAssertion)));
    assert_eq!(e.oauth_error(), Some("invalid_grant"));
    assert!(e.to_string().contains("identity provider"), "{e}");
    assert_eq!(m.count("/token"), 0);

    // An ID-JAG of the wrong type is not presented.
    m.fixed(
        "/idp/token",
        Reply::json(200, json!({"access_token": "x.y.z", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"})),
    );
    let fresh = jwt(json!({"exp": now() + 600}));
    let p = OAuthClientProvider::new(
        enterprise(&m, JwtInput::Fixed(Secret::new(fresh))),
        Arc::new(MemoryStorage::new()),
        None,
    )
    .unwrap();
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.step(), Some(Step::IdentityAssertion));
    assert!(
        e.message().contains("not urn:ietf:params:oauth:token-type:id-jag"),
        "{e}"
    );
    assert_eq!(m.count("/token"), 0);

    let stale = jwt(json!({"exp": now() - 60}));
    let before = m.count("/idp/token");
    let p = OAuthClientProvider::new(
        enterprise(&m, JwtInput::Fixed(Secret::new(stale))),
        Arc::new(MemoryStorage::new()),
        None,
    )
    .unwrap();
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(e.message().contains("ID token has expired"), "{e}");
    assert_eq!(m.count("/idp/token"), before, "a stale ID token is not sent");
}

#[tokio::test]
async fn the_id_token_callback_is_asked_again_once_its_token_expired() {
    let calls_made = Arc::new(AtomicUsize::new(0));
    let n = calls_made.clone();
    let f: mcp_oauth_client::sources::JwtFn = Arc::new(move || {
        let k = n.fetch_add(1, Ordering::SeqCst);
        // The first token is about to expire; the next ones are fresh.
        let exp = if k == 0 { now() + 2 } else { now() + 600 };
        Box::pin(async move { Ok(Secret::new(jwt(json!({"n": k, "exp": exp})))) })
    });
    let reader = JwtReader::new(JwtInput::Callback(f), "the ID token", Step::IdentityAssertion);
    // About to expire: refused as stale, and asked again next time.
    assert!(reader.read().await.is_err());
    let a = reader.read().await.unwrap();
    let b = reader.read().await.unwrap();
    assert_eq!(claims(a.expose())["n"], 1);
    assert_eq!(a.expose(), b.expose(), "a fresh token is reused");
    assert_eq!(calls_made.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn workload_identity_sends_the_platform_token_and_rereads_a_rotated_file() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = jwt(json!({"sub": "workload", "exp": now() + 600, "v": 1}));
    std::fs::write(&path, format!("{first}\n")).unwrap();
    let mut c = cfg(&m);
    c.static_client = static_client("wif-client", None, "none");
    c.use_workload_identity(JwtInput::File(path.clone()));
    let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap();
    assert!(calls::header(&p).await.unwrap().is_some());
    let req = &m.requests_to("/token")[0];
    let f = req.form();
    assert_eq!(f["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(f["assertion"], first);
    assert_eq!(f["client_id"], "wif-client");
    assert!(!f.contains_key("client_secret") && !req.headers.contains_key("authorization"));

    // The platform rotates the token: the file is read again.
    let reader = JwtReader::new(JwtInput::File(path.clone()), "the workload identity token", Step::Grant);
    assert_eq!(reader.read().await.unwrap().expose(), first);
    let second = jwt(json!({"sub": "workload", "exp": now() + 600, "v": 2}));
    std::fs::write(&path, &second).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    assert_eq!(reader.read().await.unwrap().expose(), second);
    std::fs::remove_file(&path).unwrap();
    let e = reader.read().await.unwrap_err();
    assert!(e.message().contains("cannot be read"), "{e}");
    assert!(!e.message().contains(&second));
}

fn dpop_as(m: &Mock, nonce_forever: bool) {
    m.standard_prm(&m.base);
    m.standard_as("");
    let seen = Arc::new(AtomicUsize::new(0));
    m.route("/token", move |r| {
        let k = seen.fetch_add(1, Ordering::SeqCst);
        let proof = r.headers.get("dpop").cloned().unwrap_or_default();
        let nonce = claims(&proof).get("nonce").cloned();
        if nonce_forever || nonce != Some(json!("as-nonce-1")) {
            return Reply::json(400, json!({"error": "use_dpop_nonce"})).header(
                "DPoP-Nonce",
                &format!("as-nonce-{}", if nonce_forever { k + 1 } else { 1 }),
            );
        }
        Reply::json(
            200,
            json!({"access_token": "bound", "token_type": "DPoP", "expires_in": 3600}),
        )
    });
}

#[tokio::test]
async fn dpop_token_requests_retry_once_with_the_servers_nonce() {
    let m = Mock::start().await;
    dpop_as(&m, false);
    let mut c = cfg(&m);
    c.grant = GrantKind::ClientCredentials;
    c.static_client = static_client("svc", Some("s"), "client_secret_basic");
    c.use_dpop(None).unwrap();
    let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap();
    let url = m.url("/mcp");
    let h = p.headers(&RequestInfo::new("POST", &url)).await.unwrap().unwrap();
    assert_eq!(h.authorization(), "DPoP bound");
    let proof = claims(h.dpop().unwrap());
    assert_eq!(proof["htu"], url);
    assert!(proof.get("ath").is_some());
    let tokens = m.requests_to("/token");
    assert_eq!(tokens.len(), 2);
    assert!(claims(&tokens[0].headers["dpop"]).get("nonce").is_none());
    assert_eq!(claims(&tokens[1].headers["dpop"])["nonce"], "as-nonce-1");
    assert_ne!(
        claims(&tokens[0].headers["dpop"])["jti"],
        claims(&tokens[1].headers["dpop"])["jti"]
    );

    // The resource server wants its own nonce: a new proof, no new token.
    let challenge = vec![
        (
            "WWW-Authenticate".to_string(),
            r#"DPoP error="use_dpop_nonce", error_description="nonce required""#.to_string(),
        ),
        ("DPoP-Nonce".to_string(), "rs-nonce-7".to_string()),
    ];
    let response = ResponseInfo::new(401, &challenge);
    assert!(response.is_dpop_nonce_challenge());
    let sent = RequestInfo::new("POST", &url).with_authorization(Some(h.authorization()));
    let ResponseAction::Retry(again) = p.handle_response(&sent, &response).await.unwrap() else {
        panic!("a nonce challenge is retried");
    };
    assert_eq!(claims(again.dpop().unwrap())["nonce"], "rs-nonce-7");
    assert_eq!(m.count("/token"), 2, "no new token for a nonce");
    let hot = p.cached_headers("POST", &url).unwrap();
    assert_eq!(
        claims(hot.dpop().unwrap())["nonce"],
        "rs-nonce-7",
        "kept for later requests"
    );
}

#[tokio::test]
async fn a_server_that_asks_for_a_new_nonce_forever_gets_one_retry() {
    let m = Mock::start().await;
    dpop_as(&m, true);
    let mut c = cfg(&m);
    c.grant = GrantKind::ClientCredentials;
    c.static_client = static_client("svc", Some("s"), "client_secret_basic");
    c.use_dpop(None).unwrap();
    let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap();
    let e = calls::header(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Token);
    assert!(e.message().contains("after one retry"), "{e}");
    assert_eq!(m.count("/token"), 2);
}

fn signer(f: SignFn, timeout: Duration) -> Arc<JwtSigner> {
    Arc::new(JwtSigner::new(Arc::new(
        CallbackSigner::new(Algorithm::Es256, None, None, f, timeout).unwrap(),
    )))
}

#[tokio::test]
async fn a_signing_callback_that_fails_or_hangs_is_a_clear_error_and_nothing_is_sent() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let failing: SignFn = Arc::new(|_| Box::pin(async { Err(mcp_oauth_client::Error::config("HSM unreachable")) }));
    let hanging: SignFn = Arc::new(|_| Box::pin(futures_util::future::pending()));
    let cases: [(SignFn, &str); 2] = [(failing, "HSM unreachable"), (hanging, "did not answer within 100 ms")];
    for (f, said) in cases {
        let mut c = cfg(&m);
        c.grant = GrantKind::ClientCredentials;
        c.static_client = static_client("svc", None, "private_key_jwt");
        c.client_assertion = Some(signer(f, Duration::from_millis(100)));
        let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap();
        let e = calls::header(&p).await.unwrap_err();
        assert_eq!((e.kind(), e.step()), (ErrorKind::Handler, Some(Step::Signing)));
        assert!(e.message().contains(said), "{e}");
    }
    assert_eq!(m.count("/token"), 0);
}

#[tokio::test]
async fn private_key_jwt_authenticates_the_authorization_code_exchange_when_registered_so() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let mut c = cfg(&m);
    c.static_client = static_client("web-app", None, "private_key_jwt");
    let pem =
        Secret::new(std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa-pkcs1.pem")).unwrap());
    c.client_assertion = Some(Arc::new(JwtSigner::from_pem(&pem, "PS256", Some("k1".into())).unwrap()));
    let person = Arc::new(Person::default());
    let p = build(c, Arc::new(MemoryStorage::new()), person);
    let action = on_401(&p, CHALLENGE).await.unwrap();
    assert_eq!(calls::retried(action).as_deref(), Some("Bearer at-1"));
    let f = m.requests_to("/token")[0].form();
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["client_id"], "web-app");
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let assertion = &f["client_assertion"];
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(assertion.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("PS256"), Some("k1"))
    );
    let c = claims(assertion);
    assert_eq!(
        (c["iss"].as_str(), c["sub"].as_str()),
        (Some("web-app"), Some("web-app"))
    );
    assert_eq!(c["aud"], m.base, "the issuer as its metadata spells it");
    assert_eq!(m.count("/register"), 0);
}
