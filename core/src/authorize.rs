//! The authorization request and its response: PKCE (RFC 7636, S256 only),
//! `state`, the `resource` indicator (RFC 8707), and the callback checks,
//! including the issuer identification of RFC 9207.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::error::{Error, OAuthErrorFields, Result, Step};
use crate::model::Secret;

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::flow(Step::Authorization, format!("no system randomness: {e}")))?;
    Ok(buf)
}

/// A PKCE pair.
pub struct Pkce {
    /// The verifier (43–128 unreserved characters).
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair from the system's CSPRNG: 48 random bytes, a 64-character verifier.
    pub fn generate() -> Result<Self> {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<48>()?);
        let challenge = Self::challenge_for(&verifier);
        Ok(Pkce {
            verifier: Secret::new(verifier),
            challenge,
        })
    }

    /// The S256 challenge for a verifier.
    pub fn challenge_for(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }
}

/// A fresh `state` value.
pub fn generate_state() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// What the redirect back from the authorization server carried.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthorizationCodeResult {
    /// The authorization code (absent when the server sent an error).
    pub code: Option<Secret>,
    /// The `state` as it arrived.
    pub state: Option<String>,
    /// The `iss` as it arrived (RFC 9207).
    pub iss: Option<String>,
    /// The OAuth error, when the server redirected with `error=`.
    pub error: Option<OAuthErrorFields>,
    /// The handler could not report `iss` at all (its interface has no room
    /// for it, like an MCP Python SDK 1.x callback returning `(code,
    /// state)`), as opposed to reporting that the redirect had none: the
    /// RFC 9207 check is then impossible and is skipped with a warning, as
    /// that SDK skips it. Never set for a redirect the library read itself.
    pub iss_not_reported: bool,
}

impl std::fmt::Debug for AuthorizationCodeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCodeResult")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .field("iss_not_reported", &self.iss_not_reported)
            .finish()
    }
}

impl AuthorizationCodeResult {
    /// A successful result.
    pub fn new(code: impl Into<String>, state: Option<String>, iss: Option<String>) -> Self {
        AuthorizationCodeResult {
            code: Some(Secret::new(code)),
            state,
            iss,
            error: None,
            iss_not_reported: false,
        }
    }

    /// Read the result from the query of a redirect URL (or a bare query string).
    pub fn from_redirect(url_or_query: &str) -> Result<Self> {
        let query = match Url::parse(url_or_query) {
            Ok(u) => u.query().unwrap_or("").to_string(),
            Err(_) => url_or_query.trim_start_matches('?').to_string(),
        };
        Ok(Self::from_pairs(url::form_urlencoded::parse(query.as_bytes())))
    }

    pub(crate) fn from_pairs<'a>(
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Self {
        let mut r = AuthorizationCodeResult::default();
        let mut err = OAuthErrorFields::default();
        for (k, v) in pairs {
            match &*k {
                "code" if r.code.is_none() => r.code = Some(Secret::new(v.into_owned())),
                "state" if r.state.is_none() => r.state = Some(v.into_owned()),
                "iss" if r.iss.is_none() => r.iss = Some(v.into_owned()),
                "error" if err.error.is_empty() => err.error = v.into_owned(),
                "error_description" => err.error_description = Some(v.into_owned()),
                "error_uri" => err.error_uri = Some(v.into_owned()),
                _ => {}
            }
        }
        if !err.error.is_empty() {
            r.error = Some(err);
        }
        r
    }
}

/// Everything the client remembers between sending the person away and
/// their return.
pub struct PendingAuthorization {
    /// The URL to send the person to.
    pub url: Url,
    /// The state sent.
    pub state: String,
    /// The PKCE pair.
    pub pkce: Pkce,
    /// The redirect URI used.
    pub redirect_uri: String,
    /// The issuer the response must come from.
    pub expected_issuer: String,
    /// Whether that issuer promised to send `iss`.
    pub iss_supported: bool,
}

/// Parameters for the authorization URL.
pub struct AuthorizationParams<'a> {
    pub authorization_endpoint: &'a Url,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: Option<&'a str>,
    /// The RFC 8707 `resource`, unless the configuration omits it.
    pub resource: Option<&'a str>,
    pub expected_issuer: &'a str,
    pub iss_supported: bool,
    /// Extra query parameters a server needs (Auth0's `audience`); they never
    /// replace the ones this module sets.
    pub extra: &'a [(String, String)],
}

/// Build the authorization request.
pub fn build_authorization(p: AuthorizationParams<'_>) -> Result<PendingAuthorization> {
    let pkce = Pkce::generate()?;
    let state = generate_state()?;
    let mut url = p.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", p.client_id)
            .append_pair("redirect_uri", p.redirect_uri);
        if let Some(scope) = p.scope.filter(|s| !s.is_empty()) {
            q.append_pair("scope", scope);
        }
        q.append_pair("state", &state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(resource) = p.resource {
            q.append_pair("resource", resource);
        }
        const OURS: [&str; 9] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "resource",
            "iss",
        ];
        for (k, v) in p.extra {
            if !OURS.contains(&k.as_str()) {
                q.append_pair(k, v);
            }
        }
    }
    Ok(PendingAuthorization {
        url,
        state,
        pkce,
        redirect_uri: p.redirect_uri.to_string(),
        expected_issuer: p.expected_issuer.to_string(),
        iss_supported: p.iss_supported,
    })
}

