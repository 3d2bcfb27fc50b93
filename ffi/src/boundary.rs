//! The boundary: panics stop here, arguments are checked here, and opaque
//! handles are converted to and from the Rust values behind them.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::error::{Failure, mcp_oauth_error, mcp_oauth_result};

/// Run `f`, turning a panic into `MCP_OAUTH_RESULT_PANIC` and a failure into
/// its result code plus, when `err_out` is not NULL, a new error object.
pub(crate) fn guard(err_out: *mut *mut mcp_oauth_error, f: impl FnOnce() -> Result<(), Failure>) -> mcp_oauth_result {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(Failure::panic()));
    match outcome {
        Ok(()) => mcp_oauth_result::Ok,
        Err(failure) => {
            let code = failure.code();
            if !err_out.is_null() {
                // SAFETY: a non-NULL `err_out` points to writable storage for
                // one pointer (documented on every function taking it).
                unsafe { *err_out = mcp_oauth_error::into_raw(Box::new(failure.into())) };
            }
            code
        }
    }
}

/// [`guard`] for functions without an error output.
pub(crate) fn guard_code(f: impl FnOnce() -> Result<(), Failure>) -> mcp_oauth_result {
    guard(std::ptr::null_mut(), f)
}

/// For functions that return a value: a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// For functions that return nothing.
pub(crate) fn guard_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// A required string argument, borrowed for the duration of the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &'static str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives the call.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    // Methods and URLs, on the header path, are ASCII: checked inline.
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| Failure::invalid_utf8(name))
}

/// An optional string argument: NULL is `None`.
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &'static str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// A required output pointer.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, name: &'static str) -> Result<&'a mut T, Failure> {
    // SAFETY: a non-NULL output pointer points to writable storage for one T.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// A string handed to C; interior NUL bytes (which a C string cannot hold)
/// are dropped.
pub(crate) fn to_cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|b| *b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

/// An opaque handle owned through a `Box`.
pub(crate) trait BoxHandle: Sized {
    type Inner;

    fn into_raw(b: Box<Self::Inner>) -> *mut Self {
        Box::into_raw(b).cast()
    }

    /// Borrow; NULL is `None`.
    unsafe fn borrow<'a>(p: *const Self) -> Option<&'a Self::Inner> {
        // SAFETY: a non-NULL handle came from `into_raw` and is not freed.
        unsafe { p.cast::<Self::Inner>().as_ref() }
    }

    unsafe fn borrow_mut<'a>(p: *mut Self) -> Option<&'a mut Self::Inner> {
        // SAFETY: as `borrow`; the caller does not use it from two threads at once.
        unsafe { p.cast::<Self::Inner>().as_mut() }
    }

    /// Take ownership back; NULL is `None`.
    unsafe fn take(p: *mut Self) -> Option<Box<Self::Inner>> {
        // SAFETY: a non-NULL handle came from `into_raw`, and is given back once.
        (!p.is_null()).then(|| unsafe { Box::from_raw(p.cast::<Self::Inner>()) })
    }
}

/// An opaque handle owned through an `Arc` (shared with operations in flight).
pub(crate) trait ArcHandle: Sized {
    type Inner;

    fn into_raw(a: Arc<Self::Inner>) -> *mut Self {
        Arc::into_raw(a).cast_mut().cast()
    }

    unsafe fn borrow<'a>(p: *const Self) -> Option<&'a Self::Inner> {
        // SAFETY: a non-NULL handle came from `into_raw` and holds a reference.
        unsafe { p.cast::<Self::Inner>().as_ref() }
    }

    /// A new reference, for an operation that may outlive the handle.
    unsafe fn clone_arc(p: *const Self) -> Option<Arc<Self::Inner>> {
        if p.is_null() {
            return None;
        }
        let p = p.cast::<Self::Inner>();
        // SAFETY: `p` came from `Arc::into_raw` and its reference is alive.
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    }

    /// Give back the handle's reference.
    unsafe fn release(p: *mut Self) -> Option<Arc<Self::Inner>> {
        // SAFETY: a non-NULL handle came from `into_raw` and is released once.
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p.cast_const().cast::<Self::Inner>()) })
    }
}
