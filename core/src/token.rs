//! The token endpoint (RFC 6749 §3.2, §4.1.3, §5, §6): grants, client
//! authentication methods, and response parsing into tokens or structured
//! errors.
//!
//! Grants and client authentication are open sets: [`Grant`] and
//! [`ClientAuthentication`] carry what each needs, and new ones (JWT bearer,
//! token exchange, `private_key_jwt`) plug in beside the existing ones.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use url::Url;

use crate::binding::TokenBinding;
use crate::error::{Error, ErrorKind, OAuthErrorFields, Result, Step};
use crate::http::{Http, HttpResponse};
use crate::model::{OAuthToken, Secret};

/// A grant sent to the token endpoint.
#[non_exhaustive]
pub enum Grant {
    /// RFC 6749 §4.1.3.
    AuthorizationCode {
        code: Secret,
        redirect_uri: String,
        code_verifier: Secret,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Secret,
        scope: Option<String>,
    },
    /// RFC 6749 §4.4.
    ClientCredentials { scope: Option<String> },
    /// RFC 7523 §2.1 JWT bearer grant.
    JwtBearer { assertion: Secret, scope: Option<String> },
    /// RFC 8628 §3.4 device access token request.
    DeviceCode { device_code: Secret },
}

impl Grant {
    fn step(&self) -> Step {
        match self {
            Grant::AuthorizationCode { .. } => Step::TokenExchange,
            Grant::RefreshToken { .. } => Step::Refresh,
            Grant::DeviceCode { .. } => Step::DeviceAuthorization,
            _ => Step::Grant,
        }
    }

    fn form(&self, form: &mut Vec<(String, String)>) {
        let mut push = |k: &str, v: &str| form.push((k.to_string(), v.to_string()));
        match self {
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                push("grant_type", "authorization_code");
                push("code", code.expose());
                push("redirect_uri", redirect_uri);
                push("code_verifier", code_verifier.expose());
            }
            Grant::RefreshToken { refresh_token, scope } => {
                push("grant_type", "refresh_token");
                push("refresh_token", refresh_token.expose());
                if let Some(s) = scope.as_deref().filter(|s| !s.is_empty()) {
                    push("scope", s);
                }
            }
            Grant::ClientCredentials { scope } => {
                push("grant_type", "client_credentials");
                if let Some(s) = scope.as_deref().filter(|s| !s.is_empty()) {
                    push("scope", s);
                }
            }
            Grant::DeviceCode { device_code } => {
                push("grant_type", crate::sources::DEVICE_CODE_GRANT);
                push("device_code", device_code.expose());
            }
            Grant::JwtBearer { assertion, scope } => {
                push("grant_type", crate::sources::JWT_BEARER_GRANT);
                push("assertion", assertion.expose());
                if let Some(s) = scope.as_deref().filter(|s| !s.is_empty()) {
                    push("scope", s);
                }
            }
        }
    }
}

/// What a client authentication method may add to a token request.
pub struct TokenRequestParts<'a> {
    /// Form fields.
    pub form: &'a mut Vec<(String, String)>,
    /// Headers.
    pub headers: &'a mut Vec<(String, String)>,
    /// The token endpoint.
    pub token_endpoint: &'a Url,
    /// The authorization server's issuer (the `aud` of client assertions).
    pub issuer: &'a str,
}

/// A client authentication method at the token endpoint.
#[async_trait::async_trait]
pub trait ClientAuthenticator: Send + Sync {
    /// The RFC 7591 name of the method (`client_secret_basic`, ...).
    fn method(&self) -> &str;
    /// Add credentials to a request. May wait (for a signing service, or a
    /// host callback that makes the assertion).
    async fn apply(&self, parts: TokenRequestParts<'_>) -> Result<()>;
}

/// How the client authenticates at the token endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuthentication {
    /// A public client: `client_id` in the form.
    None { client_id: String },
    /// RFC 6749 §2.3.1 HTTP Basic with form-urlencoded id and secret.
    SecretBasic { client_id: String, client_secret: Secret },
    /// RFC 6749 §2.3.1 credentials in the form body.
    SecretPost { client_id: String, client_secret: Secret },
    /// Any other method, provided by the host or a later module.
    Custom(Arc<dyn ClientAuthenticator>),
}

