//! DPoP (RFC 9449): tokens bound to a key the client holds, presented with a
//! fresh proof on every request.
//!
//! [`Dpop`] is a [`TokenBinding`]: it adds a proof to every token request
//! (`htm`, `htu`, `iat`, `jti`, and the server's nonce), presents a
//! `token_type=DPoP` token as `Authorization: DPoP …` with a proof that also
//! carries `ath` (the token's hash), and keeps the `DPoP-Nonce` each server
//! sends, per origin. Tokens are stamped with the key's thumbprint (`jkt`),
//! so a stored token bound to another key is never presented.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::binding::{AuthHeaders, TokenBinding};
use crate::error::{Error, Result, Step};
use crate::keys::{LocalSigner, PrivateKey, Signer, jwk_thumbprint};
use crate::model::{OAuthToken, now_unix};

/// The field of a stored token that records the thumbprint of the key it is
/// bound to.
pub const JKT_FIELD: &str = "dpop_jkt";

/// The longest nonce kept; a longer `DPoP-Nonce` is ignored.
const MAX_NONCE_LEN: usize = 1024;

/// A DPoP key and the nonces servers gave.
pub struct Dpop {
    signer: Arc<dyn Signer>,
    /// base64url of the proof's JOSE header (`typ`, `alg`, `jwk`), made once.
    header_b64: String,
    thumbprint: String,
    nonces: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("alg", &self.signer.algorithm())
            .field("jkt", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

fn origin_of(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

/// `htu`: the URL without query and fragment (RFC 9449 §4.2).
fn htu(url: &str) -> Result<String> {
    let mut u = Url::parse(url).map_err(|_| Error::flow(Step::Signing, "the DPoP proof's URL is not a URL"))?;
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.to_string())
}

impl Dpop {
    /// DPoP with a new ES256 key of the provider's own. Tokens bound to it
    /// are only usable by this provider; give a persistent key with
    /// [`Dpop::new`] for tokens that outlive the process.
    pub fn generate() -> Self {
        Self::new(Arc::new(LocalSigner::new(PrivateKey::generate_es256(), None)))
            .unwrap_or_else(|_| unreachable!("a generated key has a public JWK"))
    }

    /// DPoP with `signer`, which must know its public key.
    pub fn new(signer: Arc<dyn Signer>) -> Result<Self> {
        let jwk = signer
            .public_jwk()
            .cloned()
            .ok_or_else(|| Error::config("DPoP needs the signing key's public JWK"))?;
        let thumbprint = jwk_thumbprint(&jwk)?;
        let header = json!({"typ": "dpop+jwt", "alg": signer.algorithm().as_str(), "jwk": jwk});
        Ok(Dpop {
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            signer,
            thumbprint,
            nonces: RwLock::new(HashMap::new()),
        })
    }

    /// The RFC 7638 thumbprint of the key (`cnf.jkt` of bound tokens).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The nonce held for `url`'s origin.
    pub fn nonce_for(&self, url: &str) -> Option<String> {
        let origin = origin_of(url)?;
        self.nonces
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&origin)
            .cloned()
    }

    fn signing_input(&self, method: &str, url: &str, access_token: Option<&str>) -> Result<String> {
        let mut claims = serde_json::Map::with_capacity(6);
        claims.insert("jti".into(), json!(crate::jwt::random_jti()));
        claims.insert("htm".into(), json!(method.to_ascii_uppercase()));
        claims.insert("htu".into(), json!(htu(url)?));
        claims.insert("iat".into(), json!(now_unix() as u64));
        if let Some(t) = access_token {
            claims.insert(
                "ath".into(),
                json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()))),
            );
        }
        if let Some(n) = self.nonce_for(url) {
            claims.insert("nonce".into(), json!(n));
        }
        Ok(format!(
            "{}.{}",
            self.header_b64,
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        ))
    }

    fn finish(mut input: String, sig: &[u8]) -> String {
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(sig));
        input
    }

    /// A proof for one request, without waiting; `None` when the signer is
    /// the host's callback.
    pub fn proof_now(&self, method: &str, url: &str, access_token: Option<&str>) -> Option<Result<String>> {
        let input = match self.signing_input(method, url, access_token) {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        Some(
            self.signer
                .sign_now(input.as_bytes())?
                .map(|sig| Self::finish(input, &sig)),
        )
    }

    /// A proof for one request.
    pub async fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> Result<String> {
        let input = self.signing_input(method, url, access_token)?;
        let sig = self.signer.sign(input.as_bytes()).await?;
        Ok(Self::finish(input, &sig))
    }

    /// Keep the `DPoP-Nonce` of a response from `url`. Returns whether it
    /// differs from the one held.
    pub fn observe_nonce(&self, url: &str, headers: &[(String, String)]) -> bool {
        let Some(nonce) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("dpop-nonce"))
            .map(|(_, v)| v.trim())
        else {
            return false;
        };
        // RFC 9449 §8.1: nonce = 1*NQCHAR (printable ASCII but `"` and `\`).
        if nonce.is_empty()
            || nonce.len() > MAX_NONCE_LEN
            || !nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            tracing::warn!("ignoring a malformed DPoP-Nonce");
            return false;
        }
        let Some(origin) = origin_of(url) else {
            return false;
        };
        let mut nonces = self.nonces.write().unwrap_or_else(|p| p.into_inner());
        if nonces.get(&origin).map(String::as_str) == Some(nonce) {
            return false;
        }
        nonces.insert(origin, nonce.to_string());
        true
    }

    fn token_of(prepared: &str) -> Option<&str> {
        prepared.strip_prefix("DPoP ")
    }
}

