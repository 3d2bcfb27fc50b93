//! The host's callbacks: token storage and the redirect/callback handler.
//! Each runs on a thread of the runtime's blocking pool (`spawn_blocking`),
//! so a callback that waits (for a disk, for a person) never stalls the
//! runtime that serves every other request.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_uint, c_void};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, Error as CoreError, OAuthClientInformationFull, OAuthToken,
    Result as CoreResult, TokenStorage, error::Step,
};
use url::Url;
use zeroize::Zeroizing;

use crate::boundary::{self, BoxHandle};
use crate::error::{Failure, mcp_oauth_result};

/// Where a callback puts the text it answers with (a JSON document or a
/// redirect URL). Valid only during the callback it was passed to; set it
/// with `mcp_oauth_answer_set`.
pub struct mcp_oauth_answer {
    _private: [u8; 0],
}

pub(crate) struct Answer(pub(crate) Option<Zeroizing<String>>);

impl BoxHandle for mcp_oauth_answer {
    type Inner = Answer;
}

/// Answer a callback with `text` (NUL-terminated UTF-8), which is copied:
/// the caller keeps ownership. Calling it again replaces the previous answer.
/// `answer` is valid only until the callback it was given to returns: using
/// it afterwards (from another thread, or kept for later) is undefined
/// behaviour, which the library cannot detect.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_answer_set(answer: *mut mcp_oauth_answer, text: *const c_char) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let a = unsafe { mcp_oauth_answer::borrow_mut(answer) }.ok_or_else(|| Failure::null("answer"))?;
        let t = unsafe { boundary::str_arg(text, "text") }?;
        a.0 = Some(Zeroizing::new(t.to_string()));
        Ok(())
    })
}

/// The version of `mcp_oauth_storage_callbacks` this header describes.
pub const MCP_OAUTH_STORAGE_CALLBACKS_VERSION: c_uint = 1;
pub(crate) const MCP_OAUTH_STORAGE_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_storage_callbacks>()];

/// The version of `mcp_oauth_handler_callbacks` this header describes.
pub const MCP_OAUTH_HANDLER_CALLBACKS_VERSION: c_uint = 1;
pub(crate) const MCP_OAUTH_HANDLER_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_handler_callbacks>()];

