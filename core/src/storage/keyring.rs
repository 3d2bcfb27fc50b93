//! [`KeyringStorage`]: tokens and registrations in the operating system's
//! keychain (feature `keyring`): the Secret Service on Linux (GNOME Keyring,
//! KWallet), the Keychain on macOS, the Credential Manager on Windows.
//!
//! Entries are generic passwords under one service name the host chooses
//! (default [`KeyringStorage::DEFAULT_SERVICE`]):
//!
//! - account `tokens <server URL>`: the server's tokens, with a version
//!   counter bumped by every write, and which registration is in use;
//! - account `client <issuer>`: the registration made with that
//!   authorization server, shared by every server it protects.
//!
//! Each holds JSON in the MCP Python SDK's schema. Writes from one store are
//! serialized; the keychain offers no compare-and-set across processes, so
//! two processes refreshing the same server's tokens at the very same moment
//! are not excluded from each other (use [`FileStorage`](super::FileStorage)
//! or a shared store for fleets). An entry that cannot be parsed is reported
//! and never overwritten.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CasOutcome, TokenStorage, Version, Versioned};
use crate::error::{Error, Result};
use crate::model::{OAuthClientInformationFull, OAuthToken};

/// The server's entry.
#[derive(Default, Serialize, Deserialize)]
struct ServerEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_url: Option<String>,
    /// Bumped by every token write, removals included.
    #[serde(default)]
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<OAuthToken>,
    /// The issuer of the registration in use (its entry is `client <issuer>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_issuer: Option<String>,
    /// A registration in use that names no issuer (written through the SDK's
    /// four methods), kept here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_info: Option<OAuthClientInformationFull>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl ServerEntry {
    fn token_version(&self) -> Version {
        match self.tokens {
            Some(_) => Version(self.version.max(1)),
            None => Version::ABSENT,
        }
    }

    fn versioned(&self) -> Versioned<OAuthToken> {
        Versioned {
            value: self.tokens.clone(),
            version: self.token_version(),
        }
    }

    fn write_tokens(&mut self, tokens: Option<OAuthToken>) -> Version {
        self.version = self.version.max(self.token_version().0) + 1;
        self.tokens = tokens;
        self.token_version()
    }
}

/// Tokens and registrations in the OS keychain, one entry per MCP server and
/// one per authorization server. See the module documentation.
#[derive(Clone)]
pub struct KeyringStorage {
    service: String,
    server_url: String,
    /// Serializes this store's read-modify-writes (clones share it).
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for KeyringStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStorage")
            .field("service", &self.service)
            .field("server_url", &self.server_url)
            .finish()
    }
}

fn unavailable(what: &str, e: &keyring::Error) -> Error {
    // Only the category and the platform's own message: never the data.
    let detail = match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => inner.to_string(),
        keyring::Error::BadEncoding(_) => "the entry does not hold UTF-8 text".into(),
        keyring::Error::TooLong(attr, limit) => format!("{attr} is longer than the keychain allows ({limit})"),
        keyring::Error::Invalid(attr, reason) => format!("{attr} is invalid: {reason}"),
        keyring::Error::Ambiguous(items) => format!("{} entries match", items.len()),
        keyring::Error::NoEntry => "no entry".into(),
        _ => "unknown keychain error".into(),
    };
    let hint = if cfg!(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")) {
        " (is a Secret Service, such as gnome-keyring, running and unlocked on the D-Bus session bus?)"
    } else {
        ""
    };
    Error::storage(format!("the OS keychain cannot {what}: {detail}{hint}"))
}

impl KeyringStorage {
    /// The service name entries are stored under unless the host names one.
    pub const DEFAULT_SERVICE: &'static str = "mcp-oauth-client";

    /// The store for `server_url` under [`Self::DEFAULT_SERVICE`]. No keychain
    /// access happens here: an unavailable keychain is reported by the first
    /// read or write.
    pub fn new(server_url: &str) -> Result<Self> {
        Self::with_service(Self::DEFAULT_SERVICE, server_url)
    }

