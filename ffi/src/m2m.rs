//! Machine-to-machine and enterprise settings of the builder: DPoP, keys held
//! by the host (a signing callback), enterprise-managed authorization
//! (ID-JAG) and workload identity. Every rule is the core's; this file only
//! carries the host's values and callbacks to it.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::sources::{IdentityProvider, JwtFn, JwtInput};
use mcp_oauth_client::{
    Algorithm, CallbackSigner, Error as CoreError, JwtSigner, LocalSigner, ProviderConfig, Secret, SignFn, Signer,
    error::Step,
};
use zeroize::Zeroizing;

use crate::boundary::{self, BoxHandle, opt_str_arg, str_arg};
use crate::callbacks::{Answer, Userdata, mcp_oauth_answer};
use crate::config::{mcp_oauth_config_builder, with_builder};
use crate::error::{Failure, mcp_oauth_result};

/// Enterprise-managed authorization as set: the IdP token endpoint, this
/// client's ID and secret there, and the user's ID token.
struct IdentitySetting {
    endpoint: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    id_token: Option<JwtInput>,
}

/// What the builder holds for these settings until `build`.
#[derive(Default)]
pub(crate) struct M2m {
    dpop: Option<Arc<dyn Signer>>,
    dpop_generated: bool,
    assertion_signer: Option<Arc<dyn Signer>>,
    identity: Option<IdentitySetting>,
    id_token_callback: Option<JwtInput>,
    workload: Option<JwtInput>,
}

impl M2m {
    /// Put the settings into the core's configuration.
    pub(crate) fn apply(self, config: &mut ProviderConfig) -> Result<(), CoreError> {
        if self.dpop.is_some() || self.dpop_generated {
            config.use_dpop(self.dpop)?;
        }
        if let Some(signer) = self.assertion_signer {
            config.client_assertion = Some(Arc::new(JwtSigner::new(signer)));
        }
        if let Some(IdentitySetting {
            endpoint,
            client_id,
            client_secret: secret,
            id_token,
        }) = self.identity
        {
            let id_token = id_token
                .or(self.id_token_callback)
                .ok_or_else(|| CoreError::config("enterprise-managed authorization needs the user's ID token"))?;
            let idp = IdentityProvider::new(&endpoint, client_id, secret)?;
            config.use_identity_assertion(idp, id_token);
        } else if let Some(w) = self.workload {
            config.use_workload_identity(w);
        }
        if config.source.is_some() && config.static_client.is_none() {
            return Err(CoreError::config(
                "the JWT-bearer grant needs the client's pre-registered client_id (mcp_oauth_config_builder_set_static_client)",
            ));
        }
        Ok(())
    }
}

/// Bind tokens to a key with DPoP (RFC 9449): every token request and every
/// request to the MCP server carries a fresh proof, and `get_headers` gives
/// two headers (`authorization: DPoP …` and `dpop`). With `enabled` true and
/// no key set (`mcp_oauth_config_builder_set_dpop_key`,
/// `mcp_oauth_config_builder_set_dpop_signer`), the provider makes an ES256
/// key of its own: tokens bound to it cannot be used by another process, so
/// stored DPoP tokens are then obtained again after a restart.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_dpop(
    builder: *mut mcp_oauth_config_builder,
    enabled: bool,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.m2m.dpop_generated = enabled;
        if !enabled {
            b.m2m.dpop = None;
        }
        Ok(())
    })
}

/// DPoP with a key of the host's, so DPoP-bound tokens outlive the process:
/// `private_key_pem` in PKCS#8, PKCS#1 or SEC1 PEM, `algorithm` `"ES256"`,
/// `"RS256"` or `"PS256"`. Copied; the caller may wipe its copy at once.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (the message names what is wrong
/// with the key and never contains it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_dpop_key(
    builder: *mut mcp_oauth_config_builder,
    private_key_pem: *const c_char,
    algorithm: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let pem = Secret::new(unsafe { str_arg(private_key_pem, "private_key_pem") }?);
        let algorithm = unsafe { str_arg(algorithm, "algorithm") }?;
        b.m2m.dpop = Some(Arc::new(LocalSigner::from_pem(&pem, algorithm, None)?));
        Ok(())
    })
}

/// One signature the host owes the library. Answer it exactly once, from any
/// thread, with `mcp_oauth_signature_complete` or `mcp_oauth_signature_fail`;
/// either frees it. An answer after the signer's timeout is accepted and
/// ignored.
pub struct mcp_oauth_signature {
    _private: [u8; 0],
}

pub(crate) struct Pending(tokio::sync::oneshot::Sender<Result<Vec<u8>, String>>);