/// Token storage provided by the host: four callbacks exchanging JSON.
///
/// The JSON is the schema of the MCP Python SDK's models: `OAuthToken`
/// (`access_token`, `token_type`, `expires_in`, `scope`, `refresh_token`, plus
/// this library's `expires_at`, seconds since the epoch) and
/// `OAuthClientInformationFull` (`client_id`, `client_secret`, the registered
/// metadata, plus `issuer`). Store the text as given and give it back
/// unchanged; it holds secrets.
///
/// Threads: every callback runs on a thread of the library's blocking pool,
/// never on the thread that called the library. Calls for one provider do
/// not overlap, but callbacks shared by several providers may run
/// concurrently. A callback may block (disk, keychain), and must not call a
/// blocking function of this library (it would get
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK`).
///
/// Return values: 0 for success; anything else is a failure, reported to the
/// caller of the operation as `MCP_OAUTH_RESULT_STORAGE`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_storage_callbacks {
    /// `MCP_OAUTH_STORAGE_CALLBACKS_VERSION` when the host was built (set by
    /// `MCP_OAUTH_STORAGE_CALLBACKS_INIT`). Members appended in later versions are not
    /// read from an older struct.
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Answer with the stored tokens' JSON through `mcp_oauth_answer_set`, or
    /// leave `answer` unset when none are stored. Required.
    pub get_tokens: Option<unsafe extern "C" fn(userdata: *mut c_void, answer: *mut mcp_oauth_answer) -> c_int>,
    /// Store `tokens_json` (replacing any), borrowed for the duration of the
    /// call (overwritten afterwards: copy it). Required.
    pub set_tokens: Option<unsafe extern "C" fn(userdata: *mut c_void, tokens_json: *const c_char) -> c_int>,
    /// Answer with the stored client information's JSON, or leave `answer`
    /// unset when none is stored. Required.
    pub get_client_info: Option<unsafe extern "C" fn(userdata: *mut c_void, answer: *mut mcp_oauth_answer) -> c_int>,
    /// Store `client_info_json` (replacing any), borrowed for the duration of
    /// the call (overwritten afterwards: copy it). Required.
    pub set_client_info: Option<unsafe extern "C" fn(userdata: *mut c_void, client_info_json: *const c_char) -> c_int>,
    /// Called exactly once per `userdata`, when the library will make no
    /// more calls with it: the library counts every struct it was given with
    /// this `userdata` and this `release` (several builders and providers
    /// may share one store, and storage and handler callbacks may share one
    /// `userdata`), and calls `release` when the last one is done (its
    /// builder freed, its storage replaced, or its provider freed and that
    /// provider's operations finished). May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

/// The redirect and callback handlers provided by the host, for the
/// authorization-code flow.
///
/// Threads: both callbacks run on a thread of the library's blocking pool,
/// never on the thread that called the library, and one at a time per
/// provider (`redirect`, then `callback`). Both may block: `callback`
/// typically waits minutes for a person. They must not call a blocking
/// function of this library (`MCP_OAUTH_RESULT_WOULD_DEADLOCK`).
///
/// Return values: 0 for success; anything else is a failure, reported as
/// `MCP_OAUTH_RESULT_HANDLER`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_handler_callbacks {
    /// `MCP_OAUTH_HANDLER_CALLBACKS_VERSION` when the host was built (set by
    /// `MCP_OAUTH_HANDLER_CALLBACKS_INIT`). Members appended in later versions are not
    /// read from an older struct.
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Send the person to `authorization_url` (open a browser, print it, ...).
    /// The URL is borrowed for the duration of the call. Required.
    pub redirect: Option<unsafe extern "C" fn(userdata: *mut c_void, authorization_url: *const c_char) -> c_int>,
    /// Wait for the person to come back, then answer through
    /// `mcp_oauth_answer_set` with the full redirect URL the authorization
    /// server sent them to (e.g. `http://127.0.0.1:8765/callback?code=...&state=...&iss=...`)
    /// or just its query string. An error redirect (`?error=access_denied&...`)
    /// is a valid answer: the library reports it. Required.
    pub callback: Option<unsafe extern "C" fn(userdata: *mut c_void, answer: *mut mcp_oauth_answer) -> c_int>,
    /// Called exactly once per `userdata`, when the library will make no
    /// more calls with it, counted as for
    /// `mcp_oauth_storage_callbacks.release`. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

/// The host promises (in the header) that its callbacks and userdata may be
/// used from the library's threads.
#[derive(Clone, Copy)]
pub(crate) struct HostPtr(pub(crate) *mut c_void);
unsafe impl Send for HostPtr {}
unsafe impl Sync for HostPtr {}

pub(crate) type ReleaseFn = unsafe extern "C" fn(userdata: *mut c_void);

/// How many [`Userdata`] hold each (userdata, release) pair, across every
/// callbacks struct, builder and provider of the process.
static HOLDERS: Mutex<Option<HashMap<(usize, usize), usize>>> = Mutex::new(None);

/// A host's userdata and its `release`, which runs exactly once: when the
/// last holder of the same pair is dropped. Two providers given the same
/// userdata (two `set_*_callbacks` calls, or storage and handler callbacks
/// sharing one) release it once, after both are done with it.
pub(crate) struct Userdata {
    ptr: HostPtr,
    release: Option<ReleaseFn>,
}

impl Userdata {
    pub(crate) fn new(ptr: *mut c_void, release: Option<ReleaseFn>) -> Self {
        if let Some(r) = release {
            let mut holders = HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
            *holders.get_or_insert_with(HashMap::new).entry(key(ptr, r)).or_insert(0) += 1;
        }
        Userdata {
            ptr: HostPtr(ptr),
            release,
        }
    }

    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr.0
    }
}

fn key(ptr: *mut c_void, release: ReleaseFn) -> (usize, usize) {
    (ptr as usize, release as usize)
}

impl Drop for Userdata {
    fn drop(&mut self) {
        let Some(release) = self.release else { return };
        let last = {
            let mut holders = HOLDERS.lock().unwrap_or_else(|p| p.into_inner());
            let map = holders.get_or_insert_with(HashMap::new);
            let k = key(self.ptr.0, release);
            match map.get_mut(&k) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    map.remove(&k);
                    true
                }
                None => false,
            }
        };
        if last {
            // SAFETY: the host's release callback, called once (the last
            // holder of this userdata is gone), outside the lock.
            unsafe { release(self.ptr.0) }
        }
    }
}

