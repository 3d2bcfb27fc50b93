//! `mcp_oauth_client._native`: the Python face of the Rust core.
//!
//! Everything protocol-related happens in the core crate; this crate only
//! translates: Python callables become the core's storage and handler traits,
//! core errors become the Python exceptions of `mcp_oauth_client._errors`,
//! and core `tracing` events become `logging` records.

mod bridge;
mod builtins;
mod carrier;
mod errors;
mod logs;
mod provider;
mod signer;

use pyo3::prelude::*;

/// The runtime every native call runs on: the core's shared one, handed to
/// pyo3-async-runtimes so awaitables and blocking calls share it.
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let rt = mcp_oauth_client::runtime::shared().map_err(errors::to_pyerr)?;
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    Ok(rt)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    runtime()?;
    logs::install();
    m.add_class::<provider::NativeProvider>()?;
    m.add_class::<provider::NativeOperation>()?;
    m.add_class::<carrier::NativeRequest>()?;
    m.add_class::<builtins::NativeFileStorage>()?;
    #[cfg(feature = "redis")]
    m.add_class::<builtins::NativeRedisStorage>()?;
    m.add_class::<builtins::NativeLoopbackReceiver>()?;
    m.add_class::<signer::NativeSigner>()?;
    m.add_function(wrap_pyfunction!(signer::assertion_signing_input, m)?)?;
    m.add_function(wrap_pyfunction!(signer::assertion_finish, m)?)?;
    m.add_function(wrap_pyfunction!(builtins::open_browser, m)?)?;
    m.add_function(wrap_pyfunction!(builtins::parse_redirect, m)?)?;
    m.add_function(wrap_pyfunction!(builtins::generate_pkce, m)?)?;
    m.add_function(wrap_pyfunction!(logs::flush_logs, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
