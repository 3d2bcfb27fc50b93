//! Token storage: the four-method contract of the MCP SDKs, plus an optional
//! exclusive section so a refresh done by one process is seen by the others
//! instead of being repeated (rotating refresh tokens are single-use).
//!
//! Built-ins: [`MemoryStorage`] and [`FileStorage`] (one JSON file per MCP
//! server holding its tokens and a registration per authorization server,
//! replaced atomically, mode 0600, guarded by an advisory lock).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{OAuthClientInformationFull, OAuthToken};

/// An opaque version of the stored tokens. `Version::ABSENT` when none are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);
impl Version {
    /// Nothing stored.
    pub const ABSENT: Version = Version(0);
}

/// A value with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value, if any.
    pub value: Option<T>,
    /// Its version.
    pub version: Version,
}

/// The outcome of a compare-and-set write.
#[derive(Debug)]
pub enum CasOutcome {
    /// Written; the new version.
    Stored(Version),
    /// Someone wrote meanwhile: what is stored now.
    Conflict(Versioned<OAuthToken>),
}

/// "This process is refreshing": held until dropped.
pub struct Lease {
    expires_at: std::time::SystemTime,
    guard: Option<Box<dyn Send + Sync>>,
}

impl Lease {
    /// A lease held through `guard`.
    pub fn new(ttl: std::time::Duration, guard: Box<dyn Send + Sync>) -> Lease {
        Lease {
            expires_at: std::time::SystemTime::now() + ttl,
            guard: Some(guard),
        }
    }
    /// A lease that excludes nobody.
    pub fn unguarded(ttl: std::time::Duration) -> Lease {
        Lease {
            expires_at: std::time::SystemTime::now() + ttl,
            guard: None,
        }
    }
    /// When it expires.
    pub fn expires_at(&self) -> std::time::SystemTime {
        self.expires_at
    }
    /// Whether it excludes anyone.
    pub fn is_guarded(&self) -> bool {
        self.guard.is_some()
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("guarded", &self.is_guarded()).finish()
    }
}

/// A version computed from the token's content (never ABSENT).
pub fn fingerprint(tokens: &OAuthToken) -> Version {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(tokens.access_token.expose().as_bytes());
    h.update([0u8]);
    if let Some(r) = &tokens.refresh_token {
        h.update(r.expose().as_bytes());
    }
    let d = h.finalize();
    let v = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    Version(v.max(1))
}

/// Where tokens and client information live between runs.
#[async_trait]
pub trait TokenStorage: Send + Sync {
    /// The stored tokens, if any.
    async fn get_tokens(&self) -> Result<Option<OAuthToken>>;
    /// Store tokens (replacing any).
    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()>;
    /// The stored client information, if any.
    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>>;
    /// Store client information (replacing any).
    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()>;
    /// The stored client information for the authorization server `issuer`.
    /// Stores that keep one registration per authorization server (like
    /// [`FileStorage`]) answer from it, so a resource that moves between
    /// servers does not register again each time; the default returns the one
    /// stored registration, whose issuer binding the provider checks.
    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        let _ = issuer;
        self.get_client_info().await
    }
    /// Enter the exclusive section for changing tokens, shared by every
    /// process using this store. The provider re-reads the tokens inside it
    /// before refreshing. The default (no cross-process lock) suits stores
    /// that one process owns.
    /// Forget the registration made with `issuer`.
    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        let _ = issuer;
        Ok(false)
    }
    /// The tokens with their version.
    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        let value = self.get_tokens().await?;
        let version = value.as_ref().map(fingerprint).unwrap_or(Version::ABSENT);
        Ok(Versioned { value, version })
    }
    /// Compare-and-set.
    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        let now = self.load_tokens().await?;
        if now.version != expected {
            return Ok(CasOutcome::Conflict(now));
        }
        match tokens {
            Some(t) => {
                let v = fingerprint(&t);
                self.set_tokens(t).await?;
                Ok(CasOutcome::Stored(v))
            }
            None => Ok(CasOutcome::Stored(expected)),
        }
    }
    /// The refresh lease.
    async fn acquire_lease(&self, ttl: std::time::Duration, wait: std::time::Duration) -> Result<Lease> {
        let _ = wait;
        Ok(Lease::unguarded(ttl))
    }
}

