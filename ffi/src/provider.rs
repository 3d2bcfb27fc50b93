//! The provider: header mode and the long operations, blocking and async.

use std::ffi::{CStr, CString, c_char, c_void};
use std::future::Future;
use std::sync::Arc;

use mcp_oauth_client::{Error as CoreError, OAuthClientProvider, ResponseAction, runtime};

use crate::boundary::{self, ArcHandle, opt_str_arg, out_arg, secret_to_raw, str_arg};
use crate::error::{ErrorObject, Failure, mcp_oauth_error, mcp_oauth_result};

/// The OAuth client for one MCP server. Thread-safe: every function taking
/// a provider may be called from many threads at once. Created by
/// `mcp_oauth_config_builder_build`, freed with `mcp_oauth_provider_free`.
pub struct mcp_oauth_provider {
    _private: [u8; 0],
}

pub(crate) struct Provider {
    pub(crate) core: OAuthClientProvider,
    pub(crate) redirect_uri: Option<CString>,
}

impl ArcHandle for mcp_oauth_provider {
    type Inner = Provider;
}

/// Called once when an asynchronous operation ends.
///
/// - `userdata`: as given when the operation was started.
/// - `result`: `MCP_OAUTH_RESULT_OK` or the failure's code.
/// - `value`: on success, the operation's string result or NULL (see each
///   `_async` function); NULL on failure. Borrowed: valid only during the
///   call (copy it; it may hold a token).
/// - `error`: on failure, the detail; NULL on success. Borrowed: valid only
///   during the call.
///
/// Runs on a thread of the library's blocking pool, never on the thread that
/// started the operation; completions of different operations may run
/// concurrently. It may block briefly, may start other `_async` operations
/// and may free the provider, but a blocking function of this library
/// returns `MCP_OAUTH_RESULT_WOULD_DEADLOCK` there.
pub type mcp_oauth_completion = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        result: mcp_oauth_result,
        value: *const c_char,
        error: *const mcp_oauth_error,
    ),
>;

/// Wait for `fut` on the shared runtime from a host thread; refuse on a
/// runtime thread (inside a callback), where waiting would deadlock.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output, Failure> {
    if runtime::inside_runtime() {
        return Err(Failure::would_deadlock());
    }
    let rt = runtime::shared()?;
    Ok(rt.block_on(fut))
}

fn provider_ref<'a>(p: *const mcp_oauth_provider) -> Result<&'a Provider, Failure> {
    unsafe { mcp_oauth_provider::borrow(p) }.ok_or_else(|| Failure::null("provider"))
}

fn action_header(action: ResponseAction) -> Option<String> {
    match action {
        ResponseAction::Retry(h) => Some(h),
        _ => None,
    }
}

/// Copy the `WWW-Authenticate` values out of the caller's array.
unsafe fn www_authenticate_arg(values: *const *const c_char, count: usize) -> Result<Vec<String>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if values.is_null() {
        return Err(Failure::null("www_authenticate"));
    }
    // SAFETY: the caller passes `count` readable pointers.
    let slice = unsafe { std::slice::from_raw_parts(values, count) };
    slice
        .iter()
        .map(|p| unsafe { str_arg(*p, "www_authenticate[i]") }.map(str::to_string))
        .collect()
}

/// Free a provider (give back the caller's reference). Operations already
/// started with `_async` functions hold their own reference: they run to the
/// end and their completion is still called exactly once; the provider's
/// storage and handler callbacks are released after the last one finishes.
/// NULL is a no-op. Do not use `provider` afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_free(provider: *mut mcp_oauth_provider) {
    boundary::guard_void(|| {
        if let Some(p) = unsafe { mcp_oauth_provider::release(provider) } {
            // Dropping may close the loopback receiver's socket, which
            // belongs to the runtime's I/O driver.
            match runtime::shared() {
                Ok(rt) => {
                    let _entered = rt.enter();
                    drop(p);
                }
                Err(_) => drop(p),
            }
        }
    })
}

