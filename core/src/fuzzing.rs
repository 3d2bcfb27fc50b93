//! Entry points of the fuzz targets (`fuzz/` in the repository), behind the
//! `fuzzing` feature, which is off by default.
//!
//! Each function takes the fuzzer's bytes and runs them through the code that
//! reads the same input in use: the `WWW-Authenticate` parser, discovery,
//! token, registration and device-authorization response handling, the
//! callback checks, the loopback receiver's request handling, DPoP, and the
//! stores' decoding. Server responses reach that code through a host
//! transport answering with the bytes, so the real request functions run.
//! None of them may panic on any input: a panic is a bug (the assertions here
//! state what must hold of what the code accepted).
//!
//! A server response is given as an HTTP/1.1 response (`HTTP/1.1 200 OK`,
//! headers, a blank line, the body); bytes that do not start with `HTTP/` are
//! a body served with `200` and `application/json`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

use crate::authorize::{AuthorizationCodeResult, PendingAuthorization, Pkce, validate_callback};
use crate::binding::{Bearer, TokenBinding};
use crate::challenge;
use crate::discovery::{self, Discovered, DiscoveryOptions};
use crate::dpop::Dpop;
use crate::error::Step;
use crate::http::{Http, HttpRequest, HttpResponse, HttpTransport, TransportError, is_loopback};
use crate::keys::{LocalSigner, PrivateKey};
use crate::model::{AuthorizationServerMetadata, OAuthClientInformationFull, OAuthClientMetadata};
use crate::provider::ResponseInfo;
use crate::token::{ClientAuthentication, Grant};

/// The MCP server every target talks about.
const SERVER: &str = "https://mcp.example.com/mcp";
/// The issuer the seeds name.
const ISSUER: &str = "https://auth.example.com";
/// The state the callback targets expect.
const STATE: &str = "af0ifjsldkj-state";
/// The loopback receiver's redirect path.
const REDIRECT_PATH: &str = "/callback";
/// The loopback redirect URI the client registers.
const REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

/// A host transport that answers every request with what `answer` makes of it.
struct Canned<F>(F);

#[async_trait]
impl<F> HttpTransport for Canned<F>
where
    F: Fn(&HttpRequest) -> HttpResponse + Send + Sync,
{
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        Ok((self.0)(&request))
    }
}

fn http(answer: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static) -> Http {
    Http {
        transport: Arc::new(Canned(answer)),
        timeout: Duration::from_secs(30),
        protocol_version: None,
        allow_http_hosts: Arc::from(Vec::new()),
    }
}

