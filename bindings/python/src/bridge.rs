//! The core's storage and handler traits, implemented by calling the Python
//! side's bridge object (`mcp_oauth_client._bridge.Bridge`), whose methods
//! are coroutines that take and return JSON text.
//!
//! Each coroutine runs on the event loop of the native call that needs it
//! (the task-local `TaskLocals` set by every native call, and carried into
//! the refresh or flow that call starts): the caller's loop for awaitables,
//! the package's private loop for blocking calls.

use std::sync::Arc;

use async_trait::async_trait;
use mcp_oauth_client::error::Step;
use mcp_oauth_client::{
    AssertionProvider, AuthorizationCodeResult, AuthorizationHandler, DeviceAuthorization, DeviceCodeHandler, Error,
    OAuthClientInformationFull, OAuthErrorFields, OAuthToken, Result, Secret, TokenStorage,
};
use pyo3::prelude::*;
use url::Url;

use crate::errors::callback_failed;
use crate::logs::flush_logs_locked;

/// Call `method` of `obj` and await the coroutine it returns on the current
/// native call's event loop.
pub(crate) async fn call_py<A>(obj: &Py<PyAny>, method: &'static str, args: A) -> PyResult<Py<PyAny>>
where
    A: for<'py> pyo3::call::PyCallArgs<'py> + Send,
{
    let fut = Python::attach(|py| -> PyResult<_> {
        flush_logs_locked(py);
        let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
        let coro = obj.bind(py).call_method1(method, args)?;
        pyo3_async_runtimes::into_future_with_locals(&locals, coro)
    })?;
    fut.await
}

fn extract<T: for<'a, 'py> FromPyObject<'a, 'py>>(v: Py<PyAny>) -> PyResult<T> {
    Python::attach(|py| v.bind(py).extract::<T>().map_err(Into::into))
}

/// Parse JSON from Python without echoing it: a serde message may quote a
/// value, and the value may be a secret.
fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        Error::storage(format!(
            "{what} does not match the expected schema (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::storage(format!("cannot serialize for the storage: {e}")))
}

/// A `TokenStorage` written in Python.
pub(crate) struct PyStorage {
    pub(crate) bridge: Arc<Py<PyAny>>,
}

impl PyStorage {
    async fn get(&self, method: &'static str) -> Result<Option<String>> {
        let v = call_py(&self.bridge, method, ())
            .await
            .map_err(|e| callback_failed(&format!("the storage's {method}"), e, Error::storage))?;
        extract::<Option<String>>(v).map_err(|e| callback_failed(&format!("the storage's {method}"), e, Error::storage))
    }

    async fn set(&self, method: &'static str, json: String) -> Result<()> {
        call_py(&self.bridge, method, (json,))
            .await
            .map_err(|e| callback_failed(&format!("the storage's {method}"), e, Error::storage))?;
        Ok(())
    }
}

#[async_trait]
impl TokenStorage for PyStorage {
    async fn get_tokens(&self) -> Result<Option<OAuthToken>> {
        match self.get("get_tokens").await? {
            Some(s) => Ok(Some(parse("the stored token", &s)?)),
            None => Ok(None),
        }
    }
    async fn set_tokens(&self, tokens: OAuthToken) -> Result<()> {
        self.set("set_tokens", to_json(&tokens)?).await
    }
    async fn get_client_info(&self) -> Result<Option<OAuthClientInformationFull>> {
        match self.get("get_client_info").await? {
            Some(s) => Ok(Some(parse("the stored client information", &s)?)),
            None => Ok(None),
        }
    }
    async fn set_client_info(&self, info: OAuthClientInformationFull) -> Result<()> {
        self.set("set_client_info", to_json(&info)?).await
    }
}

/// The redirect and callback handlers, written in Python.
pub(crate) struct PyHandler {
    pub(crate) bridge: Arc<Py<PyAny>>,
}

/// code, state, iss, error, error_description, error_uri, and whether the
/// handler's result could carry `iss` at all (false for SDK 1.x's tuple).
type CallbackTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

#[async_trait]
impl AuthorizationHandler for PyHandler {
    async fn redirect(&self, authorization_url: &Url) -> Result<()> {
        let make = |m: String| Error::handler(Step::Authorization, m);
        call_py(&self.bridge, "redirect", (authorization_url.as_str().to_string(),))
            .await
            .map_err(|e| callback_failed("the redirect handler", e, make))?;
        Ok(())
    }

    async fn callback(&self) -> Result<AuthorizationCodeResult> {
        let make = |m: String| Error::handler(Step::Callback, m);
        let v = call_py(&self.bridge, "callback", ())
            .await
            .map_err(|e| callback_failed("the callback handler", e, make))?;
        let (code, state, iss, error, error_description, error_uri, iss_reportable) =
            extract::<CallbackTuple>(v).map_err(|e| callback_failed("the callback handler", e, make))?;
        Ok(AuthorizationCodeResult {
            code: code.map(Secret::new),
            state,
            iss,
            error: error.map(|error| OAuthErrorFields {
                error,
                error_description,
                error_uri,
            }),
            iss_not_reported: !iss_reportable,
        })
    }
}

/// The application's `validate_resource_url`, as the core's synchronous
/// resource validator. The core asks during discovery, inside a native
/// call; the coroutine runs on that call's loop while this worker waits.
/// The device flow's `show`: the application's `device_code_handler`, called
/// with the checked device authorization.
pub(crate) struct PyDeviceCode {
    pub(crate) bridge: Arc<Py<PyAny>>,
}

#[async_trait]
impl DeviceCodeHandler for PyDeviceCode {
    async fn show(&self, a: &DeviceAuthorization) -> Result<()> {
        let make = |m: String| Error::handler(Step::DeviceAuthorization, m);
        let args = (
            a.user_code.clone(),
            a.verification_uri.to_string(),
            a.verification_uri_complete.as_ref().map(|u| u.to_string()),
            a.expires_in.as_secs(),
            a.interval.as_secs(),
        );
        call_py(&self.bridge, "device_code", args)
            .await
            .map_err(|e| callback_failed("the device code handler", e, make))?;
        Ok(())
    }
}

pub(crate) fn resource_validator(
    bridge: Arc<Py<PyAny>>,
    server_url: String,
) -> mcp_oauth_client::discovery::ResourceValidator {
    Arc::new(move |_server: &Url, resource: &str| {
        let fut = call_py(&bridge, "validate_resource", (server_url.clone(), resource.to_string()));
        let outcome = tokio::task::block_in_place(|| futures_executor::block_on(fut));
        outcome.map(|_| ()).map_err(|e| {
            callback_failed("validate_resource_url", e, |m| Error::flow(Step::ResourceMetadata, m))
                .message()
                .to_string()
        })
    })
}

/// The application's `assertion_provider(audience)`, as the core's
/// `AssertionProvider`: awaited on the native call's loop like the storage.
/// (A configured issuer is pinned in the core: no assertion is asked for
/// another authorization server.)
pub(crate) struct PyAssertionProvider {
    pub(crate) bridge: Arc<Py<PyAny>>,
}

#[async_trait]
impl AssertionProvider for PyAssertionProvider {
    async fn assertion(&self, _client_id: &str, audience: &str) -> Result<Secret> {
        let make = |m: String| Error::flow(Step::Grant, m);
        let v = call_py(&self.bridge, "assertion", (audience.to_string(),))
            .await
            .map_err(|e| callback_failed("the assertion provider", e, make))?;
        extract::<String>(v)
            .map(Secret::new)
            .map_err(|e| callback_failed("the assertion provider", e, make))
    }
}

/// The application's `assertion_provider(audience, resource)` of the
/// JWT-bearer grant (an ID-JAG it obtains itself), awaited like the storage.
pub(crate) struct PyGrantAssertion {
    pub(crate) bridge: Arc<Py<PyAny>>,
}

#[async_trait]
impl mcp_oauth_client::GrantAssertion for PyGrantAssertion {
    async fn assertion(&self, ctx: &mcp_oauth_client::sources::SourceContext<'_>, resource: &str) -> Result<Secret> {
        let make = |m: String| Error::flow(Step::Grant, m);
        let args = (ctx.discovered.issuer.clone(), resource.to_string());
        let v = call_py(&self.bridge, "grant_assertion", args)
            .await
            .map_err(|e| callback_failed("the assertion provider", e, make))?;
        extract::<String>(v)
            .map(Secret::new)
            .map_err(|e| callback_failed("the assertion provider", e, make))
    }
}

/// The application's function giving a fresh JWT (the user's ID token, a
/// workload's platform token), called again once the one it gave expired.
pub(crate) fn py_jwt_fn(bridge: Arc<Py<PyAny>>, step: Step) -> mcp_oauth_client::sources::JwtFn {
    Arc::new(move || {
        let bridge = bridge.clone();
        Box::pin(async move {
            let make = move |m: String| Error::flow(step, m);
            let v = call_py(&bridge, "fresh_jwt", ())
                .await
                .map_err(|e| callback_failed("the token provider", e, make))?;
            extract::<String>(v)
                .map(Secret::new)
                .map_err(|e| callback_failed("the token provider", e, make))
        })
    })
}
