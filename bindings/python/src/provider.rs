//! The native provider: the core's `OAuthClientProvider` with each operation
//! as an awaitable (for async httpx clients) and as a blocking call that
//! releases the GIL (for sync clients).
//!
//! Headers cross as a list of `(lower-case name, value)` pairs, every one to
//! be set on the request; a request's timeout as seconds (`None`: the
//! provider's own `http_timeout`).

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::{
    AuthHeaders, AuthorizationHandler, GrantKind, LocalSigner, OAuthClientMetadata, OAuthClientProvider,
    ProviderConfig, RequestInfo, ReqwestTransport, ResourceParameter, ResponseAction, ResponseInfo, Secret,
    StaticClient, TokenStorage,
    error::Step as OAuthStep,
    sources::{IdentityProvider, JwtInput},
};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::bridge::{
    PyAssertionProvider, PyDeviceCode, PyGrantAssertion, PyHandler, PyStorage, py_jwt_fn, resource_validator,
};
use crate::builtins::{NativeFileStorage, NativeKeyringStorage};

use crate::carrier::{Carriers, HostTransport, NativeRequest};
use crate::errors::{OAuthConfigurationError, in_starting_call, native_call, to_pyerr};
use crate::logs::flush_logs_locked;

/// A built-in store passed from Python, for the server `server_url`.
fn native_store(store: &Bound<'_, PyAny>, server_url: &str) -> PyResult<Arc<dyn TokenStorage>> {
    if let Ok(file) = store.cast::<NativeFileStorage>() {
        return Ok(file.get().inner.clone());
    }
    #[cfg(feature = "redis")]
    if let Ok(redis) = store.cast::<crate::builtins::NativeRedisStorage>() {
        return Ok(redis.get().for_server(server_url));
    }
    let _ = server_url;
    Err(OAuthConfigurationError::new_err(
        "native_storage must be a built-in store",
    ))
}

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    if !s.is_finite() || s <= 0.0 {
        return Err(OAuthConfigurationError::new_err(format!(
            "{what} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn logout_json(o: &mcp_oauth_client::LogoutOutcome) -> String {
    serde_json::json!({
        "had_tokens": o.had_tokens,
        "revocation_endpoint": o.revocation_endpoint,
        "refresh_token_revoked": o.refresh_token_revoked,
        "access_token_revoked": o.access_token_revoked,
        "removed": o.removed,
        "not_revoked_because": o.not_revoked_because,
    })
    .to_string()
}

fn json_error(e: serde_json::Error) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(e.to_string())
}

/// Headers, as the Python side sets them.
type HeaderList = Vec<(&'static str, String)>;

fn header_list(h: AuthHeaders) -> HeaderList {
    h.iter().map(|(name, value)| (name, value.to_string())).collect()
}

fn retry_headers(action: ResponseAction) -> Option<HeaderList> {
    match action {
        ResponseAction::Retry(h) => Some(header_list(h)),
        ResponseAction::Done => None,
    }
}

/// The host's per-request timeout; anything not a positive finite number
/// means none.
fn request_timeout(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

/// A request as the Python side describes it, owned (it crosses into a task).
struct Request {
    method: String,
    url: String,
    authorization: Option<String>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request as Python describes it; `timeout` in seconds (see `request_timeout`).
    fn new(method: String, url: String, authorization: Option<String>, timeout: Option<f64>) -> Self {
        Request {
            method,
            url,
            authorization,
            timeout: request_timeout(timeout),
        }
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo::new(&self.method, &self.url)
            .with_authorization(self.authorization.as_deref())
            .with_timeout(self.timeout)
    }
}

#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeProvider {
    inner: OAuthClientProvider,
    carriers: Arc<Carriers>,
    /// Whether the host's client carries the requests of operations.
    carry: bool,
    /// Whether responses are read for what the next request carries (a DPoP
    /// nonce): without DPoP, nothing is.
    observes: bool,
    /// The hot path's last headers: the `Authorization` value and the
    /// headers tuple made of it, given again while the value is the same
    /// (no new Python string per request).
    hot: std::sync::Mutex<Option<(zeroize::Zeroizing<String>, Py<pyo3::types::PyTuple>)>>,
}

impl NativeProvider {
    /// The headers tuple `(("authorization", value),)`, the last one made
    /// when `value` is the same.
    fn fixed_headers(&self, py: Python<'_>, value: &str) -> PyResult<Py<pyo3::types::PyTuple>> {
        let mut hot = self.hot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, tuple)) = hot.as_ref()
            && last.as_str() == value
        {
            return Ok(tuple.clone_ref(py));
        }
        let tuple = pyo3::types::PyTuple::new(py, [("authorization", value)])?.unbind();
        *hot = Some((zeroize::Zeroizing::new(value.to_owned()), tuple.clone_ref(py)));
        Ok(tuple)
    }

    /// Headers as Python sees them: the cached tuple for a fixed
    /// `Authorization`, a new tuple with a DPoP proof.
    fn headers_object(&self, py: Python<'_>, authorization: &str, dpop: Option<&str>) -> PyResult<Py<PyAny>> {
        match dpop {
            None => Ok(self.fixed_headers(py, authorization)?.into_any()),
            Some(proof) => Ok(
                pyo3::types::PyTuple::new(py, [("authorization", authorization), ("dpop", proof)])?
                    .into_any()
                    .unbind(),
            ),
        }
    }
}

/// The event loop of a native call: `event_loop` when given (a sync
/// client's private loop), else the running one.
fn call_locals(py: Python<'_>, event_loop: Option<Bound<'_, PyAny>>) -> PyResult<TaskLocals> {
    let locals = match event_loop {
        Some(event_loop) => TaskLocals::new(event_loop),
        None => TaskLocals::with_running_loop(py)?,
    };
    locals.copy_context(py)
}

impl NativeProvider {
    /// Await `fut` from Python on the running loop: the loop becomes the
    /// call's loop for Python callbacks. Its requests use the core's own
    /// transport.
    fn awaitable<'py, T, F>(&self, py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let locals = call_locals(py, None)?;
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals.clone(), native_call(locals, false, fut))
    }

    /// Run `fut` to completion without the GIL; Python callbacks run on
    /// `event_loop` (running in another thread). Its requests use the core's
    /// own transport.
    fn blocking<T, F>(&self, py: Python<'_>, event_loop: Bound<'_, PyAny>, fut: F) -> PyResult<T>
    where
        F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        if mcp_oauth_client::runtime::inside_runtime() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a blocking call cannot run on one of the runtime's own threads",
            ));
        }
        let rt = crate::runtime()?;
        let locals = call_locals(py, Some(event_loop))?;
        let out = py.detach(|| rt.block_on(native_call(locals, false, fut)));
        flush_logs_locked(py);
        out
    }

    /// Start `fut` as an operation: its requests, and those of the
    /// refreshes and flows it starts, are handed to the Python side by
    /// `NativeOperation.next` (unless the provider was built with
    /// `carried_requests=False`: the core's own transport then sends them).
    fn operation<T, F>(&self, py: Python<'_>, event_loop: Option<Bound<'_, PyAny>>, fut: F) -> PyResult<NativeOperation>
    where
        F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let rt = crate::runtime()?;
        let locals = call_locals(py, event_loop)?;
        let carry = self.carry;
        let task = rt.spawn(async move {
            let out = native_call(locals, carry, fut).await;
            Python::attach(|py| out.and_then(|v| v.into_py_any(py)))
        });
        Ok(NativeOperation {
            carriers: self.carriers.clone(),
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
        })
    }
}

