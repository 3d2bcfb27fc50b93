//! The provider: header mode and the long operations, blocking and async.

use std::ffi::{CStr, CString, c_char, c_void};
use std::future::Future;
use std::sync::Arc;

use mcp_oauth_client::{
    AuthHeaders, Error as CoreError, OAuthClientProvider, RequestInfo, ResponseAction, ResponseInfo,
};

use crate::boundary::{self, ArcHandle, BoxHandle, opt_str_arg, out_arg, str_arg};
use crate::error::{ErrorObject, Failure, mcp_oauth_error, mcp_oauth_result};
use crate::operation::{Operation, Shutdown, mcp_oauth_operation};
use tracing::Instrument;

/// The OAuth client for one MCP server. Thread-safe: every function taking
/// a provider may be called from many threads at once. Created by
/// `mcp_oauth_config_builder_build`, freed with `mcp_oauth_provider_free`.
pub struct mcp_oauth_provider {
    _private: [u8; 0],
}

pub(crate) struct Provider {
    pub(crate) core: OAuthClientProvider,
    pub(crate) redirect_uri: Option<CString>,
    /// Given when the caller frees the provider: stops its operations and
    /// the refreshes and flows they started.
    pub(crate) shutdown: Shutdown,
    /// Its id, in log messages.
    pub(crate) id: u64,
    /// The span its work runs in (which routes its log messages).
    pub(crate) span: tracing::Span,
}

impl Drop for Provider {
    fn drop(&mut self) {
        crate::log::unregister_provider(self.id);
    }
}

/// The id of `provider` in log messages (the `provider=N` that ends the
/// process-wide callback's messages about its work): unique in the process,
/// never 0. 0 when `provider` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_id(provider: *const mcp_oauth_provider) -> u64 {
    boundary::guard_value(0, || {
        unsafe { mcp_oauth_provider::borrow(provider) }.map_or(0, |p| p.id)
    })
}

impl ArcHandle for mcp_oauth_provider {
    type Inner = Provider;
}

/// Called once when an asynchronous operation ends.
///
/// - `userdata`: as given when the operation was started.
/// - `result`: `MCP_OAUTH_RESULT_OK` or the failure's code.
/// - `value`: the operation's result as text, or NULL when it has none
///   (`mcp_oauth_provider_authorize_async`): `mcp_oauth_provider_logout_start`
///   gives its outcome as JSON. Borrowed: valid only during the call.
/// - `error`: on failure, the detail; NULL on success. Borrowed: valid only
///   during the call; keep a copy with `mcp_oauth_error_clone`.
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
    if crate::runtime::must_not_block() {
        return Err(Failure::would_deadlock());
    }
    let rt = crate::runtime::get()?;
    Ok(rt.block_on(fut))
}

fn provider_ref<'a>(p: *const mcp_oauth_provider) -> Result<&'a Provider, Failure> {
    unsafe { mcp_oauth_provider::borrow(p) }.ok_or_else(|| Failure::null("provider"))
}

/// Copy the response's headers out of the caller's arrays.
pub(crate) unsafe fn response_headers_arg(
    names: *const *const c_char,
    values: *const *const c_char,
    count: usize,
) -> Result<Vec<(String, String)>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if names.is_null() {
        return Err(Failure::null("header_names"));
    }
    if values.is_null() {
        return Err(Failure::null("header_values"));
    }
    // SAFETY: the caller passes `count` readable pointers in each array.
    let (names, values) = unsafe {
        (
            std::slice::from_raw_parts(names, count),
            std::slice::from_raw_parts(values, count),
        )
    };
    names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let n = unsafe { server_str_arg(*n, "header_names[i]") }?;
            let v = unsafe { server_str_arg(*v, "header_values[i]") }?;
            Ok((n, v))
        })
        .collect()
}