/// Run a future to its end on this thread's runtime (made once per thread).
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// Read bytes as a server response (see the module documentation).
pub fn http_response(bytes: &[u8]) -> HttpResponse {
    if !bytes.starts_with(b"HTTP/") {
        return HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: bytes.to_vec(),
        };
    }
    let (head, body) = match find(bytes, b"\r\n\r\n") {
        Some(i) => (&bytes[..i], &bytes[i + 4..]),
        None => match find(bytes, b"\n\n") {
            Some(i) => (&bytes[..i], &bytes[i + 2..]),
            None => (bytes, &[][..]),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_vec(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Split the input into the parts a target needs, at lines that are exactly
/// `---`.
fn parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = find(rest, b"\n---\n") {
        out.push(&rest[..i]);
        rest = &rest[i + 5..];
    }
    out.push(rest);
    out
}

fn server() -> Url {
    Url::parse(SERVER).expect("a valid URL")
}

/// Whether a server-given URL passed the transport rule: https, or http on
/// loopback.
fn secure(s: &str) -> bool {
    Url::parse(s).is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http" && is_loopback(&u))
}

/// 1. `WWW-Authenticate`: every line of the input is one header value. The
///    parser, the challenge the client acts on, the metadata URLs it leads
///    to, the step-up scope, and the diagnosis's first step, which reads the
///    same headers from a 401.
pub fn www_authenticate(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let headers: Vec<&str> = text.split('\n').collect();
    for h in &headers {
        if let Ok(challenges) = challenge::parse(h) {
            for c in &challenges {
                assert!(!c.scheme.is_empty(), "a challenge has a scheme");
                assert!(
                    c.params
                        .iter()
                        .all(|(k, _)| !k.is_empty() && !k.bytes().any(|b| b.is_ascii_uppercase())),
                    "parameter names are lower-cased tokens"
                );
            }
        }
    }
    let picked = challenge::find_bearer(&headers);
    if let Some(c) = &picked {
        assert!(
            c.scheme.eq_ignore_ascii_case("bearer") || c.scheme.eq_ignore_ascii_case("dpop"),
            "only a Bearer or DPoP challenge is acted on"
        );
        let urls = discovery::resource_metadata_urls(&server(), c.resource_metadata.as_deref());
        assert!(
            urls.iter().all(|u| matches!(u.scheme(), "http" | "https")),
            "metadata is only fetched over http(s)"
        );
        if let Some(scope) = crate::scope::step_up_scope(Some("read"), c.scope.as_deref()) {
            assert!(scope.split(' ').any(|s| s == "read"), "a step-up keeps the scopes held");
        }
    }
    let response_headers: Vec<(String, String)> = headers
        .iter()
        .map(|h| ("WWW-Authenticate".to_string(), h.to_string()))
        .chain([("DPoP-Nonce".to_string(), "n-1".to_string())])
        .collect();
    let nonce_challenge = ResponseInfo::new(401, &response_headers).is_dpop_nonce_challenge();
    assert_eq!(
        nonce_challenge,
        picked.as_ref().and_then(|c| c.error.as_deref()) == Some("use_dpop_nonce")
    );
    let answer = response_headers.clone();
    let http = http(move |_| HttpResponse {
        status: 401,
        headers: answer.clone(),
        body: Vec::new(),
    });
    let mut trace = Vec::new();
    let probed = block_on(discovery::probe(&http, &server(), &mut trace));
    assert_eq!(
        probed.expect("a 401 is never an error of the probe"),
        picked,
        "the diagnosis reads the challenge the client acts on"
    );
    picked.is_some()
}

/// 2. Metadata: the first byte picks what is served, the rest is
///    `PRM response`, `---`, `authorization server metadata response`.
///    Discovery runs on them (with the resource check, or with a pinned
///    issuer), then the PKCE check; what it accepts must be consistent.
pub fn metadata(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let docs = parts(rest);
    let prm = docs.first().map(|d| http_response(d));
    let asm = docs.get(1).map(|d| http_response(d));
    let openid_only = selector & 1 != 0;
    let answer = move |req: &HttpRequest| {
        let path = req.url.path();
        let found = if path.starts_with("/.well-known/oauth-protected-resource") {
            prm.clone()
        } else if path.starts_with("/.well-known/oauth-authorization-server") && !openid_only
            || path.contains("/.well-known/openid-configuration") && openid_only
        {
            asm.clone()
        } else {
            None
        };
        found.unwrap_or(HttpResponse {
            status: 404,
            headers: Vec::new(),
            body: Vec::new(),
        })
    };
    let http = http(answer);
    let options = DiscoveryOptions {
        pinned_issuer: (selector & 2 != 0).then(|| ISSUER.to_string()),
        ..DiscoveryOptions::default()
    };
    let from_challenge =
        (selector & 4 != 0).then_some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
    let mut trace = Vec::new();
    let found = block_on(discovery::discover(
        &http,
        &server(),
        from_challenge,
        &options,
        &mut trace,
    ));
    assert!(!trace.is_empty(), "every discovery leaves a trace");
    let Ok(d) = found else { return false };
    check_discovered(&d, &options);
    let pkce = discovery::check_pkce_support(&d.server, selector & 8 != 0);
    if pkce.is_ok() && selector & 8 == 0 {
        assert!(
            d.server
                .code_challenge_methods_supported
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m == "S256")),
            "PKCE is only used where S256 is offered"
        );
    }
    let grants = ["authorization_code".to_string(), "refresh_token".to_string()];
    if let Some(scope) = crate::scope::initial_scope(
        None,
        None,
        d.resource_metadata.as_ref().and_then(|p| p.scopes_supported.as_deref()),
        Some(&d.server),
        &grants,
    ) {
        assert!(!scope.trim().is_empty(), "a scope sent is not blank");
    }
    pkce.is_ok()
}

