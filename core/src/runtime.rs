//! The runtime the language bindings share: one multi-threaded tokio runtime
//! per process, started on first use. Rust hosts on their own tokio runtime
//! need none of this.

use std::sync::OnceLock;

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The shared runtime (two worker threads named `mcp-oauth-worker`).
pub fn shared() -> crate::Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("mcp-oauth-worker")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| crate::Error::config(format!("cannot start the runtime: {e}")))
}

/// Whether the current thread is one of the shared runtime's (or any tokio
/// runtime's) threads, where blocking on a future would deadlock.
pub fn inside_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}