type Outcome = PyResult<Py<PyAny>>;

/// A native operation whose HTTP requests the Python side carries: call
/// `next` until it answers `("done", result)`; each `("send", request)`
/// in between is a `NativeRequest` to send and answer.
#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeOperation {
    carriers: Arc<Carriers>,
    task: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<Outcome>>>>,
}

type Step = (&'static str, Py<PyAny>);

async fn step(
    carriers: Arc<Carriers>,
    task: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<Outcome>>>>,
) -> PyResult<Step> {
    let mut guard = task.lock().await;
    let Some(handle) = guard.as_mut() else {
        return Err(pyo3::exceptions::PyRuntimeError::new_err("the operation is over"));
    };
    tokio::select! {
        biased;
        out = handle => {
            *guard = None;
            let out = out.map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("the operation failed: {e}")))?;
            Ok(("done", out?))
        }
        pending = carriers.next() => {
            Python::attach(|py| Ok(("send", Py::new(py, NativeRequest::new(pending))?.into_any())))
        }
    }
}

#[pymethods]
impl NativeOperation {
    /// Awaitable: the next request to send, or the result.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let locals = TaskLocals::with_running_loop(py)?;
        let fut = step(self.carriers.clone(), self.task.clone());
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, fut)
    }

    /// Blocking form of `next` (the GIL released while waiting).
    fn next_blocking(&self, py: Python<'_>) -> PyResult<Step> {
        if mcp_oauth_client::runtime::inside_runtime() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a blocking call cannot run on one of the runtime's own threads",
            ));
        }
        let rt = crate::runtime()?;
        let fut = step(self.carriers.clone(), self.task.clone());
        let out = py.detach(|| rt.block_on(fut));
        flush_logs_locked(py);
        out
    }
}

