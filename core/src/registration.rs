//! Client identity: stored client information, pre-registered credentials,
//! Client ID Metadata Documents, and RFC 7591 dynamic registration, in the
//! MCP spec's order of preference. Client information is bound to the issuer
//! that issued it.

use url::Url;

use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, looks_like_json, require_secure};
use crate::model::{AuthorizationServerMetadata, OAuthClientInformationFull, OAuthClientMetadata};

/// Check a Client ID Metadata Document URL: HTTPS with a non-root path.
pub fn validate_cimd_url(s: &str) -> Result<Url> {
    let u = Url::parse(s).map_err(|e| Error::config(format!("client_metadata_url {s:?} is not a URL ({e})")))?;
    if u.scheme() != "https" {
        return Err(Error::config(format!("client_metadata_url {s:?} must use https")));
    }
    if u.path().is_empty() || u.path() == "/" {
        return Err(Error::config(format!(
            "client_metadata_url {s:?} must have a path (the document cannot be the site root)"
        )));
    }
    if u.fragment().is_some() {
        return Err(Error::config(format!(
            "client_metadata_url {s:?} must not have a fragment"
        )));
    }
    Ok(u)
}

/// Whether stored client information may be used with `issuer`.
pub fn bound_to(info: &OAuthClientInformationFull, issuer: &str) -> bool {
    match &info.issuer {
        Some(i) => crate::discovery::same_issuer(i, issuer),
        None => true,
    }
}

/// Register with RFC 7591 dynamic client registration.
pub async fn register(
    http: &Http,
    server: &AuthorizationServerMetadata,
    metadata: &OAuthClientMetadata,
    scope: Option<&str>,
) -> Result<OAuthClientInformationFull> {
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the authorization server offers no dynamic registration and no Client ID Metadata Documents; pre-register the client and configure its client_id",
        ));
    };
    let url = crate::http::parse_server_url(endpoint, "registration_endpoint", Step::Registration)?;
    require_secure(&url, "registration endpoint", Step::Registration)?;
    let mut body = metadata.clone();
    if body.application_type.is_none() {
        body.application_type = Some(body.derived_application_type().to_string());
    }
    // The registration carries a scope only when the application set one:
    // many servers (RFC 7591 §2) cap a client at its registered scope, which
    // would make every later step-up fail with invalid_scope.
    let _ = scope;
    let json = serde_json::to_vec(&body).map_err(|e| Error::config(format!("cannot encode client metadata: {e}")))?;
    let mut req = http.request("POST", url.clone());
    req.headers.push(("content-type".into(), "application/json".into()));
    req.body = Some(json);
    let resp = http.send(req, Step::Registration).await?;
    let value: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
    if !(200..300).contains(&resp.status) {
        let mut e = Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the authorization server refused the registration",
        )
        .with_status(resp.status)
        .with_url(&url);
        if let Some(fields) = value.as_ref().and_then(crate::token::oauth_error_fields) {
            e = e.with_oauth(fields);
        }
        return Err(e);
    }
    if !looks_like_json(&resp) {
        return Err(Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the registration response is not JSON",
        )
        .with_status(resp.status)
        .with_url(&url));
    }
    let value = value.ok_or_else(|| {
        Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the registration response is not JSON",
        )
        .with_status(resp.status)
        .with_url(&url)
    })?;
    let mut info: OAuthClientInformationFull = serde_json::from_value(value).map_err(|e| {
        Error::new(
            ErrorKind::Registration,
            Step::Registration,
            format!("the registration response is malformed ({:?} error)", e.classify()),
        )
        .with_url(&url)
    })?;
    if info.client_id.is_empty() {
        return Err(Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the registration response has an empty client_id",
        )
        .with_url(&url));
    }
    // Keep what we asked for where the server did not echo it.
    if info.token_endpoint_auth_method().is_none() {
        if let Some(m) = &metadata.token_endpoint_auth_method {
            info.set_token_endpoint_auth_method(m);
        }
    }
    if !info.metadata.contains_key("redirect_uris") {
        info.metadata
            .insert("redirect_uris".into(), serde_json::json!(metadata.redirect_uris));
    }
    info.issuer = Some(server.issuer.clone());
    tracing::info!(client_id = %info.client_id, issuer = %server.issuer, "registered a client dynamically");
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cimd_url_rules() {
        assert!(validate_cimd_url("https://app.example/client.json").is_ok());
        assert!(validate_cimd_url("https://app.example/a/b").is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "not a url",
            "https://app.example/x#f",
        ] {
            let e = validate_cimd_url(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn issuer_binding() {
        let mut i = OAuthClientInformationFull::new("c", None);
        assert!(bound_to(&i, "https://a.ex"));
        i.issuer = Some("https://a.ex".into());
        assert!(bound_to(&i, "https://a.ex"));
        assert!(bound_to(&i, "https://a.ex/"));
        assert!(!bound_to(&i, "https://b.ex"));
    }
}
