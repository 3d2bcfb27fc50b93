//! Token binding: how a held token is presented to the resource server.
//!
//! A binding turns a token into the headers of one request. Bearer
//! (RFC 6750) sets `Authorization: Bearer …`; a proof-of-possession binding
//! (DPoP, RFC 9449) adds a per-request proof and plugs in here, beside the
//! token sources and without touching them.

use zeroize::Zeroize;

use crate::error::Result;
use crate::model::OAuthToken;

/// A header value that holds a secret, overwritten when dropped. Its bytes
/// are wiped as one slice (a `memset` the compiler may not remove), where
/// `Zeroizing<String>` writes them one volatile byte at a time: on the hot
/// path that costs more than everything else for a 1 KB token.
#[derive(Clone, PartialEq, Eq, Default)]
struct Wiped(String);

impl Drop for Wiped {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.as_mut_slice().zeroize();
        bytes.spare_capacity_mut().zeroize();
    }
}

/// The headers to set on one request. `Debug` never shows their values;
/// both are overwritten when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    authorization: Wiped,
    dpop: Option<Wiped>,
}

impl AuthHeaders {
    /// Headers with an `Authorization` value only.
    pub fn authorization_only(authorization: String) -> Self {
        AuthHeaders {
            authorization: Wiped(authorization),
            dpop: None,
        }
    }

    /// Headers with an `Authorization` value and a `DPoP` proof.
    pub fn with_proof(authorization: String, dpop: String) -> Self {
        AuthHeaders {
            authorization: Wiped(authorization),
            dpop: Some(Wiped(dpop)),
        }
    }

    /// The `Authorization` value.
    pub fn authorization(&self) -> &str {
        &self.authorization.0
    }

    /// The `DPoP` proof, when the binding makes one.
    pub fn dpop(&self) -> Option<&str> {
        self.dpop.as_ref().map(|d| d.0.as_str())
    }

    /// Every header as (lower-case name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once(("authorization", self.authorization.0.as_str()))
            .chain(self.dpop.as_ref().map(|d| ("dpop", d.0.as_str())))
    }

    /// The `Authorization` value, consuming the headers (the caller then
    /// owns the only copy).
    pub fn into_authorization(mut self) -> String {
        std::mem::take(&mut self.authorization.0)
    }
}

impl std::fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("authorization", &"[redacted]")
            .field("dpop", &self.dpop.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// How tokens are presented.
#[async_trait::async_trait]
pub trait TokenBinding: Send + Sync {
    /// Whether a token the token endpoint just issued (its `token_type`
    /// normalized to `Bearer` or `DPoP`) can be presented by this binding. A
    /// token response of another type is refused before anything is stored.
    fn accepts(&self, token: &OAuthToken) -> bool;

    /// Whether a stored token can be presented (a proof-of-possession token
    /// only with the key it is bound to).
    fn accepts_stored(&self, token: &OAuthToken) -> bool {
        self.accepts(token)
    }

    /// Record in a newly issued token what it is bound to, before it is stored.
    fn bind(&self, _token: &mut OAuthToken) {}

    /// Work done once per token, off the hot path (the `Authorization` value).
    fn prepare(&self, token: &OAuthToken) -> String;

    /// The headers of one request, from what [`TokenBinding::prepare`] made,
    /// without waiting: the hot path, no I/O. `None` when making them must
    /// wait (a proof signed by the host's callback).
    fn headers_now(&self, prepared: &str, method: &str, url: &str) -> Option<Result<AuthHeaders>>;

    /// The `Authorization` value when it is all a request carries (nothing
    /// per request, no proof): what [`TokenBinding::prepare`] made, as is.
    /// Lets a caller copy it once into a buffer of its own instead of
    /// receiving a new [`AuthHeaders`]. `None` (the default) when requests
    /// carry more.
    fn fixed_authorization<'a>(&self, _prepared: &'a str) -> Option<&'a str> {
        None
    }

    /// The headers of one request, waiting where it must.
    async fn headers(&self, prepared: &str, method: &str, url: &str) -> Result<AuthHeaders> {
        self.headers_now(prepared, method, url)
            .unwrap_or_else(|| Err(crate::error::Error::config("this binding cannot make headers")))
    }

    /// Headers for a token request to `token_endpoint` (a DPoP proof).
    async fn token_request_headers(&self, _token_endpoint: &url::Url) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// See a response from `url` (a DPoP binding keeps its `DPoP-Nonce`).
    /// Returns whether it changed what the next request carries.
    fn observe(&self, _url: &str, _headers: &[(String, String)]) -> bool {
        false
    }
}

/// RFC 6750 bearer tokens: the token, as is, in `Authorization`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bearer;

impl TokenBinding for Bearer {
    fn accepts(&self, token: &OAuthToken) -> bool {
        token.token_type.eq_ignore_ascii_case("bearer")
    }

    fn prepare(&self, token: &OAuthToken) -> String {
        format!("Bearer {}", token.access_token.expose())
    }

    fn headers_now(&self, prepared: &str, _method: &str, _url: &str) -> Option<Result<AuthHeaders>> {
        // One byte of spare capacity: the C ABI ends the value with a NUL in
        // place instead of reallocating (and copying) it on every request.
        let mut value = String::with_capacity(prepared.len() + 1);
        value.push_str(prepared);
        Some(Ok(AuthHeaders::authorization_only(value)))
    }

    fn fixed_authorization<'a>(&self, prepared: &'a str) -> Option<&'a str> {
        Some(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_presents_the_token_and_refuses_dpop_tokens() {
        let t = OAuthToken::bearer("abc");
        let prepared = Bearer.prepare(&t);
        let h = Bearer.headers_now(&prepared, "GET", "https://x/mcp").unwrap().unwrap();
        assert_eq!(h.authorization(), "Bearer abc");
        assert_eq!(h.iter().count(), 1);
        assert!(Bearer.accepts(&t));
        let mut dpop = t.clone();
        dpop.token_type = "DPoP".into();
        assert!(!Bearer.accepts(&dpop));
        assert!(!format!("{h:?}").contains("abc"));
    }
}