fn check_discovered(d: &Discovered, options: &DiscoveryOptions) {
    if let Some(prm) = &d.resource_metadata {
        assert!(
            discovery::default_resource_check(&server(), &prm.resource).is_ok(),
            "the resource covers the MCP server"
        );
        assert!(
            prm.authorization_servers.contains(&d.issuer),
            "the issuer is one the resource named"
        );
        assert_eq!(d.resource, prm.resource);
    }
    assert!(secure(&d.issuer), "the issuer is https (or loopback)");
    assert!(
        discovery::same_issuer(&d.issuer, &d.server.issuer),
        "the metadata is the issuer's own"
    );
    if let Some(pinned) = &options.pinned_issuer {
        assert!(discovery::same_issuer(pinned, &d.issuer), "a pinned issuer is kept");
    }
    for endpoint in [
        &d.server.authorization_endpoint,
        &d.server.token_endpoint,
        &d.server.registration_endpoint,
    ]
    .into_iter()
    .flatten()
    {
        assert!(secure(endpoint), "endpoints are https (or loopback)");
    }
}

/// The token endpoint of the targets that talk to one.
fn token_endpoint() -> Url {
    Url::parse("https://auth.example.com/token").expect("a valid URL")
}

/// 3. Token responses: the first byte picks how the response is read, the
///    rest is the response. 0: a token request (authorization code) through
///    the token endpoint code, with a bearer binding; 1: the same with DPoP,
///    the response served first (a `use_dpop_nonce` with a nonce is retried
///    once, then a second part after `---` is served); 2: a refresh; 3: an
///    RFC 8693 token exchange for an ID-JAG.
pub fn token_response(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let responses: Vec<HttpResponse> = parts(rest).into_iter().map(http_response).collect();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    let http = http(move |_| {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        responses[i.min(responses.len() - 1)].clone()
    });
    let auth = ClientAuthentication::None {
        client_id: "client-1".into(),
    };
    let url = token_endpoint();
    match (selector & 0x0f) % 4 {
        3 => {
            let first = http_response(parts(rest)[0]);
            match crate::token::parse_exchanged_token(&first, &url, Step::TokenExchange, crate::sources::ID_JAG_TYPE) {
                Ok(token) => {
                    assert!(crate::token::is_b64token(token.expose()), "the token fits a header");
                    true
                }
                Err(e) => {
                    let _ = format!("{e} {e:?}");
                    false
                }
            }
        }
        kind => {
            let grant = if kind == 2 {
                Grant::RefreshToken {
                    refresh_token: "rt-1".into(),
                    scope: None,
                }
            } else {
                Grant::AuthorizationCode {
                    code: "code-1".into(),
                    code_verifier: "v".repeat(43).into(),
                    redirect_uri: REDIRECT_URI.into(),
                }
            };
            let dpop;
            let binding: &dyn TokenBinding = if kind == 1 {
                dpop = new_dpop();
                &dpop
            } else {
                &Bearer
            };
            let outcome = block_on(crate::token::request_token(
                &http,
                &url,
                ISSUER,
                &grant,
                &auth,
                Some(SERVER),
                &[],
                binding,
            ));
            assert!(
                served.load(std::sync::atomic::Ordering::SeqCst) <= 2,
                "a token request is sent at most twice"
            );
            match outcome {
                Ok(token) => {
                    let t = token.access_token.expose();
                    assert!(
                        !t.is_empty() && crate::token::is_b64token(t),
                        "the access token fits a header"
                    );
                    assert!(token.token_type == "Bearer" || token.token_type == "DPoP");
                    assert!(token.expires_in.is_none_or(|e| e <= crate::token::MAX_EXPIRES_IN));
                    assert!(token.issuer.is_none() && token.resource.is_none());
                    let _ = (token.needs_refresh(), token.is_expired(), token.header_value());
                    true
                }
                Err(e) => {
                    let _ = format!("{e} {e:?}");
                    false
                }
            }
        }
    }
}

/// 4. Registration and device authorization: the first byte picks; the rest
///    is the response. Even: dynamic client registration (odd/even bits pick
///    whether the client can sign assertions and asks for a secret method);
///    odd: a device authorization request.
pub fn registration_response(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let response = http_response(rest);
    let http = http(move |_| response.clone());
    let server = server_metadata();
    if selector & 1 == 0 {
        let mut metadata = OAuthClientMetadata::new(vec![REDIRECT_URI.to_string()]);
        if selector & 4 != 0 {
            metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
        }
        let can_sign = selector & 2 != 0;
        match block_on(crate::registration::register(&http, &server, &metadata, None, can_sign)) {
            Ok(info) => {
                assert!(!info.client_id.is_empty());
                assert_eq!(
                    info.issuer.as_deref(),
                    Some(ISSUER),
                    "a registration is bound to its issuer"
                );
                assert!(
                    crate::registration::check_registered(&info, &metadata, can_sign).is_ok(),
                    "what is kept passes the checks"
                );
                let redirects = info.metadata.get("redirect_uris").and_then(|v| v.as_array());
                assert!(
                    redirects.is_some_and(|r| !r.is_empty() && r.iter().all(|u| *u == REDIRECT_URI)),
                    "the redirect URI is ours alone"
                );
                let _ = format!("{info:?}");
                true
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
                false
            }
        }
    } else {
        device_authorization(http, &server)
    }
}

