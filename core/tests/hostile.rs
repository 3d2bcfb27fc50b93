//! Edge cases and hostile servers, against an in-process HTTP server: every
//! bad input gets a clear error, no secret goes where it should not, and
//! nothing stored is lost.

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
    OAuthClientInformationFull, OAuthClientMetadata, OAuthClientProvider, OAuthToken, ProviderConfig, ResponseAction,
    Secret, StaticClient, Step, TokenStorage,
};
use mock::{Mock, Reply};
use serde_json::json;
use url::Url;

#[tokio::test]
async fn full_flow_sends_what_the_spec_requires() {
    let m = Mock::start().await;
    m.standard_as("");
    m.standard_prm(&m.base);
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), person.clone());
    let challenge = format!(
        "Bearer resource_metadata=\"{}\", scope=\"read write\"",
        m.url("/.well-known/oauth-protected-resource/mcp")
    );
    let action = on_401(&p, &challenge).await.unwrap();
    assert_eq!(action, calls::retry("Bearer at-1"));

    let auth_url = person.url.lock().unwrap().clone().unwrap();
    let q: std::collections::HashMap<_, _> = auth_url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "registered-client");
    assert_eq!(
        q["scope"], "read write offline_access",
        "challenge scope first, offline_access added"
    );
    assert_eq!(q["resource"], m.url("/mcp"));
    assert_eq!(q["code_challenge_method"], "S256");

    let reg = &m.requests_to("/register")[0];
    let body: serde_json::Value = serde_json::from_str(&reg.body).unwrap();
    assert_eq!(body["application_type"], "native");
    assert!(body.get("scope").is_none());

    let tok = &m.requests_to("/token")[0];
    assert_eq!(tok.headers["accept"], "application/json");
    let form = tok.form();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["resource"], m.url("/mcp"));
    assert_eq!(form["client_id"], "registered-client");
    assert_eq!(form["redirect_uri"], "http://127.0.0.1:9/cb");
    assert!(form["code_verifier"].len() >= 43);
}

#[tokio::test]
async fn server_errors_during_discovery_are_errors_not_fallbacks() {
    for (path, status) in [
        ("/.well-known/oauth-protected-resource/mcp", 503),
        ("/.well-known/oauth-authorization-server/as", 500),
    ] {
        let m = Mock::start().await;
        m.standard_prm(&m.url("/as"));
        m.fixed(path, Reply::status(status));
        let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
        let e = on_401(&p, CHALLENGE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "an outage, not a refusal: {e}");
        assert_eq!(e.status(), Some(status), "{e}");
        assert_eq!(m.count("/register") + m.count("/token"), 0);
        assert_eq!(
            m.count("/.well-known/oauth-authorization-server"),
            0,
            "no silent fallback to the resource's origin"
        );
    }
    let m = Mock::start().await;
    m.fixed("/.well-known/oauth-protected-resource/mcp", Reply::status(429));
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    assert_eq!(on_401(&p, CHALLENGE).await.unwrap_err().status(), Some(429));
}

#[tokio::test]
async fn lying_metadata_is_refused() {
    // Issuer mismatch.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, json!({"issuer": "https://evil.example", "authorization_endpoint": m.url("/authorize"), "token_endpoint": m.url("/token"), "code_challenge_methods_supported": ["S256"]})),
    );
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert!(e.to_string().contains("issuer"), "{e}");
    assert_eq!(e.step(), Some(Step::AuthorizationServerMetadata));

    // A resource that is not this server.
    let m = Mock::start().await;
    m.standard_as("");
    m.fixed(
        "/.well-known/oauth-protected-resource/mcp",
        Reply::json(
            200,
            json!({"resource": "https://other.example/mcp", "authorization_servers": [m.base]}),
        ),
    );
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.step(), Some(Step::ResourceMetadata), "{e}");
    // ... unless the host's validator accepts it.
    let mut c = cfg(&m);
    c.resource_validator = Some(Arc::new(|_, r: &str| {
        if r == "https://other.example/mcp" {
            Ok(())
        } else {
            Err("no".into())
        }
    }));
    let p = build(c, Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    assert!(on_401(&p, CHALLENGE).await.is_ok());

    // Insecure endpoints on a non-loopback host.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, json!({"issuer": m.base, "authorization_endpoint": m.url("/authorize"), "token_endpoint": "http://tokens.example/token", "code_challenge_methods_supported": ["S256"]})),
    );
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    assert!(on_401(&p, CHALLENGE).await.unwrap_err().to_string().contains("https"));
}

