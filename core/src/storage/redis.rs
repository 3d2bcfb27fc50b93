//! [`RedisStorage`]: tokens and registrations in Redis, shared by every
//! process of a fleet (replicas of a gateway, a pool of workers, serverless
//! functions), so the fleet acts as one client and refreshes a rotating
//! refresh token once.
//!
//! # Keys
//!
//! Under a key prefix the host chooses (`mcp-oauth` by default), per MCP
//! server (`<h>` is a hash of its URL) and per authorization server (`<i>`
//! is a hash of its issuer):
//!
//! | key | holds |
//! |-----|-------|
//! | `<prefix>:srv:{<h>}:tokens` | a hash: `v`, the version, and `d`, the encrypted tokens |
//! | `<prefix>:srv:{<h>}:seq` | the counter the versions come from (kept when tokens are removed, so a version is never reused) |
//! | `<prefix>:srv:{<h>}:client` | the registration in use for this server, encrypted |
//! | `<prefix>:srv:{<h>}:lease` | the refresh lease: `<fencing token>:<random>`, with an expiry its holder renews (see [`RedisOptions::lease_heartbeat`]) |
//! | `<prefix>:srv:{<h>}:fence` | the counter the fencing tokens come from |
//! | `<prefix>:srv:{<h>}:changed` | the pub/sub channel told of every token write and lease release |
//! | `<prefix>:as:{<i>}:client` | the registration with that authorization server, encrypted, shared by every MCP server using it |
//!
//! The braces are a hash tag: a server's tokens, version, lease and fencing
//! counter live in one slot of a Redis Cluster, so the Lua scripts that
//! compare-and-set and take the lease touch one slot only.
//!
//! # One refresh per fleet
//!
//! Token writes are compare-and-set on the version, in a Lua script, so a
//! process whose view is stale (a lease that ran out, a store used without
//! it) never overwrites newer tokens. Before a refresh the provider takes the
//! lease: a Lua script sets it if absent (`SET NX PX`) to a fencing token
//! from `INCR` and a random part of the holder's; only that holder releases
//! it (compare-and-delete), and errors name the fencing token of the process
//! that holds it. In Redis the lease lasts one heartbeat at a time, renewed
//! while its holder lives, so a holder that dies frees it a heartbeat later.
//! Waiters subscribe to the server's channel (every token write and release
//! is published on it; classic pub/sub reaches every node of a cluster) and
//! poll at most every 250 ms as the fallback.
//!
//! # Encryption at rest
//!
//! Values are encrypted with AES-256-GCM under a key the host supplies, with a
//! fresh random nonce per write. The stored value is
//! `aes256gcm:<key id>:<base64 nonce>:<base64 ciphertext>`; the associated
//! data is the key id and the Redis key's name, so a value copied under
//! another Redis key (another server's tokens, say) fails to decrypt. Several
//! keys can be given: the first encrypts, all decrypt (rotation: put the new
//! key first, keep the old one until every value has been written again).
//! Without a key the store refuses to be built, unless the host calls
//! [`RedisOptions::allow_unencrypted_values`]; then values are stored as
//! `plain:<json>`, and an encrypted value is refused (as is a plain one by a
//! store with keys: a downgrade is not accepted silently).
//!
//! A value that cannot be decrypted or parsed is an error of kind
//! [`Storage`](crate::ErrorKind::Storage) naming the store and the key; it is
//! not used, and left as it is.
//!
//! # Redis unreachable
//!
//! The provider keeps the tokens it holds in memory and serves requests with a
//! valid token without touching the store. Reads, writes and the lease fail
//! with a storage error naming the store (its URL with the password redacted)
//! after [`RedisOptions::timeout`]. The connection is re-established when
//! Redis comes back; nothing written before is lost (Redis keeps it, as its
//! persistence is configured to).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CasOutcome, Lease, TokenStorage, Version, Versioned};
use crate::error::{Error, Result};
use crate::model::{OAuthClientInformationFull, OAuthToken};

/// The key prefix when the host sets none.
pub const DEFAULT_KEY_PREFIX: &str = "mcp-oauth";

/// How long one Redis operation may take by default, connecting included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts to take a busy lease when no
/// release was heard on the channel (the fallback of pub/sub).
const MAX_LEASE_POLL: Duration = Duration::from_millis(250);

/// How long a lease outlives a holder that stopped renewing it, by default.
const DEFAULT_LEASE_HEARTBEAT: Duration = Duration::from_secs(10);

/// The pause before an operation is tried again on a connection refused or lost.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One Redis operation, which [`RedisStorage::run`] may send more than once.
enum Op<'a> {
    Cmd(Cmd),
    Script(redis::ScriptInvocation<'a>),
}

const ENCRYPTED_TAG: &str = "aes256gcm";
const PLAIN_TAG: &str = "plain";

/// A key that encrypts the store's values: 32 bytes for AES-256-GCM and an id
/// stored beside each value it encrypts. The bytes never appear in `Debug`.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