fn device_authorization(http: Http, server: &AuthorizationServerMetadata) -> bool {
    let discovered = Discovered {
        resource_metadata: None,
        issuer: ISSUER.into(),
        server: server.clone(),
        resource: SERVER.into(),
    };
    let client = OAuthClientInformationFull::new("client-1", None);
    let auth = ClientAuthentication::None {
        client_id: "client-1".into(),
    };
    let metadata = OAuthClientMetadata::new(vec![REDIRECT_URI.to_string()]);
    let endpoint = Url::parse("https://auth.example.com/device").expect("a valid URL");
    let token_endpoint = token_endpoint();
    let ctx = crate::sources::SourceContext {
        http: &http,
        discovered: &discovered,
        client: &client,
        client_auth: &auth,
        token_endpoint: &token_endpoint,
        resource: Some(SERVER),
        extra_authorization_params: &[],
        extra_token_params: &[],
        client_metadata: &metadata,
        assume_s256_when_pkce_unadvertised: false,
        authorization_timeout: Duration::from_secs(60),
        binding: &Bearer,
    };
    match block_on(crate::sources::device_code::request_device_code(&ctx, &endpoint, None)) {
        Ok((code, shown)) => {
            assert!(!code.expose().is_empty());
            assert!(secure(shown.verification_uri.as_str()), "the person is sent to https");
            assert!(
                shown
                    .verification_uri_complete
                    .as_ref()
                    .is_none_or(|u| secure(u.as_str())),
                "the person is sent to https"
            );
            assert!(!shown.user_code.trim().is_empty() && shown.user_code.len() <= crate::sources::MAX_USER_CODE_LEN);
            assert!(!shown.interval.is_zero() && shown.interval < shown.expires_in);
            assert!(shown.expires_in <= crate::sources::MAX_DEVICE_CODE_LIFETIME);
            let _ = format!("{shown:?}");
            true
        }
        Err(e) => {
            let _ = format!("{e} {e:?}");
            false
        }
    }
}

fn server_metadata() -> AuthorizationServerMetadata {
    let mut m = discovery::legacy_default_metadata(&Url::parse(ISSUER).expect("a valid URL"));
    m.device_authorization_endpoint = Some(format!("{ISSUER}/device"));
    m
}

/// 5. The callback: the input is the redirect URL (or its query) as a
///    handler reports it; the first byte picks whether the server promised
///    `iss`. It is read and checked against an authorization in progress.
pub fn callback(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let text = String::from_utf8_lossy(rest);
    let Ok(result) = AuthorizationCodeResult::from_redirect(&text) else {
        return false;
    };
    let Ok(pkce) = Pkce::generate() else { return false };
    let pending = PendingAuthorization {
        url: Url::parse("https://auth.example.com/authorize").expect("a valid URL"),
        state: STATE.into(),
        pkce,
        redirect_uri: REDIRECT_URI.into(),
        expected_issuer: ISSUER.into(),
        iss_supported: selector & 1 != 0,
    };
    let _ = format!("{result:?}");
    match validate_callback(&pending, &result) {
        Ok(code) => {
            assert!(!code.expose().is_empty());
            assert_eq!(result.state.as_deref(), Some(STATE), "the state matched");
            assert!(result.error.is_none(), "an error response gives no code");
            match &result.iss {
                Some(iss) => assert_eq!(iss, ISSUER, "the issuer matched"),
                None => assert!(!pending.iss_supported, "a promised iss is there"),
            }
            true
        }
        Err(e) => {
            let _ = format!("{e} {e:?}");
            false
        }
    }
}

