//! The device authorization grant (RFC 8628): for hosts where the person
//! cannot be sent to a browser on the same machine (an SSH session, a
//! container, a television). The client asks the authorization server for a
//! user code, the host shows it with the verification URI, the person
//! approves on another device, and the client polls the token endpoint
//! meanwhile.
//!
//! The device authorization response is checked before anything of it is
//! shown or used: a verification URI that is HTTPS (plain http only on
//! loopback or an allowed development host) and has no credentials in it, a
//! short printable user code, and a lifetime and polling interval within
//! sane bounds. Polling honours `interval` (5 s when absent) and adds 5 s on
//! each `slow_down`; it ends with a clear error on `expired_token`,
//! `access_denied`, the code's own expiry or the provider's
//! `authorization_timeout`, and stops at once when nobody waits for it any
//! more (the operation was cancelled).

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{SourceContext, TokenSource};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::parse_server_url;
use crate::model::{AuthorizationServerMetadata, OAuthToken, Secret};
use crate::token::{Grant, TokenRequestParts};

/// The grant type of the device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest `expires_in` of a device code accepted: an hour. Real servers
/// give 5 to 30 minutes; more would keep the client polling for a code
/// nobody approves.
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest polling `interval` accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The longest user code accepted, in characters. Codes are typed by hand:
/// RFC 8628 §6.1 suggests about 8 characters.
pub const MAX_USER_CODE_LEN: usize = 32;

const MAX_URI_LEN: usize = 2048;
const MAX_DEVICE_CODE_LEN: usize = 4096;

/// What the person needs to approve on another device, as the authorization
/// server sent it (checked).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code the person enters at `verification_uri`: short, printable
    /// ASCII.
    pub user_code: String,
    /// Where the person goes to enter the code (HTTPS).
    pub verification_uri: Url,
    /// The same with the code in it, for a QR code or a link, when the server
    /// gives one.
    pub verification_uri_complete: Option<Url>,
    /// How long the code is valid, from when the server answered.
    pub expires_in: Duration,
    /// How often the client asks whether the person approved.
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The user code is for the person's eyes, not for logs.
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri.as_str())
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The host's part of the device flow: show the person the code and where to
/// enter it.
#[async_trait::async_trait]
pub trait DeviceCodeHandler: Send + Sync {
    /// Show `authorization` to the person (print it, draw a QR code of
    /// `verification_uri_complete`, ...). Called once per device code, before
    /// polling starts; polling waits for it to return. An error ends the
    /// flow with that error.
    async fn show(&self, authorization: &DeviceAuthorization) -> Result<()>;
}

/// Tokens a person approves on another device.
#[derive(Clone)]
pub struct DeviceCode {
    handler: Arc<dyn DeviceCodeHandler>,
}

impl DeviceCode {
    /// A source that shows the code through `handler`.
    pub fn new(handler: Arc<dyn DeviceCodeHandler>) -> Self {
        DeviceCode { handler }
    }
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCode")
    }
}

fn refuse(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Server, Step::DeviceAuthorization, message)
}

/// A value a server sent, safe to quote in an error: printable, short.
fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(60).collect()
}

fn check_uri(ctx: &SourceContext<'_>, s: &str, what: &str) -> Result<Url> {
    if s.len() > MAX_URI_LEN {
        return Err(refuse(format!(
            "the device authorization response's {what} is longer than {MAX_URI_LEN} characters; refusing it"
        )));
    }
    let url = parse_server_url(s, what, Step::DeviceAuthorization)?;
    ctx.http.require_secure(&url, what, Step::DeviceAuthorization)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(format!(
            "the device authorization response's {what} has credentials in it; refusing it"
        )));
    }
    Ok(url)
}

fn seconds(v: Option<&serde_json::Value>, what: &str) -> Result<Option<u64>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            refuse(format!(
                "the device authorization response's {what} is not a whole number of seconds; refusing it"
            ))
        }),
    }
}

