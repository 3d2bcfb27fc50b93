//! Discovery: RFC 9728 protected resource metadata, then RFC 8414 / OpenID
//! Connect Discovery authorization server metadata (MCP authorization spec,
//! "Authorization Server Discovery").

use std::sync::Arc;

use url::Url;

use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, HttpResponse, looks_like_json, parse_server_url, require_secure};
use crate::model::{AuthorizationServerMetadata, ProtectedResourceMetadata};

/// Decides whether a protected resource metadata `resource` may be used for
/// the MCP server URL. Return `Err(reason)` to refuse.
pub type ResourceValidator = Arc<dyn Fn(&Url, &str) -> std::result::Result<(), String> + Send + Sync>;

/// Picks one of several authorization servers (returns an index into the list).
pub type AuthorizationServerSelector = Arc<dyn Fn(&[String]) -> usize + Send + Sync>;

/// The canonical URI of an MCP server for the `resource` parameter (RFC 8707,
/// MCP "Canonical Server URI"): lower-case scheme and host, no fragment, no
/// query-less trailing slash.
pub fn canonical_resource(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let mut s = u.to_string();
    if u.query().is_none() && s.ends_with('/') {
        s.pop();
    }
    s
}

/// The protected resource metadata URLs to try, in order: the challenge's
/// `resource_metadata`, the path-aware well-known URL, the root well-known URL.
pub fn resource_metadata_urls(server: &Url, from_challenge: Option<&str>) -> Vec<Url> {
    let mut out = Vec::new();
    if let Some(s) = from_challenge {
        match Url::parse(s).or_else(|_| server.join(s)) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => out.push(u),
            _ => tracing::warn!("ignoring resource_metadata that is not an http(s) URL"),
        }
    }
    let path = server.path().trim_end_matches('/');
    let origin = server.origin().ascii_serialization();
    if !path.is_empty() {
        if let Ok(u) = Url::parse(&format!("{origin}/.well-known/oauth-protected-resource{path}")) {
            out.push(u);
        }
    }
    if let Ok(u) = Url::parse(&format!("{origin}/.well-known/oauth-protected-resource")) {
        out.push(u);
    }
    let mut seen = Vec::new();
    out.retain(|u| {
        let keep = !seen.contains(u);
        seen.push(u.clone());
        keep
    });
    out
}

/// The authorization server metadata URLs to try for an issuer, in order.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let list = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    list.into_iter().filter_map(|s| Url::parse(&s).ok()).collect()
}

/// The default resource check: same scheme, host and port, and the metadata's
/// path equal to, or a path-segment prefix of, the server's path.
pub fn default_resource_check(server: &Url, resource: &str) -> std::result::Result<(), String> {
    let res = Url::parse(resource).map_err(|e| format!("resource {resource:?} is not a URL ({e})"))?;
    if res.scheme() != server.scheme()
        || res.host_str().map(str::to_ascii_lowercase) != server.host_str().map(str::to_ascii_lowercase)
        || res.port_or_known_default() != server.port_or_known_default()
    {
        return Err(format!(
            "resource {resource:?} is on another origin than the MCP server {server}"
        ));
    }
    let rp = res.path().trim_end_matches('/');
    let sp = server.path().trim_end_matches('/');
    if rp.is_empty() || sp == rp || sp.starts_with(&format!("{rp}/")) {
        Ok(())
    } else {
        Err(format!(
            "resource {resource:?} does not cover the MCP server path {sp:?}"
        ))
    }
}

enum Fetched<T> {
    Found(T),
    NotFound,
}

fn oauth_status_error(step: Step, what: &str, resp: &HttpResponse, url: &Url) -> Error {
    Error::flow(
        step,
        format!("{what} request failed with a server error; not falling back"),
    )
    .with_status(resp.status)
    .with_url(url)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &Url,
    step: Step,
    what: &str,
) -> Result<Fetched<T>> {
    let resp = http.send(http.request("GET", url.clone()), step).await?;
    match resp.status {
        200 => {
            if !looks_like_json(&resp) {
                tracing::debug!(url = %url, "not JSON, trying the next URL");
                return Ok(Fetched::NotFound);
            }
            match serde_json::from_slice::<T>(&resp.body) {
                Ok(v) => Ok(Fetched::Found(v)),
                Err(e) => Err(
                    Error::flow(step, format!("{what} is not valid JSON of the expected shape ({e})"))
                        .with_status(200)
                        .with_url(url),
                ),
            }
        }
        429 | 500..=599 => Err(oauth_status_error(step, what, &resp, url)),
        _ => Ok(Fetched::NotFound),
    }
}

