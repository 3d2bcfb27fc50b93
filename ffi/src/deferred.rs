//! The person's step, answered later: the host is handed the authorization
//! (its URL, `state` and redirect URI) and answers it when the person comes
//! back, from any thread, without parking one (an
//! `ASWebAuthenticationSession`, a Go channel, an event loop).

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, Error as CoreError, Result as CoreResult, error::Step,
};
use tokio::sync::oneshot;
use url::Url;
use zeroize::Zeroizing;

use crate::boundary::{self, to_cstring};
use crate::callbacks::{HostPtr, Userdata};
use crate::error::{Failure, mcp_oauth_result};

/// The version of `mcp_oauth_authorization_callbacks` this header describes.
pub const MCP_OAUTH_AUTHORIZATION_CALLBACKS_VERSION: c_uint = 1;

/// The person's step of the authorization-code flow, answered later: an
/// alternative to `mcp_oauth_handler_callbacks` for hosts that must not
/// block a thread while the person logs in. Set with
/// `mcp_oauth_config_builder_set_authorization_callbacks`; initialize it
/// with `MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT` (a versioned struct).
///
/// The exchange: the library calls `begin` with an `mcp_oauth_authorization`
/// (the URL to send the person to, its `state` and the redirect URI); the
/// host sends the person there and, when they come back (or give up),
/// answers exactly once, from any thread, with
/// `mcp_oauth_authorization_complete` or `mcp_oauth_authorization_fail`,
/// which give the authorization back to the library. The authorization
/// timeout (`mcp_oauth_config_builder_set_authorization_timeout_ms`) bounds
/// the wait; when it passes, or the operation is cancelled, or the provider
/// freed, the library calls `cancel` (close the browser sheet) and the
/// authorization must still be answered, to free it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_authorization_callbacks {
    /// `MCP_OAUTH_AUTHORIZATION_CALLBACKS_VERSION` when the host was built
    /// (set by `MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT`).
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Send the person to `mcp_oauth_authorization_url(authorization)`.
    /// Runs on a thread of the library's blocking pool and should return at
    /// once (it may block briefly). Return 0 when the authorization was
    /// taken (it will be answered, possibly before `begin` returns);
    /// anything else when it was not (it must then not be answered): the
    /// flow fails with `MCP_OAUTH_RESULT_HANDLER`, the returned number kept
    /// in the error (`mcp_oauth_error_callback_code`). Required.
    pub begin:
        Option<unsafe extern "C" fn(userdata: *mut c_void, authorization: *mut mcp_oauth_authorization) -> c_int>,
    /// The library no longer waits for `authorization` (the authorization
    /// timeout passed, the operation was cancelled, the provider was
    /// freed): dismiss what shows it, and still answer it to free it. The
    /// authorization stays valid during the call. At most once, only for an
    /// authorization `begin` took, never after the library got its answer;
    /// on a library thread; must return quickly and may answer it. Optional.
    pub cancel: Option<unsafe extern "C" fn(userdata: *mut c_void, authorization: *mut mcp_oauth_authorization)>,
    /// Called exactly once per `userdata` when the library will make no
    /// more calls with it, counted as for
    /// `mcp_oauth_storage_callbacks.release`. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

const MCP_OAUTH_AUTHORIZATION_CALLBACKS_SIZES: &[usize] = &[size_of::<mcp_oauth_authorization_callbacks>()];

/// One authorization waiting for the person: given to
/// `mcp_oauth_authorization_callbacks.begin`, then the host's until it
/// answers with `mcp_oauth_authorization_complete` or
/// `mcp_oauth_authorization_fail` (exactly once), which frees it. Strings
/// its accessors return are borrowed from it until then.
pub struct mcp_oauth_authorization {
    _private: [u8; 0],
}

type Answer = Result<Zeroizing<String>, (i64, String)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Beginning,
    Taken,
    AbandonedWhileBeginning,
    Done,
}

struct AuthShared {
    url: CString,
    state: Option<CString>,
    redirect_uri: Option<CString>,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
    phase: Mutex<Phase>,
    answered: AtomicBool,
}

