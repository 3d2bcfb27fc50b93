//! Machine to machine and DPoP against the real peers (node-oidc-provider and
//! the MCP Python SDK's protected server, which checks every DPoP proof; see
//! tests/peers/README.md):
//!
//! - the client credentials grant with `client_secret_basic`,
//!   `client_secret_post` and `private_key_jwt` (RS256, PS256, ES256): tokens
//!   whose `aud` is the MCP server, and MCP calls that succeed;
//! - `private_key_jwt` in the authorization-code flow of a pre-registered client;
//! - DPoP-bound tokens (`cnf.jkt`) from the client credentials grant and from
//!   the authorization-code flow, presented with a fresh proof per request;
//! - nonces: the authorization server's, and the MCP server's rotated mid-run,
//!   each handled with one retry; a server that never settles ends after one;
//! - DPoP-bound tokens renewed before they expire, bound to the same key;
//! - a client pinned to its issuer sends its secret nowhere else.
//!
//! Clients are pre-registered the way an operator would, out of band: with a
//! registration request of their own (RFC 7591), not through the provider.

mod common;
mod mock;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mcp_oauth_client::{
    Dpop, ErrorKind, GrantKind, JwtSigner, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, ProviderConfig,
    RequestInfo, Secret, StaticClient, TokenBinding,
};
use mock::{Mock, Reply};
use serde_json::{Value, json};

fn key_pem(name: &str) -> Secret {
    let path = repo_root().join("core/tests/keys").join(name);
    Secret::new(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Pre-register a client for the client credentials grant with `method`;
/// `jwk` is the public key of a `private_key_jwt` client. Returns the
/// client ID and the secret (none for `private_key_jwt`).
async fn register(peers: &Peers, method: &str, jwk: Option<(&Value, &str)>) -> (String, Option<Secret>) {
    let mut meta = json!({
        "client_name": format!("m2m test ({method})"),
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "application_type": "web",
        "token_endpoint_auth_method": method,
    });
    if let Some((jwk, alg)) = jwk {
        meta["jwks"] = json!({"keys": [jwk]});
        meta["token_endpoint_auth_signing_alg"] = json!(alg);
    }
    let r = reqwest::Client::new()
        .post(format!("{}/reg", peers.issuer))
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "registration refused");
    let client: Value = r.json().await.unwrap();
    (
        client["client_id"].as_str().unwrap().to_string(),
        client["client_secret"].as_str().map(Secret::new),
    )
}

/// A client credentials provider for the pre-registered client, pinned to
/// the peers' issuer.
fn m2m_config(peers: &Peers, client_id: &str, secret: Option<Secret>, method: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), OAuthClientMetadata::new(vec![]));
    cfg.timeout = Duration::from_secs(10);
    cfg.grant = GrantKind::ClientCredentials;
    let mut client = StaticClient::new(client_id, secret);
    client.token_endpoint_auth_method = Some(method.into());
    client.issuer = Some(peers.issuer.clone());
    cfg.static_client = Some(client);
    cfg
}

