//! RFC 7523 client assertions for `private_key_jwt`, signed by a
//! [`Signer`]: a key in PEM (RS256, PS256, ES256) or the host's signing
//! callback.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::error::Result;
use crate::keys::{LocalSigner, Signer, sign_jwt, sign_jwt_now};
use crate::model::{Secret, now_unix};
use crate::token::{ClientAuthenticator, TokenRequestParts};

/// Signs client assertions.
#[derive(Clone)]
pub struct JwtSigner {
    signer: Arc<dyn Signer>,
    lifetime_secs: u64,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &self.signer.algorithm())
            .field("key_id", &self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer from a PEM private key (PKCS#8, PKCS#1 or SEC1) for
    /// `algorithm` (`RS256`, `PS256` or `ES256`).
    pub fn from_pem(pem: &Secret, algorithm: &str, key_id: Option<String>) -> Result<Self> {
        Ok(Self::new(Arc::new(LocalSigner::from_pem(pem, algorithm, key_id)?)))
    }

    /// Assertions signed by `signer` (a key of the host's, a callback), each
    /// valid for five minutes.
    pub fn new(signer: Arc<dyn Signer>) -> Self {
        JwtSigner {
            signer,
            lifetime_secs: 300,
        }
    }

    /// The signer.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// An RFC 7523 §3 client assertion: `iss`, `sub`, `aud`, `iat`, `exp`
    /// (`lifetime_secs` from now) and a random `jti`, plus any extra claims
    /// (which cannot replace those).
    pub async fn client_assertion(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime_secs: u64,
        extra_claims: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Secret> {
        let claims = assertion_claims(issuer, subject, audience, lifetime_secs, extra_claims);
        sign_jwt(self.signer.as_ref(), typ_jwt(), &claims)
            .await
            .map(Secret::new)
    }

    /// [`JwtSigner::client_assertion`] without waiting: `None` when the
    /// signer is the host's callback, which must be awaited.
    pub fn client_assertion_now(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime_secs: u64,
        extra_claims: Option<&serde_json::Map<String, Value>>,
    ) -> Option<Result<Secret>> {
        let claims = assertion_claims(issuer, subject, audience, lifetime_secs, extra_claims);
        sign_jwt_now(self.signer.as_ref(), typ_jwt(), &claims).map(|r| r.map(Secret::new))
    }
}

/// The JOSE header fields of a client assertion besides `alg` and `kid`.
pub fn typ_jwt() -> serde_json::Map<String, Value> {
    let mut h = serde_json::Map::new();
    h.insert("typ".into(), json!("JWT"));
    h
}

/// The claims of an RFC 7523 §3 client assertion (see
/// [`JwtSigner::client_assertion`]).
pub fn assertion_claims(
    issuer: &str,
    subject: &str,
    audience: &str,
    lifetime_secs: u64,
    extra_claims: Option<&serde_json::Map<String, Value>>,
) -> Value {
    let now = now_unix() as i64;
    let mut claims = serde_json::Map::new();
    if let Some(extra) = extra_claims {
        claims.extend(extra.clone());
    }
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(subject));
    claims.insert("aud".into(), json!(audience));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + lifetime_secs as i64));
    claims.insert("jti".into(), json!(random_jti()));
    Value::Object(claims)
}

pub(crate) fn random_jti() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Makes the client assertion for a token request: a JWT signed by a key the
/// client holds, or one a platform or another process provides.
#[async_trait::async_trait]
pub trait AssertionProvider: Send + Sync {
    /// An assertion for `client_id` whose audience is `audience` (the
    /// authorization server's issuer).
    async fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret>;
}

#[async_trait::async_trait]
impl AssertionProvider for JwtSigner {
    async fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret> {
        self.client_assertion(client_id, client_id, audience, self.lifetime_secs, None)
            .await
    }
}

/// `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect
/// Core §9): a fresh assertion per request, with `aud` = the authorization
/// server's issuer.
pub struct PrivateKeyJwt {
    client_id: String,
    provider: Arc<dyn AssertionProvider>,
}

impl PrivateKeyJwt {
    /// The method for `client_id`, with assertions from `provider`.
    pub fn new(client_id: impl Into<String>, provider: Arc<dyn AssertionProvider>) -> Self {
        PrivateKeyJwt {
            client_id: client_id.into(),
            provider,
        }
    }
}

#[async_trait::async_trait]
impl ClientAuthenticator for PrivateKeyJwt {
    fn method(&self) -> &str {
        "private_key_jwt"
    }

    async fn apply(&self, parts: TokenRequestParts<'_>) -> Result<()> {
        let assertion = self.provider.assertion(&self.client_id, parts.issuer).await?;
        parts.form.push(("client_id".into(), self.client_id.clone()));
        parts.form.push((
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        parts
            .form
            .push(("client_assertion".into(), assertion.expose().to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey, signature::Verifier};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    #[tokio::test]
    async fn assertion_is_a_valid_es256_jwt_with_the_required_claims() {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let signer = Arc::new(JwtSigner::from_pem(&Secret::new(pem.as_str()), "ES256", Some("k1".into())).unwrap());
        let auth = PrivateKeyJwt::new("client-1", signer);
        let mut form = Vec::new();
        let mut headers = Vec::new();
        let ep = url::Url::parse("https://as.ex/token").unwrap();
        auth.apply(TokenRequestParts {
            form: &mut form,
            headers: &mut headers,
            token_endpoint: &ep,
            issuer: "https://as.ex",
        })
        .await
        .unwrap();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(
            get("client_assertion_type"),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        let jwt = get("client_assertion");
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.ex");
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        VerifyingKey::from(&key)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn bad_keys_and_algorithms_are_configuration_errors() {
        let e = JwtSigner::from_pem(&Secret::new("not a key"), "ES256", None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfiguration);
        assert!(!e.to_string().contains("not a key"));
        assert!(JwtSigner::from_pem(&Secret::new("x"), "HS256", None).is_err());
    }
}