/// The redirect URI of the built-in loopback receiver, with its bound port
/// (e.g. `"http://127.0.0.1:41873/callback"`), or NULL when the provider
/// does not use it. Borrowed from `provider`: valid until it is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_redirect_uri(provider: *const mcp_oauth_provider) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        match unsafe { mcp_oauth_provider::borrow(provider) } {
            Some(p) => p.redirect_uri.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            None => std::ptr::null(),
        }
    })
}

/// Header mode, before each request: the `Authorization` header value to
/// send (e.g. `"Bearer eyJ..."`).
///
/// With a valid token held this is fast: no I/O, no lock held by other
/// requests. On first use it loads stored tokens; it refreshes a token about
/// to expire. It never starts the interactive flow: with no usable token,
/// `*header_out` is NULL, the request goes out without `Authorization`, and
/// the server's 401 (given to `mcp_oauth_provider_handle_response`) starts it.
///
/// On success `*header_out` is the header value (owned by the caller; free
/// with `mcp_oauth_string_free`) or NULL. On failure nothing is written to
/// `header_out` and, when `err_out` is not NULL, `*err_out` is a new error.
///
/// Blocking when it must load or refresh. From a library callback it always
/// returns `MCP_OAUTH_RESULT_WOULD_DEADLOCK`, even with a valid token held
/// (one rule, whatever the state): use `mcp_oauth_provider_get_authorization_async` there.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_get_authorization(
    provider: *const mcp_oauth_provider,
    header_out: *mut *mut c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let out = unsafe { out_arg(header_out, "header_out") }?;
        // The same rule everywhere: no blocking function works from a
        // library thread, even when this call would not have waited.
        if runtime::inside_runtime() {
            return Err(Failure::would_deadlock());
        }
        let header = match p.core.cached_authorization() {
            Some(h) => Some(h),
            None => block_on(p.core.authorization())??,
        };
        *out = match header {
            Some(h) => secret_to_raw(h, "authorization header")?,
            None => std::ptr::null_mut(),
        };
        Ok(())
    })
}

/// Header mode, after a response: hand the provider the response's status
/// and its `WWW-Authenticate` values, and learn whether to send the request
/// again. On 401 it refreshes or runs the whole flow (discovery,
/// registration, the person's authorization through the handlers, the token
/// exchange); on 403 `insufficient_scope` it steps up the scopes. Call it at
/// most once per request: after a retry, give a second 401/403 to the
/// application.
///
/// - `status`: the HTTP status (any; 2xx/3xx reset the step-up counter).
/// - `www_authenticate`, `count`: every `WWW-Authenticate` value of the
///   response (borrowed; may be NULL when `count` is 0).
/// - `sent_header`: the `Authorization` value the request carried, or NULL.
///
/// On success `*retry_out` tells whether to retry; when true,
/// `*header_out` is the new header value (owned by the caller; free with
/// `mcp_oauth_string_free`), otherwise NULL. On failure nothing is written to
/// the outputs and, when `err_out` is not NULL, `*err_out` is a new error.
///
/// Blocking (possibly for minutes, while a person authorizes): returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from a library callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_handle_response(
    provider: *const mcp_oauth_provider,
    status: u16,
    www_authenticate: *const *const c_char,
    count: usize,
    sent_header: *const c_char,
    retry_out: *mut bool,
    header_out: *mut *mut c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let values = unsafe { www_authenticate_arg(www_authenticate, count) }?;
        let sent = unsafe { opt_str_arg(sent_header, "sent_header") }?;
        let retry = unsafe { out_arg(retry_out, "retry_out") }?;
        let out = unsafe { out_arg(header_out, "header_out") }?;
        let action = block_on(p.core.handle_response(status, &values, sent))??;
        let header = match action_header(action) {
            Some(h) => secret_to_raw(h, "authorization header")?,
            None => std::ptr::null_mut(),
        };
        *retry = !header.is_null();
        *out = header;
        Ok(())
    })
}

/// Run discovery and the whole flow now, before any request (a "log in"
/// command), replacing any tokens held.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error.
///
/// Blocking (possibly for minutes, while a person authorizes): returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from a library callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_authorize(
    provider: *const mcp_oauth_provider,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        block_on(p.core.authorize())??;
        Ok(())
    })
}

