//! Token storage: the four-method contract of the MCP SDKs, plus what lets
//! several processes share one store without undoing each other's refreshes.
//!
//! Rotating refresh tokens are single-use (Auth0 revokes the whole family when
//! one is reused), so two processes that refresh the same tokens at once log
//! the user out. Two mechanisms prevent it (SPEC.md §7 and §12):
//!
//! - a **version** on the stored tokens and a **compare-and-set** write
//!   ([`TokenStorage::compare_and_set_tokens`]), so tokens read before another
//!   process wrote never overwrite what it wrote;
//! - a **refresh lease** ([`TokenStorage::acquire_lease`]) that one process
//!   at a time holds while it refreshes; the others wait for it, then read the
//!   new tokens instead of refreshing again.
//!
//! Stores written for the MCP SDKs implement only the four methods
//! (`get_tokens`, `set_tokens`, `get_client_info`, `set_client_info`); the
//! defaults of the others derive a version from the tokens' content
//! ([`fingerprint`]) and grant a lease that excludes nobody, which is enough
//! for a store one process owns.
//!
//! Built-ins: [`MemoryStorage`] and [`FileStorage`] (one JSON file per MCP
//! server, replaced atomically, mode 0600, guarded by advisory locks that
//! every process using the file honours), with the `keyring` feature
//! `KeyringStorage` (the operating system's keychain), and, with the cargo
//! feature `redis`, `RedisStorage` (Redis or a Redis Cluster shared by a
//! fleet of hosts, values encrypted at rest).

mod file;
#[cfg(feature = "keyring")]
mod keyring;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{OAuthClientInformationFull, OAuthToken};

#[cfg(all(feature = "fuzzing", feature = "redis"))]
pub(crate) use self::redis::fuzz_stored_value;
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_KEY_PREFIX, EncryptionKey, RedisOptions, RedisStorage, redact_url};
pub use file::FileStorage;
#[cfg(feature = "fuzzing")]
pub(crate) use file::fuzz_stored_file;
#[cfg(feature = "keyring")]
pub use keyring::KeyringStorage;
pub use memory::MemoryStorage;

/// An opaque version of the stored tokens, compared for equality only.
/// [`Version::ABSENT`] when none are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The version of a store that holds no tokens.
    pub const ABSENT: Version = Version(0);
}

/// A value with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value, if any is stored.
    pub value: Option<T>,
    /// The version it was read at ([`Version::ABSENT`] when `value` is `None`).
    pub version: Version,
}

/// The outcome of a compare-and-set write.
#[derive(Debug)]
pub enum CasOutcome {
    /// The write happened; the store is now at this version.
    Stored(Version),
    /// The store had changed since the expected version was read: nothing was
    /// written, and this is what it holds now.
    Conflict(Versioned<OAuthToken>),
}

/// "This process is refreshing": held until dropped, which releases it.
///
/// Its expiry is the holder's deadline, not a lock timeout: a store's lease
/// stays taken until it is dropped (or its process exits), so a holder should
/// give up on work it cannot finish by [`Lease::expires_at`] rather than write
/// late. Stores record it so a waiter can say who holds the lease and until when.
pub struct Lease {
    expires_at: SystemTime,
    guard: Option<Box<dyn Send + Sync>>,
}

impl Lease {
    /// A lease that lasts `ttl` from now and is released when `guard` drops.
    pub fn new(ttl: Duration, guard: Box<dyn Send + Sync>) -> Lease {
        Lease {
            expires_at: deadline(ttl),
            guard: Some(guard),
        }
    }

    /// A lease that excludes nobody, for stores with no coordination (a store
    /// one process owns needs none).
    pub fn unguarded(ttl: Duration) -> Lease {
        Lease {
            expires_at: deadline(ttl),
            guard: None,
        }
    }

    /// When the holder's time is up.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether the holder's time is up.
    pub fn is_expired(&self) -> bool {
        SystemTime::now() >= self.expires_at
    }

    /// Whether this lease excludes other holders (false for [`Lease::unguarded`]).
    pub fn is_guarded(&self) -> bool {
        self.guard.is_some()
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("expires_at", &self.expires_at)
            .field("guarded", &self.is_guarded())
            .finish()
    }
}