#[pymethods]
impl NativeProvider {
    /// Build the core provider. `bridge` carries the Python callbacks;
    /// `native_storage`, when given, replaces the Python storage.
    #[new]
    #[pyo3(signature = (
        server_url, bridge, *, client_metadata_json=None, native_storage=None, has_handler=false,
        http_timeout=30.0, authorization_timeout=300.0, client_metadata_url=None, validate_resource=false,
        assume_s256_when_pkce_unadvertised=false, skip_resource_check=false, protocol_version=None,
        client_credentials=false, client_id=None, client_secret=None, token_endpoint_auth_method=None,
        scope=None, client_assertion=false, issuer=None, resource_parameter=None,
        authorization_params=Vec::new(), token_params=Vec::new(), lease_wait=30.0, carried_requests=true,
        allow_http_hosts=Vec::new(), server_scope_replaces_configured=false,
        dpop=false, dpop_key_pem=None, dpop_algorithm=None, grant_assertion=false,
        idp_token_endpoint=None, idp_client_id=None, idp_client_secret=None, id_token=None,
        fresh_jwt=false, workload_token=None, workload_token_file=None, device_code=false, native_keyring=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        server_url: String,
        bridge: Py<PyAny>,
        client_metadata_json: Option<String>,
        native_storage: Option<Bound<'_, PyAny>>,
        has_handler: bool,
        http_timeout: f64,
        authorization_timeout: f64,
        client_metadata_url: Option<String>,
        validate_resource: bool,
        assume_s256_when_pkce_unadvertised: bool,
        skip_resource_check: bool,
        protocol_version: Option<String>,
        client_credentials: bool,
        client_id: Option<String>,
        client_secret: Option<String>,
        token_endpoint_auth_method: Option<String>,
        scope: Option<String>,
        client_assertion: bool,
        issuer: Option<String>,
        resource_parameter: Option<String>,
        authorization_params: Vec<(String, String)>,
        token_params: Vec<(String, String)>,
        lease_wait: f64,
        carried_requests: bool,
        allow_http_hosts: Vec<String>,
        server_scope_replaces_configured: bool,
        dpop: bool,
        dpop_key_pem: Option<String>,
        dpop_algorithm: Option<String>,
        grant_assertion: bool,
        idp_token_endpoint: Option<String>,
        idp_client_id: Option<String>,
        idp_client_secret: Option<String>,
        id_token: Option<String>,
        fresh_jwt: bool,
        workload_token: Option<String>,
        workload_token_file: Option<String>,
        device_code: bool,
        native_keyring: Option<PyRef<'_, NativeKeyringStorage>>,
    ) -> PyResult<Self> {
        let bridge = Arc::new(bridge);
        let mut metadata = match &client_metadata_json {
            Some(json) => serde_json::from_str::<OAuthClientMetadata>(json).map_err(|e| {
                OAuthConfigurationError::new_err(format!("client metadata does not match RFC 7591: {e}"))
            })?,
            None => OAuthClientMetadata::new(Vec::new()),
        };
        if client_credentials {
            metadata.grant_types = vec!["client_credentials".into()];
            metadata.response_types = Vec::new();
        }
        if scope.is_some() {
            metadata.scope = scope;
        }
        let mut config = ProviderConfig::new(server_url.clone(), metadata);
        config.client_metadata_url = client_metadata_url;
        config.timeout = seconds("http_timeout", http_timeout)?;
        config.authorization_timeout = seconds("timeout", authorization_timeout)?;
        config.assume_s256_when_pkce_unadvertised = assume_s256_when_pkce_unadvertised;
        config.skip_resource_check = skip_resource_check;
        config.allow_http_hosts = allow_http_hosts;
        config.server_scope_replaces_configured = server_scope_replaces_configured;
        config.protocol_version = protocol_version;
        config.task_wrapper = Some(Arc::new(in_starting_call));
        config.resource_parameter = match resource_parameter.as_deref() {
            None | Some("send") => ResourceParameter::Send,
            Some("omit") => ResourceParameter::Omit,
            Some("") => {
                return Err(OAuthConfigurationError::new_err(
                    "resource must be \"send\", \"omit\" or the value to send",
                ));
            }
            Some(value) => ResourceParameter::Override(value.to_string()),
        };
        config.extra_authorization_params = authorization_params;
        config.extra_token_params = token_params;
        if !lease_wait.is_finite() || lease_wait < 0.0 {
            return Err(OAuthConfigurationError::new_err(
                "lease_wait must be a non-negative number of seconds",
            ));
        }
        config.lease_wait = Duration::from_secs_f64(lease_wait);
        if client_credentials {
            config.grant = GrantKind::ClientCredentials;
        }
        if let Some(client_id) = client_id {
            config.static_client = Some(StaticClient {
                client_id,
                client_secret: client_secret.map(Secret::new),
                token_endpoint_auth_method,
                issuer,
            });
        }
        if client_assertion {
            config.client_assertion = Some(Arc::new(PyAssertionProvider { bridge: bridge.clone() }));
        }
        let observes = dpop || dpop_key_pem.is_some();
        if observes {
            let signer = match dpop_key_pem {
                Some(pem) => Some(Arc::new(
                    LocalSigner::from_pem(&Secret::new(pem), dpop_algorithm.as_deref().unwrap_or("ES256"), None)
                        .map_err(to_pyerr)?,
                ) as Arc<dyn mcp_oauth_client::Signer>),
                None => None,
            };
            config.use_dpop(signer).map_err(to_pyerr)?;
        }
        let jwt_input = |fixed: Option<String>, file: Option<String>, step| match (fixed, file) {
            (Some(t), _) => Some(JwtInput::Fixed(Secret::new(t))),
            (None, Some(f)) => Some(JwtInput::File(f.into())),
            (None, None) => fresh_jwt.then(|| JwtInput::Callback(py_jwt_fn(bridge.clone(), step))),
        };
        if let Some(endpoint) = idp_token_endpoint {
            let idp = IdentityProvider::new(&endpoint, idp_client_id, idp_client_secret.map(Secret::new))
                .map_err(to_pyerr)?;
            let token = jwt_input(id_token, None, OAuthStep::IdentityAssertion).ok_or_else(|| {
                OAuthConfigurationError::new_err("enterprise-managed authorization needs the user's ID token")
            })?;
            config.use_identity_assertion(idp, token);
        } else if grant_assertion {
            config.use_grant_assertion(Arc::new(PyGrantAssertion { bridge: bridge.clone() }));
        } else if let Some(token) = jwt_input(workload_token, workload_token_file, OAuthStep::Grant) {
            config.use_workload_identity(token);
        }
        if device_code {
            config.use_device_code(Arc::new(PyDeviceCode { bridge: bridge.clone() }));
        }
        if validate_resource {
            config.resource_validator = Some(resource_validator(bridge.clone(), server_url));
        }
        let carriers = Arc::new(Carriers::default());
        let native = ReqwestTransport::with_options(&config.transport_options).map_err(to_pyerr)?;
        config.transport = Some(Arc::new(HostTransport {
            carriers: carriers.clone(),
            native: Arc::new(native),
        }));
        let storage: Arc<dyn TokenStorage> = match (native_storage, native_keyring) {
            (Some(s), _) => native_store(&s, &config.server_url)?,
            (None, Some(k)) => k.inner.clone(),
            (None, None) => Arc::new(PyStorage { bridge: bridge.clone() }),
        };
        let handler: Option<Arc<dyn AuthorizationHandler>> =
            has_handler.then(|| Arc::new(PyHandler { bridge: bridge.clone() }) as Arc<dyn AuthorizationHandler>);
        let inner = OAuthClientProvider::new(config, storage, handler).map_err(to_pyerr)?;
        Ok(NativeProvider {
            inner,
            carriers,
            carry: carried_requests,
            observes,
            hot: std::sync::Mutex::new(None),
        })
    }

    /// The MCP server URL, as parsed.
    #[getter]
    fn server_url(&self) -> String {
        self.inner.server_url().to_string()
    }

    /// The hot path: the headers for a request when a valid token is held
    /// and the request goes to the MCP server's origin. No I/O, no waiting.
    fn cached_headers(&self, py: Python<'_>, method: &str, url: &str) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .with_cached_headers(method, url, |authorization, dpop| {
                self.headers_object(py, authorization, dpop)
            })
            .transpose()
    }

    /// The hot path from the request's origin as parts (httpx's `scheme`,
    /// `raw_host`, `port`), without making its URL a string: the headers,
    /// `None` when there are none to give without waiting, or `False` when
    /// they depend on the whole URL (DPoP): then call `cached_headers`.
    fn cached_headers_at(&self, py: Python<'_>, scheme: &str, host: &[u8], port: Option<u16>) -> PyResult<Py<PyAny>> {
        let Ok(host) = std::str::from_utf8(host) else {
            return Ok(py.None());
        };
        match self
            .inner
            .with_cached_authorization_at(scheme, host, port, |a| self.fixed_headers(py, a))
        {
            None => Ok(false.into_py_any(py)?),
            Some(None) => Ok(py.None()),
            Some(Some(tuple)) => Ok(tuple?.into_any()),
        }
    }

    /// Whether responses carry what the next request needs (a DPoP nonce).
    #[getter]
    fn observes_responses(&self) -> bool {
        self.observes
    }

    /// A carried operation: the headers for a request, loading or
    /// refreshing tokens when needed; `None` when there is no token (yet).
    /// `event_loop`: where callbacks run (default: the running loop).
    #[pyo3(signature = (method, url, timeout=None, event_loop=None))]
    fn start_headers(
        &self,
        py: Python<'_>,
        method: String,
        url: String,
        timeout: Option<f64>,
        event_loop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<NativeOperation> {
        let p = self.inner.clone();
        let r = Request::new(method, url, None, timeout);
        self.operation(py, event_loop, async move {
            p.headers(&r.info()).await.map(|h| h.map(header_list))
        })
    }

    /// A carried operation: what to do after a response to a request that
    /// carried `authorization`; the headers to retry with, or `None`.
    #[pyo3(signature = (method, url, authorization, status, headers, timeout=None, event_loop=None))]
    #[allow(clippy::too_many_arguments)]
    fn start_handle_response(
        &self,
        py: Python<'_>,
        method: String,
        url: String,
        authorization: Option<String>,
        status: u16,
        headers: Vec<(String, String)>,
        timeout: Option<f64>,
        event_loop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<NativeOperation> {
        let p = self.inner.clone();
        let r = Request::new(method, url, authorization, timeout);
        self.operation(py, event_loop, async move {
            p.handle_response(&r.info(), &ResponseInfo::new(status, &headers))
                .await
                .map(retry_headers)
        })
    }

    /// Whether a response to a retried request is a DPoP nonce challenge,
    /// which `handle_response` may take once more.
    fn is_dpop_nonce_challenge(&self, status: u16, headers: Vec<(String, String)>) -> bool {
        ResponseInfo::new(status, &headers).is_dpop_nonce_challenge()
    }

    /// Keep what a response carries for later requests (a `DPoP-Nonce`).
    fn observe_response(&self, url: &str, headers: Vec<(String, String)>) {
        self.inner.observe_response(url, &headers);
    }

    /// Awaitable: run discovery and the whole flow now.
    fn authorize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        self.awaitable(py, async move { p.authorize().await })
    }

    /// Blocking form of `authorize`.
    fn authorize_blocking(&self, py: Python<'_>, event_loop: Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.inner.clone();
        self.blocking(py, event_loop, async move { p.authorize().await })
    }

    /// Awaitable: log out (revoke at the authorization server, delete the
    /// stored tokens); the outcome as JSON.
    fn logout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        self.awaitable(py, async move { p.logout().await.map(|o| logout_json(&o)) })
    }

    /// Blocking form of `logout`.
    fn logout_blocking(&self, py: Python<'_>, event_loop: Bound<'_, PyAny>) -> PyResult<String> {
        let p = self.inner.clone();
        self.blocking(py, event_loop, async move { p.logout().await.map(|o| logout_json(&o)) })
    }

    /// The tokens held now, as JSON (our `OAuthToken` schema), if any.
    fn current_token_json(&self) -> PyResult<Option<String>> {
        self.inner
            .current_token()
            .map(|t| serde_json::to_string(&t))
            .transpose()
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    /// What the provider knows now, as JSON: `protected_resource_metadata`,
    /// `oauth_metadata`, `auth_server_url` and `resource` (once discovery has
    /// run), `client_info` (once a client identity is in use). No I/O.
    fn context_json(&self) -> PyResult<String> {
        let mut out = serde_json::Map::new();
        if let Some(d) = self.inner.discovered() {
            out.insert(
                "protected_resource_metadata".into(),
                serde_json::to_value(&d.resource_metadata).map_err(json_error)?,
            );
            out.insert(
                "oauth_metadata".into(),
                serde_json::to_value(&d.server).map_err(json_error)?,
            );
            out.insert("auth_server_url".into(), d.issuer.clone().into());
            out.insert("resource".into(), d.resource.clone().into());
        }
        if let Some(info) = self.inner.client_information() {
            out.insert("client_info".into(), serde_json::to_value(&info).map_err(json_error)?);
        }
        serde_json::to_string(&out).map_err(json_error)
    }

    fn __repr__(&self) -> String {
        format!("NativeProvider(server_url={:?})", self.inner.server_url().as_str())
    }
}
