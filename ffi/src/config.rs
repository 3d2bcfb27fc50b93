//! The configuration builder: `mcp_oauth_config_builder_new`, setters, then
//! `mcp_oauth_config_builder_build`, which consumes it and makes a provider.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::{
    AuthorizationHandler, BrowserLoopbackHandler, Error as CoreError, FileStorage, GrantKind, JwtSigner,
    LoopbackReceiver, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, ProviderConfig, ResourceParameter,
    Secret, StaticClient, TokenStorage,
};

use crate::boundary::{self, ArcHandle, BoxHandle, opt_str_arg, out_arg, str_arg, to_cstring};
use crate::callbacks::{CallbackHandler, CallbackStorage, mcp_oauth_handler_callbacks, mcp_oauth_storage_callbacks};
use crate::deferred::{DeferredHandler, mcp_oauth_authorization_callbacks};
use crate::error::{Failure, mcp_oauth_error, mcp_oauth_result};
use crate::log::{ProviderSink, mcp_oauth_log_options};
use crate::operation::Shutdown;
use crate::provider::{Provider, block_on, mcp_oauth_provider};
use crate::store::{HostStoreConfig, mcp_oauth_token_store};
use crate::transport::{CallbackTransport, mcp_oauth_transport_callbacks};

/// How the provider obtains tokens when it has none. Passed to
/// `mcp_oauth_config_builder_set_grant` as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mcp_oauth_grant {
    /// The authorization-code flow with PKCE, through the handlers (the default).
    AuthorizationCode = 0,
    /// The client credentials grant: no person involved; needs
    /// `mcp_oauth_config_builder_set_static_client`.
    ClientCredentials = 1,
}

/// What to send as the RFC 8707 `resource` parameter of authorization and
/// token requests. Passed to `mcp_oauth_config_builder_set_resource_parameter`
/// as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mcp_oauth_resource_parameter {
    /// The resource discovered for the MCP server (the MCP specification's
    /// rule; the default).
    Send = 0,
    /// No `resource` parameter (for authorization servers that reject it,
    /// such as Microsoft Entra ID in some tenants: AADSTS901002).
    Omit = 1,
    /// The value given to the setter instead of the discovered one.
    Override = 2,
}

/// A provider's configuration, being assembled. Not thread-safe: use it from
/// one thread at a time. Consumed by `mcp_oauth_config_builder_build`, or
/// freed with `mcp_oauth_config_builder_free`.
pub struct mcp_oauth_config_builder {
    _private: [u8; 0],
}

enum StorageChoice {
    Memory,
    File(Option<PathBuf>),
    /// One Redis URL, or the nodes of a cluster separated by commas.
    Redis(String),
    Callbacks(CallbackStorage),
    Host(HostStoreConfig),
    /// The OS keychain, under this service name (None: the default).
    #[cfg_attr(not(feature = "keyring"), allow(dead_code))]
    Keyring(Option<String>),
}

enum HandlerChoice {
    None,
    Callbacks(CallbackHandler),
    Deferred(DeferredHandler),
    /// `timeout` None: the authorization timeout.
    Loopback {
        redirect_uri: String,
        timeout: Option<Duration>,
    },
}

pub(crate) struct Builder {
    server_url: Option<String>,
    client_metadata_json: Option<String>,
    client_metadata_url: Option<String>,
    static_client: Option<StaticClient>,
    client_assertion_signer: Option<Arc<JwtSigner>>,
    scope: Option<String>,
    timeout: Option<Duration>,
    authorization_timeout: Option<Duration>,
    lease_wait: Option<Duration>,
    resource_parameter: ResourceParameter,
    extra_authorization_params: Vec<(String, String)>,
    extra_token_params: Vec<(String, String)>,
    assume_s256_when_pkce_unadvertised: bool,
    skip_resource_check: bool,
    protocol_version: Option<String>,
    grant: GrantKind,
    pub(crate) m2m: crate::m2m::M2m,
    pub(crate) builtins: crate::builtins::Builtins,
    storage: StorageChoice,
    redis: RedisSettings,
    handler: HandlerChoice,
    transport: Option<CallbackTransport>,
    log: Option<ProviderSink>,
}

/// The Redis store's settings besides its URLs (the setters' order does not matter).
#[derive(Default)]
struct RedisSettings {
    key_prefix: Option<String>,
    #[cfg(feature = "redis")]
    keys: Vec<mcp_oauth_client::EncryptionKey>,
    allow_unencrypted: bool,
    /// Whether any of these was set (to refuse them with another storage).
    touched: bool,
}

impl BoxHandle for mcp_oauth_config_builder {
    type Inner = Builder;
}

/// The loopback redirect URI used when none is given.
const DEFAULT_LOOPBACK: &str = "http://127.0.0.1:0/callback";

