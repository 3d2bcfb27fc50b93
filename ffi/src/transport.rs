//! The host's HTTP stack as the core's [`HttpTransport`]: the library hands
//! the host each OAuth request (discovery, registration, token requests) and
//! the host answers later, from any thread, through libcurl, Go's
//! `http.Client`, URLSession or whatever it already configured (proxies,
//! private CAs, mTLS).
//!
//! The core bounds every exchange the same way whatever the transport: its
//! deadline (the request's timeout) and its cap on the body. When the
//! deadline passes, or the operation waiting for the answer is cancelled,
//! the library stops waiting and tells the host through `cancel`.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mcp_oauth_client::{HttpRequest, HttpResponse, HttpTransport, NetworkFailure, TransportError};
use tokio::sync::oneshot;
use zeroize::{Zeroize, Zeroizing};

use crate::boundary::{self, to_cstring};
use crate::callbacks::{HostPtr, Userdata};
use crate::error::{Failure, mcp_oauth_result};

/// The version of `mcp_oauth_transport_callbacks` this header describes.
pub const MCP_OAUTH_TRANSPORT_CALLBACKS_VERSION: c_uint = 1;

/// What kind of network failure: passed to `mcp_oauth_http_request_fail`
/// as a `uint32_t`, and told by `mcp_oauth_error_network_failure`. Numbers
/// are explicit and append-only.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mcp_oauth_network_failure {
    /// Not a network failure (only as an answer of
    /// `mcp_oauth_error_network_failure`).
    None = 0,
    /// Any other transport failure (the connection dropped, a malformed
    /// response, ...).
    Other = 1,
    /// No complete response within the deadline.
    Timeout = 2,
    /// The connection could not be made: refused, DNS, unreachable.
    Connect = 3,
    /// The response was larger than the library accepts.
    TooLarge = 4,
    /// The TLS handshake failed: an untrusted, expired or misnamed
    /// certificate (a private CA not added), a protocol mismatch.
    Tls = 5,
}

impl mcp_oauth_network_failure {
    pub(crate) fn from_core(f: Option<NetworkFailure>) -> Self {
        match f {
            None => Self::None,
            Some(NetworkFailure::Timeout) => Self::Timeout,
            Some(NetworkFailure::Connect) => Self::Connect,
            Some(NetworkFailure::ResponseTooLarge) => Self::TooLarge,
            Some(NetworkFailure::Tls) => Self::Tls,
            Some(_) => Self::Other,
        }
    }

    fn to_core(v: u32) -> Option<NetworkFailure> {
        Some(match v {
            1 => NetworkFailure::Other,
            2 => NetworkFailure::Timeout,
            3 => NetworkFailure::Connect,
            4 => NetworkFailure::ResponseTooLarge,
            5 => NetworkFailure::Tls,
            _ => return None,
        })
    }
}

/// The host's HTTP stack, for the OAuth requests the library makes
/// (discovery, registration, token requests; never the MCP requests, which
/// the host sends itself). Set with
/// `mcp_oauth_config_builder_set_transport_callbacks`; without it the
/// library uses its own HTTPS client.
///
/// Initialize it with `MCP_OAUTH_TRANSPORT_CALLBACKS_INIT` (which sets
/// `version`), then set the members.
///
/// The exchange: the library calls `send` with a request; the host sends it
/// (honouring its timeout, following no redirect) and answers it exactly
/// once, from any thread and at any later time (or before `send` returns),
/// with `mcp_oauth_http_request_respond` or `mcp_oauth_http_request_fail`,
/// which give the request back to the library. The request must be answered
/// even after `cancel`: answering is what frees it.
///
/// The library's deadline (`mcp_oauth_config_builder_set_timeout_ms`) and
/// its cap on the response body hold whatever the host does: at the
/// deadline the library stops waiting (the operation fails with
/// `MCP_OAUTH_RESULT_NETWORK`, network failure `TIMEOUT`) and calls
/// `cancel`; a body over `mcp_oauth_http_request_max_response_bytes` is
/// refused (`TOO_LARGE`) without being copied.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_transport_callbacks {
    /// `MCP_OAUTH_TRANSPORT_CALLBACKS_VERSION` when the host was built (set
    /// by `MCP_OAUTH_TRANSPORT_CALLBACKS_INIT`). Members appended in later
    /// versions are not read from an older struct.
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Start sending `request`. Runs on a thread of the library's blocking
    /// pool: it may block, and may even send the request synchronously and
    /// answer it before returning. Return 0 when the request was taken (it
    /// will be answered); anything else when it was not (it must then not
    /// be answered): the request fails with `MCP_OAUTH_RESULT_NETWORK` and
    /// the returned number is kept in the error
    /// (`mcp_oauth_error_callback_code`). Required.
    pub send: Option<unsafe extern "C" fn(userdata: *mut c_void, request: *mut mcp_oauth_http_request) -> c_int>,
    /// The library no longer waits for `request` (its deadline passed, or
    /// the operation was cancelled): stop it if you can, and still answer
    /// it (any answer; it is ignored) to free it. `request` and its
    /// accessors stay valid during the call. Called at most once per
    /// request, and only for a request `send` took (returned 0 for), never
    /// after the library got its answer (an answer given at the same moment
    /// from another thread may cross it); when the library stops waiting
    /// while `send` still runs, `cancel` comes as soon as `send` returns 0.
    /// Runs on a library thread; it must return quickly and may answer the
    /// request itself. Optional.
    pub cancel: Option<unsafe extern "C" fn(userdata: *mut c_void, request: *mut mcp_oauth_http_request)>,
    /// Called exactly once per `userdata` when the library will make no
    /// more calls with it, counted as for
    /// `mcp_oauth_storage_callbacks.release`; requests still unanswered
    /// must be answered all the same. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

