//! Signed JWTs the client makes itself: RFC 7523 client assertions for
//! `private_key_jwt` (and, later, DPoP proofs). ES256 with a P-256 key in
//! PKCS#8 PEM.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::{Secret, now_unix};
use crate::token::{ClientAuthenticator, TokenRequestParts};

/// A private key that signs JWTs.
#[derive(Clone)]
pub struct JwtSigner {
    key: SigningKey,
    key_id: Option<String>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &"ES256")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer from a PKCS#8 PEM private key for `algorithm` (only `ES256`
    /// is supported for now).
    pub fn from_pem(pem: &Secret, algorithm: &str, key_id: Option<String>) -> Result<Self> {
        if !algorithm.eq_ignore_ascii_case("ES256") {
            return Err(Error::config(format!(
                "signing algorithm {algorithm:?} is not supported; use ES256 with a P-256 key"
            )));
        }
        let key = SigningKey::from_pkcs8_pem(pem.expose())
            .map_err(|_| Error::config("the private key is not a PKCS#8 PEM P-256 key"))?;
        Ok(JwtSigner { key, key_id })
    }

    /// Sign `claims` with the header `typ` given.
    pub fn sign(&self, typ: &str, extra_header: Option<Value>, claims: &Value) -> String {
        let mut header = json!({"alg": "ES256", "typ": typ});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        if let (Some(Value::Object(extra)), Value::Object(h)) = (extra_header, &mut header) {
            h.extend(extra);
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }
}

pub(crate) fn random_jti() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl JwtSigner {
    /// An RFC 7523 §3 client assertion: `iss`, `sub`, `aud`, `iat`, `exp`
    /// (`lifetime_secs` from now) and a random `jti`, plus any extra claims
    /// (which cannot replace those).
    pub fn client_assertion(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime_secs: u64,
        extra_claims: Option<&serde_json::Map<String, Value>>,
    ) -> Secret {
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
        Secret::new(self.sign("JWT", None, &Value::Object(claims)))
    }
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
        Ok(self.client_assertion(client_id, client_id, audience, 300, None))
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
    use p256::ecdsa::{VerifyingKey, signature::Verifier};
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
