//! Result codes and the error object.

use std::ffi::{CStr, CString, c_char};

use mcp_oauth_client::{Error as CoreError, ErrorKind};

use crate::boundary::{self, BoxHandle, to_cstring};
use crate::transport::mcp_oauth_network_failure;

/// The outcome of a call. Numbers are explicit and append-only: a code is
/// never renumbered, reused or removed.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mcp_oauth_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was out of range (an unknown enum value, a zero count...).
    InvalidArgument = 3,
    /// The configuration cannot work (a bad server URL, client metadata JSON
    /// that does not parse, a client the authorization server does not
    /// know, ...), including a missing handler, reported when a flow first
    /// needs a person.
    InvalidConfiguration = 4,
    /// An OAuth flow failure not covered by a more specific code (discovery,
    /// a bad callback, a state or issuer mismatch, ...).
    Flow = 5,
    /// The authorization server refused (or could not do) client registration.
    Registration = 6,
    /// The token endpoint refused a grant.
    Token = 7,
    /// A network failure: timeout, refused connection, oversized response.
    Network = 8,
    /// Token storage failed: a storage callback returned non-zero or invalid
    /// JSON, or the built-in file store could not read or write its file.
    Storage = 9,
    /// The redirect/callback handler failed: a handler callback returned
    /// non-zero or no answer, or the built-in loopback receiver timed out.
    Handler = 10,
    /// A blocking function was called from a thread of the library (inside a
    /// storage, handler, log or completion callback), where waiting would
    /// deadlock. Use the `_async` variant there, or call from another thread.
    WouldDeadlock = 11,
    /// The library panicked; the operation was abandoned. A bug: please report it.
    Panic = 12,
    /// The server could not answer: a 5xx, a 429, an HTML error page, a
    /// malformed success. An outage, not a refusal: stored tokens are kept,
    /// and a later request tries again (after `mcp_oauth_error_retry_after_ms`
    /// when the server said how long to wait).
    Server = 13,
    /// The operation was cancelled: its `mcp_oauth_operation_cancel` was
    /// called, or its provider was freed while it ran.
    Cancelled = 14,
    /// This process is a child created with `fork()` after the library
    /// started its runtime: the library's threads did not survive the fork,
    /// so the child cannot use it (every call that needs them gives this
    /// code; freeing a provider there releases nothing). Use the library in
    /// the parent, or in a child that calls `exec`, or fork before the
    /// first provider is built.
    Forked = 15,
    /// `mcp_oauth_shutdown` could not stop the library in time: another
    /// thread is inside a blocking call, or a host callback still runs.
    Busy = 16,
}

impl mcp_oauth_result {
    fn name(self) -> &'static CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullParameter => c"null_parameter",
            Self::InvalidUtf8 => c"invalid_utf8",
            Self::InvalidArgument => c"invalid_argument",
            Self::InvalidConfiguration => c"invalid_configuration",
            Self::Flow => c"flow",
            Self::Registration => c"registration",
            Self::Token => c"token",
            Self::Network => c"network",
            Self::Storage => c"storage",
            Self::Handler => c"handler",
            Self::WouldDeadlock => c"would_deadlock",
            Self::Panic => c"panic",
            Self::Server => c"server",
            Self::Cancelled => c"cancelled",
            Self::Forked => c"forked",
            Self::Busy => c"busy",
        }
    }

    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::NullParameter,
            2 => Self::InvalidUtf8,
            3 => Self::InvalidArgument,
            4 => Self::InvalidConfiguration,
            5 => Self::Flow,
            6 => Self::Registration,
            7 => Self::Token,
            8 => Self::Network,
            9 => Self::Storage,
            10 => Self::Handler,
            11 => Self::WouldDeadlock,
            12 => Self::Panic,
            13 => Self::Server,
            14 => Self::Cancelled,
            15 => Self::Forked,
            16 => Self::Busy,
            _ => return None,
        })
    }
}

