//! [`FileStorage`]: one JSON file per MCP server, shared safely by every
//! process that uses it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CasOutcome, Lease, Registrations, TokenStorage, Version, Versioned};
use crate::error::{Error, Result};
use crate::model::{OAuthClientInformationFull, OAuthToken};

/// How long a read or write waits for another one to finish, by default.
/// Those hold the lock for milliseconds, so running out means a process is
/// stuck holding it.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between two attempts to take a lock: short enough that a
/// released lock is noticed quickly, long enough not to spin.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(50);

/// A JSON file per MCP server in a directory the host chooses, shared
/// safely by every process that uses it.
///
/// Three files per server:
///
/// - `<name>.json`, the data: tokens with a `version` counter bumped by every
///   token write, the registration in use and one per authorization server.
///   The schema of tokens and registrations is the MCP Python SDK's. Every
///   write replaces the file atomically (a temporary file with mode 0600,
///   fsync, rename, fsync of the directory), so no reader ever sees a torn
///   file and a crash leaves the old file or the new one.
/// - `<name>.lock`, locked exclusively (an advisory lock every process using
///   this crate honours) around each read-modify-write of the data, which
///   makes [`TokenStorage::compare_and_set_tokens`] atomic across processes.
///   It is held for milliseconds; waiting for it gives up after a timeout
///   ([`FileStorage::with_lock_timeout`]).
/// - `<name>.lease`, the refresh lease ([`TokenStorage::acquire_lease`]):
///   locked for a whole refresh, so it is a file of its own, and the loads and
///   writes made under it do not wait for it. Its holder writes its pid and
///   expiry into it so a process that gives up waiting can say who held it.
///   The operating system releases both locks when their holder exits, so a
///   crashed process never leaves the store locked.
///
/// A data file that cannot be parsed is reported as a storage error naming it
/// and left as it is: writes refuse until it is fixed or removed, since it may
/// hold the only copy of a refresh token.
#[derive(Clone)]
pub struct FileStorage {
    path: PathBuf,
    lock_path: PathBuf,
    lease_path: PathBuf,
    server_url: String,
    lock_timeout: Duration,
}

/// The data file. Unknown top-level keys (written by a newer version) are kept.
#[derive(Default, Serialize, Deserialize)]
struct FileContents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_url: Option<String>,
    /// Bumped by every token write, removals included, so a version is never
    /// reused. Files written before versions have none: their tokens are at
    /// version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<OAuthToken>,
    #[serde(flatten)]
    registrations: Registrations,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl FileContents {
    fn token_version(&self) -> Version {
        match self.tokens {
            Some(_) => Version(self.version.filter(|v| *v != 0).unwrap_or(1)),
            None => Version::ABSENT,
        }
    }

    fn versioned(&self) -> Versioned<OAuthToken> {
        Versioned {
            value: self.tokens.clone(),
            version: self.token_version(),
        }
    }

    /// Replace the tokens, one version up. `None` when the version cannot
    /// go up (a file edited to the largest version): nothing is changed, since
    /// a version that wrapped around would be reused.
    fn write_tokens(&mut self, tokens: Option<OAuthToken>) -> Option<Version> {
        let last = self.version.unwrap_or(0).max(self.token_version().0);
        self.version = Some(last.checked_add(1)?);
        self.tokens = tokens;
        Some(self.token_version())
    }
}

/// Decode a data file.
fn decode_contents(bytes: &[u8]) -> serde_json::Result<FileContents> {
    serde_json::from_slice(bytes)
}