#[tokio::test]
async fn pkce_support_is_required_unless_opted_out() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, json!({"issuer": m.base, "authorization_endpoint": m.url("/authorize"), "token_endpoint": m.url("/token"), "registration_endpoint": m.url("/register")})),
    );
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), person.clone());
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert!(e.to_string().contains("code_challenge_methods_supported"), "{e}");
    assert_eq!(person.redirects.load(Ordering::SeqCst), 0);
    let mut c = cfg(&m);
    c.assume_s256_when_pkce_unadvertised = true;
    let p = build(c, Arc::new(MemoryStorage::new()), person.clone());
    assert!(on_401(&p, CHALLENGE).await.is_ok());
}

#[tokio::test]
async fn oversized_and_slow_responses() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    let mut big = Reply::json(200, json!({}));
    big.body = vec![b' '; 2 * 1024 * 1024];
    m.fixed("/.well-known/oauth-authorization-server", big);
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    assert_eq!(e.network_failure(), Some(NetworkFailure::ResponseTooLarge));

    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed("/token", Reply::json(200, json!({})).delayed(Duration::from_secs(5)));
    let mut c = cfg(&m);
    c.timeout = Duration::from_millis(500);
    let p = build(c, Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let started = std::time::Instant::now();
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.network_failure(), Some(NetworkFailure::Timeout), "{e}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn legacy_mode_without_resource_metadata() {
    let m = Mock::start().await;
    // No PRM, no AS metadata: the default endpoints at the server's origin.
    m.route("/register", |_| Reply::json(201, json!({"client_id": "legacy-client"})));
    m.route("/token", |_| {
        Reply::json(200, json!({"access_token": "legacy-at", "token_type": "bearer"}))
    });
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), person.clone());
    let a = on_401(&p, "Bearer").await.unwrap();
    assert_eq!(a, calls::retry("Bearer legacy-at"));
    let url = person.url.lock().unwrap().clone().unwrap();
    assert_eq!(url.path(), "/authorize");
    assert_eq!(m.requests_to("/token")[0].form()["resource"], m.url("/mcp"));
}

#[tokio::test]
async fn callback_checks_state_and_iss() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let forged = Arc::new(Person {
        state_override: Some("forged".into()),
        ..Default::default()
    });
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), forged);
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert!(e.to_string().contains("state"), "{e}");
    assert_eq!(
        m.count("/token"),
        0,
        "a forged callback never reaches the token endpoint"
    );

    let mixup = Arc::new(Person {
        iss: Some("https://evil.example".into()),
        ..Default::default()
    });
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), mixup);
    assert!(on_401(&p, CHALLENGE).await.unwrap_err().to_string().contains("iss"));
    assert_eq!(m.count("/token"), 0);
}

#[tokio::test]
async fn refresh_before_a_new_flow_and_invalid_grant_drops_only_tokens() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let store = Arc::new(MemoryStorage::new());
    let mut held = OAuthToken::bearer("old-at");
    held.refresh_token = Some(Secret::new("old-rt"));
    held.scope = Some("read".into());
    store.set_tokens(held).await.unwrap();
    let mut info = OAuthClientInformationFull::new("stored-client", None);
    info.issuer = Some(m.base.clone());
    store.set_client_info(info.clone()).await.unwrap();

    let person = Arc::new(Person::default());
    let p = build(cfg(&m), store.clone(), person.clone());
    let a = calls::respond(&p, 401, &[CHALLENGE], Some("Bearer old-at"))
        .await
        .unwrap();
    assert_eq!(a, calls::retry("Bearer at-1"));
    assert_eq!(
        person.redirects.load(Ordering::SeqCst),
        0,
        "a 401 with a refresh token tries the refresh first"
    );
    let form = m.requests_to("/token")[0].form();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "old-rt");
    assert_eq!(form["scope"], "read");
    assert_eq!(form["resource"], m.url("/mcp"));
    assert_eq!(m.count("/register"), 0, "stored client information is used");

    // Now the server refuses the refresh: the tokens go, the registration stays,
    // and the full flow runs.
    m.route("/token", |s| {
        if s.form()["grant_type"] == "refresh_token" {
            Reply::json(400, json!({"error": "invalid_grant", "error_description": "revoked"}))
        } else {
            Reply::json(200, json!({"access_token": "fresh", "token_type": "Bearer"}))
        }
    });
    let a = calls::respond(&p, 401, &[CHALLENGE], Some("Bearer at-1"))
        .await
        .unwrap();
    assert_eq!(a, calls::retry("Bearer fresh"));
    assert_eq!(person.redirects.load(Ordering::SeqCst), 1);
    assert_eq!(store.get_client_info().await.unwrap().unwrap(), info);
    assert_eq!(
        store.get_tokens().await.unwrap().unwrap().access_token.expose(),
        "fresh"
    );
}