impl BoxHandle for mcp_oauth_signature {
    type Inner = Pending;
}

/// Answer a signing request with the signature (`length` bytes, copied).
/// ES256 signatures may be the 64 bytes `r || s` or DER (as most KMS APIs
/// give them).
///
/// The signature is given back whatever this returns (unless it is NULL):
/// with `bytes` NULL or `length` 0 the signing fails (the operation reports
/// `MCP_OAUTH_RESULT_HANDLER`). Answering a signature a second time, or
/// after it was given back, is undefined behaviour (it is freed memory).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (signature, bytes),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (a `length` of 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_signature_complete(
    signature: *mut mcp_oauth_signature,
    bytes: *const u8,
    length: usize,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let pending = unsafe { mcp_oauth_signature::take(signature) }.ok_or_else(|| Failure::null("signature"))?;
        if bytes.is_null() {
            let _ = pending
                .0
                .send(Err("the host answered with a NULL signature".to_string()));
            return Err(Failure::null("bytes"));
        }
        if length == 0 {
            let _ = pending
                .0
                .send(Err("the host answered with an empty signature".to_string()));
            return Err(Failure::invalid_argument("`length` must not be 0"));
        }
        // SAFETY: a non-NULL `bytes` points to `length` readable bytes.
        let sig = unsafe { std::slice::from_raw_parts(bytes, length) }.to_vec();
        let _ = pending.0.send(Ok(sig));
        Ok(())
    })
}

/// Answer a signing request with a failure; `message` (may be NULL) is
/// copied into the error the operation reports.
///
/// The signature is given back whatever this returns (unless it is NULL):
/// with a `message` that is not UTF-8 the signing fails all the same, with
/// a message saying so. Answering a signature a second time, or after it
/// was given back, is undefined behaviour (it is freed memory).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (signature),
/// `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_signature_fail(
    signature: *mut mcp_oauth_signature,
    message: *const c_char,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let pending = unsafe { mcp_oauth_signature::take(signature) }.ok_or_else(|| Failure::null("signature"))?;
        let (message, outcome) = match unsafe { opt_str_arg(message, "message") } {
            Ok(m) => (m.unwrap_or("no reason given").to_string(), Ok(())),
            Err(e) => ("the host's message is not UTF-8".to_string(), Err(e)),
        };
        let _ = pending.0.send(Err(message));
        outcome
    })
}

/// The current version of `mcp_oauth_signer_callbacks`.
pub const MCP_OAUTH_SIGNER_CALLBACKS_VERSION: c_uint = 1;
const MCP_OAUTH_SIGNER_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_signer_callbacks>()];

/// A key held by the host (an HSM, a cloud KMS, a Secure Enclave): the
/// library asks for each signature and the host answers later, from any
/// thread, through the `mcp_oauth_signature` it was given.
///
/// `sign` runs on a thread of the library's blocking pool; it may block, but
/// need not: it may keep `signature` and answer from another thread. It must
/// not unwind. An answer that does not come within `timeout_ms` (0: 10 s)
/// fails the operation with `MCP_OAUTH_RESULT_HANDLER`, step `signing`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_signer_callbacks {
    /// `MCP_OAUTH_SIGNER_CALLBACKS_VERSION` when the host was built (set by
    /// `MCP_OAUTH_SIGNER_CALLBACKS_INIT`).
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// `"ES256"`, `"RS256"` or `"PS256"`. Copied.
    pub algorithm: *const c_char,
    /// The JWS `kid`, or NULL. Copied.
    pub key_id: *const c_char,
    /// The public key as a JWK (JSON), or NULL; required for DPoP. Copied.
    pub public_jwk_json: *const c_char,
    /// How long to wait for each signature, in milliseconds (0: 10 s).
    pub timeout_ms: u32,
    /// Sign `input` (`length` bytes, borrowed for the call) and answer
    /// through `signature`. Required.
    pub sign: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            input: *const u8,
            length: usize,
            signature: *mut mcp_oauth_signature,
        ),
    >,
    /// Called exactly once, when the library will make no more calls with
    /// `userdata`. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

struct HostSigner {
    /// Released once, after the last holder of the same userdata.
    userdata: Userdata,
    sign: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut mcp_oauth_signature),
}

// The header makes the host promise its callbacks and userdata may be used
// from the library's threads.
unsafe impl Send for HostSigner {}
unsafe impl Sync for HostSigner {}

