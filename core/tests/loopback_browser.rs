//! The loopback receiver's pages as a person sees them: headless Chromium
//! (tests/browser/chromium_page.py, over the DevTools protocol) opens the
//! authorization URL, follows oidc-provider's real redirect to the receiver,
//! and reports the page's text and headers; a screenshot of each page is kept
//! under `<target dir>/artifacts/loopback-pages/`.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, LoopbackReceiver, MemoryStorage, OAuthClientMetadata,
    OAuthClientProvider, ProviderConfig,
};
use serde_json::{Value, json};
use url::Url;

/// The person's browser: Chromium, started on the authorization URL.
struct Chromium {
    receiver: Arc<LoopbackReceiver>,
    screenshot: PathBuf,
    run: Mutex<Option<tokio::task::JoinHandle<std::process::Output>>>,
}

#[async_trait]
impl AuthorizationHandler for Chromium {
    async fn redirect(&self, url: &Url) -> mcp_oauth_client::Result<()> {
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        self.receiver.expect_state(state);
        self.receiver.listen().await?;
        let script = repo_root().join("tests/browser/chromium_page.py");
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(script)
            .arg(url.as_str())
            .arg("--until")
            .arg(self.receiver.redirect_uri())
            .arg("--screenshot")
            .arg(&self.screenshot)
            .kill_on_drop(true);
        *self.run.lock().unwrap() = Some(tokio::spawn(async move { cmd.output().await.unwrap() }));
        Ok(())
    }

    async fn callback(&self) -> mcp_oauth_client::Result<AuthorizationCodeResult> {
        self.receiver.wait().await
    }
}

impl Chromium {
    /// What Chromium saw, once it is done.
    async fn page(&self) -> Value {
        let run = self.run.lock().unwrap().take().expect("the browser never started");
        let out = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("Chromium did not finish")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "chromium_page.py failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

fn artifacts() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("artifacts/loopback-pages")
}

async fn sign_in(peers: &Peers, name: &str) -> (mcp_oauth_client::Result<()>, Value, PathBuf) {
    let receiver = Arc::new(
        LoopbackReceiver::bind("http://127.0.0.1:0/callback", Duration::from_secs(60))
            .await
            .unwrap(),
    );
    let screenshot = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let browser = Arc::new(Chromium {
        receiver: receiver.clone(),
        screenshot: screenshot.clone(),
        run: Mutex::new(None),
    });
    let mut meta = OAuthClientMetadata::new(vec![receiver.redirect_uri().to_string()]);
    meta.client_name = Some("loopback page tests".into());
    let mut cfg = ProviderConfig::new(peers.mcp_url.clone(), meta);
    cfg.timeout = Duration::from_secs(10);
    let p = OAuthClientProvider::new(cfg, Arc::new(MemoryStorage::default()), Some(browser.clone())).unwrap();
    let outcome = p.authorize().await;
    (outcome, browser.page().await, screenshot)
}

fn assert_page(page: &Value, heading: &str, next: &str, screenshot: &PathBuf) {
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(page["lang"], "en");
    assert_eq!(page["h1"], 1);
    assert_eq!(page["heading"], heading, "{page}");
    let text = page["text"].as_str().unwrap();
    assert!(text.contains(next), "{page}");
    let headers = &page["headers"];
    assert!(
        headers["content-security-policy"]
            .as_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "{headers}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let png = std::fs::read(screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

async fn deny_next(peers: &Peers, error: &str, description: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/deny-next", peers.control_url))
        .json(&json!({"error": error, "error_description": description}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sees_the_success_denied_and_error_pages_after_oidc_providers_redirect() {
    let peers = Peers::start(&["--json-response"]);

    let (outcome, page, shot) = sign_in(&peers, "success").await;
    outcome.unwrap();
    assert_page(
        &page,
        "You are signed in",
        "You can close this tab and return to the application.",
        &shot,
    );
    assert_eq!(page["title"], "Signed in");
    // Nothing of the redirect is on the page: not the code, not the state.
    let url = Url::parse(page["url"].as_str().unwrap()).unwrap();
    for (_, v) in url.query_pairs() {
        assert!(!page["text"].as_str().unwrap().contains(v.as_ref()), "{page}");
    }

    let hostile = "<script>document.title='pwned'</script> reflected-marker";
    deny_next(&peers, "access_denied", hostile).await;
    let (outcome, page, shot) = sign_in(&peers, "denied").await;
    assert_eq!(outcome.unwrap_err().oauth_error(), Some("access_denied"));
    assert_page(
        &page,
        "Sign-in was cancelled",
        "To try again, start signing in from the application.",
        &shot,
    );
    assert_eq!(page["title"], "Sign-in cancelled");
    assert!(!page["text"].as_str().unwrap().contains("reflected-marker"), "{page}");

    deny_next(&peers, "server_error", hostile).await;
    let (outcome, page, shot) = sign_in(&peers, "error").await;
    assert_eq!(outcome.unwrap_err().oauth_error(), Some("server_error"));
    assert_page(&page, "Sign-in did not complete", "try again from there", &shot);
    assert_eq!(page["title"], "Sign-in failed");
    assert!(!page["text"].as_str().unwrap().contains("reflected-marker"), "{page}");
}
