//! Where tokens and registrations are kept: the core's stores, chosen by
//! `--store`, and `status`, which lists them without a secret.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use mcp_oauth_client::storage::{EncryptionKey, RedisOptions, RedisStorage};
use mcp_oauth_client::{FileStorage, KeyringStorage, OAuthClientInformationFull, OAuthToken, TokenStorage};
use serde_json::{Value, json};

/// The kinds of store, the same the libraries have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// A JSON file per server in a private directory (the default)
    File,
    /// The operating system's keychain (Secret Service, macOS Keychain, Windows Credential Manager)
    Keychain,
    /// A Redis server shared by a fleet of hosts
    Redis,
}

#[derive(Args, Clone)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// Where tokens and registrations are kept
    #[arg(long, value_enum, default_value = "file", global = true, env = "MCP_OAUTH_STORE")]
    pub store: StoreKind,
    /// The file store's directory (default: the platform's state or data directory for
    /// mcp-oauth-client, the one the libraries use)
    #[arg(long, global = true, env = "MCP_OAUTH_STORE_PATH", value_name = "DIR")]
    pub store_path: Option<PathBuf>,
    /// The Redis store's URL (redis:// or rediss://), or several nodes of a Redis Cluster
    /// separated by commas
    #[arg(
        long,
        global = true,
        env = "MCP_OAUTH_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// The prefix of the Redis store's keys
    #[arg(long, global = true, env = "MCP_OAUTH_REDIS_PREFIX", value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
    /// The Redis store's encryption keys, `ID:BASE64` (32 bytes), several separated by
    /// commas: the first encrypts, all decrypt. Give them in the environment, not on the
    /// command line
    #[arg(
        long,
        global = true,
        env = "MCP_OAUTH_REDIS_KEYS",
        value_name = "KEYS",
        hide_env_values = true
    )]
    pub redis_keys: Option<String>,
    /// Store values in Redis unencrypted, readable by anyone who can read the database
    #[arg(long, global = true)]
    pub redis_unencrypted: bool,
}

impl StoreArgs {
    pub fn kind(&self) -> StoreKind {
        self.store
    }

    /// The file store's directory.
    pub fn dir(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.store_path {
            return Ok(p.clone());
        }
        let dirs = directories::ProjectDirs::from("", "", "mcp-oauth-client")
            .ok_or("no home directory to keep tokens in: give one with --store-path")?;
        // XDG_STATE_HOME on Linux (where the libraries' file store keeps
        // them); the local data directory elsewhere.
        Ok(dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_path_buf())
    }
}

/// The store for the MCP server `url`.
pub fn open(args: &StoreArgs, url: &str) -> Result<Arc<dyn TokenStorage>, String> {
    match args.kind() {
        StoreKind::File => {
            let dir = args.dir()?;
            Ok(Arc::new(FileStorage::new(&dir, url).map_err(|e| e.to_string())?))
        }
        StoreKind::Keychain => Ok(Arc::new(KeyringStorage::new(url).map_err(|e| e.to_string())?)),
        StoreKind::Redis => Ok(Arc::new(redis(args, url)?)),
    }
}

fn redis_urls(args: &StoreArgs) -> Result<&str, String> {
    args.redis_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| "--store redis needs the Redis URL: --redis-url or MCP_OAUTH_REDIS_URL".to_string())
}

fn redis(args: &StoreArgs, url: &str) -> Result<RedisStorage, String> {
    let urls = redis_urls(args)?;
    let mut options = RedisOptions::parse(urls).allow_unencrypted_values(args.redis_unencrypted);
    if let Some(prefix) = &args.redis_prefix {
        options = options.key_prefix(prefix);
    }
    for entry in args
        .redis_keys
        .iter()
        .flat_map(|k| k.split(','))
        .filter(|k| !k.trim().is_empty())
    {
        let (id, key) = entry
            .trim()
            .split_once(':')
            .ok_or("each Redis encryption key is ID:BASE64 (MCP_OAUTH_REDIS_KEYS)")?;
        options = options.encryption_key(EncryptionKey::from_base64(id, key).map_err(|e| e.to_string())?);
    }
    RedisStorage::new(options, url).map_err(|e| e.to_string())
}

/// The list of servers logged in to with a store that cannot be listed (the
/// keychain): one URL a line, next to the file store's files. It holds no
/// secret.
fn index_path(args: &StoreArgs) -> Result<PathBuf, String> {
    let name = match args.kind() {
        StoreKind::File => return Err("the file store lists itself".into()),
        StoreKind::Keychain => "keychain-servers.list",
        StoreKind::Redis => "redis-servers.list",
    };
    Ok(args.dir()?.join(name))
}

