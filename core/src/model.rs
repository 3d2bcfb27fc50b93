//! Wire and storage types: client metadata (RFC 7591), client information,
//! tokens (RFC 6749 §5.1), protected resource metadata (RFC 9728) and
//! authorization server metadata (RFC 8414).
//!
//! The JSON schema of the stored types is the MCP Python SDK's
//! (`mcp.shared.auth`), so a store written by either can be read by the other.
//! Fields this crate adds (`expires_at`, `issuer`) are extra keys the SDK's
//! models ignore.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A secret string: tokens, client secrets, verifiers. Its `Debug` and
/// `Display` print `[redacted]`, and its memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(Zeroizing::new(s.into()))
    }

    /// The secret itself. Every call site is a place a secret leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A token response as stored: RFC 6749 §5.1 plus the absolute expiry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthToken {
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` (normalized from any case) or `DPoP`.
    #[serde(default = "default_token_type")]
    pub token_type: String,
    /// Lifetime in seconds as the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Space-separated scopes granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// Absolute expiry, seconds since the Unix epoch (issued-at + `expires_in`),
    /// so a token reloaded after a restart is judged correctly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<f64>,
    /// The issuer of the authorization server that issued these tokens. A
    /// refresh token is only ever sent to that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The resource (RFC 8707) the tokens were issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Any other fields the server sent (e.g. `id_token`), kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_token_type() -> String {
    "Bearer".to_string()
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl OAuthToken {
    /// A bearer token with no expiry.
    pub fn bearer(access_token: impl Into<String>) -> Self {
        OAuthToken {
            access_token: Secret::new(access_token),
            token_type: "Bearer".into(),
            expires_in: None,
            scope: None,
            refresh_token: None,
            expires_at: None,
            issuer: None,
            resource: None,
            extra: Map::new(),
        }
    }

    /// The absolute expiry: `expires_at` if stored, else none known. A token
    /// from a store that kept only `expires_in` is treated as having no known
    /// expiry (the server's 401 then tells).
    pub fn expiry(&self) -> Option<f64> {
        self.expires_at
    }

    /// Fill `expires_at` from `expires_in`, counted from now.
    pub fn stamp_expiry(&mut self) {
        if let Some(secs) = self.expires_in {
            self.expires_at = Some(now_unix() + secs as f64);
        }
    }

    /// Whether the token should be refreshed now: expired, or within a margin
    /// of expiry (a tenth of its lifetime, at most 30 seconds), for clock skew.
    pub fn needs_refresh(&self) -> bool {
        self.refresh_at().is_some_and(|at| now_unix() >= at)
    }

    /// When to refresh, in seconds since the Unix epoch: the absolute expiry
    /// less the margin (a stored `expires_in` of 0 without an absolute expiry
    /// means now); `None` when the expiry is unknown.
    pub fn refresh_at(&self) -> Option<f64> {
        match self.expires_at {
            Some(at) => {
                let lifetime = self.expires_in.map(|s| s as f64).unwrap_or(300.0);
                Some(at - (lifetime / 10.0).min(30.0))
            }
            None if self.expires_in == Some(0) => Some(0.0),
            None => None,
        }
    }

    /// Whether the token is known to be expired (not merely close to it):
    /// its absolute expiry has passed, or it carries `expires_in: 0` and no
    /// absolute expiry. Such a token is never sent.
    pub fn is_expired(&self) -> bool {
        match self.expires_at {
            Some(at) => now_unix() >= at,
            None => self.expires_in == Some(0),
        }
    }

    /// The scopes granted, as a set of names.
    pub fn scopes(&self) -> Vec<String> {
        split_scopes(self.scope.as_deref())
    }

    /// The `Authorization` header value for this token.
    pub fn header_value(&self) -> String {
        format!("{} {}", self.token_type, self.access_token.expose())
    }
}

pub(crate) fn split_scopes(s: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.unwrap_or("").split_ascii_whitespace() {
        if !out.iter().any(|x| x == part) {
            out.push(part.to_string());
        }
    }
    out
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".into(), "refresh_token".into()]
}

fn default_response_types() -> Vec<String> {
    vec!["code".into()]
}

/// RFC 7591 client metadata: what a registration form asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientMetadata {
    /// Where the authorization server may send the person back. Required.
    pub redirect_uris: Vec<String>,
    /// How the client authenticates at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Defaults to `authorization_code` and `refresh_token`.
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
    /// Defaults to `code`.
    #[serde(default = "default_response_types")]
    pub response_types: Vec<String>,
    /// Space-separated scopes the application asks for. When set, the provider
    /// never replaces it (step-up only adds to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `native` or `web`; derived from the redirect URIs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Contacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// JWK Set URL for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Inline JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Software identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Any other registration fields, sent as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OAuthClientMetadata {
    /// Metadata with the given redirect URIs and the defaults for the rest.
    pub fn new(redirect_uris: Vec<String>) -> Self {
        OAuthClientMetadata {
            redirect_uris,
            token_endpoint_auth_method: None,
            grant_types: default_grant_types(),
            response_types: default_response_types(),
            scope: None,
            application_type: None,
            client_name: None,
            client_uri: None,
            logo_uri: None,
            contacts: None,
            tos_uri: None,
            policy_uri: None,
            jwks_uri: None,
            jwks: None,
            software_id: None,
            software_version: None,
            extra: Map::new(),
        }
    }

    /// Parse and validate from JSON (the same schema as the Python model).
    pub fn from_json(json: &str) -> crate::Result<Self> {
        let m: OAuthClientMetadata =
            serde_json::from_str(json).map_err(|e| crate::Error::config(format!("invalid client metadata: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Check what can be checked before any traffic.
    pub fn validate(&self) -> crate::Result<()> {
        if self.redirect_uris.is_empty() && self.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(crate::Error::config(
                "client metadata: redirect_uris must name at least one redirect URI",
            ));
        }
        for uri in &self.redirect_uris {
            let parsed = url::Url::parse(uri).map_err(|e| {
                crate::Error::config(format!("client metadata: redirect_uris: {uri:?} is not a URL: {e}"))
            })?;
            if parsed.fragment().is_some() {
                return Err(crate::Error::config(format!(
                    "client metadata: redirect_uris: {uri:?} must not have a fragment"
                )));
            }
            if parsed.scheme() == "http" && !crate::http::is_loopback(&parsed) {
                return Err(crate::Error::config(format!(
                    "client metadata: redirect_uris: {uri:?} uses plain http on a host that is not loopback; use https or 127.0.0.1/localhost/[::1]"
                )));
            }
        }
        Ok(())
    }

    /// `native` when every redirect URI is loopback or a private-use scheme,
    /// `web` otherwise (OpenID Connect Registration `application_type`).
    pub fn derived_application_type(&self) -> &'static str {
        let all_native = self.redirect_uris.iter().all(|u| match url::Url::parse(u) {
            Ok(p) => p.scheme() != "https" || crate::http::is_loopback(&p),
            Err(_) => true,
        });
        if all_native { "native" } else { "web" }
    }
}

/// Client information: the metadata plus what the authorization server
/// issued (RFC 7591 §3.2.1).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientInformationFull {
    /// The client identifier.
    pub client_id: String,
    /// The client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// When the client ID was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<i64>,
    /// When the secret expires (0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// The issuer that issued this client ID. Absent in stores written by other
    /// clients, in which case the information is taken to belong to the
    /// authorization server in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The registered metadata (any fields the server echoed back).
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
}

impl fmt::Debug for OAuthClientInformationFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientInformationFull")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OAuthClientInformationFull {
    /// Client information for a pre-registered client.
    pub fn new(client_id: impl Into<String>, client_secret: Option<Secret>) -> Self {
        OAuthClientInformationFull {
            client_id: client_id.into(),
            client_secret,
            client_id_issued_at: None,
            client_secret_expires_at: None,
            issuer: None,
            metadata: Map::new(),
        }
    }

    /// The registered `token_endpoint_auth_method`, if any.
    pub fn token_endpoint_auth_method(&self) -> Option<&str> {
        self.metadata.get("token_endpoint_auth_method").and_then(Value::as_str)
    }

    /// Set the registered `token_endpoint_auth_method`.
    pub fn set_token_endpoint_auth_method(&mut self, method: &str) {
        self.metadata
            .insert("token_endpoint_auth_method".into(), Value::String(method.into()));
    }

    /// Whether the secret has expired (RFC 7591 `client_secret_expires_at`).
    pub fn secret_expired(&self) -> bool {
        match self.client_secret_expires_at {
            Some(at) if at > 0 => now_unix() >= at as f64,
            _ => false,
        }
    }
}

/// RFC 9728 protected resource metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier.
    pub resource: String,
    /// Authorization servers that protect it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// RFC 8414 / OpenID Connect Discovery authorization server metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// The authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The RFC 7591 registration endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Response types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types_supported: Option<Vec<String>>,
    /// Grant types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Token endpoint client authentication methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// PKCE methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// Client ID Metadata Documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
    /// RFC 7009 revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 device authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuthorizationServerMetadata {
    /// Whether the server says it supports a scope.
    pub fn supports_scope(&self, scope: &str) -> bool {
        self.scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_roundtrip_sdk_schema_and_redaction() {
        let json = r#"{"access_token":"AT","token_type":"bearer","expires_in":60,"refresh_token":"RT","scope":"a b","id_token":"x"}"#;
        let t: OAuthToken = serde_json::from_str(json).unwrap();
        assert_eq!(t.access_token.expose(), "AT");
        assert_eq!(t.extra.get("id_token").unwrap(), "x");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("AT\"") && !dbg.contains("RT"), "{dbg}");
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["refresh_token"], "RT");
    }

    #[test]
    fn needs_refresh_uses_absolute_expiry_with_margin() {
        let mut t = OAuthToken::bearer("x");
        assert!(!t.needs_refresh());
        t.expires_in = Some(3600);
        t.stamp_expiry();
        assert!(!t.needs_refresh());
        t.expires_at = Some(now_unix() + 10.0);
        assert!(t.needs_refresh(), "within 30 s margin of a 1 h token");
        t.expires_in = Some(2);
        t.expires_at = Some(now_unix() + 1.5);
        assert!(!t.needs_refresh(), "a 2 s token gets a 0.2 s margin");
    }

    #[test]
    fn metadata_defaults_and_validation() {
        let m = OAuthClientMetadata::from_json(r#"{"redirect_uris":["http://localhost:3030/cb"]}"#).unwrap();
        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.response_types, vec!["code"]);
        assert_eq!(m.derived_application_type(), "native");
        let err = OAuthClientMetadata::from_json(r#"{"client_name":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("redirect_uris"), "{err}");
        let err = OAuthClientMetadata::from_json(r#"{"redirect_uris":["http://example.com/cb"]}"#).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let web = OAuthClientMetadata::new(vec!["https://app.example/cb".into()]);
        assert_eq!(web.derived_application_type(), "web");
    }

    #[test]
    fn client_info_debug_hides_secret() {
        let c = OAuthClientInformationFull::new("id", Some(Secret::new("s3cr3t")));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
