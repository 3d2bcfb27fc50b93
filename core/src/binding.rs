//! Token binding: how a held token is presented to the resource server.
//!
//! A binding turns a token into the headers of one request. Bearer
//! (RFC 6750) sets `Authorization: Bearer …`; a proof-of-possession binding
//! (DPoP, RFC 9449) adds a per-request proof and plugs in here, beside the
//! token sources and without touching them.

use crate::error::Result;
use crate::model::OAuthToken;

/// The headers to set on one request. `Debug` never shows their values.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    authorization: String,
    dpop: Option<String>,
}

impl AuthHeaders {
    /// Headers with an `Authorization` value only.
    pub fn authorization_only(authorization: String) -> Self {
        AuthHeaders {
            authorization,
            dpop: None,
        }
    }

    /// Headers with an `Authorization` value and a `DPoP` proof.
    pub fn with_proof(authorization: String, dpop: String) -> Self {
        AuthHeaders {
            authorization,
            dpop: Some(dpop),
        }
    }

    /// The `Authorization` value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The `DPoP` proof, when the binding makes one.
    pub fn dpop(&self) -> Option<&str> {
        self.dpop.as_deref()
    }

    /// Every header as (lower-case name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once(("authorization", self.authorization.as_str())).chain(self.dpop.as_deref().map(|d| ("dpop", d)))
    }

    /// The `Authorization` value, consuming the headers.
    pub fn into_authorization(self) -> String {
        self.authorization
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
pub trait TokenBinding: Send + Sync {
    /// Whether a token of `token_type` (as the token endpoint named it,
    /// normalized to `Bearer` or `DPoP`) can be presented by this binding. A
    /// token response of another type is refused before anything is stored.
    fn accepts(&self, token_type: &str) -> bool;

    /// Work done once per token, off the hot path (the `Authorization` value).
    fn prepare(&self, token: &OAuthToken) -> String;

    /// The headers of one request, from what [`TokenBinding::prepare`] made.
    /// This is the hot path: no I/O, no waiting.
    fn headers(&self, prepared: &str, method: &str, url: &str) -> Result<AuthHeaders>;
}

/// RFC 6750 bearer tokens: the token, as is, in `Authorization`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bearer;

impl TokenBinding for Bearer {
    fn accepts(&self, token_type: &str) -> bool {
        token_type.eq_ignore_ascii_case("bearer")
    }

    fn prepare(&self, token: &OAuthToken) -> String {
        format!("Bearer {}", token.access_token.expose())
    }

    fn headers(&self, prepared: &str, _method: &str, _url: &str) -> Result<AuthHeaders> {
        Ok(AuthHeaders::authorization_only(prepared.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_presents_the_token_and_refuses_dpop_tokens() {
        let t = OAuthToken::bearer("abc");
        let prepared = Bearer.prepare(&t);
        let h = Bearer.headers(&prepared, "GET", "https://x/mcp").unwrap();
        assert_eq!(h.authorization(), "Bearer abc");
        assert_eq!(h.iter().count(), 1);
        assert!(Bearer.accepts("Bearer"));
        assert!(!Bearer.accepts("DPoP"));
        assert!(!format!("{h:?}").contains("abc"));
    }
}
