//! Refresh (RFC 6749 §6), shared by every source's tokens. This is only the
//! request; what a failure means for the stored tokens (an outage keeps them,
//! `invalid_grant` drops them) is the engine's policy, in
//! `crate::provider::lifecycle`.

use super::SourceContext;
use crate::error::Result;
use crate::model::{OAuthToken, Secret};
use crate::token::Grant;

/// Send `refresh_token` with the scope held (Entra needs it) and the
/// resource. The answer keeps the old refresh token and scope when it omits
/// them.
pub async fn refresh(ctx: &SourceContext<'_>, refresh_token: &Secret, scope: Option<&str>) -> Result<OAuthToken> {
    let grant = Grant::RefreshToken {
        refresh_token: refresh_token.clone(),
        scope: scope.map(str::to_string),
    };
    let mut token = ctx.request_token(&grant).await?;
    if token.refresh_token.is_none() {
        token.refresh_token = Some(refresh_token.clone());
    }
    if token.scope.is_none() {
        token.scope = scope.map(str::to_string);
    }
    Ok(token)
}