unsafe fn signer_from(cb: *const mcp_oauth_signer_callbacks) -> Result<Arc<dyn Signer>, Failure> {
    let cb = &unsafe { crate::versioned::read(cb, "callbacks", MCP_OAUTH_SIGNER_CALLBACKS_SIZES) }?;
    let sign = cb.sign.ok_or_else(|| Failure::null("callbacks->sign"))?;
    let algorithm = Algorithm::parse(unsafe { str_arg(cb.algorithm, "callbacks->algorithm") }?)?;
    let key_id = unsafe { opt_str_arg(cb.key_id, "callbacks->key_id") }?.map(str::to_string);
    let jwk = match unsafe { opt_str_arg(cb.public_jwk_json, "callbacks->public_jwk_json") }? {
        Some(j) => Some(
            serde_json::from_str::<serde_json::Value>(j)
                .map_err(|_| CoreError::config("public_jwk_json is not JSON"))?,
        ),
        None => None,
    };
    let host = Arc::new(HostSigner {
        userdata: Userdata::new(cb.userdata, cb.release),
        sign,
    });
    let sign_fn: SignFn = Arc::new(move |input: Vec<u8>| {
        let host = host.clone();
        Box::pin(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let handle = mcp_oauth_signature::into_raw(Box::new(Pending(tx)));
            let handle = handle as usize;
            let call = tokio::task::spawn_blocking(move || {
                boundary::guard_void(|| unsafe {
                    (host.sign)(
                        host.userdata.ptr(),
                        input.as_ptr(),
                        input.len(),
                        handle as *mut mcp_oauth_signature,
                    )
                });
            });
            let _ = call.await;
            match rx.await {
                Ok(Ok(sig)) => Ok(sig),
                Ok(Err(message)) => Err(CoreError::handler(Step::Signing, message)),
                Err(_) => Err(CoreError::handler(
                    Step::Signing,
                    "the signature request was dropped unanswered",
                )),
            }
        })
    });
    let timeout = Duration::from_millis(if cb.timeout_ms == 0 {
        10_000
    } else {
        cb.timeout_ms as u64
    });
    Ok(Arc::new(CallbackSigner::new(algorithm, key_id, jwk, sign_fn, timeout)?))
}

/// `private_key_jwt` client authentication with a key the host holds: each
/// client assertion is signed by `callbacks->sign`. Replaces
/// `mcp_oauth_config_builder_set_private_key_jwt`. `*callbacks` is copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an unknown struct version),
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (an unsupported algorithm).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_private_key_jwt_signer(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_signer_callbacks,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.m2m.assertion_signer = Some(unsafe { signer_from(callbacks) }?);
        Ok(())
    })
}

