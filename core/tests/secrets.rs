//! No secret in any log line, error message or `Debug` output.
//!
//! One test runs a full flow of every grant with tracing at TRACE (the
//! library's events and, through `tracing-log`, its dependencies' `log`
//! records) captured into a buffer, and formats with `{:?}` and `to_string()`
//! every provider, configuration, token, client information, handler value and
//! error it meets. It collects the secret values actually used in the run from
//! what went over the wire (every request and response through a recording
//! transport), the stores and the keys it made, then fails if any of them, or
//! any 12-character window of one (a truncated secret), appears in what was
//! captured.
//!
//! Against the real peers (node-oidc-provider and the MCP server): the
//! authorization-code flow with PKCE and dynamic registration (public, and
//! confidential with `client_secret_basic` and `client_secret_post`), refresh
//! with rotation, log-out with revocation, the client credentials grant with a
//! secret and with `private_key_jwt`, DPoP-bound tokens. In process (no peer
//! offers them on demand): the device authorization grant, enterprise
//! authorization (token exchange for an ID-JAG, then the JWT-bearer grant),
//! `invalid_grant` on refresh, a failing store and a rejected token.

mod common;
mod mock;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use mcp_oauth_client::sources::{IdentityProvider, JwtInput};
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, DeviceAuthorization, DeviceCodeHandler, Dpop, Error, GrantKind,
    HttpRequest, HttpResponse, HttpTransport, JwtSigner, LocalSigner, MemoryStorage, OAuthClientInformationFull,
    OAuthClientMetadata, OAuthClientProvider, OAuthToken, ProviderConfig, RequestInfo, ReqwestTransport, ResponseInfo,
    Secret, StaticClient, TokenStorage, TransportError,
};
use mock::{Mock, Reply};
use serde_json::{Value, json};
use url::Url;

/// The shortest piece of a secret looked for on its own.
const WINDOW: usize = 12;

/// Everything the tracing subscriber wrote.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("the only subscriber of this test binary");
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the run used and what it printed.
#[derive(Default)]
struct Run {
    /// Secret values, each named by where it came from.
    secrets: Mutex<BTreeSet<(String, String)>>,
    /// `Debug` and `Display` output of the values and errors met.
    printed: Mutex<Vec<String>>,
}

impl Run {
    fn secret(&self, what: &str, value: &str) {
        if !value.is_empty() {
            self.secrets
                .lock()
                .unwrap()
                .insert((what.to_string(), value.to_string()));
        }
    }
    fn debug(&self, v: &dyn std::fmt::Debug) {
        self.printed.lock().unwrap().push(format!("{v:?}"));
        self.printed.lock().unwrap().push(format!("{v:#?}"));
    }
    fn error(&self, e: &Error) {
        self.debug(e);
        self.printed.lock().unwrap().push(e.to_string());
    }
    fn token(&self, t: &OAuthToken) {
        self.secret("access token", t.access_token.expose());
        if let Some(r) = &t.refresh_token {
            self.secret("refresh token", r.expose());
        }
        self.debug(t);
    }
    fn client(&self, c: &OAuthClientInformationFull) {
        if let Some(s) = &c.client_secret {
            self.secret("client secret", s.expose());
        }
        self.debug(c);
    }
    /// A private key in PEM: the whole text, and its base64 body.
    fn pem(&self, what: &str, pem: &str) {
        self.secret(what, pem);
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.contains(':'))
            .collect();
        self.secret(what, &body);
    }
    async fn store(&self, s: &dyn TokenStorage) {
        if let Ok(Some(t)) = s.get_tokens().await {
            self.token(&t);
        }
        if let Ok(Some(c)) = s.get_client_info().await {
            self.client(&c);
        }
    }
    fn provider(&self, p: &OAuthClientProvider) {
        self.debug(p);
        self.debug(p.config());
        if let Some(t) = p.current_token() {
            self.token(&t);
        }
        if let Some(c) = p.client_information() {
            self.client(&c);
        }
        if let Some(d) = p.discovered() {
            self.debug(&d);
        }
    }
}