#[tokio::test]
async fn refresh_keeps_the_old_refresh_token_when_none_comes_back() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed(
        "/token",
        Reply::json(
            200,
            json!({"access_token": "new-at", "token_type": "Bearer", "expires_in": 60}),
        ),
    );
    let store = Arc::new(MemoryStorage::new());
    let mut held = OAuthToken::bearer("old-at");
    held.refresh_token = Some(Secret::new("keep-me"));
    held.expires_in = Some(60);
    held.expires_at = Some(1.0); // long expired
    store.set_tokens(held).await.unwrap();
    store
        .set_client_info(OAuthClientInformationFull::new("c", None))
        .await
        .unwrap();
    let p = build(cfg(&m), store.clone(), Arc::new(Person::default()));
    assert_eq!(calls::header(&p).await.unwrap().as_deref(), Some("Bearer new-at"));
    assert_eq!(
        store
            .get_tokens()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .unwrap()
            .expose(),
        "keep-me"
    );
}

#[tokio::test]
async fn client_information_is_bound_to_its_issuer() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let store = Arc::new(MemoryStorage::new());
    let mut other = OAuthClientInformationFull::new("from-the-old-server", Some(Secret::new("old-secret")));
    other.issuer = Some("https://old-as.example".into());
    store.set_client_info(other).await.unwrap();
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), store.clone(), person.clone());
    on_401(&p, CHALLENGE).await.unwrap();
    assert_eq!(m.count("/register"), 1, "registered again with the new server");
    let q = person.last_query();
    assert_eq!(q["client_id"], "registered-client");
    let tok = &m.requests_to("/token")[0];
    assert!(!tok.body.contains("old-secret") && !tok.headers.contains_key("authorization"));
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().issuer.as_deref(),
        Some(m.base.as_str())
    );
}

#[tokio::test]
async fn static_credentials_with_basic_auth_and_form_encoding() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let mut c = cfg(&m);
    c.static_client = Some(StaticClient {
        client_id: "id:with space".into(),
        client_secret: Some(Secret::new("p@ss/word")),
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        issuer: None,
    });
    let p = build(c, Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    on_401(&p, CHALLENGE).await.unwrap();
    assert_eq!(m.count("/register"), 0);
    let tok = &m.requests_to("/token")[0];
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(tok.headers["authorization"].strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), "id%3Awith+space:p%40ss%2Fword");
    assert!(!tok.form().contains_key("client_secret"));
}

#[tokio::test]
async fn refusals_are_structured() {
    // Registration refused.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed(
        "/register",
        Reply::json(
            400,
            json!({"error": "invalid_redirect_uri", "error_description": "nope"}),
        ),
    );
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Registration);
    assert_eq!(e.oauth_error(), Some("invalid_redirect_uri"));
    assert_eq!(e.status(), Some(400));

    // Token error sent with HTTP 200.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    m.fixed("/token", Reply::json(200, json!({"error": "invalid_grant"})));
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Token);
    assert_eq!(e.step(), Some(Step::TokenExchange));

    // Malformed PRM JSON at every URL counts as no metadata; a broken
    // challenge header does not stop the flow either.
    let m = Mock::start().await;
    let mut bad = Reply::json(200, json!({}));
    bad.body = b"{\"resource\": ".to_vec();
    m.fixed("/.well-known/oauth-protected-resource/mcp", bad);
    m.route("/register", |_| Reply::json(201, json!({"client_id": "c"})));
    m.route("/token", |_| {
        Reply::json(200, json!({"access_token": "x", "token_type": "Bearer"}))
    });
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    assert!(on_401(&p, "Bearer scope=\"unterminated").await.is_ok());
}

fn insufficient(scope: &str) -> String {
    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
}

