//! The device authorization grant and log-out with revocation against the
//! real oidc-provider: the person's part goes through oidc-provider's own
//! user-code page, its confirmation form and the login interaction, as a
//! browser on another device would, and revocation is proven by the
//! authorization server refusing the old refresh token.

mod calls;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use mcp_oauth_client::{
    DeviceAuthorization, DeviceCodeHandler, ErrorKind, FileStorage, MemoryStorage, OAuthClientMetadata,
    OAuthClientProvider, ProviderConfig, Step, TokenStorage,
};
use serde_json::json;
use url::Url;

/// Hands each code shown to the test.
struct Screen(tokio::sync::mpsc::UnboundedSender<DeviceAuthorization>);

#[async_trait]
impl DeviceCodeHandler for Screen {
    async fn show(&self, a: &DeviceAuthorization) -> mcp_oauth_client::Result<()> {
        let _ = self.0.send(a.clone());
        Ok(())
    }
}

fn device_provider(
    peers: &Peers,
    storage: Arc<dyn TokenStorage>,
) -> (
    OAuthClientProvider,
    tokio::sync::mpsc::UnboundedReceiver<DeviceAuthorization>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut meta = OAuthClientMetadata::new(vec![]);
    meta.client_name = Some("device flow tests".into());
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), meta);
    cfg.timeout = Duration::from_secs(10);
    cfg.use_device_code(Arc::new(Screen(tx)));
    (OAuthClientProvider::new(cfg, storage, None).unwrap(), rx)
}

/// A browser on the person's other device: follows redirects by hand and
/// keeps cookies (every cookie to every path of the one origin it visits).
struct OtherDevice {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    url: Url,
    status: u16,
    body: String,
}