/// Check a device authorization response (RFC 8628 §3.2) strictly. Returns
/// the device code and what the person needs.
pub(crate) fn parse_device_authorization(
    ctx: &SourceContext<'_>,
    value: &serde_json::Value,
) -> Result<(Secret, DeviceAuthorization)> {
    let text = |k: &str| value.get(k).and_then(serde_json::Value::as_str);
    let device_code = text("device_code").unwrap_or("");
    if device_code.is_empty()
        || device_code.len() > MAX_DEVICE_CODE_LEN
        || !device_code.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(refuse(
            "the device authorization response has no usable device_code (missing, empty, too long or with non-printable characters); refusing it",
        ));
    }
    let user_code = text("user_code").unwrap_or("");
    let user_code_ok = !user_code.trim().is_empty()
        && user_code.chars().count() <= MAX_USER_CODE_LEN
        && user_code.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !user_code_ok {
        return Err(refuse(format!(
            "the device authorization response has no usable user_code (it must be 1 to {MAX_USER_CODE_LEN} printable ASCII characters); refusing it"
        )));
    }
    let Some(verification_uri) = text("verification_uri") else {
        return Err(refuse(
            "the device authorization response has no verification_uri; refusing it",
        ));
    };
    let verification_uri = check_uri(ctx, verification_uri, "verification_uri")?;
    let verification_uri_complete = match value.get("verification_uri_complete") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let s = v.as_str().ok_or_else(|| {
                refuse("the device authorization response's verification_uri_complete is not a string; refusing it")
            })?;
            Some(check_uri(ctx, s, "verification_uri_complete")?)
        }
    };
    let expires_in = seconds(value.get("expires_in"), "expires_in")?
        .ok_or_else(|| refuse("the device authorization response has no expires_in; refusing it"))?;
    let expires_in = Duration::from_secs(expires_in);
    if expires_in.is_zero() || expires_in > MAX_DEVICE_CODE_LIFETIME {
        return Err(refuse(format!(
            "the device authorization response's expires_in ({} s) is not between 1 s and {} s; refusing it",
            expires_in.as_secs(),
            MAX_DEVICE_CODE_LIFETIME.as_secs()
        )));
    }
    let interval = seconds(value.get("interval"), "interval")?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_INTERVAL);
    if interval.is_zero() || interval > MAX_INTERVAL || interval >= expires_in {
        return Err(refuse(format!(
            "the device authorization response's interval ({} s) is not between 1 s and {} s and shorter than the code's lifetime; refusing it",
            interval.as_secs(),
            MAX_INTERVAL.as_secs()
        )));
    }
    Ok((
        Secret::new(device_code),
        DeviceAuthorization {
            user_code: user_code.to_string(),
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
        },
    ))
}

/// Ask the device authorization endpoint for a code (RFC 8628 §3.1), as the
/// client, with the scope and resource.
pub(crate) async fn request_device_code(
    ctx: &SourceContext<'_>,
    endpoint: &Url,
    scope: Option<&str>,
) -> Result<(Secret, DeviceAuthorization)> {
    let step = Step::DeviceAuthorization;
    let mut form: Vec<(String, String)> = Vec::new();
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        form.push(("scope".into(), s.to_string()));
    }
    if let Some(r) = ctx.resource {
        form.push(("resource".into(), r.to_string()));
    }
    for (k, v) in ctx.extra_authorization_params {
        if !form.iter().any(|(name, _)| name == k) && k != "client_id" {
            form.push((k.clone(), v.clone()));
        }
    }
    let mut req = ctx.http.request("POST", endpoint.clone());
    req.headers
        .push(("content-type".into(), "application/x-www-form-urlencoded".into()));
    ctx.client_auth
        .apply(TokenRequestParts {
            form: &mut form,
            headers: &mut req.headers,
            token_endpoint: endpoint,
            issuer: &ctx.discovered.issuer,
        })
        .await?;
    // Public clients send their client_id in the form; every client does here
    // (RFC 8628 §3.1), authenticated ones as well.
    if !form.iter().any(|(k, _)| k == "client_id") {
        form.push(("client_id".into(), ctx.client.client_id.clone()));
    }
    req.body = Some(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish()
            .into_bytes(),
    );
    let resp = ctx.http.send(req, step).await?;
    let value = crate::token::parse_body(&resp);
    let outage = |message: String| {
        Error::new(ErrorKind::Server, step, message)
            .with_status(resp.status)
            .with_url(endpoint)
            .with_retry_after(crate::http::retry_after(&resp))
    };
    if let Some(err) = value.as_ref().and_then(crate::token::oauth_error_fields) {
        if resp.status == 429
            || resp.status >= 500
            || err.error == "temporarily_unavailable"
            || err.error == "server_error"
        {
            return Err(outage("the device authorization endpoint is unavailable".into()).with_oauth(err));
        }
        return Err(Error::new(
            ErrorKind::Token,
            step,
            format!(
                "the device authorization endpoint refused the request ({})",
                shown(&err.error)
            ),
        )
        .with_status(resp.status)
        .with_url(endpoint)
        .with_oauth(err));
    }
    if !(200..300).contains(&resp.status) {
        return Err(outage(
            "the device authorization endpoint answered with an error status".into(),
        ));
    }
    let Some(value) = value else {
        return Err(outage("the device authorization response is not a JSON object".into()));
    };
    parse_device_authorization(ctx, &value).map_err(|e| match e.kind() {
        ErrorKind::Server => e.with_status(resp.status).with_url(endpoint),
        _ => e,
    })
}