#[async_trait::async_trait]
impl TokenBinding for Dpop {
    fn accepts(&self, token: &OAuthToken) -> bool {
        if token.token_type.eq_ignore_ascii_case("bearer") {
            // The authorization server did not bind the token (RFC 9449 §5:
            // it may issue Bearer tokens); it is presented as one.
            return true;
        }
        if !token.token_type.eq_ignore_ascii_case("dpop") {
            return false;
        }
        match token.extra.get(JKT_FIELD).and_then(Value::as_str) {
            None => true,
            Some(jkt) => jkt == self.thumbprint,
        }
    }

    fn bind(&self, token: &mut OAuthToken) {
        if token.token_type.eq_ignore_ascii_case("dpop") {
            token.extra.insert(JKT_FIELD.into(), json!(self.thumbprint));
        }
    }

    fn accepts_stored(&self, token: &OAuthToken) -> bool {
        if token.token_type.eq_ignore_ascii_case("dpop") {
            // A stored DPoP token is only usable with the key it is bound to.
            return token.extra.get(JKT_FIELD).and_then(Value::as_str) == Some(self.thumbprint.as_str());
        }
        self.accepts(token)
    }

    fn prepare(&self, token: &OAuthToken) -> String {
        if token.token_type.eq_ignore_ascii_case("dpop") {
            format!("DPoP {}", token.access_token.expose())
        } else {
            format!("Bearer {}", token.access_token.expose())
        }
    }

    fn headers_now(&self, prepared: &str, method: &str, url: &str) -> Option<Result<AuthHeaders>> {
        let Some(token) = Self::token_of(prepared) else {
            return Some(Ok(AuthHeaders::authorization_only(prepared.to_string())));
        };
        Some(
            self.proof_now(method, url, Some(token))?
                .map(|proof| AuthHeaders::with_proof(prepared.to_string(), proof)),
        )
    }