/// One HTTP request for the host to send: method, URL, headers, body, and
/// the limits of the exchange. Given to `mcp_oauth_transport_callbacks.send`,
/// then the host's until it answers it with `mcp_oauth_http_request_respond`
/// or `mcp_oauth_http_request_fail` (exactly once), which frees it. Strings
/// and bytes its accessors return are borrowed from it until then. The
/// headers and body may hold secrets (a client secret, an authorization
/// code, a refresh token): never log them. They are overwritten when the
/// request is freed.
pub struct mcp_oauth_http_request {
    _private: [u8; 0],
}

struct RequestShared {
    method: CString,
    url: CString,
    headers: Vec<(CString, Zeroizing<Vec<u8>>)>,
    body: Zeroizing<Vec<u8>>,
    has_body: bool,
    timeout_ms: u64,
    max_response_bytes: usize,
    /// Where the exchange is, for `cancel`.
    phase: Mutex<Phase>,
    /// The host answered it.
    answered: AtomicBool,
    /// Where the answer goes; taken by the first answer, or by the library
    /// when it stops waiting.
    answer: Mutex<Option<oneshot::Sender<Result<HttpResponse, TransportError>>>>,
}

/// Where an exchange is, as far as telling the host to cancel goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `send` runs.
    Sending,
    /// `send` returned 0: the host holds the request.
    Taken,
    /// The library stopped waiting while `send` ran: `cancel` is due when
    /// it returns 0.
    AbandonedWhileSending,
    /// Answered, refused or cancelled: nothing more to tell.
    Done,
}

impl RequestShared {
    /// Move to `next`, returning the phase it was in.
    fn advance(&self, next: impl FnOnce(Phase) -> Phase) -> Phase {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        let was = *phase;
        *phase = next(was);
        was
    }

