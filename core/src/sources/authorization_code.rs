//! The authorization-code grant with PKCE (OAuth 2.1 §4.1): a person
//! approves in a browser, the redirect comes back through the host's handler,
//! and the code is exchanged. The person's part (the redirect and the
//! callback) runs under one overall deadline; the exchange under the
//! per-request one.

use std::sync::Arc;
use std::time::Duration;

use super::{SourceContext, TokenSource};
use crate::authorize::{AuthorizationParams, build_authorization, validate_callback};
use crate::discovery::check_pkce_support;
use crate::error::{Error, ErrorKind, Result, Step};
use crate::handler::AuthorizationHandler;
use crate::http::parse_server_url;
use crate::model::OAuthToken;
use crate::token::Grant;

/// Tokens a person approves.
#[derive(Clone)]
pub struct AuthorizationCode {
    handler: Arc<dyn AuthorizationHandler>,
}

impl AuthorizationCode {
    /// A source that sends the person through `handler`.
    pub fn new(handler: Arc<dyn AuthorizationHandler>) -> Self {
        AuthorizationCode { handler }
    }
}

impl std::fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizationCode")
    }
}

fn handler_error(step: Step, e: Error) -> Error {
    match e.kind() {
        ErrorKind::Handler | ErrorKind::Network | ErrorKind::InvalidConfiguration => e,
        _ => Error::handler(step, format!("the {step} handler failed: {}", e.message())),
    }
}

fn deadline_error(limit: Duration) -> Error {
    Error::handler(
        Step::Callback,
        format!(
            "the authorization did not complete within {:.1} s (the person did not finish, or the redirect never came back)",
            limit.as_secs_f64()
        ),
    )
}

#[async_trait::async_trait]
impl TokenSource for AuthorizationCode {
    fn name(&self) -> &'static str {
        "authorization_code"
    }

    fn needs_person(&self) -> bool {
        true
    }

    fn may_register(&self) -> bool {
        true
    }

    async fn obtain(&self, ctx: &SourceContext<'_>, scope: Option<&str>) -> Result<OAuthToken> {
        let d = ctx.discovered;
        check_pkce_support(&d.server, ctx.assume_s256_when_pkce_unadvertised)?;
        let ep = d.server.authorization_endpoint.as_deref().ok_or_else(|| {
            Error::flow(
                Step::AuthorizationServerMetadata,
                "the authorization server metadata has no authorization_endpoint",
            )
        })?;
        let auth_endpoint = parse_server_url(ep, "authorization_endpoint", Step::Authorization)?;
        ctx.http
            .require_secure(&auth_endpoint, "authorization endpoint", Step::Authorization)?;
        let redirect_uri = ctx
            .client_metadata
            .redirect_uris
            .first()
            .cloned()
            .ok_or_else(|| Error::config("client metadata has no redirect_uris"))?;
        let pending = build_authorization(AuthorizationParams {
            authorization_endpoint: &auth_endpoint,
            client_id: &ctx.client.client_id,
            redirect_uri: &redirect_uri,
            scope,
            resource: ctx.resource,
            expected_issuer: &d.server.issuer,
            iss_supported: d.server.authorization_response_iss_parameter_supported == Some(true),
            extra: ctx.extra_authorization_params,
        })?;
        let limit = ctx.authorization_timeout;
        let person = async {
            tracing::info!(endpoint = %crate::http::redact_query(&auth_endpoint), "sending the person to the authorization endpoint");
            self.handler
                .redirect(&pending.url)
                .await
                .map_err(|e| handler_error(Step::Authorization, e))?;
            self.handler
                .callback()
                .await
                .map_err(|e| handler_error(Step::Callback, e))
        };
        // The person's step is given up when no request waits for it any
        // more (every caller cancelled); the exchange below is never.
        let person = crate::provider::flight::while_awaited(async {
            tokio::time::timeout(limit, person)
                .await
                .map_err(|_| deadline_error(limit))?
        });
        let result = person.await?;
        let code = validate_callback(&pending, &result)?;
        let grant = Grant::AuthorizationCode {
            code,
            redirect_uri: pending.redirect_uri.clone(),
            code_verifier: pending.pkce.verifier.clone(),
        };
        let token = ctx.request_token(&grant).await?;
        tracing::info!("obtained tokens with the authorization code");
        Ok(token)
    }
}