#[tokio::test]
async fn step_up_asks_for_the_union_and_passes_other_403s_on() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let mut c = cfg(&m);
    c.client_metadata.scope = Some("read".into());
    let person = Arc::new(Person::default());
    let p = build(c, Arc::new(MemoryStorage::new()), person.clone());
    let sent = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();
    assert_eq!(
        person.last_query()["scope"],
        "read",
        "the configured scope is used as it is"
    );
    let sent = calls::retried(
        calls::respond(&p, 403, &[&insufficient("admin")], Some(&sent))
            .await
            .unwrap(),
    )
    .expect("step-up expected");
    assert_eq!(
        person.last_query()["scope"],
        "read admin",
        "the union of held and challenged scopes"
    );
    // Asking again for what is already granted cannot be fixed by a new authorization.
    let e = calls::respond(&p, 403, &[&insufficient("admin")], Some(&sent))
        .await
        .unwrap_err();
    assert_eq!(e.step(), Some(Step::StepUp));
    assert_eq!(person.redirects.load(Ordering::SeqCst), 2);
    // A 403 that is not about scope is passed to the application.
    assert_eq!(
        calls::respond(&p, 403, &["Bearer error=\"forbidden\""], Some(&sent))
            .await
            .unwrap(),
        calls::ResponseAction::Done
    );
}

#[tokio::test]
async fn step_up_cap_counts_attempts_per_challenge_without_successes_reported() {
    // A C host reports only 401/403, never a success: step-ups that are
    // granted never use up the cap, however many there are over a life.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), person.clone());
    let mut sent = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();
    for scope in ["s1", "s2", "s3", "s4", "s5"] {
        sent = calls::retried(
            calls::respond(&p, 403, &[&insufficient(scope)], Some(&sent))
                .await
                .unwrap(),
        )
        .unwrap_or_else(|| panic!("step-up to {scope} expected"));
    }
    assert_eq!(person.redirects.load(Ordering::SeqCst), 6);

    // An authorization server that never grants what the server asks for:
    // each attempt fails clearly, and after three no person is sent again.
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let n = Arc::new(AtomicUsize::new(0));
    m.route("/token", move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        Reply::json(
            200,
            json!({"access_token": format!("at-{i}"), "token_type": "Bearer", "expires_in": 3600, "scope": "read"}),
        )
    });
    let person = Arc::new(Person::default());
    let p = build(cfg(&m), Arc::new(MemoryStorage::new()), person.clone());
    let sent = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();
    for attempt in 1..=3 {
        let e = calls::respond(&p, 403, &[&insufficient("admin")], Some(&sent))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not grant"), "attempt {attempt}: {e}");
    }
    let e = calls::respond(&p, 403, &[&insufficient("admin")], Some(&sent))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("3 step-up attempts"), "{e}");
    assert_eq!(
        person.redirects.load(Ordering::SeqCst),
        4,
        "no person is sent a fourth time"
    );
}

#[tokio::test]
async fn authorization_server_selector() {
    let m = Mock::start().await;
    m.standard_as("/second");
    let prm = json!({"resource": m.url("/mcp"), "authorization_servers": [m.url("/first"), m.url("/second")]});
    m.fixed("/.well-known/oauth-protected-resource/mcp", Reply::json(200, prm));
    let mut c = cfg(&m);
    c.authorization_server_selector = Some(Arc::new(|list: &[String]| {
        list.iter().position(|s| s.ends_with("/second")).unwrap_or(0)
    }));
    let p = build(c, Arc::new(MemoryStorage::new()), Arc::new(Person::default()));
    on_401(&p, CHALLENGE).await.unwrap();
    assert_eq!(m.count("/.well-known/oauth-authorization-server/first"), 0);
}

#[tokio::test]
async fn failing_host_callbacks_are_handler_and_storage_errors() {
    struct Broken;
    #[async_trait]
    impl TokenStorage for Broken {
        async fn get_tokens(&self) -> mcp_oauth_client::Result<Option<OAuthToken>> {
            Err(mcp_oauth_client::Error::storage("disk on fire"))
        }
        async fn set_tokens(&self, _: OAuthToken) -> mcp_oauth_client::Result<()> {
            Ok(())
        }
        async fn get_client_info(&self) -> mcp_oauth_client::Result<Option<OAuthClientInformationFull>> {
            Ok(None)
        }
        async fn set_client_info(&self, _: OAuthClientInformationFull) -> mcp_oauth_client::Result<()> {
            Ok(())
        }
    }
    let m = Mock::start().await;
    let p = OAuthClientProvider::new(cfg(&m), Arc::new(Broken), None).unwrap();
    assert_eq!(calls::header(&p).await.unwrap_err().kind(), ErrorKind::Storage);

    struct Refuses;
    #[async_trait]
    impl AuthorizationHandler for Refuses {
        async fn redirect(&self, _: &Url) -> mcp_oauth_client::Result<()> {
            Err(mcp_oauth_client::Error::handler(Step::Authorization, "no browser"))
        }
        async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
            unreachable!()
        }
    }
    m.standard_prm(&m.base);
    m.standard_as("");
    let store = Arc::new(MemoryStorage::new());
    let p = OAuthClientProvider::new(cfg(&m), store.clone(), Some(Arc::new(Refuses))).unwrap();
    let e = on_401(&p, CHALLENGE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Handler);
    assert!(
        store.get_client_info().await.unwrap().is_some(),
        "the registration is kept"
    );

    // Without handlers, a flow that needs a person is a configuration error.
    let p = OAuthClientProvider::new(cfg(&m), Arc::new(MemoryStorage::new()), None).unwrap();
    assert_eq!(
        on_401(&p, CHALLENGE).await.unwrap_err().kind(),
        ErrorKind::InvalidConfiguration
    );
}