    fn take_answer(&self) -> Option<oneshot::Sender<Result<HttpResponse, TransportError>>> {
        self.answer.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

fn request_ref<'a>(p: *const mcp_oauth_http_request) -> Option<&'a RequestShared> {
    // SAFETY: a non-NULL request came from `Arc::into_raw` and is not
    // answered yet (the host's reference is alive), or the library holds one.
    unsafe { p.cast::<RequestShared>().as_ref() }
}

struct TransportInner {
    cb: mcp_oauth_transport_callbacks,
    userdata: Userdata,
}
// The host promises (in the header) that its callbacks may run on the
// library's threads.
unsafe impl Send for TransportInner {}
unsafe impl Sync for TransportInner {}

/// The host's transport callbacks as an [`HttpTransport`].
pub(crate) struct CallbackTransport {
    inner: Arc<TransportInner>,
}

impl CallbackTransport {
    /// Take over the host's callbacks (copied according to their version);
    /// fails, without taking them, when the version is unknown or `send`
    /// is NULL.
    pub(crate) unsafe fn new(cb: *const mcp_oauth_transport_callbacks) -> Result<Self, Failure> {
        // SAFETY: the caller passes a readable struct of the version it says.
        let cb = unsafe { crate::versioned::read(cb, "callbacks", MCP_OAUTH_TRANSPORT_CALLBACKS_SIZES) }?;
        if cb.send.is_none() {
            return Err(Failure::null("callbacks->send"));
        }
        Ok(CallbackTransport {
            inner: Arc::new(TransportInner {
                cb,
                userdata: Userdata::new(cb.userdata, cb.release),
            }),
        })
    }
}

/// The size of each version of `mcp_oauth_transport_callbacks`, oldest first.
const MCP_OAUTH_TRANSPORT_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_transport_callbacks>()];

/// Stops waiting for an answer: when dropped before the answer came (the
/// deadline passed, the operation was cancelled), the answer is taken away
/// (a later one is ignored) and the host's `cancel` is told.
struct Waiting {
    request: Arc<RequestShared>,
    inner: Arc<TransportInner>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.request.take_answer().is_none() {
            return; // answered
        }
        let was = self.request.advance(|p| match p {
            Phase::Sending => Phase::AbandonedWhileSending,
            _ => Phase::Done,
        });
        if was == Phase::Taken {
            tell_cancel(&self.inner, &self.request);
        }
    }
}

/// The host's `cancel`, if any, for `request`, which the caller keeps alive.
fn tell_cancel(inner: &TransportInner, request: &Arc<RequestShared>) {
    if let Some(cancel) = inner.cb.cancel {
        let ptr = Arc::as_ptr(request).cast_mut().cast::<mcp_oauth_http_request>();
        // SAFETY: the host's callback with its userdata and a live request.
        let _ = std::panic::catch_unwind(|| unsafe { cancel(inner.userdata.ptr(), ptr) });
    }
}

#[async_trait]
impl HttpTransport for CallbackTransport {
    async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let (tx, rx) = oneshot::channel();
        let has_body = request.body.is_some();
        // Header values and the body may hold secrets: they are moved (not
        // copied) into buffers overwritten when the request is freed.
        let shared = Arc::new(RequestShared {
            method: to_cstring(request.method),
            url: to_cstring(request.url.as_str()),
            headers: std::mem::take(&mut request.headers)
                .into_iter()
                .map(|(k, v)| {
                    let mut v = Zeroizing::new(v);
                    let mut value = Zeroizing::new(Vec::with_capacity(v.len() + 1));
                    value.extend(v.bytes().filter(|b| *b != 0));
                    value.push(0);
                    v.zeroize();
                    (to_cstring(&k), value)
                })
                .collect(),
            body: Zeroizing::new(request.body.take().unwrap_or_default()),
            has_body,
            timeout_ms: u64::try_from(request.timeout.as_millis()).unwrap_or(u64::MAX),
            max_response_bytes: request.max_response_bytes,
            phase: Mutex::new(Phase::Sending),
            answered: AtomicBool::new(false),
            answer: Mutex::new(Some(tx)),
        });
        let waiting = Waiting {
            request: shared.clone(),
            inner: self.inner.clone(),
        };
        // The host's reference, given back by its answer; `keep` outlives
        // the `send` call even when the host answers inside it.
        let keep = shared.clone();
        let host_ref = HostPtr(Arc::into_raw(shared).cast_mut().cast::<c_void>());
        let inner = self.inner.clone();
        // Not awaited: the answer is what this waits for, and the deadline
        // bounds the wait even while `send` blocks.
        tokio::task::spawn_blocking(move || {
            let host_ref = host_ref;
            let Some(send) = inner.cb.send else { return };
            let request = host_ref.0.cast::<mcp_oauth_http_request>();
            // SAFETY: the host's callback with its userdata and the request,
            // whose reference it takes over when it returns 0.
            let rc = std::panic::catch_unwind(|| unsafe { send(inner.userdata.ptr(), request) }).unwrap_or(-1);
            if rc == 0 {
                let was = keep.advance(|p| match p {
                    Phase::Sending => Phase::Taken,
                    _ => Phase::Done,
                });
                if was == Phase::AbandonedWhileSending {
                    // The library stopped waiting while `send` ran: tell the
                    // host now, unless it has answered meanwhile.
                    if !keep.answered.load(Ordering::Acquire) {
                        tell_cancel(&inner, &keep);
                    }
                }
            } else {
                keep.advance(|_| Phase::Done);
                // Not taken: the library takes its reference back and fails it.
                // SAFETY: the reference `into_raw` made, which the host gave up.
                let shared = unsafe { Arc::from_raw(host_ref.0.cast_const().cast::<RequestShared>()) };
                if let Some(tx) = shared.take_answer() {
                    let _ = tx.send(Err(TransportError {
                        failure: NetworkFailure::Other,
                        message: format!("the host transport's send callback refused the request (returned {rc})"),
                        callback_code: Some(i64::from(rc)),
                    }));
                }
            }
        });
        let outcome = rx.await;
        drop(waiting);
        outcome.unwrap_or_else(|_| {
            Err(TransportError {
                failure: NetworkFailure::Other,
                message: "the host transport dropped the request".into(),
                callback_code: None,
            })
        })
    }
}

