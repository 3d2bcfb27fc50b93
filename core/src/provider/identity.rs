//! The client identity for an authorization server, in the MCP spec's order:
//! a stored registration for that issuer, pre-registered credentials, a
//! Client ID Metadata Document the server accepts, then dynamic
//! registration. Credentials are bound to the issuer that issued them.

use std::sync::Arc;

use crate::discovery::Discovered;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::jwt::PrivateKeyJwt;
use crate::model::OAuthClientInformationFull;
use crate::registration::{bound_to, register};
use crate::token::ClientAuthentication;

use super::{Inner, State};

/// Where a client identity came from; decides what `invalid_client` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Registered dynamically (now or in an earlier run): can be done again.
    Registered,
    /// Configured by the host: only the host can fix it.
    Configured,
    /// A Client ID Metadata Document URL: only its publisher can fix it.
    MetadataDocument,
}

#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) info: OAuthClientInformationFull,
    pub(crate) origin: Origin,
}

impl Identity {
    /// Why this identity, for diagnostics.
    pub(crate) fn describe(&self) -> String {
        match self.origin {
            Origin::Registered => format!("stored registration {} (dynamic registration)", self.info.client_id),
            Origin::Configured => format!("pre-registered client {}", self.info.client_id),
            Origin::MetadataDocument => format!("client ID metadata document {}", self.info.client_id),
        }
    }
}

impl Inner {
    /// The identity that needs no registration request.
    pub(crate) async fn existing_client(&self, st: &mut State, d: &Discovered) -> Result<Option<Identity>> {
        if let Some(c) = &st.client {
            if bound_to(&c.info, &d.issuer) {
                return Ok(Some(c.clone()));
            }
        }
        let cfg = &self.config;
        if let Some(stored) = self.storage.get_client_info_for(&d.issuer).await? {
            let configured_other = cfg
                .static_client
                .as_ref()
                .is_some_and(|sc| sc.client_id != stored.client_id);
            if st.dead_clients.contains(&stored.client_id) {
                tracing::info!("the stored registration was refused by the authorization server; not reusing it");
            } else if !bound_to(&stored, &d.issuer) {
                tracing::info!("stored client information belongs to another authorization server; not reusing it");
            } else if !stored.secret_expired() && !configured_other {
                let origin = if cfg.static_client.is_some() {
                    Origin::Configured
                } else {
                    Origin::Registered
                };
                let id = Identity { info: stored, origin };
                st.client = Some(id.clone());
                return Ok(Some(id));
            }
        }
        if let Some(sc) = &cfg.static_client {
            let mut info = OAuthClientInformationFull::new(sc.client_id.clone(), sc.client_secret.clone());
            if let Some(m) = &sc.token_endpoint_auth_method {
                info.set_token_endpoint_auth_method(m);
            }
            info.issuer = Some(d.issuer.clone());
            let id = Identity {
                info,
                origin: Origin::Configured,
            };
            st.client = Some(id.clone());
            return Ok(Some(id));
        }
        if let Some(cimd) = &cfg.client_metadata_url {
            if d.server.client_id_metadata_document_supported == Some(true) {
                let mut info = OAuthClientInformationFull::new(cimd.clone(), None);
                info.set_token_endpoint_auth_method("none");
                info.issuer = Some(d.issuer.clone());
                tracing::info!(client_id = %cimd, "using the client ID metadata document URL as client_id");
                let id = Identity {
                    info,
                    origin: Origin::MetadataDocument,
                };
                st.client = Some(id.clone());
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The identity, registering when none exists and the source allows it.
    /// A registration is validated before it is stored or used.
    pub(crate) async fn client_identity(
        &self,
        st: &mut State,
        http: &Http,
        d: &Discovered,
        scope: Option<&str>,
    ) -> Result<Identity> {
        if let Some(c) = self.existing_client(st, d).await? {
            return Ok(c);
        }
        if !self.source.may_register() {
            return Err(Error::config(format!(
                "the {} grant needs pre-registered credentials (a client_id)",
                self.source.name()
            )));
        }
        let info = register(
            http,
            &d.server,
            &self.config.client_metadata,
            scope,
            self.config.client_assertion.is_some(),
        )
        .await?;
        let id = Identity {
            info,
            origin: Origin::Registered,
        };
        st.client = Some(id.clone());
        // The registration is usable in memory even when the store fails;
        // the failure is still reported.
        self.storage.set_client_info(id.info.clone()).await?;
        Ok(id)
    }

    /// Forget a registration the authorization server refused.
    pub(crate) async fn forget_client(&self, st: &mut State, d: &Discovered, id: &Identity) {
        st.client = None;
        st.dead_clients.insert(id.info.client_id.clone());
        match self.storage.remove_client_info(&d.issuer).await {
            Ok(true) => tracing::info!("removed the refused registration from the store"),
            Ok(false) => tracing::info!("the store cannot remove the refused registration; it is ignored from now on"),
            Err(e) => tracing::warn!(error = %e, "could not remove the refused registration from the store"),
        }
    }

    pub(crate) fn client_auth(
        &self,
        info: &OAuthClientInformationFull,
        d: &Discovered,
    ) -> Result<ClientAuthentication> {
        if let Some(signer) = &self.config.client_assertion {
            let registered = info.token_endpoint_auth_method();
            if registered.is_none() || registered == Some("private_key_jwt") {
                return Ok(ClientAuthentication::Custom(Arc::new(PrivateKeyJwt::new(
                    info.client_id.clone(),
                    signer.clone(),
                ))));
            }
        }
        ClientAuthentication::for_client(
            &info.client_id,
            info.client_secret.as_ref(),
            info.token_endpoint_auth_method(),
            d.server.token_endpoint_auth_methods_supported.as_deref(),
        )
    }
}
