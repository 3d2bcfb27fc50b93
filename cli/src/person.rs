//! The person's part: the browser and the loopback receiver, or a pasted
//! redirect URL; progress on standard error while the program waits.

use std::time::Duration;

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, DeviceAuthorization, DeviceCodeHandler, Error, Result, error::Step,
};
use tokio::io::AsyncBufReadExt;
use url::Url;

/// A spinner on standard error; drawn only when it is a terminal.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A handler whose wait for the person shows a spinner.
pub struct Waiting<H> {
    inner: H,
}

impl<H> Waiting<H> {
    pub fn new(inner: H) -> Self {
        Waiting { inner }
    }
}

#[async_trait]
impl<H: AuthorizationHandler> AuthorizationHandler for Waiting<H> {
    async fn redirect(&self, authorization_url: &Url) -> Result<()> {
        self.inner.redirect(authorization_url).await
    }

    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        let bar = spinner("waiting for the authorization in the browser");
        let result = self.inner.callback().await;
        bar.finish_and_clear();
        result
    }
}

/// `--no-browser`: the authorization URL is printed, and the URL the browser
/// was sent back to is read from standard input.
pub struct PastedRedirect {
    wait: Duration,
}

impl PastedRedirect {
    pub fn new(wait: Duration) -> Self {
        PastedRedirect { wait }
    }
}

#[async_trait]
impl AuthorizationHandler for PastedRedirect {
    async fn redirect(&self, authorization_url: &Url) -> Result<()> {
        eprintln!("Open this URL in a browser and authorize:\n\n  {authorization_url}\n");
        eprintln!(
            "Then paste here the whole address the browser was sent back to (it starts with the redirect URI; the page itself may fail to load):"
        );
        Ok(())
    }

    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        let mut line = String::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let read = tokio::time::timeout(self.wait, stdin.read_line(&mut line)).await;
        match read {
            Err(_) => Err(Error::handler(
                Step::Callback,
                format!("no redirect URL was pasted within {:?}", self.wait),
            )),
            Ok(Err(e)) => Err(Error::handler(
                Step::Callback,
                format!("cannot read the redirect URL from standard input: {e}"),
            )),
            Ok(Ok(0)) => Err(Error::handler(
                Step::Callback,
                "standard input ended before a redirect URL was pasted",
            )),
            Ok(Ok(_)) => {
                let pasted = line.trim();
                if pasted.is_empty() {
                    return Err(Error::handler(
                        Step::Callback,
                        "an empty line was pasted, not a redirect URL",
                    ));
                }
                AuthorizationCodeResult::from_redirect(pasted)
            }
        }
    }
}

/// `--device`: the code and where to enter it, on standard error, then a
/// spinner while the authorization server is asked whether the person
/// approved.
#[derive(Default)]
pub struct DeviceScreen {
    waiting: std::sync::Mutex<Option<ProgressBar>>,
}

impl DeviceScreen {
    /// The flow ended: stop the spinner.
    pub fn done(&self) {
        if let Some(bar) = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

#[async_trait]
impl DeviceCodeHandler for DeviceScreen {
    async fn show(&self, a: &DeviceAuthorization) -> Result<()> {
        self.done();
        eprintln!("On any device, open:\n\n  {}\n", a.verification_uri);
        eprintln!("and enter the code:\n\n  {}\n", a.user_code);
        if let Some(complete) = &a.verification_uri_complete {
            eprintln!("(or open {complete}, which carries the code)\n");
        }
        let minutes = a.expires_in.as_secs().div_ceil(60);
        let bar = spinner(&format!(
            "waiting for the approval (the code is valid for {minutes} min)"
        ));
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
        Ok(())
    }
}