/// Check the callback: `state` first (constant time), then the RFC 9207
/// issuer table, then an `error=` response, and finally the code.
pub fn validate_callback(pending: &PendingAuthorization, result: &AuthorizationCodeResult) -> Result<Secret> {
    let state_ok = match &result.state {
        Some(s) => bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())),
        None => false,
    };
    if !state_ok {
        return Err(Error::flow(
            Step::Callback,
            "the state in the redirect does not match the one sent; possible CSRF, refusing the response",
        ));
    }
    match (&result.iss, pending.iss_supported) {
        (Some(iss), _) => {
            if *iss != pending.expected_issuer {
                // The error_description of a mixed-up response is not shown.
                return Err(Error::flow(
                    Step::Callback,
                    format!(
                        "the iss in the redirect ({iss:?}) is not the authorization server's issuer ({:?}); possible mix-up attack, refusing the response",
                        pending.expected_issuer
                    ),
                ));
            }
        }
        (None, true) if result.iss_not_reported => {
            tracing::warn!(
                "the authorization server sends iss (RFC 9207), but the callback handler cannot report it \
                 (it returned only a code and a state); the issuer of the response is not checked"
            );
        }
        (None, true) => {
            return Err(Error::flow(
                Step::Callback,
                "the authorization server promised an iss parameter (RFC 9207) but the redirect has none; refusing the response",
            ));
        }
        (None, false) => {}
    }
    if let Some(err) = &result.error {
        return Err(Error::flow(
            Step::Authorization,
            format!("the authorization server answered with error {:?}", err.error),
        )
        .with_oauth(err.clone()));
    }
    match &result.code {
        Some(code) if !code.expose().is_empty() => Ok(code.clone()),
        _ => Err(Error::flow(
            Step::Callback,
            "the redirect carries no authorization code",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_vector() {
        assert_eq!(
            Pkce::challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate().unwrap();
        let v = p.verifier.expose();
        assert!((43..=128).contains(&v.len()));
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        assert_ne!(Pkce::generate().unwrap().verifier.expose(), v);
    }

    fn pending(iss_supported: bool) -> PendingAuthorization {
        let ep = Url::parse("https://as.ex/authorize?tenant=x").unwrap();
        build_authorization(AuthorizationParams {
            authorization_endpoint: &ep,
            client_id: "cid",
            redirect_uri: "http://127.0.0.1:3030/cb",
            scope: Some("read write"),
            resource: Some("https://mcp.ex/mcp"),
            expected_issuer: "https://as.ex",
            iss_supported,
            extra: &[
                ("audience".to_string(), "https://api.ex".to_string()),
                ("state".to_string(), "forged".to_string()),
            ],
        })
        .unwrap()
    }

    #[test]
    fn authorization_url_has_every_parameter() {
        let p = pending(true);
        let q: std::collections::HashMap<_, _> = p.url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "x");
        assert_eq!(q["audience"], "https://api.ex", "extra parameters are sent");
        assert_eq!(
            p.url.query_pairs().filter(|(k, _)| k == "state").count(),
            1,
            "an extra parameter never replaces one of ours"
        );
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:3030/cb");
        assert_eq!(q["scope"], "read write");
        assert_eq!(q["state"], p.state);
        assert_eq!(q["code_challenge"], Pkce::challenge_for(p.pkce.verifier.expose()));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["resource"], "https://mcp.ex/mcp");
    }

    #[test]
    fn iss_table() {
        // (advertised, iss sent, ok)
        let cases = [
            (true, Some("https://as.ex"), true),
            (true, Some("https://evil.ex"), false),
            (true, None, false),
            (false, Some("https://as.ex"), true),
            (false, Some("https://evil.ex"), false),
            (false, None, true),
            (false, Some("https://as.ex/"), false),
        ];
        for (adv, iss, ok) in cases {
            let p = pending(adv);
            let r = AuthorizationCodeResult::new("c", Some(p.state.clone()), iss.map(str::to_string));
            assert_eq!(validate_callback(&p, &r).is_ok(), ok, "advertised={adv} iss={iss:?}");
        }
        // A handler that cannot report iss at all: no check possible, none made;
        // an iss it does report is still compared.
        let p = pending(true);
        let mut r = AuthorizationCodeResult::new("c", Some(p.state.clone()), None);
        r.iss_not_reported = true;
        assert!(validate_callback(&p, &r).is_ok());
        r.iss = Some("https://evil.ex".into());
        assert!(validate_callback(&p, &r).is_err());
    }

    #[test]
    fn state_and_error_and_code() {
        let p = pending(false);
        let wrong = AuthorizationCodeResult::new("c", Some("nope".into()), None);
        assert!(validate_callback(&p, &wrong).unwrap_err().to_string().contains("state"));
        let missing = AuthorizationCodeResult::new("c", None, None);
        assert!(validate_callback(&p, &missing).is_err());
        let denied = AuthorizationCodeResult::from_redirect(&format!(
            "http://127.0.0.1:3030/cb?error=access_denied&error_description=no+way&state={}",
            p.state
        ))
        .unwrap();
        let e = validate_callback(&p, &denied).unwrap_err();
        assert_eq!(e.oauth_error(), Some("access_denied"));
        assert_eq!(e.oauth().unwrap().error_description.as_deref(), Some("no way"));
        let no_code = AuthorizationCodeResult {
            state: Some(p.state.clone()),
            ..Default::default()
        };
        assert!(
            validate_callback(&p, &no_code)
                .unwrap_err()
                .to_string()
                .contains("no authorization code")
        );
        let ok = AuthorizationCodeResult::from_redirect(&format!("?code=abc&state={}", p.state)).unwrap();
        assert_eq!(validate_callback(&p, &ok).unwrap().expose(), "abc");
    }

    #[test]
    fn debug_redacts_code() {
        let r = AuthorizationCodeResult::new("supersecretcode", Some("st".into()), None);
        assert!(!format!("{r:?}").contains("supersecretcode"));
    }
}