/// The form fields and JSON members that carry secrets.
const SECRET_FIELDS: &[&str] = &[
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "refresh_token",
    "access_token",
    "id_token",
    "subject_token",
    "actor_token",
    "assertion",
    "device_code",
    "token",
    "registration_access_token",
];

/// A transport that records the secrets of every exchange, then sends it on.
struct Recording<T> {
    inner: T,
    run: Arc<Run>,
}

#[async_trait]
impl<T: HttpTransport> HttpTransport for Recording<T> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.run.debug(&request);
        for (k, v) in &request.headers {
            header_secrets(&self.run, k, v);
        }
        if let Some(body) = &request.body {
            body_secrets(&self.run, body);
        }
        let r = self.inner.send(request).await;
        match &r {
            Ok(resp) => body_secrets(&self.run, &resp.body),
            Err(e) => self.run.debug(e),
        }
        r
    }
}

fn header_secrets(run: &Run, name: &str, value: &str) {
    if name.eq_ignore_ascii_case("dpop") {
        run.secret("DPoP proof", value);
    }
    if !name.eq_ignore_ascii_case("authorization") {
        return;
    }
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return;
    };
    run.secret("authorization credentials", credentials);
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(credentials).unwrap()).unwrap();
        let (_, secret) = decoded.split_once(':').unwrap();
        let secret = percent_encoding::percent_decode_str(secret).decode_utf8().unwrap();
        run.secret("client secret (basic)", &secret);
    }
}

fn body_secrets(run: &Run, body: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(o) = v.as_object() {
            for f in SECRET_FIELDS {
                if let Some(s) = o.get(*f).and_then(Value::as_str) {
                    run.secret(f, s);
                }
            }
        }
        return;
    }
    if body.first() == Some(&b'<') {
        return;
    }
    for (k, v) in url::form_urlencoded::parse(body) {
        if SECRET_FIELDS.contains(&k.as_ref()) {
            run.secret(&k, &v);
        }
    }
}

fn recording(run: &Arc<Run>) -> Arc<dyn HttpTransport> {
    Arc::new(Recording {
        inner: ReqwestTransport::new().unwrap(),
        run: run.clone(),
    })
}

