//! `mcp-oauth proxy`: a stdio MCP host on one side, the remote server on the
//! other; the bridge itself is the `mcp-oauth-proxy` crate, the OAuth the
//! core's provider. This module turns the command line (with the options a
//! user of `mcp-remote` already passes) into both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, BrowserLoopbackHandler, LoopbackReceiver, OAuthClientProvider,
    ResourceParameter, Result, Secret, StaticClient,
};
use mcp_oauth_proxy::{ProxyConfig, TransportStrategy, parse_header};
use serde_json::Value;
use url::Url;

use crate::{ClientArgs, Ctx, person};

/// The port the loopback receiver listens on when none is given: fixed, so
/// that the registration (which names the redirect URI) is reused.
pub const DEFAULT_CALLBACK_PORT: u16 = 33418;

#[derive(Args)]
pub struct ProxyArgs {
    /// The MCP server's URL
    pub url: String,
    /// The port of the loopback receiver for the browser's redirect (as mcp-remote's second
    /// argument)
    #[arg(value_name = "CALLBACK_PORT")]
    pub callback_port: Option<u16>,
    /// Which MCP transport to speak: http-first (Streamable HTTP, then the 2024-11-05 HTTP+SSE
    /// when the server has none), sse-first, http-only, sse-only
    #[arg(long, default_value = "http-first", value_parser = parse_transport)]
    pub transport: TransportStrategy,
    /// A header sent with every request to the server, "Name: value"; ${VAR} is replaced by
    /// the environment variable VAR (repeatable)
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The RFC 8707 resource to ask tokens for, instead of the one the server names
    #[arg(long, value_name = "URI")]
    pub resource: Option<String>,
    /// A pre-registered client as JSON ({"client_id": ..., "client_secret": ...}) or @FILE
    #[arg(long, value_name = "JSON|@FILE")]
    pub static_oauth_client_info: Option<String>,
    /// Client metadata fields for the registration as JSON (client_name, scope, ...) or @FILE
    #[arg(long, value_name = "JSON|@FILE")]
    pub static_oauth_client_metadata: Option<String>,
    /// The host of the redirect URI the browser comes back to: 127.0.0.1, localhost or [::1]
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Print the authorization URL on stderr instead of opening a browser (the loopback
    /// receiver still takes the redirect)
    #[arg(long, conflicts_with = "device")]
    pub no_browser: bool,
    /// Log in with the device authorization grant (RFC 8628): the code is shown on stderr
    #[arg(long)]
    pub device: bool,
    /// Seconds to wait for the person
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub wait: u64,
    /// Log the bridge's and the OAuth steps on stderr (never a secret)
    #[arg(long)]
    pub debug: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_transport(s: &str) -> std::result::Result<TransportStrategy, String> {
    s.parse()
}

/// JSON given inline or as `@FILE`.
fn json_arg(what: &str, value: &str) -> std::result::Result<Value, String> {
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{what}: cannot read {path}: {e}"))?,
        None => value.to_string(),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{what} is not JSON: {e}"))?;
    if !v.is_object() {
        return Err(format!("{what} must be a JSON object"));
    }
    Ok(v)
}

/// The person's step for a bridge: the receiver is bound only when a person
/// is needed (several bridges may run; only the one that logs in listens).
struct LazyLoopback {
    redirect_uri: String,
    wait: Duration,
    open: bool,
    receiver: Mutex<Option<Arc<LoopbackReceiver>>>,
}

#[async_trait]
impl AuthorizationHandler for LazyLoopback {
    async fn redirect(&self, authorization_url: &Url) -> Result<()> {
        let receiver = Arc::new(LoopbackReceiver::bind(&self.redirect_uri, self.wait).await?);
        *self.receiver.lock().unwrap_or_else(|p| p.into_inner()) = Some(receiver.clone());
        if self.open {
            eprintln!("mcp-oauth proxy: opening the browser to authorize access to the MCP server");
            BrowserLoopbackHandler::new(receiver).redirect(authorization_url).await
        } else {
            let state = authorization_url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned());
            receiver.expect_state(state);
            receiver.listen().await?;
            eprintln!(
                "mcp-oauth proxy: open this URL in a browser on this machine to authorize:\n\n  {authorization_url}\n"
            );
            Ok(())
        }
    }

    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner()).take();
        match receiver {
            Some(r) => r.wait().await,
            None => Err(mcp_oauth_client::Error::handler(
                mcp_oauth_client::error::Step::Callback,
                "the loopback receiver was not started",
            )),
        }
    }
}