impl AuthShared {
    fn take_answer(&self) -> Option<oneshot::Sender<Answer>> {
        self.answer.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn advance(&self, next: impl FnOnce(Phase) -> Phase) -> Phase {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        let was = *phase;
        *phase = next(was);
        was
    }
}

fn auth_ref<'a>(p: *const mcp_oauth_authorization) -> Option<&'a AuthShared> {
    // SAFETY: a non-NULL authorization came from `Arc::into_raw` and is not
    // answered yet, or the library holds a reference.
    unsafe { p.cast::<AuthShared>().as_ref() }
}

struct Inner {
    cb: mcp_oauth_authorization_callbacks,
    userdata: Userdata,
}
// The host promises (in the header) that its callbacks may run on the
// library's threads.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

/// Tells the host's `cancel` when dropped before the answer came.
struct Waiting {
    auth: Arc<AuthShared>,
    inner: Arc<Inner>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.auth.take_answer().is_none() {
            return;
        }
        let was = self.auth.advance(|p| match p {
            Phase::Beginning => Phase::AbandonedWhileBeginning,
            _ => Phase::Done,
        });
        if was == Phase::Taken {
            tell_cancel(&self.inner, &self.auth);
        }
    }
}

fn tell_cancel(inner: &Inner, auth: &Arc<AuthShared>) {
    if let Some(cancel) = inner.cb.cancel {
        let ptr = Arc::as_ptr(auth).cast_mut().cast::<mcp_oauth_authorization>();
        // SAFETY: the host's callback with its userdata and a live authorization.
        let _ = std::panic::catch_unwind(|| unsafe { cancel(inner.userdata.ptr(), ptr) });
    }
}

/// An authorization begun, waiting for its answer.
struct Pending {
    rx: oneshot::Receiver<Answer>,
    _waiting: Waiting,
}

/// The host's deferred callbacks as an [`AuthorizationHandler`].
pub(crate) struct DeferredHandler {
    inner: Arc<Inner>,
    pending: Mutex<Option<Pending>>,
}

impl DeferredHandler {
    pub(crate) unsafe fn new(cb: *const mcp_oauth_authorization_callbacks) -> Result<Self, Failure> {
        // SAFETY: the caller passes a readable struct of the version it says.
        let cb = unsafe { crate::versioned::read(cb, "callbacks", MCP_OAUTH_AUTHORIZATION_CALLBACKS_SIZES) }?;
        if cb.begin.is_none() {
            return Err(Failure::null("callbacks->begin"));
        }
        Ok(DeferredHandler {
            inner: Arc::new(Inner {
                cb,
                userdata: Userdata::new(cb.userdata, cb.release),
            }),
            pending: Mutex::new(None),
        })
    }
}

fn query_param(url: &Url, name: &str) -> Option<CString> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| to_cstring(&v))
}

#[async_trait]
impl AuthorizationHandler for DeferredHandler {
    async fn redirect(&self, authorization_url: &Url) -> CoreResult<()> {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(AuthShared {
            url: to_cstring(authorization_url.as_str()),
            state: query_param(authorization_url, "state"),
            redirect_uri: query_param(authorization_url, "redirect_uri"),
            answer: Mutex::new(Some(tx)),
            phase: Mutex::new(Phase::Beginning),
            answered: AtomicBool::new(false),
        });
        let waiting = Waiting {
            auth: shared.clone(),
            inner: self.inner.clone(),
        };
        let keep = shared.clone();
        let host_ref = HostPtr(Arc::into_raw(shared).cast_mut().cast::<c_void>());
        let inner = self.inner.clone();
        let begun = tokio::task::spawn_blocking(move || {
            let host_ref = host_ref;
            let begin = inner.cb.begin?;
            let auth = host_ref.0.cast::<mcp_oauth_authorization>();
            // SAFETY: the host's callback with its userdata and the
            // authorization, whose reference it takes over when it returns 0.
            let rc = std::panic::catch_unwind(|| unsafe { begin(inner.userdata.ptr(), auth) }).unwrap_or(-1);
            if rc == 0 {
                let was = keep.advance(|p| match p {
                    Phase::Beginning => Phase::Taken,
                    _ => Phase::Done,
                });
                if was == Phase::AbandonedWhileBeginning && !keep.answered.load(Ordering::Acquire) {
                    tell_cancel(&inner, &keep);
                }
                None
            } else {
                keep.advance(|_| Phase::Done);
                // Not taken: the library takes its reference back.
                // SAFETY: the reference `into_raw` made, which the host gave up.
                drop(unsafe { Arc::from_raw(host_ref.0.cast_const().cast::<AuthShared>()) });
                Some(rc)
            }
        });
        // The pending answer is in place before `begin` can be awaited out.
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pending { rx, _waiting: waiting });
        match begun.await {
            Ok(None) => Ok(()),
            Ok(Some(rc)) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err(CoreError::handler(
                    Step::Authorization,
                    format!("the host's begin callback refused the authorization (returned {rc})"),
                )
                .with_callback_code(rc.into()))
            }
            Err(e) => Err(CoreError::handler(
                Step::Authorization,
                format!("the host's begin callback failed: {e}"),
            )),
        }
    }

    async fn callback(&self) -> CoreResult<AuthorizationCodeResult> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| CoreError::handler(Step::Callback, "no authorization was begun"))?;
        let answer = pending
            .rx
            .await
            .map_err(|_| CoreError::handler(Step::Callback, "the authorization was dropped without an answer"))?;
        match answer {
            Ok(redirect) => AuthorizationCodeResult::from_redirect(&redirect),
            Err((code, message)) => Err(CoreError::handler(
                Step::Callback,
                format!("the host failed the authorization: {message}"),
            )
            .with_callback_code(code)),
        }
    }
}