fn random(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// A JWT-shaped value with random claims (the client never checks the
/// signature of what the IdP or the authorization server gives it).
fn jwt(claims: Value) -> String {
    let mut c = claims;
    c["jti"] = json!(random(""));
    c["exp"] = json!(now() + 600);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(c.to_string()),
        random("")
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key_pem(run: &Run, name: &str) -> Secret {
    let path = repo_root().join("core/tests/keys").join(name);
    let pem = std::fs::read_to_string(&path).unwrap();
    run.pem(&format!("private key {name}"), &pem);
    Secret::new(pem)
}

/// A P-256 key made for this run: its PEM for the signer, and the JWK `d`.
fn fresh_p256(run: &Run) -> Arc<LocalSigner> {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = key.to_pkcs8_pem(Default::default()).unwrap().to_string();
    run.pem("DPoP private key (PEM)", &pem);
    run.secret("DPoP private key (JWK d)", &URL_SAFE_NO_PAD.encode(key.to_bytes()));
    Arc::new(LocalSigner::from_pem(&Secret::new(pem), "ES256", None).unwrap())
}

/// Pre-register a client at the peers' authorization server, out of band.
async fn register(run: &Run, peers: &Peers, meta: Value) -> (String, Option<Secret>) {
    let r = reqwest::Client::new()
        .post(format!("{}/reg", peers.issuer))
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "registration refused");
    let client: Value = r.json().await.unwrap();
    if let Some(s) = client["client_secret"].as_str() {
        run.secret("pre-registered client secret", s);
    }
    if let Some(s) = client["registration_access_token"].as_str() {
        run.secret("registration access token", s);
    }
    (
        client["client_id"].as_str().unwrap().to_string(),
        client["client_secret"].as_str().map(Secret::new),
    )
}

/// The peers tests' person (it fetches the authorization URL and takes the
/// redirect), recording the authorization code it brings back.
struct Person {
    inner: HeadlessHandler,
    run: Arc<Run>,
}

#[async_trait]
impl AuthorizationHandler for Person {
    async fn redirect(&self, url: &Url) -> mcp_oauth_client::Result<()> {
        self.inner.redirect(url).await
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        let r = self.inner.callback().await?;
        if let Some(c) = &r.code {
            self.run.secret("authorization code", c.expose());
        }
        self.run.debug(&r);
        Ok(r)
    }
}

fn peers_provider(run: &Arc<Run>, cfg: ProviderConfig, storage: Arc<dyn TokenStorage>) -> OAuthClientProvider {
    let mut cfg = cfg;
    cfg.timeout = Duration::from_secs(10);
    cfg.transport = Some(recording(run));
    let person = Arc::new(Person {
        inner: HeadlessHandler::default(),
        run: run.clone(),
    });
    OAuthClientProvider::new(cfg, storage, Some(person)).unwrap()
}

async fn session(run: &Run, mcp: &Mcp) {
    let r = mcp.initialize().await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = mcp.tool("whoami", json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    for p in mcp.proofs.lock().unwrap().iter() {
        run.secret("DPoP proof", p);
    }
    let url = mcp.url.clone();
    if let Some(h) = mcp.provider.cached_headers("POST", &url) {
        header_secrets(run, "authorization", h.authorization());
        run.debug(&h);
    }
}

/// Authorization code + PKCE with dynamic registration (public, then
/// confidential with each secret method), refresh with rotation, log-out.
async fn authorization_code_flows(run: &Arc<Run>, peers: &Peers) -> usize {
    let mut flows = 0;
    for method in [None, Some("client_secret_basic"), Some("client_secret_post")] {
        let mut meta = OAuthClientMetadata::new(vec!["http://127.0.0.1:3030/callback".into()]);
        meta.client_name = Some("secrets test".into());
        meta.token_endpoint_auth_method = method.map(String::from);
        let store = Arc::new(MemoryStorage::new());
        let p = peers_provider(run, ProviderConfig::new(peers.mcp_url.clone(), meta), store.clone());
        let mcp = Mcp::new(&peers.mcp_url, p.clone());
        session(run, &mcp).await;
        let first = p.current_token().unwrap();
        assert!(first.refresh_token.is_some());
        run.provider(&p);
        run.store(store.as_ref()).await;
        flows += 1;
        if method.is_none() {
            // The access token expires (the peers issue them for 2 s): the
            // next call refreshes, and the refresh token rotates.
            tokio::time::sleep(Duration::from_millis(2300)).await;
            let r = mcp.tool("echo", json!({"text": "after expiry"})).await.unwrap();
            assert_eq!(r.status, 200);
            let second = p.current_token().unwrap();
            assert_ne!(second.refresh_token, first.refresh_token, "the refresh token rotates");
            run.provider(&p);
            flows += 1;
        }
        // Log-out: revocation at the authorization server, then forgetting.
        let out = p.logout().await.unwrap();
        assert!(out.had_tokens && out.revocation_endpoint.is_some(), "{out:?}");
        run.debug(&out);
        flows += 1;
    }
    flows
}

/// Client credentials with a secret (and DPoP), and with `private_key_jwt`.
async fn client_credentials_flows(run: &Arc<Run>, peers: &Peers) -> usize {
    let m2m = |method: &str| {
        json!({
            "client_name": format!("secrets test ({method})"),
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "application_type": "web",
            "token_endpoint_auth_method": method,
        })
    };
    let config = |id: &str, secret: Option<Secret>, method: &str| {
        let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), OAuthClientMetadata::new(vec![]));
        cfg.grant = GrantKind::ClientCredentials;
        let mut client = StaticClient::new(id, secret);
        client.token_endpoint_auth_method = Some(method.into());
        client.issuer = Some(peers.issuer.clone());
        run.debug(&client);
        cfg.static_client = Some(client);
        cfg
    };
    let mut flows = 0;

    // client_secret_basic with a DPoP key made here.
    let (id, secret) = register(run, peers, m2m("client_secret_basic")).await;
    let mut cfg = config(&id, secret, "client_secret_basic");
    let dpop = Arc::new(Dpop::new(fresh_p256(run)).unwrap());
    run.debug(&dpop);
    cfg.binding = Some(dpop.clone());
    let p = peers_provider(run, cfg, Arc::new(MemoryStorage::new()));
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    session(run, &mcp).await;
    assert_eq!(p.current_token().unwrap().token_type, "DPoP");
    run.provider(&p);
    flows += 1;

    // client_secret_post, bearer.
    let (id, secret) = register(run, peers, m2m("client_secret_post")).await;
    let p = peers_provider(
        run,
        config(&id, secret, "client_secret_post"),
        Arc::new(MemoryStorage::new()),
    );
    session(run, &Mcp::new(&peers.mcp_url, p.clone())).await;
    run.provider(&p);
    flows += 1;

    // private_key_jwt: an RSA key from a PEM file, then an EC one.
    for (alg, file) in [("RS256", "rsa-pkcs1.pem"), ("ES256", "ec-pkcs8.pem")] {
        let signer = JwtSigner::from_pem(&key_pem(run, file), alg, None).unwrap();
        run.debug(&signer);
        let jwk = signer.signer().public_jwk().unwrap().clone();
        let mut meta = m2m("private_key_jwt");
        meta["jwks"] = json!({"keys": [jwk]});
        meta["token_endpoint_auth_signing_alg"] = json!(alg);
        let (id, _) = register(run, peers, meta).await;
        let mut cfg = config(&id, None, "private_key_jwt");
        cfg.client_assertion = Some(Arc::new(signer));
        let p = peers_provider(run, cfg, Arc::new(MemoryStorage::new()));
        session(run, &Mcp::new(&peers.mcp_url, p.clone())).await;
        run.provider(&p);
        flows += 1;
    }
    flows
}