/// `now + ttl`, saturating: an absurd ttl means "no deadline", not a panic.
fn deadline(ttl: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A version computed from the tokens' content, never [`Version::ABSENT`]: the
/// first 8 bytes of SHA-256 over the access token, a 0 byte and the refresh
/// token. Used by stores that keep no version of their own: a refresh changes
/// the access token, so it changes the fingerprint.
pub fn fingerprint(tokens: &OAuthToken) -> Version {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(tokens.access_token.expose().as_bytes());
    h.update([0u8]);
    if let Some(rt) = &tokens.refresh_token {
        h.update(rt.expose().as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    match u64::from_be_bytes(first) {
        // One chance in 2^64, but ABSENT must keep meaning "nothing stored".
        0 => Version(1),
        v => Version(v),
    }
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

    /// Forget the registration made with `issuer` (the server said
    /// `invalid_client`), so the next flow registers again. `Ok(true)` when the
    /// store holds no registration for `issuer` afterwards; `Ok(false)` when
    /// this store cannot remove one (the default: the four methods of the SDKs
    /// can only replace).
    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        let _ = issuer;
        Ok(false)
    }

    /// The tokens with their version. The default reads [`get_tokens`] and
    /// versions them by [`fingerprint`] ([`Version::ABSENT`] when none).
    ///
    /// [`get_tokens`]: TokenStorage::get_tokens
    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        let value = self.get_tokens().await?;
        let version = value.as_ref().map_or(Version::ABSENT, fingerprint);
        Ok(Versioned { value, version })
    }

    /// Write `tokens` (`None` removes them) only if the stored version is still
    /// `expected`; otherwise write nothing and return
    /// [`CasOutcome::Conflict`] with what is stored now.
    ///
    /// The default, for stores with only the four methods, reads with
    /// [`load_tokens`], compares and writes with [`set_tokens`]. That is not
    /// atomic on its own; it is safe while the caller holds the lease, and
    /// such stores are owned by one process anyway. A removal cannot be
    /// expressed through the four methods: the default writes nothing and
    /// returns `Stored(expected)`, and the provider remembers in memory that
    /// those tokens are dead instead.
    ///
    /// [`load_tokens`]: TokenStorage::load_tokens
    /// [`set_tokens`]: TokenStorage::set_tokens
    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        let current = self.load_tokens().await?;
        if current.version != expected {
            return Ok(CasOutcome::Conflict(current));
        }
        match tokens {
            Some(tokens) => {
                let version = fingerprint(&tokens);
                self.set_tokens(tokens).await?;
                Ok(CasOutcome::Stored(version))
            }
            None => Ok(CasOutcome::Stored(expected)),
        }
    }

    /// Take the store's refresh lease, shared by every process using this
    /// store, waiting at most `wait` for another holder to release it. The
    /// lease lasts `ttl` (see [`Lease`]). An error of kind
    /// [`Storage`](crate::ErrorKind::Storage), naming the store and the wait,
    /// when it cannot be had in time.
    ///
    /// The default grants [`Lease::unguarded`]: a store one process owns needs
    /// no more, since the provider already runs one refresh at a time.
    async fn acquire_lease(&self, ttl: Duration, wait: Duration) -> Result<Lease> {
        let _ = wait;
        Ok(Lease::unguarded(ttl))
    }
}

/// The registrations a store keeps: one per authorization server, and the one
/// in use (what `get_client_info` answers, and the answer for an issuer with
/// none of its own, as stores written before per-issuer registrations hold
/// only that one). Shared by the built-in stores; serialized as the file
/// store's `client_info` and `clients` keys.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Registrations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_info: Option<OAuthClientInformationFull>,
    /// Every registration, by the issuer that made it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    clients: std::collections::BTreeMap<String, OAuthClientInformationFull>,
}

impl Registrations {
    fn for_issuer(&self, issuer: &str) -> Option<OAuthClientInformationFull> {
        self.clients
            .iter()
            .find(|(i, _)| crate::discovery::same_issuer(i, issuer))
            .map(|(_, info)| info.clone())
            .or_else(|| self.client_info.clone())
    }

    fn set(&mut self, info: OAuthClientInformationFull) {
        if let Some(issuer) = &info.issuer {
            self.clients.insert(issuer.clone(), info.clone());
        }
        self.client_info = Some(info);
    }

