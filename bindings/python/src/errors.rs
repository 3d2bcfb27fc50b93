//! The one place core errors become Python exceptions.
//!
//! The exception classes live in Python (`mcp_oauth_client._errors`) so that
//! they can subclass the httpx exceptions and be documented there. Every
//! exception is built with the same positional arguments: message, step,
//! url, status, error, error_description, error_uri (and, for
//! `OAuthServerError`, retry_after in seconds).
//!
//! An exception raised by a Python callback (storage, handlers, resource
//! validator) is kept for the duration of the native call that ran it (or
//! that started the refresh or flow that ran it), and re-raised as it was
//! when the core reports the failure it caused.

use std::sync::{Arc, Mutex};

use mcp_oauth_client::{Error, ErrorKind, NetworkFailure};
use pyo3::PyErr;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

pyo3::import_exception!(mcp_oauth_client._errors, OAuthFlowError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthRegistrationError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthTokenError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthConfigurationError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthServerError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthNetworkError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthConnectError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthTimeoutError);

type Args = (
    String,
    Option<&'static str>,
    Option<String>,
    Option<u16>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Map a core error to the Python exception for its kind.
pub(crate) fn to_pyerr(e: Error) -> PyErr {
    let oauth = e.oauth().cloned();
    let args: Args = (
        e.to_string(),
        e.step().map(|s| s.as_str()),
        e.url().map(str::to_string),
        e.status(),
        oauth.as_ref().map(|o| o.error.clone()),
        oauth.as_ref().and_then(|o| o.error_description.clone()),
        oauth.and_then(|o| o.error_uri),
    );
    match e.kind() {
        ErrorKind::Registration => PyErr::new::<OAuthRegistrationError, _>(args),
        ErrorKind::Token => PyErr::new::<OAuthTokenError, _>(args),
        ErrorKind::InvalidConfiguration => PyErr::new::<OAuthConfigurationError, _>(args),
        ErrorKind::Server => {
            let retry_after = e.retry_after().map(|d| d.as_secs_f64());
            let (m, s, u, st, er, ed, eu) = args;
            PyErr::new::<OAuthServerError, _>((m, s, u, st, er, ed, eu, retry_after))
        }
        ErrorKind::Network => match e.network_failure() {
            Some(NetworkFailure::Timeout) => PyErr::new::<OAuthTimeoutError, _>(args),
            // A failed TLS handshake is a failed connection, as httpx reports it.
            Some(NetworkFailure::Connect | NetworkFailure::Tls) => PyErr::new::<OAuthConnectError, _>(args),
            _ => PyErr::new::<OAuthNetworkError, _>(args),
        },
        // Flow, and failures of storage or handlers that were not a Python
        // exception (a full disk under the file store, a handler timeout).
        _ => PyErr::new::<OAuthFlowError, _>(args),
    }
}

/// One native call (an awaitable or a blocking call from Python): the event
/// loop its Python callbacks run on, and the exceptions they raised, each
/// with the core message it was reported under.
pub(crate) struct NativeCall {
    locals: TaskLocals,
    errors: Mutex<Vec<(String, PyErr)>>,
    /// Whether the call's HTTP requests are carried by the host's client
    /// (`carrier.rs`), and so those of the refreshes and flows it starts.
    carried: bool,
}

/// A flight's task, as the core's `TaskWrapper` takes and returns it.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

tokio::task_local! {
    static NATIVE_CALL: Arc<NativeCall>;
}

/// Run a core future as one native call whose callbacks run on `locals`'
/// loop: callback exceptions raised inside it come back as themselves.
/// `carried`: its HTTP requests go through the host's client.
pub(crate) async fn native_call<T, F>(locals: TaskLocals, carried: bool, fut: F) -> PyResult<T>
where
    F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
{
    let call = Arc::new(NativeCall {
        locals: locals.clone(),
        errors: Mutex::new(Vec::new()),
        carried,
    });
    let outcome = pyo3_async_runtimes::tokio::scope(locals, NATIVE_CALL.scope(call.clone(), fut)).await;
    outcome.map_err(|e| {
        let mut kept = call.errors.lock().unwrap_or_else(|p| p.into_inner());
        match kept.iter().position(|(msg, _)| e.message().contains(msg.as_str())) {
            Some(i) => kept.swap_remove(i).1,
            None => to_pyerr(e),
        }
    })
}

/// The core's task wrapper: a refresh or a flow, run as a task of its own,
/// stays inside the native call that started it. Its callbacks run on that
/// call's loop (still running when the call's Python task was cancelled; for
/// sync clients, the package's private loop), and a callback's exception is
/// kept for that call, so its caller gets it as itself. Calls that join the
/// flight get the core's error.
pub(crate) fn in_starting_call(task: Task) -> Task {
    match NATIVE_CALL.try_with(Arc::clone) {
        Ok(call) => {
            let locals = call.locals.clone();
            Box::pin(pyo3_async_runtimes::tokio::scope(locals, NATIVE_CALL.scope(call, task)))
        }
        // Started outside a native call (never, from this binding): callbacks
        // then fail with a clear error instead of finding no loop.
        Err(_) => task,
    }
}

/// Whether the current native call's requests are carried by the host's
/// client.
pub(crate) fn carried() -> bool {
    NATIVE_CALL.try_with(|call| call.carried).unwrap_or(false)
}

/// Report a Python callback's exception to the core as `make(message)`,
/// keeping the exception to re-raise. The message names the callback and
/// the exception type, never the exception text (it may hold anything).
pub(crate) fn callback_failed(what: &str, err: PyErr, make: impl FnOnce(String) -> Error) -> Error {
    let type_name = Python::attach(|py| {
        err.get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "exception".into())
    });
    let message = format!("{what} raised {type_name}");
    let _ = NATIVE_CALL.try_with(|call| {
        let mut kept = call.errors.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < 16 {
            kept.push((message.clone(), err));
        }
    });
    make(message)
}