impl OtherDevice {
    fn new() -> Self {
        OtherDevice {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    /// Send a request and follow redirects to the final page.
    async fn go(&mut self, method: &str, url: Url, form: Option<Vec<(String, String)>>) -> Page {
        let (mut method, mut url, mut form) = (method.to_string(), url, form);
        for _ in 0..10 {
            let mut req = self.http.request(method.parse().unwrap(), url.clone());
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
                req = req.header("cookie", jar.join("; "));
            }
            if let Some(f) = &form {
                req = req.form(f);
            }
            let resp = req.send().await.unwrap();
            for c in resp.headers().get_all("set-cookie") {
                let pair = c.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_string(), v.to_string());
                }
            }
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap();
                url = url.join(loc).unwrap();
                method = "GET".into();
                form = None;
                continue;
            }
            let body = resp.text().await.unwrap();
            return Page { url, status, body };
        }
        panic!("too many redirects");
    }

    /// Submit the form of `page` whose opening tag contains `marker`, with
    /// its hidden fields and `extra`.
    async fn submit(&mut self, page: &Page, marker: &str, extra: &[(&str, &str)]) -> Page {
        let start = page
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no form {marker:?} on {}: {}", page.url, page.body));
        let form_start = page.body[..start].rfind("<form").unwrap();
        let end = form_start + page.body[form_start..].find("</form>").unwrap();
        let form = &page.body[form_start..end];
        let action = attr(form, "action").unwrap_or_default();
        let mut fields: Vec<(String, String)> = Vec::new();
        for input in form.split("<input").skip(1) {
            if attr(input, "type").as_deref() == Some("hidden") {
                fields.push((attr(input, "name").unwrap(), attr(input, "value").unwrap_or_default()));
            }
        }
        for (k, v) in extra {
            fields.push((k.to_string(), v.to_string()));
        }
        let url = page.url.join(&action).unwrap();
        self.go("POST", url, Some(fields)).await
    }

    /// Enter `user_code` on the verification page, confirm it, and sign in
    /// (or deny) at the login interaction. Returns the last page.
    async fn approve(&mut self, a: &DeviceAuthorization, sign_in: bool) -> Page {
        let input = self.go("GET", a.verification_uri.clone(), None).await;
        assert_eq!(input.status, 200, "{}", input.body);
        assert!(
            input.body.contains("Enter the code displayed on your device"),
            "{}",
            input.body
        );
        let confirm = self
            .submit(&input, "op.deviceInputForm", &[("user_code", &a.user_code)])
            .await;
        assert!(confirm.body.contains("Confirm Device"), "{}", confirm.body);
        assert!(confirm.body.contains(&a.user_code), "the page shows the code");
        let login = self.submit(&confirm, "op.deviceConfirmForm", &[]).await;
        assert!(
            login.url.path().starts_with("/interaction/"),
            "{}: {}",
            login.url,
            login.body
        );
        let button = if sign_in { "/login\"" } else { "/abort\"" };
        self.submit(&login, button, &[]).await
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')?;
    Some(tag[i..i + j].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approved_on_oidc_providers_pages_then_the_mcp_server_accepts_the_token() {
    let peers = Peers::start(&["--json-response"]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
    let (p, mut shown) = device_provider(&peers, store.clone());
    let login = {
        let p = p.clone();
        tokio::spawn(async move { p.authorize().await })
    };
    let a = tokio::time::timeout(Duration::from_secs(20), shown.recv())
        .await
        .expect("no code shown")
        .unwrap();
    assert_eq!(a.verification_uri.as_str(), format!("{}/device", peers.issuer));
    assert!(a.verification_uri_complete.is_some());
    assert_eq!(a.interval, Duration::from_secs(5));
    let done = OtherDevice::new().approve(&a, true).await;
    assert!(done.body.contains("Sign-in Success"), "{}", done.body);
    tokio::time::timeout(Duration::from_secs(30), login)
        .await
        .expect("polling did not end after the approval")
        .unwrap()
        .unwrap();

    // The token is for the MCP server, and it accepts it.
    let token = p.current_token().unwrap();
    assert_eq!(jwt_claims(token.access_token.expose())["aud"], json!(peers.mcp_url));
    assert!(token.refresh_token.is_some());
    let mcp = Mcp::new(&peers.mcp_url, p.clone());
    let init = mcp.initialize().await.unwrap();
    assert_eq!(init.status, 200, "{:?}", init.body);
    let state = peers.state().await;
    assert_eq!(
        state["token_requests"]["urn:ietf:params:oauth:grant-type:device_code"],
        json!(1)
    );
    assert!(store.get_tokens().await.unwrap().is_some());

    // The registration asked for the device grant.
    let client = store.get_client_info().await.unwrap().unwrap();
    let grants = client.metadata["grant_types"].as_array().unwrap();
    assert!(
        grants.contains(&json!("urn:ietf:params:oauth:grant-type:device_code")),
        "{grants:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_denied_by_the_person_is_a_clear_error_and_stores_nothing() {
    let peers = Peers::start(&["--json-response"]);
    let store = Arc::new(MemoryStorage::default());
    let (p, mut shown) = device_provider(&peers, store.clone());
    let login = {
        let p = p.clone();
        tokio::spawn(async move { p.authorize().await })
    };
    let a = tokio::time::timeout(Duration::from_secs(20), shown.recv())
        .await
        .expect("no code shown")
        .unwrap();
    OtherDevice::new().approve(&a, false).await;
    let e = tokio::time::timeout(Duration::from_secs(30), login)
        .await
        .expect("polling did not end after the denial")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Token, "{e}");
    assert_eq!(e.step(), Some(Step::DeviceAuthorization));
    assert_eq!(e.oauth_error(), Some("access_denied"), "{e}");
    assert!(e.message().contains("denied"), "{e}");
    assert!(store.get_tokens().await.unwrap().is_none());
}

/// A refresh with `refresh_token` as the registered client, straight at the
/// token endpoint: what oidc-provider says about the token.
async fn raw_refresh(
    peers: &Peers,
    client: &mcp_oauth_client::OAuthClientInformationFull,
    refresh_token: &str,
) -> (u16, serde_json::Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    let mut req = reqwest::Client::new().post(format!("{}/token", peers.issuer));
    match (&client.client_secret, client.token_endpoint_auth_method()) {
        (Some(secret), Some("client_secret_post")) => {
            form.push(("client_id", &client.client_id));
            form.push(("client_secret", secret.expose()));
        }
        (Some(secret), _) => req = req.basic_auth(&client.client_id, Some(secret.expose())),
        (None, _) => form.push(("client_id", &client.client_id)),
    }
    let resp = req.form(&form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_at_the_authorization_server_and_forgets_the_tokens() {
    let peers = Peers::start(&["--json-response"]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStorage::new(dir.path(), &peers.mcp_url).unwrap());
    let mut meta = OAuthClientMetadata::new(vec!["http://127.0.0.1:3031/callback".into()]);
    meta.client_name = Some("logout tests".into());
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), meta);
    cfg.timeout = Duration::from_secs(10);
    let p = OAuthClientProvider::new(cfg.clone(), store.clone(), Some(Arc::new(HeadlessHandler::default()))).unwrap();
    p.authorize().await.unwrap();
    let token = p.current_token().unwrap();
    let refresh_token = token.refresh_token.clone().unwrap();
    let client = store.get_client_info().await.unwrap().unwrap();

    // Another process logs out, from what is stored.
    let other = OAuthClientProvider::new(cfg, store.clone(), None).unwrap();
    let out = other.logout().await.unwrap();
    assert!(out.had_tokens);
    assert_eq!(
        out.revocation_endpoint.as_deref(),
        Some(format!("{}/token/revocation", peers.issuer).as_str())
    );
    assert!(out.refresh_token_revoked, "{out:?}");
    // oidc-provider cannot revoke JWT access tokens (unsupported_token_type);
    // with the refresh token revoked, the log-out goes on and says so.
    assert!(!out.access_token_revoked, "{out:?}");
    assert!(out.removed);
    assert!(store.get_tokens().await.unwrap().is_none());
    assert!(other.current_token().is_none());
    // The registration stays.
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().client_id,
        client.client_id
    );

    // The authorization server now refuses the old refresh token.
    let (status, body) = raw_refresh(&peers, &client, refresh_token.expose()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // A second log-out has nothing to revoke.
    let again = other.logout().await.unwrap();
    assert!(!again.had_tokens && again.revocation_endpoint.is_none() && again.removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_not_revoked_still_works_which_is_what_the_logout_test_relies_on() {
    // The control for the test above: without a log-out, oidc-provider
    // accepts the same raw refresh.
    let peers = Peers::start(&["--json-response"]);
    let store = Arc::new(MemoryStorage::default());
    let mut cfg = ProviderConfig::new(
        peers.mcp_url.clone(),
        OAuthClientMetadata::new(vec!["http://127.0.0.1:3031/callback".into()]),
    );
    cfg.timeout = Duration::from_secs(10);
    let p = OAuthClientProvider::new(cfg, store.clone(), Some(Arc::new(HeadlessHandler::default()))).unwrap();
    p.authorize().await.unwrap();
    let rt = p.current_token().unwrap().refresh_token.unwrap();
    let client = store.get_client_info().await.unwrap().unwrap();
    let (status, body) = raw_refresh(&peers, &client, rt.expose()).await;
    assert_eq!(status, 200, "{body}");
}