impl std::fmt::Debug for ClientAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientAuthentication({})", self.method())
    }
}

fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `Authorization` header value of `client_secret_basic`: id and secret
/// are each form-urlencoded (RFC 6749 §2.3.1, Appendix B) before base64.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let raw = format!("{}:{}", form_urlencode(client_id), form_urlencode(client_secret));
    format!("Basic {}", STANDARD.encode(raw.as_bytes()))
}

impl ClientAuthentication {
    /// The RFC 7591 method name.
    pub fn method(&self) -> &str {
        match self {
            ClientAuthentication::None { .. } => "none",
            ClientAuthentication::SecretBasic { .. } => "client_secret_basic",
            ClientAuthentication::SecretPost { .. } => "client_secret_post",
            ClientAuthentication::Custom(c) => c.method(),
        }
    }

    /// Choose the method for a client: the registered one if known; for a
    /// client with a secret and none registered, `client_secret_basic` unless
    /// the server lists only `client_secret_post`.
    pub fn for_client(
        client_id: &str,
        client_secret: Option<&Secret>,
        registered_method: Option<&str>,
        server_methods: Option<&[String]>,
    ) -> Result<Self> {
        let id = client_id.to_string();
        let with_secret = |basic: bool| -> Result<Self> {
            let secret = client_secret.cloned().ok_or_else(|| {
                Error::config(format!(
                    "the client is registered for {} but has no client secret",
                    if basic {
                        "client_secret_basic"
                    } else {
                        "client_secret_post"
                    }
                ))
            })?;
            Ok(if basic {
                ClientAuthentication::SecretBasic {
                    client_id: id.clone(),
                    client_secret: secret,
                }
            } else {
                ClientAuthentication::SecretPost {
                    client_id: id.clone(),
                    client_secret: secret,
                }
            })
        };
        match registered_method {
            Some("none") => Ok(ClientAuthentication::None { client_id: id }),
            Some("client_secret_basic") => with_secret(true),
            Some("client_secret_post") => with_secret(false),
            Some(other) => Err(Error::config(format!(
                "token endpoint authentication method {other:?} is not available for this client"
            ))),
            None if client_secret.is_some() => {
                // RFC 7591 §2: an unregistered method means client_secret_basic,
                // unless the server says it takes only other methods.
                let listed = |m: &str| server_methods.is_some_and(|s| s.iter().any(|x| x == m));
                if server_methods.is_none() || listed("client_secret_basic") {
                    with_secret(true)
                } else if listed("client_secret_post") {
                    with_secret(false)
                } else if listed("none") {
                    Ok(ClientAuthentication::None { client_id: id })
                } else {
                    with_secret(true)
                }
            }
            None => Ok(ClientAuthentication::None { client_id: id }),
        }
    }

    /// Add this method's credentials to a token request.
    pub async fn apply(&self, parts: TokenRequestParts<'_>) -> Result<()> {
        match self {
            ClientAuthentication::None { client_id } => {
                parts.form.push(("client_id".into(), client_id.clone()));
            }
            ClientAuthentication::SecretBasic {
                client_id,
                client_secret,
            } => {
                parts.headers.push((
                    "authorization".into(),
                    basic_authorization(client_id, client_secret.expose()),
                ));
            }
            ClientAuthentication::SecretPost {
                client_id,
                client_secret,
            } => {
                parts.form.push(("client_id".into(), client_id.clone()));
                parts
                    .form
                    .push(("client_secret".into(), client_secret.expose().to_string()));
            }
            ClientAuthentication::Custom(c) => c.apply(parts).await?,
        }
        Ok(())
    }
}