impl EncryptionKey {
    /// A key named `id` (1 to 64 characters among letters, digits, `-`, `_`
    /// and `.`) of exactly 32 bytes.
    pub fn new(id: &str, key: &[u8]) -> Result<EncryptionKey> {
        let id_ok =
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !id_ok {
            return Err(Error::config(
                "an encryption key id must be 1 to 64 characters among letters, digits, '-', '_' and '.'",
            ));
        }
        if key.len() != 32 {
            return Err(Error::config(format!(
                "the encryption key {id:?} has {} bytes; AES-256-GCM needs exactly 32",
                key.len()
            )));
        }
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| Error::config(format!("the encryption key {id:?} cannot be used")))?;
        Ok(EncryptionKey {
            id: id.to_string(),
            cipher,
        })
    }

    /// A key given as base64 (standard alphabet, padded) of 32 bytes, as a
    /// secret manager or an environment variable hands it over.
    pub fn from_base64(id: &str, key: &str) -> Result<EncryptionKey> {
        let bytes = zeroize::Zeroizing::new(
            B64.decode(key.trim())
                .map_err(|_| Error::config(format!("the encryption key {id:?} is not valid base64")))?,
        );
        EncryptionKey::new(id, &bytes)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How to reach Redis and how to protect what is stored there.
#[derive(Clone)]
pub struct RedisOptions {
    urls: Vec<String>,
    cluster: bool,
    key_prefix: String,
    keys: Vec<EncryptionKey>,
    allow_unencrypted: bool,
    timeout: Duration,
    lease_heartbeat: Duration,
}

impl RedisOptions {
    /// One Redis server: `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://...` for TLS (rustls, verified against the operating
    /// system's roots, where a private CA can be added).
    pub fn new(url: &str) -> RedisOptions {
        RedisOptions {
            urls: vec![url.to_string()],
            cluster: false,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            keys: Vec::new(),
            allow_unencrypted: false,
            timeout: DEFAULT_TIMEOUT,
            lease_heartbeat: DEFAULT_LEASE_HEARTBEAT,
        }
    }

    /// A Redis Cluster, given by the URLs of one or more of its nodes (the
    /// others are discovered). User, password and TLS come from the first URL.
    pub fn cluster<S: AsRef<str>>(node_urls: &[S]) -> RedisOptions {
        let mut o = RedisOptions::new("");
        o.urls = node_urls.iter().map(|u| u.as_ref().to_string()).collect();
        o.cluster = true;
        o
    }

    /// Options from a configuration string: one URL for a single server, or
    /// several separated by commas or whitespace for the nodes of a cluster.
    pub fn parse(urls: &str) -> RedisOptions {
        let list: Vec<&str> = urls
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if list.len() > 1 {
            RedisOptions::cluster(&list)
        } else {
            RedisOptions::new(list.first().copied().unwrap_or(""))
        }
    }

    /// The prefix of every key ([`DEFAULT_KEY_PREFIX`] by default); hosts
    /// sharing one Redis keep apart by it. It must not contain `{` or `}`.
    pub fn key_prefix(mut self, prefix: &str) -> RedisOptions {
        self.key_prefix = prefix.to_string();
        self
    }

    /// Add a key. The first one added encrypts every write; every key given
    /// decrypts the values written with it.
    pub fn encryption_key(mut self, key: EncryptionKey) -> RedisOptions {
        self.keys.push(key);
        self
    }

    /// Store tokens and client secrets in Redis as plain JSON, readable by
    /// anyone who can read the Redis database. Without this, a store with no
    /// encryption key refuses to be built.
    pub fn allow_unencrypted_values(mut self, allow: bool) -> RedisOptions {
        self.allow_unencrypted = allow;
        self
    }

    /// How long a lease outlives its holder: a held lease's expiry in Redis
    /// is this long and renewed by its holder every third of it (until the
    /// lease's own deadline), so a holder that dies (SIGKILL, a lost machine)
    /// frees the lease this long after, however long the lease was taken
    /// for. 10 seconds by default.
    pub fn lease_heartbeat(mut self, heartbeat: Duration) -> RedisOptions {
        self.lease_heartbeat = heartbeat.max(Duration::from_millis(30));
        self
    }

    /// How long one operation (connecting included) may take before it fails
    /// with a storage error; 5 seconds by default.
    pub fn timeout(mut self, timeout: Duration) -> RedisOptions {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("urls", &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("keys", &self.keys)
            .field("allow_unencrypted", &self.allow_unencrypted)
            .field("timeout", &self.timeout)
            .field("lease_heartbeat", &self.lease_heartbeat)
            .finish()
    }
}

/// A URL with its password replaced by `***`; an unparsable one is not shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// The connection: one server through a connection manager that reconnects,
/// or a cluster (whose connection follows the topology and reconnects).
#[derive(Clone)]
enum Conn {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
enum Clients {
    Single(redis::Client),
    Cluster {
        cluster: redis::cluster::ClusterClient,
        /// One client per node given, for the pub/sub connection (classic
        /// pub/sub reaches every node of a cluster).
        nodes: Vec<redis::Client>,
    },
}

/// What every store on one Redis shares: the clients, the connection, the
/// keys and the name shown in errors.
struct Shared {
    clients: Clients,
    conn: tokio::sync::OnceCell<Conn>,
    /// The URLs with passwords redacted, for messages.
    name: String,
    prefix: String,
    keys: Vec<EncryptionKey>,
    allow_unencrypted: bool,
    timeout: Duration,
    lease_heartbeat: Duration,
}

#[cfg(test)]
impl Shared {
    /// The same settings with a connection of its own, as another process has.
    fn fresh(&self) -> Shared {
        Shared {
            clients: self.clients.clone(),
            conn: tokio::sync::OnceCell::new(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            keys: self.keys.clone(),
            allow_unencrypted: self.allow_unencrypted,
            timeout: self.timeout,
            lease_heartbeat: self.lease_heartbeat,
        }
    }
}

/// Tokens and registrations in Redis, shared by every process of a fleet. See
/// the [module documentation](self) for the keys, the encryption and what
/// happens when Redis is unreachable.
///
/// One store per MCP server; [`RedisStorage::for_server`] makes the store of
/// another server sharing the connection. It connects on first use.
#[derive(Clone)]
pub struct RedisStorage {
    shared: Arc<Shared>,
    server_url: String,
    tokens_key: String,
    seq_key: String,
    client_key: String,
    lease_key: String,
    fence_key: String,
    channel: String,
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorage")
            .field("redis", &self.shared.name)
            .field("server_url", &self.server_url)
            .field("key_prefix", &self.shared.prefix)
            .field("keys", &self.shared.keys)
            .field("allow_unencrypted", &self.shared.allow_unencrypted)
            .finish()
    }
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The issuer as its registrations are keyed: `https://as.example/` and
/// `https://as.example` are one issuer (as `same_issuer` says).
fn issuer_key_form(issuer: &str) -> &str {
    match url::Url::parse(issuer) {
        Ok(u) if u.path() == "/" => issuer.trim_end_matches('/'),
        _ => issuer,
    }
}

fn open_client(url: &str, name: &str) -> Result<redis::Client> {
    let parsed =
        url::Url::parse(url).map_err(|_| Error::config(format!("{name} is not a valid redis:// or rediss:// URL")))?;
    if parsed.scheme() != "redis" && parsed.scheme() != "rediss" {
        return Err(Error::config(format!(
            "{name}: the URL scheme must be redis:// or rediss:// (TLS)"
        )));
    }
    redis::Client::open(url).map_err(|e| Error::config(format!("{name} cannot be used: {}", e.kind_name())))
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The category of the error only: some messages of the client quote
    /// what they were given, a URL with its password among it.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

impl RedisStorage {
    /// The store for the MCP server `server_url`. Checks the options (URLs,
    /// key prefix, keys) but does not connect: the first operation does, and
    /// reports an unreachable Redis as its error.
    pub fn new(options: RedisOptions, server_url: &str) -> Result<RedisStorage> {
        let RedisOptions {
            urls,
            cluster,
            key_prefix,
            keys,
            allow_unencrypted,
            timeout,
            lease_heartbeat,
        } = options;
        let name = match urls.as_slice() {
            [one] if !cluster => format!("the Redis token store at {}", redact_url(one)),
            many => format!(
                "the Redis Cluster token store at {}",
                many.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", ")
            ),
        };
        if urls.is_empty() || urls.iter().any(|u| u.is_empty()) {
            return Err(Error::config("the Redis token store needs a redis:// or rediss:// URL"));
        }
        if key_prefix.contains(['{', '}']) {
            return Err(Error::config(
                "the Redis key prefix must not contain '{' or '}' (they would break the keys' hash tags)",
            ));
        }
        if keys.is_empty() && !allow_unencrypted {
            return Err(Error::config(format!(
                "{name} has no encryption key: give one (tokens and client secrets are stored in Redis), \
                 or opt out explicitly with allow_unencrypted_values"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = keys.iter().find(|k| !seen.insert(k.id.as_str())) {
            return Err(Error::config(format!(
                "the encryption key id {:?} is given twice",
                dup.id
            )));
        }
        let clients = if cluster {
            let nodes = urls
                .iter()
                .map(|u| open_client(u, &redact_url(u)))
                .collect::<Result<Vec<_>>>()?;
            let infos: Vec<redis::ConnectionInfo> = nodes.iter().map(|c| c.get_connection_info().clone()).collect();
            let cluster = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| Error::config(format!("{name} cannot be used: {}", e.kind_name())))?;
            Clients::Cluster { cluster, nodes }
        } else {
            Clients::Single(open_client(&urls[0], &name)?)
        };
        let shared = Arc::new(Shared {
            clients,
            conn: tokio::sync::OnceCell::new(),
            name,
            prefix: key_prefix,
            keys,
            allow_unencrypted,
            timeout,
            lease_heartbeat,
        });
        Ok(RedisStorage::with_shared(shared, server_url))
    }

    fn with_shared(shared: Arc<Shared>, server_url: &str) -> RedisStorage {
        let base = format!("{}:srv:{{{}}}", shared.prefix, short_hash(server_url));
        RedisStorage {
            server_url: server_url.to_string(),
            tokens_key: format!("{base}:tokens"),
            seq_key: format!("{base}:seq"),
            client_key: format!("{base}:client"),
            lease_key: format!("{base}:lease"),
            fence_key: format!("{base}:fence"),
            channel: format!("{base}:changed"),
            shared,
        }
    }

    /// The store of another MCP server on the same Redis, sharing this one's
    /// connection and keys.
    pub fn for_server(&self, server_url: &str) -> RedisStorage {
        RedisStorage::with_shared(self.shared.clone(), server_url)
    }

    /// The Redis key of this server's tokens (a hash of `v` and `d`).
    pub fn tokens_key(&self) -> &str {
        &self.tokens_key
    }

    /// The Redis key of this server's refresh lease.
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }

    /// The Redis key of the registration with the authorization server `issuer`.
    pub fn issuer_client_key(&self, issuer: &str) -> String {
        format!(
            "{}:as:{{{}}}:client",
            self.shared.prefix,
            short_hash(issuer_key_form(issuer))
        )
    }

    fn unreachable(&self, what: &str, detail: impl fmt::Display) -> Error {
        Error::storage(format!("{} could not {what}: {detail}", self.shared.name))
    }

    async fn conn(&self) -> Result<Conn> {
        let s = &self.shared;
        let connect = || async {
            match &s.clients {
                Clients::Single(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(s.timeout))
                        .set_response_timeout(Some(s.timeout))
                        .set_number_of_retries(2)
                        .set_max_delay(Duration::from_millis(500));
                    redis::aio::ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Conn::Single)
                }
                Clients::Cluster { cluster, .. } => cluster.get_async_connection().await.map(Conn::Cluster),
            }
        };
        let connected = tokio::time::timeout(
            s.timeout,
            s.conn
                .get_or_try_init(|| async { connect().await.map_err(|e| self.redis_error("connect", e)) }),
        )
        .await
        .map_err(|_| self.unreachable("connect", format!("no answer within {:?}", s.timeout)))??;
        Ok(connected.clone())
    }

    fn redis_error(&self, what: &str, e: redis::RedisError) -> Error {
        // The category and, for errors the server sent, its code; never the
        // whole message of a client error, which may quote the URL.
        let detail = match e.code() {
            Some(code) => format!("the server answered {code}"),
            None if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() => {
                "Redis is unreachable (connection refused or lost)".to_string()
            }
            None if e.is_timeout() => "Redis did not answer in time".to_string(),
            None => format!("{} error", e.kind_name()),
        };
        self.unreachable(what, detail)
    }

    /// Run a command or a script within the store's timeout. A connection
    /// refused or lost is tried again after a pause while time is left (the
    /// connection manager reconnects meanwhile): Redis restarting is a wait,
    /// not a failure. Every command and script here can be repeated safely.
    async fn run<T: redis::FromRedisValue>(&self, what: &str, op: Op<'_>) -> Result<T> {
        let timeout = self.shared.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = async {
                let mut conn = self.conn().await?;
                let out = match &op {
                    Op::Cmd(cmd) => cmd.query_async::<T>(&mut conn).await,
                    Op::Script(inv) => inv.invoke_async::<T>(&mut conn).await,
                };
                Ok::<_, Error>(out)
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, attempt).await {
                Ok(Ok(Ok(v))) => return Ok(v),
                Ok(Ok(Err(e))) => {
                    let retry = e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped();
                    if !retry || deadline.saturating_duration_since(Instant::now()) < RETRY_PAUSE {
                        return Err(self.redis_error(what, e));
                    }
                }
                Ok(Err(e)) => {
                    if deadline.saturating_duration_since(Instant::now()) < RETRY_PAUSE {
                        return Err(e);
                    }
                }
                Err(_) => {
                    return Err(self.unreachable(what, format!("Redis did not answer within {timeout:?}")));
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    // Encryption.

    fn seal(&self, redis_key: &str, plain: &[u8]) -> Result<String> {
        let Some(key) = self.shared.keys.first() else {
            return Ok(format!("{PLAIN_TAG}:{}", String::from_utf8_lossy(plain)));
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::storage(format!("no randomness for a nonce: {e}")))?;
        let aad = associated_data(&key.id, redis_key);
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .map_err(|_| Error::storage("cannot encrypt a value for Redis"))?;
        Ok(format!(
            "{ENCRYPTED_TAG}:{}:{}:{}",
            key.id,
            B64.encode(nonce),
            B64.encode(sealed)
        ))
    }

    fn refused(&self, redis_key: &str, why: &str) -> Error {
        Error::storage(format!(
            "{}: the value at {redis_key} {why}; it is not used, and left as it is",
            self.shared.name
        ))
    }

    fn open(&self, redis_key: &str, stored: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let text = std::str::from_utf8(stored).map_err(|_| self.refused(redis_key, "is not text"))?;
        if let Some(json) = text.strip_prefix(PLAIN_TAG).and_then(|t| t.strip_prefix(':')) {
            if !self.shared.keys.is_empty() {
                return Err(self.refused(
                    redis_key,
                    "is not encrypted, and this store has encryption keys (a downgrade is not accepted)",
                ));
            }
            return Ok(zeroize::Zeroizing::new(json.as_bytes().to_vec()));
        }
        let mut parts = text.splitn(4, ':');
        let (Some(ENCRYPTED_TAG), Some(id), Some(nonce), Some(sealed)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(self.refused(redis_key, "is in no format this store writes"));
        };
        let Some(key) = self.shared.keys.iter().find(|k| k.id == id) else {
            return Err(self.refused(
                redis_key,
                &format!("is encrypted with the key {id:?}, which this store was not given"),
            ));
        };
        let nonce = B64
            .decode(nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or_else(|| self.refused(redis_key, "has a malformed nonce"))?;
        let sealed = B64
            .decode(sealed)
            .map_err(|_| self.refused(redis_key, "has a malformed ciphertext"))?;
        let aad = associated_data(id, redis_key);
        key.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                self.refused(
                    redis_key,
                    &format!("fails to decrypt with the key {id:?} (altered, or copied from another key)"),
                )
            })
    }

    fn encode<T: Serialize>(&self, redis_key: &str, value: &T) -> Result<String> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| Error::storage(format!("cannot encode a value for Redis: {e}")))?,
        );
        self.seal(redis_key, &json)
    }

    fn decode<T: DeserializeOwned>(&self, redis_key: &str, stored: &[u8]) -> Result<T> {
        let plain = self.open(redis_key, stored)?;
        // Only the position: the message of a JSON error may quote the value.
        serde_json::from_slice(&plain).map_err(|e| {
            self.refused(
                redis_key,
                &format!(
                    "is not valid JSON once decrypted (line {} column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    // Tokens.

    fn versioned(&self, version: Option<String>, data: Option<Vec<u8>>) -> Result<Versioned<OAuthToken>> {
        match (version, data) {
            (Some(v), Some(d)) => {
                let version = v
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v != 0)
                    .ok_or_else(|| self.refused(&self.tokens_key, "has a malformed version"))?;
                Ok(Versioned {
                    value: Some(self.decode(&self.tokens_key, &d)?),
                    version: Version(version),
                })
            }
            (None, None) => Ok(Versioned {
                value: None,
                version: Version::ABSENT,
            }),
            _ => Err(self.refused(&self.tokens_key, "lacks its version or its data")),
        }
    }

    // Registrations.

    async fn get_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run("read a registration", Op::Cmd(redis::cmd("GET").arg(key).clone()))
            .await
    }

    async fn get_registration(&self, key: &str) -> Result<Option<OAuthClientInformationFull>> {
        match self.get_value(key).await? {
            Some(bytes) => self.decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }
}

fn associated_data(key_id: &str, redis_key: &str) -> Vec<u8> {
    format!("mcp-oauth-client/redis/v1\0{key_id}\0{redis_key}").into_bytes()
}

/// Compare-and-set of the tokens. KEYS: tokens hash, version counter.
/// ARGV: expected version ("0": none), new value ("" removes), channel.
/// Returns {1, version} when written, {0, version, value} on a conflict.
const CAS_SCRIPT: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[1] then
  local d = redis.call('HGET', KEYS[1], 'd')
  if not d then d = '' end
  return {0, cur, d}
end
if ARGV[2] == '' then
  if cur ~= '0' then
    redis.call('DEL', KEYS[1])
    redis.call('INCR', KEYS[2])
    redis.call('PUBLISH', ARGV[3], 'tokens')
  end
  return {1, '0'}
end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', tostring(v), 'd', ARGV[2])
redis.call('PUBLISH', ARGV[3], 'tokens')
return {1, tostring(v)}
"#;

/// An unconditional write of the tokens. KEYS: tokens hash, version counter.
/// ARGV: value, channel. Returns the new version.
const SET_SCRIPT: &str = r#"
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', tostring(v), 'd', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'tokens')
return tostring(v)
"#;

/// Take the lease if free. KEYS: lease, fencing counter. ARGV: holder's
/// random part, ttl in ms. Returns {1, fencing token} or {0, holder, pttl}.
/// Repeating an attempt that succeeded answers the same fencing token.
const ACQUIRE_SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder then
  local sep = string.find(holder, ':', 1, true)
  if sep and string.sub(holder, sep + 1) == ARGV[1] then
    -- Taken by this very attempt, whose answer was lost: it is ours.
    return {1, string.sub(holder, 1, sep - 1)}
  end
  return {0, holder, redis.call('PTTL', KEYS[1])}
end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], tostring(f) .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return {1, tostring(f)}
"#;

/// Release the lease only when this holder still holds it. KEYS: lease.
/// ARGV: the value it set, channel.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
"#;

/// Extend the lease only when this holder still holds it. KEYS: lease.
/// ARGV: the value it set, the new expiry in ms.
const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Delete a key only when it still holds what was read. KEYS: key. ARGV: value.
const DELETE_IF_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        cas: redis::Script::new(CAS_SCRIPT),
        set: redis::Script::new(SET_SCRIPT),
        acquire: redis::Script::new(ACQUIRE_SCRIPT),
        release: redis::Script::new(RELEASE_SCRIPT),
        renew: redis::Script::new(RENEW_SCRIPT),
        delete_if: redis::Script::new(DELETE_IF_SCRIPT),
    })
}

struct Scripts {
    cas: redis::Script,
    set: redis::Script,
    acquire: redis::Script,
    release: redis::Script,
    renew: redis::Script,
    delete_if: redis::Script,
}

/// A held lease: renewed while held, released (if still this holder's)
/// when dropped.
struct HeldLease {
    store: RedisStorage,
    value: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl HeldLease {
    /// Keep the lease's expiry in Redis one heartbeat ahead until `deadline`
    /// (the lease's own end), so that it lasts while this process lives and
    /// expires one heartbeat after it dies.
    fn renew_until(&mut self, deadline: Instant) {
        let heartbeat = self.store.shared.lease_heartbeat;
        let (store, value) = (self.store.clone(), self.value.clone());
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.renewal = Some(handle.spawn(async move {
            loop {
                tokio::time::sleep(heartbeat / 3).await;
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                let ms = left.min(heartbeat).as_millis().max(1) as u64;
                let mut inv = scripts().renew.prepare_invoke();
                inv.key(&store.lease_key).arg(&value).arg(ms);
                match store.run::<i64>("renew the refresh lease", Op::Script(inv)).await {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::warn!("the refresh lease expired before its holder renewed it");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not renew the refresh lease"),
                }
            }
        }));
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let store = self.store.clone();
        let value = std::mem::take(&mut self.value);
        // Without a runtime the lease is left to expire.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut inv = scripts().release.prepare_invoke();
                inv.key(&store.lease_key).arg(&value).arg(&store.channel);
                let released = store.run::<i64>("release the refresh lease", Op::Script(inv)).await;
                match released {
                    Ok(1) => {}
                    Ok(_) => tracing::warn!("the refresh lease had expired before its holder released it"),
                    Err(e) => tracing::warn!(error = %e, "could not release the refresh lease; it expires on its own"),
                }
            });
        }
    }
}

/// Wakes a lease waiter when the channel hears a release or a write.
struct Listener {
    stream: Option<redis::aio::PubSubStream>,
}

impl Listener {
    async fn subscribe(store: &RedisStorage) -> Listener {
        let clients: Vec<&redis::Client> = match &store.shared.clients {
            Clients::Single(c) => vec![c],
            Clients::Cluster { nodes, .. } => nodes.iter().collect(),
        };
        for client in clients {
            let attempt = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&store.channel).await?;
                Ok::<_, redis::RedisError>(pubsub.into_on_message())
            };
            if let Ok(Ok(stream)) = tokio::time::timeout(store.shared.timeout, attempt).await {
                return Listener { stream: Some(stream) };
            }
        }
        tracing::debug!("no pub/sub connection for the lease wait; polling instead");
        Listener { stream: None }
    }

    /// Wait for a message, at most `pause`.
    async fn wait(&mut self, pause: Duration) {
        match &mut self.stream {
            Some(stream) => match tokio::time::timeout(pause, stream.next()).await {
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => {
                    // The subscription ended (Redis went away): poll from now on.
                    self.stream = None;
                    tokio::time::sleep(pause).await;
                }
            },
            None => tokio::time::sleep(pause).await,
        }
    }
}

