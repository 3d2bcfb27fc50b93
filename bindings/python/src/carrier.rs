//! OAuth requests carried by the host's HTTP client.
//!
//! An httpx auth flow can send requests of its own: it yields them, and the
//! client sends them with its transport, TLS settings, proxies, timeouts and
//! event hooks. The core's requests (discovery, registration, token) go that
//! way here: the provider's transport queues each request, and every native
//! operation an auth flow is waiting on hands queued requests to its flow,
//! which yields them and brings the response back. The core's rules stay
//! where they are: its deadline bounds each request whatever the client does,
//! and a body over its cap is refused (`Http::send`).
//!
//! Work started by an operation that was not carried (`authorize()`, which
//! has no client at hand) uses the core's own transport. A refresh or a flow
//! whose starting request was cancelled keeps queuing its requests: any other
//! operation of the same provider carries them, or the request's deadline
//! ends the wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mcp_oauth_client::{HttpRequest, HttpResponse, HttpTransport, NetworkFailure, TransportError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::{Notify, oneshot};

use crate::errors::carried;

type Reply = oneshot::Sender<Result<HttpResponse, TransportError>>;

/// A request waiting for a client to send it.
pub(crate) struct Pending {
    request: HttpRequest,
    reply: Reply,
}

/// A provider's requests waiting for a client.
#[derive(Default)]
pub(crate) struct Carriers {
    queue: Mutex<VecDeque<Pending>>,
    ready: Notify,
}

impl Carriers {
    fn push(&self, pending: Pending) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(pending);
        self.ready.notify_waiters();
    }

    /// The next request still awaited by the core (one whose deadline passed
    /// is skipped). Cancel-safe: a request is taken only when returned.
    pub(crate) async fn next(&self) -> Pending {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(p) = queue.pop_front() {
                    if !p.reply.is_closed() {
                        return p;
                    }
                }
            }
            notified.await;
        }
    }
}

/// The provider's transport: carried by the host's client when the work
/// was started by a carried operation, the core's own transport otherwise.
pub(crate) struct HostTransport {
    pub(crate) carriers: Arc<Carriers>,
    pub(crate) native: Arc<dyn HttpTransport>,
}

fn not_completed() -> TransportError {
    TransportError {
        failure: NetworkFailure::Other,
        message: "the HTTP client did not complete the request".into(),
        callback_code: None,
    }
}

#[async_trait]
impl HttpTransport for HostTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if !carried() {
            return self.native.send(request).await;
        }
        let (reply, answer) = oneshot::channel();
        self.carriers.push(Pending { request, reply });
        answer.await.unwrap_or_else(|_| Err(not_completed()))
    }
}

/// One of the core's requests, handed to Python to send with its client.
/// Answer it once, with `respond` or `fail`; dropped unanswered, the core
/// sees a network failure.
#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeRequest {
    request: HttpRequest,
    reply: Mutex<Option<Reply>>,
}

impl NativeRequest {
    pub(crate) fn new(p: Pending) -> Self {
        NativeRequest {
            request: p.request,
            reply: Mutex::new(Some(p.reply)),
        }
    }

    fn answer(&self, outcome: Result<HttpResponse, TransportError>) {
        if let Some(reply) = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = reply.send(outcome);
        }
    }
}

#[pymethods]
impl NativeRequest {
    #[getter]
    fn method(&self) -> &'static str {
        self.request.method
    }

    #[getter]
    fn url(&self) -> &str {
        self.request.url.as_str()
    }

    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.request.headers.clone()
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.request.body.as_deref().map(|b| PyBytes::new(py, b))
    }

    /// Seconds the core allows for the whole exchange.
    #[getter]
    fn timeout(&self) -> f64 {
        self.request.timeout.as_secs_f64()
    }

    /// Read at most one byte more than this: the core refuses a longer body.
    #[getter]
    fn max_response_bytes(&self) -> usize {
        self.request.max_response_bytes
    }

    /// The response: its status, headers and body (read up to
    /// `max_response_bytes + 1` bytes).
    fn respond(&self, status: u16, headers: Vec<(String, String)>, body: Vec<u8>) {
        let headers = headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        self.answer(Ok(HttpResponse { status, headers, body }));
    }

    /// The client could not complete the request: `kind` is `"timeout"`,
    /// `"connect"` or `"other"`.
    fn fail(&self, kind: &str, message: String) -> PyResult<()> {
        let failure = match kind {
            "timeout" => NetworkFailure::Timeout,
            "connect" => NetworkFailure::Connect,
            "other" => NetworkFailure::Other,
            _ => {
                return Err(PyValueError::new_err(
                    "kind must be \"timeout\", \"connect\" or \"other\"",
                ));
            }
        };
        self.answer(Err(TransportError {
            failure,
            message,
            callback_code: None,
        }));
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "NativeRequest({} {})",
            self.request.method,
            mcp_oauth_client::http::redact_query(&self.request.url)
        )
    }
}
