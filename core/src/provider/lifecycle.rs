//! The token lifecycle: loading, refreshing, obtaining and storing tokens,
//! and what each failure means for what is stored (SPEC.md §12).
//!
//! - An outage is not a revocation: a 5xx, a 429, a timeout, an HTML page or a
//!   malformed answer is reported and every stored token is kept.
//! - `invalid_grant` on a refresh means that refresh token is dead: those
//!   tokens, and only those, are dropped.
//! - `invalid_client` means the client's credentials are dead: a dynamic
//!   registration is forgotten and done again; configured credentials give
//!   a configuration error naming the client.
//! - Before a refresh, under the store's lease, the store is read again:
//!   another process may have rotated the refresh token. Writes are
//!   compare-and-set on the version read, so an older token never
//!   overwrites a newer one.
//!
//! Everything here runs inside a flight (`super::flight`) holding the
//! provider's state lock: one at a time per provider, never inside a
//! caller's future.

use std::sync::Arc;

use url::Url;

use super::identity::Origin;
use super::{Held, Inner, State};
use crate::challenge::BearerChallenge;
use crate::discovery::{Discovered, check_pkce_support, default_resource_check, discover, same_issuer};
use crate::error::{Error, ErrorKind, Result, Step};
use crate::http::{Http, parse_server_url};
use crate::model::{OAuthToken, split_scopes};
use crate::scope::{configured_scope, initial_scope};
use crate::sources::{self, SourceContext};
use crate::storage::{CasOutcome, Version, fingerprint};
use crate::token::is_b64token;

/// What a refresh attempt settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// Fresh tokens are held (refreshed here, or adopted from the store).
    Yes,
    /// No refresh is possible: the refresh token is dead, belongs to another
    /// authorization server, or there is none. A new authorization is needed.
    Dead,
}

/// A token the resource server refuses within this time of the provider
/// taking it up counts as refused at once.
pub(crate) const REFUSED_AT_ONCE: std::time::Duration = std::time::Duration::from_secs(60);

/// New tokens a resource server may refuse at once with a 401, in a row,
/// before the provider stops authorizing again, for a source that needs a
/// person: a server that rejects every token would otherwise send the person
/// to the authorization server (or the provider to the token endpoint, with
/// the refresh token) on every request. A grant without a person asks the
/// token endpoint again once per refused request (the host's one retry bounds
/// each call): the provider cannot tell a server that refuses every token
/// from one that refuses a few of many requests, whose successes a host need
/// not report.
pub(crate) const MAX_REFUSED_IN_A_ROW: u32 = 3;

/// Step-ups in a row, each asked for at once with the token the last one
/// brought, before the provider stops: a server that wants a new scope every
/// time would otherwise send the person back on every request. Higher than
/// [`MAX_REFUSED_IN_A_ROW`]: a session may meet several tools in a row that
/// each need a scope of their own.
pub(crate) const MAX_STEP_UPS_IN_A_ROW: u32 = 10;

fn is_refusal(e: &Error, code: &str) -> bool {
    e.kind() == ErrorKind::Token && e.oauth_error() == Some(code)
}

impl Inner {
    pub(crate) fn http_for(&self, timeout: Option<std::time::Duration>) -> Http {
        match timeout {
            Some(t) if !t.is_zero() => Http {
                timeout: t,
                ..self.http.clone()
            },
            _ => self.http.clone(),
        }
    }

    pub(crate) fn set_current(&self, token: OAuthToken, version: Version) {
        let prepared = self.binding.prepare(&token);
        self.current.store(Some(Arc::new(Held::new(token, prepared, version))));
    }