/// Send a grant to the token endpoint and parse the answer. The binding adds
/// its proof (DPoP); when the server answers `use_dpop_nonce` with a new
/// nonce, the request is sent once more (RFC 9449 §8), built anew.
#[allow(clippy::too_many_arguments)]
pub async fn request_token(
    http: &Http,
    token_endpoint: &Url,
    issuer: &str,
    grant: &Grant,
    auth: &ClientAuthentication,
    resource: Option<&str>,
    extra_params: &[(String, String)],
    binding: &dyn TokenBinding,
) -> Result<OAuthToken> {
    let step = grant.step();
    http.require_secure(token_endpoint, "token endpoint", step)?;
    let mut retried = false;
    loop {
        let mut form = Vec::new();
        grant.form(&mut form);
        if let Some(r) = resource {
            form.push(("resource".into(), r.to_string()));
        }
        for (k, v) in extra_params {
            if !form.iter().any(|(name, _)| name == k) {
                form.push((k.clone(), v.clone()));
            }
        }
        let mut req = http.request("POST", token_endpoint.clone());
        req.headers
            .push(("content-type".into(), "application/x-www-form-urlencoded".into()));
        auth.apply(TokenRequestParts {
            form: &mut form,
            headers: &mut req.headers,
            token_endpoint,
            issuer,
        })
        .await?;
        req.headers.extend(binding.token_request_headers(token_endpoint).await?);
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        req.body = Some(body.into_bytes());
        let resp = http.send(req, step).await?;
        let new_nonce = binding.observe(token_endpoint.as_str(), &resp.headers);
        match parse_token_response(&resp, token_endpoint, step) {
            Err(e) if e.oauth_error() == Some("use_dpop_nonce") => {
                if new_nonce && !retried {
                    retried = true;
                    continue;
                }
                return Err(Error::new(
                    ErrorKind::Token,
                    step,
                    if retried {
                        "the authorization server asked for a new DPoP nonce again after one retry; giving up"
                    } else {
                        "the authorization server asks for a DPoP nonce (use_dpop_nonce) but sent no new one"
                    },
                )
                .with_status(resp.status)
                .with_url(token_endpoint));
            }
            other => return other,
        }
    }
}

/// The longest `expires_in` accepted: a year. A larger value is more likely a
/// server bug (milliseconds for seconds) or a hostile answer than a real
/// lifetime, and would keep a dead token in use for years.
pub const MAX_EXPIRES_IN: u64 = 365 * 24 * 3600;

/// Whether `s` is an RFC 6750 §2.1 `b64token`: what may follow `Bearer ` in a
/// header. Anything else (spaces, CR/LF, control characters) would corrupt
/// the header or smuggle another one.
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Parse a token response: a token on success, a structured error otherwise
/// (also when a server sends an error with HTTP 200).
///
/// An OAuth error body (RFC 6749 §5.2) is a refusal: kind `token`, unless the
/// server said it is unavailable (5xx, 429, `server_error` or
/// `temporarily_unavailable`). Anything else that is not a
/// usable token (a 5xx or 429, an HTML page, a malformed or hostile 200) is an
/// outage: kind `server`, with `Retry-After` when given. Nothing of a refused
/// response is kept.
fn success_object(resp: &HttpResponse, url: &Url, step: Step) -> Result<serde_json::Value> {
    let value = parse_body(resp);
    let unavailable = resp.status == 429 || resp.status >= 500;
    let outage = |message: &str| {
        Error::new(ErrorKind::Server, step, message.to_string())
            .with_status(resp.status)
            .with_url(url)
            .with_retry_after(crate::http::retry_after(resp))
    };
    if let Some(err) = value.as_ref().and_then(oauth_error_fields) {
        // RFC 6749 §4.1.2.1's codes for a server that cannot answer now, sent
        // by some token endpoints with a 400: an outage all the same.
        if unavailable || matches!(err.error.as_str(), "server_error" | "temporarily_unavailable") {
            return Err(outage("the token endpoint is unavailable").with_oauth(err));
        }
        return Err(
            Error::new(ErrorKind::Token, step, "the token endpoint refused the request")
                .with_status(resp.status)
                .with_url(url)
                .with_oauth(err),
        );
    }
    if !(200..300).contains(&resp.status) {
        return Err(outage("the token endpoint answered with an error status"));
    }
    let Some(value) = value else {
        return Err(outage("the token response is not a JSON object"));
    };
    Ok(value)
}