/// A failure inside the library, before it becomes a code and an error object.
pub(crate) enum Failure {
    Core(CoreError),
    Local { code: mcp_oauth_result, message: String },
}

impl Failure {
    pub(crate) fn local(code: mcp_oauth_result, message: impl Into<String>) -> Self {
        Failure::Local {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn null(name: &str) -> Self {
        Self::local(mcp_oauth_result::NullParameter, format!("`{name}` must not be NULL"))
    }
    pub(crate) fn invalid_utf8(name: &str) -> Self {
        Self::local(mcp_oauth_result::InvalidUtf8, format!("`{name}` is not valid UTF-8"))
    }
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::local(mcp_oauth_result::InvalidArgument, message)
    }
    pub(crate) fn would_deadlock() -> Self {
        Self::local(
            mcp_oauth_result::WouldDeadlock,
            "a blocking function was called from a library thread (inside a callback), where it would deadlock; \
             use the _async variant or call from another thread",
        )
    }
    pub(crate) fn panic() -> Self {
        Self::local(
            mcp_oauth_result::Panic,
            "the library panicked; the operation was abandoned",
        )
    }
    pub(crate) fn cancelled(message: impl Into<String>) -> Self {
        Self::local(mcp_oauth_result::Cancelled, message)
    }
    pub(crate) fn forked() -> Self {
        Self::local(
            mcp_oauth_result::Forked,
            "this process was forked after the library started its threads, which a child does not have: use \
             the library in the parent, or exec",
        )
    }
    pub(crate) fn busy(message: impl Into<String>) -> Self {
        Self::local(mcp_oauth_result::Busy, message)
    }
    pub(crate) fn flow(message: impl Into<String>) -> Self {
        Self::local(mcp_oauth_result::Flow, message)
    }

    pub(crate) fn code(&self) -> mcp_oauth_result {
        match self {
            Failure::Core(e) => code_of(e),
            Failure::Local { code, .. } => *code,
        }
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

fn code_of(e: &CoreError) -> mcp_oauth_result {
    match e.kind() {
        ErrorKind::Flow => mcp_oauth_result::Flow,
        ErrorKind::Registration => mcp_oauth_result::Registration,
        ErrorKind::Token => mcp_oauth_result::Token,
        ErrorKind::Network => mcp_oauth_result::Network,
        ErrorKind::Server => mcp_oauth_result::Server,
        ErrorKind::InvalidConfiguration => mcp_oauth_result::InvalidConfiguration,
        ErrorKind::Storage => mcp_oauth_result::Storage,
        ErrorKind::Handler => mcp_oauth_result::Handler,
        _ => mcp_oauth_result::Flow,
    }
}

/// The detail of a failure: what kind, in which step, the message, the HTTP
/// status, the OAuth `error`/`error_description` and the `Retry-After` when
/// the server sent them. Created by the library on failure, owned by the caller, freed with
/// `mcp_oauth_error_free`. Immutable: it may be read from any thread. Strings
/// returned by its accessors are borrowed from it and valid until it is freed.
/// It never holds a secret.
pub struct mcp_oauth_error {
    _private: [u8; 0],
}

#[derive(Clone)]
pub(crate) struct ErrorObject {
    code: mcp_oauth_result,
    message: CString,
    display: CString,
    step: Option<CString>,
    url: Option<CString>,
    status: u16,
    oauth_error: Option<CString>,
    oauth_error_description: Option<CString>,
    oauth_error_uri: Option<CString>,
    retry_after_ms: Option<u64>,
    network: mcp_oauth_network_failure,
    callback_code: Option<i64>,
}

impl BoxHandle for mcp_oauth_error {
    type Inner = ErrorObject;
}

impl From<Failure> for ErrorObject {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Core(e) => ErrorObject {
                code: code_of(&e),
                message: to_cstring(e.message()),
                display: to_cstring(&e.to_string()),
                step: e.step().map(|s| to_cstring(s.as_str())),
                url: e.url().map(to_cstring),
                status: e.status().unwrap_or(0),
                oauth_error: e.oauth().map(|o| to_cstring(&o.error)),
                oauth_error_description: e.oauth().and_then(|o| o.error_description.as_deref()).map(to_cstring),
                oauth_error_uri: e.oauth().and_then(|o| o.error_uri.as_deref()).map(to_cstring),
                retry_after_ms: e
                    .retry_after()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                network: mcp_oauth_network_failure::from_core(e.network_failure()),
                callback_code: e.callback_code(),
            },
            Failure::Local { code, message } => ErrorObject {
                code,
                display: to_cstring(&message),
                message: to_cstring(&message),
                step: None,
                url: None,
                status: 0,
                oauth_error: None,
                oauth_error_description: None,
                oauth_error_uri: None,
                retry_after_ms: None,
                network: mcp_oauth_network_failure::None,
                callback_code: None,
            },
        }
    }
}

impl ErrorObject {
    pub(crate) fn code(&self) -> mcp_oauth_result {
        self.code
    }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// A stable lower-case name for a result code (`"ok"`, `"null_parameter"`,
/// `"storage"`, ...), or `"unknown"` for a number this library does not
/// know. A static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn mcp_oauth_result_name(result: u32) -> *const c_char {
    boundary::guard_value(c"panic".as_ptr(), || {
        mcp_oauth_result::from_u32(result)
            .map_or(c"unknown", mcp_oauth_result::name)
            .as_ptr()
    })
}

/// The result code this error was reported with.
/// `MCP_OAUTH_RESULT_NULL_PARAMETER` when `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_code(error: *const mcp_oauth_error) -> mcp_oauth_result {
    boundary::guard_value(mcp_oauth_result::Panic, || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(mcp_oauth_result::NullParameter, |e| e.code)
    })
}