/// [`with_builder`] for a setter that can fail for a reason worth
/// explaining: the reason goes to `err_out`.
fn with_builder_err(
    builder: *mut mcp_oauth_config_builder,
    err_out: *mut *mut mcp_oauth_error,
    f: impl FnOnce(&mut Builder) -> Result<(), Failure>,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let b = unsafe { mcp_oauth_config_builder::borrow_mut(builder) }.ok_or_else(|| Failure::null("builder"))?;
        f(b)
    })
}

pub(crate) fn with_builder(
    builder: *mut mcp_oauth_config_builder,
    f: impl FnOnce(&mut Builder) -> Result<(), Failure>,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        let b = unsafe { mcp_oauth_config_builder::borrow_mut(builder) }.ok_or_else(|| Failure::null("builder"))?;
        f(b)
    })
}

/// A new builder with the defaults: the authorization-code grant, in-memory
/// storage, no handler, a 30 s timeout per HTTP request, 5 minutes for the
/// person to authorize, 30 s of waiting for another process's refresh, the
/// discovered `resource` sent, PKCE and resource checks on. Owned by the
/// caller: pass it to `mcp_oauth_config_builder_build` or
/// `mcp_oauth_config_builder_free`. NULL only if the library panicked
/// (memory exhausted).
#[unsafe(no_mangle)]
pub extern "C" fn mcp_oauth_config_builder_new() -> *mut mcp_oauth_config_builder {
    boundary::guard_value(std::ptr::null_mut(), || {
        mcp_oauth_config_builder::into_raw(Box::new(Builder {
            server_url: None,
            client_metadata_json: None,
            client_metadata_url: None,
            static_client: None,
            client_assertion_signer: None,
            scope: None,
            timeout: None,
            authorization_timeout: None,
            lease_wait: None,
            resource_parameter: ResourceParameter::Send,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            assume_s256_when_pkce_unadvertised: false,
            skip_resource_check: false,
            protocol_version: None,
            grant: GrantKind::AuthorizationCode,
            m2m: Default::default(),
            builtins: Default::default(),
            storage: StorageChoice::Memory,
            redis: RedisSettings::default(),
            handler: HandlerChoice::None,
            transport: None,
            log: None,
        }))
    })
}

/// Free a builder that was not built, releasing any callbacks set on it.
/// NULL is a no-op. A builder passed to `mcp_oauth_config_builder_build`
/// is already freed: freeing it again, freeing it twice, or using it after
/// it is freed is undefined behaviour (the library cannot detect it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_free(builder: *mut mcp_oauth_config_builder) {
    boundary::guard_void(|| drop(unsafe { mcp_oauth_config_builder::take(builder) }))
}

/// The MCP server URL (required), e.g. `"https://mcp.example.com/mcp"`.
/// Copied. Checked by `mcp_oauth_config_builder_build`.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_server_url(
    builder: *mut mcp_oauth_config_builder,
    server_url: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.server_url = Some(unsafe { str_arg(server_url, "server_url") }?.to_string());
        Ok(())
    })
}

/// The client's registration metadata as JSON, in the schema of the MCP
/// Python SDK's `OAuthClientMetadata` (`redirect_uris`, `client_name`,
/// `grant_types`, `scope`, `token_endpoint_auth_method`, ...). Copied;
/// parsed and validated by `mcp_oauth_config_builder_build`. When absent, the
/// defaults are used with the loopback receiver's redirect URI. With the
/// built-in loopback receiver, `redirect_uris` is replaced by the bound URI.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_client_metadata_json(
    builder: *mut mcp_oauth_config_builder,
    json: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.client_metadata_json = Some(unsafe { str_arg(json, "json") }?.to_string());
        Ok(())
    })
}

/// A Client ID Metadata Document URL (HTTPS, non-root path), used as the
/// `client_id` with authorization servers that support it. Copied; checked by
/// `mcp_oauth_config_builder_build`.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_client_metadata_url(
    builder: *mut mcp_oauth_config_builder,
    url: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.client_metadata_url = Some(unsafe { str_arg(url, "url") }?.to_string());
        Ok(())
    })
}