/// Take back the host's reference to `request` (it answered).
unsafe fn take_host_ref(request: *mut mcp_oauth_http_request) -> Option<Arc<RequestShared>> {
    // SAFETY: a non-NULL request came from `Arc::into_raw` and the host
    // answers it once.
    (!request.is_null()).then(|| unsafe { Arc::from_raw(request.cast_const().cast::<RequestShared>()) })
}

/// The request's method (`"GET"` or `"POST"`). Borrowed from `request`; NULL
/// when `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_method(request: *const mcp_oauth_http_request) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        request_ref(request).map_or(std::ptr::null(), |r| r.method.as_ptr())
    })
}

/// The request's absolute URL. Borrowed from `request`; NULL when `request`
/// is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_url(request: *const mcp_oauth_http_request) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        request_ref(request).map_or(std::ptr::null(), |r| r.url.as_ptr())
    })
}

/// How many headers to send (names lower-case); 0 when `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_header_count(request: *const mcp_oauth_http_request) -> usize {
    boundary::guard_value(0, || request_ref(request).map_or(0, |r| r.headers.len()))
}

/// The name of header `index`, or NULL when `request` is NULL or `index` is
/// not below `mcp_oauth_http_request_header_count`. Borrowed from `request`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_header_name(
    request: *const mcp_oauth_http_request,
    index: usize,
) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        request_ref(request)
            .and_then(|r| r.headers.get(index))
            .map_or(std::ptr::null(), |(k, _)| k.as_ptr())
    })
}

/// The value of header `index` (it may hold a secret: never log it), or
/// NULL when `request` is NULL or `index` is out of range. Borrowed from
/// `request`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_header_value(
    request: *const mcp_oauth_http_request,
    index: usize,
) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        request_ref(request)
            .and_then(|r| r.headers.get(index))
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr().cast())
    })
}

/// The request's body (it may hold secrets: never log it) and, in
/// `*len_out` when not NULL, its length. NULL (and a length of 0) for a
/// request without a body (a GET) or when `request` is NULL. Borrowed from
/// `request`; not NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_body(
    request: *const mcp_oauth_http_request,
    len_out: *mut usize,
) -> *const u8 {
    boundary::guard_value(std::ptr::null(), || {
        let (ptr, len) = match request_ref(request) {
            Some(r) if r.has_body => (r.body.as_ptr(), r.body.len()),
            _ => (std::ptr::null(), 0),
        };
        // SAFETY: a non-NULL output points to writable storage for one size_t.
        if let Some(out) = unsafe { len_out.as_mut() } {
            *out = len;
        }
        ptr
    })
}

/// The time allowed for the whole exchange, in milliseconds (the library
/// stops waiting after it anyway). 0 when `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_timeout_ms(request: *const mcp_oauth_http_request) -> u64 {
    boundary::guard_value(0, || request_ref(request).map_or(0, |r| r.timeout_ms))
}

/// The largest response body the library accepts, in bytes: stop reading
/// beyond it and answer with `MCP_OAUTH_NETWORK_FAILURE_TOO_LARGE`. 0 when
/// `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_max_response_bytes(request: *const mcp_oauth_http_request) -> usize {
    boundary::guard_value(0, || request_ref(request).map_or(0, |r| r.max_response_bytes))
}

