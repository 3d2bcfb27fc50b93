//! Logging out: revoking the tokens at the authorization server (RFC 7009)
//! and forgetting them.
//!
//! The refresh token is revoked first (RFC 7009 §2.1: a server revoking it
//! should also revoke the access tokens of the same grant), then the access
//! token. Tokens are sent only to the authorization server that issued them,
//! authenticated as the client that holds them. If revoking the refresh
//! token fails, nothing is deleted: the person can try again, since the token
//! would otherwise stay valid at the server with no copy left to revoke it.

use url::Url;

use super::{Inner, State};
use crate::discovery::same_issuer;
use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, parse_server_url};
use crate::model::{OAuthToken, Secret};
use crate::storage::{CasOutcome, Version, fingerprint};
use crate::token::{ClientAuthentication, TokenRequestParts};

/// What [`OAuthClientProvider::logout`](super::OAuthClientProvider::logout) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutOutcome {
    /// Whether any tokens were held (stored, or in memory).
    pub had_tokens: bool,
    /// The revocation endpoint the tokens were sent to; `None` when nothing
    /// was revoked (no tokens, or the authorization server advertises no
    /// `revocation_endpoint`, or the tokens came from another server).
    pub revocation_endpoint: Option<String>,
    /// Whether the authorization server accepted the revocation of the
    /// refresh token.
    pub refresh_token_revoked: bool,
    /// Whether it accepted the revocation of the access token.
    pub access_token_revoked: bool,
    /// Whether the store holds no tokens for the server now. `false` for a
    /// store that cannot remove them (one with only the SDKs' four methods):
    /// the provider then ignores them from now on.
    pub removed: bool,
    /// Why nothing was revoked at the server, when tokens were held and
    /// nothing was; for the person.
    pub not_revoked_because: Option<String>,
}

fn refusal(step: Step, endpoint: &Url, resp: &crate::http::HttpResponse) -> Error {
    let value = crate::token::parse_body(resp);
    let oauth = value.as_ref().and_then(crate::token::oauth_error_fields);
    let unavailable = resp.status == 429
        || resp.status >= 500
        || oauth
            .as_ref()
            .is_some_and(|o| matches!(o.error.as_str(), "server_error" | "temporarily_unavailable"));
    let mut e = if unavailable {
        Error::new(ErrorKind::Server, step, "the revocation endpoint is unavailable")
            .with_retry_after(crate::http::retry_after(resp))
    } else if oauth.is_some() {
        Error::new(ErrorKind::Token, step, "the revocation endpoint refused the request")
    } else {
        Error::new(
            ErrorKind::Server,
            step,
            "the revocation endpoint answered with an error status",
        )
    };
    e = e.with_status(resp.status).with_url(endpoint);
    if let Some(o) = oauth {
        e = e.with_oauth(o);
    }
    e
}

/// Revoke one token (RFC 7009 §2.1).
async fn revoke_one(
    http: &Http,
    endpoint: &Url,
    issuer: &str,
    auth: &ClientAuthentication,
    token: &Secret,
    hint: &str,
) -> Result<()> {
    let step = Step::Revocation;
    let mut form: Vec<(String, String)> = vec![
        ("token".into(), token.expose().to_string()),
        ("token_type_hint".into(), hint.to_string()),
    ];
    let mut req = http.request("POST", endpoint.clone());
    req.headers
        .push(("content-type".into(), "application/x-www-form-urlencoded".into()));
    auth.apply(TokenRequestParts {
        form: &mut form,
        headers: &mut req.headers,
        token_endpoint: endpoint,
        issuer,
    })
    .await?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    req.body = Some(body.into_bytes());
    let resp = http.send(req, step).await?;
    if (200..300).contains(&resp.status) {
        return Ok(());
    }
    Err(refusal(step, endpoint, &resp))
}

impl Inner {
    /// The flight's body of a log-out.
    pub(crate) async fn logout(self: std::sync::Arc<Self>, http: Http) -> Result<LogoutOutcome> {
        let mut st = self.state.lock().await;
        let mut out = LogoutOutcome::default();
        let stored = self.storage.load_tokens().await?;
        st.loaded = true;
        let held = self.current.load_full().map(|h| h.token.clone());
        let (token, version): (Option<OAuthToken>, Version) = match stored.value {
            Some(t) => (Some(t), stored.version),
            None => (held, Version::ABSENT),
        };
        let Some(token) = token else {
            self.current.store(None);
            out.removed = true;
            return Ok(out);
        };
        out.had_tokens = true;
        self.revoke_at_server(&mut st, &http, &token, &mut out).await?;
        self.forget_tokens(&mut st, &token, version, &mut out).await?;
        Ok(out)
    }

    async fn revoke_at_server(
        &self,
        st: &mut State,
        http: &Http,
        token: &OAuthToken,
        out: &mut LogoutOutcome,
    ) -> Result<()> {
        let step = Step::Revocation;
        let d = self.discovered(st, http, None).await?;
        if let Some(issuer) = &token.issuer {
            if !same_issuer(issuer, &d.issuer) {
                out.not_revoked_because = Some(format!(
                    "the tokens were issued by {issuer}, not by the server's authorization server now ({}); they are not sent there",
                    d.issuer
                ));
                return Ok(());
            }
        }
        let Some(ep) = d.server.revocation_endpoint.as_deref() else {
            out.not_revoked_because = Some(
                "the authorization server advertises no revocation_endpoint (RFC 7009); the tokens stay valid there until they expire"
                    .into(),
            );
            return Ok(());
        };
        let endpoint = parse_server_url(ep, "revocation_endpoint", step)?;
        http.require_secure(&endpoint, "revocation endpoint", step)?;
        let Some(identity) = self.existing_client(st, &d).await? else {
            out.not_revoked_because = Some(
                "no client registration for this authorization server is stored or configured, so the client cannot authenticate to revoke"
                    .into(),
            );
            return Ok(());
        };
        let auth = self.client_auth(&identity.info, &d)?;
        out.revocation_endpoint = Some(endpoint.to_string());
        if let Some(rt) = &token.refresh_token {
            revoke_one(http, &endpoint, &d.issuer, &auth, rt, "refresh_token")
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "revoking the refresh token failed; nothing was deleted");
                    e
                })?;
            out.refresh_token_revoked = true;
            tracing::info!("revoked the refresh token");
        }
        match revoke_one(http, &endpoint, &d.issuer, &auth, &token.access_token, "access_token").await {
            Ok(()) => {
                out.access_token_revoked = true;
                tracing::info!("revoked the access token");
            }
            // The refresh token is revoked: the access token dies with it, or
            // expires soon. Some servers revoke only refresh tokens
            // (unsupported_token_type).
            Err(e) if out.refresh_token_revoked => {
                tracing::warn!(error = %e, "revoking the access token failed; it expires on its own");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn forget_tokens(
        &self,
        st: &mut State,
        token: &OAuthToken,
        version: Version,
        out: &mut LogoutOutcome,
    ) -> Result<()> {
        st.dead_tokens.insert(fingerprint(token));
        self.current.store(None);
        if version == Version::ABSENT {
            out.removed = true;
            return Ok(());
        }
        match self.storage.compare_and_set_tokens(version, None).await? {
            CasOutcome::Stored(_) => {
                out.removed = self.storage.load_tokens().await?.value.is_none();
                if !out.removed {
                    tracing::info!("the store cannot remove tokens; they are ignored from now on");
                }
                Ok(())
            }
            CasOutcome::Conflict(_) => Err(Error::storage(
                "another process stored new tokens for this server during the log-out; log out again",
            )
            .in_step(Step::Revocation)),
        }
    }
}