    /// The store for `server_url` under the service name `service` (an
    /// application's own name, so its entries are its own).
    pub fn with_service(service: &str, server_url: &str) -> Result<Self> {
        if service.trim().is_empty() || service.chars().any(char::is_control) {
            return Err(Error::config(
                "the keychain service name must be non-empty printable text",
            ));
        }
        if server_url.is_empty() || server_url.chars().any(char::is_control) {
            return Err(Error::config("the keychain store needs the MCP server URL"));
        }
        Ok(KeyringStorage {
            service: service.to_string(),
            server_url: server_url.to_string(),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The service name of the entries.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The account name of the server's entry.
    pub fn tokens_account(&self) -> String {
        format!("tokens {}", self.server_url)
    }

    /// The account name of the registration with `issuer`.
    pub fn client_account(issuer: &str) -> String {
        format!("client {}", issuer.trim_end_matches('/'))
    }

    /// Remove the server's entry and, when `registrations` is set, the
    /// registration in use (for a "forget everything" command). Whether an
    /// entry was there.
    pub async fn delete_all(&self, registrations: bool) -> Result<bool> {
        let _g = self.lock.lock().await;
        let server = self.read_server().await?;
        let mut any = server.tokens.is_some() || server.client_info.is_some();
        if registrations {
            if let Some(issuer) = &server.client_issuer {
                any |= self.delete(Self::client_account(issuer)).await?;
            }
        }
        any |= self.delete(self.tokens_account()).await?;
        Ok(any)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        account: String,
        f: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
        what: &'static str,
    ) -> Result<Option<T>> {
        let service = self.service.clone();
        let run = move || {
            let entry = keyring::Entry::new(&service, &account)?;
            f(entry)
        };
        // The platform calls block (D-Bus round trips, a keychain prompt):
        // never on the runtime's threads.
        match tokio::task::spawn_blocking(run).await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(keyring::Error::NoEntry)) => Ok(None),
            Ok(Err(e)) => Err(unavailable(what, &e)),
            Err(e) => Err(Error::storage(format!("the keychain task failed: {e}"))),
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, account: String) -> Result<Option<T>> {
        let text = self
            .blocking(account.clone(), |e| e.get_password(), "read an entry")
            .await?;
        let Some(text) = text.map(zeroize::Zeroizing::new) else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::storage(format!(
                "the keychain entry {:?} of service {:?} is not valid (JSON error at line {} column {}); it is left as it is: fix or remove it",
                account,
                self.service,
                e.line(),
                e.column()
            ))
        })
    }

    async fn write_json<T: Serialize>(&self, account: String, value: &T) -> Result<()> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_string(value).map_err(|e| Error::storage(format!("cannot encode for the keychain: {e}")))?,
        );
        self.blocking(account, move |e| e.set_password(&json), "write an entry")
            .await
            .map(|_| ())
    }

    async fn delete(&self, account: String) -> Result<bool> {
        Ok(self
            .blocking(account, |e| e.delete_credential(), "delete an entry")
            .await?
            .is_some())
    }

    async fn read_server(&self) -> Result<ServerEntry> {
        Ok(self.read_json(self.tokens_account()).await?.unwrap_or_default())
    }

    async fn write_server(&self, mut entry: ServerEntry) -> Result<()> {
        entry.server_url = Some(self.server_url.clone());
        self.write_json(self.tokens_account(), &entry).await
    }
}

#[async_trait]
impl TokenStorage for KeyringStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        Ok(self.read_server().await?.tokens)
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        let _g = self.lock.lock().await;
        let mut entry = self.read_server().await?;
        entry.write_tokens(Some(tokens));
        self.write_server(entry).await
    }

    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        let entry = self.read_server().await?;
        match entry.client_issuer {
            Some(issuer) => self.read_json(Self::client_account(&issuer)).await,
            None => Ok(entry.client_info),
        }
    }

    async fn get_client_info_for(&self, issuer: &str) -> Result<Option<OAuthClientInformationFull>> {
        if let Some(info) = self.read_json(Self::client_account(issuer)).await? {
            return Ok(Some(info));
        }
        // A registration without an issuer (the provider checks its binding).
        Ok(self.read_server().await?.client_info)
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        let _g = self.lock.lock().await;
        let mut entry = self.read_server().await?;
        match info.issuer.clone() {
            Some(issuer) => {
                self.write_json(Self::client_account(&issuer), &info).await?;
                if entry.client_issuer.as_deref() != Some(issuer.as_str()) || entry.client_info.is_some() {
                    entry.client_issuer = Some(issuer);
                    entry.client_info = None;
                    self.write_server(entry).await?;
                }
                Ok(())
            }
            None => {
                entry.client_issuer = None;
                entry.client_info = Some(info);
                self.write_server(entry).await
            }
        }
    }

    async fn remove_client_info(&self, issuer: &str) -> Result<bool> {
        let _g = self.lock.lock().await;
        self.delete(Self::client_account(issuer)).await?;
        let mut entry = self.read_server().await?;
        let in_use = entry
            .client_issuer
            .as_deref()
            .is_some_and(|i| crate::discovery::same_issuer(i, issuer))
            || entry.client_info.is_some();
        if in_use {
            entry.client_issuer = None;
            entry.client_info = None;
            self.write_server(entry).await?;
        }
        Ok(true)
    }

    async fn load_tokens(&self) -> Result<Versioned<OAuthToken>> {
        Ok(self.read_server().await?.versioned())
    }

    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> Result<CasOutcome> {
        let _g = self.lock.lock().await;
        let mut entry = self.read_server().await?;
        if entry.token_version() != expected {
            return Ok(CasOutcome::Conflict(entry.versioned()));
        }
        if tokens.is_none() && entry.tokens.is_none() {
            return Ok(CasOutcome::Stored(Version::ABSENT));
        }
        let version = entry.write_tokens(tokens);
        self.write_server(entry).await?;
        Ok(CasOutcome::Stored(version))
    }
}