/// Pre-registered client credentials. `client_id` is required;
/// `client_secret` (confidential clients), `auth_method` (`"none"`,
/// `"client_secret_basic"`, `"client_secret_post"`, `"private_key_jwt"`;
/// chosen from the server's metadata when NULL) and `issuer` may be NULL.
///
/// `issuer` pins the credentials to the authorization server they were
/// registered with (e.g. `"https://auth.example.com"`): metadata from any
/// other issuer is then refused, so the secret never goes to another server.
/// Recommended whenever `client_secret` is set. Checked (an http(s) URL) by
/// `mcp_oauth_config_builder_build`.
///
/// All copied; a second call replaces the first.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_static_client(
    builder: *mut mcp_oauth_config_builder,
    client_id: *const c_char,
    client_secret: *const c_char,
    auth_method: *const c_char,
    issuer: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let client_id = unsafe { str_arg(client_id, "client_id") }?.to_string();
        let client_secret = unsafe { opt_str_arg(client_secret, "client_secret") }?.map(Secret::new);
        let token_endpoint_auth_method = unsafe { opt_str_arg(auth_method, "auth_method") }?.map(str::to_string);
        let issuer = unsafe { opt_str_arg(issuer, "issuer") }?.map(str::to_string);
        b.static_client = Some(StaticClient {
            client_id,
            client_secret,
            token_endpoint_auth_method,
            issuer,
        });
        Ok(())
    })
}

/// A private key for `private_key_jwt` client authentication (RFC 7523): the
/// pre-registered client (`mcp_oauth_config_builder_set_static_client`, with
/// `auth_method` NULL or `"private_key_jwt"`) signs a fresh client assertion
/// for each token request. `private_key_pem` is PEM in PKCS#8, PKCS#1 (RSA)
/// or SEC1 (EC) form; `algorithm` is `"RS256"`, `"PS256"` (RSA, 2048 bits or
/// more) or `"ES256"` (P-256); `key_id` (the JWT `kid`) may be NULL. The key
/// is parsed and copied here; the caller may wipe its copy at once. For a key
/// the host holds elsewhere, see
/// `mcp_oauth_config_builder_set_private_key_jwt_signer`.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (the message names what is wrong:
/// not PEM, encrypted, a public key, the wrong curve, an algorithm the key
/// cannot do; it never contains the key).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_private_key_jwt(
    builder: *mut mcp_oauth_config_builder,
    private_key_pem: *const c_char,
    algorithm: *const c_char,
    key_id: *const c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let pem = Secret::new(unsafe { str_arg(private_key_pem, "private_key_pem") }?);
        let algorithm = unsafe { str_arg(algorithm, "algorithm") }?;
        let key_id = unsafe { opt_str_arg(key_id, "key_id") }?.map(str::to_string);
        b.client_assertion_signer = Some(Arc::new(JwtSigner::from_pem(&pem, algorithm, key_id)?));
        Ok(())
    })
}

/// The application's scope (space-separated), which replaces the client
/// metadata's `scope`. Without it, the scope comes from the server's
/// challenge or metadata. Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_scope(
    builder: *mut mcp_oauth_config_builder,
    scope: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.scope = Some(unsafe { str_arg(scope, "scope") }?.to_string());
        Ok(())
    })
}

/// The timeout of each HTTP request the library makes, in milliseconds
/// (default 30000).
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`; `MCP_OAUTH_RESULT_INVALID_ARGUMENT` for 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_timeout_ms(
    builder: *mut mcp_oauth_config_builder,
    timeout_ms: u64,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        if timeout_ms == 0 {
            return Err(Failure::invalid_argument("timeout_ms must be greater than zero"));
        }
        b.timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// The deadline of the person's part of an interactive authorization, from
/// sending them to the authorization endpoint to the redirect coming back,
/// in milliseconds (default 300000, five minutes).
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`; `MCP_OAUTH_RESULT_INVALID_ARGUMENT` for 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_authorization_timeout_ms(
    builder: *mut mcp_oauth_config_builder,
    timeout_ms: u64,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        if timeout_ms == 0 {
            return Err(Failure::invalid_argument(
                "authorization timeout_ms must be greater than zero",
            ));
        }
        b.authorization_timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// How long to wait, in milliseconds, for another process that is refreshing
/// the tokens of the same store (the file store shares them between
/// processes) before giving up with `MCP_OAUTH_RESULT_STORAGE` (default
/// 30000). 0 means: do not wait.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_lease_wait_ms(
    builder: *mut mcp_oauth_config_builder,
    wait_ms: u64,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.lease_wait = Some(Duration::from_millis(wait_ms));
        Ok(())
    })
}