/// DPoP with a key the host holds: each proof is signed by
/// `callbacks->sign`, whose `public_jwk_json` is required. Proofs then wait
/// for the host, so `mcp_oauth_provider_get_headers` may wait too. `*callbacks`
/// is copied.
///
/// Errors: as `mcp_oauth_config_builder_set_private_key_jwt_signer`, and
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` without a public JWK.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_dpop_signer(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_signer_callbacks,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let signer = unsafe { signer_from(callbacks) }?;
        if signer.public_jwk().is_none() {
            return Err(CoreError::config("DPoP needs the key's public JWK (public_jwk_json)").into());
        }
        b.m2m.dpop = Some(signer);
        Ok(())
    })
}

/// The current version of `mcp_oauth_jwt_callbacks`.
pub const MCP_OAUTH_JWT_CALLBACKS_VERSION: c_uint = 1;
const MCP_OAUTH_JWT_CALLBACKS_SIZES: &[usize] = &[std::mem::size_of::<mcp_oauth_jwt_callbacks>()];

/// A JWT the host gives when the library needs one (the user's ID token,
/// a workload's platform token). `get` runs on a thread of the library's
/// blocking pool and may block; it answers with `mcp_oauth_answer_set` and
/// returns 0 (anything else fails the operation with
/// `MCP_OAUTH_RESULT_HANDLER`). It is called again once the JWT it gave has
/// expired. It must not unwind.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_jwt_callbacks {
    /// `MCP_OAUTH_JWT_CALLBACKS_VERSION` when the host was built (set by
    /// `MCP_OAUTH_JWT_CALLBACKS_INIT`).
    pub version: c_uint,
    /// Passed to every callback as is.
    pub userdata: *mut c_void,
    /// Answer with the JWT. Required.
    pub get: Option<unsafe extern "C" fn(userdata: *mut c_void, answer: *mut mcp_oauth_answer) -> c_int>,
    /// Called exactly once, when the library will make no more calls with
    /// `userdata`. May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

struct HostJwt {
    /// Released once, after the last holder of the same userdata.
    userdata: Userdata,
    get: unsafe extern "C" fn(*mut c_void, *mut mcp_oauth_answer) -> c_int,
}

unsafe impl Send for HostJwt {}
unsafe impl Sync for HostJwt {}

unsafe fn jwt_input_from(cb: *const mcp_oauth_jwt_callbacks) -> Result<JwtInput, Failure> {
    let cb = &unsafe { crate::versioned::read(cb, "callbacks", MCP_OAUTH_JWT_CALLBACKS_SIZES) }?;
    let get = cb.get.ok_or_else(|| Failure::null("callbacks->get"))?;
    let host = Arc::new(HostJwt {
        userdata: Userdata::new(cb.userdata, cb.release),
        get,
    });
    let f: JwtFn = Arc::new(move || {
        let host = host.clone();
        Box::pin(async move {
            let out = tokio::task::spawn_blocking(move || {
                let mut answer = Answer(None);
                let rc = boundary::guard_value(-1, || unsafe {
                    (host.get)(host.userdata.ptr(), &mut answer as *mut Answer as *mut mcp_oauth_answer)
                });
                (rc, answer.0)
            })
            .await;
            match out {
                Ok((0, Some(jwt))) => Ok(Secret::new(Zeroizing::new(jwt.to_string()).as_str())),
                Ok((0, None)) => Err(CoreError::config("the callback answered with no JWT")),
                Ok((rc, _)) => Err(CoreError::config(format!("the callback returned {rc}"))),
                Err(_) => Err(CoreError::config("the callback did not complete")),
            }
        })
    });
    Ok(JwtInput::Callback(f))
}

/// Enterprise-managed authorization (identity assertion, ID-JAG): leg 1
/// exchanges the user's ID token at the enterprise IdP's token endpoint
/// (RFC 8693) for an ID-JAG for the MCP authorization server and the MCP
/// server; leg 2 presents it with the JWT-bearer grant (RFC 7523) as the
/// pre-registered client (`mcp_oauth_config_builder_set_static_client`).
/// `idp_client_id` and `idp_client_secret` (both may be NULL) authenticate
/// this client at the IdP (`client_secret_basic`). `id_token` may be NULL
/// when `mcp_oauth_config_builder_set_id_token_callbacks` gives it. Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_identity_assertion(
    builder: *mut mcp_oauth_config_builder,
    idp_token_endpoint: *const c_char,
    idp_client_id: *const c_char,
    idp_client_secret: *const c_char,
    id_token: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let endpoint = unsafe { str_arg(idp_token_endpoint, "idp_token_endpoint") }?.to_string();
        let id = unsafe { opt_str_arg(idp_client_id, "idp_client_id") }?.map(str::to_string);
        let secret = unsafe { opt_str_arg(idp_client_secret, "idp_client_secret") }?.map(Secret::new);
        let token = unsafe { opt_str_arg(id_token, "id_token") }?.map(|t| JwtInput::Fixed(Secret::new(t)));
        b.m2m.identity = Some(IdentitySetting {
            endpoint,
            client_id: id,
            client_secret: secret,
            id_token: token,
        });
        Ok(())
    })
}

/// The user's ID token for enterprise-managed authorization, from the host
/// when needed (and again once the one it gave has expired). `*callbacks` is
/// copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_id_token_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_jwt_callbacks,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.m2m.id_token_callback = Some(unsafe { jwt_input_from(callbacks) }?);
        Ok(())
    })
}

/// Workload identity: the JWT-bearer grant (RFC 7523) with a JWT the platform
/// gives the workload, and no client secret; the client ID is the
/// pre-registered one (`mcp_oauth_config_builder_set_static_client`). Give
/// exactly one of `jwt` (the token itself) and `jwt_file` (a file re-read
/// whenever it changes, as platforms rotate projected tokens). Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (both NULL),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (both given), `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_workload_identity(
    builder: *mut mcp_oauth_config_builder,
    jwt: *const c_char,
    jwt_file: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let jwt = unsafe { opt_str_arg(jwt, "jwt") }?;
        let file = unsafe { opt_str_arg(jwt_file, "jwt_file") }?;
        b.m2m.workload = Some(match (jwt, file) {
            (Some(j), None) => JwtInput::Fixed(Secret::new(j)),
            (None, Some(f)) => JwtInput::File(PathBuf::from(f)),
            (None, None) => return Err(Failure::null("jwt")),
            (Some(_), Some(_)) => return Err(Failure::invalid_argument("give jwt or jwt_file, not both")),
        });
        Ok(())
    })
}

/// Workload identity with the JWT from the host when needed (and again once
/// the one it gave has expired). `*callbacks` is copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_workload_identity_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_jwt_callbacks,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.m2m.workload = Some(unsafe { jwt_input_from(callbacks) }?);
        Ok(())
    })
}