/// A string the server sent (a response header), as the host relays it: the
/// server's bytes are not the host's input, so one that is not UTF-8 (a
/// Latin-1 header) is read with replacement characters rather than failing
/// the call. NULL is still the host's mistake.
unsafe fn server_str_arg(p: *const c_char, name: &'static str) -> Result<String, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives the call.
    Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Free a provider, cancelling what it has in flight: every operation
/// started with an `_async` or `_start` function that has not finished
/// completes, exactly once, with `MCP_OAUTH_RESULT_CANCELLED` (on a library
/// thread, possibly after this returns), and the refreshes and flows the
/// provider runs are stopped where they are (an HTTP request in progress is
/// abandoned, and a refresh the server may already have answered is lost).
/// A host callback that is running is not interrupted: its answer is
/// ignored, and the storage and handler callbacks are released after the
/// last one returns. NULL is a no-op.
///
/// What C cannot make safe, and the library cannot detect (undefined
/// behaviour, not an error): freeing a provider twice; using it after it
/// is freed, from any thread (including starting an `_async` operation on
/// it, or a string borrowed from it such as `mcp_oauth_provider_redirect_uri`);
/// freeing it while another thread is inside any call on it (a blocking
/// call, or a `_try_get_headers`/`_async`/`_start` call still returning).
/// The safe pattern: make sure no thread will call it again (join them, or
/// have them stop), then free it from any thread, including from a
/// completion of one of its operations; the operations in flight then end
/// with `MCP_OAUTH_RESULT_CANCELLED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_free(provider: *mut mcp_oauth_provider) {
    boundary::guard_void(|| {
        if let Some(p) = unsafe { mcp_oauth_provider::release(provider) } {
            if crate::runtime::forked() {
                // In a forked child the provider belongs to the parent's
                // runtime, whose threads (and the locks they held) are not
                // here: it is forgotten, not dropped.
                std::mem::forget(p);
                return;
            }
            p.shutdown.signal();
            // Dropping may close the loopback receiver's socket, which
            // belongs to the runtime's I/O driver.
            match crate::runtime::get() {
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

/// The headers to set on one request: an immutable list of (name, value)
/// pairs, today `authorization` alone (a DPoP-bound token will add `dpop`).
/// Names are lower-case (HTTP header names are case-insensitive). Created by
/// `mcp_oauth_provider_get_headers` and `mcp_oauth_provider_handle_response`,
/// owned by the caller, freed with `mcp_oauth_headers_free` (which
/// overwrites the values: they hold a token). May be read from any thread.
/// Strings returned by its accessors are borrowed from it and valid until it
/// is freed.
pub struct mcp_oauth_headers {
    _private: [u8; 0],
}

// The headers object is one allocation, a `Box<[u8]>`: a prefix of two
// numbers, then the values, each ended by a NUL. The handle points at the
// `Authorization` value, so that value is the handle itself.
//
//   [size: u32][dpop: u32] [Authorization value] NUL [DPoP value NUL]
//                          ^ handle
//
// `size` is the whole allocation's length (freeing it scans nothing), `dpop`
// the DPoP value's offset from the handle, 0 without one. The prefix is read
// unaligned (the buffer's alignment is 1). Header values hold no NUL: the
// core presents only `b64token` access tokens and base64url proofs. The
// names are static.

/// The prefix's length: `size` and `dpop`.
const PREFIX: usize = 8;

/// The names, in the order of the values.
const AUTHORIZATION: &CStr = c"authorization";
const DPOP: &CStr = c"dpop";

fn check_value(value: &[u8], name: &str) -> Result<(), Failure> {
    if memchr::memchr(0, value).is_some() {
        return Err(Failure::flow(format!(
            "the {name} header value holds a NUL byte and cannot be passed to C"
        )));
    }
    Ok(())
}

/// A headers object holding copies of `authorization` and `dpop`, owned by
/// the caller: one allocation and one copy of each value. The hot path calls
/// it on the core's borrowed values; values hold no NUL (see above).
fn headers_from(authorization: &str, dpop: Option<&str>) -> Result<*mut mcp_oauth_headers, Failure> {
    let (a, d) = (authorization.as_bytes(), dpop.map(str::as_bytes));
    let size = PREFIX + a.len() + 1 + d.map_or(0, |d| d.len() + 1);
    let too_large = || Failure::flow("the headers are too large to pass to C (over 4 GiB)");
    let size32 = u32::try_from(size).map_err(|_| too_large())?;
    let dpop_at = match d {
        Some(_) => u32::try_from(a.len() + 1).map_err(|_| too_large())?,
        None => 0,
    };
    let mut buf = Vec::<u8>::with_capacity(size);
    buf.extend_from_slice(&size32.to_ne_bytes());
    buf.extend_from_slice(&dpop_at.to_ne_bytes());
    buf.extend_from_slice(a);
    buf.push(0);
    if let Some(d) = d {
        buf.extend_from_slice(d);
        buf.push(0);
    }
    debug_assert_eq!(buf.len(), size);
    let base = Box::into_raw(buf.into_boxed_slice()).cast::<u8>();
    // SAFETY: the allocation is `size` > PREFIX bytes long.
    Ok(unsafe { base.add(PREFIX) }.cast::<mcp_oauth_headers>())
}

/// A headers object made from the core's, owned by the caller; values are
/// checked for NUL bytes here, off the hot path.
fn headers_into_raw(h: AuthHeaders) -> Result<*mut mcp_oauth_headers, Failure> {
    check_value(h.authorization().as_bytes(), "authorization")?;
    if let Some(dpop) = h.dpop() {
        check_value(dpop.as_bytes(), "dpop")?;
    }
    headers_from(h.authorization(), h.dpop())
}

fn optional_headers_into_raw(h: Option<AuthHeaders>) -> Result<*mut mcp_oauth_headers, Failure> {
    h.map_or(Ok(std::ptr::null_mut()), headers_into_raw)
}

/// The hot path's headers object: a copy of the core's held headers when a
/// token is held that is not due and `url` is the MCP server's; NULL when
/// the core has none to give without waiting.
fn cached_headers_raw(
    core: &OAuthClientProvider,
    method: &str,
    url: &str,
) -> Option<Result<*mut mcp_oauth_headers, Failure>> {
    core.with_cached_headers(method, url, headers_from)
}

/// The prefix of a non-NULL headers object: (size, dpop offset).
///
/// # Safety
/// `headers` was made by `headers_from` and is not freed.
unsafe fn prefix(headers: *const mcp_oauth_headers) -> (usize, usize) {
    // SAFETY: the PREFIX bytes before the handle are the prefix.
    unsafe {
        let base = headers.cast::<u8>().sub(PREFIX);
        let size = std::ptr::read_unaligned(base.cast::<u32>());
        let dpop = std::ptr::read_unaligned(base.add(4).cast::<u32>());
        (size as usize, dpop as usize)
    }
}

/// The name and value of header `index`.
unsafe fn header_entry<'a>(headers: *const mcp_oauth_headers, index: usize) -> Option<(&'static CStr, &'a CStr)> {
    if headers.is_null() {
        return None;
    }
    let (_, dpop_at) = unsafe { prefix(headers) };
    let base = headers.cast::<c_char>();
    // SAFETY: the values are NUL-terminated inside the allocation.
    unsafe {
        match index {
            0 => Some((AUTHORIZATION, CStr::from_ptr(base))),
            1 if dpop_at != 0 => Some((DPOP, CStr::from_ptr(base.add(dpop_at)))),
            _ => None,
        }
    }
}

unsafe fn free_headers(headers: *mut mcp_oauth_headers) {
    if headers.is_null() {
        return;
    }
    // SAFETY: made by `headers_from` as a boxed slice of `size` bytes that
    // starts PREFIX bytes before the handle, given back once.
    unsafe {
        let (size, _) = prefix(headers);
        let base = headers.cast::<u8>().sub(PREFIX);
        let mut owned = Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, size));
        zeroize::Zeroize::zeroize(&mut *owned);
    }
}

/// How many headers to set (at least 1).
/// 0 when `headers` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_headers_count(headers: *const mcp_oauth_headers) -> usize {
    boundary::guard_value(0, || {
        if headers.is_null() {
            return 0;
        }
        1 + usize::from(unsafe { prefix(headers) }.1 != 0)
    })
}

/// The lower-case name of header `index` (`"authorization"`, then `"dpop"`
/// for a DPoP-bound token), or NULL when `headers` is NULL or `index` is not
/// below `mcp_oauth_headers_count`. A static string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_headers_name(headers: *const mcp_oauth_headers, index: usize) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { header_entry(headers, index) }.map_or(std::ptr::null(), |(name, _)| name.as_ptr())
    })
}