/// Shows the device code; records it.
struct Screen(Arc<Run>);

#[async_trait]
impl DeviceCodeHandler for Screen {
    async fn show(&self, a: &DeviceAuthorization) -> mcp_oauth_client::Result<()> {
        self.0.debug(a);
        Ok(())
    }
}

/// A person who approves at once with a random code.
struct QuickPerson {
    url: Mutex<Option<Url>>,
    run: Arc<Run>,
}

#[async_trait]
impl AuthorizationHandler for QuickPerson {
    async fn redirect(&self, url: &Url) -> mcp_oauth_client::Result<()> {
        *self.url.lock().unwrap() = Some(url.clone());
        Ok(())
    }
    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        let url = self.url.lock().unwrap().clone().unwrap();
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        let code = random("code-");
        self.run.secret("authorization code", &code);
        let r = AuthorizationCodeResult::new(&code, state, None);
        self.run.debug(&r);
        Ok(r)
    }
}

/// An in-process authorization server with every endpoint the peers do not
/// offer on demand; each token it issues is random. A refresh is refused
/// with `invalid_grant`.
fn mock_as(m: &Mock) {
    let meta = json!({
        "issuer": m.base,
        "authorization_endpoint": m.url("/authorize"),
        "token_endpoint": m.url("/token"),
        "registration_endpoint": m.url("/register"),
        "device_authorization_endpoint": m.url("/device"),
        "revocation_endpoint": m.url("/revoke"),
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "scopes_supported": ["read", "offline_access"],
    });
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    m.standard_prm(&m.base);
    m.route("/register", |seen| {
        let mut answer: Value = serde_json::from_str(&seen.body).unwrap();
        answer["client_id"] = json!(random("client-"));
        answer["client_secret"] = json!(random("secret-"));
        answer["token_endpoint_auth_method"] = json!("client_secret_post");
        Reply::json(201, answer)
    });
    m.route("/device", |_| {
        Reply::json(
            200,
            json!({"device_code": random("device-"), "user_code": "WDJB-MJHT", "verification_uri": "https://example.com/device",
                "expires_in": 600, "interval": 1}),
        )
    });
    m.route("/token", |seen| {
        if seen.form().get("grant_type").map(String::as_str) == Some("refresh_token") {
            return Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": "the refresh token was revoked"}),
            );
        }
        Reply::json(
            200,
            json!({"access_token": random("at-"), "token_type": "Bearer", "expires_in": 1,
                "refresh_token": random("rt-"), "id_token": jwt(json!({"sub": "alice"}))}),
        )
    });
    m.fixed("/revoke", Reply::status(200));
}