/// Fuzzing: decode a data file as a read does, use what it holds as the
/// store does, and check that the file a write makes from it reads back with
/// the same tokens and a newer version (a write never loses what it read).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_stored_file(bytes: &[u8]) -> bool {
    let Ok(mut contents) = decode_contents(bytes) else {
        return false;
    };
    let before = contents.versioned();
    for issuer in [
        "https://as.example.com",
        "https://as.example.com/",
        "https://other.example",
    ] {
        let _ = contents.registrations.for_issuer(issuer);
    }
    if let Some(token) = &before.value {
        let _ = (
            token.needs_refresh(),
            token.is_expired(),
            token.scopes(),
            token.header_value(),
        );
    }
    let info = contents.registrations.client_info.clone();
    let _ = contents.registrations.remove("https://as.example.com");
    if let Some(info) = info {
        contents.registrations.set(info);
    }
    let Some(written) = contents.write_tokens(before.value.clone()) else {
        assert_eq!(
            contents.version,
            Some(u64::MAX),
            "only the largest version cannot go up"
        );
        return true;
    };
    assert!(
        before.value.is_none() || written.0 > before.version.0,
        "a write must move the version forward"
    );
    contents.server_url = Some("https://mcp.example.com/mcp".into());
    let json = serde_json::to_vec_pretty(&contents).expect("a decoded file encodes again");
    let again = decode_contents(&json).expect("the file a write makes reads back");
    let after = again.versioned();
    assert_eq!(after.version, written, "the version written is the one read back");
    assert!(after.value == before.value, "the tokens written are the ones read back");
    true
}