/// The value of header `index` (it may hold a token: never log it), or NULL
/// when `headers` is NULL or `index` is not below `mcp_oauth_headers_count`.
/// Borrowed from `headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_headers_value(headers: *const mcp_oauth_headers, index: usize) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { header_entry(headers, index) }.map_or(std::ptr::null(), |(_, value)| value.as_ptr())
    })
}

/// The `Authorization` value (e.g. `"Bearer eyJ..."`): a shortcut for the
/// host that sets that header alone. Setting every header of
/// `mcp_oauth_headers_name`/`_value` is what keeps working when the token is
/// bound to a key (DPoP). NULL when `headers` is NULL. Borrowed from `headers`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_headers_authorization(headers: *const mcp_oauth_headers) -> *const c_char {
    // The handle is the value (see the layout above); nothing to compute.
    headers.cast()
}

/// Free a headers object, overwriting its values first. NULL is a no-op.
/// Freeing it twice, or using it (or a value borrowed from it) after it is
/// freed, is undefined behaviour (the library cannot detect it). The
/// `headers` a completion is given are borrowed: never free them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_headers_free(headers: *mut mcp_oauth_headers) {
    boundary::guard_void(|| unsafe { free_headers(headers) })
}

/// Header mode, before each request: the headers to set on it.
///
/// - `method`: the request's HTTP method (e.g. `"POST"`).
/// - `url`: the request's absolute URL. Headers are only ever given for the
///   MCP server's origin (scheme, host and port of the configured server
///   URL); for any other URL `*headers_out` is NULL.
///
/// With a valid token held this is fast: no I/O, no lock, no waiting. On
/// first use it loads stored tokens; it refreshes a token about to expire.
/// It never starts the interactive flow: with no usable token,
/// `*headers_out` is NULL, the request goes out without `Authorization`, and
/// the server's 401 (given to `mcp_oauth_provider_handle_response`) starts it.
///
/// On success `*headers_out` is a new headers object (owned by the caller;
/// free with `mcp_oauth_headers_free`) or NULL. On failure nothing is
/// written to `headers_out` and, when `err_out` is not NULL, `*err_out` is a
/// new error. A refresh that fails because the authorization server is down
/// gives `MCP_OAUTH_RESULT_SERVER` or `MCP_OAUTH_RESULT_NETWORK`; the stored
/// tokens are kept.
///
/// Blocking when it must load or refresh, and then it may also wait for an
/// authorization another request runs (a person logging in: minutes). A
/// host that must never wait calls `mcp_oauth_provider_try_get_headers`
/// first and this (or `_get_headers_start`) only when that has nothing.
/// From a library callback it always returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK`, even with a valid token held (one rule,
/// whatever the state): use `mcp_oauth_provider_get_headers_async` or
/// `_try_get_headers` there.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK`, and those of loading and refreshing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_get_headers(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    headers_out: *mut *mut mcp_oauth_headers,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let method = unsafe { str_arg(method, "method") }?;
        let url = unsafe { str_arg(url, "url") }?;
        let out = unsafe { out_arg(headers_out, "headers_out") }?;
        // The same rule everywhere: no blocking function works from a
        // library thread, even when this call would not have waited.
        if crate::runtime::must_not_block() {
            return Err(Failure::would_deadlock());
        }
        if let Some(cached) = cached_headers_raw(&p.core, method, url) {
            *out = cached?;
            return Ok(());
        }
        let headers = block_on(
            p.core
                .headers(&RequestInfo::new(method, url))
                .instrument(p.span.clone()),
        )??;
        *out = optional_headers_into_raw(headers)?;
        Ok(())
    })
}