/// A store whose writes fail.
struct FailingStore;

#[async_trait]
impl TokenStorage for FailingStore {
    async fn get_tokens(&self) -> mcp_oauth_client::Result<Option<OAuthToken>> {
        Ok(None)
    }
    async fn set_tokens(&self, _tokens: OAuthToken) -> mcp_oauth_client::Result<()> {
        Err(Error::storage("the disk is full"))
    }
    async fn get_client_info(&self) -> mcp_oauth_client::Result<Option<OAuthClientInformationFull>> {
        Ok(None)
    }
    async fn set_client_info(&self, _info: OAuthClientInformationFull) -> mcp_oauth_client::Result<()> {
        Err(Error::storage("the disk is full"))
    }
}

/// The `Authorization` value for the MCP server, authorizing first when no
/// token is held (as a 401 would make it).
async fn header(p: &OAuthClientProvider) -> mcp_oauth_client::Result<Option<String>> {
    let url = p.server_url().to_string();
    if p.current_token().is_none() {
        p.authorize().await?;
    }
    Ok(p.headers(&RequestInfo::new("POST", &url))
        .await?
        .map(|h| h.authorization().to_string()))
}

/// The device grant, enterprise authorization, and the error paths.
async fn in_process_flows(run: &Arc<Run>) -> usize {
    let m = Mock::start().await;
    mock_as(&m);
    let transport: Arc<dyn HttpTransport> = Arc::new(Recording {
        inner: ReqwestTransport::new().unwrap(),
        run: run.clone(),
    });
    let mut flows = 0;

    // The device authorization grant, with a confidential registration.
    let mut cfg = ProviderConfig::new(m.url("/mcp"), OAuthClientMetadata::new(vec![]));
    cfg.timeout = Duration::from_secs(5);
    cfg.transport = Some(transport.clone());
    cfg.use_device_code(Arc::new(Screen(run.clone())));
    let store = Arc::new(MemoryStorage::new());
    let p = OAuthClientProvider::new(cfg, store.clone(), None).unwrap();
    assert!(header(&p).await.unwrap().is_some());
    run.provider(&p);
    run.store(store.as_ref()).await;
    let out = p.logout().await.unwrap();
    run.debug(&out);
    flows += 1;

    // Authorization code, then a refresh refused with invalid_grant: a new
    // authorization follows.
    let mut cfg = ProviderConfig::new(
        m.url("/mcp"),
        OAuthClientMetadata::new(vec!["http://127.0.0.1:9/cb".into()]),
    );
    cfg.timeout = Duration::from_secs(5);
    cfg.transport = Some(transport.clone());
    let store = Arc::new(MemoryStorage::new());
    let person = Arc::new(QuickPerson {
        url: Mutex::default(),
        run: run.clone(),
    });
    let p = OAuthClientProvider::new(cfg.clone(), store.clone(), Some(person.clone())).unwrap();
    let first = header(&p).await.unwrap().unwrap();
    run.provider(&p);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let url = p.server_url().to_string();
    let refused = p.headers(&RequestInfo::new("POST", &url)).await.unwrap();
    assert!(refused.is_none(), "a refused refresh leaves no token to send");
    p.authorize().await.unwrap();
    let second = header(&p).await.unwrap().unwrap();
    assert_ne!(first, second);
    run.provider(&p);
    run.store(store.as_ref()).await;
    assert!(
        m.requests_to("/token")
            .iter()
            .any(|s| s.form()["grant_type"] == "refresh_token"),
        "a refresh was tried"
    );
    flows += 1;

    // A 401 refusing the token the request carried, with a bogus token of
    // the host's: the provider authorizes again.
    let bogus = random("bogus-");
    run.secret("rejected bearer token", &bogus);
    let sent = format!("Bearer {bogus}");
    let challenge = vec![(
        "www-authenticate".to_string(),
        "Bearer error=\"invalid_token\", error_description=\"the token is not valid\"".to_string(),
    )];
    match p
        .handle_response(
            &RequestInfo::new("POST", &url).with_authorization(Some(&sent)),
            &ResponseInfo::new(401, &challenge),
        )
        .await
    {
        Ok(action) => run.debug(&action),
        Err(e) => run.error(&e),
    }
    // The same with the token it holds.
    let held = format!("Bearer {}", p.current_token().unwrap().access_token.expose());
    match p
        .handle_response(
            &RequestInfo::new("POST", &url).with_authorization(Some(&held)),
            &ResponseInfo::new(401, &challenge),
        )
        .await
    {
        Ok(action) => run.debug(&action),
        Err(e) => run.error(&e),
    }
    run.provider(&p);
    flows += 1;

    // A store that cannot write: the error reaches the caller.
    let p = OAuthClientProvider::new(cfg.clone(), Arc::new(FailingStore), Some(person.clone())).unwrap();
    let e = header(&p).await.expect_err("the store fails");
    run.error(&e);
    run.provider(&p);
    flows += 1;

    // A token endpoint that fails outright, echoing nothing.
    let m2 = Mock::start().await;
    mock_as(&m2);
    m2.fixed("/token", Reply::json(400, json!({"error": "invalid_client"})));
    let mut bad = cfg.clone();
    bad.server_url = m2.url("/mcp");
    bad.static_client = Some(StaticClient::new(
        "fixed-client",
        Some(Secret::new(random("static-secret-"))),
    ));
    run.secret(
        "static client secret",
        bad.static_client
            .as_ref()
            .unwrap()
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
    );
    run.debug(&bad);
    let p = OAuthClientProvider::new(bad, Arc::new(MemoryStorage::new()), Some(person.clone())).unwrap();
    let e = header(&p).await.expect_err("invalid_client");
    run.error(&e);
    flows += 1;

    // Enterprise authorization: token exchange at the IdP for an ID-JAG,
    // then the JWT-bearer grant at the MCP authorization server.
    let id_jag = jwt(json!({"typ": "oauth-id-jag+jwt", "sub": "alice"}));
    run.secret("ID-JAG", &id_jag);
    let answer = id_jag.clone();
    m.route("/idp/token", move |_| {
        Reply::json(
            200,
            json!({"access_token": answer, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                "token_type": "N_A", "expires_in": 300}),
        )
    });
    let id_token = jwt(json!({"sub": "alice", "aud": "idp-client"}));
    run.secret("ID token", &id_token);
    let idp_secret = random("idp-secret-");
    let mcp_secret = random("mcp-secret-");
    run.secret("IdP client secret", &idp_secret);
    run.secret("MCP client secret", &mcp_secret);
    let mut cfg = ProviderConfig::new(m.url("/mcp"), OAuthClientMetadata::new(vec![]));
    cfg.timeout = Duration::from_secs(5);
    cfg.transport = Some(transport.clone());
    let mut client = StaticClient::new("mcp-client", Some(Secret::new(mcp_secret)));
    client.token_endpoint_auth_method = Some("client_secret_basic".into());
    cfg.static_client = Some(client);
    let idp = IdentityProvider::new(
        &m.url("/idp/token"),
        Some("idp-client".into()),
        Some(Secret::new(idp_secret)),
    )
    .unwrap();
    run.debug(&idp);
    cfg.use_identity_assertion(idp, JwtInput::Fixed(Secret::new(id_token)));
    run.debug(&cfg);
    let p = OAuthClientProvider::new(cfg.clone(), Arc::new(MemoryStorage::new()), None).unwrap();
    assert!(header(&p).await.unwrap().is_some());
    run.provider(&p);
    flows += 1;

    // The IdP refuses: the error names the refusal, not the ID token.
    m.fixed(
        "/idp/token",
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": "the ID token expired"}),
        ),
    );
    let p = OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::new()), None).unwrap();
    let e = header(&p).await.expect_err("refused by the IdP");
    run.error(&e);
    flows += 1;
    flows
}

