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
    ProviderConfig, RequestInfo, ResourceParameter, ResponseAction, ResponseInfo, Secret, StaticClient, TokenStorage,
    error::Step,
    sources::{IdentityProvider, JwtInput},
};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::bridge::{PyAssertionProvider, PyGrantAssertion, PyHandler, PyStorage, py_jwt_fn, resource_validator};
use crate::builtins::NativeFileStorage;
use crate::errors::{OAuthConfigurationError, in_starting_call, native_call, to_pyerr};
use crate::logs::flush_logs_locked;

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    if !s.is_finite() || s <= 0.0 {
        return Err(OAuthConfigurationError::new_err(format!(
            "{what} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(s))
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
}

impl NativeProvider {
    /// Await `fut` from Python on the running loop: the loop becomes the
    /// call's loop for Python callbacks.
    fn awaitable<'py, T, F>(&self, py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals.clone(), native_call(locals, fut))
    }

    /// Run `fut` to completion without the GIL; Python callbacks run on
    /// `event_loop` (running in another thread).
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
        let locals = TaskLocals::new(event_loop).copy_context(py)?;
        let out = py.detach(|| rt.block_on(native_call(locals, fut)));
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
        authorization_params=Vec::new(), token_params=Vec::new(), lease_wait=30.0,
        dpop=false, dpop_key_pem=None, dpop_algorithm=None, grant_assertion=false,
        idp_token_endpoint=None, idp_client_id=None, idp_client_secret=None, id_token=None,
        fresh_jwt=false, workload_token=None, workload_token_file=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        server_url: String,
        bridge: Py<PyAny>,
        client_metadata_json: Option<String>,
        native_storage: Option<PyRef<'_, NativeFileStorage>>,
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
        if dpop || dpop_key_pem.is_some() {
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
            let token = jwt_input(id_token, None, Step::IdentityAssertion).ok_or_else(|| {
                OAuthConfigurationError::new_err("enterprise-managed authorization needs the user's ID token")
            })?;
            config.use_identity_assertion(idp, token);
        } else if grant_assertion {
            config.use_grant_assertion(Arc::new(PyGrantAssertion { bridge: bridge.clone() }));
        } else if let Some(token) = jwt_input(workload_token, workload_token_file, Step::Grant) {
            config.use_workload_identity(token);
        }
        if validate_resource {
            config.resource_validator = Some(resource_validator(bridge.clone(), server_url));
        }
        let storage: Arc<dyn TokenStorage> = match native_storage {
            Some(s) => s.inner.clone(),
            None => Arc::new(PyStorage { bridge: bridge.clone() }),
        };
        let handler: Option<Arc<dyn AuthorizationHandler>> =
            has_handler.then(|| Arc::new(PyHandler { bridge: bridge.clone() }) as Arc<dyn AuthorizationHandler>);
        let inner = OAuthClientProvider::new(config, storage, handler).map_err(to_pyerr)?;
        Ok(NativeProvider { inner })
    }

    /// The MCP server URL, as parsed.
    #[getter]
    fn server_url(&self) -> String {
        self.inner.server_url().to_string()
    }

    /// The hot path: the headers for a request when a valid token is held
    /// and the request goes to the MCP server's origin. No I/O, no waiting.
    fn cached_headers(&self, method: &str, url: &str) -> Option<HeaderList> {
        self.inner.cached_headers(method, url).map(header_list)
    }

    /// Awaitable: the headers for a request, loading or refreshing tokens
    /// when needed; `None` when there is no token (yet).
    #[pyo3(signature = (method, url, timeout=None))]
    fn headers<'py>(
        &self,
        py: Python<'py>,
        method: String,
        url: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        let r = Request::new(method, url, None, timeout);
        self.awaitable(
            py,
            async move { p.headers(&r.info()).await.map(|h| h.map(header_list)) },
        )
    }

    /// Awaitable: what to do after a response to a request that carried
    /// `authorization`; the headers to retry with, or `None`.
    #[pyo3(signature = (method, url, authorization, status, headers, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn handle_response<'py>(
        &self,
        py: Python<'py>,
        method: String,
        url: String,
        authorization: Option<String>,
        status: u16,
        headers: Vec<(String, String)>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        let r = Request::new(method, url, authorization, timeout);
        self.awaitable(py, async move {
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

    /// Blocking form of `headers`.
    #[pyo3(signature = (event_loop, method, url, timeout=None))]
    fn headers_blocking(
        &self,
        py: Python<'_>,
        event_loop: Bound<'_, PyAny>,
        method: String,
        url: String,
        timeout: Option<f64>,
    ) -> PyResult<Option<HeaderList>> {
        let p = self.inner.clone();
        let r = Request::new(method, url, None, timeout);
        self.blocking(py, event_loop, async move {
            p.headers(&r.info()).await.map(|h| h.map(header_list))
        })
    }

    /// Blocking form of `handle_response`.
    #[pyo3(signature = (event_loop, method, url, authorization, status, headers, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn handle_response_blocking(
        &self,
        py: Python<'_>,
        event_loop: Bound<'_, PyAny>,
        method: String,
        url: String,
        authorization: Option<String>,
        status: u16,
        headers: Vec<(String, String)>,
        timeout: Option<f64>,
    ) -> PyResult<Option<HeaderList>> {
        let p = self.inner.clone();
        let r = Request::new(method, url, authorization, timeout);
        self.blocking(py, event_loop, async move {
            p.handle_response(&r.info(), &ResponseInfo::new(status, &headers))
                .await
                .map(retry_headers)
        })
    }

    /// Blocking form of `authorize`.
    fn authorize_blocking(&self, py: Python<'_>, event_loop: Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.inner.clone();
        self.blocking(py, event_loop, async move { p.authorize().await })
    }

    /// The tokens held now, as JSON (our `OAuthToken` schema), if any.
    fn current_token_json(&self) -> PyResult<Option<String>> {
        self.inner
            .current_token()
            .map(|t| serde_json::to_string(&t))
            .transpose()
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    fn __repr__(&self) -> String {
        format!("NativeProvider(server_url={:?})", self.inner.server_url().as_str())
    }
}