/// Header mode, after a response: hand the provider the request and its
/// response, and learn whether to send the request again. On 401 it
/// refreshes or runs the whole flow (discovery, registration, the person's
/// authorization through the handlers, the token exchange); on 403
/// `insufficient_scope` it steps up the scopes; any other status needs
/// nothing. Call it at most once per request: after a retry, give a second
/// 401/403 to the application, except a DPoP nonce challenge
/// (`mcp_oauth_is_dpop_nonce_challenge`), which may be handed over once more
/// (a retry with a new DPoP-bound token can meet the server's nonce first).
///
/// - `method`, `url`: the request's, as given to `mcp_oauth_provider_get_headers`.
/// - `sent_authorization`: the `Authorization` value the request carried,
///   or NULL when it carried none (it tells a token the server refused from
///   one another request has already replaced).
/// - `status`: the response's HTTP status.
/// - `header_names`, `header_values`, `header_count`: the response's
///   headers, two arrays of `header_count` strings (names in any case; a
///   header repeated is given once per value). Pass them all: the provider
///   reads every `WWW-Authenticate`, and will read others. Both arrays may be
///   NULL when `header_count` is 0. They are the server's bytes: one that
///   is not UTF-8 is read with replacement characters, never refused.
///
/// On success `*retry_out` tells whether to retry; when true,
/// `*headers_out` is a new headers object to send the retry with (owned by
/// the caller; free with `mcp_oauth_headers_free`), otherwise NULL. On
/// failure nothing is written to the outputs and, when `err_out` is not
/// NULL, `*err_out` is a new error.
///
/// Blocking (possibly for minutes, while a person authorizes): returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from a library callback.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (including a NULL array with a
/// count above 0, or a NULL string in one), `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK`, and those of the flow.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_handle_response(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    sent_authorization: *const c_char,
    status: u16,
    header_names: *const *const c_char,
    header_values: *const *const c_char,
    header_count: usize,
    retry_out: *mut bool,
    headers_out: *mut *mut mcp_oauth_headers,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let method = unsafe { str_arg(method, "method") }?;
        let url = unsafe { str_arg(url, "url") }?;
        let sent = unsafe { opt_str_arg(sent_authorization, "sent_authorization") }?;
        let response_headers = unsafe { response_headers_arg(header_names, header_values, header_count) }?;
        let retry = unsafe { out_arg(retry_out, "retry_out") }?;
        let out = unsafe { out_arg(headers_out, "headers_out") }?;
        let request = RequestInfo::new(method, url).with_authorization(sent);
        let action = block_on(
            p.core
                .handle_response(&request, &ResponseInfo::new(status, &response_headers))
                .instrument(p.span.clone()),
        )??;
        let headers = optional_headers_into_raw(retry_headers(action))?;
        *retry = !headers.is_null();
        *out = headers;
        Ok(())
    })
}

