//! # mcp-oauth-client
//!
//! The OAuth 2.1 client of the Model Context Protocol: everything a client
//! must do when an MCP server answers `401`. It discovers the authorization
//! server (RFC 9728, RFC 8414, OpenID Connect Discovery), identifies the
//! client (stored registration, pre-registered credentials, Client ID
//! Metadata Documents, or RFC 7591 dynamic registration), runs the
//! authorization-code flow with PKCE, `state`, RFC 9207 `iss` checks and RFC
//! 8707 resource indicators, exchanges and refreshes tokens, and steps up
//! scopes on `403 insufficient_scope`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mcp_oauth_client::{
//!     BrowserLoopbackHandler, FileStorage, LoopbackReceiver, OAuthClientMetadata,
//!     OAuthClientProvider, ProviderConfig, RequestInfo, ResponseAction, ResponseInfo,
//! };
//!
//! # async fn run() -> mcp_oauth_client::Result<()> {
//! let server = "https://mcp.example.com/mcp";
//! let receiver = Arc::new(LoopbackReceiver::bind("http://127.0.0.1:0/callback", Duration::from_secs(300)).await?);
//! let mut metadata = OAuthClientMetadata::new(vec![receiver.redirect_uri().to_string()]);
//! metadata.client_name = Some("My MCP host".into());
//! let storage = Arc::new(FileStorage::new(FileStorage::default_dir().unwrap(), server)?);
//! let provider = OAuthClientProvider::new(
//!     ProviderConfig::new(server, metadata),
//!     storage,
//!     Some(Arc::new(BrowserLoopbackHandler::new(receiver))),
//! )?;
//!
//! // Before each request: the headers to set (none until a token is held).
//! let request = RequestInfo::new("POST", server);
//! let headers = provider.headers(&request).await?;
//! // ... send the request with every (name, value) of `headers` ...
//! # let (status, response_headers) = (401u16, vec![("www-authenticate".to_string(), "Bearer".to_string())]);
//! // On 401/403, once per request, with what the request carried:
//! let sent = request.with_authorization(headers.as_ref().map(|h| h.authorization()));
//! if let ResponseAction::Retry(again) =
//!     provider.handle_response(&sent, &ResponseInfo::new(status, &response_headers)).await?
//! {
//!     // ... send it again with `again` ...
//! }
//! # Ok(()) }
//! ```

pub mod authorize;
pub mod binding;
pub mod challenge;
pub mod discovery;
pub mod dpop;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod model;
pub mod provider;
pub mod registration;
pub mod runtime;
pub mod scope;
pub mod sources;
pub mod storage;
pub mod token;

pub use authorize::AuthorizationCodeResult;
pub use binding::{AuthHeaders, Bearer, TokenBinding};
pub use discovery::{Discovered, DiscoveryReport, DiscoveryStep, Verdict};
pub use dpop::Dpop;
pub use error::{Error, ErrorKind, NetworkFailure, OAuthErrorFields, Result, Step};
pub use handler::{AuthorizationHandler, BrowserLoopbackHandler, LoopbackReceiver, open_browser};
pub use http::{HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportError, TransportOptions};
pub use jwt::{AssertionProvider, JwtSigner, PrivateKeyJwt};
pub use keys::{Algorithm, CallbackSigner, LocalSigner, PrivateKey, SignFn, Signer};
pub use model::{
    AuthorizationServerMetadata, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken,
    ProtectedResourceMetadata, Secret,
};
pub use provider::{
    GrantKind, LogoutOutcome, OAuthClientProvider, ProviderConfig, RequestInfo, ResourceParameter, ResponseAction,
    ResponseInfo, StaticClient, TaskWrapper,
};
pub use sources::{
    AuthorizationCode, ClientCredentials, DeviceAuthorization, DeviceCode, DeviceCodeHandler, GrantAssertion,
    JwtBearer, TokenSource,
};
#[cfg(feature = "keyring")]
pub use storage::KeyringStorage;
pub use storage::{CasOutcome, FileStorage, Lease, MemoryStorage, TokenStorage, Version, Versioned};
#[cfg(feature = "redis")]
pub use storage::{EncryptionKey, RedisOptions, RedisStorage};
