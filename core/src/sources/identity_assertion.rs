//! The JWT-bearer grant's assertions for the MCP extensions: an enterprise
//! identity provider's Identity Assertion JWT Authorization Grant (ID-JAG),
//! and a workload's platform token.
//!
//! Enterprise-managed authorization runs two legs. Leg 1 ([`IdJagExchange`])
//! is an RFC 8693 token exchange at the enterprise IdP: the user's ID token
//! for an ID-JAG whose audience is the MCP authorization server and whose
//! resource is the MCP server. Leg 2 is [`super::JwtBearer`] with that ID-JAG
//! at the MCP authorization server. Workload identity is leg 2 alone, with a
//! JWT the platform provides ([`JwtInput`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use url::Url;

use super::{GrantAssertion, SourceContext};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::model::{Secret, now_unix};
use crate::token::{ClientAuthentication, TokenRequestParts, parse_exchanged_token};

/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an OpenID Connect ID token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The token type of an Identity Assertion JWT Authorization Grant.
pub const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// A function giving a fresh JWT.
pub type JwtFn = Arc<dyn Fn() -> BoxFuture<'static, Result<Secret>> + Send + Sync>;

/// A JWT the host provides: a value, a file (re-read when it changes, as
/// Kubernetes and cloud platforms rotate projected tokens), or a function
/// (called again once the JWT it gave has expired).
#[derive(Clone)]
pub enum JwtInput {
    /// A fixed JWT.
    Fixed(Secret),
    /// A file holding the JWT.
    File(PathBuf),
    /// The host's function.
    Callback(JwtFn),
}

impl std::fmt::Debug for JwtInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtInput::Fixed(_) => f.write_str("JwtInput::Fixed([redacted])"),
            JwtInput::File(p) => f.debug_tuple("JwtInput::File").field(p).finish(),
            JwtInput::Callback(_) => f.write_str("JwtInput::Callback"),
        }
    }
}

/// The `exp` of a JWT, read without verifying (the issuer's audience
/// verifies; the client only avoids sending what is known to be stale).
fn jwt_exp(jwt: &str) -> Option<u64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_f64().map(|e| e.max(0.0) as u64)
}

/// Reads a [`JwtInput`], caching what a file or callback gave.
pub struct JwtReader {
    input: JwtInput,
    what: &'static str,
    step: Step,
    cache: Mutex<Option<(Secret, Option<SystemTime>)>>,
}

impl std::fmt::Debug for JwtReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtReader")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl JwtReader {
    /// A reader of `input`; `what` names it in errors ("the ID token").
    pub fn new(input: JwtInput, what: &'static str, step: Step) -> Self {
        JwtReader {
            input,
            what,
            step,
            cache: Mutex::new(None),
        }
    }

    fn fresh(jwt: &Secret) -> bool {
        jwt_exp(jwt.expose()).is_none_or(|exp| exp as f64 > now_unix() + 5.0)
    }

    fn check(&self, jwt: Secret) -> Result<Secret> {
        let t = jwt.expose().trim();
        if t.is_empty() || !crate::token::is_b64token(t) {
            return Err(Error::new(
                ErrorKind::InvalidConfiguration,
                self.step,
                format!("{} is empty or not a JWT", self.what),
            ));
        }
        if !Self::fresh(&jwt) {
            return Err(Error::new(
                ErrorKind::InvalidConfiguration,
                self.step,
                format!("{} has expired; give a fresh one", self.what),
            ));
        }
        Ok(Secret::new(t))
    }

    /// The JWT to send now.
    pub async fn read(&self) -> Result<Secret> {
        match &self.input {
            JwtInput::Fixed(s) => self.check(s.clone()),
            JwtInput::File(path) => {
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                if let Some((jwt, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    if *at == modified && modified.is_some() && Self::fresh(jwt) {
                        return Ok(jwt.clone());
                    }
                }
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidConfiguration,
                        self.step,
                        format!("{} cannot be read from {} ({})", self.what, path.display(), e.kind()),
                    )
                })?;
                let jwt = self.check(Secret::new(text))?;
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((jwt.clone(), modified));
                Ok(jwt)
            }
            JwtInput::Callback(f) => {
                if let Some((jwt, _)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    if jwt_exp(jwt.expose()).is_some() && Self::fresh(jwt) {
                        return Ok(jwt.clone());
                    }
                }
                let jwt = f().await.map_err(|e| {
                    Error::handler(
                        self.step,
                        format!("the callback giving {} failed: {}", self.what, e.message()),
                    )
                })?;
                let jwt = self.check(jwt)?;
                *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((jwt.clone(), None));
                Ok(jwt)
            }
        }
    }
}

/// A workload's own JWT as the assertion (workload identity federation):
/// no secret, the platform vouches for the workload.
#[derive(Debug)]
pub struct WorkloadToken {
    reader: JwtReader,
}

impl WorkloadToken {
    /// Assertions from `input`.
    pub fn new(input: JwtInput) -> Self {
        WorkloadToken {
            reader: JwtReader::new(input, "the workload identity token", Step::Grant),
        }
    }
}