struct StorageInner {
    cb: mcp_oauth_storage_callbacks,
    userdata: Userdata,
}
// The host promises (in the header) that its callbacks may run on the
// library's threads.
unsafe impl Send for StorageInner {}
unsafe impl Sync for StorageInner {}

/// The host's storage callbacks as a [`TokenStorage`].
pub(crate) struct CallbackStorage {
    inner: Arc<StorageInner>,
}

impl CallbackStorage {
    /// Take over the host's callbacks; fails (without taking them) when a
    /// required one is NULL.
    pub(crate) fn new(cb: &mcp_oauth_storage_callbacks) -> Result<Self, Failure> {
        if cb.get_tokens.is_none() {
            return Err(Failure::null("callbacks->get_tokens"));
        }
        if cb.set_tokens.is_none() {
            return Err(Failure::null("callbacks->set_tokens"));
        }
        if cb.get_client_info.is_none() {
            return Err(Failure::null("callbacks->get_client_info"));
        }
        if cb.set_client_info.is_none() {
            return Err(Failure::null("callbacks->set_client_info"));
        }
        Ok(CallbackStorage {
            inner: Arc::new(StorageInner {
                cb: *cb,
                userdata: Userdata::new(cb.userdata, cb.release),
            }),
        })
    }
}

/// Run a host callback on the blocking pool; the Arc keeps the callbacks
/// alive (not released) until it returns.
async fn on_blocking_pool<T: Send + 'static, I: Send + Sync + 'static>(
    inner: &Arc<I>,
    step: Step,
    f: impl FnOnce(&I) -> CoreResult<T> + Send + 'static,
) -> CoreResult<T> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| CoreError::new(step_kind(step), step, format!("a host callback task failed: {e}")))?
}

fn step_kind(step: Step) -> mcp_oauth_client::ErrorKind {
    if step == Step::Storage {
        mcp_oauth_client::ErrorKind::Storage
    } else {
        mcp_oauth_client::ErrorKind::Handler
    }
}

type GetFn = unsafe extern "C" fn(*mut c_void, *mut mcp_oauth_answer) -> c_int;
type SetFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

fn call_get(f: GetFn, userdata: *mut c_void, name: &str) -> CoreResult<Option<Zeroizing<String>>> {
    let mut answer = Box::new(Answer(None));
    let ptr: *mut mcp_oauth_answer = (&mut *answer as *mut Answer).cast();
    // SAFETY: the host's callback with its userdata and an answer that lives
    // until it returns.
    let rc = unsafe { f(userdata, ptr) };
    if rc != 0 {
        return Err(
            CoreError::storage(format!("the storage callback {name} failed (returned {rc})"))
                .with_callback_code(rc.into()),
        );
    }
    Ok(answer.0.take())
}