fn retry_headers(action: ResponseAction) -> Option<AuthHeaders> {
    match action {
        ResponseAction::Retry(h) => Some(h),
        _ => None,
    }
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
        block_on(p.core.authorize().instrument(p.span.clone()))??;
        Ok(())
    })
}

/// Called once when an asynchronous header-mode operation ends
/// (`mcp_oauth_provider_get_headers_async`,
/// `mcp_oauth_provider_handle_response_async`).
///
/// - `userdata`: as given when the operation was started.
/// - `result`: `MCP_OAUTH_RESULT_OK` or the failure's code.
/// - `headers`: on success, the headers to set (see each `_async`
///   function), or NULL when there are none; NULL on failure. Borrowed:
///   valid only during the call, freed (and overwritten) by the library
///   afterwards; copy what you need, and never log the values.
/// - `error`: on failure, the detail; NULL on success. Borrowed: valid only
///   during the call; keep a copy with `mcp_oauth_error_clone`.
///
/// Runs on a thread of the library's blocking pool, never on the thread that
/// started the operation; completions of different operations may run
/// concurrently. It may block briefly, may start other `_async` operations
/// and may free the provider, but a blocking function of this library
/// returns `MCP_OAUTH_RESULT_WOULD_DEADLOCK` there.
pub type mcp_oauth_headers_completion = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        result: mcp_oauth_result,
        headers: *const mcp_oauth_headers,
        error: *const mcp_oauth_error,
    ),
>;

type PlainCallback = unsafe extern "C" fn(*mut c_void, mcp_oauth_result, *const c_char, *const mcp_oauth_error);
type HeadersCallback =
    unsafe extern "C" fn(*mut c_void, mcp_oauth_result, *const mcp_oauth_headers, *const mcp_oauth_error);

/// The host's completion, of either shape.
enum Callback {
    /// `mcp_oauth_completion`, with a NULL `value`.
    Plain(PlainCallback),
    Headers(HeadersCallback),
    /// `mcp_oauth_completion`, with the `value` the operation leaves here.
    Valued(PlainCallback, Arc<std::sync::Mutex<Option<std::ffi::CString>>>),
}

struct Completion {
    callback: Callback,
    userdata: *mut c_void,
}
// The host promises (in the header) that its completion and userdata may be
// used from a library thread.
unsafe impl Send for Completion {}

impl Completion {
    fn call(self, outcome: Result<Option<AuthHeaders>, Failure>) {
        let userdata = self.userdata;
        let outcome = outcome.and_then(optional_headers_into_raw);
        match (outcome, &self.callback) {
            (Ok(headers), Callback::Headers(callback)) => {
                // SAFETY: the host's completion, with pointers alive until it returns.
                unsafe { callback(userdata, mcp_oauth_result::Ok, headers, std::ptr::null()) };
                unsafe { free_headers(headers) };
            }
            (Ok(headers), Callback::Plain(callback)) => {
                unsafe { free_headers(headers) };
                // SAFETY: as above.
                unsafe { callback(userdata, mcp_oauth_result::Ok, std::ptr::null(), std::ptr::null()) };
            }
            (Ok(headers), Callback::Valued(callback, value)) => {
                unsafe { free_headers(headers) };
                let value = value.lock().unwrap_or_else(|p| p.into_inner()).take();
                let ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
                // SAFETY: as above; `value` lives until the callback returns.
                unsafe { callback(userdata, mcp_oauth_result::Ok, ptr, std::ptr::null()) };
            }
            (Err(f), callback) => {
                let error = Box::new(ErrorObject::from(f));
                let code = error.code();
                let ptr: *const mcp_oauth_error = (&*error as *const ErrorObject).cast();
                // SAFETY: as above.
                match callback {
                    Callback::Headers(cb) => unsafe { cb(userdata, code, std::ptr::null(), ptr) },
                    Callback::Plain(cb) | Callback::Valued(cb, _) => unsafe {
                        cb(userdata, code, std::ptr::null(), ptr)
                    },
                }
            }
        }
    }
}