/// The kind of failure, as a stable lower-case name: the name of its result
/// code (`"flow"`, `"registration"`, `"token"`, `"network"`, `"server"`,
/// `"invalid_configuration"`, `"storage"`, `"handler"`, `"null_parameter"`,
/// `"invalid_utf8"`, `"invalid_argument"`, `"would_deadlock"`, `"panic"`,
/// `"cancelled"`, `"forked"`, `"busy"`).
/// A static string; NULL when `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_kind(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| e.code.name().as_ptr())
    })
}

/// What went wrong, in the library's words (without the step, status and
/// OAuth fields; see `mcp_oauth_error_display` for everything in one line).
/// Never empty. Borrowed from `error`; NULL when `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_message(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| e.message.as_ptr())
    })
}

/// Everything in one line, for logs and people:
/// `step: message (error=code: description) [HTTP status] at url`.
/// Borrowed from `error`; NULL when `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_display(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| e.display.as_ptr())
    })
}

/// The step of the flow that failed (`"configuration"`, `"resource_metadata"`,
/// `"authorization_server_metadata"`, `"registration"`, `"authorization"`,
/// `"callback"`, `"token_exchange"`, `"refresh"`, `"grant"`, `"step_up"`,
/// `"storage"`, `"request"`), or NULL when not in a step (argument errors).
/// Borrowed from `error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_step(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| opt_ptr(&e.step))
    })
}

/// The URL of the failing request, without query or fragment, or NULL.
/// Borrowed from `error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_url(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| opt_ptr(&e.url))
    })
}

/// The HTTP status of the failing response, or 0 when there was none.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_http_status(error: *const mcp_oauth_error) -> u16 {
    boundary::guard_value(0, || unsafe { mcp_oauth_error::borrow(error) }.map_or(0, |e| e.status))
}

/// The OAuth `error` code the server sent (RFC 6749 §5.2, e.g.
/// `"invalid_grant"`, `"access_denied"`), or NULL. Borrowed from `error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_oauth_error(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| opt_ptr(&e.oauth_error))
    })
}

