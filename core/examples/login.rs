//! Log in to a protected MCP server and call `initialize` with the token.
//!
//! ```sh
//! cargo run -p mcp-oauth-client --example login -- https://mcp.example.com/mcp
//! ```
//!
//! Opens the system browser (or `$BROWSER`; prints the URL when there is
//! none), receives the redirect on a loopback port, and keeps tokens and the
//! client registration in the file store, so the next run asks no one.
//! Options: `--token-dir DIR`, `--redirect-port N` (default: any free port),
//! `--scope "a b"`, `--client-metadata-url URL`.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::{
    AuthHeaders, BrowserLoopbackHandler, FileStorage, LoopbackReceiver, OAuthClientMetadata, OAuthClientProvider,
    ProviderConfig, RequestInfo, ResponseAction, ResponseInfo,
};

struct Args {
    server: String,
    token_dir: Option<String>,
    port: u16,
    scope: Option<String>,
    cimd: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        server: String::new(),
        token_dir: None,
        port: 0,
        scope: None,
        cimd: None,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--token-dir" => a.token_dir = Some(value("--token-dir")?),
            "--redirect-port" => {
                a.port = value("--redirect-port")?
                    .parse()
                    .map_err(|e| format!("--redirect-port: {e}"))?
            }
            "--scope" => a.scope = Some(value("--scope")?),
            "--client-metadata-url" => a.cimd = Some(value("--client-metadata-url")?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => a.server = s.to_string(),
        }
    }
    if a.server.is_empty() {
        return Err("the MCP server URL is missing".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "mcp_oauth_client=info".into()),
        )
        .with_target(false)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: login [--token-dir DIR] [--redirect-port N] [--scope S] [--client-metadata-url URL] MCP_SERVER_URL"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("login failed: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> mcp_oauth_client::Result<()> {
    let receiver = Arc::new(
        LoopbackReceiver::bind(
            &format!("http://127.0.0.1:{}/callback", args.port),
            Duration::from_secs(300),
        )
        .await?,
    );
    let mut metadata = OAuthClientMetadata::new(vec![receiver.redirect_uri().to_string()]);
    metadata.client_name = Some("mcp-oauth-client login example".into());
    metadata.scope = args.scope;
    let dir = match args.token_dir {
        Some(d) => d.into(),
        None => {
            FileStorage::default_dir().ok_or_else(|| mcp_oauth_client::Error::config("no HOME: pass --token-dir"))?
        }
    };
    let storage = Arc::new(FileStorage::new(&dir, &args.server)?);
    println!("token store: {}", storage.path().display());
    let mut config = ProviderConfig::new(args.server.clone(), metadata);
    config.client_metadata_url = args.cimd;
    let provider = OAuthClientProvider::new(config, storage, Some(Arc::new(BrowserLoopbackHandler::new(receiver))))?;

    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "login-example", "version": "0.1"}}
    });
    let send = |auth: Option<AuthHeaders>| {
        let mut rb = http
            .post(&args.server)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        for (name, value) in auth.iter().flat_map(AuthHeaders::iter) {
            rb = rb.header(name, value);
        }
        rb.send()
    };
    let request = RequestInfo::new("POST", &args.server);
    let headers = provider.headers(&request).await?;
    println!("stored token: {}", if headers.is_some() { "yes" } else { "no" });
    let mut resp = send(headers.clone())
        .await
        .map_err(|e| mcp_oauth_client::Error::config(format!("MCP request failed: {e}")))?;
    if matches!(resp.status().as_u16(), 401 | 403) {
        println!("server answered {}: authorizing", resp.status());
        let response_headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        let sent = request.with_authorization(headers.as_ref().map(AuthHeaders::authorization));
        if let ResponseAction::Retry(h) = provider
            .handle_response(&sent, &ResponseInfo::new(resp.status().as_u16(), &response_headers))
            .await?
        {
            resp = send(Some(h))
                .await
                .map_err(|e| mcp_oauth_client::Error::config(format!("MCP request failed: {e}")))?;
        }
    }
    println!("initialize: HTTP {}", resp.status());
    if let Some(t) = provider.current_token() {
        println!("logged in; scopes: {}", t.scope.as_deref().unwrap_or("(none given)"));
    }
    Ok(())
}