/// Start `op` on the runtime; its completion is called exactly once, on the
/// blocking pool, after which the operation's provider reference is dropped.
/// The operation runs as a task of its own, which `op_out`'s handle aborts
/// (`mcp_oauth_operation_cancel`) and the provider's shutdown stops.
fn spawn_op<Fut>(
    provider: *const mcp_oauth_provider,
    callback: Callback,
    userdata: *mut c_void,
    op_out: *mut *mut mcp_oauth_operation,
    op: impl FnOnce(Arc<Provider>) -> Fut,
) -> Result<(), Failure>
where
    Fut: Future<Output = Result<Option<AuthHeaders>, CoreError>> + Send + 'static,
{
    let p = unsafe { mcp_oauth_provider::clone_arc(provider) }.ok_or_else(|| Failure::null("provider"))?;
    let rt = crate::runtime::get()?;
    let fut = p.shutdown.guard(op(p.clone()).instrument(p.span.clone()));
    let done = Completion { callback, userdata };
    // A panic in the operation ends its own task, not the one that completes.
    let task = rt.spawn(fut);
    let abort = task.abort_handle();
    rt.spawn(async move {
        let outcome = match task.await {
            // A failure after the provider was freed comes from the work
            // being stopped (a flight this operation waited for ended): the
            // operation was cancelled.
            Ok(Some(Err(_))) if p.shutdown.is_signalled() => {
                Err(Failure::cancelled("the provider was freed while the operation ran"))
            }
            Ok(Some(r)) => r.map_err(Failure::from),
            Ok(None) => Err(Failure::cancelled("the provider was freed while the operation ran")),
            Err(e) if e.is_cancelled() => Err(Failure::cancelled("the operation was cancelled")),
            Err(_) => Err(Failure::panic()),
        };
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done.call(outcome)));
            drop(p);
        })
        .await;
    });
    if !op_out.is_null() {
        // SAFETY: a non-NULL `op_out` points to writable storage for one pointer.
        unsafe { *op_out = mcp_oauth_operation::into_raw(Box::new(Operation::new(abort))) };
    }
    Ok(())
}

fn headers_callback(completion: mcp_oauth_headers_completion) -> Result<Callback, Failure> {
    completion
        .map(Callback::Headers)
        .ok_or_else(|| Failure::null("completion"))
}

/// `mcp_oauth_provider_get_headers`, without waiting: `completion` gets the
/// headers to set, or NULL when there is no usable token (or the URL is not
/// the MCP server's). `method` and `url` are copied before this returns.
/// The same as `mcp_oauth_provider_get_headers_start` without a handle.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, with `MCP_OAUTH_RESULT_CANCELLED`
/// if the provider is freed before it finishes. Any other result means it
/// did not start and `completion` will not be called. Callable from any
/// thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (provider, method, url,
/// completion), `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_get_headers_async(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    completion: mcp_oauth_headers_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    unsafe { mcp_oauth_provider_get_headers_start(provider, method, url, completion, userdata, std::ptr::null_mut()) }
}

/// `mcp_oauth_provider_get_headers_async`, with a handle to cancel it: on
/// success, when `operation_out` is not NULL, `*operation_out` is a new
/// `mcp_oauth_operation` (owned by the caller, freed with
/// `mcp_oauth_operation_free`; freeing it does not cancel).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_get_headers_start(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    completion: mcp_oauth_headers_completion,
    userdata: *mut c_void,
    operation_out: *mut *mut mcp_oauth_operation,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let method = unsafe { str_arg(method, "method") }?.to_string();
        let url = unsafe { str_arg(url, "url") }?.to_string();
        let callback = headers_callback(completion)?;
        spawn_op(provider, callback, userdata, operation_out, |p| async move {
            p.core.headers(&RequestInfo::new(&method, &url)).await
        })
    })
}

/// `mcp_oauth_provider_handle_response`, without waiting: `completion` gets
/// the headers to send the request again with when it should be retried,
/// NULL when not. The arguments are copied before this returns. The same as
/// `mcp_oauth_provider_handle_response_start` without a handle.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, with `MCP_OAUTH_RESULT_CANCELLED`
/// if the provider is freed before it finishes. Any other result means it
/// did not start and `completion` will not be called. Callable from any
/// thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_handle_response_async(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    sent_authorization: *const c_char,
    status: u16,
    header_names: *const *const c_char,
    header_values: *const *const c_char,
    header_count: usize,
    completion: mcp_oauth_headers_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    unsafe {
        mcp_oauth_provider_handle_response_start(
            provider,
            method,
            url,
            sent_authorization,
            status,
            header_names,
            header_values,
            header_count,
            completion,
            userdata,
            std::ptr::null_mut(),
        )
    }
}