/// The OAuth `error_description` the server sent, or NULL. Server-provided
/// text: show it, do not parse it. Borrowed from `error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_oauth_error_description(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| opt_ptr(&e.oauth_error_description))
    })
}

/// How long the server asked the client to wait before trying again (its
/// `Retry-After`, as sent with a 429 or 503), in milliseconds.
///
/// Returns true and writes `*retry_after_ms_out` when the server said (0 is
/// then a real answer: "now"); returns false and writes nothing when it did
/// not, or when `error` or `retry_after_ms_out` is NULL. Mostly set on
/// errors of kind `"server"`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_retry_after_ms(
    error: *const mcp_oauth_error,
    retry_after_ms_out: *mut u64,
) -> bool {
    boundary::guard_value(false, || {
        let Some(ms) = unsafe { mcp_oauth_error::borrow(error) }.and_then(|e| e.retry_after_ms) else {
            return false;
        };
        // SAFETY: a non-NULL output points to writable storage for one u64.
        match unsafe { retry_after_ms_out.as_mut() } {
            Some(out) => {
                *out = ms;
                true
            }
            None => false,
        }
    })
}

/// What kind of network failure an error of kind `"network"` is: a
/// `mcp_oauth_network_failure` (`TIMEOUT`, `CONNECT`, `TOO_LARGE`,
/// `OTHER`); `MCP_OAUTH_NETWORK_FAILURE_NONE` for any other error, or when
/// `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_network_failure(error: *const mcp_oauth_error) -> mcp_oauth_network_failure {
    boundary::guard_value(mcp_oauth_network_failure::None, || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(mcp_oauth_network_failure::None, |e| e.network)
    })
}

/// The OAuth `error_uri` the server sent (a page about the error), or
/// NULL. Server-provided: show it, do not fetch it blindly. Borrowed from
/// `error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_oauth_error_uri(error: *const mcp_oauth_error) -> *const c_char {
    boundary::guard_value(std::ptr::null(), || {
        unsafe { mcp_oauth_error::borrow(error) }.map_or(std::ptr::null(), |e| opt_ptr(&e.oauth_error_uri))
    })
}

/// What the host's own callback returned, when the failure is that a
/// storage or handler callback returned non-zero (libgit2's `GIT_EUSER`
/// idea: the host's code survives the library). Returns true and writes
/// `*code_out` then; returns false and writes nothing otherwise, or when
/// `error` or `code_out` is NULL. (A transport `send` that refuses a
/// request has its code in the message only.)
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_callback_code(error: *const mcp_oauth_error, code_out: *mut i64) -> bool {
    boundary::guard_value(false, || {
        let Some(code) = unsafe { mcp_oauth_error::borrow(error) }.and_then(|e| e.callback_code) else {
            return false;
        };
        // SAFETY: a non-NULL output points to writable storage for one i64.
        match unsafe { code_out.as_mut() } {
            Some(out) => {
                *out = code;
                true
            }
            None => false,
        }
    })
}

/// A copy of `error`, owned by the caller and freed with
/// `mcp_oauth_error_free`: keep one beyond a completion callback, whose
/// `error` is only borrowed. NULL when `error` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_clone(error: *const mcp_oauth_error) -> *mut mcp_oauth_error {
    boundary::guard_value(std::ptr::null_mut(), || {
        unsafe { mcp_oauth_error::borrow(error) }
            .map_or(std::ptr::null_mut(), |e| mcp_oauth_error::into_raw(Box::new(e.clone())))
    })
}

/// Free an error object. NULL is a no-op. Freeing it twice, or using it
/// (or a string borrowed from it) after it is freed, is undefined behaviour
/// (the library cannot detect it). The `error` a completion is given is
/// borrowed: never free it (keep a copy with `mcp_oauth_error_clone`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_error_free(error: *mut mcp_oauth_error) {
    boundary::guard_void(|| drop(unsafe { mcp_oauth_error::take(error) }))
}