/// Tokens and client information in memory, forgotten when dropped.
#[derive(Default)]
pub struct MemoryStorage {
    tokens: Mutex<Option<OAuthToken>>,
    client: Mutex<Option<OAuthClientInformationFull>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::storage("the in-memory store's lock was poisoned by a panic")
}

#[async_trait]
impl TokenStorage for MemoryStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        Ok(self.tokens.lock().map_err(poisoned)?.clone())
    }
    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        *self.tokens.lock().map_err(poisoned)? = Some(tokens);
        Ok(())
    }
    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        Ok(self.client.lock().map_err(poisoned)?.clone())
    }
    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        *self.client.lock().map_err(poisoned)? = Some(info);
        Ok(())
    }
}

#[derive(Default, Serialize, Deserialize)]
struct FileContents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<OAuthToken>,
    /// The registration in use (what `get_client_info` answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_info: Option<OAuthClientInformationFull>,
    /// Every registration, by the issuer that made it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    clients: std::collections::BTreeMap<String, OAuthClientInformationFull>,
}

/// A JSON file per MCP server in a directory the host chooses.
///
/// Every write replaces the file atomically (write to a temporary file with
/// mode 0600, fsync, rename), under an advisory lock on a sibling `.lock`
/// file, so concurrent processes never see a torn file and never lose each
/// other's changes. [`TokenStorage::lock`] takes the same lock for a whole
/// refresh.
pub struct FileStorage {
    path: PathBuf,
    lock_path: PathBuf,
    server_url: String,
}

impl FileStorage {
    /// The store for `server_url` in `dir` (created with mode 0700 if missing).
    pub fn new(dir: impl AsRef<Path>, server_url: &str) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(format!("cannot create the token directory: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let name = file_name_for(server_url);
        Ok(FileStorage {
            path: dir.join(format!("{name}.json")),
            lock_path: dir.join(format!("{name}.lock")),
            server_url: server_url.to_string(),
        })
    }

    /// The default directory: `$XDG_STATE_HOME/mcp-oauth-client`, else
    /// `~/.local/state/mcp-oauth-client`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return Some(PathBuf::from(x).join("mcp-oauth-client"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/mcp-oauth-client"))
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<FileContents> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::storage(format!(
                    "the token file {} is not valid (JSON error at line {} column {}); fix or remove it",
                    self.path.display(),
                    e.line(),
                    e.column()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileContents::default()),
            Err(e) => Err(Error::storage(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    fn write(&self, contents: &FileContents) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir)?;
        let json =
            serde_json::to_vec_pretty(contents).map_err(|e| Error::storage(format!("cannot encode tokens: {e}")))?;
        use std::io::Write;
        tmp.1
            .write_all(&json)
            .and_then(|_| tmp.1.sync_all())
            .map_err(|e| Error::storage(format!("cannot write {}: {e}", tmp.0.display())))?;
        std::fs::rename(&tmp.0, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp.0);
            Error::storage(format!("cannot replace {}: {e}", self.path.display()))
        })?;
        Ok(())
    }

    fn open_lock(&self) -> Result<std::fs::File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).truncate(false).read(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(&self.lock_path)
            .map_err(|e| Error::storage(format!("cannot open the lock file {}: {e}", self.lock_path.display())))
    }

    async fn with_lock<T: Send + 'static>(
        self: &FileStorage,
        f: impl FnOnce(&FileStorage) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = FileStorage {
            path: self.path.clone(),
            lock_path: self.lock_path.clone(),
            server_url: self.server_url.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let file = me.open_lock()?;
            fs4::fs_std::FileExt::lock_exclusive(&file)
                .map_err(|e| Error::storage(format!("cannot lock the token file: {e}")))?;
            let out = f(&me);
            let _ = fs4::fs_std::FileExt::unlock(&file);
            out
        })
        .await
        .map_err(|e| Error::storage(format!("the storage task failed: {e}")))?
    }
}

struct HeldFileLock(std::fs::File);

