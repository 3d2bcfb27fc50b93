//! The host's token store on par with the core's [`TokenStorage`]: entries
//! by key, registrations by issuer, versions with compare-and-set, and the
//! refresh lease, so several processes sharing one store never spend a
//! rotating refresh token twice.

use std::ffi::{CString, c_char, c_int, c_uint, c_void};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_client::error::Step;
use mcp_oauth_client::{
    CasOutcome, Error as CoreError, Lease, OAuthClientInformationFull, OAuthToken, Result as CoreResult, TokenStorage,
    Version, Versioned,
};
use zeroize::Zeroizing;

use crate::boundary::to_cstring;
use crate::callbacks::{Answer, Userdata, encode, parse};
use crate::error::Failure;

/// The version of `mcp_oauth_token_store` this header describes.
pub const MCP_OAUTH_TOKEN_STORE_VERSION: c_uint = 1;

/// Token storage provided by the host, with what lets several processes
/// share one store: an alternative to `mcp_oauth_storage_callbacks` (whose
/// four callbacks suit a store one process owns). Set with
/// `mcp_oauth_config_builder_set_token_store`; initialize it with
/// `MCP_OAUTH_TOKEN_STORE_INIT` (a versioned struct).
///
/// - `key`: every callback gets the key of the entry, the MCP server URL as
///   configured: one store may serve many providers.
/// - Versions: the store keeps a version of each entry's tokens, a number
///   that changes on every write and is never 0 while tokens are stored
///   (0 means none). `compare_and_set_tokens` writes only if the entry is
///   still at the version the library read; otherwise it writes nothing and
///   says so (`*stored_out = false`): the library then reads what another
///   process wrote instead of overwriting it.
/// - The lease: while it refreshes, the library holds the entry's refresh
///   lease; another process wanting to refresh waits for it, then reads the
///   new tokens instead of spending the refresh token again. A lease must
///   exclude every process sharing the store (a lock file, a database row).
///
/// JSON and return values as for `mcp_oauth_storage_callbacks` (0 for
/// success; anything else fails the operation with
/// `MCP_OAUTH_RESULT_STORAGE` and is kept as the error's callback code).
/// Threads: every callback runs on a thread of the library's blocking pool
/// (`release_lease` on whichever library thread ends the refresh); they
/// may run concurrently for different keys.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_token_store {
    /// `MCP_OAUTH_TOKEN_STORE_VERSION` (set by `MCP_OAUTH_TOKEN_STORE_INIT`).
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Answer with the entry's tokens' JSON through `mcp_oauth_answer_set`
    /// and write their version to `*version_out`; leave `answer` unset and
    /// write 0 when none are stored. Required.
    pub load_tokens: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            key: *const c_char,
            answer: *mut crate::callbacks::mcp_oauth_answer,
            version_out: *mut u64,
        ) -> c_int,
    >,
    /// If the entry's version is still `expected_version` (0: no tokens
    /// stored), replace its tokens with `tokens_json` (NULL: remove them),
    /// give the entry a new version (0 after a removal) in `*version_out`
    /// and set `*stored_out` to true; otherwise write nothing and set
    /// `*stored_out` to false. Atomic with respect to every process sharing
    /// the store. `tokens_json` is borrowed for the call (overwritten
    /// afterwards). Required.
    pub compare_and_set_tokens: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            key: *const c_char,
            expected_version: u64,
            tokens_json: *const c_char,
            stored_out: *mut bool,
            version_out: *mut u64,
        ) -> c_int,
    >,
    /// Answer with the client information registered with `issuer` (NULL:
    /// the one in use), or leave `answer` unset when there is none.
    /// Required.
    pub get_client_info: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            key: *const c_char,
            issuer: *const c_char,
            answer: *mut crate::callbacks::mcp_oauth_answer,
        ) -> c_int,
    >,
    /// Store client information (its JSON's `issuer` names the
    /// authorization server it was registered with), replacing the one in
    /// use. Required.
    pub set_client_info: Option<
        unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, client_info_json: *const c_char) -> c_int,
    >,
    /// Forget the registration made with `issuer` (the server no longer
    /// knows the client); `*removed_out` true when none is left for it.
    /// Optional: without it, a stale registration is replaced at the next
    /// registration instead.
    pub remove_client_info: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            key: *const c_char,
            issuer: *const c_char,
            removed_out: *mut bool,
        ) -> c_int,
    >,
    /// Take the entry's refresh lease for at most `ttl_ms`, waiting at most
    /// `wait_ms` for another holder to release it (this callback may block
    /// that long). Return 0 once held; anything else when it could not be
    /// had (the operation fails with `MCP_OAUTH_RESULT_STORAGE`). Optional:
    /// without it, refreshes are coordinated only within the provider.
    pub acquire_lease:
        Option<unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, ttl_ms: u64, wait_ms: u64) -> c_int>,
    /// Release the lease `acquire_lease` took. Must return quickly. Required
    /// with `acquire_lease`.
    pub release_lease: Option<unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char)>,
    /// Called exactly once per `userdata` when the library will make no
    /// more calls with it (a lease still held is released first), counted
    /// as for `mcp_oauth_storage_callbacks.release`. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