fn read_index(args: &StoreArgs) -> Vec<String> {
    index_path(args)
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn write_index(args: &StoreArgs, urls: &[String]) -> Result<(), String> {
    let path = index_path(args)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut text = urls.join("\n");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Note that `url` has something stored, for `status` (stores that cannot
/// be listed only).
pub fn remember(args: &StoreArgs, url: &str) -> Result<(), String> {
    if args.kind() == StoreKind::File {
        return Ok(());
    }
    let mut urls = read_index(args);
    if !urls.iter().any(|u| u == url) {
        urls.push(url.to_string());
        urls.sort();
    }
    write_index(args, &urls)
}

/// Note that nothing is stored for `url` any more.
pub fn forget(args: &StoreArgs, url: &str) -> Result<(), String> {
    if args.kind() == StoreKind::File {
        return Ok(());
    }
    let mut urls = read_index(args);
    let before = urls.len();
    urls.retain(|u| u != url);
    if urls.len() == before {
        return Ok(());
    }
    write_index(args, &urls)
}

/// One server's stored state, without a secret.
fn describe(url: &str, tokens: Option<&OAuthToken>, client: Option<&OAuthClientInformationFull>) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    json!({
        "server": url,
        "issuer": tokens.and_then(|t| t.issuer.clone()).or_else(|| client.and_then(|c| c.issuer.clone())),
        "client_id": client.map(|c| c.client_id.clone()),
        "token_type": tokens.map(|t| t.token_type.clone()),
        "scope": tokens.and_then(|t| t.scope.clone()),
        "resource": tokens.and_then(|t| t.resource.clone()),
        "expires_at": tokens.and_then(|t| t.expiry()),
        "expired": tokens.and_then(|t| t.expiry()).map(|at| at <= now),
        "refresh_token": tokens.map(|t| t.refresh_token.is_some()),
    })
}

fn when(at: f64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(at.max(0.0) as u64));
    let delta = Duration::from_secs((at - now).abs() as u64);
    let delta = humantime::format_duration(delta);
    if at > now {
        format!("{stamp} (in {delta})")
    } else {
        format!("{stamp} (expired {delta} ago)")
    }
}

/// `mcp-oauth status`.
pub async fn status(args: &StoreArgs, as_json: bool) -> Result<(), String> {
    let mut entries = Vec::new();
    let where_ = match args.kind() {
        StoreKind::File => {
            let dir = args.dir()?;
            for url in FileStorage::stored_servers(&dir).map_err(|e| e.to_string())? {
                let store = FileStorage::new(&dir, &url).map_err(|e| e.to_string())?;
                let tokens = store.get_tokens().await.map_err(|e| e.to_string())?;
                let client = store.get_client_info().await.map_err(|e| e.to_string())?;
                entries.push(describe(&url, tokens.as_ref(), client.as_ref()));
            }
            format!("file store in {}", dir.display())
        }
        StoreKind::Keychain => {
            for url in read_index(args) {
                let store = KeyringStorage::new(&url).map_err(|e| e.to_string())?;
                let tokens = store.get_tokens().await.map_err(|e| e.to_string())?;
                let client = store.get_client_info().await.map_err(|e| e.to_string())?;
                entries.push(describe(&url, tokens.as_ref(), client.as_ref()));
            }
            format!(
                "OS keychain, service {:?} (servers logged in to with this tool)",
                KeyringStorage::DEFAULT_SERVICE
            )
        }
        StoreKind::Redis => {
            let first = redis_urls(args)?;
            for url in read_index(args) {
                let store = redis(args, &url)?;
                let tokens = store.get_tokens().await.map_err(|e| e.to_string())?;
                let client = store.get_client_info().await.map_err(|e| e.to_string())?;
                entries.push(describe(&url, tokens.as_ref(), client.as_ref()));
            }
            format!(
                "Redis store at {} (servers logged in to with this tool)",
                mcp_oauth_client::storage::redact_url(first.split(',').next().unwrap_or_default())
            )
        }
    };
    let mut out = anstream::stdout();
    if as_json {
        let _ = writeln!(out, "{}", json!({"store": where_, "servers": entries}));
        return Ok(());
    }
    let bold = anstyle::Style::new().bold();
    let dim = anstyle::Style::new().dimmed();
    let _ = writeln!(out, "{dim}{where_}{dim:#}");
    if entries.is_empty() {
        let _ = writeln!(out, "nothing stored");
    }
    for e in &entries {
        let _ = writeln!(out, "{bold}{}{bold:#}", e["server"].as_str().unwrap_or(""));
        let field = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  issuer     {}", field(&e["issuer"]));
        let _ = writeln!(out, "  client_id  {}", field(&e["client_id"]));
        if e["token_type"].is_null() {
            let _ = writeln!(out, "  tokens     none");
            continue;
        }
        let _ = writeln!(out, "  scope      {}", field(&e["scope"]));
        let expiry = e["expires_at"].as_f64().map(when).unwrap_or_else(|| "not given".into());
        let _ = writeln!(out, "  expires    {expiry}");
        let refresh = if e["refresh_token"].as_bool() == Some(true) {
            "stored"
        } else {
            "none"
        };
        let _ = writeln!(out, "  refresh    {refresh}");
    }
    Ok(())
}