impl Drop for HeldFileLock {
    fn drop(&mut self) {
        let _ = fs4::fs_std::FileExt::unlock(&self.0);
    }
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    let mut rnd = [0u8; 8];
    let _ = getrandom::fill(&mut rnd);
    let name = format!(".tmp-{}", rnd.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let path = dir.join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(&path)
        .map_err(|e| Error::storage(format!("cannot create a temporary file in {}: {e}", dir.display())))?;
    Ok((path, f))
}

/// A readable, collision-free file name for a server URL.
fn file_name_for(server_url: &str) -> String {
    use sha2::Digest;
    let readable: String = server_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let hash = sha2::Sha256::digest(server_url.as_bytes());
    let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{readable}-{short}")
}

#[async_trait]
impl TokenStorage for FileStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        self.with_lock(|s| Ok(s.read()?.tokens)).await
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        self.with_lock(move |s| {
            let mut c = s.read()?;
            c.server_url = Some(s.server_url.clone());
            c.tokens = Some(tokens);
            s.write(&c)
        })
        .await
    }

    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        self.with_lock(|s| Ok(s.read()?.client_info)).await
    }

    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        let issuer = issuer.to_string();
        self.with_lock(move |s| {
            let c = s.read()?;
            let by_issuer = c
                .clients
                .iter()
                .find(|(i, _)| crate::discovery::same_issuer(i, &issuer))
                .map(|(_, info)| info.clone());
            Ok(by_issuer.or(c.client_info))
        })
        .await
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        self.with_lock(move |s| {
            let mut c = s.read()?;
            c.server_url = Some(s.server_url.clone());
            if let Some(issuer) = &info.issuer {
                c.clients.insert(issuer.clone(), info.clone());
            }
            c.client_info = Some(info);
            s.write(&c)
        })
        .await
    }

    async fn acquire_lease(&self, ttl: std::time::Duration, _wait: std::time::Duration) -> Result<Lease> {
        // The section lock is a second file so reads and writes inside the
        // section (which take the file lock) do not deadlock on it.
        let section = self.lock_path.with_extension("refresh.lock");
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            let mut opts = std::fs::OpenOptions::new();
            opts.create(true).truncate(false).read(true).write(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let f = opts
                .open(&section)
                .map_err(|e| Error::storage(format!("cannot open the lock file {}: {e}", section.display())))?;
            fs4::fs_std::FileExt::lock_exclusive(&f).map_err(|e| Error::storage(format!("cannot lock: {e}")))?;
            Ok(f)
        })
        .await
        .map_err(|e| Error::storage(format!("the storage task failed: {e}")))??;
        Ok(Lease::new(ttl, Box::new(HeldFileLock(file))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    #[tokio::test]
    async fn file_store_roundtrip_mode_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), "http://127.0.0.1:8000/mcp").unwrap();
        assert!(s.get_tokens().await.unwrap().is_none());
        let mut t = OAuthToken::bearer("at");
        t.refresh_token = Some(Secret::new("rt"));
        s.set_tokens(t.clone()).await.unwrap();
        s.set_client_info(OAuthClientInformationFull::new("cid", None))
            .await
            .unwrap();
        assert_eq!(s.get_tokens().await.unwrap().unwrap(), t);
        assert_eq!(s.get_client_info().await.unwrap().unwrap().client_id, "cid");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A second store for the same server sees the same data.
        let s2 = FileStorage::new(dir.path(), "http://127.0.0.1:8000/mcp").unwrap();
        assert_eq!(s2.get_tokens().await.unwrap().unwrap(), t);
        // A store for another server does not.
        let other = FileStorage::new(dir.path(), "http://127.0.0.1:8001/mcp").unwrap();
        assert!(other.get_tokens().await.unwrap().is_none());
        // A corrupt file is a clear error, and is not overwritten by reads.
        std::fs::write(s.path(), b"{not json").unwrap();
        let e = s.get_tokens().await.unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");
        assert!(
            s.set_tokens(t.clone()).await.is_err(),
            "a write must not clobber a file it cannot read"
        );
        assert_eq!(std::fs::read(s.path()).unwrap(), b"{not json");
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn section_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(FileStorage::new(dir.path(), "http://x/mcp").unwrap());
        let g = a
            .acquire_lease(std::time::Duration::from_secs(60), std::time::Duration::from_secs(60))
            .await
            .unwrap();
        let b = FileStorage::new(dir.path(), "http://x/mcp").unwrap();
        let waiter = tokio::spawn(async move {
            let _g = b
                .acquire_lease(std::time::Duration::from_secs(60), std::time::Duration::from_secs(60))
                .await
                .unwrap();
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "a second holder must wait");
        drop(g);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