    /// Forget every registration `for_issuer(issuer)` could answer with,
    /// except one bound to another issuer (which the provider rejects anyway,
    /// and which still serves that issuer). Whether anything changed.
    fn remove(&mut self, issuer: &str) -> bool {
        let before = self.clients.len();
        self.clients.retain(|i, _| !crate::discovery::same_issuer(i, issuer));
        let mut changed = self.clients.len() != before;
        let in_use_matches = self.client_info.as_ref().is_some_and(|c| {
            c.issuer
                .as_deref()
                .is_none_or(|i| crate::discovery::same_issuer(i, issuer))
        });
        if in_use_matches {
            self.client_info = None;
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the stores' tests.

    use super::*;
    use crate::model::Secret;

    /// Tokens whose access token carries a counter, so concurrent increments
    /// show whether any update was lost.
    pub(crate) fn counter_token(n: u64) -> OAuthToken {
        let mut t = OAuthToken::bearer(format!("count-{n}"));
        t.refresh_token = Some(Secret::new(format!("rt-{n}")));
        t
    }

    pub(crate) fn count_of(t: &Versioned<OAuthToken>) -> u64 {
        t.value.as_ref().map_or(0, |t| {
            t.access_token
                .expose()
                .strip_prefix("count-")
                .and_then(|n| n.parse().ok())
                .expect("a counter token")
        })
    }

    /// One increment the way a provider refreshes: lease, read, write with
    /// compare-and-set. Under the lease nobody else writes, so the write must
    /// not conflict.
    pub(crate) async fn increment_under_lease(store: &dyn TokenStorage) {
        let _lease = store
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(60))
            .await
            .unwrap();
        let current = store.load_tokens().await.unwrap();
        let next = counter_token(count_of(&current) + 1);
        match store.compare_and_set_tokens(current.version, Some(next)).await.unwrap() {
            CasOutcome::Stored(v) => assert_ne!(v, current.version),
            CasOutcome::Conflict(_) => panic!("a write under the lease conflicted"),
        }
    }

    pub(crate) fn stored(outcome: CasOutcome) -> Version {
        match outcome {
            CasOutcome::Stored(v) => v,
            CasOutcome::Conflict(now) => panic!("unexpected conflict, now at {:?}", now.version),
        }
    }

    /// The compare-and-set contract every coordinating store keeps, written
    /// through `a` and read through `b` (the same store, or two handles on
    /// one shared store, as two processes have).
    pub(crate) async fn check_compare_and_set(a: &dyn TokenStorage, b: &dyn TokenStorage) {
        let empty = b.load_tokens().await.unwrap();
        assert!(empty.value.is_none());
        assert_eq!(empty.version, Version::ABSENT);

        let v1 = stored(
            a.compare_and_set_tokens(Version::ABSENT, Some(counter_token(1)))
                .await
                .unwrap(),
        );
        assert_ne!(v1, Version::ABSENT);
        assert_eq!(b.load_tokens().await.unwrap().version, v1);

        // Every write changes the version, identical tokens included.
        b.set_tokens(counter_token(1)).await.unwrap();
        let v2 = a.load_tokens().await.unwrap().version;
        assert_ne!(v2, v1);

        // A write based on a stale version conflicts, shows what is stored
        // now, and changes nothing.
        match a.compare_and_set_tokens(v1, Some(counter_token(9))).await.unwrap() {
            CasOutcome::Conflict(now) => {
                assert_eq!(now.version, v2);
                assert_eq!(count_of(&now), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(count_of(&b.load_tokens().await.unwrap()), 1);

        // Registrations do not touch the token version.
        a.set_client_info(OAuthClientInformationFull::new("cid", None))
            .await
            .unwrap();
        assert_eq!(b.load_tokens().await.unwrap().version, v2);

        // Removal: a stale one conflicts; a current one removes the tokens
        // and keeps the registration.
        assert!(matches!(
            a.compare_and_set_tokens(v1, None).await.unwrap(),
            CasOutcome::Conflict(_)
        ));
        assert_eq!(
            stored(a.compare_and_set_tokens(v2, None).await.unwrap()),
            Version::ABSENT
        );
        let gone = b.load_tokens().await.unwrap();
        assert!(gone.value.is_none());
        assert_eq!(gone.version, Version::ABSENT);
        assert!(b.get_tokens().await.unwrap().is_none());
        assert_eq!(b.get_client_info().await.unwrap().unwrap().client_id, "cid");

        // Tokens stored again never reuse a version seen before.
        let v3 = stored(
            a.compare_and_set_tokens(Version::ABSENT, Some(counter_token(2)))
                .await
                .unwrap(),
        );
        assert!(v3 != v1 && v3 != v2 && v3 != Version::ABSENT);
    }

    /// A registration per issuer, and removal of one: written through `a`,
    /// read through `b`.
    pub(crate) async fn check_registrations_per_issuer(a: &dyn TokenStorage, b: &dyn TokenStorage) {
        let mut ra = OAuthClientInformationFull::new("client-a", None);
        ra.issuer = Some("https://a.example".into());
        let mut rb = OAuthClientInformationFull::new("client-b", None);
        rb.issuer = Some("https://b.example".into());
        a.set_client_info(ra).await.unwrap();
        a.set_client_info(rb).await.unwrap();
        let for_a = b.get_client_info_for("https://a.example/").await.unwrap().unwrap();
        assert_eq!(for_a.client_id, "client-a");
        assert_eq!(b.get_client_info().await.unwrap().unwrap().client_id, "client-b");

        assert!(a.remove_client_info("https://a.example").await.unwrap());
        // What remains for a is only the registration of b, bound to b.
        let left = b.get_client_info_for("https://a.example").await.unwrap().unwrap();
        assert_eq!(left.issuer.as_deref(), Some("https://b.example"));
        assert!(b.remove_client_info("https://b.example").await.unwrap());
        assert!(a.get_client_info_for("https://b.example").await.unwrap().is_none());
        assert!(a.get_client_info().await.unwrap().is_none());
    }

    /// One increment with no lease: retry on conflict, as optimistic writers do.
    pub(crate) async fn increment_optimistically(store: &dyn TokenStorage) {
        loop {
            let current = store.load_tokens().await.unwrap();
            let next = counter_token(count_of(&current) + 1);
            if let CasOutcome::Stored(_) = store.compare_and_set_tokens(current.version, Some(next)).await.unwrap() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;
    use std::sync::Mutex;

    /// A store written the way hosts write theirs: the four methods only.
    #[derive(Default)]
    struct FourMethods {
        tokens: Mutex<Option<OAuthToken>>,
        client: Mutex<Option<OAuthClientInformationFull>>,
    }

    #[async_trait]
    impl TokenStorage for FourMethods {
        async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
            Ok(self.tokens.lock().unwrap().clone())
        }
        async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
            *self.tokens.lock().unwrap() = Some(tokens);
            Ok(())
        }
        async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
            Ok(self.client.lock().unwrap().clone())
        }
        async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
            *self.client.lock().unwrap() = Some(info);
            Ok(())
        }
    }

    fn tokens(at: &str, rt: Option<&str>) -> OAuthToken {
        let mut t = OAuthToken::bearer(at);
        t.refresh_token = rt.map(Secret::new);
        t
    }

    #[test]
    fn fingerprint_follows_both_tokens_and_is_never_absent() {
        let a = tokens("at", Some("rt"));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), Version::ABSENT);
        assert_ne!(fingerprint(&a), fingerprint(&tokens("at", Some("rt2"))));
        assert_ne!(fingerprint(&a), fingerprint(&tokens("at2", Some("rt"))));
        assert_ne!(fingerprint(&a), fingerprint(&tokens("at", None)));
        // The separator keeps the boundary: "a"+"bc" is not "ab"+"c".
        assert_ne!(
            fingerprint(&tokens("a", Some("bc"))),
            fingerprint(&tokens("ab", Some("c")))
        );
        // Fields other than the two tokens do not matter.
        let mut later = a.clone();
        later.expires_at = Some(1.0);
        assert_eq!(fingerprint(&a), fingerprint(&later));
    }

