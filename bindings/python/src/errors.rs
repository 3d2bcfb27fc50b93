//! The one place core errors become Python exceptions.
//!
//! The exception classes live in Python (`mcp_oauth_client._errors`) so that
//! they can subclass the httpx exceptions and be documented there. Every
//! exception is built with the same positional arguments: message, step,
//! url, status, error, error_description, error_uri.
//!
//! An exception raised by a Python callback (storage, handlers, resource
//! validator) is kept for the duration of the native call that ran it, and
//! re-raised as it was when the core reports the failure it caused.

use std::sync::{Arc, Mutex};

use mcp_oauth_client::{Error, ErrorKind, NetworkFailure};
use pyo3::PyErr;
use pyo3::prelude::*;

pyo3::import_exception!(mcp_oauth_client._errors, OAuthFlowError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthRegistrationError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthTokenError);
pyo3::import_exception!(mcp_oauth_client._errors, OAuthConfigurationError);
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
        ErrorKind::Network => match e.network_failure() {
            Some(NetworkFailure::Timeout) => PyErr::new::<OAuthTimeoutError, _>(args),
            Some(NetworkFailure::Connect) => PyErr::new::<OAuthConnectError, _>(args),
            _ => PyErr::new::<OAuthNetworkError, _>(args),
        },
        // Flow, and failures of storage or handlers that were not a Python
        // exception (a full disk under the file store, a handler timeout).
        _ => PyErr::new::<OAuthFlowError, _>(args),
    }
}

/// Exceptions raised by Python callbacks during one native call, with the
/// core message each was reported under.
#[derive(Default)]
pub(crate) struct CallbackErrors(Mutex<Vec<(String, PyErr)>>);

tokio::task_local! {
    static CALLBACK_ERRORS: Arc<CallbackErrors>;
}

/// Run a core future as one native call: callback exceptions raised inside
/// it come back as themselves.
pub(crate) async fn native_call<T, F>(fut: F) -> PyResult<T>
where
    F: std::future::Future<Output = mcp_oauth_client::Result<T>>,
{
    let errors = Arc::new(CallbackErrors::default());
    let outcome = CALLBACK_ERRORS.scope(errors.clone(), fut).await;
    outcome.map_err(|e| {
        let mut kept = errors.0.lock().unwrap_or_else(|p| p.into_inner());
        match kept.iter().position(|(msg, _)| e.message().contains(msg.as_str())) {
            Some(i) => kept.swap_remove(i).1,
            None => to_pyerr(e),
        }
    })
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
    let _ = CALLBACK_ERRORS.try_with(|kept| {
        let mut kept = kept.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < 16 {
            kept.push((message.clone(), err));
        }
    });
    make(message)
}
