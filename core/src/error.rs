//! One error type for every failure of the OAuth client.
//!
//! The kinds follow the MCP client SDKs' model (SPEC.md §9): a flow error is the
//! base of every OAuth failure, with registration and token-endpoint refusals as
//! their own kinds; network failures, invalid configuration, and failures of the
//! host's storage or handlers are kinds of their own as well. Every error carries
//! the step that failed, the URL involved (never one holding a secret), the HTTP
//! status, and the RFC 6749 error fields when the server sent them.
//!
//! Nothing in an error holds a secret: messages are written by this crate, and
//! server-provided text is limited to the OAuth `error_description`.

use std::fmt;

/// What the client was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Building the provider from its configuration.
    Configuration,
    /// Fetching RFC 9728 protected resource metadata.
    ResourceMetadata,
    /// Fetching RFC 8414 / OpenID authorization server metadata.
    AuthorizationServerMetadata,
    /// Choosing or registering the client identity.
    Registration,
    /// Sending the person to the authorization endpoint.
    Authorization,
    /// Validating the redirect back from the authorization server.
    Callback,
    /// Exchanging an authorization code for tokens.
    TokenExchange,
    /// Refreshing tokens with a refresh token.
    Refresh,
    /// A grant without a person (client credentials, JWT bearer, token exchange).
    Grant,
    /// Stepping up scopes after `insufficient_scope`.
    StepUp,
    /// Reading or writing the host's token storage.
    Storage,
    /// Handling a request's response (challenge parsing, retries).
    Request,
    /// Signing a JWT (a client assertion, a DPoP proof) with the client's key
    /// or the host's signing callback.
    Signing,
    /// Obtaining an identity assertion (an ID-JAG, RFC 8693 token exchange)
    /// from the enterprise identity provider.
    IdentityAssertion,
    /// The device authorization grant (RFC 8628): asking for a user code,
    /// and polling the token endpoint while the person approves elsewhere.
    DeviceAuthorization,
    /// Revoking tokens at the authorization server (RFC 7009) and forgetting
    /// them.
    Revocation,
}

impl Step {
    /// A stable lower-case name, used in messages and by the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Configuration => "configuration",
            Step::ResourceMetadata => "resource_metadata",
            Step::AuthorizationServerMetadata => "authorization_server_metadata",
            Step::Registration => "registration",
            Step::Authorization => "authorization",
            Step::Callback => "callback",
            Step::TokenExchange => "token_exchange",
            Step::Refresh => "refresh",
            Step::Grant => "grant",
            Step::StepUp => "step_up",
            Step::Storage => "storage",
            Step::Request => "request",
            Step::Signing => "signing",
            Step::IdentityAssertion => "identity_assertion",
            Step::DeviceAuthorization => "device_authorization",
            Step::Revocation => "revocation",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 6749 §5.2 error fields a server sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthErrorFields {
    /// The `error` code, e.g. `invalid_grant`, `access_denied`.
    pub error: String,
    /// The human-readable `error_description`, if any.
    pub error_description: Option<String>,
    /// The `error_uri`, if any.
    pub error_uri: Option<String>,
}

/// What kind of network failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkFailure {
    /// The request or the response took longer than the configured timeout.
    Timeout,
    /// The connection could not be made (refused, DNS, unreachable).
    Connect,
    /// The TLS handshake failed: a certificate not trusted (a private CA
    /// not added), expired, or for another name; a protocol mismatch.
    Tls,
    /// The response was larger than this client accepts.
    ResponseTooLarge,
    /// Any other transport failure.
    Other,
}

/// The detail every error carries.
#[derive(Clone, Default)]
pub struct ErrorDetail {
    /// The step that failed.
    pub step: Option<Step>,
    /// What went wrong, in this crate's words.
    pub message: String,
    /// The URL the failing request went to (never one that holds a secret).
    pub url: Option<String>,
    /// The HTTP status of the response, if there was one.
    pub status: Option<u16>,
    /// The OAuth error fields, if the server sent them.
    pub oauth: Option<OAuthErrorFields>,
    /// For network errors, what kind.
    pub network: Option<NetworkFailure>,
    /// How long the server asked the client to wait (`Retry-After`), if it did.
    pub retry_after: Option<std::time::Duration>,
    /// What the host's own callback returned, when a binding's callback
    /// failed with a code of the host's (a C storage or handler callback
    /// returning non-zero): kept for the host, never interpreted here.
    pub callback_code: Option<i64>,
}

impl fmt::Debug for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ErrorDetail");
        d.field("step", &self.step).field("message", &self.message);
        if let Some(url) = &self.url {
            d.field("url", url);
        }
        if let Some(status) = self.status {
            d.field("status", &status);
        }
        if let Some(oauth) = &self.oauth {
            d.field("oauth", oauth);
        }
        if let Some(network) = self.network {
            d.field("network", &network);
        }
        if let Some(retry_after) = self.retry_after {
            d.field("retry_after", &retry_after);
        }
        if let Some(code) = self.callback_code {
            d.field("callback_code", &code);
        }
        d.finish()
    }
}

/// The kind of an [`Error`], for bindings that map kinds to their own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Any OAuth flow failure not covered by a more specific kind.
    Flow,
    /// The authorization server refused (or could not do) client registration.
    Registration,
    /// The token endpoint refused a grant.
    Token,
    /// A network failure: timeout, refused connection, oversized response.
    Network,
    /// The server could not answer: a 5xx, a 429, an HTML error page, a
    /// malformed success. An outage, not a refusal: nothing stored is dropped,
    /// and the next request tries again.
    Server,
    /// The configuration cannot work (caught before any traffic where possible).
    InvalidConfiguration,
    /// The host's token storage failed or returned unusable data.
    Storage,
    /// The host's redirect or callback handler failed.
    Handler,
}