#[async_trait::async_trait]
impl GrantAssertion for WorkloadToken {
    async fn assertion(&self, _ctx: &SourceContext<'_>, _resource: &str) -> Result<Secret> {
        self.reader.read().await
    }
}

/// The enterprise identity provider of leg 1.
#[derive(Clone)]
pub struct IdentityProvider {
    /// Its token endpoint (HTTPS, or loopback).
    pub token_endpoint: Url,
    /// How this client authenticates there (often a client of its own);
    /// `None` sends no client credentials.
    pub client_auth: Option<ClientAuthentication>,
    /// Its issuer, for client assertions; the token endpoint's origin when unset.
    pub issuer: Option<String>,
}

impl IdentityProvider {
    /// The IdP at `token_endpoint`, where this client is `client_id` (sent
    /// in the form) or, with a secret, authenticates with
    /// `client_secret_basic`; with neither, no client credentials are sent.
    pub fn new(token_endpoint: &str, client_id: Option<String>, client_secret: Option<Secret>) -> Result<Self> {
        let token_endpoint = Url::parse(token_endpoint).map_err(|e| {
            Error::config(format!(
                "the identity provider's token endpoint {token_endpoint:?} is not a URL ({e})"
            ))
        })?;
        let client_auth = match (client_id.filter(|c| !c.is_empty()), client_secret) {
            (Some(client_id), Some(client_secret)) => Some(ClientAuthentication::SecretBasic {
                client_id,
                client_secret,
            }),
            (Some(client_id), None) => Some(ClientAuthentication::None { client_id }),
            (None, Some(_)) => {
                return Err(Error::config(
                    "a client secret at the identity provider needs its client ID",
                ));
            }
            (None, None) => None,
        };
        Ok(IdentityProvider {
            token_endpoint,
            client_auth,
            issuer: None,
        })
    }
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("token_endpoint", &self.token_endpoint.as_str())
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// Leg 1 of enterprise-managed authorization: the user's ID token exchanged
/// at the IdP (RFC 8693) for an ID-JAG for the MCP authorization server and
/// the MCP server. A new ID-JAG is obtained for each grant; the ID token is
/// read again (from the host's callback) once it has expired.
#[derive(Debug)]
pub struct IdJagExchange {
    idp: IdentityProvider,
    id_token: JwtReader,
    scope: Option<String>,
}

impl IdJagExchange {
    /// Exchanges at `idp`, with the ID token from `id_token`, asking for
    /// `scope` in the ID-JAG when given.
    pub fn new(idp: IdentityProvider, id_token: JwtInput, scope: Option<String>) -> Self {
        IdJagExchange {
            idp,
            id_token: JwtReader::new(id_token, "the ID token", Step::IdentityAssertion),
            scope,
        }
    }
}

#[async_trait::async_trait]
impl GrantAssertion for IdJagExchange {
    async fn assertion(&self, ctx: &SourceContext<'_>, resource: &str) -> Result<Secret> {
        let step = Step::IdentityAssertion;
        let endpoint = &self.idp.token_endpoint;
        crate::http::require_secure(endpoint, "identity provider token endpoint", step)?;
        let id_token = self.id_token.read().await?;
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), TOKEN_EXCHANGE_GRANT.into()),
            ("requested_token_type".into(), ID_JAG_TYPE.into()),
            ("audience".into(), ctx.discovered.issuer.clone()),
            ("resource".into(), resource.to_string()),
            ("subject_token".into(), id_token.expose().to_string()),
            ("subject_token_type".into(), ID_TOKEN_TYPE.into()),
        ];
        if let Some(s) = self.scope.as_deref().filter(|s| !s.is_empty()) {
            form.push(("scope".into(), s.to_string()));
        }
        let mut req = ctx.http.request("POST", endpoint.clone());
        req.headers
            .push(("content-type".into(), "application/x-www-form-urlencoded".into()));
        let issuer = self
            .idp
            .issuer
            .clone()
            .unwrap_or_else(|| endpoint.origin().ascii_serialization());
        if let Some(auth) = &self.idp.client_auth {
            auth.apply(TokenRequestParts {
                form: &mut form,
                headers: &mut req.headers,
                token_endpoint: endpoint,
                issuer: &issuer,
            })
            .await?;
        }
        req.body = Some(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter())
                .finish()
                .into_bytes(),
        );
        let resp = ctx.http.send(req, step).await?;
        parse_exchanged_token(&resp, endpoint, step, ID_JAG_TYPE).map_err(|e| {
            if e.kind() == ErrorKind::Token {
                let m = "the identity provider refused to exchange the ID token for an ID-JAG";
                let mut err = Error::new(ErrorKind::Token, step, m).with_url(endpoint);
                if let Some(o) = e.oauth() {
                    err = err.with_oauth(o.clone());
                }
                if let Some(s) = e.status() {
                    err = err.with_status(s);
                }
                err
            } else {
                e
            }
        })
    }
}
