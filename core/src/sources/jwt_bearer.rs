//! The JWT-bearer authorization grant (RFC 7523 §2.1): an assertion from
//! elsewhere (an enterprise identity provider's ID-JAG, a workload's platform
//! token) exchanged for an access token. No person takes part.

use std::sync::Arc;

use super::{SourceContext, TokenSource};
use crate::error::Result;
use crate::model::{OAuthToken, Secret};
use crate::token::Grant;

/// The RFC 7523 JWT-bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Makes the assertion of a JWT-bearer grant.
#[async_trait::async_trait]
pub trait GrantAssertion: Send + Sync {
    /// An assertion for the authorization server `ctx.discovered.issuer`
    /// and the resource `resource` (the MCP server).
    async fn assertion(&self, ctx: &SourceContext<'_>, resource: &str) -> Result<Secret>;
}

/// Tokens from assertions.
#[derive(Clone)]
pub struct JwtBearer {
    assertion: Arc<dyn GrantAssertion>,
}

impl JwtBearer {
    /// A source whose assertions come from `assertion`.
    pub fn new(assertion: Arc<dyn GrantAssertion>) -> Self {
        JwtBearer { assertion }
    }
}

impl std::fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtBearer")
    }
}

#[async_trait::async_trait]
impl TokenSource for JwtBearer {
    fn name(&self) -> &'static str {
        "jwt_bearer"
    }

    fn needs_person(&self) -> bool {
        false
    }

    fn may_register(&self) -> bool {
        false
    }

    async fn obtain(&self, ctx: &SourceContext<'_>, scope: Option<&str>) -> Result<OAuthToken> {
        let resource = ctx.resource.unwrap_or(&ctx.discovered.resource);
        let assertion = self.assertion.assertion(ctx, resource).await?;
        let grant = Grant::JwtBearer {
            assertion,
            scope: scope.map(str::to_string),
        };
        ctx.request_token(&grant).await
    }
}