/// The RFC 8707 `resource` parameter: a `mcp_oauth_resource_parameter`
/// value. `value` is the resource to send with
/// `MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE` (required, copied) and must be
/// NULL otherwise.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder; `value` with OVERRIDE),
/// `MCP_OAUTH_RESULT_INVALID_UTF8`, `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an
/// unknown mode, an empty override, or a value with SEND or OMIT).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_resource_parameter(
    builder: *mut mcp_oauth_config_builder,
    mode: u32,
    value: *const c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let value = unsafe { opt_str_arg(value, "value") }?;
        b.resource_parameter = match (mode, value) {
            (m, None) if m == mcp_oauth_resource_parameter::Send as u32 => ResourceParameter::Send,
            (m, None) if m == mcp_oauth_resource_parameter::Omit as u32 => ResourceParameter::Omit,
            (m, Some(v)) if m == mcp_oauth_resource_parameter::Override as u32 => {
                if v.is_empty() {
                    return Err(Failure::invalid_argument("the override resource must not be empty"));
                }
                ResourceParameter::Override(v.to_string())
            }
            (m, None) if m == mcp_oauth_resource_parameter::Override as u32 => {
                return Err(Failure::null("value"));
            }
            (m, Some(_)) if m <= mcp_oauth_resource_parameter::Omit as u32 => {
                return Err(Failure::invalid_argument(
                    "a resource value is only taken with MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE",
                ));
            }
            (other, _) => {
                return Err(Failure::invalid_argument(format!(
                    "unknown resource parameter mode {other}"
                )));
            }
        };
        Ok(())
    })
}

/// A name/value pair the copied extra parameters are made of.
unsafe fn param_args(name: *const c_char, value: *const c_char) -> Result<(String, String), Failure> {
    let name = unsafe { str_arg(name, "name") }?;
    let value = unsafe { str_arg(value, "value") }?;
    if name.is_empty() {
        return Err(Failure::invalid_argument("a parameter name must not be empty"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Add a parameter to the authorization request (e.g. Auth0's `audience`).
/// Callable several times; parameters are sent in the order added. An extra
/// parameter never replaces one the protocol sets (`client_id`, `state`,
/// `code_challenge`, ...). Both copied.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an empty name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_add_authorization_param(
    builder: *mut mcp_oauth_config_builder,
    name: *const c_char,
    value: *const c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let param = unsafe { param_args(name, value) }?;
        b.extra_authorization_params.push(param);
        Ok(())
    })
}

/// Add a parameter to every token request (code exchange, refresh, client
/// credentials). Callable several times; never replaces a parameter the
/// protocol sets. Both copied.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an empty name).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_add_token_param(
    builder: *mut mcp_oauth_config_builder,
    name: *const c_char,
    value: *const c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let param = unsafe { param_args(name, value) }?;
        b.extra_token_params.push(param);
        Ok(())
    })
}

/// Accept authorization servers whose metadata omits
/// `code_challenge_methods_supported` and use S256 anyway (some well-known
/// servers do not advertise it). Servers listing methods without S256 are
/// still refused. Default false.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_assume_s256_when_pkce_unadvertised(
    builder: *mut mcp_oauth_config_builder,
    enabled: bool,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.assume_s256_when_pkce_unadvertised = enabled;
        Ok(())
    })
}

/// Skip the check that the protected resource metadata's `resource` matches
/// the server URL. Default false; weakens security, use only for servers
/// known to publish a wrong `resource`.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_skip_resource_check(
    builder: *mut mcp_oauth_config_builder,
    enabled: bool,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.skip_resource_check = enabled;
        Ok(())
    })
}

/// The MCP protocol version to send as `MCP-Protocol-Version` on discovery
/// requests (e.g. `"2025-06-18"`). Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_protocol_version(
    builder: *mut mcp_oauth_config_builder,
    version: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.protocol_version = Some(unsafe { str_arg(version, "version") }?.to_string());
        Ok(())
    })
}

/// How tokens are obtained: a `mcp_oauth_grant` value.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`; `MCP_OAUTH_RESULT_INVALID_ARGUMENT`
/// for an unknown value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_grant(
    builder: *mut mcp_oauth_config_builder,
    grant: u32,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        b.grant = match grant {
            g if g == mcp_oauth_grant::AuthorizationCode as u32 => GrantKind::AuthorizationCode,
            g if g == mcp_oauth_grant::ClientCredentials as u32 => GrantKind::ClientCredentials,
            other => return Err(Failure::invalid_argument(format!("unknown grant {other}"))),
        };
        Ok(())
    })
}

/// Keep tokens and client information in memory only (the default): they
/// are forgotten when the provider is freed.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_storage_memory(
    builder: *mut mcp_oauth_config_builder,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.storage = StorageChoice::Memory;
        Ok(())
    })
}

/// Keep tokens and client information in a JSON file per MCP server in
/// `directory` (created with mode 0700 if missing, an existing one keeps its
/// mode; files mode 0600, replaced atomically, guarded by advisory locks so
/// processes can share them).
/// `directory` may be NULL for the default: `$XDG_STATE_HOME/mcp-oauth-client`,
/// else `~/.local/state/mcp-oauth-client`. Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder), `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_storage_file(
    builder: *mut mcp_oauth_config_builder,
    directory: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.storage = StorageChoice::File(unsafe { opt_str_arg(directory, "directory") }?.map(PathBuf::from));
        Ok(())
    })
}