#[async_trait::async_trait]
impl TokenSource for DeviceCode {
    fn name(&self) -> &'static str {
        "device_code"
    }

    fn needs_person(&self) -> bool {
        true
    }

    fn may_register(&self) -> bool {
        true
    }

    fn uses_pkce(&self) -> bool {
        false
    }

    fn check_server(&self, server: &AuthorizationServerMetadata) -> Option<(&'static str, Result<String>)> {
        Some(("device authorization", offered(server).map(str::to_string)))
    }

    async fn obtain(&self, ctx: &SourceContext<'_>, scope: Option<&str>) -> Result<OAuthToken> {
        let step = Step::DeviceAuthorization;
        let d = ctx.discovered;
        let ep = offered(&d.server)?;
        let endpoint = parse_server_url(ep, "device_authorization_endpoint", step)?;
        ctx.http
            .require_secure(&endpoint, "device authorization endpoint", step)?;
        // The whole person's part, polling included, is given up when no
        // request waits for it any more (every caller cancelled).
        crate::provider::flight::while_awaited(self.person(ctx, &endpoint, scope)).await
    }
}

impl DeviceCode {
    /// Ask for a code, show it, and poll until the person decides.
    async fn person(&self, ctx: &SourceContext<'_>, endpoint: &Url, scope: Option<&str>) -> Result<OAuthToken> {
        let step = Step::DeviceAuthorization;
        let started = tokio::time::Instant::now();
        let (device_code, authorization) = request_device_code(ctx, endpoint, scope).await?;
        let expires_at = started + authorization.expires_in;
        let limit = ctx.authorization_timeout;
        let deadline = expires_at.min(started + limit);
        tracing::info!(
            verification_uri = %authorization.verification_uri,
            expires_in = authorization.expires_in.as_secs(),
            interval = authorization.interval.as_secs(),
            "showing the device code to the person"
        );
        let show = self.handler.show(&authorization);
        let shown_in_time = tokio::time::timeout_at(deadline, show).await.ok();
        match shown_in_time {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(match e.kind() {
                    ErrorKind::Handler | ErrorKind::InvalidConfiguration => e,
                    _ => Error::handler(step, format!("the device code handler failed: {}", e.message())),
                });
            }
            None => return Err(expired(expires_at <= deadline, authorization.expires_in, limit)),
        }
        let mut interval = authorization.interval;
        let grant = Grant::DeviceCode { device_code };
        loop {
            let next = tokio::time::Instant::now() + interval;
            if next >= deadline {
                // No answer can come before the end: wait for it, then say so.
                tokio::time::sleep_until(deadline).await;
                return Err(expired(expires_at <= deadline, authorization.expires_in, limit));
            }
            tokio::time::sleep_until(next).await;
            match ctx.request_token(&grant).await {
                Ok(token) => {
                    tracing::info!("the person approved the device code; obtained tokens");
                    return Ok(token);
                }
                Err(e) => match e.oauth_error() {
                    Some("authorization_pending") if e.kind() == ErrorKind::Token => {
                        tracing::debug!("the person has not approved yet");
                    }
                    Some("slow_down") if e.kind() == ErrorKind::Token => {
                        interval = (interval + SLOW_DOWN_STEP).min(MAX_INTERVAL * 2);
                        tracing::info!(
                            interval = interval.as_secs(),
                            "the authorization server asks to poll less often"
                        );
                    }
                    Some("access_denied") => {
                        return Err(Error::new(
                            ErrorKind::Token,
                            step,
                            "the person denied the authorization on the other device (access_denied)",
                        )
                        .with_oauth(e.oauth().cloned().unwrap_or_default()));
                    }
                    Some("expired_token") => {
                        return Err(Error::new(
                            ErrorKind::Token,
                            step,
                            "the device code expired before the person approved it (expired_token); start again for a new code",
                        )
                        .with_oauth(e.oauth().cloned().unwrap_or_default()));
                    }
                    // An outage while polling: the person may still approve,
                    // so keep polling (a little slower) until the deadline.
                    _ if e.is_transient() => {
                        tracing::warn!(error = %e, "polling the token endpoint failed; trying again");
                        interval = (interval + SLOW_DOWN_STEP).min(MAX_INTERVAL * 2);
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

/// The device authorization endpoint, when the server offers the grant.
fn offered(server: &AuthorizationServerMetadata) -> Result<&str> {
    let ep = server.device_authorization_endpoint.as_deref().ok_or_else(|| {
        Error::flow(
            Step::AuthorizationServerMetadata,
            "the authorization server does not offer the device authorization grant (its metadata has no device_authorization_endpoint); use the authorization-code flow with a browser instead",
        )
    })?;
    if let Some(grants) = &server.grant_types_supported {
        if !grants.iter().any(|g| g == DEVICE_CODE_GRANT) {
            return Err(Error::flow(
                Step::AuthorizationServerMetadata,
                "the authorization server's grant_types_supported does not list the device code grant",
            ));
        }
    }
    Ok(ep)
}

fn expired(code_expired: bool, lifetime: Duration, limit: Duration) -> Error {
    let message = if code_expired {
        format!(
            "the device code expired ({} s) before the person approved it; start again for a new code",
            lifetime.as_secs()
        )
    } else {
        format!(
            "the person did not approve the device code within the authorization timeout ({:.1} s)",
            limit.as_secs_f64()
        )
    };
    Error::new(ErrorKind::Handler, Step::DeviceAuthorization, message)
}