    fn fixed_authorization<'a>(&self, prepared: &'a str) -> Option<&'a str> {
        // A Bearer token the authorization server did not bind carries no proof.
        Self::token_of(prepared).is_none().then_some(prepared)
    }

    async fn headers(&self, prepared: &str, method: &str, url: &str) -> Result<AuthHeaders> {
        let Some(token) = Self::token_of(prepared) else {
            return Ok(AuthHeaders::authorization_only(prepared.to_string()));
        };
        let proof = self.proof(method, url, Some(token)).await?;
        Ok(AuthHeaders::with_proof(prepared.to_string(), proof))
    }

    async fn token_request_headers(&self, token_endpoint: &Url) -> Result<Vec<(String, String)>> {
        Ok(vec![(
            "dpop".into(),
            self.proof("POST", token_endpoint.as_str(), None).await?,
        )])
    }

    fn observe(&self, url: &str, headers: &[(String, String)]) -> bool {
        self.observe_nonce(url, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn proofs_carry_what_rfc_9449_asks_and_are_fresh() {
        let d = Dpop::generate();
        let mut t = OAuthToken::bearer("tok");
        t.token_type = "DPoP".into();
        assert!(d.accepts(&t));
        d.bind(&mut t);
        assert!(d.accepts_stored(&t));
        let prepared = d.prepare(&t);
        assert_eq!(prepared, "DPoP tok");
        let url = "https://rs.example/mcp?x=1#frag";
        let h1 = d.headers_now(&prepared, "post", url).unwrap().unwrap();
        let h2 = d.headers(&prepared, "POST", url).await.unwrap();
        assert_eq!(h1.authorization(), "DPoP tok");
        let p1: Vec<&str> = h1.dpop().unwrap().split('.').collect();
        let p2: Vec<&str> = h2.dpop().unwrap().split('.').collect();
        let (hdr, c1, c2) = (decode(p1[0]), decode(p1[1]), decode(p2[1]));
        assert_eq!(hdr["typ"], "dpop+jwt");
        assert_eq!(hdr["alg"], "ES256");
        assert!(hdr["jwk"].get("d").is_none());
        assert_eq!(jwk_thumbprint(&hdr["jwk"]).unwrap(), d.thumbprint());
        assert_eq!(c1["htm"], "POST");
        assert_eq!(c1["htu"], "https://rs.example/mcp");
        assert_eq!(c1["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok")));
        assert_ne!(c1["jti"], c2["jti"]);
        assert!(c1.get("nonce").is_none());
        assert!(!format!("{h1:?}").contains("tok"));

        // A nonce is kept per origin and used from then on.
        let hs = vec![("DPoP-Nonce".to_string(), "n-1".to_string())];
        assert!(d.observe("https://rs.example/other", &hs));
        assert!(!d.observe("https://rs.example/mcp", &hs));
        let h3 = d.headers_now(&prepared, "GET", url).unwrap().unwrap();
        assert_eq!(decode(h3.dpop().unwrap().split('.').nth(1).unwrap())["nonce"], "n-1");
        let at_as = d
            .token_request_headers(&Url::parse("https://as.example/token").unwrap())
            .await
            .unwrap();
        let c = decode(at_as[0].1.split('.').nth(1).unwrap());
        assert!(c.get("nonce").is_none() && c.get("ath").is_none());
        assert_eq!(c["htu"], "https://as.example/token");
        // A malformed nonce is not kept.
        assert!(!d.observe(url, &[("dpop-nonce".into(), "bad\"nonce".into())]));
    }

    #[test]
    fn tokens_bound_to_another_key_are_not_used() {
        let (a, b) = (Dpop::generate(), Dpop::generate());
        let mut t = OAuthToken::bearer("tok");
        t.token_type = "DPoP".into();
        a.bind(&mut t);
        assert!(!b.accepts_stored(&t));
        assert!(!b.accepts(&t));
        let mut unbound = OAuthToken::bearer("tok");
        unbound.token_type = "DPoP".into();
        assert!(!a.accepts_stored(&unbound));
        // A Bearer token from a server that did not bind it is presented as one.
        let bearer = OAuthToken::bearer("plain");
        assert!(a.accepts(&bearer));
        let h = a
            .headers_now(&a.prepare(&bearer), "GET", "https://rs/x")
            .unwrap()
            .unwrap();
        assert_eq!((h.authorization(), h.dpop()), ("Bearer plain", None));
    }
}