/// `mcp_oauth_provider_handle_response_async`, with a handle to cancel it:
/// on success, when `operation_out` is not NULL, `*operation_out` is a new
/// `mcp_oauth_operation` (owned by the caller, freed with
/// `mcp_oauth_operation_free`; freeing it does not cancel).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_handle_response_start(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    sent_authorization: *const c_char,
    status: u16,
    header_names: *const *const c_char,
    header_values: *const *const c_char,
    header_count: usize,
    completion: mcp_oauth_headers_completion,
    userdata: *mut c_void,
    operation_out: *mut *mut mcp_oauth_operation,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let method = unsafe { str_arg(method, "method") }?.to_string();
        let url = unsafe { str_arg(url, "url") }?.to_string();
        let sent = unsafe { opt_str_arg(sent_authorization, "sent_authorization") }?
            .map(|s| zeroize::Zeroizing::new(s.to_string()));
        let response_headers = unsafe { response_headers_arg(header_names, header_values, header_count) }?;
        let callback = headers_callback(completion)?;
        spawn_op(provider, callback, userdata, operation_out, move |p| async move {
            let request = RequestInfo::new(&method, &url).with_authorization(sent.as_deref().map(String::as_str));
            let action = p
                .core
                .handle_response(&request, &ResponseInfo::new(status, &response_headers))
                .await?;
            Ok(retry_headers(action))
        })
    })
}

/// `mcp_oauth_provider_authorize`, without waiting: `completion` gets NULL
/// as `value`. The same as `mcp_oauth_provider_authorize_start` without a
/// handle.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once, with `MCP_OAUTH_RESULT_CANCELLED`
/// if the provider is freed before it finishes. Any other result means it
/// did not start and `completion` will not be called. Callable from any
/// thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (provider, completion).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_authorize_async(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
) -> mcp_oauth_result {
    unsafe { mcp_oauth_provider_authorize_start(provider, completion, userdata, std::ptr::null_mut()) }
}

/// `mcp_oauth_provider_authorize_async`, with a handle to cancel it: on
/// success, when `operation_out` is not NULL, `*operation_out` is a new
/// `mcp_oauth_operation` (owned by the caller, freed with
/// `mcp_oauth_operation_free`; freeing it does not cancel).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_authorize_start(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
    operation_out: *mut *mut mcp_oauth_operation,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let callback = completion
            .map(Callback::Plain)
            .ok_or_else(|| Failure::null("completion"))?;
        spawn_op(provider, callback, userdata, operation_out, |p| async move {
            p.core.authorize().await?;
            Ok(None)
        })
    })
}

/// Log out (RFC 7009): revoke the refresh token, then the access token, at
/// the authorization server's `revocation_endpoint` when it advertises one
/// (authenticated as the client; tokens only ever go to the server that
/// issued them), then delete the tokens stored for the MCP server (the
/// registration is kept). When revoking the refresh token fails (a refusal,
/// an outage), nothing is deleted and the error says why: try again.
///
/// On success, when `revoked_out` is not NULL, `*revoked_out` says whether
/// the authorization server revoked the refresh token (or, with none, the
/// access token); false when there was nothing to revoke or the server
/// offers no revocation. On failure, when `err_out` is not NULL, `*err_out`
/// is a new error.
///
/// Blocking (network requests): returns `MCP_OAUTH_RESULT_WOULD_DEADLOCK`
/// from a library callback; use `mcp_oauth_provider_logout_start` there.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, and those of the requests.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_logout(
    provider: *const mcp_oauth_provider,
    revoked_out: *mut bool,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let outcome = block_on(p.core.logout().instrument(p.span.clone()))??;
        if !revoked_out.is_null() {
            // SAFETY: a non-NULL `revoked_out` points to a writable bool.
            unsafe { *revoked_out = outcome.refresh_token_revoked || outcome.access_token_revoked };
        }
        Ok(())
    })
}