struct Completion {
    callback: unsafe extern "C" fn(*mut c_void, mcp_oauth_result, *const c_char, *const mcp_oauth_error),
    userdata: *mut c_void,
}
// The host promises (in the header) that its completion and userdata may be
// used from a library thread.
unsafe impl Send for Completion {}

impl Completion {
    fn call(self, outcome: Result<Option<String>, Failure>) {
        let (callback, userdata) = (self.callback, self.userdata);
        match outcome {
            Ok(value) => {
                let value = match value.map(CString::new).transpose() {
                    Ok(v) => v.map(|c| zeroize::Zeroizing::new(c.into_bytes_with_nul())),
                    Err(_) => {
                        let failure = Failure::flow("the result holds a NUL byte and cannot be passed to C");
                        return self.call(Err(failure));
                    }
                };
                let ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr().cast());
                // SAFETY: the host's completion, with pointers alive until it returns.
                unsafe { callback(userdata, mcp_oauth_result::Ok, ptr, std::ptr::null()) };
            }
            Err(f) => {
                let error = Box::new(ErrorObject::from(f));
                let code = error.code();
                let ptr: *const mcp_oauth_error = (&*error as *const ErrorObject).cast();
                // SAFETY: as above.
                unsafe { callback(userdata, code, std::ptr::null(), ptr) };
            }
        }
    }
}

/// Start `op` on the runtime; its completion is called exactly once, on the
/// blocking pool, after which the operation's provider reference is dropped.
fn spawn_op<Fut>(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
    op: impl FnOnce(Arc<Provider>) -> Fut,
) -> Result<(), Failure>
where
    Fut: Future<Output = Result<Option<String>, CoreError>> + Send + 'static,
{
    let callback = completion.ok_or_else(|| Failure::null("completion"))?;
    let p = unsafe { mcp_oauth_provider::clone_arc(provider) }.ok_or_else(|| Failure::null("provider"))?;
    let rt = runtime::shared()?;
    let fut = op(p.clone());
    let done = Completion { callback, userdata };
    rt.spawn(async move {
        // A panic in the operation ends its own task, not this one.
        let outcome = match tokio::spawn(fut).await {
            Ok(r) => r.map_err(Failure::from),
            Err(_) => Err(Failure::panic()),
        };
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done.call(outcome)));
            drop(p);
        })
        .await;
    });
    Ok(())
}

/// `mcp_oauth_provider_get_authorization`, without waiting: `completion`
/// gets the header value (or NULL when there is no usable token) as `value`.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, even if the provider is freed
/// meanwhile. Any other result means it did not start and `completion`
/// will not be called. Callable from any thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (provider, completion).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_get_authorization_async(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        spawn_op(provider, completion, userdata, |p| async move {
            p.core.authorization().await
        })
    })
}

/// `mcp_oauth_provider_handle_response`, without waiting: `completion` gets
/// the new header value as `value` when the request should be sent again,
/// NULL when not. The arguments are copied before this returns.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, even if the provider is freed
/// meanwhile. Any other result means it did not start and `completion`
/// will not be called. Callable from any thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_handle_response_async(
    provider: *const mcp_oauth_provider,
    status: u16,
    www_authenticate: *const *const c_char,
    count: usize,
    sent_header: *const c_char,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let values = unsafe { www_authenticate_arg(www_authenticate, count) }?;
        let sent = unsafe { opt_str_arg(sent_header, "sent_header") }?.map(|s| zeroize::Zeroizing::new(s.to_string()));
        spawn_op(provider, completion, userdata, move |p| async move {
            let action = p
                .core
                .handle_response(status, &values, sent.as_deref().map(String::as_str))
                .await?;
            Ok(action_header(action))
        })
    })
}

/// `mcp_oauth_provider_authorize`, without waiting: `completion` gets NULL
/// as `value`.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, even if the provider is freed
/// meanwhile. Any other result means it did not start and `completion`
/// will not be called. Callable from any thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (provider, completion).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_authorize_async(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        spawn_op(provider, completion, userdata, |p| async move {
            p.core.authorize().await?;
            Ok(None)
        })
    })
}