/// Keep tokens and client information in the operating system's keychain:
/// the Secret Service on Linux (GNOME Keyring, KWallet; over D-Bus, no
/// library needed), the Keychain on macOS, the Credential Manager on
/// Windows. Entries are generic passwords under the service name `service`
/// (NULL for the default, `mcp-oauth-client`): one per MCP server for its
/// tokens (account `tokens <server URL>`) and one per authorization server
/// for the registration (account `client <issuer>`). No keychain access
/// happens here: an unavailable keychain (no Secret Service running, a
/// locked keyring) is reported by the first operation that needs the store,
/// as `MCP_OAUTH_RESULT_STORAGE` with a message saying so. Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder),
/// `MCP_OAUTH_RESULT_INVALID_UTF8`. A library built without keychain
/// support (cargo feature `keyring`, on by default) fails at
/// `mcp_oauth_config_builder_build` with
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_storage_keyring(
    builder: *mut mcp_oauth_config_builder,
    service: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.storage = StorageChoice::Keyring(unsafe { opt_str_arg(service, "service") }?.map(str::to_string));
        Ok(())
    })
}

/// Keep tokens and client information in Redis, shared by every process of
/// a fleet (see the README's section on the Redis store). `urls` is one URL,
/// `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS), or
/// the URLs of several nodes of a Redis Cluster separated by commas. Copied.
/// The store needs an encryption key
/// (`mcp_oauth_config_builder_add_redis_encryption_key`) unless
/// `mcp_oauth_config_builder_set_redis_allow_unencrypted_values` opts out;
/// `mcp_oauth_config_builder_build` checks it, and connects only on first use.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`); it never contains the
/// URL's password.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (a library built without Redis
/// support, or an empty `urls`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_storage_redis(
    builder: *mut mcp_oauth_config_builder,
    urls: *const c_char,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let urls = unsafe { str_arg(urls, "urls") }?;
        redis_supported()?;
        if urls.trim().is_empty() {
            return Err(CoreError::config("the Redis store needs a redis:// or rediss:// URL").into());
        }
        b.storage = StorageChoice::Redis(urls.to_string());
        Ok(())
    })
}

/// The prefix of every Redis key of the store (default `mcp-oauth`): hosts
/// sharing one Redis keep apart by it. Copied. Checked by
/// `mcp_oauth_config_builder_build` (no `{` or `}`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_redis_key_prefix(
    builder: *mut mcp_oauth_config_builder,
    prefix: *const c_char,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.redis.key_prefix = Some(unsafe { str_arg(prefix, "prefix") }?.to_string());
        b.redis.touched = true;
        Ok(())
    })
}

/// Add a key that encrypts the Redis store's values with AES-256-GCM:
/// `key_len` must be 32 bytes, copied (and wiped from the library's memory
/// when the provider is freed); `key_id` (1 to 64 letters, digits, `-`, `_`,
/// `.`) is stored beside every value it encrypts. The first key added
/// encrypts every write; every key added decrypts what it wrote (rotation:
/// add the new key first, then the old ones).
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`); it never contains the key.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_UTF8`,
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (a key of another length, a bad
/// id, a library built without Redis support).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_add_redis_encryption_key(
    builder: *mut mcp_oauth_config_builder,
    key_id: *const c_char,
    key: *const u8,
    key_len: usize,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let key_id = unsafe { str_arg(key_id, "key_id") }?;
        if key.is_null() {
            return Err(Failure::null("key"));
        }
        redis_supported()?;
        #[cfg(feature = "redis")]
        {
            // SAFETY: the caller passes `key_len` readable bytes at `key`.
            let bytes = unsafe { std::slice::from_raw_parts(key, key_len) };
            b.redis.keys.push(mcp_oauth_client::EncryptionKey::new(key_id, bytes)?);
            b.redis.touched = true;
        }
        #[cfg(not(feature = "redis"))]
        let _ = (b, key_id, key_len);
        Ok(())
    })
}

/// Whether the Redis store may keep tokens and client secrets unencrypted
/// (plain JSON, readable by anyone who can read the Redis database). False
/// by default: without an encryption key, `mcp_oauth_config_builder_build`
/// refuses a Redis store unless this is set to true.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_redis_allow_unencrypted_values(
    builder: *mut mcp_oauth_config_builder,
    allow: bool,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        b.redis.allow_unencrypted = allow;
        b.redis.touched = true;
        Ok(())
    })
}

fn redis_supported() -> Result<(), Failure> {
    if cfg!(feature = "redis") {
        Ok(())
    } else {
        Err(CoreError::config("this build of the library has no Redis support (cargo feature `redis`)").into())
    }
}

