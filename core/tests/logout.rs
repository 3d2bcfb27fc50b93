//! Log-out (RFC 7009) against an in-process authorization server: what is
//! sent, and what a failure keeps.

mod mock;

use std::sync::Arc;

use mcp_oauth_client::{
    ErrorKind, MemoryStorage, OAuthClientInformationFull, OAuthClientMetadata, OAuthClientProvider, OAuthToken,
    ProviderConfig, Secret, Step, TokenStorage,
};
use mock::{Mock, Reply};
use serde_json::json;

async fn server(revocation: bool) -> Mock {
    let m = Mock::start().await;
    let mut meta = json!({
        "issuer": m.base,
        "authorization_endpoint": m.url("/authorize"),
        "token_endpoint": m.url("/token"),
        "code_challenge_methods_supported": ["S256"],
    });
    if revocation {
        meta["revocation_endpoint"] = json!(m.url("/revoke"));
    }
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    m.standard_prm(&m.base);
    m.fixed("/revoke", Reply::status(200));
    m
}

async fn stored(m: &Mock, issuer: &str) -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::default());
    let mut info = OAuthClientInformationFull::new("the-client", Some(Secret::new("the-secret")));
    info.set_token_endpoint_auth_method("client_secret_post");
    info.issuer = Some(m.base.clone());
    storage.set_client_info(info).await.unwrap();
    let mut t = OAuthToken::bearer("the-access-token");
    t.refresh_token = Some(Secret::new("the-refresh-token"));
    t.issuer = Some(issuer.to_string());
    t.resource = Some(m.url("/mcp"));
    storage.set_tokens(t).await.unwrap();
    storage
}

fn provider(m: &Mock, storage: Arc<MemoryStorage>) -> OAuthClientProvider {
    let c = ProviderConfig::new(
        m.url("/mcp"),
        OAuthClientMetadata::new(vec!["http://127.0.0.1:9/cb".into()]),
    );
    OAuthClientProvider::new(c, storage, None).unwrap()
}

#[tokio::test]
async fn revokes_the_refresh_token_then_the_access_token_as_the_client_and_deletes_them() {
    let m = server(true).await;
    let storage = stored(&m, &m.base).await;
    let out = provider(&m, storage.clone()).logout().await.unwrap();
    assert!(
        out.refresh_token_revoked && out.access_token_revoked && out.removed,
        "{out:?}"
    );
    let sent: Vec<_> = m.requests_to("/revoke").iter().map(|s| s.form()).collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["token"], "the-refresh-token");
    assert_eq!(sent[0]["token_type_hint"], "refresh_token");
    assert_eq!(sent[1]["token"], "the-access-token");
    assert_eq!(sent[1]["token_type_hint"], "access_token");
    for form in &sent {
        assert_eq!(form["client_id"], "the-client");
        assert_eq!(form["client_secret"], "the-secret");
    }
    assert!(storage.get_tokens().await.unwrap().is_none());
    // The registration is kept.
    assert!(storage.get_client_info().await.unwrap().is_some());
}

#[tokio::test]
async fn an_outage_at_the_revocation_endpoint_deletes_nothing() {
    let m = server(true).await;
    m.fixed("/revoke", Reply::status(503).header("retry-after", "7"));
    let storage = stored(&m, &m.base).await;
    let e = provider(&m, storage.clone()).logout().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.step(), Some(Step::Revocation));
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert!(!e.to_string().contains("the-refresh-token"));
    assert!(
        storage.get_tokens().await.unwrap().is_some(),
        "the tokens are kept to try again"
    );
}

#[tokio::test]
async fn a_refusal_of_the_refresh_token_is_a_token_error_and_deletes_nothing() {
    let m = server(true).await;
    m.fixed("/revoke", Reply::json(401, json!({"error": "invalid_client"})));
    let storage = stored(&m, &m.base).await;
    let e = provider(&m, storage.clone()).logout().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Token);
    assert_eq!(e.oauth_error(), Some("invalid_client"));
    assert!(storage.get_tokens().await.unwrap().is_some());
}

#[tokio::test]
async fn without_a_revocation_endpoint_the_tokens_are_deleted_and_the_outcome_says_why() {
    let m = server(false).await;
    let storage = stored(&m, &m.base).await;
    let out = provider(&m, storage.clone()).logout().await.unwrap();
    assert!(
        out.had_tokens && out.removed && out.revocation_endpoint.is_none(),
        "{out:?}"
    );
    assert!(out.not_revoked_because.unwrap().contains("no revocation_endpoint"));
    assert_eq!(m.count("/revoke"), 0);
    assert!(storage.get_tokens().await.unwrap().is_none());
}

#[tokio::test]
async fn tokens_of_another_authorization_server_are_never_sent_to_this_one() {
    let m = server(true).await;
    let storage = stored(&m, "https://other-as.example").await;
    let out = provider(&m, storage.clone()).logout().await.unwrap();
    assert_eq!(m.count("/revoke"), 0);
    assert!(out.not_revoked_because.unwrap().contains("https://other-as.example"));
    assert!(out.removed);
}