    #[tokio::test]
    async fn four_method_store_gets_fingerprint_versions_and_conflicts() {
        let s = FourMethods::default();
        let empty = s.load_tokens().await.unwrap();
        assert!(empty.value.is_none());
        assert_eq!(empty.version, Version::ABSENT);

        let first = tokens("at1", Some("rt1"));
        let v1 = match s
            .compare_and_set_tokens(Version::ABSENT, Some(first.clone()))
            .await
            .unwrap()
        {
            CasOutcome::Stored(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(v1, fingerprint(&first));
        let loaded = s.load_tokens().await.unwrap();
        assert_eq!(loaded.version, v1);
        assert_eq!(loaded.value.unwrap(), first);

        // Another writer (through the plain method) changes the tokens: a
        // write based on the old version conflicts and shows the new tokens.
        let other = tokens("at2", Some("rt2"));
        s.set_tokens(other.clone()).await.unwrap();
        match s.compare_and_set_tokens(v1, Some(tokens("at3", None))).await.unwrap() {
            CasOutcome::Conflict(now) => {
                assert_eq!(now.version, fingerprint(&other));
                assert_eq!(now.value.unwrap(), other);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.get_tokens().await.unwrap().unwrap(), other);

        // A removal cannot be done through the four methods: it reports the
        // version unchanged and leaves the tokens.
        let v2 = fingerprint(&other);
        match s.compare_and_set_tokens(v2, None).await.unwrap() {
            CasOutcome::Stored(v) => assert_eq!(v, v2),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.get_tokens().await.unwrap().unwrap(), other);
        // ... but a stale removal still conflicts.
        assert!(matches!(
            s.compare_and_set_tokens(v1, None).await.unwrap(),
            CasOutcome::Conflict(_)
        ));

        assert!(!s.remove_client_info("https://as.example").await.unwrap());
        let lease = s
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!lease.is_guarded());
        assert!(!lease.is_expired());
    }

    #[test]
    fn lease_debug_shows_no_guard_contents() {
        let lease = Lease::new(Duration::from_secs(3600), Box::new(String::from("secret-inside")));
        let shown = format!("{lease:?}");
        assert!(shown.contains("guarded: true"), "{shown}");
        assert!(!shown.contains("secret-inside"), "{shown}");
        assert!(!lease.is_expired());
        assert!(Lease::unguarded(Duration::ZERO).is_expired());
    }
}