impl ErrorKind {
    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Flow => "flow",
            ErrorKind::Registration => "registration",
            ErrorKind::Token => "token",
            ErrorKind::Network => "network",
            ErrorKind::Server => "server",
            ErrorKind::InvalidConfiguration => "invalid_configuration",
            ErrorKind::Storage => "storage",
            ErrorKind::Handler => "handler",
        }
    }
}

/// Every failure of this crate.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    detail: Box<ErrorDetail>,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, step: Step, message: impl Into<String>) -> Self {
        Error {
            kind,
            detail: Box::new(ErrorDetail {
                step: Some(step),
                message: message.into(),
                ..ErrorDetail::default()
            }),
        }
    }

    /// A flow error.
    pub fn flow(step: Step, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Flow, step, message)
    }

    /// An invalid-configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfiguration, Step::Configuration, message)
    }

    /// A storage error.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, Step::Storage, message)
    }

    /// A handler error.
    pub fn handler(step: Step, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Handler, step, message)
    }

    /// A network error.
    pub fn network(step: Step, failure: NetworkFailure, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Network, step, message);
        e.detail.network = Some(failure);
        e
    }

    /// Attach the URL involved. Query strings and fragments are dropped, since
    /// they may carry codes or state.
    pub fn with_url(mut self, url: &url::Url) -> Self {
        let mut u = url.clone();
        u.set_query(None);
        u.set_fragment(None);
        let _ = u.set_password(None);
        self.detail.url = Some(u.to_string());
        self
    }

    /// Attach the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.detail.status = Some(status);
        self
    }

    /// Attach OAuth error fields.
    pub fn with_oauth(mut self, oauth: OAuthErrorFields) -> Self {
        self.detail.oauth = Some(oauth);
        self
    }

    /// Attach the server's `Retry-After`.
    pub fn with_retry_after(mut self, retry_after: Option<std::time::Duration>) -> Self {
        self.detail.retry_after = retry_after;
        self
    }

    /// Attach the code the host's callback returned (see
    /// [`ErrorDetail::callback_code`]).
    pub fn with_callback_code(mut self, code: i64) -> Self {
        self.detail.callback_code = Some(code);
        self
    }

    /// The code the host's callback returned, if a host callback failed.
    pub fn callback_code(&self) -> Option<i64> {
        self.detail.callback_code
    }

    /// Replace the step (used when a lower layer's error surfaces in a later step).
    pub fn in_step(mut self, step: Step) -> Self {
        self.detail.step = Some(step);
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The step that failed.
    pub fn step(&self) -> Option<Step> {
        self.detail.step
    }

    /// The message, without the extra fields.
    pub fn message(&self) -> &str {
        &self.detail.message
    }

    /// The URL involved.
    pub fn url(&self) -> Option<&str> {
        self.detail.url.as_deref()
    }

    /// The HTTP status.
    pub fn status(&self) -> Option<u16> {
        self.detail.status
    }

    /// The OAuth error fields.
    pub fn oauth(&self) -> Option<&OAuthErrorFields> {
        self.detail.oauth.as_ref()
    }

    /// The OAuth `error` code, if any.
    pub fn oauth_error(&self) -> Option<&str> {
        self.detail.oauth.as_ref().map(|o| o.error.as_str())
    }

    /// How long the server asked the client to wait, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.detail.retry_after
    }

    /// Whether this is an outage (network or server) rather than a refusal:
    /// nothing stored is dropped because of it.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Network | ErrorKind::Server)
    }

    /// For network errors, the kind of failure.
    pub fn network_failure(&self) -> Option<NetworkFailure> {
        self.detail.network
    }

    /// All the detail.
    pub fn detail(&self) -> &ErrorDetail {
        &self.detail
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.detail;
        if let Some(step) = d.step {
            write!(f, "{step}: ")?;
        }
        f.write_str(&d.message)?;
        if let Some(oauth) = &d.oauth {
            write!(f, " (error={}", oauth.error)?;
            if let Some(desc) = &oauth.error_description {
                write!(f, ": {desc}")?;
            }
            f.write_str(")")?;
        }
        if let Some(status) = d.status {
            write!(f, " [HTTP {status}]")?;
        }
        if let Some(after) = d.retry_after {
            write!(f, " (retry after {}s)", after.as_secs())?;
        }
        if let Some(url) = &d.url {
            write!(f, " at {url}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_step_status_oauth_and_url_without_query() {
        let url = url::Url::parse("https://as.example/token?code=SECRET#frag").unwrap();
        let e = Error::new(ErrorKind::Token, Step::TokenExchange, "token request refused")
            .with_status(400)
            .with_url(&url)
            .with_oauth(OAuthErrorFields {
                error: "invalid_grant".into(),
                error_description: Some("expired".into()),
                error_uri: None,
            });
        let s = e.to_string();
        assert_eq!(
            s,
            "token_exchange: token request refused (error=invalid_grant: expired) [HTTP 400] at https://as.example/token"
        );
        assert!(!format!("{e:?}").contains("SECRET"));
        assert_eq!(e.kind(), ErrorKind::Token);
        assert_eq!(e.oauth_error(), Some("invalid_grant"));
    }
}