#[async_trait]
impl TokenStorage for RedisStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        Ok(self.load_tokens().await?.value)
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        let value = self.encode(&self.tokens_key, &tokens)?;
        let mut inv = scripts().set.prepare_invoke();
        inv.key(&self.tokens_key)
            .key(&self.seq_key)
            .arg(&value)
            .arg(&self.channel);
        self.run::<String>("store the tokens", Op::Script(inv)).await?;
        Ok(())
    }

    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        self.get_registration(&self.client_key).await
    }

    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        match self.get_registration(&self.issuer_client_key(issuer)).await? {
            Some(info) => Ok(Some(info)),
            None => self.get_client_info().await,
        }
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        let mut writes = Vec::new();
        if let Some(issuer) = &info.issuer {
            let key = self.issuer_client_key(issuer);
            writes.push((self.encode(&key, &info)?, key));
        }
        writes.push((self.encode(&self.client_key, &info)?, self.client_key.clone()));
        // One key at a time: the two live in different slots of a cluster.
        for (value, key) in writes {
            self.run::<()>(
                "store a registration",
                Op::Cmd(redis::cmd("SET").arg(&key).arg(&value).clone()),
            )
            .await?;
        }
        Ok(())
    }

    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        let key = self.issuer_client_key(issuer);
        self.run::<i64>("remove a registration", Op::Cmd(redis::cmd("DEL").arg(&key).clone()))
            .await?;
        // The one in use goes too when it is this issuer's (or bound to none),
        // unless it changed since it was read.
        if let Some(raw) = self.get_value(&self.client_key).await? {
            let info: OAuthClientInformationFull = self.decode(&self.client_key, &raw)?;
            let matches = info
                .issuer
                .as_deref()
                .is_none_or(|i| crate::discovery::same_issuer(i, issuer));
            if matches {
                let mut inv = scripts().delete_if.prepare_invoke();
                inv.key(&self.client_key).arg(&raw);
                self.run::<i64>("remove a registration", Op::Script(inv)).await?;
            }
        }
        Ok(true)
    }

    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        let cmd = redis::cmd("HMGET").arg(&self.tokens_key).arg("v").arg("d").clone();
        let (version, data) = self
            .run::<(Option<String>, Option<Vec<u8>>)>("read the tokens", Op::Cmd(cmd))
            .await?;
        self.versioned(version, data)
    }

    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        let value = match &tokens {
            Some(t) => self.encode(&self.tokens_key, t)?,
            None => String::new(),
        };
        let mut inv = scripts().cas.prepare_invoke();
        inv.key(&self.tokens_key)
            .key(&self.seq_key)
            .arg(expected.0.to_string())
            .arg(&value)
            .arg(&self.channel);
        let reply: Vec<Value> = self.run("store the tokens", Op::Script(inv)).await?;
        let field = |i: usize| -> Option<Vec<u8>> {
            match reply.get(i) {
                Some(Value::BulkString(b)) => Some(b.clone()),
                Some(Value::SimpleString(s)) => Some(s.clone().into_bytes()),
                Some(Value::Int(n)) => Some(n.to_string().into_bytes()),
                _ => None,
            }
        };
        let text = |i: usize| field(i).and_then(|b| String::from_utf8(b).ok());
        let malformed = || Error::storage(format!("{}: an unexpected answer to a token write", self.shared.name));
        let version: u64 = text(1).and_then(|v| v.parse().ok()).ok_or_else(malformed)?;
        match text(0).as_deref() {
            Some("1") => Ok(CasOutcome::Stored(Version(version))),
            Some("0") => {
                let data = field(2).filter(|d| !d.is_empty());
                let now = if version == 0 {
                    self.versioned(None, None)?
                } else {
                    self.versioned(Some(version.to_string()), data)?
                };
                Ok(CasOutcome::Conflict(now))
            }
            _ => Err(malformed()),
        }
    }

    async fn acquire_lease(&self, ttl: Duration, wait: Duration) -> Result<Lease> {
        let deadline = Instant::now() + wait;
        // In Redis the lease lasts one heartbeat at a time, renewed while its
        // holder lives (up to `ttl`).
        let started = Instant::now();
        let redis_ttl_ms = ttl.min(self.shared.lease_heartbeat).as_millis().max(1) as u64;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::storage(format!("no randomness for a lease: {e}")))?;
        let mine: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let mut listener: Option<Listener> = None;
        loop {
            let mut inv = scripts().acquire.prepare_invoke();
            inv.key(&self.lease_key)
                .key(&self.fence_key)
                .arg(&mine)
                .arg(redis_ttl_ms);
            let reply: Vec<Value> = self.run("take the refresh lease", Op::Script(inv)).await?;
            let as_text = |v: Option<&Value>| match v {
                Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
                Some(Value::SimpleString(s)) => Some(s.clone()),
                Some(Value::Int(n)) => Some(n.to_string()),
                _ => None,
            };
            let pttl = match reply.get(2) {
                Some(Value::Int(n)) => *n,
                _ => -1,
            };
            match (reply.first(), as_text(reply.get(1))) {
                (Some(Value::Int(1)), Some(fencing_token)) => {
                    let mut held = HeldLease {
                        store: self.clone(),
                        value: format!("{fencing_token}:{mine}"),
                        renewal: None,
                    };
                    if ttl > self.shared.lease_heartbeat {
                        let until = started
                            .checked_add(ttl)
                            .unwrap_or(started + Duration::from_secs(30 * 24 * 3600));
                        held.renew_until(until);
                    }
                    tracing::debug!(fencing_token = %fencing_token, "took the refresh lease");
                    return Ok(Lease::new(ttl, Box::new(held)));
                }
                (Some(Value::Int(0)), holder) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let fencing = holder
                            .as_deref()
                            .and_then(|h| h.split(':').next())
                            .unwrap_or("?")
                            .to_string();
                        return Err(Error::storage(format!(
                            "{}: the refresh lease {} is held by another process (fencing token {fencing}, \
                             expiring in {pttl} ms); gave up after waiting {wait:?}",
                            self.shared.name, self.lease_key
                        )));
                    }
                    if listener.is_none() {
                        // Subscribed before the next attempt, so a release
                        // between the two is heard.
                        listener = Some(Listener::subscribe(self).await);
                        continue;
                    }
                    let until_expiry = Duration::from_millis(u64::try_from(pttl).unwrap_or(0).saturating_add(5));
                    let pause = MAX_LEASE_POLL
                        .min(deadline - now)
                        .min(until_expiry.max(Duration::from_millis(5)));
                    if let Some(l) = listener.as_mut() {
                        l.wait(pause).await;
                    }
                }
                _ => {
                    return Err(Error::storage(format!(
                        "{}: an unexpected answer when taking the refresh lease",
                        self.shared.name
                    )));
                }
            }
        }
    }
}