const MCP_OAUTH_TOKEN_STORE_SIZES: &[usize] = &[size_of::<mcp_oauth_token_store>()];

struct StoreInner {
    cb: mcp_oauth_token_store,
    key: CString,
    userdata: Userdata,
}
// The host promises (in the header) that its callbacks may run on the
// library's threads.
unsafe impl Send for StoreInner {}
unsafe impl Sync for StoreInner {}

/// The host's token store as a [`TokenStorage`] for the entry `key`.
pub(crate) struct HostStore {
    inner: Arc<StoreInner>,
}

/// The host's store as given to the builder, before the key is known.
pub(crate) struct HostStoreConfig {
    cb: mcp_oauth_token_store,
    userdata: Userdata,
}

impl HostStoreConfig {
    pub(crate) unsafe fn new(store: *const mcp_oauth_token_store) -> Result<Self, Failure> {
        // SAFETY: the caller passes a readable struct of the version it says.
        let cb = unsafe { crate::versioned::read(store, "store", MCP_OAUTH_TOKEN_STORE_SIZES) }?;
        for (missing, name) in [
            (cb.load_tokens.is_none(), "store->load_tokens"),
            (cb.compare_and_set_tokens.is_none(), "store->compare_and_set_tokens"),
            (cb.get_client_info.is_none(), "store->get_client_info"),
            (cb.set_client_info.is_none(), "store->set_client_info"),
            (
                cb.acquire_lease.is_some() && cb.release_lease.is_none(),
                "store->release_lease (required with acquire_lease)",
            ),
        ] {
            if missing {
                return Err(Failure::null(name));
            }
        }
        Ok(HostStoreConfig {
            cb,
            userdata: Userdata::new(cb.userdata, cb.release),
        })
    }

    /// The store for the entry `key`.
    pub(crate) fn for_key(self, key: &str) -> HostStore {
        HostStore {
            inner: Arc::new(StoreInner {
                cb: self.cb,
                key: to_cstring(key),
                userdata: self.userdata,
            }),
        }
    }
}

fn failed(name: &str, rc: c_int) -> CoreError {
    CoreError::storage(format!("the token store's {name} callback failed (returned {rc})"))
        .with_callback_code(rc.into())
}

async fn blocking<T: Send + 'static>(
    inner: &Arc<StoreInner>,
    f: impl FnOnce(&StoreInner) -> CoreResult<T> + Send + 'static,
) -> CoreResult<T> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| CoreError::storage(format!("a token store callback task failed: {e}")))?
}

fn new_answer() -> Box<Answer> {
    Box::new(Answer(None))
}

fn answer_ptr(a: &mut Answer) -> *mut crate::callbacks::mcp_oauth_answer {
    (a as *mut Answer).cast()
}

fn json_cstring(json: String, name: &str) -> CoreResult<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(
        CString::new(json)
            .map_err(|_| CoreError::storage(format!("cannot pass a NUL byte to {name}")))?
            .into_bytes_with_nul(),
    ))
}

/// A held lease: releases it at the host when dropped.
struct HeldLease(Arc<StoreInner>);

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(release) = self.0.cb.release_lease {
            // SAFETY: the host's callback with its userdata and the key.
            let _ = std::panic::catch_unwind(|| unsafe { release(self.0.userdata.ptr(), self.0.key.as_ptr()) });
        }
    }
}