#[tokio::test]
async fn construction_rejects_bad_configuration() {
    let bad = |c: ProviderConfig| OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap_err();
    assert_eq!(
        bad(ProviderConfig::new("not a url", meta())).kind(),
        ErrorKind::InvalidConfiguration
    );
    assert_eq!(
        bad(ProviderConfig::new("ftp://x/mcp", meta())).kind(),
        ErrorKind::InvalidConfiguration
    );
    let mut c = ProviderConfig::new("https://x.example/mcp", meta());
    c.client_metadata_url = Some("http://x.example/client.json".into());
    assert!(bad(c).to_string().contains("https"));
    let mut c = ProviderConfig::new("https://x.example/mcp", meta());
    c.client_metadata_url = Some("https://x.example/".into());
    assert!(bad(c).to_string().contains("path"));
    let c = ProviderConfig::new("https://x.example/mcp", OAuthClientMetadata::new(vec![]));
    assert!(bad(c).to_string().contains("redirect_uris"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_store_refresh_once() {
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let counter = Arc::new(AtomicUsize::new(0));
    let c2 = counter.clone();
    m.route("/token", move |s| {
        let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
        if s.form()["refresh_token"] != "rt-0" {
            return Reply::json(400, json!({"error": "invalid_grant"}));
        }
        Reply::json(200, json!({"access_token": format!("at-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": format!("rt-{n}")}))
        .delayed(Duration::from_millis(200))
    });
    let dir = tempfile::tempdir().unwrap();
    let seed = FileStorage::new(dir.path(), &m.url("/mcp")).unwrap();
    let mut t = OAuthToken::bearer("at-0");
    t.refresh_token = Some(Secret::new("rt-0"));
    t.expires_in = Some(3600);
    t.expires_at = Some(1.0);
    seed.set_tokens(t).await.unwrap();
    let mut info = OAuthClientInformationFull::new("c", None);
    info.issuer = Some(m.base.clone());
    seed.set_client_info(info).await.unwrap();

    // Two providers, as two processes would have, each with its own store object.
    let a = build(
        cfg(&m),
        Arc::new(FileStorage::new(dir.path(), &m.url("/mcp")).unwrap()),
        Arc::new(Person::default()),
    );
    let b = build(
        cfg(&m),
        Arc::new(FileStorage::new(dir.path(), &m.url("/mcp")).unwrap()),
        Arc::new(Person::default()),
    );
    let (ha, hb) = tokio::join!(calls::header(&a), calls::header(&b));
    assert_eq!(counter.load(Ordering::SeqCst), 1, "one refresh, seen by both");
    assert_eq!(ha.unwrap(), hb.unwrap());
}

#[tokio::test]
async fn client_credentials_with_a_secret_or_a_private_key() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let m = Mock::start().await;
    m.standard_prm(&m.base);
    m.standard_as("");
    let mut c = cfg(&m);
    c.grant = mcp_oauth_client::GrantKind::ClientCredentials;
    c.client_metadata.scope = Some("read".into());
    c.static_client = Some(StaticClient {
        client_id: "svc".into(),
        client_secret: Some(Secret::new("s3cret")),
        token_endpoint_auth_method: Some("client_secret_post".into()),
        issuer: None,
    });
    let p = OAuthClientProvider::new(c.clone(), Arc::new(MemoryStorage::new()), None).unwrap();
    assert_eq!(
        calls::header(&p).await.unwrap().as_deref(),
        Some("Bearer at-1"),
        "no person, no 401 needed"
    );
    let form = m.requests_to("/token")[0].form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_secret"], "s3cret");
    assert_eq!(form["scope"], "read");
    assert_eq!(form["resource"], m.url("/mcp"));

    let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let pem = Secret::new(key.to_pkcs8_pem(LineEnding::LF).unwrap().as_str());
    c.static_client = Some(StaticClient {
        client_id: "svc".into(),
        client_secret: None,
        token_endpoint_auth_method: Some("private_key_jwt".into()),
        issuer: None,
    });
    c.client_assertion = Some(Arc::new(
        mcp_oauth_client::JwtSigner::from_pem(&pem, "ES256", None).unwrap(),
    ));
    let p = OAuthClientProvider::new(c, Arc::new(MemoryStorage::new()), None).unwrap();
    assert!(calls::header(&p).await.unwrap().is_some());
    let form = m.requests_to("/token")[1].form();
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form["client_assertion"].split('.').count(), 3);
    assert!(!form.contains_key("client_secret"));
}

/// A resource whose metadata names `current`, one of two authorization
/// servers whose registrations answer `as1-client` (with a secret) and
/// `as2-client`.
struct Migration {
    rs: Mock,
    as1: Mock,
    as2: Mock,
    current: Arc<std::sync::Mutex<String>>,
}

impl Migration {
    async fn start() -> Migration {
        let rs = Mock::start().await;
        let as1 = Mock::start().await;
        let as2 = Mock::start().await;
        as1.standard_as("");
        as2.standard_as("");
        as1.route("/register", |_| {
            Reply::json(201, json!({"client_id": "as1-client", "client_secret": "as1-secret"}))
        });
        as2.route("/register", |_| Reply::json(201, json!({"client_id": "as2-client"})));
        let current = Arc::new(std::sync::Mutex::new(as1.base.clone()));
        let named = current.clone();
        let resource = rs.url("/mcp");
        rs.route("/.well-known/oauth-protected-resource/mcp", move |_| {
            let server = named.lock().unwrap().clone();
            Reply::json(200, json!({"resource": resource, "authorization_servers": [server]}))
        });
        Migration { rs, as1, as2, current }
    }
}

#[tokio::test]
async fn authorization_server_migration_registers_again_and_never_leaks_credentials() {
    let Migration {
        rs,
        as1: _,
        as2,
        current,
    } = Migration::start().await;
    let store = Arc::new(MemoryStorage::new());
    let person = Arc::new(Person::default());
    let p = build(cfg(&rs), store.clone(), person.clone());
    let first = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();

    *current.lock().unwrap() = as2.base.clone();
    let action = calls::respond(&p, 401, &[CHALLENGE], Some(&first)).await.unwrap();
    assert!(matches!(action, ResponseAction::Retry(_)));
    assert_eq!(as2.count("/token"), 1, "the new token comes from the new server");
    assert_eq!(as2.count("/register"), 1, "registered again at the new server");
    for seen in as2.seen.lock().unwrap().iter() {
        assert!(
            !seen.body.contains("as1-") && !seen.headers.values().any(|v| v.contains("as1-") || v.contains("YXMx"))
        );
    }
    let q = person.last_query();
    assert_eq!(q["client_id"], "as2-client");
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().issuer.as_deref(),
        Some(as2.base.as_str())
    );
}

#[tokio::test]
async fn the_file_store_keeps_a_registration_per_authorization_server() {
    let Migration { rs, as1, as2, current } = Migration::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStorage::new(dir.path(), &rs.url("/mcp")).unwrap());
    let person = Arc::new(Person::default());
    let p = build(cfg(&rs), store.clone(), person.clone());
    let mut sent = calls::retried(on_401(&p, CHALLENGE).await.unwrap()).unwrap();
    for server in [&as2.base, &as1.base, &as2.base] {
        *current.lock().unwrap() = server.clone();
        sent = calls::retried(calls::respond(&p, 401, &[CHALLENGE], Some(&sent)).await.unwrap()).unwrap();
    }
    assert_eq!(
        as1.count("/register"),
        1,
        "moving back to a server reuses its registration"
    );
    assert_eq!(as2.count("/register"), 1);
    let q = person.last_query();
    assert_eq!(q["client_id"], "as2-client");
    // A new process over the same file finds both.
    let again = FileStorage::new(dir.path(), &rs.url("/mcp")).unwrap();
    assert_eq!(
        again.get_client_info_for(&as1.base).await.unwrap().unwrap().client_id,
        "as1-client"
    );
    assert_eq!(
        again.get_client_info_for(&as2.base).await.unwrap().unwrap().client_id,
        "as2-client"
    );
}