#[cfg(feature = "redis")]
fn redis_storage(urls: &str, settings: RedisSettings, server_url: &str) -> Result<Arc<dyn TokenStorage>, Failure> {
    let mut options = mcp_oauth_client::RedisOptions::parse(urls).allow_unencrypted_values(settings.allow_unencrypted);
    if let Some(prefix) = &settings.key_prefix {
        options = options.key_prefix(prefix);
    }
    for key in settings.keys {
        options = options.encryption_key(key);
    }
    Ok(Arc::new(mcp_oauth_client::RedisStorage::new(options, server_url)?))
}

#[cfg(not(feature = "redis"))]
fn redis_storage(_urls: &str, _settings: RedisSettings, _server_url: &str) -> Result<Arc<dyn TokenStorage>, Failure> {
    Err(redis_supported().unwrap_err())
}

/// Keep tokens and client information in the host's storage (see
/// `mcp_oauth_storage_callbacks`). The struct is read according to its
/// `version` and copied; from a successful
/// return on, the library owns `callbacks->userdata` and calls
/// `callbacks->release` exactly once when done with it. On failure nothing
/// is taken.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, callbacks, or one of
/// the four required callbacks).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_storage_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_storage_callbacks,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let cb = unsafe {
            crate::versioned::read(
                callbacks,
                "callbacks",
                crate::callbacks::MCP_OAUTH_STORAGE_CALLBACKS_SIZES,
            )
        }?;
        b.storage = StorageChoice::Callbacks(CallbackStorage::new(&cb)?);
        Ok(())
    })
}

/// Use the host's redirect and callback handlers (see
/// `mcp_oauth_handler_callbacks`) for the authorization-code flow. The struct
/// is copied; from a successful return on, the library owns
/// `callbacks->userdata` and calls `callbacks->release` exactly once when
/// done with it. On failure nothing is taken. The client metadata must then
/// name the redirect URI the host receives on.
///
/// On failure, when `err_out` is not NULL, `*err_out` is a new error
/// saying why (free it with `mcp_oauth_error_free`).
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, callbacks, redirect
/// or callback).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_handler_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_handler_callbacks,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        let cb = unsafe {
            crate::versioned::read(
                callbacks,
                "callbacks",
                crate::callbacks::MCP_OAUTH_HANDLER_CALLBACKS_SIZES,
            )
        }?;
        b.handler = HandlerChoice::Callbacks(CallbackHandler::new(&cb)?);
        Ok(())
    })
}

/// Send the library's OAuth requests (discovery, registration, token
/// requests) through the host's HTTP stack (see
/// `mcp_oauth_transport_callbacks`) instead of the library's own HTTPS
/// client. The struct is read according to its `version` and copied; from a
/// successful return on, the library owns `callbacks->userdata` and calls
/// `callbacks->release` exactly once when done with it. On failure nothing
/// is taken and, when `err_out` is not NULL, `*err_out` says why.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, callbacks, send),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (a `version` this library does not
/// know: 0, or newer than the library).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_transport_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_transport_callbacks,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let b = unsafe { mcp_oauth_config_builder::borrow_mut(builder) }.ok_or_else(|| Failure::null("builder"))?;
        b.transport = Some(unsafe { CallbackTransport::new(callbacks) }?);
        Ok(())
    })
}

/// Keep tokens and client information in the host's store, one that
/// several processes may share (see `mcp_oauth_token_store`). Replaces any
/// storage set before. The struct is read according to its `version` and
/// copied; from a successful return on, the library owns `store->userdata`
/// and calls `store->release` exactly once when done with it. On failure
/// nothing is taken and, when `err_out` is not NULL, `*err_out` says why.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, store, a required
/// callback), `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an unknown version).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_token_store(
    builder: *mut mcp_oauth_config_builder,
    store: *const mcp_oauth_token_store,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        b.storage = StorageChoice::Host(unsafe { HostStoreConfig::new(store) }?);
        Ok(())
    })
}

/// Use the host's deferred authorization callbacks (see
/// `mcp_oauth_authorization_callbacks`) for the person's step: the host is
/// handed the authorization and answers it later, from any thread. Replaces
/// any handler set before. The struct is read according to its `version`
/// and copied; from a successful return on, the library owns
/// `callbacks->userdata` and calls `callbacks->release` exactly once when
/// done with it. On failure nothing is taken and, when `err_out` is not
/// NULL, `*err_out` says why. The client metadata must name the redirect URI
/// the host receives on.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, callbacks, begin),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an unknown version).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_authorization_callbacks(
    builder: *mut mcp_oauth_config_builder,
    callbacks: *const mcp_oauth_authorization_callbacks,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        b.handler = HandlerChoice::Deferred(unsafe { DeferredHandler::new(callbacks) }?);
        Ok(())
    })
}

