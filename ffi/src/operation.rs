//! Cancellation: the handle of an asynchronous operation, and the signal
//! that stops everything a provider has in flight when it is freed.

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use mcp_oauth_client::TaskWrapper;
use tokio::sync::watch;
use tracing::Instrument;

use crate::boundary::{self, BoxHandle};
use crate::error::{Failure, mcp_oauth_result};

/// An asynchronous operation in flight, started by one of the `_start`
/// functions. Owned by the caller, freed with `mcp_oauth_operation_free`
/// (which does not cancel it). May be used from any thread, including from
/// the operation's own completion.
pub struct mcp_oauth_operation {
    _private: [u8; 0],
}

pub(crate) struct Operation {
    abort: tokio::task::AbortHandle,
}

impl BoxHandle for mcp_oauth_operation {
    type Inner = Operation;
}

impl Operation {
    pub(crate) fn new(abort: tokio::task::AbortHandle) -> Self {
        Operation { abort }
    }
}

/// Cancel an operation. If it has not finished, it stops at once: its
/// completion is called exactly once with `MCP_OAUTH_RESULT_CANCELLED`
/// (on a library thread, as always, possibly before this returns). If it
/// had already finished, or its completion is already running, nothing
/// changes: the completion gets (or got) the operation's own result.
/// Cancelling twice is harmless.
///
/// What the operation was waiting for is not undone: a refresh or a flow
/// that other requests share runs on for them (and its tokens are stored);
/// cancelling the only request waiting for an authorization does not stop
/// the person's step in the handler (free the provider for that).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_operation_cancel(operation: *const mcp_oauth_operation) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let op = unsafe { mcp_oauth_operation::borrow(operation) }.ok_or_else(|| Failure::null("operation"))?;
        op.abort.abort();
        Ok(())
    })
}

/// Free an operation handle: the operation itself runs on, and its
/// completion is still called exactly once. NULL is a no-op. Freeing it
/// twice, or cancelling it after it is freed, is undefined behaviour (the
/// library cannot detect it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_operation_free(operation: *mut mcp_oauth_operation) {
    boundary::guard_void(|| drop(unsafe { mcp_oauth_operation::take(operation) }))
}

/// "This provider was freed": stops its operations and the refreshes and
/// flows they started.
#[derive(Clone)]
pub(crate) struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Stop everything guarded by this signal.
    pub(crate) fn signal(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal was given.
    pub(crate) fn is_signalled(&self) -> bool {
        *self.tx.borrow()
    }

    /// `fut`, or `None` as soon as the signal is given.
    pub(crate) fn guard<F: Future>(&self, fut: F) -> impl Future<Output = Option<F::Output>> + use<F> {
        let mut rx = self.tx.subscribe();
        async move {
            let stopped = async move {
                if rx.wait_for(|stopped| *stopped).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                _ = stopped => None,
                out = fut => Some(out),
            }
        }
    }

    /// The core's flight wrapper: a refresh or a flow runs in the
    /// provider's `span` (which routes its log messages), and is dropped (its
    /// HTTP request abandoned, its state left as before) when the signal is
    /// given.
    pub(crate) fn task_wrapper(&self, span: tracing::Span) -> TaskWrapper {
        let this = self.clone();
        Arc::new(move |task: BoxFuture<'static, ()>| this.guard(task.instrument(span.clone())).map(|_| ()).boxed())
    }
}