fn build(cfg: ProviderConfig) -> OAuthClientProvider {
    OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::new()), None).unwrap()
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn post(url: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// The MCP server's DPoP counters.
async fn mcp_dpop(peers: &Peers) -> Value {
    get(&format!("{}/state", peers.mcp_control_url)).await["dpop"].clone()
}

async fn mcp_dpop_control(peers: &Peers, body: Value) -> Value {
    post(&format!("{}/dpop", peers.mcp_control_url), body).await
}

/// An MCP session through `mcp`: initialize, then `whoami`; returns what the
/// server says the token is.
async fn session(mcp: &Mcp) -> Value {
    let init = mcp.initialize().await.unwrap();
    assert_eq!(init.status, 200, "{:?}", init.body);
    whoami(mcp).await
}

async fn whoami(mcp: &Mcp) -> Value {
    let r = mcp.tool("whoami", json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["result"]["structuredContent"].clone()
}

/// How many proofs `mcp` sent: each made with `dpop`'s key for the MCP URL,
/// and no two with the same `jti`.
fn distinct_proofs(mcp: &Mcp, dpop: &Dpop) -> usize {
    let proofs = mcp.proofs.lock().unwrap();
    let mut jtis = HashSet::new();
    for p in proofs.iter() {
        let header = jwt_header(p);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(
            mcp_oauth_client::keys::jwk_thumbprint(&header["jwk"]).unwrap(),
            dpop.thumbprint()
        );
        let claims = jwt_claims(p);
        assert_eq!(claims["htu"], mcp.url.as_str());
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_string()),
            "a proof was reused"
        );
    }
    jtis.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_each_client_authentication() {
    let peers = Peers::start(&[]);
    let keys = [
        ("RS256", "rsa-pkcs1.pem"),
        ("PS256", "rsa-pkcs8.pem"),
        ("ES256", "ec-sec1.pem"),
    ];
    let mut cases: Vec<(String, ProviderConfig)> = Vec::new();
    for method in ["client_secret_basic", "client_secret_post"] {
        let (id, secret) = register(&peers, method, None).await;
        assert!(secret.is_some());
        cases.push((id.clone(), m2m_config(&peers, &id, secret, method)));
    }
    for (alg, file) in keys {
        let signer = JwtSigner::from_pem(&key_pem(file), alg, None).unwrap();
        let jwk = signer.signer().public_jwk().unwrap().clone();
        let (id, secret) = register(&peers, "private_key_jwt", Some((&jwk, alg))).await;
        assert!(secret.is_none(), "a private_key_jwt client has no secret");
        let mut cfg = m2m_config(&peers, &id, None, "private_key_jwt");
        cfg.client_assertion = Some(Arc::new(signer));
        cases.push((id, cfg));
    }

    for (client_id, cfg) in cases {
        let method = cfg
            .static_client
            .as_ref()
            .unwrap()
            .token_endpoint_auth_method
            .clone()
            .unwrap();
        let p = build(cfg);
        let mcp = Mcp::new(&peers.mcp_url, p.clone());
        let me = session(&mcp).await;
        assert_eq!(me["client_id"], client_id.as_str(), "{method}");
        assert_eq!(me["aud"], peers.mcp_url.as_str(), "{method}");
        assert_eq!(me["scopes"], json!(["mcp:read"]), "{method}");
        let token = p.current_token().unwrap();
        assert_eq!(token.token_type, "Bearer", "{method}");
        let claims = jwt_claims(token.access_token.expose());
        assert_eq!(claims["aud"], peers.mcp_url.as_str(), "{method}");
        assert_eq!(claims["client_id"], client_id.as_str(), "{method}");
        assert!(claims.get("cnf").is_none(), "{method}: no DPoP, no binding");
        // Tokens are cached: more calls, no more token requests.
        assert_eq!(mcp.tool("echo", json!({"text": method})).await.unwrap().status, 200);
    }
    let state = peers.state().await;
    assert_eq!(state["token_requests"], json!({"client_credentials": 5}), "{state}");
    assert_eq!(state["token_errors"], json!({}), "{state}");
    assert_eq!(state["authorizations"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_client_credentials_with_nonces_from_both_servers() {
    let peers = Peers::start(&[]);
    let (id, secret) = register(&peers, "client_secret_basic", None).await;
    let mut cfg = m2m_config(&peers, &id, secret, "client_secret_basic");
    let dpop = Arc::new(Dpop::generate());
    cfg.binding = Some(dpop.clone());
    // The authorization server wants its nonce from the first token request on.
    post(&format!("{}/dpop", peers.control_url), json!({"require_nonce": true})).await;
    let p = build(cfg);
    let mcp = Mcp::new(&peers.mcp_url, p.clone());

    let me = session(&mcp).await;
    assert_eq!(me["client_id"], id.as_str());
    assert_eq!(me["aud"], peers.mcp_url.as_str());
    let token = p.current_token().unwrap();
    assert_eq!(token.token_type, "DPoP");
    let claims = jwt_claims(token.access_token.expose());
    assert_eq!(claims["cnf"], json!({"jkt": dpop.thumbprint()}));
    assert_eq!(claims["aud"], peers.mcp_url.as_str());
    // One refusal for the missing nonce, then the token.
    let state = peers.state().await;
    assert_eq!(state["token_requests"], json!({"client_credentials": 1}), "{state}");
    assert_eq!(state["token_errors"], json!({"use_dpop_nonce": 1}), "{state}");
    assert!(dpop.nonce_for(&peers.issuer).is_some());

    // Every request carried a proof of its own, and the server took each.
    for i in 0..3 {
        let r = mcp.tool("echo", json!({"text": format!("call {i}")})).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // initialize, the initialized notification, whoami, three echoes
    assert_eq!(distinct_proofs(&mcp, &dpop), 6);
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["accepted"], json!(6), "{rs}");
    assert_eq!(rs["refused"], json!({}), "{rs}");

    // The MCP server starts asking for its nonce mid-run, then rotates it:
    // each time one refusal, one retry with the new nonce, and success.
    mcp_dpop_control(&peers, json!({"require_nonce": true})).await;
    assert_eq!(mcp.tool("echo", json!({"text": "after"})).await.unwrap().status, 200);
    assert_eq!(mcp.tool("echo", json!({"text": "again"})).await.unwrap().status, 200);
    let first = dpop.nonce_for(&peers.mcp_url).expect("the MCP server's nonce is kept");
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["refused"], json!({"use_dpop_nonce": 1}), "{rs}");
    assert_eq!(rs["accepted"], json!(8), "{rs}");

    mcp_dpop_control(&peers, json!({"rotate": true})).await;
    assert_eq!(mcp.tool("echo", json!({"text": "rotated"})).await.unwrap().status, 200);
    assert_ne!(dpop.nonce_for(&peers.mcp_url).unwrap(), first);
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["refused"], json!({"use_dpop_nonce": 2}), "{rs}");
    assert_eq!(rs["accepted"], json!(9), "{rs}");
    // Nonces are per server: the authorization server's is another one.
    assert_ne!(dpop.nonce_for(&peers.issuer), dpop.nonce_for(&peers.mcp_url));

    // A server that never settles: one retry, then its 401 reaches the caller.
    mcp_dpop_control(&peers, json!({"nonce_loop": true})).await;
    let r = mcp.tool("echo", json!({"text": "loop"})).await.unwrap();
    assert_eq!(r.status, 401);
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["refused"], json!({"use_dpop_nonce": 4}), "{rs}");
    assert_eq!(distinct_proofs(&mcp, &dpop), 6 + 2 + 1 + 2 + 2);

    // Through all of it the token was kept: no new token request.
    let state = peers.state().await;
    assert_eq!(state["token_requests"], json!({"client_credentials": 1}), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_from_the_authorization_code_flow() {
    let peers = Peers::start(&[]);
    let handler = Arc::new(HeadlessHandler::default());
    let mut meta = OAuthClientMetadata::new(vec!["http://127.0.0.1:3030/callback".into()]);
    meta.client_name = Some("m2m test (DPoP, authorization code)".into());
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), meta);
    cfg.timeout = Duration::from_secs(10);
    let dpop = Arc::new(Dpop::generate());
    cfg.binding = Some(dpop.clone());
    let p = OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::new()), Some(handler.clone())).unwrap();
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    // The code exchange is refused once for want of the server's nonce, and
    // the code is still good for the retry.
    post(&format!("{}/dpop", peers.control_url), json!({"require_nonce": true})).await;

    let me = session(&mcp).await;
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1);
    let state = peers.state().await;
    assert_eq!(state["token_requests"], json!({"authorization_code": 1}), "{state}");
    assert_eq!(state["token_errors"], json!({"use_dpop_nonce": 1}), "{state}");
    assert_eq!(me["sub"], "test-user");
    assert_eq!(me["aud"], peers.mcp_url.as_str());
    let token = p.current_token().unwrap();
    assert_eq!(token.token_type, "DPoP");
    assert_eq!(
        jwt_claims(token.access_token.expose())["cnf"],
        json!({"jkt": dpop.thumbprint()})
    );
    assert_eq!(mcp.tool("echo", json!({"text": "bound"})).await.unwrap().status, 200);
    // The first request went without a token (the 401 started the flow);
    // every one after it carried a proof of its own.
    let proofs = distinct_proofs(&mcp, &dpop);
    assert_eq!(proofs, 4, "the retried initialize, the notification, whoami, echo");
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["accepted"], json!(proofs), "{rs}");
    assert_eq!(rs["refused"], json!({}), "{rs}");

    // The hot path makes a fresh proof each time, for the request it is for.
    let a = p.cached_headers("POST", &peers.mcp_url).unwrap();
    let b = p.cached_headers("GET", &peers.mcp_url).unwrap();
    assert_eq!(a.authorization(), b.authorization());
    assert!(a.authorization().starts_with("DPoP "));
    let (ca, cb) = (jwt_claims(a.dpop().unwrap()), jwt_claims(b.dpop().unwrap()));
    assert_ne!(ca["jti"], cb["jti"]);
    assert_eq!((ca["htm"].as_str(), cb["htm"].as_str()), (Some("POST"), Some("GET")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinned_to_its_issuer_sends_its_secret_nowhere_else() {
    let peers = Peers::start(&[]);
    let (id, secret) = register(&peers, "client_secret_post", None).await;
    let secret_text = secret.as_ref().unwrap().expose().to_string();
    // The credentials belong to another authorization server than the one
    // the MCP server names.
    let mut cfg = m2m_config(&peers, &id, secret, "client_secret_post");
    cfg.static_client.as_mut().unwrap().issuer = Some("https://login.example.com".into());
    let p = build(cfg);
    let err = p
        .headers(&RequestInfo::new("POST", &peers.mcp_url))
        .await
        .expect_err("the MCP server names another issuer");
    assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
    assert!(err.message().contains("pinned"), "{err}");
    assert!(err.message().contains("https://login.example.com"), "{err}");
    assert!(!err.to_string().contains(&secret_text) && !format!("{err:?}").contains(&secret_text));
    assert!(p.current_token().is_none());
    let state = peers.state().await;
    assert_eq!(state["token_endpoint_posts"], json!(0), "{state}");

    // The same credentials pinned to the right issuer: the MCP call succeeds.
    let mut cfg = m2m_config(&peers, &id, None, "client_secret_post");
    cfg.static_client.as_mut().unwrap().client_secret = Some(Secret::new(secret_text));
    let me = session(&Mcp::new(&peers.mcp_url, build(cfg))).await;
    assert_eq!(me["client_id"], id.as_str());
    assert_eq!(peers.state().await["token_endpoint_posts"], json!(1));
}

/// An authorization server that wants a new DPoP nonce on every token
/// request, forever: the provider retries once with the nonce it was given,
/// then fails with an error that says so.
#[tokio::test]
async fn a_token_endpoint_that_never_settles_on_a_nonce_ends_after_one_retry() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    m.route("/token", move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Reply::json(
            400,
            json!({"error": "use_dpop_nonce", "error_description": "use this nonce"}),
        )
        .header("DPoP-Nonce", &format!("nonce-{n}"))
    });
    let mut cfg = ProviderConfig::new(m.url("/mcp"), OAuthClientMetadata::new(vec![]));
    cfg.timeout = Duration::from_secs(5);
    cfg.grant = GrantKind::ClientCredentials;
    cfg.static_client = Some(StaticClient::new("m2m", Some(Secret::new("s3cr3t-value"))));
    let dpop = Arc::new(Dpop::generate());
    cfg.binding = Some(dpop.clone() as Arc<dyn TokenBinding>);
    let p = build(cfg);

    let err = p
        .headers(&RequestInfo::new("POST", &m.url("/mcp")))
        .await
        .expect_err("no token without a settled nonce");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert!(
        err.message()
            .contains("asked for a new DPoP nonce again after one retry"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cr3t-value") && !format!("{err:?}").contains("s3cr3t-value"));
    let sent = m.requests_to("/token");
    assert_eq!(sent.len(), 2, "one request and one retry");
    let nonces: Vec<Value> = sent
        .iter()
        .map(|s| jwt_claims(&s.headers["dpop"])["nonce"].clone())
        .collect();
    assert_eq!(nonces, vec![Value::Null, json!("nonce-0")]);
    assert!(p.current_token().is_none());
}

/// Wait until the provider's token is due for renewal.
async fn wait_until_due(p: &OAuthClientProvider) {
    let due_at = p
        .current_token()
        .unwrap()
        .refresh_at()
        .expect("the token has an expiry");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    while now() < due_at {
        assert!(std::time::Instant::now() < deadline, "the token never became due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DPoP-bound tokens are renewed before they expire, bound to the same key:
/// by a refresh (whose refresh token the server bound to the key too) in the
/// authorization-code flow, by a new grant with client credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_are_renewed_with_the_same_key() {
    let peers = Peers::start(&["--access-token-ttl", "2"]);

    let handler = Arc::new(HeadlessHandler::default());
    let mut cfg = ProviderConfig::new(
        peers.mcp_url.clone(),
        OAuthClientMetadata::new(vec!["http://127.0.0.1:3030/callback".into()]),
    );
    cfg.timeout = Duration::from_secs(10);
    let person_key = Arc::new(Dpop::generate());
    cfg.binding = Some(person_key.clone());
    let person = OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::new()), Some(handler.clone())).unwrap();
    let person_mcp = Mcp::new(&peers.mcp_url, person.clone());
    session(&person_mcp).await;

    let (id, secret) = register(&peers, "client_secret_basic", None).await;
    let mut cfg = m2m_config(&peers, &id, secret, "client_secret_basic");
    let machine_key = Arc::new(Dpop::generate());
    cfg.binding = Some(machine_key.clone());
    let machine = build(cfg);
    let machine_mcp = Mcp::new(&peers.mcp_url, machine.clone());
    session(&machine_mcp).await;

    let first = (person.current_token().unwrap(), machine.current_token().unwrap());
    assert!(
        first.0.refresh_token.is_some(),
        "the authorization server issues refresh tokens"
    );
    wait_until_due(&person).await;
    wait_until_due(&machine).await;
    // Tokens from now on outlive the test.
    post(
        &format!("{}/access-token-ttl", peers.control_url),
        json!({"seconds": 3600}),
    )
    .await;

    for (p, mcp, key, old) in [
        (&person, &person_mcp, &person_key, &first.0),
        (&machine, &machine_mcp, &machine_key, &first.1),
    ] {
        assert_eq!(mcp.tool("echo", json!({"text": "renewed"})).await.unwrap().status, 200);
        let t = p.current_token().unwrap();
        assert_ne!(t.access_token.expose(), old.access_token.expose(), "renewed");
        assert_eq!(t.token_type, "DPoP");
        assert_eq!(
            jwt_claims(t.access_token.expose())["cnf"],
            json!({"jkt": key.thumbprint()})
        );
    }
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1, "no new authorization");
    let state = peers.state().await;
    assert_eq!(
        state["token_requests"],
        json!({"authorization_code": 1, "refresh_token": 1, "client_credentials": 2}),
        "{state}"
    );
    assert_eq!(state["token_errors"], json!({}), "{state}");
    let rs = mcp_dpop(&peers).await;
    assert_eq!(rs["refused"], json!({}), "{rs}");
}

/// `private_key_jwt` also authenticates the authorization-code flow of a
/// pre-registered client whose registration says so: no secret exists, and
/// the code exchange succeeds only with a valid assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_in_the_authorization_code_flow() {
    let peers = Peers::start(&[]);
    let redirect = "http://127.0.0.1:3030/callback";
    let signer = JwtSigner::from_pem(&key_pem("ec-pkcs8.pem"), "ES256", None).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/reg", peers.issuer))
        .json(&json!({
            "client_name": "m2m test (private_key_jwt, authorization code)",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [signer.signer().public_jwk().unwrap()]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let client: Value = r.json().await.unwrap();
    assert!(client.get("client_secret").is_none());
    let id = client["client_id"].as_str().unwrap();

    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), OAuthClientMetadata::new(vec![redirect.into()]));
    cfg.timeout = Duration::from_secs(10);
    let mut sc = StaticClient::new(id, None);
    sc.token_endpoint_auth_method = Some("private_key_jwt".into());
    sc.issuer = Some(peers.issuer.clone());
    cfg.static_client = Some(sc);
    cfg.client_assertion = Some(Arc::new(signer));
    let handler = Arc::new(HeadlessHandler::default());
    let p = OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::new()), Some(handler.clone())).unwrap();
    let me = session(&Mcp::new(&peers.mcp_url, p.clone())).await;
    assert_eq!(handler.redirects.load(Ordering::SeqCst), 1);
    assert_eq!(me["client_id"], id);
    assert_eq!(me["sub"], "test-user");
    let state = peers.state().await;
    assert_eq!(state["token_requests"], json!({"authorization_code": 1}), "{state}");
    assert_eq!(state["token_errors"], json!({}), "{state}");
}