/// Fuzzing: a stored value as `GET`/`HGET` return it, decoded (and
/// decrypted) the way every read does. `kind` picks the store and the path:
/// 0, a store with a key; 1, a store without (unencrypted values allowed);
/// 2, the bytes sealed by the keyed store, then opened again (under the right
/// key they come back whole, under another Redis key they are refused);
/// 3, a token hash's version and data (`version\ndata`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stored_value(kind: u8, bytes: &[u8]) -> bool {
    static STORES: std::sync::OnceLock<(RedisStorage, RedisStorage)> = std::sync::OnceLock::new();
    let (keyed, plain) = STORES.get_or_init(|| {
        let key = EncryptionKey::new("k1", &[7u8; 32]).expect("a 32-byte key");
        let keyed = RedisStorage::new(
            RedisOptions::new("redis://127.0.0.1:1").encryption_key(key),
            "https://mcp.example.com/mcp",
        )
        .expect("the options are valid");
        let plain = RedisStorage::new(
            RedisOptions::new("redis://127.0.0.1:1").allow_unencrypted_values(true),
            "https://mcp.example.com/mcp",
        )
        .expect("the options are valid");
        (keyed, plain)
    });
    fn both(store: &RedisStorage, bytes: &[u8]) -> bool {
        let mut decoded = false;
        if let Ok(token) = store.decode::<OAuthToken>(&store.tokens_key, bytes) {
            decoded = true;
            let again = store
                .encode(&store.tokens_key, &token)
                .expect("a decoded token encodes");
            let back: OAuthToken = store
                .decode(&store.tokens_key, again.as_bytes())
                .expect("an encoded token decodes");
            assert!(back == token, "a token survives a write and a read");
        }
        if let Ok(info) = store.decode::<OAuthClientInformationFull>(&store.client_key, bytes) {
            decoded = true;
            let again = store.encode(&store.client_key, &info).expect("a registration encodes");
            let _: OAuthClientInformationFull = store
                .decode(&store.client_key, again.as_bytes())
                .expect("an encoded registration decodes");
        }
        decoded
    }
    match kind % 4 {
        0 => both(keyed, bytes),
        1 => both(plain, bytes),
        2 => {
            let sealed = keyed.seal(&keyed.tokens_key, bytes).expect("sealing works");
            let opened = keyed
                .open(&keyed.tokens_key, sealed.as_bytes())
                .expect("a sealed value opens");
            assert_eq!(&opened[..], bytes, "a sealed value opens to what was sealed");
            assert!(
                keyed.open(&keyed.client_key, sealed.as_bytes()).is_err(),
                "a value moved to another key is refused"
            );
            assert!(
                plain.open(&plain.tokens_key, sealed.as_bytes()).is_err(),
                "a store without the key refuses an encrypted value"
            );
            both(keyed, sealed.as_bytes())
        }
        _ => {
            let (version, data) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (Some(&bytes[..i]), Some(bytes[i + 1..].to_vec())),
                None => (Some(bytes), None),
            };
            let version = version.map(|v| String::from_utf8_lossy(v).into_owned());
            let mut decoded = false;
            for store in [keyed, plain] {
                if let Ok(v) = store.versioned(version.clone(), data.clone()) {
                    assert!(v.value.is_none() || v.version.0 != 0, "stored tokens have a version");
                    decoded |= v.value.is_some();
                }
            }
            decoded
        }
    }
}

