//! [`MemoryStorage`]: tokens and registrations in memory, forgotten when dropped.
//!
//! One process owns it, but a provider may share it with others in that
//! process (several providers for one server), so it versions its tokens and
//! grants a real lease like the file store does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{CasOutcome, Lease, Registrations, TokenStorage, Version, Versioned};
use crate::error::{Error, Result};
use crate::model::{OAuthClientInformationFull, OAuthToken};

/// Tokens and client information in memory, forgotten when dropped.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    // A tokio mutex because the lease is held across the awaits of a refresh;
    // in an Arc so the guard can be owned by the Lease.
    lease: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct State {
    tokens: Option<OAuthToken>,
    /// Bumped by every token write, removals included, so a version is never
    /// reused: tokens removed and then stored again get a new one.
    writes: u64,
    registrations: Registrations,
}

impl State {
    fn version(&self) -> Version {
        match self.tokens {
            Some(_) => Version(self.writes),
            None => Version::ABSENT,
        }
    }

    fn versioned(&self) -> Versioned<OAuthToken> {
        Versioned {
            value: self.tokens.clone(),
            version: self.version(),
        }
    }

    fn write_tokens(&mut self, tokens: Option<OAuthToken>) -> Version {
        self.writes += 1;
        self.tokens = tokens;
        self.version()
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::storage("the in-memory store's lock was poisoned by a panic"))
    }
}

#[async_trait]
impl TokenStorage for MemoryStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        Ok(self.state()?.tokens.clone())
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        self.state()?.write_tokens(Some(tokens));
        Ok(())
    }

    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        Ok(self.state()?.registrations.client_info.clone())
    }

    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        Ok(self.state()?.registrations.for_issuer(issuer))
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        self.state()?.registrations.set(info);
        Ok(())
    }

    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        self.state()?.registrations.remove(issuer);
        Ok(true)
    }

    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        Ok(self.state()?.versioned())
    }

    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        let mut state = self.state()?;
        if state.version() != expected {
            return Ok(CasOutcome::Conflict(state.versioned()));
        }
        Ok(CasOutcome::Stored(state.write_tokens(tokens)))
    }

    async fn acquire_lease(&self, ttl: Duration, wait: Duration) -> Result<Lease> {
        match tokio::time::timeout(wait, self.lease.clone().lock_owned()).await {
            Ok(guard) => Ok(Lease::new(ttl, Box::new(guard))),
            Err(_) => Err(Error::storage(format!(
                "the in-memory token store's refresh lease is held by another task; gave up after waiting {wait:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::storage::test_support::{
        check_compare_and_set, check_registrations_per_issuer, count_of, increment_optimistically,
        increment_under_lease,
    };

    #[tokio::test]
    async fn compare_and_set_semantics() {
        let s = MemoryStorage::new();
        check_compare_and_set(&s, &s).await;
    }

    #[tokio::test]
    async fn registrations_per_issuer_and_removal() {
        let s = MemoryStorage::new();
        check_registrations_per_issuer(&s, &s).await;
    }

    #[tokio::test]
    async fn lease_excludes_until_dropped() {
        let s = Arc::new(MemoryStorage::new());
        let held = s
            .acquire_lease(Duration::from_secs(60), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(held.is_guarded());
        let e = s
            .acquire_lease(Duration::from_secs(60), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains("refresh lease"), "{e}");

        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.acquire_lease(Duration::from_secs(60), Duration::from_secs(60)).await }
        });
        drop(held);
        assert!(waiter.await.unwrap().unwrap().is_guarded());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_lose_nothing() {
        const N: u64 = 32;
        let s = Arc::new(MemoryStorage::new());
        // Writers that take the lease (a lease does not fence writers that
        // skip it, so the two kinds run one after the other).
        let leased: Vec<_> = (0..N)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { increment_under_lease(&*s).await })
            })
            .collect();
        for t in leased {
            t.await.unwrap();
        }
        assert_eq!(count_of(&s.load_tokens().await.unwrap()), N);
        // Writers that rely on compare-and-set alone.
        let optimistic: Vec<_> = (0..N)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { increment_optimistically(&*s).await })
            })
            .collect();
        for t in optimistic {
            t.await.unwrap();
        }
        assert_eq!(count_of(&s.load_tokens().await.unwrap()), 2 * N);
    }
}