/// Where `secret`, or a piece of it, shows in `text`: the line.
fn find_leak(text: &str, secret: &str) -> Option<String> {
    let line = |at: usize| {
        let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
        text[from..to].to_string()
    };
    if let Some(at) = text.find(secret) {
        return Some(line(at));
    }
    for part in significant_parts(secret) {
        let bytes = part.as_bytes();
        if bytes.len() < WINDOW {
            continue;
        }
        for start in 0..=bytes.len() - WINDOW {
            let Ok(w) = std::str::from_utf8(&bytes[start..start + WINDOW]) else {
                continue;
            };
            if let Some(at) = text.find(w) {
                return Some(line(at));
            }
        }
    }
    None
}

/// The parts of a secret whose pieces are looked for: a JWT's claims and
/// signature (its header, `{"alg":...`, is the same in every JWT of a
/// kind and public), or the whole value.
fn significant_parts(secret: &str) -> Vec<&str> {
    let parts: Vec<&str> = secret.split('.').collect();
    if parts.len() == 3 && parts[0].starts_with("eyJ") {
        parts[1..].to_vec()
    } else {
        vec![secret]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_errors_or_debug_output() {
    let log = log_buffer();
    let run = Arc::new(Run::default());
    let peers = Peers::start(&["--json-response", "--access-token-ttl", "2"]);

    let mut flows = authorization_code_flows(&run, &peers).await;
    flows += client_credentials_flows(&run, &peers).await;
    flows += in_process_flows(&run).await;
    drop(peers);
    // The detector itself: a piece of a secret logged from another thread is found.
    let canary = random("canary-");
    let piece = canary[10..10 + WINDOW + 3].to_string();
    tokio::spawn(async move { tracing::trace!(target: "elsewhere", "a piece: {piece}") })
        .await
        .unwrap();

    let logs = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    let printed = run.printed.lock().unwrap().join("\n");
    assert!(find_leak(&logs, &canary).is_some(), "the canary was not caught");
    if let Ok(path) = std::env::var("SECRETS_TEST_LOG") {
        std::fs::write(path, &logs).unwrap();
    }
    let secrets = run.secrets.lock().unwrap().clone();
    let distinct: BTreeSet<&String> = secrets.iter().map(|(_, v)| v).collect();
    println!(
        "{flows} flows; {} distinct secret values; {} bytes of log, {} bytes of Debug/Display output",
        distinct.len(),
        logs.len(),
        printed.len()
    );
    // The run did what it claims: every kind of secret was met.
    for kind in [
        "access token",
        "refresh token",
        "client secret",
        "code_verifier",
        "authorization code",
        "client_assertion",
        "DPoP proof",
        "DPoP private key (JWK d)",
        "private key rsa-pkcs1.pem",
        "id_token",
        "ID-JAG",
        "ID token",
        "device_code",
        "subject_token",
        "token",
    ] {
        assert!(secrets.iter().any(|(k, _)| k == kind), "no {kind} was collected");
    }
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "the log was captured");
    assert!(logs.contains("refreshed the access token"), "the refresh was logged");
    assert!(logs.contains("revoked"), "the log-out was logged");

    let mut leaks = Vec::new();
    for (what, value) in &secrets {
        for (place, text) in [("log", &logs), ("Debug/Display output", &printed)] {
            if let Some(line) = find_leak(text, value) {
                leaks.push(format!("{what} in the {place}: {line}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
}