impl FileStorage {
    /// The store for `server_url` in `dir`. A missing `dir` is created with
    /// mode 0700 (its missing parents too); an existing one is used as it is,
    /// since its mode is the host's choice (it may be `$HOME`).
    pub fn new(dir: impl AsRef<Path>, server_url: &str) -> Result<Self> {
        let dir = dir.as_ref();
        create_private_dir(dir)
            .map_err(|e| Error::storage(format!("cannot create the token directory {}: {e}", dir.display())))?;
        let name = file_name_for(server_url);
        Ok(FileStorage {
            path: dir.join(format!("{name}.json")),
            lock_path: dir.join(format!("{name}.lock")),
            lease_path: dir.join(format!("{name}.lease")),
            server_url: server_url.to_string(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// How long a read or write waits for one in another process (or another
    /// store for the same server) before failing with a storage error; 10
    /// seconds by default. The refresh lease has its own wait, given to
    /// [`TokenStorage::acquire_lease`].
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The default directory: `$XDG_STATE_HOME/mcp-oauth-client`, else
    /// `~/.local/state/mcp-oauth-client`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return Some(PathBuf::from(x).join("mcp-oauth-client"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/mcp-oauth-client"))
    }

    /// The MCP server URLs that have a store in `dir`, sorted (none when
    /// `dir` does not exist). A data file that cannot be read or parsed is
    /// left out; opening its server's store reports it.
    pub fn stored_servers(dir: impl AsRef<Path>) -> Result<Vec<String>> {
        let dir = dir.as_ref();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage(format!("cannot list {}: {e}", dir.display()))),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let Ok(contents) = serde_json::from_slice::<FileContents>(&bytes) else {
                continue;
            };
            // Only a file this store would have written for that server.
            if let Some(url) = contents.server_url {
                if path.file_stem().and_then(|s| s.to_str()) == Some(file_name_for(&url).as_str()) {
                    out.push(url);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file whose lock is the refresh lease.
    pub fn lease_path(&self) -> &Path {
        &self.lease_path
    }

    fn read(&self) -> Result<FileContents> {
        match std::fs::read(&self.path) {
            Ok(bytes) => decode_contents(&bytes).map_err(|e| {
                // Only the position: the message of a JSON error may quote the file.
                Error::storage(format!(
                    "the token file {} is not valid (JSON error at line {} column {}); it is left as it is: fix or remove it",
                    self.path.display(),
                    e.line(),
                    e.column()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileContents::default()),
            Err(e) => Err(Error::storage(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    /// The error of a write to a file whose version cannot go up.
    fn version_exhausted(&self) -> Error {
        Error::storage(format!(
            "the token file {} has the largest version there is, so a write cannot give a new one; it is left as it is: fix or remove it",
            self.path.display()
        ))
    }

    /// Replace the data file. Callers read it first, so a file that cannot be
    /// parsed is never overwritten: its tokens may still be recoverable.
    fn write(&self, contents: &mut FileContents) -> Result<()> {
        contents.server_url = Some(self.server_url.clone());
        let json =
            serde_json::to_vec_pretty(contents).map_err(|e| Error::storage(format!("cannot encode tokens: {e}")))?;
        replace_file(&self.path, &json)
    }

    /// Run `f` under the data lock, on a blocking thread. Once started it runs
    /// to the end even if the caller stops waiting, so a write is whole or absent.
    async fn with_lock<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileStorage) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let file = open_private(&me.lock_path)?;
            if !lock_within(&file, me.lock_timeout)
                .map_err(|e| Error::storage(format!("cannot lock {}: {e}", me.lock_path.display())))?
            {
                return Err(Error::storage(format!(
                    "the token file {} stayed locked (by {}) for {:?}: another process using it seems stuck; \
                     FileStorage::with_lock_timeout sets how long to wait",
                    me.path.display(),
                    me.lock_path.display(),
                    me.lock_timeout
                )));
            }
            let out = f(&me);
            let _ = fs4::fs_std::FileExt::unlock(&file);
            out
        })
        .await
        .map_err(|e| Error::storage(format!("the storage task failed: {e}")))?
    }

    /// The error when the lease could not be had within `wait`, with what its
    /// holder recorded.
    fn lease_busy(&self, wait: Duration) -> Error {
        let holder = std::fs::read(&self.lease_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LeaseRecord>(&bytes).ok());
        let who = match holder {
            Some(LeaseRecord { pid, expires_at }) => {
                let now = unix_seconds(SystemTime::now());
                let when = if expires_at >= now {
                    format!("in {} s", expires_at - now)
                } else {
                    format!("{} s ago, so it seems stuck", now - expires_at)
                };
                format!("process {pid}, whose lease expires at {expires_at} (Unix time; {when})")
            }
            None => "another process (which has not recorded itself yet)".to_string(),
        };
        Error::storage(format!(
            "the refresh lease {} is held by {who}; gave up after waiting {wait:?}",
            self.lease_path.display()
        ))
    }
}

/// What a lease holder writes into the lease file, for diagnostics only: the
/// lock is what excludes.
#[derive(Serialize, Deserialize)]
struct LeaseRecord {
    pid: u32,
    /// Seconds since the Unix epoch.
    expires_at: u64,
}

/// The lease file, locked; released when dropped (the Lease owns it).
struct HeldLease(File);

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Forget the record first, so a waiter never names a holder that left.
        let _ = self.0.set_len(0);
        let _ = fs4::fs_std::FileExt::unlock(&self.0);
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Try to lock `file` exclusively, then again after pauses, until `timeout`.
/// Polled because a blocking lock cannot be given a timeout.
fn lock_within(file: &File, timeout: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if fs4::fs_std::FileExt::try_lock_exclusive(file)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_POLL_PAUSE);
    }
}

/// Create `dir` (and missing parents) with mode 0700. An existing directory is
/// left alone: `DirBuilder` applies the mode only to what it creates.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Open (creating if needed, mode 0600) a file used for its lock.
fn open_private(path: &Path) -> Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map_err(|e| Error::storage(format!("cannot open the lock file {}: {e}", path.display())))
}

/// A temporary file that removes itself unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn create_in(dir: &Path) -> Result<TempFile> {
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
        let file = opts
            .open(&path)
            .map_err(|e| Error::storage(format!("cannot create a temporary file in {}: {e}", dir.display())))?;
        Ok(TempFile {
            path,
            file,
            renamed: false,
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replace `target` with `bytes` atomically and durably: a crash leaves the
/// old file or the new one, and on any failure no temporary file stays behind.
fn replace_file(target: &Path, bytes: &[u8]) -> Result<()> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = TempFile::create_in(dir)?;
    tmp.file
        .write_all(bytes)
        .and_then(|_| tmp.file.sync_all())
        .map_err(|e| Error::storage(format!("cannot write a temporary file in {}: {e}", dir.display())))?;
    std::fs::rename(&tmp.path, target)
        .map_err(|e| Error::storage(format!("cannot replace {}: {e}", target.display())))?;
    tmp.renamed = true;
    // The rename is durable only once the directory is. If that fails the new
    // file is already what every process reads, so reporting the write as
    // failed would mislead; warn instead.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!("cannot sync the directory {}: {e}", dir.display());
    }
    Ok(())
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
            c.write_tokens(Some(tokens)).ok_or_else(|| s.version_exhausted())?;
            s.write(&mut c)
        })
        .await
    }

    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        self.with_lock(|s| Ok(s.read()?.registrations.client_info)).await
    }

    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        let issuer = issuer.to_string();
        self.with_lock(move |s| Ok(s.read()?.registrations.for_issuer(&issuer)))
            .await
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        self.with_lock(move |s| {
            let mut c = s.read()?;
            c.registrations.set(info);
            s.write(&mut c)
        })
        .await
    }

    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        let issuer = issuer.to_string();
        self.with_lock(move |s| {
            let mut c = s.read()?;
            if c.registrations.remove(&issuer) {
                s.write(&mut c)?;
            }
            Ok(true)
        })
        .await
    }

    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        self.with_lock(|s| Ok(s.read()?.versioned())).await
    }

    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        self.with_lock(move |s| {
            let mut c = s.read()?;
            if c.token_version() != expected {
                return Ok(CasOutcome::Conflict(c.versioned()));
            }
            if tokens.is_none() && c.tokens.is_none() {
                // Nothing to remove: do not create a file for it.
                return Ok(CasOutcome::Stored(Version::ABSENT));
            }
            let version = c.write_tokens(tokens).ok_or_else(|| s.version_exhausted())?;
            s.write(&mut c)?;
            Ok(CasOutcome::Stored(version))
        })
        .await
    }

    async fn acquire_lease(&self, ttl: Duration, wait: Duration) -> Result<Lease> {
        let path = self.lease_path.clone();
        let file = tokio::task::spawn_blocking(move || open_private(&path))
            .await
            .map_err(|e| Error::storage(format!("the storage task failed: {e}")))??;
        // Polled here rather than on a blocking thread, so a caller that stops
        // waiting stops the polling too (dropping the file).
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            let locked = fs4::fs_std::FileExt::try_lock_exclusive(&file)
                .map_err(|e| Error::storage(format!("cannot lock {}: {e}", self.lease_path.display())))?;
            if locked {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.lease_busy(wait));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
        let held = HeldLease(file);
        let expires_at = super::deadline(ttl);
        let record = LeaseRecord {
            pid: std::process::id(),
            expires_at: unix_seconds(expires_at),
        };
        // Diagnostics only: a failure to record does not cost the lease.
        let held = tokio::task::spawn_blocking(move || {
            let json = serde_json::to_vec(&record).unwrap_or_default();
            let _ = held.0.set_len(0).and_then(|_| (&held.0).write_all(&json));
            held
        })
        .await
        .map_err(|e| Error::storage(format!("the storage task failed: {e}")))?;
        // Built here rather than by Lease::new so the recorded expiry is the lease's own.
        Ok(Lease {
            expires_at,
            guard: Some(Box::new(held)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::model::Secret;
    use crate::storage::test_support::{
        check_compare_and_set, check_registrations_per_issuer, count_of, counter_token, increment_optimistically,
        increment_under_lease, stored,
    };
    use std::sync::Arc;

    const URL: &str = "http://127.0.0.1:8000/mcp";

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    }

    #[tokio::test]
    async fn roundtrip_between_stores_of_one_server_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        assert!(s.get_tokens().await.unwrap().is_none());
        let mut t = OAuthToken::bearer("at");
        t.refresh_token = Some(Secret::new("rt"));
        t.issuer = Some("https://as.example".into());
        t.resource = Some(URL.into());
        s.set_tokens(t.clone()).await.unwrap();
        s.set_client_info(OAuthClientInformationFull::new("cid", None))
            .await
            .unwrap();
        assert_eq!(s.get_tokens().await.unwrap().unwrap(), t);
        assert_eq!(s.get_client_info().await.unwrap().unwrap().client_id, "cid");
        // A second store for the same server sees the same data, issuer and
        // resource of the tokens included.
        let s2 = FileStorage::new(dir.path(), URL).unwrap();
        let back = s2.get_tokens().await.unwrap().unwrap();
        assert_eq!(back.issuer.as_deref(), Some("https://as.example"));
        assert_eq!(back.resource.as_deref(), Some(URL));
        // A store for another server does not.
        let other = FileStorage::new(dir.path(), "http://127.0.0.1:8001/mcp").unwrap();
        assert!(other.get_tokens().await.unwrap().is_none());
        assert!(temp_files(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_created_directory_is_private_and_an_existing_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();

        let created = root.path().join("state/mcp-oauth-client");
        let s = FileStorage::new(&created, URL).unwrap();
        s.set_tokens(OAuthToken::bearer("at")).await.unwrap();
        assert_eq!(mode(&created), 0o700);
        assert_eq!(mode(s.path()), 0o600);

        let existing = root.path().join("home");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = FileStorage::new(&existing, URL).unwrap();
        s.set_tokens(OAuthToken::bearer("at")).await.unwrap();
        let _lease = s
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(mode(&existing), 0o755);
        assert_eq!(mode(s.path()), 0o600);
        assert_eq!(mode(s.lease_path()), 0o600);
    }

    #[tokio::test]
    async fn compare_and_set_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        // Removing nothing creates no file.
        assert_eq!(
            stored(s.compare_and_set_tokens(Version::ABSENT, None).await.unwrap()),
            Version::ABSENT
        );
        assert!(!s.path().exists());
        // Two handles on one file, as two processes have.
        check_compare_and_set(&s, &FileStorage::new(dir.path(), URL).unwrap()).await;
        // A stale write leaves the file's bytes as they were.
        let before = std::fs::read(s.path()).unwrap();
        let now = s.load_tokens().await.unwrap().version;
        s.set_tokens(counter_token(5)).await.unwrap();
        let after_write = std::fs::read(s.path()).unwrap();
        assert!(matches!(
            s.compare_and_set_tokens(now, Some(counter_token(6))).await.unwrap(),
            CasOutcome::Conflict(_)
        ));
        assert_ne!(before, after_write);
        assert_eq!(std::fs::read(s.path()).unwrap(), after_write);
    }

    #[tokio::test]
    async fn a_file_written_before_versions_reads_as_version_one_and_keeps_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        std::fs::write(
            s.path(),
            br#"{"server_url":"http://127.0.0.1:8000/mcp","tokens":{"access_token":"old","token_type":"Bearer"},
                "client_info":{"client_id":"cid","redirect_uris":["http://127.0.0.1/cb"]},"future_key":[1,2]}"#,
        )
        .unwrap();
        let loaded = s.load_tokens().await.unwrap();
        assert_eq!(loaded.version, Version(1));
        assert_eq!(loaded.value.unwrap().access_token.expose(), "old");
        let v = stored(
            s.compare_and_set_tokens(Version(1), Some(counter_token(1)))
                .await
                .unwrap(),
        );
        assert_ne!(v, Version(1));
        let json: Value = serde_json::from_slice(&std::fs::read(s.path()).unwrap()).unwrap();
        assert_eq!(json["future_key"], serde_json::json!([1, 2]));
        assert_eq!(json["client_info"]["client_id"], "cid");

        // A file with a registration and no tokens holds no token version.
        let bare = FileStorage::new(dir.path(), "http://127.0.0.1:8002/mcp").unwrap();
        std::fs::write(bare.path(), br#"{"client_info":{"client_id":"cid"}}"#).unwrap();
        assert_eq!(bare.load_tokens().await.unwrap().version, Version::ABSENT);
    }

    #[tokio::test]
    async fn registrations_per_issuer_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        check_registrations_per_issuer(&s, &FileStorage::new(dir.path(), URL).unwrap()).await;
    }

    #[tokio::test]
    async fn a_corrupt_file_is_reported_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        std::fs::write(s.path(), b"{not json").unwrap();
        let e = s.get_tokens().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains(&s.path().display().to_string()), "{e}");
        assert!(s.load_tokens().await.is_err());
        assert!(s.set_tokens(OAuthToken::bearer("at")).await.is_err());
        assert!(
            s.compare_and_set_tokens(Version::ABSENT, Some(OAuthToken::bearer("at")))
                .await
                .is_err()
        );
        assert!(
            s.set_client_info(OAuthClientInformationFull::new("cid", None))
                .await
                .is_err()
        );
        assert!(s.remove_client_info("https://as.example").await.is_err());
        assert_eq!(std::fs::read(s.path()).unwrap(), b"{not json");
        assert!(temp_files(dir.path()).is_empty());
    }

    // Found while fuzzing the data file (fuzz/regressions/stored_values/version-max):
    // `version + 1` overflowed (a panic in a debug build, a version reused
    // after wrapping to 0 in a release build).
    #[tokio::test]
    async fn a_file_at_the_largest_version_is_refused_for_writes_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL).unwrap();
        let file = br#"{"version":18446744073709551615,"tokens":{"access_token":"abc"}}"#;
        std::fs::write(s.path(), file).unwrap();
        let held = s.load_tokens().await.unwrap();
        assert_eq!(held.version, Version(u64::MAX));
        assert_eq!(held.value.unwrap().access_token.expose(), "abc");
        let e = s.set_tokens(OAuthToken::bearer("new")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains("largest version"), "{e}");
        assert!(e.to_string().contains(&s.path().display().to_string()), "{e}");
        let e = s
            .compare_and_set_tokens(held.version, Some(OAuthToken::bearer("new")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(std::fs::read(s.path()).unwrap(), file);
        // One below the largest still writes, at the largest.
        std::fs::write(
            s.path(),
            br#"{"version":18446744073709551614,"tokens":{"access_token":"abc"}}"#,
        )
        .unwrap();
        s.set_tokens(OAuthToken::bearer("new")).await.unwrap();
        assert_eq!(s.load_tokens().await.unwrap().version, Version(u64::MAX));
    }

    #[test]
    fn a_failed_replace_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A rename cannot replace a non-empty directory.
        let target = dir.path().join("tokens.json");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let e = replace_file(&target, b"{}").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains("cannot replace"), "{e}");
        assert!(temp_files(dir.path()).is_empty());
        assert!(target.join("keep").exists());
    }

    #[tokio::test]
    async fn a_stuck_data_lock_is_a_storage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path(), URL)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(50));
        s.set_tokens(OAuthToken::bearer("at")).await.unwrap();
        // Hold the data lock the way a stuck process would.
        let stuck = open_private(&s.lock_path).unwrap();
        assert!(fs4::fs_std::FileExt::try_lock_exclusive(&stuck).unwrap());
        let e = s.get_tokens().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains(&s.path().display().to_string()), "{e}");
        assert!(e.to_string().contains("50ms"), "{e}");
        drop(stuck);
        assert!(s.get_tokens().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_lease_held_elsewhere_fails_after_the_wait_naming_file_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileStorage::new(dir.path(), URL).unwrap();
        let b = FileStorage::new(dir.path(), URL).unwrap();
        let held = a
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(held.is_guarded());
        let e = b
            .acquire_lease(Duration::from_secs(60), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        let msg = e.to_string();
        assert!(msg.contains(&b.lease_path().display().to_string()), "{msg}");
        assert!(msg.contains(&format!("process {}", std::process::id())), "{msg}");
        // The expiry named is the one the holder recorded, its lease's own.
        let record: LeaseRecord = serde_json::from_slice(&std::fs::read(a.lease_path()).unwrap()).unwrap();
        assert_eq!(record.expires_at, unix_seconds(held.expires_at()));
        assert!(msg.contains(&format!("expires at {}", record.expires_at)), "{msg}");
        assert!(msg.contains("50ms"), "{msg}");
        // Reads and writes do not wait for the lease.
        b.set_tokens(OAuthToken::bearer("at")).await.unwrap();
        drop(held);
    }

    #[tokio::test]
    async fn a_lease_released_by_dropping_lets_the_waiter_in() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileStorage::new(dir.path(), URL).unwrap();
        let b = FileStorage::new(dir.path(), URL).unwrap();
        let held = a
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(10))
            .await
            .unwrap();
        let waiter =
            tokio::spawn(async move { b.acquire_lease(Duration::from_secs(60), Duration::from_secs(60)).await });
        drop(held);
        let lease = waiter.await.unwrap().unwrap();
        assert!(lease.is_guarded());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_stores_on_one_file_lose_no_update() {
        const N: u64 = 12;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let run = |optimistic: bool| {
            let tasks: Vec<_> = (0..N)
                .map(|_| {
                    // A store of its own per task, as separate processes have.
                    let s = Arc::new(FileStorage::new(&path, URL).unwrap());
                    tokio::spawn(async move {
                        if optimistic {
                            increment_optimistically(&*s).await
                        } else {
                            increment_under_lease(&*s).await
                        }
                    })
                })
                .collect::<Vec<_>>();
            async move {
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
        run(false).await;
        let s = FileStorage::new(dir.path(), URL).unwrap();
        assert_eq!(count_of(&s.load_tokens().await.unwrap()), N);
        // Compare-and-set alone (no lease) loses nothing either.
        run(true).await;
        assert_eq!(count_of(&s.load_tokens().await.unwrap()), 2 * N);
    }

    /// The variable that tells a re-executed test binary which directory the
    /// child test works in; without it the child tests do nothing.
    const CHILD_DIR_VAR: &str = "MCP_OAUTH_STORAGE_TEST_DIR";
    const CHILD_INCREMENTS: u64 = 5;

    /// Run the ignored test `name` of this module in a new process of this
    /// test binary, working in `dir`.
    fn spawn_child(name: &str, dir: &Path) -> std::process::Child {
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([&format!("{module}::{name}"), "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_DIR_VAR, dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn wait_child(child: std::process::Child) {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    #[ignore = "run by processes_sharing_a_file_lose_no_update in a child process"]
    async fn child_increments() {
        let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
            return;
        };
        let s = FileStorage::new(PathBuf::from(dir), URL).unwrap();
        for _ in 0..CHILD_INCREMENTS {
            increment_under_lease(&s).await;
        }
    }

    #[test]
    fn processes_sharing_a_file_lose_no_update() {
        const CHILDREN: u64 = 3;
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..CHILDREN)
            .map(|_| spawn_child("child_increments", dir.path()))
            .collect();
        for c in children {
            wait_child(c);
        }
        let s = FileStorage::new(dir.path(), URL).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(
            count_of(&rt.block_on(s.load_tokens()).unwrap()),
            CHILDREN * CHILD_INCREMENTS
        );
    }

    #[tokio::test]
    #[ignore = "run by a_lease_is_released_when_its_process_exits in a child process"]
    async fn child_exits_holding_the_lease() {
        let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
            return;
        };
        let s = FileStorage::new(PathBuf::from(dir), URL).unwrap();
        let lease = s
            .acquire_lease(Duration::from_secs(3600), Duration::from_secs(10))
            .await
            .unwrap();
        // Never released by this process: only its exit can release it.
        std::mem::forget(lease);
    }

    #[test]
    fn a_lease_is_released_when_its_process_exits() {
        let dir = tempfile::tempdir().unwrap();
        wait_child(spawn_child("child_exits_holding_the_lease", dir.path()));
        let s = FileStorage::new(dir.path(), URL).unwrap();
        // The child recorded itself and never cleared the record...
        let record: LeaseRecord = serde_json::from_slice(&std::fs::read(s.lease_path()).unwrap()).unwrap();
        assert_ne!(record.pid, std::process::id());
        // ...yet the lease is free.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lease = rt
            .block_on(s.acquire_lease(Duration::from_secs(60), Duration::from_secs(10)))
            .unwrap();
        assert!(lease.is_guarded());
    }
}