/// Fetch protected resource metadata. `Ok(None)` means none exists at any URL
/// (the 2025-03-26 legacy mode applies).
pub async fn fetch_resource_metadata(
    http: &Http,
    server: &Url,
    from_challenge: Option<&str>,
) -> Result<Option<(ProtectedResourceMetadata, Url)>> {
    for url in resource_metadata_urls(server, from_challenge) {
        match get_json::<ProtectedResourceMetadata>(http, &url, Step::ResourceMetadata, "protected resource metadata")
            .await
        {
            Ok(Fetched::Found(prm)) => return Ok(Some((prm, url))),
            Ok(Fetched::NotFound) => continue,
            // A malformed document at one URL: try the next, as a missing one.
            Err(e) if e.kind() == ErrorKind::Flow && e.status() == Some(200) => {
                tracing::warn!(error = %e, "skipping invalid protected resource metadata");
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Check a protected resource metadata document against the MCP server URL.
pub fn check_resource(
    server: &Url,
    prm: &ProtectedResourceMetadata,
    validator: Option<&ResourceValidator>,
) -> Result<()> {
    let outcome = match validator {
        Some(v) => v(server, &prm.resource),
        None => default_resource_check(server, &prm.resource),
    };
    outcome.map_err(|reason| {
        Error::flow(
            Step::ResourceMetadata,
            format!("protected resource metadata does not match the MCP server: {reason}"),
        )
    })
}

/// Whether two issuer identifiers are the same (RFC 8414 §3.3: identical;
/// an empty path and `/` are the same URL).
pub fn same_issuer(expected: &str, got: &str) -> bool {
    expected == got
        || expected.trim_end_matches('/') == got && Url::parse(got).is_ok_and(|u| u.path() == "/")
        || got.trim_end_matches('/') == expected && Url::parse(expected).is_ok_and(|u| u.path() == "/")
}

/// Fetch and validate authorization server metadata for `issuer`.
/// `Ok(None)` means no metadata at any URL.
pub async fn fetch_authorization_server_metadata(
    http: &Http,
    issuer: &str,
) -> Result<Option<AuthorizationServerMetadata>> {
    let issuer_url = parse_server_url(issuer, "authorization server issuer", Step::AuthorizationServerMetadata)?;
    require_secure(
        &issuer_url,
        "authorization server issuer",
        Step::AuthorizationServerMetadata,
    )?;
    for url in authorization_server_metadata_urls(&issuer_url) {
        match get_json::<AuthorizationServerMetadata>(
            http,
            &url,
            Step::AuthorizationServerMetadata,
            "authorization server metadata",
        )
        .await
        {
            Ok(Fetched::Found(meta)) => {
                if !same_issuer(issuer, &meta.issuer) {
                    return Err(Error::flow(
                        Step::AuthorizationServerMetadata,
                        format!(
                            "authorization server metadata names issuer {:?}, not {:?}; refusing to use it",
                            meta.issuer, issuer
                        ),
                    )
                    .with_url(&url));
                }
                validate_endpoints(&meta)?;
                return Ok(Some(meta));
            }
            Ok(Fetched::NotFound) => continue,
            Err(e) if e.kind() == ErrorKind::Flow && e.status() == Some(200) => {
                tracing::warn!(error = %e, "skipping invalid authorization server metadata");
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn validate_endpoints(meta: &AuthorizationServerMetadata) -> Result<()> {
    for (name, value) in [
        ("authorization_endpoint", &meta.authorization_endpoint),
        ("token_endpoint", &meta.token_endpoint),
        ("registration_endpoint", &meta.registration_endpoint),
    ] {
        if let Some(v) = value {
            let u = parse_server_url(v, name, Step::AuthorizationServerMetadata)?;
            require_secure(&u, name, Step::AuthorizationServerMetadata)?;
        }
    }
    Ok(())
}

/// Metadata for the 2025-03-26 legacy mode when the server publishes none:
/// the default endpoints at the MCP server's origin.
pub fn legacy_default_metadata(origin: &Url) -> AuthorizationServerMetadata {
    let base = origin.origin().ascii_serialization();
    AuthorizationServerMetadata {
        issuer: base.clone(),
        authorization_endpoint: Some(format!("{base}/authorize")),
        token_endpoint: Some(format!("{base}/token")),
        registration_endpoint: Some(format!("{base}/register")),
        scopes_supported: None,
        response_types_supported: None,
        grant_types_supported: None,
        token_endpoint_auth_methods_supported: None,
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        authorization_response_iss_parameter_supported: None,
        client_id_metadata_document_supported: None,
        revocation_endpoint: None,
        extra: Default::default(),
    }
}

/// Refuse authorization servers that do not advertise PKCE S256, unless the
/// host opted out.
pub fn check_pkce_support(meta: &AuthorizationServerMetadata, assume_s256_when_unadvertised: bool) -> Result<()> {
    match &meta.code_challenge_methods_supported {
        Some(methods) if methods.iter().any(|m| m == "S256") => Ok(()),
        Some(_) => Err(Error::flow(
            Step::AuthorizationServerMetadata,
            "the authorization server does not support PKCE S256 (code_challenge_methods_supported lacks it); refusing to proceed",
        )),
        None if assume_s256_when_unadvertised => Ok(()),
        None => Err(Error::flow(
            Step::AuthorizationServerMetadata,
            "the authorization server metadata has no code_challenge_methods_supported, so PKCE support is unknown; refusing to proceed (set assume_s256_when_pkce_unadvertised to allow such servers)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn prm_urls_in_spec_order() {
        assert_eq!(
            strs(resource_metadata_urls(
                &u("https://ex.com/public/mcp"),
                Some("https://ex.com/custom/prm")
            )),
            vec![
                "https://ex.com/custom/prm",
                "https://ex.com/.well-known/oauth-protected-resource/public/mcp",
                "https://ex.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strs(resource_metadata_urls(&u("https://ex.com/"), None)),
            vec!["https://ex.com/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            strs(resource_metadata_urls(
                &u("http://127.0.0.1:8000/mcp/"),
                Some("ftp://x/y")
            )),
            vec![
                "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:8000/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn as_urls_with_path_insertion() {
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://auth.ex.com/tenant1/"))),
            vec![
                "https://auth.ex.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.ex.com/.well-known/openid-configuration/tenant1",
                "https://auth.ex.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://auth.ex.com"))),
            vec![
                "https://auth.ex.com/.well-known/oauth-authorization-server",
                "https://auth.ex.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn resource_check() {
        let s = u("https://api.ex.com/v1/mcp");
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp/").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v1").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com").is_ok());
        assert!(default_resource_check(&s, "https://API.ex.com:443/v1").is_ok());
        assert!(default_resource_check(&s, "https://api.ex.com/v").is_err());
        assert!(default_resource_check(&s, "https://api.ex.com/v1/mcp/more").is_err());
        assert!(default_resource_check(&s, "https://evil.com/v1/mcp").is_err());
        assert!(default_resource_check(&s, "http://api.ex.com/v1/mcp").is_err());
        assert!(default_resource_check(&s, "https://api.ex.com:8443/v1/mcp").is_err());
        assert!(default_resource_check(&s, "not a url").is_err());
    }

    #[test]
    fn canonical() {
        assert_eq!(canonical_resource(&u("HTTPS://Ex.COM/mcp#frag")), "https://ex.com/mcp");
        assert_eq!(canonical_resource(&u("https://ex.com/")), "https://ex.com");
        assert_eq!(canonical_resource(&u("https://ex.com/mcp/")), "https://ex.com/mcp");
        assert_eq!(canonical_resource(&u("https://ex.com:443/mcp")), "https://ex.com/mcp");
    }

    #[test]
    fn issuer_identity() {
        assert!(same_issuer("https://a.ex", "https://a.ex"));
        assert!(same_issuer("https://a.ex/", "https://a.ex"));
        assert!(same_issuer("https://a.ex", "https://a.ex/"));
        assert!(!same_issuer("https://a.ex/t1", "https://a.ex/t1/"));
        assert!(!same_issuer("https://a.ex", "https://b.ex"));
        assert!(!same_issuer("https://a.ex/t1", "https://a.ex/t2"));
    }

    #[test]
    fn pkce_rule() {
        let mut m = legacy_default_metadata(&u("https://x.ex/mcp"));
        assert!(check_pkce_support(&m, false).is_ok());
        m.code_challenge_methods_supported = Some(vec!["plain".into()]);
        assert!(check_pkce_support(&m, true).is_err());
        m.code_challenge_methods_supported = None;
        let e = check_pkce_support(&m, false).unwrap_err();
        assert!(e.to_string().contains("assume_s256_when_pkce_unadvertised"));
        assert!(check_pkce_support(&m, true).is_ok());
    }
}