/// Parse a token response (see [`success_object`] for what is a refusal and
/// what an outage).
pub fn parse_token_response(resp: &HttpResponse, url: &Url, step: Step) -> Result<OAuthToken> {
    let value = success_object(resp, url, step)?;
    let outage = |message: &str| {
        Error::new(ErrorKind::Server, step, message.to_string())
            .with_status(resp.status)
            .with_url(url)
            .with_retry_after(crate::http::retry_after(resp))
    };
    // Checked on the JSON number, before it is read as an integer: a value
    // past what an integer holds (1e300) is absurd, not merely malformed.
    if let Some(e) = value.get("expires_in").and_then(serde_json::Value::as_f64) {
        if e < 0.0 {
            return Err(outage("the token response has a negative expires_in; refusing it"));
        }
        if e > MAX_EXPIRES_IN as f64 {
            return Err(outage(
                "the token response's expires_in is more than a year; refusing it",
            ));
        }
    }
    let mut token: OAuthToken = serde_json::from_value(value)
        .map_err(|e| outage(&format!("the token response is malformed ({})", strip_values(&e))))?;
    if token.access_token.expose().is_empty() {
        return Err(outage("the token response has an empty access_token"));
    }
    if !is_b64token(token.access_token.expose()) {
        return Err(outage(
            "the token response's access_token has characters a token cannot have (RFC 6750 b64token); refusing it",
        ));
    }
    if token
        .refresh_token
        .as_ref()
        .is_some_and(|r| r.expose().is_empty() || r.expose().chars().any(char::is_control))
    {
        return Err(outage(
            "the token response's refresh_token is empty or has control characters; refusing it",
        ));
    }
    if token.token_type.eq_ignore_ascii_case("bearer") {
        token.token_type = "Bearer".into();
    } else if token.token_type.eq_ignore_ascii_case("dpop") {
        token.token_type = "DPoP".into();
    } else {
        let shown: String = token.token_type.chars().filter(|c| !c.is_control()).take(40).collect();
        return Err(outage(&format!(
            "the token response has an unsupported token_type {shown:?}"
        )));
    }
    // What the server says about issuer and resource is not taken from the
    // response: the provider records where it asked.
    token.issuer = None;
    token.resource = None;
    token.expires_at = None;
    token.stamp_expiry();
    Ok(token)
}

// serde_json messages quote the offending value for some errors; keep only the
// category and position so a token never lands in an error message.
fn strip_values(e: &serde_json::Error) -> String {
    format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
}

pub(crate) fn parse_body(resp: &HttpResponse) -> Option<serde_json::Value> {
    let ct = resp.header("content-type").unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let map: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(&resp.body)
            .map(|(k, v)| {
                let v = if k == "expires_in" {
                    v.parse::<u64>()
                        .map(serde_json::Value::from)
                        .unwrap_or(serde_json::Value::String(v.into_owned()))
                } else {
                    serde_json::Value::String(v.into_owned())
                };
                (k.into_owned(), v)
            })
            .collect();
        return Some(serde_json::Value::Object(map));
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
    v.is_object().then_some(v)
}

/// The RFC 6749 §5.2 fields of a JSON error body.
pub fn oauth_error_fields(v: &serde_json::Value) -> Option<OAuthErrorFields> {
    let error = v.get("error")?.as_str()?.to_string();
    Some(OAuthErrorFields {
        error,
        error_description: v.get("error_description").and_then(|x| x.as_str()).map(str::to_string),
        error_uri: v.get("error_uri").and_then(|x| x.as_str()).map(str::to_string),
    })
}

