//! Built-ins for terminals and desktops: the device authorization grant
//! (RFC 8628) with the host's callback that shows the code, the OS keychain
//! as the store, and log-out with revocation (RFC 7009). Every rule is the
//! core's; this file only carries the host's values and callbacks to it.

use std::ffi::{CString, c_char, c_int, c_uint, c_void};
use std::sync::Arc;

use mcp_oauth_client::error::Step;
use mcp_oauth_client::{DeviceAuthorization, DeviceCodeHandler, Error as CoreError, LogoutOutcome, ProviderConfig};

use crate::boundary::{self, to_cstring};
use crate::callbacks::Userdata;
use crate::config::{mcp_oauth_config_builder, with_builder};
use crate::error::{Failure, mcp_oauth_result};

/// The current version of `mcp_oauth_device_code_callbacks`.
pub const MCP_OAUTH_DEVICE_CODE_CALLBACKS_VERSION: c_uint = 1;
const MCP_OAUTH_DEVICE_CODE_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_device_code_callbacks>()];

/// What the person needs to approve a device authorization on another
/// device, as the authorization server sent it (checked by the library:
/// an HTTPS verification URI, a short printable user code). Written by the
/// library and borrowed by the host during `show`; later versions of the
/// library may append members.
#[repr(C)]
pub struct mcp_oauth_device_authorization {
    /// The code the person enters (printable ASCII, at most 32 characters).
    pub user_code: *const c_char,
    /// Where the person enters it.
    pub verification_uri: *const c_char,
    /// The same with the code in it (for a QR code or a link), or NULL.
    pub verification_uri_complete: *const c_char,
    /// How long the code is valid, in seconds.
    pub expires_in_seconds: u64,
    /// How often the library asks whether the person approved, in seconds.
    pub interval_seconds: u64,
}

/// The host's part of the device flow (see
/// `mcp_oauth_config_builder_set_device_code`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_device_code_callbacks {
    /// `MCP_OAUTH_DEVICE_CODE_CALLBACKS_VERSION` when the host was built (set
    /// by `MCP_OAUTH_DEVICE_CODE_CALLBACKS_INIT`).
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Show the person `authorization` (print it, draw a QR code of
    /// `verification_uri_complete`). Runs on a thread of the library's
    /// blocking pool, once per code, before polling starts; the strings are
    /// borrowed for the call. Returns 0; anything else ends the flow with
    /// `MCP_OAUTH_RESULT_HANDLER`. Must not unwind. Required.
    pub show: Option<
        unsafe extern "C" fn(userdata: *mut c_void, authorization: *const mcp_oauth_device_authorization) -> c_int,
    >,
    /// Called exactly once, when the library will make no more calls with
    /// `userdata`. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

type ShowFn = unsafe extern "C" fn(*mut c_void, *const mcp_oauth_device_authorization) -> c_int;

struct HostDeviceCode {
    userdata: Arc<Userdata>,
    show: ShowFn,
}

struct Owned {
    user_code: CString,
    verification_uri: CString,
    verification_uri_complete: Option<CString>,
    expires_in: u64,
    interval: u64,
}

#[async_trait::async_trait]
impl DeviceCodeHandler for HostDeviceCode {
    async fn show(&self, a: &DeviceAuthorization) -> mcp_oauth_client::Result<()> {
        let owned = Owned {
            user_code: to_cstring(&a.user_code),
            verification_uri: to_cstring(a.verification_uri.as_str()),
            verification_uri_complete: a.verification_uri_complete.as_ref().map(|u| to_cstring(u.as_str())),
            expires_in: a.expires_in.as_secs(),
            interval: a.interval.as_secs(),
        };
        let (userdata, show) = (self.userdata.clone(), self.show);
        let rc = tokio::task::spawn_blocking(move || {
            let view = mcp_oauth_device_authorization {
                user_code: owned.user_code.as_ptr(),
                verification_uri: owned.verification_uri.as_ptr(),
                verification_uri_complete: owned
                    .verification_uri_complete
                    .as_ref()
                    .map_or(std::ptr::null(), |c| c.as_ptr()),
                expires_in_seconds: owned.expires_in,
                interval_seconds: owned.interval,
            };
            // SAFETY: the host's callback, with pointers alive until it returns.
            boundary::guard_value(-1, || unsafe { show(userdata.ptr(), &view) })
        })
        .await
        .map_err(|_| CoreError::handler(Step::DeviceAuthorization, "the device code callback did not complete"))?;
        match rc {
            0 => Ok(()),
            rc => Err(CoreError::handler(
                Step::DeviceAuthorization,
                format!("the device code callback returned {rc}"),
            )
            .with_callback_code(rc.into())),
        }
    }
}

/// What the builder holds for these settings until `build`.
#[derive(Default)]
pub(crate) struct Builtins {
    device_code: Option<Arc<dyn DeviceCodeHandler>>,
}

impl Builtins {
    /// Put the settings into the core's configuration (after the client
    /// metadata, whose grant types the device flow sets).
    pub(crate) fn apply(self, config: &mut ProviderConfig) {
        if let Some(h) = self.device_code {
            config.use_device_code(h);
        }
    }
}

/// Obtain tokens with the device authorization grant (RFC 8628) instead of
/// the authorization-code flow: for hosts where the person has no browser on
/// this machine (an SSH session, a container). The library asks the
/// authorization server for a code, `callbacks->show` shows it, and the
/// library polls the token endpoint (every `interval` seconds, slower when
/// asked) until the person approves on another device, denies
/// (`MCP_OAUTH_RESULT_TOKEN`, OAuth error `access_denied`), or the code
/// expires. The authorization server must advertise a
/// `device_authorization_endpoint`; a dynamic registration asks for the
/// device grant. Cancelling the operation that waits
/// (`mcp_oauth_operation_cancel`) stops the polling. The struct is read
/// according to its `version` and copied; from a successful return on, the
/// library owns `callbacks->userdata` and calls `callbacks->release` exactly
/// once when done with it.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, callbacks, show),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an unknown `version`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_device_code(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_device_code_callbacks,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let cb = unsafe { crate::versioned::read(callbacks, "callbacks", MCP_OAUTH_DEVICE_CODE_CALLBACKS_SIZES) }?;
        let show = cb.show.ok_or_else(|| Failure::null("callbacks->show"))?;
        b.builtins.device_code = Some(Arc::new(HostDeviceCode {
            userdata: Arc::new(Userdata::new(cb.userdata, cb.release)),
            show,
        }));
        Ok(())
    })
}

/// The log-out outcome as JSON, for the completion's `value`.
pub(crate) fn logout_json(o: &LogoutOutcome) -> CString {
    to_cstring(
        &serde_json::json!({
            "had_tokens": o.had_tokens,
            "revocation_endpoint": o.revocation_endpoint,
            "refresh_token_revoked": o.refresh_token_revoked,
            "access_token_revoked": o.access_token_revoked,
            "removed": o.removed,
            "not_revoked_because": o.not_revoked_because,
        })
        .to_string(),
    )
}
