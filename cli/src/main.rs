//! `mcp-oauth`: an MCP server's OAuth, step by step, from a terminal.
//!
//! Every protocol rule lives in the core crate (`mcp-oauth-client`); this
//! program only configures a provider, calls it, and renders what it says.

mod discover;
mod person;
mod proxy;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mcp_oauth_client::{
    AuthorizationHandler, BrowserLoopbackHandler, LocalSigner, LoopbackReceiver, OAuthClientMetadata,
    OAuthClientProvider, ProviderConfig, RequestInfo, Secret, StaticClient,
};

use store::StoreArgs;

/// Exit status when the command worked (for `discover`: the chain holds).
const EXIT_OK: u8 = 0;
/// Exit status when the command failed (for `discover`: the chain is broken).
const EXIT_FAILED: u8 = 1;
/// Exit status of `discover` when the chain holds only through a fallback or
/// a departure from the specification (a warning).
const EXIT_WARNINGS: u8 = 3;

/// The redirect URI registered for the loopback receiver and the pasted
/// redirect alike, so that one registration serves both ways of logging in.
const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

#[derive(Parser)]
#[command(
    name = "mcp-oauth",
    version,
    about = "Debug an MCP server's OAuth step by step, log in from a terminal, and print the Authorization header",
    long_about = "Debug an MCP server's OAuth step by step, log in from a terminal, and print the \
Authorization header.\n\n\
`discover` shows every step a client takes, with its verdict and, when a step fails, what would \
fix it; it registers nothing and involves no one. `login` runs the whole flow; `header` prints \
the header for curl; `status` lists what is stored; `logout` revokes and forgets.",
    after_help = "Examples:\n  \
mcp-oauth discover https://mcp.example.com/mcp\n  \
mcp-oauth login https://mcp.example.com/mcp\n  \
curl -H \"$(mcp-oauth header https://mcp.example.com/mcp)\" https://mcp.example.com/mcp ..."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Show each HTTP request the client sends and each answer's status (URLs without
    /// query strings; no header, body or secret is ever shown)
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Seconds allowed for each HTTP request
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Show every step of the server's OAuth discovery with its verdict, one line each
    ///
    /// The steps, in the order a client takes them: an unauthenticated MCP `initialize` and its
    /// 401 challenge, each protected resource metadata URL tried, the resource check, each
    /// authorization server metadata URL tried, the issuer check, PKCE S256, the client identity
    /// that would be used and why, and the scopes that would be requested. Nothing is
    /// registered and no person is involved.
    ///
    /// Exit status: 0 when the chain holds, 1 when it is broken, 3 when it holds only through a
    /// fallback or a departure from the specification (shown as warnings).
    Discover {
        /// The MCP server's URL (its streamable HTTP endpoint)
        url: String,
        /// Print one JSON document instead of lines
        #[arg(long)]
        json: bool,
        /// Check what the device authorization grant needs (as `login --device` would) instead
        /// of the authorization-code flow's PKCE
        #[arg(long)]
        device: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Log in: discovery, the client identity, the person's consent, and the tokens, stored
    ///
    /// By default the system browser opens the authorization page and a loopback receiver on
    /// this machine takes the redirect. With --no-browser, the URL is printed and the address
    /// the browser was sent back to is read from standard input (paste it). With --device the
    /// device authorization grant is used, for hosts without a browser.
    Login {
        /// The MCP server's URL
        url: String,
        /// Print the authorization URL and read the redirect URL from standard input
        #[arg(long, conflicts_with = "device")]
        no_browser: bool,
        /// Use the device authorization grant (RFC 8628): a code to enter on another device
        #[arg(long)]
        device: bool,
        /// The redirect URI to register and listen on (a loopback http URL)
        #[arg(long, default_value = DEFAULT_REDIRECT_URI, value_name = "URI")]
        redirect_uri: String,
        /// Seconds to wait for the person
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        wait: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print `Authorization: ...` for the server, refreshing the token when it is due
    ///
    /// For `curl -H "$(mcp-oauth header URL)" URL`. Never starts a login: without usable
    /// tokens it fails and says so.
    Header {
        /// The MCP server's URL
        url: String,
        /// The HTTP method of the request the header is for
        #[arg(long, default_value = "POST")]
        method: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List what is stored: servers, issuers, client ids, scopes, expiry (never a secret)
    Status {
        /// Print one JSON document instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Bridge a host that speaks MCP over stdio to the server: JSON-RPC lines on stdin and
    /// stdout, Streamable HTTP (or HTTP+SSE) to URL, OAuth handled inside
    ///
    /// For desktop assistants and editors that launch MCP servers as local processes: put
    /// `mcp-oauth proxy URL` where they expect a command. The first 401 runs the flow (the
    /// system browser and a loopback receiver, or --device), tokens are stored and refreshed
    /// silently, a 403 for more scopes steps up; several instances share one login. Stdout
    /// carries nothing but protocol; messages go to stderr.
    Proxy(proxy::ProxyArgs),
    /// Revoke the stored tokens at the authorization server (RFC 7009) and forget them
    Logout {
        /// The MCP server's URL
        url: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How the client identifies itself, as a host would configure it.
#[derive(Args, Clone, Default)]
struct ClientArgs {
    /// A pre-registered client_id (no dynamic registration)
    // Generated client ids and secrets may start with '-' (base64url).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    client_id: Option<String>,
    /// The pre-registered client's secret (prefer the environment variable)
    #[arg(
        long,
        env = "MCP_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        allow_hyphen_values = true
    )]
    client_secret: Option<String>,
    /// An https URL of a Client ID Metadata Document to use as client_id where the
    /// authorization server accepts them
    #[arg(long, value_name = "URL")]
    client_metadata_url: Option<String>,
    /// The scopes to ask for (space-separated); by default the server's
    #[arg(long)]
    scope: Option<String>,
    /// Accept an authorization server whose metadata omits code_challenge_methods_supported
    /// (Microsoft Entra ID does) as supporting PKCE S256
    #[arg(long)]
    assume_s256: bool,
    /// Allow plain http for this host's authorization server endpoints (testing only;
    /// loopback addresses are always allowed)
    #[arg(long, value_name = "HOST")]
    allow_http: Vec<String>,
    /// DPoP-bound tokens (RFC 9449) with this private key (PEM, unencrypted); give the same
    /// key to `login` and `header`, which then prints the DPoP proof for --method and the URL
    #[arg(long, value_name = "PEM_FILE")]
    dpop_key: Option<std::path::PathBuf>,
    /// The DPoP key's algorithm
    #[arg(long, default_value = "ES256", value_name = "ALG", requires = "dpop_key")]
    dpop_alg: String,
}

struct Ctx {
    global: Global,
}

impl Ctx {
    fn config(&self, url: &str, client: &ClientArgs, redirect_uri: &str) -> Result<ProviderConfig, String> {
        let mut metadata = OAuthClientMetadata::new(vec![redirect_uri.to_string()]);
        metadata.client_name = Some("mcp-oauth (command line)".into());
        metadata.scope = client.scope.clone();
        let mut cfg = ProviderConfig::new(url, metadata);
        cfg.timeout = Duration::from_secs(self.global.timeout.max(1));
        cfg.client_metadata_url = client.client_metadata_url.clone();
        cfg.assume_s256_when_pkce_unadvertised = client.assume_s256;
        cfg.allow_http_hosts = client.allow_http.clone();
        if let Some(id) = &client.client_id {
            cfg.static_client = Some(StaticClient::new(
                id.clone(),
                client.client_secret.clone().map(Secret::new),
            ));
        }
        if let Some(path) = &client.dpop_key {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the DPoP key {}: {e}", path.display()))?;
            let signer = LocalSigner::from_pem(&Secret::new(pem), &client.dpop_alg, None)
                .map_err(|e| format!("the DPoP key {}: {e}", path.display()))?;
            cfg.use_dpop(Some(Arc::new(signer))).map_err(|e| e.to_string())?;
        }
        Ok(cfg)
    }

    async fn provider(
        &self,
        url: &str,
        client: &ClientArgs,
        redirect_uri: &str,
        handler: Option<Arc<dyn AuthorizationHandler>>,
    ) -> Result<OAuthClientProvider, String> {
        let storage = store::open(&self.global.store, url)?;
        OAuthClientProvider::new(self.config(url, client, redirect_uri)?, storage, handler).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The core logs each request it sends and each status it gets at debug
    // level, with URLs stripped of their query strings and never a header
    // or a body.
    let level = match &cli.command {
        Command::Proxy(p) if p.debug || cli.global.verbose => "mcp_oauth_client=debug,mcp_oauth_proxy=debug",
        // The bridge's own warnings (a message it could not deliver) go to stderr.
        Command::Proxy(_) => "mcp_oauth_client=warn,mcp_oauth_proxy=info",
        _ if cli.global.verbose => "mcp_oauth_client=debug",
        _ => "mcp_oauth_client=error",
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-oauth: cannot start: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let ctx = Ctx { global: cli.global };
    let code = runtime.block_on(run(&ctx, cli.command));
    // A browser opener or a stdin reader may still be running; do not wait.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

fn fail(message: impl std::fmt::Display) -> u8 {
    let mut err = anstream::stderr();
    let red = anstyle::AnsiColor::Red.on_default().bold();
    use std::io::Write;
    let _ = writeln!(err, "{red}error{red:#}: {message}");
    EXIT_FAILED
}

async fn run(ctx: &Ctx, command: Command) -> u8 {
    match command {
        Command::Discover {
            url,
            json,
            device,
            client,
        } => {
            let provider = if device {
                device_provider(
                    ctx,
                    &url,
                    &client,
                    Arc::new(person::DeviceScreen::default()),
                    Duration::from_secs(300),
                )
            } else {
                ctx.provider(&url, &client, DEFAULT_REDIRECT_URI, None).await
            };
            let provider = match provider {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let progress = person::spinner("discovering");
            let report = provider.diagnose().await;
            progress.finish_and_clear();
            let out = if json {
                discover::render_json(&url, &report)
            } else {
                discover::render_text(&url, &report)
            };
            if let Err(e) = out {
                return fail(e);
            }
            if !report.is_ok() {
                EXIT_FAILED
            } else if report.has_warnings() {
                EXIT_WARNINGS
            } else {
                EXIT_OK
            }
        }
        Command::Login {
            url,
            no_browser,
            device,
            redirect_uri,
            wait,
            client,
        } => login(ctx, &url, no_browser, device, &redirect_uri, wait, &client).await,
        Command::Header { url, method, client } => header(ctx, &url, &method, &client).await,
        Command::Status { json } => match store::status(&ctx.global.store, json).await {
            Ok(()) => EXIT_OK,
            Err(e) => fail(e),
        },
        Command::Logout { url, client } => logout(ctx, &url, &client).await,
        Command::Proxy(args) => match proxy::run(ctx, args).await {
            Ok(()) => EXIT_OK,
            Err(e) => fail(e),
        },
    }
}

async fn login(
    ctx: &Ctx,
    url: &str,
    no_browser: bool,
    device: bool,
    redirect_uri: &str,
    wait: u64,
    client: &ClientArgs,
) -> u8 {
    let wait = Duration::from_secs(wait.max(1));
    let screen = Arc::new(person::DeviceScreen::default());
    let provider = if device {
        device_provider(ctx, url, client, screen.clone(), wait)
    } else {
        let handler: Arc<dyn AuthorizationHandler> = if no_browser {
            Arc::new(person::PastedRedirect::new(wait))
        } else {
            let receiver = match LoopbackReceiver::bind(redirect_uri, wait).await {
                Ok(r) => Arc::new(r),
                Err(e) => return fail(e),
            };
            Arc::new(person::Waiting::new(BrowserLoopbackHandler::new(receiver)))
        };
        ctx.provider(url, client, redirect_uri, Some(handler)).await
    };
    let provider = match provider {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let outcome = provider.authorize().await;
    screen.done();
    if let Err(e) = outcome {
        return fail(e);
    }
    if let Err(e) = store::remember(&ctx.global.store, url) {
        eprintln!("warning: {e}");
    }
    let token = provider.current_token();
    let mut err = anstream::stderr();
    let green = anstyle::AnsiColor::Green.on_default().bold();
    use std::io::Write;
    let _ = writeln!(
        err,
        "{green}logged in{green:#} to {url}{}{}",
        token
            .as_ref()
            .and_then(|t| t.issuer.as_deref())
            .map(|i| format!(" through {i}"))
            .unwrap_or_default(),
        token
            .as_ref()
            .and_then(|t| t.scope.as_deref())
            .map(|s| format!(" (scope: {s})"))
            .unwrap_or_default(),
    );
    EXIT_OK
}

/// A provider whose tokens come from the device authorization grant.
fn device_provider(
    ctx: &Ctx,
    url: &str,
    client: &ClientArgs,
    screen: Arc<person::DeviceScreen>,
    wait: Duration,
) -> Result<OAuthClientProvider, String> {
    let storage = store::open(&ctx.global.store, url)?;
    let mut cfg = ctx.config(url, client, DEFAULT_REDIRECT_URI)?;
    cfg.authorization_timeout = wait;
    cfg.use_device_code(screen);
    OAuthClientProvider::new(cfg, storage, None).map_err(|e| e.to_string())
}

async fn header(ctx: &Ctx, url: &str, method: &str, client: &ClientArgs) -> u8 {
    let provider = match ctx.provider(url, client, DEFAULT_REDIRECT_URI, None).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let method = method.to_ascii_uppercase();
    match provider.headers(&RequestInfo::new(&method, url)).await {
        Ok(Some(headers)) => {
            for (name, value) in headers.iter() {
                println!("{}: {value}", display_name(name));
            }
            EXIT_OK
        }
        Ok(None) => fail(format!(
            "no usable tokens are stored for {url}: run `mcp-oauth login {url}` first"
        )),
        Err(e) => fail(e),
    }
}

/// `authorization` → `Authorization`, `dpop` → `DPoP`.
fn display_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("dpop") {
        return "DPoP".into();
    }
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

async fn logout(ctx: &Ctx, url: &str, client: &ClientArgs) -> u8 {
    let provider = match ctx.provider(url, client, DEFAULT_REDIRECT_URI, None).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let outcome = match provider.logout().await {
        Ok(o) => o,
        Err(e) => return fail(format!("{e}; nothing was deleted, try again")),
    };
    let mut err = anstream::stderr();
    use std::io::Write;
    if !outcome.had_tokens {
        let _ = writeln!(err, "no tokens were stored for {url}; nothing to revoke");
    } else {
        match &outcome.revocation_endpoint {
            Some(endpoint) => {
                let which = match (outcome.refresh_token_revoked, outcome.access_token_revoked) {
                    (true, true) => "the refresh and access tokens",
                    (true, false) => "the refresh token",
                    (false, true) => "the access token",
                    (false, false) => "nothing",
                };
                let _ = writeln!(err, "revoked {which} at {endpoint}");
            }
            None => {
                let why = outcome
                    .not_revoked_because
                    .as_deref()
                    .unwrap_or("the authorization server advertises no revocation endpoint");
                let _ = writeln!(err, "not revoked at the authorization server: {why}");
            }
        }
        if outcome.removed {
            let _ = writeln!(err, "deleted the stored tokens for {url}");
        } else {
            let _ = writeln!(err, "the store could not delete the tokens for {url}");
        }
    }
    if outcome.removed || !outcome.had_tokens {
        if let Err(e) = store::forget(&ctx.global.store, url) {
            eprintln!("warning: {e}");
        }
    }
    EXIT_OK
}