/// `mcp_oauth_provider_logout`, without waiting: `completion` gets the
/// outcome as a JSON object in `value`: `had_tokens`, `revocation_endpoint`
/// (or null), `refresh_token_revoked`, `access_token_revoked`, `removed`
/// (false for a store that cannot delete), and `not_revoked_because` (why
/// nothing was revoked, or null). On success, when `operation_out` is not
/// NULL, `*operation_out` is a new `mcp_oauth_operation` to cancel it with.
///
/// Returns `MCP_OAUTH_RESULT_OK` when the operation started; then
/// `completion` is called exactly once. Any other result means it did not
/// start. Callable from any thread, including library callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (provider, completion).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_logout_start(
    provider: *const mcp_oauth_provider,
    completion: mcp_oauth_completion,
    userdata: *mut c_void,
    operation_out: *mut *mut mcp_oauth_operation,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let callback = completion.ok_or_else(|| Failure::null("completion"))?;
        let value = Arc::new(std::sync::Mutex::new(None));
        let slot = value.clone();
        spawn_op(
            provider,
            Callback::Valued(callback, value),
            userdata,
            operation_out,
            |p| async move {
                let outcome = p.core.logout().await?;
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(crate::builtins::logout_json(&outcome));
                Ok(None)
            },
        )
    })
}

/// Header mode's hot path, which never waits: the headers to set on a
/// request when the provider holds a token that is valid and not due for
/// refresh, and the request goes to the MCP server's origin. No I/O, no
/// lock, no waiting behind a refresh or a person's authorization; callable
/// from any thread, including library callbacks.
///
/// On success `*headers_out` is a new headers object (owned by the caller;
/// free with `mcp_oauth_headers_free`) or NULL when no such token is held
/// (none loaded yet, one due for refresh, or another origin): then call
/// `mcp_oauth_provider_get_headers` or `_get_headers_async`, which load and
/// refresh. On failure nothing is written.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_provider_try_get_headers(
    provider: *const mcp_oauth_provider,
    method: *const c_char,
    url: *const c_char,
    headers_out: *mut *mut mcp_oauth_headers,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let p = provider_ref(provider)?;
        let method = unsafe { str_arg(method, "method") }?;
        let url = unsafe { str_arg(url, "url") }?;
        let out = unsafe { out_arg(headers_out, "headers_out") }?;
        *out = cached_headers_raw(&p.core, method, url)
            .transpose()?
            .unwrap_or(std::ptr::null_mut());
        Ok(())
    })
}

/// Whether a response is a resource server's DPoP nonce challenge (401 with
/// `error="use_dpop_nonce"` and a `DPoP-Nonce` header): the one response that
/// may be given to `mcp_oauth_provider_handle_response` again after a retry.
/// The headers are as for `mcp_oauth_provider_handle_response`. Returns false
/// on any bad argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_is_dpop_nonce_challenge(
    status: u16,
    header_names: *const *const c_char,
    header_values: *const *const c_char,
    header_count: usize,
) -> bool {
    boundary::guard_value(false, || {
        match unsafe { response_headers_arg(header_names, header_values, header_count) } {
            Ok(h) => ResponseInfo::new(status, &h).is_dpop_nonce_challenge(),
            Err(_) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe fn read(h: *const mcp_oauth_headers) -> Vec<(String, String)> {
        let n = unsafe { mcp_oauth_headers_count(h) };
        (0..n)
            .map(|i| unsafe {
                (
                    CStr::from_ptr(mcp_oauth_headers_name(h, i))
                        .to_str()
                        .unwrap()
                        .to_string(),
                    CStr::from_ptr(mcp_oauth_headers_value(h, i))
                        .to_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn headers_objects_hold_every_header_and_refuse_what_c_cannot_carry() {
        let h = headers_into_raw(AuthHeaders::authorization_only("Bearer abc".into())).unwrap_or_else(|_| panic!());
        unsafe {
            assert_eq!(read(h), [("authorization".into(), "Bearer abc".into())]);
            assert_eq!(CStr::from_ptr(mcp_oauth_headers_authorization(h)), c"Bearer abc");
            assert!(mcp_oauth_headers_value(h, 1).is_null() && mcp_oauth_headers_name(h, 1).is_null());
            mcp_oauth_headers_free(h);
        }

        let h = headers_into_raw(AuthHeaders::with_proof("DPoP abc".into(), "eyJ.proof".into()))
            .unwrap_or_else(|_| panic!());
        unsafe {
            assert_eq!(
                read(h),
                [
                    ("authorization".into(), "DPoP abc".into()),
                    ("dpop".into(), "eyJ.proof".into())
                ]
            );
            assert_eq!(CStr::from_ptr(mcp_oauth_headers_authorization(h)), c"DPoP abc");
            assert!(mcp_oauth_headers_value(h, 2).is_null());
            mcp_oauth_headers_free(h);
        }

        for bad in [
            AuthHeaders::authorization_only("Bearer a\0b".into()),
            AuthHeaders::with_proof("DPoP abc".into(), "p\0".into()),
        ] {
            assert!(headers_into_raw(bad).is_err());
        }
        assert!(optional_headers_into_raw(None).is_ok_and(|p| p.is_null()));
    }
}
