//! The client credentials grant (RFC 6749 §4.4): no person, pre-registered
//! credentials (a secret, or `private_key_jwt` assertions).

use super::{SourceContext, TokenSource};
use crate::error::Result;
use crate::model::OAuthToken;
use crate::token::Grant;

/// Tokens for the client itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCredentials;

#[async_trait::async_trait]
impl TokenSource for ClientCredentials {
    fn name(&self) -> &'static str {
        "client_credentials"
    }

    fn needs_person(&self) -> bool {
        false
    }

    fn may_register(&self) -> bool {
        false
    }

    async fn obtain(&self, ctx: &SourceContext<'_>, scope: Option<&str>) -> Result<OAuthToken> {
        let grant = Grant::ClientCredentials {
            scope: scope.map(str::to_string),
        };
        ctx.request_token(&grant).await
    }
}