/// A log callback of the provider's own (see `mcp_oauth_log_options`),
/// which receives the messages of this provider's work only. The struct is
/// read according to its `version` and copied; from a successful return on,
/// the library owns `options->userdata` and calls `options->release`
/// exactly once when done with it. On failure nothing is taken and, when
/// `err_out` is not NULL, `*err_out` says why.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder, options, callback),
/// `MCP_OAUTH_RESULT_INVALID_ARGUMENT` (an unknown version or level),
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (the library's log subscriber
/// cannot be installed: a Rust component of the host installed its own).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_log_options(
    builder: *mut mcp_oauth_config_builder,
    options: *const mcp_oauth_log_options,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    with_builder_err(builder, err_out, |b| {
        b.log = Some(unsafe { ProviderSink::new(options) }?);
        Ok(())
    })
}

/// Use the built-in handlers: the system browser (honoring `$BROWSER`, a
/// `:`-separated list of commands where `%s` is the URL; the URL is printed
/// on stderr when no browser starts) and a loopback HTTP receiver (RFC 8252
/// §7.3) for the redirect back.
///
/// `redirect_uri` is where to listen: `http` on `127.0.0.1`, `[::1]` or
/// `localhost`; port 0 picks a free port. NULL means
/// `"http://127.0.0.1:0/callback"`. `timeout_ms` bounds the wait for the
/// person (0 means the authorization timeout,
/// `mcp_oauth_config_builder_set_authorization_timeout_ms`, five minutes by
/// default). The receiver is bound by
/// `mcp_oauth_config_builder_build`, which also sets the client metadata's
/// `redirect_uris` to the bound URI (`mcp_oauth_provider_redirect_uri` tells
/// it). Copied.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER` (builder), `MCP_OAUTH_RESULT_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_set_loopback_handler(
    builder: *mut mcp_oauth_config_builder,
    redirect_uri: *const c_char,
    timeout_ms: u64,
) -> mcp_oauth_result {
    with_builder(builder, |b| {
        let redirect_uri = unsafe { opt_str_arg(redirect_uri, "redirect_uri") }?
            .unwrap_or(DEFAULT_LOOPBACK)
            .to_string();
        let timeout = (timeout_ms != 0).then(|| Duration::from_millis(timeout_ms));
        b.handler = HandlerChoice::Loopback { redirect_uri, timeout };
        Ok(())
    })
}

/// Build a provider from the builder, which is consumed (freed) whether or
/// not this succeeds: do not use or free `builder` afterwards (undefined
/// behaviour, which the library cannot detect). Checks everything that can be checked without
/// network traffic (server URL, client metadata, CIMD URL, that the grant has
/// what it needs) and binds the loopback receiver if one was asked for (which
/// starts the library's runtime, if it is not running yet).
///
/// An authorization-code provider without a handler builds: it works with
/// tokens already stored, and reports the missing handler
/// (`MCP_OAUTH_RESULT_INVALID_CONFIGURATION`, from the call that needed it)
/// only when a flow needs a person.
///
/// On success `*provider_out` is a new provider, owned by the caller and
/// freed with `mcp_oauth_provider_free`. On failure, when `err_out` is not
/// NULL, `*err_out` is a new error object (free it with
/// `mcp_oauth_error_free`).
///
/// Blocking (when a loopback receiver is bound): returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK` when called from a library callback.
///
/// Errors: `MCP_OAUTH_RESULT_NULL_PARAMETER`, `MCP_OAUTH_RESULT_INVALID_CONFIGURATION`
/// (including a port that cannot be bound), `MCP_OAUTH_RESULT_STORAGE`
/// (the token directory cannot be created), `MCP_OAUTH_RESULT_WOULD_DEADLOCK`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_config_builder_build(
    builder: *mut mcp_oauth_config_builder,
    provider_out: *mut *mut mcp_oauth_provider,
    err_out: *mut *mut mcp_oauth_error,
) -> mcp_oauth_result {
    boundary::guard(err_out, || {
        let b = unsafe { mcp_oauth_config_builder::take(builder) }.ok_or_else(|| Failure::null("builder"))?;
        let out = unsafe { out_arg(provider_out, "provider_out") }?;
        let provider = build(*b)?;
        *out = mcp_oauth_provider::into_raw(Arc::new(provider));
        Ok(())
    })
}

