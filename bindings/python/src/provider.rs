//! The native provider: the core's `OAuthClientProvider` with each operation
//! as an awaitable (for async httpx clients) and as a blocking call that
//! releases the GIL (for sync clients).

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::discovery::same_issuer;
use mcp_oauth_client::{
    AuthorizationHandler, GrantKind, OAuthClientMetadata, OAuthClientProvider, ProviderConfig, ResponseAction, Secret,
    StaticClient, TokenStorage,
};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::bridge::{PyAssertionProvider, PyHandler, PyStorage, resource_validator};
use crate::builtins::NativeFileStorage;
use crate::errors::{OAuthConfigurationError, native_call, to_pyerr};
use crate::logs::flush_logs_locked;

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    if !s.is_finite() || s <= 0.0 {
        return Err(OAuthConfigurationError::new_err(format!(
            "{what} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(s))
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
        pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals, native_call(fut))
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
        let out = py.detach(|| rt.block_on(pyo3_async_runtimes::tokio::scope(locals, native_call(fut))));
        flush_logs_locked(py);
        out
    }
}

fn retry_header(action: ResponseAction) -> Option<String> {
    match action {
        ResponseAction::Retry(h) => Some(h),
        ResponseAction::Done => None,
    }
}

#[pymethods]
impl NativeProvider {
    /// Build the core provider. `bridge` carries the Python callbacks;
    /// `native_storage`, when given, replaces the Python storage.
    #[new]
    #[pyo3(signature = (
        server_url, bridge, *, client_metadata_json=None, native_storage=None, has_handler=false,
        http_timeout=30.0, client_metadata_url=None, validate_resource=false,
        assume_s256_when_pkce_unadvertised=false, skip_resource_check=false, protocol_version=None,
        client_credentials=false, client_id=None, client_secret=None, token_endpoint_auth_method=None,
        scope=None, client_assertion=false, issuer=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        server_url: String,
        bridge: Py<PyAny>,
        client_metadata_json: Option<String>,
        native_storage: Option<PyRef<'_, NativeFileStorage>>,
        has_handler: bool,
        http_timeout: f64,
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
        config.assume_s256_when_pkce_unadvertised = assume_s256_when_pkce_unadvertised;
        config.skip_resource_check = skip_resource_check;
        config.protocol_version = protocol_version;
        if client_credentials {
            config.grant = GrantKind::ClientCredentials;
        }
        if let Some(client_id) = client_id {
            config.static_client = Some(StaticClient {
                client_id,
                client_secret: client_secret.map(Secret::new),
                token_endpoint_auth_method,
            });
        }
        if client_assertion {
            config.client_assertion = Some(Arc::new(PyAssertionProvider {
                bridge: bridge.clone(),
                issuer: issuer.clone(),
            }));
        }
        if let Some(issuer) = issuer {
            // Ask the configured issuer when the server names several.
            config.authorization_server_selector = Some(Arc::new(move |servers: &[String]| {
                servers.iter().position(|s| same_issuer(&issuer, s)).unwrap_or(0)
            }));
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

    /// The hot path: the `Authorization` value when a valid token is held.
    fn cached_authorization(&self) -> Option<String> {
        self.inner.cached_authorization()
    }

    /// Awaitable: the `Authorization` value for the next request, loading
    /// or refreshing tokens when needed; `None` when there is none yet.
    fn authorization<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        self.awaitable(py, async move { p.authorization().await })
    }

    /// Awaitable: what to do after a response; the header to retry with, or `None`.
    #[pyo3(signature = (status, www_authenticate, sent))]
    fn handle_response<'py>(
        &self,
        py: Python<'py>,
        status: u16,
        www_authenticate: Vec<String>,
        sent: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        self.awaitable(py, async move {
            p.handle_response(status, &www_authenticate, sent.as_deref())
                .await
                .map(retry_header)
        })
    }

    /// Awaitable: run discovery and the whole flow now.
    fn authorize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        self.awaitable(py, async move { p.authorize().await })
    }

    /// Blocking form of `authorization`.
    fn authorization_blocking(&self, py: Python<'_>, event_loop: Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let p = self.inner.clone();
        self.blocking(py, event_loop, async move { p.authorization().await })
    }

    /// Blocking form of `handle_response`.
    #[pyo3(signature = (event_loop, status, www_authenticate, sent))]
    fn handle_response_blocking(
        &self,
        py: Python<'_>,
        event_loop: Bound<'_, PyAny>,
        status: u16,
        www_authenticate: Vec<String>,
        sent: Option<String>,
    ) -> PyResult<Option<String>> {
        let p = self.inner.clone();
        self.blocking(py, event_loop, async move {
            p.handle_response(status, &www_authenticate, sent.as_deref())
                .await
                .map(retry_header)
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
