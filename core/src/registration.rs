//! Client identity: stored client information, pre-registered credentials,
//! Client ID Metadata Documents, and RFC 7591 dynamic registration, in the
//! MCP spec's order of preference. Client information is bound to the issuer
//! that issued it.

use url::Url;

use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, looks_like_json};
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
    can_sign_assertions: bool,
) -> Result<OAuthClientInformationFull> {
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(Error::new(
            ErrorKind::Registration,
            Step::Registration,
            "the authorization server offers no dynamic registration and no Client ID Metadata Documents; pre-register the client and configure its client_id",
        ));
    };
    let url = crate::http::parse_server_url(endpoint, "registration_endpoint", Step::Registration)?;
    http.require_secure(&url, "registration endpoint", Step::Registration)?;
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
    check_registered(&info, metadata, can_sign_assertions).map_err(|e| e.with_url(&url))?;
    info.issuer = Some(server.issuer.clone());
    tracing::info!(client_id = %info.client_id, issuer = %server.issuer, "registered a client dynamically");
    Ok(info)
}

/// Refuse a registration the client could not use, before anything is stored
/// and before any browser opens: one that drops or replaces a redirect URI we
/// asked for (the person's code would go elsewhere), or that switches to a
/// client authentication method this client cannot perform.
pub fn check_registered(
    info: &OAuthClientInformationFull,
    asked: &OAuthClientMetadata,
    can_sign_assertions: bool,
) -> Result<()> {
    let refuse = |why: String| Err(Error::new(ErrorKind::Registration, Step::Registration, why));
    if let Some(v) = info.metadata.get("redirect_uris") {
        let Some(list) = v.as_array() else {
            return refuse("the registration response's redirect_uris is not a list; refusing it".into());
        };
        let granted: Vec<&str> = list.iter().filter_map(serde_json::Value::as_str).collect();
        for ours in &asked.redirect_uris {
            if !granted.contains(&ours.as_str()) {
                return refuse(format!(
                    "the registration response does not keep our redirect URI {ours:?}; refusing it"
                ));
            }
        }
        if let Some(other) = granted.iter().find(|g| !asked.redirect_uris.iter().any(|o| o == *g)) {
            return refuse(format!(
                "the registration response adds a redirect URI we did not ask for ({other:?}); refusing it"
            ));
        }
    }
    match info.token_endpoint_auth_method() {
        None | Some("none") => Ok(()),
        Some("client_secret_basic" | "client_secret_post")
            if info.client_secret.as_ref().is_some_and(|s| !s.expose().is_empty()) =>
        {
            Ok(())
        }
        Some(m @ ("client_secret_basic" | "client_secret_post")) => refuse(format!(
            "the registration response sets token_endpoint_auth_method {m:?} but gives no client_secret; refusing it"
        )),
        Some("private_key_jwt") if can_sign_assertions => Ok(()),
        Some(m) => refuse(format!(
            "the registration response switches to token_endpoint_auth_method {:?}, which this client cannot perform; refusing it",
            m.chars().filter(|c| !c.is_control()).take(40).collect::<String>()
        )),
    }
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