/// The token of an RFC 8693 token exchange whose `issued_token_type` must be
/// `expected_type` (an ID-JAG: `token_type` is then `N_A`, RFC 8693 §2.2.1).
/// Errors as [`parse_token_response`].
pub fn parse_exchanged_token(resp: &HttpResponse, url: &Url, step: Step, expected_type: &str) -> Result<Secret> {
    let value = success_object(resp, url, step)?;
    let bad = |message: String| {
        Error::new(ErrorKind::Server, step, message)
            .with_status(resp.status)
            .with_url(url)
    };
    let issued = value.get("issued_token_type").and_then(serde_json::Value::as_str);
    if issued != Some(expected_type) {
        let shown: String = issued
            .unwrap_or("none")
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        return Err(bad(format!(
            "the token exchange issued a token of type {shown:?}, not {expected_type}"
        )));
    }
    let token = value
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| is_b64token(t))
        .ok_or_else(|| bad("the token exchange response has no usable access_token".into()))?;
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, ct: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), ct.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn url() -> Url {
        Url::parse("https://as.ex/token").unwrap()
    }

    #[test]
    fn basic_encoding_form_urlencodes_before_base64() {
        // RFC 6749 §2.3.1: "a:b c" / "p@ss:w/rd+" become a%3Ab+c / p%40ss%3Aw%2Frd%2B.
        let h = basic_authorization("a:b c", "p@ss:w/rd+");
        let raw = STANDARD.decode(h.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "a%3Ab+c:p%40ss%3Aw%2Frd%2B");
        assert_eq!(
            basic_authorization("id", "sec"),
            format!("Basic {}", STANDARD.encode("id:sec"))
        );
    }

    #[test]
    fn method_choice() {
        let s = Secret::new("x");
        let m = |reg: Option<&str>, secret: bool, server: Option<Vec<String>>| {
            ClientAuthentication::for_client("c", secret.then_some(&s), reg, server.as_deref())
                .map(|a| a.method().to_string())
        };
        assert_eq!(m(None, false, None).unwrap(), "none");
        assert_eq!(m(None, true, None).unwrap(), "client_secret_basic");
        assert_eq!(
            m(None, true, Some(vec!["client_secret_post".into()])).unwrap(),
            "client_secret_post"
        );
        assert_eq!(m(None, true, Some(vec!["none".into()])).unwrap(), "none");
        assert_eq!(m(Some("client_secret_post"), true, None).unwrap(), "client_secret_post");
        assert_eq!(m(Some("none"), true, None).unwrap(), "none");
        assert!(m(Some("client_secret_basic"), false, None).is_err());
        assert!(m(Some("tls_client_auth"), true, None).is_err());
    }

    #[test]
    fn token_parsing() {
        let t = parse_token_response(
            &resp(
                200,
                "application/json",
                r#"{"access_token":"a","token_type":"bearer","expires_in":3600,"refresh_token":"r"}"#,
            ),
            &url(),
            Step::TokenExchange,
        )
        .unwrap();
        assert_eq!(t.token_type, "Bearer");
        assert!(t.expires_at.unwrap() > crate::model::now_unix() + 3500.0);

        let e = parse_token_response(
            &resp(
                400,
                "application/json",
                r#"{"error":"invalid_grant","error_description":"bad code"}"#,
            ),
            &url(),
            Step::TokenExchange,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Token);
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.oauth_error(), Some("invalid_grant"));

        // GitHub style: error with HTTP 200, form-encoded.
        let e = parse_token_response(
            &resp(
                200,
                "application/x-www-form-urlencoded",
                "error=bad_verification_code&error_description=The+code",
            ),
            &url(),
            Step::TokenExchange,
        )
        .unwrap_err();
        assert_eq!(e.oauth_error(), Some("bad_verification_code"));
        let t = parse_token_response(
            &resp(
                200,
                "application/x-www-form-urlencoded",
                "access_token=gho_x&token_type=bearer&scope=repo",
            ),
            &url(),
            Step::TokenExchange,
        )
        .unwrap();
        assert_eq!(t.access_token.expose(), "gho_x");

        for bad in [
            resp(200, "application/json", "not json"),
            resp(200, "application/json", r#"{"token_type":"Bearer"}"#),
            resp(200, "application/json", r#"{"access_token":"","token_type":"Bearer"}"#),
            resp(200, "application/json", r#"{"access_token":"x","token_type":"mac"}"#),
            resp(500, "text/html", "<html>oops</html>"),
            resp(
                200,
                "application/json",
                r#"{"access_token":"SECRETVALUE","token_type":"Bearer","expires_in":"soon"}"#,
            ),
        ] {
            let e = parse_token_response(&bad, &url(), Step::Refresh).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Server, "{e}");
            assert!(!e.to_string().contains("SECRETVALUE"), "{e}");
        }
    }
}