fn build(b: Builder) -> Result<Provider, Failure> {
    let server_url = b
        .server_url
        .ok_or_else(|| CoreError::config("the server URL is not set"))?;
    // The client metadata is put in last: the loopback receiver's bound URI
    // goes into it, and the receiver's default wait is the configured
    // authorization timeout.
    let mut config = ProviderConfig::new(server_url, OAuthClientMetadata::new(Vec::new()));
    config.client_metadata_url = b.client_metadata_url;
    config.static_client = b.static_client;
    config.client_assertion = b
        .client_assertion_signer
        .map(|s| s as Arc<dyn mcp_oauth_client::AssertionProvider>);
    config.grant = b.grant;
    if let Some(t) = b.timeout {
        config.timeout = t;
    }
    if let Some(t) = b.authorization_timeout {
        config.authorization_timeout = t;
    }
    if let Some(w) = b.lease_wait {
        config.lease_wait = w;
    }
    config.resource_parameter = b.resource_parameter;
    config.extra_authorization_params = b.extra_authorization_params;
    config.extra_token_params = b.extra_token_params;
    config.assume_s256_when_pkce_unadvertised = b.assume_s256_when_pkce_unadvertised;
    config.skip_resource_check = b.skip_resource_check;
    config.protocol_version = b.protocol_version;
    if let Some(t) = b.transport {
        config.transport = Some(Arc::new(t));
    }

    let (handler, redirect_uri): (Option<Arc<dyn AuthorizationHandler>>, Option<String>) = match b.handler {
        HandlerChoice::None => (None, None),
        HandlerChoice::Callbacks(h) => (Some(Arc::new(h)), None),
        HandlerChoice::Deferred(h) => (Some(Arc::new(h)), None),
        HandlerChoice::Loopback { redirect_uri, timeout } => {
            let timeout = timeout.unwrap_or(config.authorization_timeout);
            let receiver = block_on(LoopbackReceiver::bind(&redirect_uri, timeout))??;
            let bound = receiver.redirect_uri().to_string();
            (
                Some(Arc::new(BrowserLoopbackHandler::new(Arc::new(receiver)))),
                Some(bound),
            )
        }
    };
    let mut metadata = match &b.client_metadata_json {
        // Parsed here (not with `from_json`) so the bound redirect URI can be
        // put in before the core validates the metadata.
        Some(json) => serde_json::from_str::<OAuthClientMetadata>(json)
            .map_err(|e| CoreError::config(format!("client metadata JSON is invalid: {e}")))?,
        None => OAuthClientMetadata::new(Vec::new()),
    };
    if let Some(uri) = &redirect_uri {
        metadata.redirect_uris = vec![uri.clone()];
    }
    if let Some(scope) = b.scope {
        metadata.scope = Some(scope);
    }
    config.client_metadata = metadata;
    b.m2m.apply(&mut config)?;
    if b.redis.touched && !matches!(b.storage, StorageChoice::Redis(_)) {
        return Err(CoreError::config(
            "Redis settings (key prefix, encryption key, unencrypted values) were given, but the storage is not Redis: \
             call mcp_oauth_config_builder_set_storage_redis",
        )
        .into());
    }
    b.builtins.apply(&mut config);
    let storage: Arc<dyn TokenStorage> = match b.storage {
        StorageChoice::Memory => Arc::new(MemoryStorage::new()),
        StorageChoice::Redis(urls) => redis_storage(&urls, b.redis, &config.server_url)?,
        StorageChoice::File(dir) => {
            let dir = dir.or_else(FileStorage::default_dir).ok_or_else(|| {
                CoreError::storage("no token directory given and neither XDG_STATE_HOME nor HOME is set")
            })?;
            Arc::new(FileStorage::new(dir, &config.server_url)?)
        }
        StorageChoice::Callbacks(s) => Arc::new(s),
        StorageChoice::Host(s) => Arc::new(s.for_key(&config.server_url)),
        #[cfg(feature = "keyring")]
        StorageChoice::Keyring(service) => Arc::new(mcp_oauth_client::KeyringStorage::with_service(
            service
                .as_deref()
                .unwrap_or(mcp_oauth_client::KeyringStorage::DEFAULT_SERVICE),
            &config.server_url,
        )?),
        #[cfg(not(feature = "keyring"))]
        StorageChoice::Keyring(_) => {
            return Err(CoreError::config(
                "this build of the library has no keychain support (cargo feature `keyring`)",
            )
            .into());
        }
    };
    let id = crate::log::next_provider_id();
    let span = crate::log::provider_span(id);
    let shutdown = Shutdown::new();
    config.task_wrapper = Some(shutdown.task_wrapper(span.clone()));
    let core = OAuthClientProvider::new(config, storage, handler)?;
    if let Some(sink) = b.log {
        crate::log::register_provider(id, sink);
    }
    Ok(Provider {
        core,
        redirect_uri: redirect_uri.as_deref().map(to_cstring),
        shutdown,
        id,
        span,
    })
}
