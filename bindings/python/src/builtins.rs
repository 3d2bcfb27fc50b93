//! The core's built-ins a Python host should not have to write: the file
//! token store, the loopback redirect receiver, opening the browser, and
//! reading a redirect URL.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::{
    AuthorizationCodeResult, AuthorizationHandler, BrowserLoopbackHandler, FileStorage, LoopbackReceiver, TokenStorage,
};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use url::Url;

use crate::errors::{OAuthConfigurationError, native_call, to_pyerr};

type CallbackTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn result_tuple(r: AuthorizationCodeResult) -> CallbackTuple {
    let (error, error_description, error_uri) = match r.error {
        Some(e) => (Some(e.error), e.error_description, e.error_uri),
        None => (None, None, None),
    };
    (
        r.code.map(|c| c.expose().to_string()),
        r.state,
        r.iss,
        error,
        error_description,
        error_uri,
    )
}

fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = mcp_oauth_client::Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
    pyo3_async_runtimes::tokio::future_into_py_with_locals(py, locals.clone(), native_call(locals, false, fut))
}

/// The core's file store: one JSON file per MCP server, written atomically
/// with mode 0600 under an advisory lock shared with other processes.
#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeFileStorage {
    pub(crate) inner: Arc<FileStorage>,
}

#[pymethods]
impl NativeFileStorage {
    #[new]
    fn new(directory: std::path::PathBuf, server_url: &str) -> PyResult<Self> {
        Ok(NativeFileStorage {
            inner: Arc::new(FileStorage::new(directory, server_url).map_err(to_pyerr)?),
        })
    }

    /// The platform's default directory for token files, if one is known.
    #[staticmethod]
    fn default_dir() -> Option<std::path::PathBuf> {
        FileStorage::default_dir()
    }

    /// Awaitable: the stored tokens as JSON, or `None`.
    fn get_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner.clone();
        awaitable(py, async move {
            Ok(s.get_tokens()
                .await?
                .map(|t| serde_json::to_string(&t).unwrap_or_default()))
        })
    }

    /// Awaitable: store tokens given as JSON.
    fn set_tokens<'py>(&self, py: Python<'py>, json: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner.clone();
        let t =
            serde_json::from_str(&json).map_err(|e| OAuthConfigurationError::new_err(format!("not a token: {e}")))?;
        awaitable(py, async move { s.set_tokens(t).await })
    }

    /// Awaitable: the stored client information as JSON, or `None`.
    fn get_client_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner.clone();
        awaitable(py, async move {
            Ok(s.get_client_info()
                .await?
                .map(|c| serde_json::to_string(&c).unwrap_or_default()))
        })
    }

    /// Awaitable: store client information given as JSON.
    fn set_client_info<'py>(&self, py: Python<'py>, json: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner.clone();
        let c = serde_json::from_str(&json)
            .map_err(|e| OAuthConfigurationError::new_err(format!("not client information: {e}")))?;
        awaitable(py, async move { s.set_client_info(c).await })
    }
}

/// The core's Redis store, shared by every process of a fleet: connection
/// settings and keys, bound to an MCP server by the provider that uses it
/// (or by `server_url` for the four storage methods called from Python).
#[cfg(feature = "redis")]
#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeRedisStorage {
    pub(crate) inner: Arc<mcp_oauth_client::RedisStorage>,
    bound: bool,
}

#[cfg(feature = "redis")]
impl NativeRedisStorage {
    /// The store for `server_url`, sharing this one's connection.
    pub(crate) fn for_server(&self, server_url: &str) -> Arc<dyn TokenStorage> {
        Arc::new(self.inner.for_server(server_url))
    }

    fn bound(&self) -> PyResult<Arc<mcp_oauth_client::RedisStorage>> {
        if self.bound {
            Ok(self.inner.clone())
        } else {
            Err(OAuthConfigurationError::new_err(
                "this RedisTokenStorage has no server_url: give one to use its methods directly \
                 (a provider binds it to its own server)",
            ))
        }
    }
}

#[cfg(feature = "redis")]
#[pymethods]
impl NativeRedisStorage {
    /// `urls`: one `redis://` or `rediss://` URL, or a cluster's nodes
    /// separated by commas. `keys`: `(id, 32 bytes)`, the first encrypts.
    #[new]
    #[pyo3(signature = (urls, *, server_url=None, key_prefix=None, keys=Vec::new(), allow_unencrypted_values=false, timeout=5.0))]
    fn new(
        urls: &str,
        server_url: Option<String>,
        key_prefix: Option<String>,
        keys: Vec<(String, Vec<u8>)>,
        allow_unencrypted_values: bool,
        timeout: f64,
    ) -> PyResult<Self> {
        if !timeout.is_finite() || timeout <= 0.0 {
            return Err(OAuthConfigurationError::new_err(
                "timeout must be a positive number of seconds",
            ));
        }
        let mut options = mcp_oauth_client::RedisOptions::parse(urls)
            .allow_unencrypted_values(allow_unencrypted_values)
            .timeout(Duration::from_secs_f64(timeout));
        if let Some(prefix) = &key_prefix {
            options = options.key_prefix(prefix);
        }
        for (id, bytes) in keys {
            let bytes = zeroize::Zeroizing::new(bytes);
            options = options.encryption_key(mcp_oauth_client::EncryptionKey::new(&id, &bytes).map_err(to_pyerr)?);
        }
        let bound = server_url.is_some();
        let store =
            mcp_oauth_client::RedisStorage::new(options, server_url.as_deref().unwrap_or("")).map_err(to_pyerr)?;
        Ok(NativeRedisStorage {
            inner: Arc::new(store),
            bound,
        })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }

    /// Awaitable: the stored tokens as JSON, or `None`.
    fn get_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.bound()?;
        awaitable(py, async move {
            Ok(s.get_tokens()
                .await?
                .map(|t| serde_json::to_string(&t).unwrap_or_default()))
        })
    }

    /// Awaitable: store tokens given as JSON.
    fn set_tokens<'py>(&self, py: Python<'py>, json: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.bound()?;
        let t =
            serde_json::from_str(&json).map_err(|e| OAuthConfigurationError::new_err(format!("not a token: {e}")))?;
        awaitable(py, async move { s.set_tokens(t).await })
    }

    /// Awaitable: the stored client information as JSON, or `None`.
    fn get_client_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.bound()?;
        awaitable(py, async move {
            Ok(s.get_client_info()
                .await?
                .map(|c| serde_json::to_string(&c).unwrap_or_default()))
        })
    }

    /// Awaitable: store client information given as JSON.
    fn set_client_info<'py>(&self, py: Python<'py>, json: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.bound()?;
        let c = serde_json::from_str(&json)
            .map_err(|e| OAuthConfigurationError::new_err(format!("not client information: {e}")))?;
        awaitable(py, async move { s.set_client_info(c).await })
    }
}

/// The core's RFC 8252 loopback receiver.
#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeLoopbackReceiver {
    handler: Arc<BrowserLoopbackHandler>,
}

#[pymethods]
impl NativeLoopbackReceiver {
    #[new]
    fn new(py: Python<'_>, redirect_uri: String, timeout: f64) -> PyResult<Self> {
        if !timeout.is_finite() || timeout <= 0.0 {
            return Err(OAuthConfigurationError::new_err(
                "timeout must be a positive number of seconds",
            ));
        }
        let rt = crate::runtime()?;
        let bound = py.detach(|| rt.block_on(LoopbackReceiver::bind(&redirect_uri, Duration::from_secs_f64(timeout))));
        let receiver = Arc::new(bound.map_err(to_pyerr)?);
        Ok(NativeLoopbackReceiver {
            handler: Arc::new(BrowserLoopbackHandler::new(receiver)),
        })
    }

    /// The redirect URI with the port actually bound.
    #[getter]
    fn redirect_uri(&self) -> String {
        self.handler.redirect_uri().to_string()
    }

    /// Awaitable: open the authorization URL in the browser and accept only
    /// the redirect that carries its `state`.
    fn redirect<'py>(&self, py: Python<'py>, url: &str) -> PyResult<Bound<'py, PyAny>> {
        let url = Url::parse(url).map_err(|e| OAuthConfigurationError::new_err(format!("not a URL: {e}")))?;
        let h = self.handler.clone();
        awaitable(py, async move { h.redirect(&url).await })
    }

    /// Awaitable: wait for the redirect; a tuple (code, state, iss, error,
    /// error_description, error_uri).
    fn callback<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let h = self.handler.clone();
        awaitable(py, async move { h.callback().await.map(result_tuple) })
    }
}

/// Awaitable: open `url` in the system browser (honours `$BROWSER`; prints
/// the URL when there is no browser).
#[pyfunction]
pub(crate) fn open_browser<'py>(py: Python<'py>, url: &str) -> PyResult<Bound<'py, PyAny>> {
    let url = Url::parse(url).map_err(|e| OAuthConfigurationError::new_err(format!("not a URL: {e}")))?;
    awaitable(py, async move { mcp_oauth_client::open_browser(&url).await })
}

/// What a redirect URL (or its query string) carries: a tuple (code, state,
/// iss, error, error_description, error_uri).
#[pyfunction]
pub(crate) fn parse_redirect(url_or_query: &str) -> PyResult<CallbackTuple> {
    AuthorizationCodeResult::from_redirect(url_or_query)
        .map(result_tuple)
        .map_err(to_pyerr)
}

/// A fresh PKCE pair from the core: `(code_verifier, code_challenge)` (S256).
#[pyfunction]
pub(crate) fn generate_pkce() -> PyResult<(String, String)> {
    let pkce = mcp_oauth_client::authorize::Pkce::generate().map_err(to_pyerr)?;
    Ok((pkce.verifier.expose().to_string(), pkce.challenge))
}
