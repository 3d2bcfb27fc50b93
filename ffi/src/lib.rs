//! # libmcp_oauth: the C ABI of mcp-oauth-client
//!
//! Every export is prefixed `mcp_oauth_` and declared in `include/mcp_oauth.h`,
//! which cbindgen generates from this crate (`ffi/generate-header.sh`). The
//! header is what C programmers read, so the documentation lives on the
//! exported items here and is copied there.
//!
//! This crate translates; it holds no rule of the OAuth flow. Every decision
//! is the core's (`mcp-oauth-client`).
//!
//! ## Conventions (repeated in the header)
//! - Opaque handles; `_free(NULL)` is a no-op; never free twice.
//! - Every fallible function returns an [`mcp_oauth_result`]; outputs are
//!   written only on success. Functions that can fail for a reason worth
//!   explaining take an optional `mcp_oauth_error **err_out`.
//! - No panic crosses the boundary: a panic is reported as
//!   `MCP_OAUTH_RESULT_PANIC`.
//! - Strings are NUL-terminated UTF-8. Strings the library returns are
//!   borrowed from the object they come from (a token only ever comes in an
//!   `mcp_oauth_headers`, overwritten when freed).

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod boundary;
mod builtins;
mod callbacks;
mod config;
mod deferred;
mod error;
mod log;
mod m2m;
mod operation;
mod provider;
mod runtime;
mod store;
mod transport;
mod versioned;

pub use builtins::{
    MCP_OAUTH_DEVICE_CODE_CALLBACKS_VERSION, mcp_oauth_config_builder_set_device_code, mcp_oauth_device_authorization,
    mcp_oauth_device_code_callbacks,
};
pub use callbacks::{
    MCP_OAUTH_HANDLER_CALLBACKS_VERSION, MCP_OAUTH_STORAGE_CALLBACKS_VERSION, mcp_oauth_answer, mcp_oauth_answer_set,
    mcp_oauth_handler_callbacks, mcp_oauth_storage_callbacks,
};
pub use config::*;
pub use deferred::*;
pub use error::*;
pub use log::{
    MCP_OAUTH_LOG_OPTIONS_VERSION, mcp_oauth_log_callback, mcp_oauth_log_level, mcp_oauth_log_options,
    mcp_oauth_set_log_callback,
};
pub use m2m::*;
pub use operation::{mcp_oauth_operation, mcp_oauth_operation_cancel, mcp_oauth_operation_free};
pub use provider::*;
pub use runtime::mcp_oauth_shutdown;
pub use store::*;
pub use transport::*;

use std::ffi::c_char;

/// The library's version, e.g. `"0.1.0"`: a static string, never freed.
/// Compare with `MCP_OAUTH_VERSION` to detect a header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn mcp_oauth_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_version_macros_match_the_crate() {
        let header = include_str!("../../include/mcp_oauth.h");
        let expect = |name: &str, value: &str| {
            let line = format!("#define {name} {value}");
            assert!(
                header.contains(&line),
                "include/mcp_oauth.h lacks `{line}`; update ffi/cbindgen.toml"
            );
        };
        expect("MCP_OAUTH_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR"));
        expect("MCP_OAUTH_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR"));
        expect("MCP_OAUTH_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH"));
        expect("MCP_OAUTH_VERSION", &format!("\"{}\"", env!("CARGO_PKG_VERSION")));
    }
}