    pub(crate) fn has_refresh_token(&self) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|h| h.token.refresh_token.is_some())
    }

    /// The held token's prepared value, when it is not due for refresh.
    pub(crate) fn fresh_prepared(&self) -> Option<zeroize::Zeroizing<String>> {
        let g = self.current.load();
        let h = g.as_ref()?;
        (!h.due()).then(|| h.prepared.clone())
    }

    /// Take stored tokens as the held ones, unless they cannot be used here:
    /// known dead, of a type the binding cannot present, malformed, or issued
    /// for another resource.
    pub(crate) fn adopt(&self, st: &State, token: OAuthToken, version: Version) -> bool {
        if st.dead_tokens.contains(&fingerprint(&token)) {
            return false;
        }
        if !self.binding.accepts_stored(&token) {
            tracing::warn!("the stored token's type cannot be presented by this client; not using it");
            return false;
        }
        if !is_b64token(token.access_token.expose()) {
            tracing::warn!("the stored access token is malformed; not using it");
            return false;
        }
        if let Some(r) = &token.resource {
            let custom = self.config.skip_resource_check || self.config.resource_validator.is_some();
            if !custom && default_resource_check(&self.server_url, r).is_err() {
                tracing::warn!(resource = %r, "the stored tokens were issued for another resource; not using them");
                return false;
            }
        }
        self.set_current(token, version);
        true
    }

    pub(crate) async fn load_if_needed(&self, st: &mut State) -> Result<()> {
        if st.loaded {
            return Ok(());
        }
        let stored = self.storage.load_tokens().await?;
        st.loaded = true;
        if let Some(t) = stored.value {
            if self.current.load().is_none() {
                self.adopt(st, t, stored.version);
            }
        }
        Ok(())
    }

    /// Discovery, cached until a 401 asks for it again.
    pub(crate) async fn discovered(
        &self,
        st: &mut State,
        http: &Http,
        challenge: Option<&BearerChallenge>,
    ) -> Result<Arc<Discovered>> {
        if let Some(d) = &st.discovered {
            return Ok(d.clone());
        }
        let mut trace = Vec::new();
        let from_challenge = challenge.and_then(|c| c.resource_metadata.as_deref());
        let d = Arc::new(
            discover(
                http,
                &self.server_url,
                from_challenge,
                &self.discovery_options(),
                &mut trace,
            )
            .await?,
        );
        st.discovered = Some(d.clone());
        Ok(d)
    }

    pub(crate) fn resource_param<'a>(&'a self, d: &'a Discovered) -> Option<&'a str> {
        match &self.config.resource_parameter {
            super::ResourceParameter::Send => Some(&d.resource),
            super::ResourceParameter::Omit => None,
            super::ResourceParameter::Override(r) => Some(r),
        }
    }

    /// What a source works with, once discovery and the client identity are settled.
    fn source_context<'a>(
        &'a self,
        http: &'a Http,
        d: &'a Discovered,
        client: &'a crate::model::OAuthClientInformationFull,
        client_auth: &'a crate::token::ClientAuthentication,
        token_endpoint: &'a Url,
    ) -> SourceContext<'a> {
        let cfg = &self.config;
        SourceContext {
            http,
            discovered: d,
            client,
            client_auth,
            token_endpoint,
            resource: self.resource_param(d),
            extra_authorization_params: &cfg.extra_authorization_params,
            extra_token_params: &cfg.extra_token_params,
            client_metadata: &cfg.client_metadata,
            assume_s256_when_pkce_unadvertised: cfg.assume_s256_when_pkce_unadvertised,
            authorization_timeout: cfg.authorization_timeout,
            binding: self.binding.as_ref(),
        }
    }

    /// Record where new tokens came from, and refuse a type the binding
    /// cannot present, before anything is stored.
    fn finish_token(
        &self,
        mut token: OAuthToken,
        d: &Discovered,
        scope: Option<&str>,
        step: Step,
    ) -> Result<OAuthToken> {
        if !self.binding.accepts(&token) {
            return Err(Error::flow(
                step,
                format!(
                    "the token endpoint issued a {} token, which this client is not configured to present; refusing it",
                    token.token_type
                ),
            ));
        }
        self.binding.bind(&mut token);
        token.issuer = Some(d.issuer.clone());
        token.resource = Some(d.resource.clone());
        if token.scope.is_none() {
            token.scope = scope.map(str::to_string);
        }
        Ok(token)
    }

    /// Store new tokens over the version they replace, and hold them. They
    /// are usable in memory at once, even when the store fails (the failure
    /// is still reported).
    async fn store_new(&self, mut expected: Version, token: OAuthToken) -> Result<()> {
        self.set_current(token.clone(), Version::ABSENT);
        for _ in 0..3 {
            match self
                .storage
                .compare_and_set_tokens(expected, Some(token.clone()))
                .await?
            {
                CasOutcome::Stored(v) => {
                    self.set_current(token, v);
                    return Ok(());
                }
                // Someone wrote meanwhile (a store without leases, or a lease
                // that ran out). These tokens were issued just now: they are
                // the newest, and replace what is there.
                CasOutcome::Conflict(now) => {
                    tracing::warn!("the stored tokens changed during the token request; storing the newer ones");
                    expected = now.version;
                }
            }
        }
        Err(Error::storage(
            "the token store kept changing while new tokens were being saved",
        ))
    }

    /// Drop dead tokens: from memory, and from the store when it still holds
    /// them (another process may have stored newer ones meanwhile: those are
    /// kept, and used when they are fresh).
    async fn drop_dead(&self, st: &mut State, dead: &OAuthToken, version: Version) -> Refreshed {
        st.dead_tokens.insert(fingerprint(dead));
        self.current.store(None);
        match self.storage.compare_and_set_tokens(version, None).await {
            Ok(CasOutcome::Conflict(now)) => {
                if let Some(t) = now.value {
                    if !t.needs_refresh() && self.adopt(st, t, now.version) {
                        tracing::info!("using tokens another process stored meanwhile");
                        return Refreshed::Yes;
                    }
                }
            }
            Ok(CasOutcome::Stored(_)) => {}
            Err(e) => tracing::warn!(error = %e, "could not remove the dead tokens from the store"),
        }
        Refreshed::Dead
    }

    fn token_endpoint(http: &Http, d: &Discovered, step: Step) -> Result<Url> {
        let ep = d.server.token_endpoint.as_deref().ok_or_else(|| {
            Error::flow(
                Step::AuthorizationServerMetadata,
                "the authorization server metadata has no token_endpoint",
            )
        })?;
        let url = parse_server_url(ep, "token_endpoint", step)?;
        http.require_secure(&url, "token endpoint", step)?;
        Ok(url)
    }

    fn refused_configured_client(client_id: &str, step: Step, e: &Error) -> Error {
        let mut out = Error::config(format!(
            "the authorization server refused the configured client {client_id:?} (invalid_client); check its client_id, secret or key"
        ))
        .in_step(step);
        if let Some(o) = e.oauth() {
            out = out.with_oauth(o.clone());
        }
        if let Some(s) = e.status() {
            out = out.with_status(s);
        }
        out
    }

    /// Refresh the held tokens (RFC 6749 §6) under the store's lease.
    /// `rejected` is the header a server just refused: a stored token with
    /// that header is not adopted.
    pub(crate) async fn refresh(&self, st: &mut State, http: &Http, rejected: Option<&str>) -> Result<Refreshed> {
        let Some(held) = self.current.load_full() else {
            return Ok(Refreshed::Dead);
        };
        if held.token.refresh_token.is_none() {
            return Ok(Refreshed::Dead);
        }
        let d = self.discovered(st, http, None).await?;
        let _lease = self
            .storage
            .acquire_lease(self.config.lease_ttl, self.config.lease_wait)
            .await?;
        // Another process may have refreshed already: rotating refresh tokens
        // are single-use, and sending the old one revokes the whole family.
        let stored = self.storage.load_tokens().await?;
        let (base, version) = match stored.value {
            // Tokens this process obtained but could not save are newer than
            // anything stored: refresh with them, and save over the store.
            Some(_) if held.version == Version::ABSENT => (held.token.clone(), stored.version),
            Some(t) if t.refresh_token != held.token.refresh_token && !st.dead_tokens.contains(&fingerprint(&t)) => {
                if !t.needs_refresh()
                    && Some(self.binding.prepare(&t).as_str()) != rejected
                    && self.adopt(st, t.clone(), stored.version)
                {
                    tracing::info!("using tokens another process refreshed");
                    return Ok(Refreshed::Yes);
                }
                tracing::info!("another process rotated the refresh token; refreshing with the newest one");
                (t, stored.version)
            }
            Some(_) => (held.token.clone(), stored.version),
            None if held.version != Version::ABSENT => {
                // Removed since this process read them: another process found
                // them dead, or the user logged out.
                tracing::info!("the stored tokens were removed; a new authorization is needed");
                self.current.store(None);
                return Ok(Refreshed::Dead);
            }
            None => (held.token.clone(), Version::ABSENT),
        };
        let Some(refresh_token) = base.refresh_token.clone() else {
            return Ok(Refreshed::Dead);
        };
        if let Some(issuer) = &base.issuer {
            if !same_issuer(issuer, &d.issuer) {
                tracing::info!(
                    "the tokens come from another authorization server; their refresh token is not sent here"
                );
                self.current.store(None);
                return Ok(Refreshed::Dead);
            }
        }
        let Some(identity) = self.existing_client(st, &d).await? else {
            tracing::info!("no client registration with this authorization server; a new authorization is needed");
            return Ok(Refreshed::Dead);
        };
        let auth = self.client_auth(&identity.info, &d)?;
        let endpoint = Self::token_endpoint(http, &d, Step::Refresh)?;
        let ctx = self.source_context(http, &d, &identity.info, &auth, &endpoint);
        match sources::refresh(&ctx, &refresh_token, base.scope.as_deref()).await {
            Ok(token) => {
                let token = self.finish_token(token, &d, base.scope.as_deref(), Step::Refresh)?;
                tracing::info!("refreshed the access token");
                self.store_new(version, token).await?;
                Ok(Refreshed::Yes)
            }
            Err(e) if is_refusal(&e, "invalid_grant") => {
                tracing::info!("the refresh token was refused (invalid_grant); a new authorization is needed");
                Ok(self.drop_dead(st, &base, version).await)
            }
            Err(e) if is_refusal(&e, "invalid_client") => match identity.origin {
                Origin::Registered => {
                    tracing::info!("the registration was refused (invalid_client); registering again");
                    self.forget_client(st, &d, &identity).await;
                    // A refresh token is bound to its client: it died with it.
                    Ok(self.drop_dead(st, &base, version).await)
                }
                _ => Err(Self::refused_configured_client(
                    &identity.info.client_id,
                    Step::Refresh,
                    &e,
                )),
            },
            // An outage, or another refusal: the caller sees it, and every
            // stored token stays as it was for the next request to try again.
            Err(e) => Err(e),
        }
    }

    /// Obtain new tokens from the source, for `scope_override` when given
    /// (a step-up), else for the scope the spec's rules choose.
    pub(crate) async fn obtain(
        &self,
        st: &mut State,
        http: &Http,
        challenge: Option<&BearerChallenge>,
        scope_override: Option<Option<String>>,
    ) -> Result<()> {
        // The store version this flight knows: tokens stored under another
        // version after a wait for the lease come from another process.
        let seen = self.current.load().as_ref().map_or(Version::ABSENT, |h| h.version);
        self.obtain_after(st, http, challenge, scope_override, seen).await
    }

    /// [`Self::obtain`], adopting instead tokens stored under a version other
    /// than `seen` by another process while this one waited for the lease.
    pub(crate) async fn obtain_after(
        &self,
        st: &mut State,
        http: &Http,
        challenge: Option<&BearerChallenge>,
        scope_override: Option<Option<String>>,
        seen: Version,
    ) -> Result<()> {
        let d = self.discovered(st, http, challenge).await?;
        let cfg = &self.config;
        // What the source needs of the server is checked before anything is
        // sent to it: no registration with a server the flow cannot use.
        if self.source.uses_pkce() {
            check_pkce_support(&d.server, cfg.assume_s256_when_pkce_unadvertised)?;
        }
        if let Some((_, Err(e))) = self.source.check_server(&d.server) {
            return Err(e);
        }
        let stepping_up = scope_override.is_some();
        let scope = match scope_override {
            Some(s) => s,
            None => {
                let challenged = challenge.and_then(|c| c.scope.as_deref());
                let resource_scopes = d.resource_metadata.as_ref().and_then(|p| p.scopes_supported.as_deref());
                let configured = configured_scope(
                    cfg.client_metadata.scope.as_deref(),
                    cfg.server_scope_replaces_configured,
                    challenged,
                    resource_scopes,
                );
                initial_scope(
                    configured,
                    challenged,
                    resource_scopes,
                    Some(&d.server),
                    &cfg.client_metadata.grant_types,
                )
            }
        };
        let step = if self.source.needs_person() {
            Step::TokenExchange
        } else {
            Step::Grant
        };
        // One person-facing flow for every process sharing the store: under
        // its lease, held as long as the person may take; a process that
        // waited for it uses what the other one obtained.
        let _lease = if self.source.needs_person() {
            let lease = super::flight::while_awaited(self.storage.acquire_lease(
                cfg.authorization_timeout + cfg.lease_ttl,
                cfg.authorization_timeout + cfg.lease_wait,
            ))
            .await?;
            let wanted = if stepping_up { scope.as_deref() } else { None };
            if self.adopt_from_another_process(st, seen, wanted, &d.issuer).await? {
                return Ok(());
            }
            Some(lease)
        } else {
            None
        };
        let identity = self.client_identity(st, http, &d, scope.as_deref()).await?;
        let auth = self.client_auth(&identity.info, &d)?;
        let endpoint = Self::token_endpoint(http, &d, step)?;
        let ctx = self.source_context(http, &d, &identity.info, &auth, &endpoint);
        let token = match self.source.obtain(&ctx, scope.as_deref()).await {
            Ok(t) => t,
            Err(e) if is_refusal(&e, "invalid_client") => {
                return Err(match identity.origin {
                    Origin::Registered => {
                        tracing::info!(
                            "the registration was refused (invalid_client); the next attempt registers again"
                        );
                        self.forget_client(st, &d, &identity).await;
                        e
                    }
                    _ => Self::refused_configured_client(&identity.info.client_id, step, &e),
                });
            }
            Err(e) => return Err(e),
        };
        let token = self.finish_token(token, &d, scope.as_deref(), step)?;
        let version = self.storage.load_tokens().await?.version;
        self.store_new(version, token).await
    }

    /// Under the lease, before a person is asked: tokens another process
    /// stored since `seen` (it ran the flow while this one waited) are used
    /// instead, when they are valid and cover `wanted` (a step-up's scopes).
    async fn adopt_from_another_process(
        &self,
        st: &State,
        seen: Version,
        wanted: Option<&str>,
        issuer: &str,
    ) -> Result<bool> {
        let stored = self.storage.load_tokens().await?;
        let Some(t) = stored.value else {
            return Ok(false);
        };
        if stored.version == seen || t.is_expired() {
            return Ok(false);
        }
        // Tokens of another authorization server (the resource moved) are
        // not what the other process just obtained here.
        if t.issuer.as_deref().is_some_and(|i| !same_issuer(i, issuer)) {
            return Ok(false);
        }
        let held = split_scopes(t.scope.as_deref());
        if !split_scopes(wanted).iter().all(|w| held.contains(w)) {
            return Ok(false);
        }
        if self.adopt(st, t, stored.version) {
            tracing::info!("using the tokens another process obtained while this one waited for it");
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the held token covers every scope in `wanted`.
    pub(crate) fn covers(&self, wanted: &[String]) -> bool {
        let g = self.current.load();
        let Some(h) = g.as_ref() else {
            return false;
        };
        let held = split_scopes(h.token.scope.as_deref());
        !h.due() && wanted.iter().all(|w| held.contains(w))
    }

    // The flights' bodies.

    /// Before a request: load, refresh an expiring token, or obtain one
    /// from a source that needs no person. With a person needed, the server's
    /// 401 starts the flow.
    pub(crate) async fn ensure(self: Arc<Self>, http: Http) -> Result<()> {
        let mut st = self.state.lock().await;
        self.load_if_needed(&mut st).await?;
        if self.fresh_prepared().is_some() {
            return Ok(());
        }
        let still_valid = || self.current.load().as_ref().is_some_and(|h| !h.token.is_expired());
        if st
            .early_refresh_paused_until
            .is_some_and(|t| std::time::Instant::now() < t)
            && still_valid()
        {
            return Ok(());
        }
        if self.has_refresh_token() {
            let before = self.current.load().as_ref().map(|h| fingerprint(&h.token));
            let unchanged = || self.current.load().as_ref().map(|h| fingerprint(&h.token)) == before;
            match self.refresh(&mut st, &http, None).await {
                Ok(Refreshed::Yes) => return Ok(()),
                Ok(Refreshed::Dead) => {}
                // The store could not be reached before anything was asked of
                // the authorization server (the held tokens are the same): a
                // shared store that is down must not stop requests whose token
                // is still valid. Once it expires, every request tries again.
                Err(e) if e.kind() == ErrorKind::Storage && still_valid() && unchanged() => {
                    st.early_refresh_paused_until = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
                    tracing::warn!(error = %e, "the early refresh failed on the token store; the token is still valid and is used meanwhile");
                    return Ok(());
                }
                Err(e) if e.is_transient() && still_valid() => {
                    // Refreshing early failed on an outage, but the token has
                    // not expired: use it, and let the server rest a little
                    // before the next early attempt. Once it expires, every
                    // request tries. (Any other failure, a store that could
                    // not save the new tokens included, reaches the caller.)
                    let pause = e.retry_after().unwrap_or(std::time::Duration::from_secs(2));
                    st.early_refresh_paused_until = Some(std::time::Instant::now() + pause);
                    tracing::warn!(error = %e, "the refresh failed; the token is still valid and is used meanwhile");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if !self.source.needs_person() && self.fresh_prepared().is_none() {
            return self.obtain(&mut st, &http, None, None).await;
        }
        Ok(())
    }

    /// After a 401 for the token whose header was `rejected`: adopt a newer
    /// token, refresh, or run the whole flow again.
    pub(crate) async fn reauthorize(
        self: Arc<Self>,
        http: Http,
        rejected: Option<String>,
        challenge: Option<BearerChallenge>,
    ) -> Result<()> {
        let mut st = self.state.lock().await;
        self.load_if_needed(&mut st).await?;
        let is_new = |p: &Option<zeroize::Zeroizing<String>>| {
            p.as_ref().is_some_and(|p| Some(p.as_str()) != rejected.as_deref())
        };
        if is_new(&self.fresh_prepared()) {
            return Ok(());
        }
        // A 401 may mean the resource moved to another authorization server:
        // discovery is not reused across it.
        st.discovered = None;
        let d = self.discovered(&mut st, &http, challenge.as_ref()).await?;
        // A new token refused at once, by a resource that still names the
        // authorization server that issued it, counts; one that moved to
        // another server (a migration) neither counts nor starts anew.
        let (at_once, moved) = match self.current.load().as_ref() {
            Some(h) => (
                h.refused_at_once(rejected.as_deref()),
                h.token.issuer.as_deref().is_some_and(|i| !same_issuer(i, &d.issuer)),
            ),
            None => (false, false),
        };
        if !at_once || !self.source.needs_person() {
            st.refused_in_a_row = 0;
        } else if !moved {
            st.refused_in_a_row += 1;
        }
        if st.refused_in_a_row >= MAX_REFUSED_IN_A_ROW {
            return Err(Error::flow(
                Step::Request,
                format!(
                    "the server rejected {} new tokens in a row as soon as they were used; not authorizing again for now (check that it accepts this authorization server's tokens: their audience, issuer and signature)",
                    st.refused_in_a_row
                ),
            )
            .with_status(401)
            .with_url(&self.server_url));
        }
        if self.has_refresh_token()
            && self.refresh(&mut st, &http, rejected.as_deref()).await? == Refreshed::Yes
            && is_new(&self.fresh_prepared())
        {
            return Ok(());
        }
        self.obtain(&mut st, &http, challenge.as_ref(), None).await
    }

    /// After a 403 `insufficient_scope`: authorize again for `wanted`.
    pub(crate) async fn step_up(
        self: Arc<Self>,
        http: Http,
        challenge: BearerChallenge,
        wanted: Option<String>,
        at_once: bool,
    ) -> Result<()> {
        let mut st = self.state.lock().await;
        self.load_if_needed(&mut st).await?;
        if self.covers(&split_scopes(wanted.as_deref())) {
            return Ok(());
        }
        st.step_ups_in_a_row = if at_once { st.step_ups_in_a_row + 1 } else { 0 };
        if st.step_ups_in_a_row >= MAX_STEP_UPS_IN_A_ROW {
            return Err(Error::flow(
                Step::StepUp,
                format!(
                    "the server asked for a step-up {} times in a row, each time as soon as the last one was granted; not authorizing again for now",
                    st.step_ups_in_a_row
                ),
            )
            .with_status(403)
            .with_url(&self.server_url));
        }
        tracing::info!(scope = wanted.as_deref().unwrap_or(""), "stepping up");
        self.obtain(&mut st, &http, Some(&challenge), Some(wanted)).await
    }

    /// An explicit log-in: discovery and the whole flow, now.
    pub(crate) async fn authorize_now(self: Arc<Self>, http: Http) -> Result<()> {
        let mut st = self.state.lock().await;
        st.loaded = true;
        st.discovered = None;
        st.refused_in_a_row = 0;
        st.step_ups_in_a_row = 0;
        // Replaces what is stored now; only a log-in another process finishes
        // while this one waits for the lease is used instead.
        let seen = self.storage.load_tokens().await?.version;
        self.obtain_after(&mut st, &http, None, None, seen).await
    }
}
