//! The library's runtime: one multi-threaded tokio runtime per process,
//! started on first use, stopped by `mcp_oauth_shutdown`, and refused in a
//! child created with `fork()` after it started (its threads did not
//! survive the fork, and the locks they held may never be released there).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::boundary;
use crate::error::{Failure, mcp_oauth_result};

/// The runtime, while started.
static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);
/// The process that started the runtime (0: not started).
static STARTED_BY: AtomicU32 = AtomicU32::new(0);

/// Whether this process is a child forked after the runtime started.
/// Whether waiting here could deadlock: on a thread of the library's
/// runtime (inside a storage, handler, transport or completion callback),
/// or inside a log callback (whose caller holds the callback's lock).
pub(crate) fn must_not_block() -> bool {
    mcp_oauth_client::runtime::inside_runtime() || crate::log::inside_log_callback()
}

pub(crate) fn forked() -> bool {
    let by = STARTED_BY.load(Ordering::Acquire);
    by != 0 && by != std::process::id()
}

/// The runtime, started on first use (two worker threads named
/// `mcp-oauth-worker`). In a forked child, `MCP_OAUTH_RESULT_FORKED`.
pub(crate) fn get() -> Result<Arc<Runtime>, Failure> {
    // Checked before the lock, which a thread of the parent may have held
    // when it forked.
    if forked() {
        return Err(Failure::forked());
    }
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mcp-oauth-worker")
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::from(mcp_oauth_client::Error::config(format!(
                "cannot start the runtime: {e}"
            )))
        })?;
    let rt = Arc::new(rt);
    STARTED_BY.store(std::process::id(), Ordering::Release);
    *slot = Some(rt.clone());
    Ok(rt)
}

/// Stop the library's threads, for a host about to unload the library
/// (`dlclose`, a plugin being removed). Call it last: after freeing every
/// provider and builder and after the completions of their operations
/// (work still running is dropped, and the completion of an operation
/// still in flight is never called). The process-wide log callback is
/// removed too.
///
/// Waits at most `timeout_ms` for the library's threads to end (a host
/// callback that is still running, such as a handler waiting for a person,
/// holds its thread until it returns; a `timeout_ms` of 0 waits for nothing
/// and so cannot promise it). On `MCP_OAUTH_RESULT_OK` no thread
/// of the library runs any more and the library may be unloaded. A later
/// call of the library starts a new runtime. Without a runtime (never
/// started, or already shut down), it returns `MCP_OAUTH_RESULT_OK` at once.
///
/// In a child forked after the runtime started, it only forgets the
/// parent's runtime (whose threads are not in the child) and returns
/// `MCP_OAUTH_RESULT_OK`; the library stays refused there.
///
/// Errors: `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from a library thread (inside
/// a callback); `MCP_OAUTH_RESULT_BUSY` when another thread is inside a
/// blocking call of the library until the timeout (nothing was stopped), or
/// when some thread did not end in time (do not unload the library then).
#[unsafe(no_mangle)]
pub extern "C" fn mcp_oauth_shutdown(timeout_ms: u64) -> mcp_oauth_result {
    boundary::guard_code(|| {
        if forked() {
            // The parent's runtime is not ours to stop: its threads are not
            // here, and dropping it could wait for them forever.
            if let Ok(mut slot) = RUNTIME.try_lock() {
                std::mem::forget(slot.take());
            }
            return Ok(());
        }
        if must_not_block() {
            return Err(Failure::would_deadlock());
        }
        crate::log::remove_sink();
        let timeout = Duration::from_millis(timeout_ms);
        let start = Instant::now();
        let Some(mut rt) = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        // Wait for the blocking calls of other threads (each holds a
        // reference for its duration) to end.
        let rt = loop {
            match Arc::try_unwrap(rt) {
                Ok(rt) => break rt,
                Err(shared) if start.elapsed() < timeout => {
                    rt = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(shared) => {
                    *RUNTIME.lock().unwrap_or_else(|p| p.into_inner()) = Some(shared);
                    return Err(Failure::busy(
                        "another thread is inside a blocking call of the library: nothing was stopped",
                    ));
                }
            }
        };
        let left = timeout.saturating_sub(start.elapsed());
        let before = Instant::now();
        rt.shutdown_timeout(left);
        if before.elapsed() >= left {
            return Err(Failure::busy(
                "some of the library's threads did not end in time (a host callback still runs): do not unload \
                 the library",
            ));
        }
        Ok(())
    })
}