/// Take back the host's reference (it answered).
unsafe fn take_host_ref(auth: *mut mcp_oauth_authorization) -> Option<Arc<AuthShared>> {
    // SAFETY: a non-NULL authorization came from `Arc::into_raw` and the
    // host answers it once.
    (!auth.is_null()).then(|| unsafe { Arc::from_raw(auth.cast_const().cast::<AuthShared>()) })
}

/// The URL to send the person to. Borrowed from `authorization`; NULL when
/// it is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_authorization_url(authorization: *const mcp_oauth_authorization) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        auth_ref(authorization).map_or(std::ptr::null(), |a| a.url.as_ptr())
    })
}

/// The `state` of this authorization (the redirect back carries it: a host
/// serving several logins at once matches them with it). Borrowed from
/// `authorization`; NULL when it is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_authorization_state(authorization: *const mcp_oauth_authorization) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        auth_ref(authorization)
            .and_then(|a| a.state.as_deref())
            .map_or(std::ptr::null(), CStr::as_ptr)
    })
}

/// The redirect URI the person will be sent back to (where to listen, or
/// what URL scheme to catch). Borrowed from `authorization`; NULL when it
/// is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_authorization_redirect_uri(
    authorization: *const mcp_oauth_authorization,
) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        auth_ref(authorization)
            .and_then(|a| a.redirect_uri.as_deref())
            .map_or(std::ptr::null(), CStr::as_ptr)
    })
}

/// Answer `authorization` with the full redirect URL the person came back
/// with (or just its query string; an error redirect such as
/// `?error=access_denied&...` is a valid answer, which the library reports),
/// and give it back (it is freed). Callable from any thread, once. `redirect`
/// is copied. An answer after `cancel` is ignored.
///
/// The authorization is given back whatever this returns (unless it is
/// NULL); with a NULL or invalid `redirect` the flow fails.
/// Answering it a second time, or using it after it was given back, is
/// undefined behaviour (it is freed memory; the library cannot detect it).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_authorization_complete(
    authorization: *mut mcp_oauth_authorization,
    redirect: *const c_char,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let shared = unsafe { take_host_ref(authorization) }.ok_or_else(|| Failure::null("authorization"))?;
        shared.answered.store(true, Ordering::Release);
        let parsed = unsafe { boundary::str_arg(redirect, "redirect") }.map(|r| Zeroizing::new(r.to_string()));
        let Some(tx) = shared.take_answer() else {
            return parsed.map(|_| ());
        };
        match parsed {
            Ok(r) => {
                let _ = tx.send(Ok(r));
                Ok(())
            }
            Err(f) => {
                let _ = tx.send(Err((0, "the host answered with an invalid redirect".into())));
                Err(f)
            }
        }
    })
}

/// Answer `authorization` with a failure (the person closed the window, the
/// host gave up), and give it back (it is freed). `code` is the host's own,
/// kept in the error (`mcp_oauth_error_callback_code`); `message` (copied,
/// may be NULL) goes into the error message and logs: no secret in it. The
/// flow fails with `MCP_OAUTH_RESULT_HANDLER`. Callable from any thread,
/// once. An answer after `cancel` is ignored. A `message` that is not UTF-8
/// is read with replacement characters. Answering a second time, or using
/// the authorization after it was given back, is undefined behaviour (it is
/// freed memory; the library cannot detect it).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (authorization).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_authorization_fail(
    authorization: *mut mcp_oauth_authorization,
    code: c_int,
    message: *const c_char,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let shared = unsafe { take_host_ref(authorization) }.ok_or_else(|| Failure::null("authorization"))?;
        shared.answered.store(true, Ordering::Release);
        let Some(tx) = shared.take_answer() else {
            return Ok(());
        };
        let message = if message.is_null() {
            format!("code {code}")
        } else {
            // SAFETY: a non-NULL message is a NUL-terminated string alive
            // for the call.
            unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
        };
        let _ = tx.send(Err((code.into(), message)));
        Ok(())
    })
}