#[async_trait]
impl TokenStorage for HostStore {
    async fn get_tokens(&self) -> CoreResult<Option<OAuthToken>> {
        Ok(self.load_tokens().await?.value)
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> CoreResult<()> {
        // An unconditional write, as compare-and-sets against what is there.
        for _ in 0..16 {
            let current = self.load_tokens().await?;
            if let CasOutcome::Stored(_) = self
                .compare_and_set_tokens(current.version, Some(tokens.clone()))
                .await?
            {
                return Ok(());
            }
        }
        Err(CoreError::storage(
            "the token store kept changing while the library wrote the tokens",
        ))
    }

    async fn get_client_info(&self) -> CoreResult<Option<OAuthClientInformationFull>> {
        self.client_info(None).await
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> CoreResult<()> {
        let json = json_cstring(encode(&info)?, "set_client_info")?;
        blocking(&self.inner, move |i| {
            let f = i.cb.set_client_info.ok_or_else(|| failed("set_client_info", -1))?;
            // SAFETY: the host's callback, its userdata, strings alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), i.key.as_ptr(), json.as_ptr().cast()) };
            if rc != 0 {
                return Err(failed("set_client_info", rc));
            }
            Ok(())
        })
        .await
    }

    async fn get_client_info_for(&self, issuer: &str) -> CoreResult<Option<OAuthClientInformationFull>> {
        self.client_info(Some(issuer)).await
    }

    async fn remove_client_info(&self, issuer: &str) -> CoreResult<bool> {
        if self.inner.cb.remove_client_info.is_none() {
            return Ok(false);
        }
        let issuer = to_cstring(issuer);
        blocking(&self.inner, move |i| {
            let f =
                i.cb.remove_client_info
                    .ok_or_else(|| failed("remove_client_info", -1))?;
            let mut removed = false;
            // SAFETY: the host's callback, its userdata, strings and an output alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), i.key.as_ptr(), issuer.as_ptr(), &mut removed) };
            if rc != 0 {
                return Err(failed("remove_client_info", rc));
            }
            Ok(removed)
        })
        .await
    }

    async fn load_tokens(&self) -> CoreResult<Versioned<OAuthToken>> {
        let (json, version) = blocking(&self.inner, |i| {
            let f = i.cb.load_tokens.ok_or_else(|| failed("load_tokens", -1))?;
            let mut answer = new_answer();
            let mut version = 0u64;
            // SAFETY: the host's callback, its userdata, the key, an answer and
            // an output alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), i.key.as_ptr(), answer_ptr(&mut answer), &mut version) };
            if rc != 0 {
                return Err(failed("load_tokens", rc));
            }
            Ok((answer.0.take(), version))
        })
        .await?;
        let value: Option<OAuthToken> = parse(json, "load_tokens")?;
        match (&value, version) {
            (Some(_), 0) => Err(CoreError::storage(
                "the token store's load_tokens answered tokens with version 0 (0 means none stored)",
            )),
            (None, _) => Ok(Versioned {
                value: None,
                version: Version::ABSENT,
            }),
            (Some(_), v) => Ok(Versioned {
                value,
                version: Version(v),
            }),
        }
    }

    async fn compare_and_set_tokens(&self, expected: Version, tokens: Option<OAuthToken>) -> CoreResult<CasOutcome> {
        let json = match &tokens {
            Some(t) => Some(json_cstring(encode(t)?, "compare_and_set_tokens")?),
            None => None,
        };
        let (stored, version) = blocking(&self.inner, move |i| {
            let f =
                i.cb.compare_and_set_tokens
                    .ok_or_else(|| failed("compare_and_set_tokens", -1))?;
            let (mut stored, mut version) = (false, 0u64);
            let json_ptr = json.as_ref().map_or(std::ptr::null(), |j| j.as_ptr().cast::<c_char>());
            // SAFETY: the host's callback, its userdata, strings and outputs alive until it returns.
            let rc = unsafe {
                f(
                    i.userdata.ptr(),
                    i.key.as_ptr(),
                    expected.0,
                    json_ptr,
                    &mut stored,
                    &mut version,
                )
            };
            if rc != 0 {
                return Err(failed("compare_and_set_tokens", rc));
            }
            Ok((stored, version))
        })
        .await?;
        if !stored {
            return Ok(CasOutcome::Conflict(self.load_tokens().await?));
        }
        match (tokens.is_some(), version) {
            (true, 0) => Err(CoreError::storage(
                "the token store's compare_and_set_tokens stored tokens at version 0 (0 means none stored)",
            )),
            (_, v) => Ok(CasOutcome::Stored(Version(v))),
        }
    }

    async fn acquire_lease(&self, ttl: Duration, wait: Duration) -> CoreResult<Lease> {
        if self.inner.cb.acquire_lease.is_none() {
            return Ok(Lease::unguarded(ttl));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (ttl_ms, wait_ms) = (ms(ttl), ms(wait));
        blocking(&self.inner, move |i| {
            let f = i.cb.acquire_lease.ok_or_else(|| failed("acquire_lease", -1))?;
            // SAFETY: the host's callback, its userdata and the key.
            let rc = unsafe { f(i.userdata.ptr(), i.key.as_ptr(), ttl_ms, wait_ms) };
            if rc != 0 {
                return Err(CoreError::new(
                    mcp_oauth_client::ErrorKind::Storage,
                    Step::Storage,
                    format!(
                        "the token store's refresh lease could not be had within {wait_ms} ms (acquire_lease \
                         returned {rc})"
                    ),
                )
                .with_callback_code(rc.into()));
            }
            Ok(())
        })
        .await?;
        Ok(Lease::new(ttl, Box::new(HeldLease(self.inner.clone()))))
    }
}

impl HostStore {
    async fn client_info(&self, issuer: Option<&str>) -> CoreResult<Option<OAuthClientInformationFull>> {
        let issuer = issuer.map(to_cstring);
        let json = blocking(&self.inner, move |i| {
            let f = i.cb.get_client_info.ok_or_else(|| failed("get_client_info", -1))?;
            let mut answer = new_answer();
            let issuer_ptr = issuer.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
            // SAFETY: the host's callback, its userdata, strings and an answer alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), i.key.as_ptr(), issuer_ptr, answer_ptr(&mut answer)) };
            if rc != 0 {
                return Err(failed("get_client_info", rc));
            }
            Ok(answer.0.take())
        })
        .await?;
        parse(json, "get_client_info")
    }
}