/// 6. The loopback receiver: the input is what a local process sends to the
///    socket, read in chunks of the size the first byte gives, as the
///    receiver reads it; the head is judged as the receiver judges it.
pub fn loopback_request(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let chunk = usize::from(selector % 64) + 1;
    let mut head = Vec::new();
    let mut refused = false;
    for piece in rest.chunks(chunk) {
        match crate::handler::push_head_chunk(&mut head, piece) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(
        head.len() <= crate::handler::MAX_HEAD_BYTES + chunk,
        "the head read is bounded"
    );
    if refused || head.is_empty() {
        return false;
    }
    let expected = (selector & 64 != 0).then_some(STATE);
    let answer = crate::handler::answer_request(&head, REDIRECT_PATH, expected);
    let bytes = crate::handler::response_bytes(&answer);
    let text = String::from_utf8(bytes).expect("the answer is text");
    assert!(text.starts_with("HTTP/1.1 "), "the answer is HTTP");
    assert_eq!(text.matches("\r\n\r\n").count(), 1, "the head ends once");
    let fixed = [
        "bad request",
        "unexpected state",
        "not found",
        &crate::handler::Page::Success.html(),
        &crate::handler::Page::Denied.html(),
        &crate::handler::Page::Error.html(),
    ];
    assert!(
        fixed.contains(&answer.body.as_str()),
        "nothing of the request is in the answer"
    );
    match &answer.result {
        Some(result) => {
            assert_eq!(answer.code, 200);
            if let Some(expected) = expected {
                assert_eq!(result.state.as_deref(), Some(expected));
            }
        }
        None => assert_ne!(answer.code, 200),
    }
    answer.result.is_some()
}

/// DPoP with one key made once (the nonces are each input's own).
fn new_dpop() -> Dpop {
    static SIGNER: OnceLock<Arc<LocalSigner>> = OnceLock::new();
    let signer = SIGNER.get_or_init(|| Arc::new(LocalSigner::new(PrivateKey::generate_es256(), None)));
    Dpop::new(signer.clone()).expect("a key with a public JWK")
}

fn decode_json(part: &str) -> serde_json::Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("a proof part is base64url");
    serde_json::from_slice(&bytes).expect("a proof part is JSON")
}

/// 7. DPoP: lines of the input are the method, the URL, the access token,
///    then `DPoP-Nonce` values received from that URL in turn. Every nonce is
///    judged; then a proof is made and must decode to what was asked, with
///    the nonce held (if any).
pub fn dpop(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let url = lines.next().unwrap_or("");
    let token = lines.next().unwrap_or("");
    let dpop = new_dpop();
    let mut held: Option<String> = None;
    for nonce in lines {
        let headers = vec![("DPoP-Nonce".to_string(), nonce.to_string())];
        let changed = dpop.observe_nonce(url, &headers);
        if changed {
            held = Some(nonce.trim().to_string());
        }
        let n = nonce.trim();
        if changed {
            assert!(
                !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "only an RFC 9449 nonce is kept"
            );
        }
    }
    assert_eq!(dpop.nonce_for(url), held, "the last new nonce is the one held");
    let access_token = (!token.is_empty()).then_some(token);
    let Some(proof) = dpop.proof_now(method, url, access_token) else {
        panic!("a local key signs without waiting");
    };
    let Ok(proof) = proof else {
        assert!(Url::parse(url).is_err(), "only a URL that is not one has no proof");
        return false;
    };
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "a proof is a compact JWS");
    let header = decode_json(parts[0]);
    let claims = decode_json(parts[1]);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(claims["htm"], method.to_ascii_uppercase());
    let mut htu = Url::parse(url).expect("a proof was made, so the URL parsed");
    htu.set_query(None);
    htu.set_fragment(None);
    assert_eq!(claims["htu"], htu.as_str());
    match &held {
        Some(n) => assert_eq!(claims["nonce"], n.as_str()),
        None => assert!(claims.get("nonce").is_none()),
    }
    match access_token {
        Some(t) => assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()))),
        None => assert!(claims.get("ath").is_none()),
    }
    assert!(
        !proof.bytes().any(|b| b.is_ascii_control() || b == b' '),
        "a proof fits a header"
    );
    true
}

/// 8. Stored values: the first byte picks the store; the rest is what it
///    reads. 0: the file store's data file; 1 to 4: a Redis value (feature
///    `redis`; see `storage::redis::fuzz_stored_value`).
pub fn stored_values(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    match (selector & 0x0f) % 5 {
        0 => crate::storage::fuzz_stored_file(rest),
        #[cfg(feature = "redis")]
        kind => crate::storage::fuzz_stored_value(kind - 1, rest),
        #[cfg(not(feature = "redis"))]
        _ => crate::storage::fuzz_stored_file(rest),
    }
}
