//! Scope selection (MCP authorization spec, "Scope Selection Strategy" and
//! "Step-Up Authorization Flow").

use crate::model::{AuthorizationServerMetadata, split_scopes};

fn join(scopes: &[String]) -> Option<String> {
    if scopes.is_empty() {
        None
    } else {
        Some(scopes.join(" "))
    }
}

/// The configured scope that [`initial_scope`] is to honour: the configured
/// one, unless the application asked the server's scope to replace it
/// (`server_scope_replaces_configured`, the MCP Python SDK's behaviour) and
/// the server named one, in its challenge or its resource metadata.
pub fn configured_scope<'a>(
    configured: Option<&'a str>,
    server_scope_replaces_configured: bool,
    challenge: Option<&str>,
    resource_scopes: Option<&[String]>,
) -> Option<&'a str> {
    let server_named = challenge.is_some_and(|c| !c.trim().is_empty()) || resource_scopes.is_some();
    if server_scope_replaces_configured && server_named {
        None
    } else {
        configured
    }
}

/// The scope of the first authorization request.
///
/// A scope the application configured is used as it is. Otherwise: the
/// challenge's `scope`, else every scope of the protected resource metadata's
/// `scopes_supported`, else none. `offline_access` is added only when the
/// authorization server lists it and the client may use refresh tokens.
pub fn initial_scope(
    configured: Option<&str>,
    challenge: Option<&str>,
    resource_scopes: Option<&[String]>,
    server: Option<&AuthorizationServerMetadata>,
    grant_types: &[String],
) -> Option<String> {
    if let Some(c) = configured.filter(|c| !c.trim().is_empty()) {
        return join(&split_scopes(Some(c)));
    }
    let mut scopes = match (challenge.filter(|c| !c.trim().is_empty()), resource_scopes) {
        (Some(c), _) => split_scopes(Some(c)),
        (None, Some(list)) => split_scopes(Some(&list.join(" "))),
        (None, None) => Vec::new(),
    };
    let may_refresh = grant_types.iter().any(|g| g == "refresh_token");
    let server_offers = server.is_some_and(|s| s.supports_scope("offline_access"));
    if !scopes.is_empty() && may_refresh && server_offers && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".into());
    }
    if !may_refresh {
        scopes.retain(|s| s != "offline_access");
    }
    join(&scopes)
}

/// The scope of a step-up request: the union of what is held (or was asked
/// for) and what the challenge asks for, in that order.
pub fn step_up_scope(held: Option<&str>, challenged: Option<&str>) -> Option<String> {
    let mut all = split_scopes(held);
    for s in split_scopes(challenged) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    join(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(scopes: &[&str]) -> AuthorizationServerMetadata {
        let mut m = crate::discovery::legacy_default_metadata(&url::Url::parse("https://a.ex").unwrap());
        m.scopes_supported = Some(scopes.iter().map(|s| s.to_string()).collect());
        m
    }

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection_order() {
        let both = g(&["authorization_code", "refresh_token"]);
        let prm = g(&["a", "b"]);
        let srv = server(&["a", "b", "offline_access"]);
        assert_eq!(
            initial_scope(Some("mine"), Some("c"), Some(&prm), Some(&srv), &both).as_deref(),
            Some("mine")
        );
        assert_eq!(
            initial_scope(None, Some("c d"), Some(&prm), None, &both).as_deref(),
            Some("c d")
        );
        assert_eq!(
            initial_scope(None, None, Some(&prm), None, &both).as_deref(),
            Some("a b")
        );
        assert_eq!(initial_scope(None, None, None, None, &both), None);
        // The application's scope stays, unless it asked the server's to replace it.
        assert_eq!(
            configured_scope(Some("mine"), false, Some("c"), Some(&prm)),
            Some("mine")
        );
        assert_eq!(configured_scope(Some("mine"), true, Some("c"), None), None);
        assert_eq!(configured_scope(Some("mine"), true, None, Some(&prm)), None);
        assert_eq!(configured_scope(Some("mine"), true, Some(" "), None), Some("mine"));
        assert_eq!(configured_scope(Some("mine"), true, None, None), Some("mine"));
        assert_eq!(initial_scope(None, Some(""), None, None, &both), None);
        // offline_access only when the server lists it and refresh is allowed.
        assert_eq!(
            initial_scope(None, Some("c"), None, Some(&srv), &both).as_deref(),
            Some("c offline_access")
        );
        let no_refresh = g(&["authorization_code"]);
        assert_eq!(
            initial_scope(None, Some("c"), None, Some(&srv), &no_refresh).as_deref(),
            Some("c")
        );
        assert_eq!(
            initial_scope(None, Some("c offline_access"), None, None, &no_refresh).as_deref(),
            Some("c")
        );
        assert_eq!(
            initial_scope(None, Some("c"), None, Some(&server(&["c"])), &both).as_deref(),
            Some("c")
        );
        // The configured scope is never rewritten.
        assert_eq!(
            initial_scope(Some("x"), None, None, Some(&srv), &both).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn step_up_is_a_union() {
        assert_eq!(
            step_up_scope(Some("read"), Some("read admin")).as_deref(),
            Some("read admin")
        );
        assert_eq!(step_up_scope(None, Some("admin")).as_deref(), Some("admin"));
        assert_eq!(step_up_scope(Some("a b"), None).as_deref(), Some("a b"));
        assert_eq!(step_up_scope(None, None), None);
    }
}