/// Answer `request` with the server's response, and give it back (it is
/// freed: do not use it afterwards). Callable from any thread, once per
/// request.
///
/// - `status`: the HTTP status (a redirect is a response like any other:
///   do not follow it).
/// - `header_names`, `header_values`, `header_count`: the response's
///   headers, as for `mcp_oauth_provider_handle_response` (the server's
///   bytes; both arrays may be NULL when `header_count` is 0).
/// - `body`, `body_len`: the response's body (`body` may be NULL when
///   `body_len` is 0). Copied, unless over the request's
///   `max_response_bytes`: then the exchange fails with `TOO_LARGE`.
///
/// The request is given back whatever this returns (unless it is NULL);
/// with invalid arguments the exchange fails. An answer after `cancel` is
/// ignored. Answering a request a second time, or using it after it was
/// given back, is undefined behaviour (it is freed memory; the library
/// cannot detect it).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (request, or an array or body
/// NULL with a count above 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_respond(
    request: *mut mcp_oauth_http_request,
    status: u16,
    header_names: *const *const c_char,
    header_values: *const *const c_char,
    header_count: usize,
    body: *const u8,
    body_len: usize,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let shared = unsafe { take_host_ref(request) }.ok_or_else(|| Failure::null("request"))?;
        shared.answered.store(true, Ordering::Release);
        let Some(tx) = shared.take_answer() else {
            return Ok(()); // the library stopped waiting
        };
        let limit = shared.max_response_bytes;
        let parsed =
            unsafe { response_parts(status, header_names, header_values, header_count, body, body_len, limit) };
        match parsed {
            Ok(answer) => {
                let _ = tx.send(answer);
                Ok(())
            }
            Err(f) => {
                let _ = tx.send(Err(TransportError {
                    failure: NetworkFailure::Other,
                    message: "the host transport answered with invalid arguments".into(),
                    callback_code: None,
                }));
                Err(f)
            }
        }
    })
}

/// The response, or a `TOO_LARGE` failure, from the host's arguments.
unsafe fn response_parts(
    status: u16,
    names: *const *const c_char,
    values: *const *const c_char,
    count: usize,
    body: *const u8,
    body_len: usize,
    limit: usize,
) -> Result<Result<HttpResponse, TransportError>, Failure> {
    if body.is_null() && body_len > 0 {
        return Err(Failure::null("body"));
    }
    let mut headers = unsafe { crate::provider::response_headers_arg(names, values, count) }?;
    if body_len > limit {
        return Ok(Err(TransportError {
            failure: NetworkFailure::ResponseTooLarge,
            message: format!("response of {body_len} bytes is over the limit of {limit} bytes"),
            callback_code: None,
        }));
    }
    for (k, _) in &mut headers {
        k.make_ascii_lowercase();
    }
    let body = if body_len == 0 {
        Vec::new()
    } else {
        // SAFETY: the caller passes `body_len` readable bytes.
        unsafe { std::slice::from_raw_parts(body, body_len) }.to_vec()
    };
    Ok(Ok(HttpResponse { status, headers, body }))
}

/// Answer `request` with a failure to get a response, and give it back (it
/// is freed: do not use it afterwards). Callable from any thread, once per
/// request.
///
/// - `failure`: a `mcp_oauth_network_failure` (`OTHER`, `TIMEOUT`,
///   `CONNECT`, `TOO_LARGE`); an unknown value is taken as `OTHER`.
/// - `message`: what happened, in the host's words (e.g. libcurl's
///   `curl_easy_strerror`), or NULL. Copied. It ends up in error messages
///   and logs: it must not hold a secret.
///
/// The request is given back whatever this returns (unless it is NULL).
/// An answer after `cancel` is ignored. A `message` that is not UTF-8 is
/// read with replacement characters. Answering a request a second time, or
/// using it after it was given back, is undefined behaviour (it is freed
/// memory; the library cannot detect it).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (request).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_http_request_fail(
    request: *mut mcp_oauth_http_request,
    failure: u32,
    message: *const c_char,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let shared = unsafe { take_host_ref(request) }.ok_or_else(|| Failure::null("request"))?;
        shared.answered.store(true, Ordering::Release);
        let Some(tx) = shared.take_answer() else {
            return Ok(());
        };
        let failure = mcp_oauth_network_failure::to_core(failure).unwrap_or(NetworkFailure::Other);
        let message = if message.is_null() {
            "the host transport failed".to_string()
        } else {
            // SAFETY: a non-NULL message is a NUL-terminated string alive
            // for the call.
            let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
            format!("the host transport failed: {text}")
        };
        let _ = tx.send(Err(TransportError {
            failure,
            message,
            callback_code: None,
        }));
        Ok(())
    })
}