/// The real Redis servers the tests start (shared with the integration tests).
#[cfg(test)]
#[path = "../../tests/common/redis_servers.rs"]
mod redis_servers;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::model::Secret;
    use crate::storage::test_support::{
        check_compare_and_set, check_registrations_per_issuer, count_of, counter_token, increment_optimistically,
        increment_under_lease,
    };

    use super::redis_servers::{self, RedisCluster, RedisServer};

    const URL: &str = "http://127.0.0.1:8000/mcp";

    fn key(id: &str, byte: u8) -> EncryptionKey {
        EncryptionKey::new(id, &[byte; 32]).unwrap()
    }

    fn store(opts: RedisOptions) -> RedisStorage {
        RedisStorage::new(opts.encryption_key(key("k1", 1)), URL).unwrap()
    }

    #[tokio::test]
    async fn conformance_on_one_instance() {
        let redis = RedisServer::single();
        let opts = RedisOptions::new(&redis.url()).key_prefix("conf");
        check_compare_and_set(&store(opts.clone()), &store(opts.clone())).await;
        check_registrations_per_issuer(&store(opts.clone()), &store(opts.clone())).await;
        // Removing nothing stays at no version.
        let other = store(opts).for_server("http://127.0.0.1:8001/mcp");
        assert!(matches!(
            other.compare_and_set_tokens(Version::ABSENT, None).await.unwrap(),
            CasOutcome::Stored(Version::ABSENT)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_on_a_cluster() {
        let cluster = RedisCluster::start();
        let opts = RedisOptions::cluster(&cluster.urls()[..1]);
        check_compare_and_set(&store(opts.clone()), &store(RedisOptions::cluster(&cluster.urls()))).await;
        check_registrations_per_issuer(&store(opts.clone()), &store(opts.clone())).await;
        // The keys of one server share a slot; issuers' registrations spread.
        let s = store(opts);
        let slots: std::collections::HashSet<String> = [&s.tokens_key, &s.seq_key, &s.lease_key, &s.fence_key]
            .iter()
            .map(|k| cluster.nodes[0].cli(&["cluster", "keyslot", k]))
            .collect();
        assert_eq!(slots.len(), 1, "{slots:?}");
        run_increments(&s, 8).await;
    }

    /// `n` increments under the lease, then `n` with compare-and-set alone,
    /// each task on a store of its own as processes have: none is lost.
    async fn run_increments(s: &RedisStorage, n: u64) {
        let start = count_of(&s.load_tokens().await.unwrap());
        for optimistic in [false, true] {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let s = RedisStorage::with_shared(Arc::new(s.shared.fresh()), &s.server_url);
                    tokio::spawn(async move {
                        if optimistic {
                            increment_optimistically(&s).await
                        } else {
                            increment_under_lease(&s).await
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        assert_eq!(count_of(&s.load_tokens().await.unwrap()), start + 2 * n);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_handles_lose_no_update() {
        let redis = RedisServer::single();
        run_increments(&store(RedisOptions::new(&redis.url())), 12).await;
    }

    #[tokio::test]
    async fn acl_user_password_and_database_number() {
        let redis = RedisServer::single();
        let url = format!("redis://fleet:fleet-secret@127.0.0.1:{}/3", redis.port);
        let s = store(RedisOptions::new(&url));
        s.set_tokens(OAuthToken::bearer("at")).await.unwrap();
        assert_eq!(redis.cli(&["-n", "3", "exists", &s.tokens_key]).trim(), "1");
        assert_eq!(redis.cli(&["-n", "0", "exists", &s.tokens_key]).trim(), "0");
        // A wrong password is an error naming the store, without the password.
        let bad = format!("redis://fleet:not-the-one@127.0.0.1:{}/3", redis.port);
        let e = store(RedisOptions::new(&bad)).load_tokens().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("redis://fleet:***@127.0.0.1:{}/3", redis.port)),
            "{msg}"
        );
        assert!(!msg.contains("not-the-one"), "{msg}");
        let shown = format!("{:?} {:?}", store(RedisOptions::new(&bad)), RedisOptions::new(&bad));
        assert!(!shown.contains("not-the-one") && shown.contains("***"), "{shown}");
    }

    #[tokio::test]
    async fn values_are_encrypted_bound_to_their_key_and_rotate() {
        let redis = RedisServer::single();
        let url = redis.url();
        let s = store(RedisOptions::new(&url));
        let mut t = OAuthToken::bearer("access-token-value");
        t.refresh_token = Some(Secret::new("refresh-token-value"));
        s.set_tokens(t.clone()).await.unwrap();
        let mut info = OAuthClientInformationFull::new("cid", None);
        info.client_secret = Some(Secret::new("client-secret-value"));
        info.issuer = Some("https://as.example".into());
        s.set_client_info(info).await.unwrap();
        let dump = redis.cli(&["--no-raw", "eval", "local o={} for _,k in ipairs(redis.call('keys','*')) do if redis.call('type',k).ok=='hash' then table.insert(o, redis.call('hget',k,'d')) else table.insert(o, redis.call('get',k)) end end return o", "0"]);
        for secret in [
            "access-token-value",
            "refresh-token-value",
            "client-secret-value",
            "cid",
        ] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(dump.contains("aes256gcm:k1:"), "{dump}");

        // Other bytes under the same id fail to decrypt.
        let e = RedisStorage::new(RedisOptions::new(&url).encryption_key(key("k1", 2)), URL)
            .unwrap()
            .load_tokens()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("fails to decrypt"), "{e}");

        // Rotation: k2 writes, k1 still reads what it wrote.
        let rotated = RedisStorage::new(
            RedisOptions::new(&url)
                .encryption_key(key("k2", 2))
                .encryption_key(key("k1", 1)),
            URL,
        )
        .unwrap();
        assert_eq!(rotated.get_tokens().await.unwrap().unwrap(), t);
        rotated.set_tokens(t.clone()).await.unwrap();
        assert!(redis.cli(&["hget", &s.tokens_key, "d"]).starts_with("aes256gcm:k2:"));
        // A store without k2 refuses what k2 wrote, naming the key id.
        let e = s.load_tokens().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(
            e.to_string().contains("\"k2\"") && e.to_string().contains(&s.tokens_key),
            "{e}"
        );

        // A value copied under another server's key is refused there.
        let other = rotated.for_server("http://127.0.0.1:8001/mcp");
        let raw = redis.cli(&["hget", &s.tokens_key, "d"]);
        redis.cli(&["hset", &other.tokens_key, "v", "7", "d", raw.trim_end_matches('\n')]);
        let e = other.load_tokens().await.unwrap_err();
        assert!(e.to_string().contains("copied from another key"), "{e}");
    }

    #[tokio::test]
    async fn a_tampered_value_is_refused_and_left_as_it_is() {
        let redis = RedisServer::single();
        let s = store(RedisOptions::new(&redis.url()));
        s.set_tokens(counter_token(1)).await.unwrap();
        let raw = redis.cli(&["hget", &s.tokens_key, "d"]);
        let raw = raw.trim_end_matches('\n');
        // Flip one character of the ciphertext.
        let mut bytes = raw.as_bytes().to_vec();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        redis.cli(&["hset", &s.tokens_key, "d", &tampered]);
        for e in [s.load_tokens().await.unwrap_err(), s.get_tokens().await.unwrap_err()] {
            assert_eq!(e.kind(), ErrorKind::Storage);
            let msg = e.to_string();
            assert!(msg.contains("not used") && msg.contains(&s.tokens_key), "{msg}");
            assert!(msg.contains(&redis.url()), "names the store: {msg}");
        }
        assert_eq!(
            redis.cli(&["hget", &s.tokens_key, "d"]).trim_end_matches('\n'),
            tampered
        );
        // A plain value where encryption is expected is refused too.
        redis.cli(&["set", &s.client_key, r#"plain:{"client_id":"planted"}"#]);
        let e = s.get_client_info().await.unwrap_err();
        assert!(e.to_string().contains("downgrade"), "{e}");
    }

    #[test]
    fn no_key_refuses_to_start_unless_the_host_opts_out() {
        let e = RedisStorage::new(RedisOptions::new("redis://127.0.0.1:1"), URL).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
        assert!(e.to_string().contains("allow_unencrypted_values"), "{e}");
        RedisStorage::new(
            RedisOptions::new("redis://127.0.0.1:1").allow_unencrypted_values(true),
            URL,
        )
        .unwrap();
        for bad in ["http://127.0.0.1:6379", "not a url", ""] {
            let e = RedisStorage::new(RedisOptions::new(bad).allow_unencrypted_values(true), URL).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{bad}");
        }
        let e = RedisStorage::new(
            RedisOptions::new("redis://u:pw-in-url@[::1").allow_unencrypted_values(true),
            URL,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("pw-in-url"), "{e}");
        assert!(EncryptionKey::new("k", &[0; 16]).is_err());
        assert!(EncryptionKey::new("k:1", &[0; 32]).is_err());
        assert!(EncryptionKey::from_base64("k", &B64.encode([7u8; 32])).is_ok());
        let e = RedisStorage::new(
            RedisOptions::new("redis://h")
                .encryption_key(key("a", 1))
                .encryption_key(key("a", 2)),
            URL,
        )
        .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(
            RedisStorage::new(
                RedisOptions::new("redis://h")
                    .key_prefix("a{b")
                    .allow_unencrypted_values(true),
                URL
            )
            .is_err()
        );
        let shown = format!("{:?}", key("visible-id", 9));
        assert!(shown.contains("visible-id") && !shown.contains("9, 9"), "{shown}");
        let parsed = RedisOptions::parse("redis://a:1, redis://b:2 redis://c:3");
        assert!(parsed.cluster && parsed.urls.len() == 3);
        assert!(!RedisOptions::parse("rediss://a:1").cluster);
    }

    #[tokio::test]
    async fn unencrypted_values_when_allowed_and_not_mixed() {
        let redis = RedisServer::single();
        let plain = RedisStorage::new(RedisOptions::new(&redis.url()).allow_unencrypted_values(true), URL).unwrap();
        plain.set_tokens(counter_token(3)).await.unwrap();
        assert!(redis.cli(&["hget", &plain.tokens_key, "d"]).starts_with("plain:{"));
        assert_eq!(count_of(&plain.load_tokens().await.unwrap()), 3);
        store(RedisOptions::new(&redis.url()))
            .set_tokens(counter_token(4))
            .await
            .unwrap();
        let e = plain.load_tokens().await.unwrap_err();
        assert!(e.to_string().contains("\"k1\""), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lease_excludes_wakes_the_waiter_and_expires_when_its_holder_is_gone() {
        let redis = RedisServer::single();
        let a = store(RedisOptions::new(&redis.url()));
        let b = store(RedisOptions::new(&redis.url()));
        let held = a
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(held.is_guarded());
        let fence1: u64 = redis
            .cli(&["get", &a.lease_key])
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let e = b
            .acquire_lease(Duration::from_secs(60), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains(&format!("fencing token {fence1}")), "{e}");
        assert!(e.to_string().contains("100ms"), "{e}");
        // Dropping releases it and the waiter gets it, with a larger fencing token.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.acquire_lease(Duration::from_millis(500), Duration::from_secs(30))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let second = waiter.await.unwrap().unwrap();
        let fence2: u64 = redis
            .cli(&["get", &a.lease_key])
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(fence2 > fence1);
        // A holder that vanishes (never releases) loses the lease at its
        // expiry, and the next one proceeds.
        std::mem::forget(second);
        let third = a
            .acquire_lease(Duration::from_millis(400), Duration::from_secs(30))
            .await
            .unwrap();
        let third_value = redis.cli(&["get", &a.lease_key]);
        // A holder whose lease expired releases nothing of the next holder's.
        wait_for(|| redis.cli(&["exists", &a.lease_key]).trim() == "0").await;
        let fourth = b
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(30))
            .await
            .unwrap();
        let fourth_value = redis.cli(&["get", &a.lease_key]);
        assert_ne!(third_value, fourth_value);
        drop(third);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(redis.cli(&["get", &a.lease_key]), fourth_value);
        drop(fourth);
        wait_for(|| redis.cli(&["exists", &a.lease_key]).trim() == "0").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_lives_while_its_holder_renews_it_and_one_heartbeat_after_it_dies() {
        let redis = RedisServer::single();
        let opts = RedisOptions::new(&redis.url()).lease_heartbeat(Duration::from_millis(300));
        let b = store(opts.clone());
        let dying = store(opts);
        let key = dying.lease_key.clone();
        let port = redis.port;
        // The holder runs on a runtime of its own, which then stops as a
        // killed process does: no release, no more renewals.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let lease = rt
                .block_on(dying.acquire_lease(Duration::from_secs(60), Duration::from_secs(5)))
                .unwrap();
            std::mem::forget(lease);
            // Several heartbeats later the lease is still there: renewed.
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(1200)).await });
            let pttl: i64 = redis_servers::cli(port, &["pttl", &key]).trim().parse().unwrap();
            assert!(pttl > 0 && pttl <= 300, "renewed one heartbeat ahead: {pttl}");
            rt.shutdown_background();
        })
        .join()
        .unwrap();
        // Dead holder: the next one gets it about a heartbeat later, long
        // before the 60 s the lease was taken for.
        let started = Instant::now();
        let next = b
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(next);
    }

    async fn wait_for(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "gave up waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