fn call_set(f: SetFn, userdata: *mut c_void, name: &str, json: String) -> CoreResult<()> {
    let json = Zeroizing::new(
        CString::new(json)
            .map_err(|_| CoreError::storage(format!("cannot pass a NUL byte to {name}")))?
            .into_bytes_with_nul(),
    );
    // SAFETY: the host's callback with its userdata and a NUL-terminated
    // string alive until it returns.
    let rc = unsafe { f(userdata, json.as_ptr().cast()) };
    if rc != 0 {
        return Err(
            CoreError::storage(format!("the storage callback {name} failed (returned {rc})"))
                .with_callback_code(rc.into()),
        );
    }
    Ok(())
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    json: Option<Zeroizing<String>>,
    name: &str,
) -> CoreResult<Option<T>> {
    let Some(json) = json else { return Ok(None) };
    serde_json::from_str(&json).map(Some).map_err(|e| {
        CoreError::storage(format!(
            "the storage callback {name} answered JSON that does not parse (line {} column {}: {})",
            e.line(),
            e.column(),
            e.classify_name()
        ))
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // The message of a serde error may quote the input, which holds secrets;
    // only its category is reported.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong fields or types",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> CoreResult<String> {
    serde_json::to_string(value).map_err(|e| CoreError::storage(format!("cannot encode for storage: {e}")))
}

#[async_trait]
impl TokenStorage for CallbackStorage {
    async fn get_tokens(&self) -> CoreResult<Option<OAuthToken>> {
        on_blocking_pool(&self.inner, Step::Storage, |i| {
            let f =
                i.cb.get_tokens
                    .ok_or_else(|| CoreError::storage("no get_tokens callback"))?;
            parse(call_get(f, i.userdata.ptr(), "get_tokens")?, "get_tokens")
        })
        .await
    }

    async fn set_tokens(&self, tokens: OAuthToken) -> CoreResult<()> {
        let json = encode(&tokens)?;
        on_blocking_pool(&self.inner, Step::Storage, move |i| {
            let f =
                i.cb.set_tokens
                    .ok_or_else(|| CoreError::storage("no set_tokens callback"))?;
            call_set(f, i.userdata.ptr(), "set_tokens", json)
        })
        .await
    }

    async fn get_client_info(&self) -> CoreResult<Option<OAuthClientInformationFull>> {
        on_blocking_pool(&self.inner, Step::Storage, |i| {
            let f =
                i.cb.get_client_info
                    .ok_or_else(|| CoreError::storage("no get_client_info callback"))?;
            parse(call_get(f, i.userdata.ptr(), "get_client_info")?, "get_client_info")
        })
        .await
    }

    async fn set_client_info(&self, info: OAuthClientInformationFull) -> CoreResult<()> {
        let json = encode(&info)?;
        on_blocking_pool(&self.inner, Step::Storage, move |i| {
            let f =
                i.cb.set_client_info
                    .ok_or_else(|| CoreError::storage("no set_client_info callback"))?;
            call_set(f, i.userdata.ptr(), "set_client_info", json)
        })
        .await
    }
}

struct HandlerInner {
    cb: mcp_oauth_handler_callbacks,
    userdata: Userdata,
}
// As for storage.
unsafe impl Send for HandlerInner {}
unsafe impl Sync for HandlerInner {}

/// The host's handler callbacks as an [`AuthorizationHandler`].
pub(crate) struct CallbackHandler {
    inner: Arc<HandlerInner>,
}

impl CallbackHandler {
    pub(crate) fn new(cb: &mcp_oauth_handler_callbacks) -> Result<Self, Failure> {
        if cb.redirect.is_none() {
            return Err(Failure::null("callbacks->redirect"));
        }
        if cb.callback.is_none() {
            return Err(Failure::null("callbacks->callback"));
        }
        Ok(CallbackHandler {
            inner: Arc::new(HandlerInner {
                cb: *cb,
                userdata: Userdata::new(cb.userdata, cb.release),
            }),
        })
    }
}

#[async_trait]
impl AuthorizationHandler for CallbackHandler {
    async fn redirect(&self, authorization_url: &Url) -> CoreResult<()> {
        let url = CString::new(authorization_url.as_str())
            .map_err(|_| CoreError::handler(Step::Authorization, "the authorization URL holds a NUL byte"))?;
        on_blocking_pool(&self.inner, Step::Authorization, move |i| {
            let f =
                i.cb.redirect
                    .ok_or_else(|| CoreError::handler(Step::Authorization, "no redirect callback"))?;
            // SAFETY: the host's callback, its userdata, a string alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), url.as_ptr()) };
            if rc != 0 {
                return Err(CoreError::handler(
                    Step::Authorization,
                    format!("the host's redirect callback failed (returned {rc})"),
                )
                .with_callback_code(rc.into()));
            }
            Ok(())
        })
        .await
    }

    async fn callback(&self) -> CoreResult<AuthorizationCodeResult> {
        let answer = on_blocking_pool(&self.inner, Step::Callback, |i| {
            let f =
                i.cb.callback
                    .ok_or_else(|| CoreError::handler(Step::Callback, "no callback callback"))?;
            let mut answer = Box::new(Answer(None));
            let ptr: *mut mcp_oauth_answer = (&mut *answer as *mut Answer).cast();
            // SAFETY: the host's callback, its userdata, an answer alive until it returns.
            let rc = unsafe { f(i.userdata.ptr(), ptr) };
            if rc != 0 {
                return Err(CoreError::handler(
                    Step::Callback,
                    format!("the host's callback handler failed (returned {rc})"),
                )
                .with_callback_code(rc.into()));
            }
            answer.0.take().ok_or_else(|| {
                CoreError::handler(Step::Callback, "the host's callback handler returned no redirect URL")
            })
        })
        .await?;
        AuthorizationCodeResult::from_redirect(&answer)
    }
}