fn redirect_uri(host: &str, port: u16) -> std::result::Result<String, String> {
    let host = match host {
        "127.0.0.1" | "localhost" => host.to_string(),
        "::1" | "[::1]" => "[::1]".to_string(),
        other => {
            return Err(format!(
                "--host {other}: the redirect goes to this machine's loopback receiver (127.0.0.1, localhost or [::1])"
            ));
        }
    };
    Ok(format!("http://{host}:{port}/callback"))
}

fn provider(ctx: &Ctx, args: &ProxyArgs) -> std::result::Result<OAuthClientProvider, String> {
    let wait = Duration::from_secs(args.wait.max(1));
    let redirect = redirect_uri(&args.host, args.callback_port.unwrap_or(DEFAULT_CALLBACK_PORT))?;
    let mut cfg = ctx.config(&args.url, &args.client, &redirect)?;
    cfg.authorization_timeout = wait;
    if let Some(info) = &args.static_oauth_client_info {
        let v = json_arg("--static-oauth-client-info", info)?;
        let id = v["client_id"]
            .as_str()
            .ok_or("--static-oauth-client-info needs a client_id")?;
        let secret = v["client_secret"].as_str().map(|s| Secret::new(s.to_string()));
        cfg.static_client = Some(StaticClient::new(id.to_string(), secret));
    }
    if let Some(meta) = &args.static_oauth_client_metadata {
        let mut v = json_arg("--static-oauth-client-metadata", meta)?;
        // The redirect URI is the receiver's; the rest comes from the user.
        let mut current = serde_json::to_value(&cfg.client_metadata).map_err(|e| e.to_string())?;
        if let (Some(cur), Some(extra)) = (current.as_object_mut(), v.as_object_mut()) {
            extra.remove("redirect_uris");
            for (k, val) in extra.iter() {
                cur.insert(k.clone(), val.clone());
            }
        }
        cfg.client_metadata = serde_json::from_value(current)
            .map_err(|e| format!("--static-oauth-client-metadata: not valid client metadata: {e}"))?;
    }
    if let Some(r) = &args.resource {
        cfg.resource_parameter = ResourceParameter::Override(r.clone());
    }
    let storage = crate::store::open(&ctx.global.store, &args.url)?;
    if args.device {
        cfg.use_device_code(Arc::new(person::DeviceScreen::default()));
        return OAuthClientProvider::new(cfg, storage, None).map_err(|e| e.to_string());
    }
    let handler = Arc::new(LazyLoopback {
        redirect_uri: redirect,
        wait,
        open: !args.no_browser,
        receiver: Mutex::new(None),
    });
    OAuthClientProvider::new(cfg, storage, Some(handler)).map_err(|e| e.to_string())
}

/// Run the bridge on this process's stdin and stdout until stdin ends.
pub async fn run(ctx: &Ctx, args: ProxyArgs) -> std::result::Result<(), String> {
    let url: Url = args.url.parse().map_err(|e| format!("{}: not a URL: {e}", args.url))?;
    let provider = provider(ctx, &args)?;
    let mut cfg = ProxyConfig::new(url);
    cfg.transport = args.transport;
    for h in &args.headers {
        let (name, value) = parse_header(h).map_err(|e| format!("--header: {e}"))?;
        cfg.headers.append(name, value);
    }
    cfg.provider = Some(provider);
    // For `status`; a store that cannot list is no reason not to bridge.
    let _ = crate::store::remember(&ctx.global.store, &args.url);
    mcp_oauth_proxy::run(cfg, tokio::io::stdin(), tokio::io::stdout())
        .await
        .map_err(|e| e.to_string())
}
