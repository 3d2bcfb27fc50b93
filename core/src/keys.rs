//! Keys that sign the JWTs the client makes itself (RFC 7523 client
//! assertions, DPoP proofs), and signers held elsewhere.
//!
//! A [`PrivateKey`] is read from PEM in any of the forms keys are shipped in:
//! PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and SEC1
//! (`EC PRIVATE KEY`). RS256 and PS256 sign with ring (constant time), ES256
//! with RustCrypto's `p256`. What is wrong with a key is named (not PEM,
//! encrypted, a public key, the wrong curve, an algorithm the key cannot do),
//! and no error ever contains key material.
//!
//! A [`Signer`] is what signs: a [`LocalSigner`] over a [`PrivateKey`], or a
//! [`CallbackSigner`] for keys that never leave an HSM, a cloud KMS or a
//! Secure Enclave: it hands the bytes to sign to the host and waits, with a
//! deadline, for the signature.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use p256::pkcs8::{DecodePrivateKey, ObjectIdentifier, PrivateKeyInfo};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result, Step};
use crate::model::Secret;

/// A JWS algorithm the client signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    /// The JWS name (`RS256`, `PS256`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
        }
    }

    /// The algorithm for a JWS name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_uppercase().as_str() {
            "RS256" => Ok(Algorithm::Rs256),
            "PS256" => Ok(Algorithm::Ps256),
            "ES256" => Ok(Algorithm::Es256),
            _ => Err(Error::config(format!(
                "signing algorithm {name:?} is not supported; use RS256 or PS256 (RSA key) or ES256 (P-256 key)"
            ))),
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Algorithm::Rs256 | Algorithm::Ps256 => "an RSA key",
            Algorithm::Es256 => "a P-256 EC key",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

enum KeyMaterial {
    Rsa(ring::signature::RsaKeyPair),
    /// Read by p256 (which knows every form the key comes in), signed with
    /// by ring: its P-256 signatures take a fraction of the time, and the
    /// DPoP hot path signs one per request.
    P256(ring::signature::EcdsaKeyPair),
}

/// The key `key` as ring's, for signing.
fn p256_material(key: &p256::ecdsa::SigningKey) -> Result<KeyMaterial> {
    let scalar = zeroize::Zeroizing::new(<[u8; 32]>::from(key.to_bytes()));
    let point = key.verifying_key().to_encoded_point(false);
    ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        scalar.as_slice(),
        point.as_bytes(),
        &ring::rand::SystemRandom::new(),
    )
    .map(KeyMaterial::P256)
    .map_err(|_| bad_key("the P-256 private key was rejected"))
}

/// A private key and the algorithm it signs with. `Debug` shows neither.
pub struct PrivateKey {
    algorithm: Algorithm,
    material: KeyMaterial,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

fn curve_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256".into(),
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => format!("the curve {other}"),
    }
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.112" => "an Ed25519 key".into(),
        "1.3.101.113" => "an Ed448 key".into(),
        "1.2.840.10040.4.1" => "a DSA key".into(),
        other => format!("a key of algorithm {other}"),
    }
}

fn bad_key(message: impl Into<String>) -> Error {
    Error::config(message)
}

impl PrivateKey {
    /// Read a private key for `algorithm` from PEM: PKCS#8, PKCS#1 (RSA) or
    /// SEC1 (EC). An encrypted key, a public key or certificate, a key of
    /// another type or curve are refused with a message saying which.
    pub fn from_pem(pem: &Secret, algorithm: Algorithm) -> Result<Self> {
        let text = pem.expose().trim();
        if !text.starts_with("-----BEGIN ") {
            return Err(bad_key(
                "the private key is not PEM (expected a \"-----BEGIN PRIVATE KEY-----\" block)",
            ));
        }
        if text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(bad_key(
                "the private key is encrypted; give it unencrypted (e.g. `openssl pkcs8 -topk8 -nocrypt`)",
            ));
        }
        let (label, der) = pem_rfc7468::decode_vec(text.as_bytes())
            .map_err(|_| bad_key("the private key is not valid PEM (a damaged or truncated block)"))?;
        let der = zeroize::Zeroizing::new(der);
        let material = match label {
            "PRIVATE KEY" => Self::from_pkcs8(&der, algorithm)?,
            "RSA PRIVATE KEY" => {
                Self::expect_rsa(algorithm, "an RSA key (PKCS#1)")?;
                KeyMaterial::Rsa(ring::signature::RsaKeyPair::from_der(&der).map_err(|e| rsa_rejected(&e))?)
            }
            "EC PRIVATE KEY" => Self::from_sec1(&der, algorithm)?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad_key(
                    "the private key is encrypted (ENCRYPTED PRIVATE KEY); give it unencrypted (e.g. `openssl pkcs8 -topk8 -nocrypt`)",
                ));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
                return Err(bad_key(format!(
                    "the PEM holds a {}, not a private key",
                    label.to_ascii_lowercase()
                )));
            }
            other => return Err(bad_key(format!("the PEM block {other:?} is not a private key"))),
        };
        Ok(PrivateKey { algorithm, material })
    }

    fn expect_rsa(algorithm: Algorithm, found: &str) -> Result<()> {
        match algorithm {
            Algorithm::Rs256 | Algorithm::Ps256 => Ok(()),
            Algorithm::Es256 => Err(bad_key(format!(
                "the algorithm ES256 needs {} but the key is {found}",
                algorithm.needs()
            ))),
        }
    }

    fn expect_ec(algorithm: Algorithm, curve: &ObjectIdentifier) -> Result<()> {
        if algorithm != Algorithm::Es256 {
            return Err(bad_key(format!(
                "the algorithm {algorithm} needs {} but the key is an EC key ({})",
                algorithm.needs(),
                curve_name(curve)
            )));
        }
        if *curve != P256 {
            return Err(bad_key(format!(
                "the EC key is on {}; ES256 needs a P-256 key",
                curve_name(curve)
            )));
        }
        Ok(())
    }

    fn from_pkcs8(der: &[u8], algorithm: Algorithm) -> Result<KeyMaterial> {
        let info = PrivateKeyInfo::try_from(der).map_err(|_| bad_key("the PKCS#8 private key cannot be read"))?;
        let oid = info.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            Self::expect_rsa(algorithm, "an RSA key")?;
            return Ok(KeyMaterial::Rsa(
                ring::signature::RsaKeyPair::from_pkcs8(der).map_err(|e| rsa_rejected(&e))?,
            ));
        }
        if oid == RSASSA_PSS {
            return Err(bad_key(
                "the RSA key is restricted to RSASSA-PSS (id-RSASSA-PSS); export it as a plain RSA key (rsaEncryption)",
            ));
        }
        if oid == EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| bad_key("the EC private key does not name its curve"))?;
            Self::expect_ec(algorithm, &curve)?;
            return p256_material(
                &p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|_| bad_key("the P-256 private key cannot be read"))?,
            );
        }
        Err(bad_key(format!(
            "the private key is {}; {algorithm} needs {}",
            algorithm_name(&oid),
            algorithm.needs()
        )))
    }

    fn from_sec1(der: &[u8], algorithm: Algorithm) -> Result<KeyMaterial> {
        let parsed =
            sec1::EcPrivateKey::try_from(der).map_err(|_| bad_key("the SEC1 EC private key cannot be read"))?;
        let curve = parsed
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| bad_key("the SEC1 EC private key does not name its curve"))?;
        Self::expect_ec(algorithm, &curve)?;
        let secret =
            p256::SecretKey::from_sec1_der(der).map_err(|_| bad_key("the P-256 private key cannot be read"))?;
        p256_material(&secret.into())
    }

    /// A new random P-256 key for ES256 (a DPoP key of the provider's own).
    pub fn generate_es256() -> Self {
        PrivateKey {
            algorithm: Algorithm::Es256,
            material: p256_material(&p256::ecdsa::SigningKey::random(
                &mut p256::elliptic_curve::rand_core::OsRng,
            ))
            .unwrap_or_else(|_| unreachable!("a new P-256 key is a valid one")),
        }
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key as a JWK (RFC 7517): `kty`, and `crv`/`x`/`y` or `n`/`e`.
    pub fn public_jwk(&self) -> Value {
        match &self.material {
            KeyMaterial::P256(k) => {
                // The uncompressed point: 0x04, then x and y, 32 bytes each.
                let point = ring::signature::KeyPair::public_key(k).as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
            KeyMaterial::Rsa(k) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(&public.n),
                    "e": URL_SAFE_NO_PAD.encode(&public.e),
                })
            }
        }
    }

    /// Sign `input` (a JWS signing input). ES256 signatures are the 64-byte
    /// `r || s` of JWS, not DER.
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        match &self.material {
            KeyMaterial::P256(k) => k
                .sign(&ring::rand::SystemRandom::new(), input)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| Error::new(ErrorKind::Flow, Step::Signing, "the ES256 signature failed")),
            KeyMaterial::Rsa(k) => {
                let padding: &dyn ring::signature::RsaEncoding = match self.algorithm {
                    Algorithm::Ps256 => &ring::signature::RSA_PSS_SHA256,
                    _ => &ring::signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(padding, &ring::rand::SystemRandom::new(), input, &mut sig)
                    .map_err(|_| Error::new(ErrorKind::Flow, Step::Signing, "the RSA signature failed"))?;
                Ok(sig)
            }
        }
    }
}

fn rsa_rejected(e: &ring::error::KeyRejected) -> Error {
    bad_key(match e.to_string().as_str() {
        "TooSmall" => "the RSA key is too small; use at least 2048 bits".to_string(),
        "TooLarge" => "the RSA key is too large (more than 8192 bits)".to_string(),
        "InvalidEncoding" => "the RSA private key cannot be read (invalid encoding)".to_string(),
        "InconsistentComponents" => "the RSA private key is inconsistent (its components do not match)".to_string(),
        other => format!("the RSA private key was rejected ({other})"),
    })
}

/// The RFC 7638 thumbprint of a public JWK (base64url SHA-256 of its required
/// members in lexicographic order): DPoP's `jkt`.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config(format!("the public JWK has no {k:?}")))
    };
    let canonical = match s("kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            json!(s("crv")?),
            json!(s("x")?),
            json!(s("y")?)
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, json!(s("e")?), json!(s("n")?)),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, json!(s("crv")?), json!(s("x")?)),
        other => {
            return Err(Error::config(format!(
                "the public JWK has an unsupported kty {other:?}"
            )));
        }
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// What signs JWTs for the client.
#[async_trait::async_trait]
pub trait Signer: Send + Sync {
    /// The JWS algorithm.
    fn algorithm(&self) -> Algorithm;

    /// The key ID to put in the JWS header (`kid`), if any.
    fn key_id(&self) -> Option<&str> {
        None
    }

    /// The public key as a JWK, when known (DPoP needs it; client assertions
    /// do not).
    fn public_jwk(&self) -> Option<&Value>;

    /// Sign now, without waiting, when the key is at hand (the hot path of
    /// DPoP). `None` when signing must wait for something else.
    fn sign_now(&self, input: &[u8]) -> Option<Result<Vec<u8>>>;

    /// Sign `input`.
    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>>;
}

/// A signer over a key held in memory.
pub struct LocalSigner {
    key: PrivateKey,
    key_id: Option<String>,
    jwk: Value,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("algorithm", &self.key.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// A signer over `key`, with an optional `kid`.
    pub fn new(key: PrivateKey, key_id: Option<String>) -> Self {
        let jwk = key.public_jwk();
        LocalSigner { key, key_id, jwk }
    }

    /// A signer from a PEM key for the algorithm named (`RS256`, `PS256`, `ES256`).
    pub fn from_pem(pem: &Secret, algorithm: &str, key_id: Option<String>) -> Result<Self> {
        Ok(Self::new(
            PrivateKey::from_pem(pem, Algorithm::parse(algorithm)?)?,
            key_id,
        ))
    }
}

#[async_trait::async_trait]
impl Signer for LocalSigner {
    fn algorithm(&self) -> Algorithm {
        self.key.algorithm
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    fn public_jwk(&self) -> Option<&Value> {
        Some(&self.jwk)
    }

    fn sign_now(&self, input: &[u8]) -> Option<Result<Vec<u8>>> {
        Some(self.key.sign(input))
    }

    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        self.key.sign(input)
    }
}

/// The host's signing function: the bytes to sign in, the signature out.
pub type SignFn = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>>> + Send + Sync>;

/// A signer whose key is held elsewhere (an HSM, a cloud KMS, a Secure
/// Enclave): each signature is the host's, within a deadline. An ES256
/// signature may come back DER-encoded (as most KMS APIs return it); it is
/// converted to the JWS form.
pub struct CallbackSigner {
    algorithm: Algorithm,
    key_id: Option<String>,
    jwk: Option<Value>,
    sign: SignFn,
    timeout: Duration,
}

impl std::fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSigner")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CallbackSigner {
    /// A signer calling `sign`, for `algorithm`. `public_jwk` (the public
    /// key, needed for DPoP) is checked: it must be a public key of the
    /// algorithm's type, with no private member.
    pub fn new(
        algorithm: Algorithm,
        key_id: Option<String>,
        public_jwk: Option<Value>,
        sign: SignFn,
        timeout: Duration,
    ) -> Result<Self> {
        if let Some(jwk) = &public_jwk {
            let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
            let want = match algorithm {
                Algorithm::Es256 => "EC",
                _ => "RSA",
            };
            if kty != want {
                return Err(Error::config(format!(
                    "the public JWK's kty is {kty:?}; {algorithm} needs {want:?}"
                )));
            }
            if jwk.get("d").is_some() {
                return Err(Error::config(
                    "the public JWK holds a private key (\"d\"); give the public members only",
                ));
            }
            jwk_thumbprint(jwk)?;
        }
        if timeout.is_zero() {
            return Err(Error::config("the signing timeout must be greater than zero"));
        }
        Ok(CallbackSigner {
            algorithm,
            key_id,
            jwk: public_jwk,
            sign,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl Signer for CallbackSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    fn public_jwk(&self) -> Option<&Value> {
        self.jwk.as_ref()
    }

    fn sign_now(&self, _input: &[u8]) -> Option<Result<Vec<u8>>> {
        None
    }

    async fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        let fut = (self.sign)(input.to_vec());
        let sig = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(sig)) => sig,
            Ok(Err(e)) => {
                return Err(Error::handler(
                    Step::Signing,
                    format!("the signing callback failed: {}", e.message()),
                ));
            }
            Err(_) => {
                return Err(Error::handler(
                    Step::Signing,
                    format!(
                        "the signing callback did not answer within {} ms",
                        self.timeout.as_millis()
                    ),
                ));
            }
        };
        normalize_signature(self.algorithm, sig)
    }
}

/// A signature from outside (a host's callback, a KMS) in the JWS form: an
/// ES256 signature may come DER-encoded and is converted to `r || s`.
pub fn normalize_signature(algorithm: Algorithm, sig: Vec<u8>) -> Result<Vec<u8>> {
    if sig.is_empty() {
        return Err(Error::handler(
            Step::Signing,
            "the signing callback returned no signature",
        ));
    }
    if algorithm == Algorithm::Es256 && sig.len() != 64 {
        return p256::ecdsa::Signature::from_der(&sig)
            .map(|s| s.to_bytes().to_vec())
            .map_err(|_| {
                Error::handler(
                    Step::Signing,
                    format!(
                        "the signing callback returned {} bytes: not an ES256 signature (64 bytes r||s, or DER)",
                        sig.len()
                    ),
                )
            });
    }
    Ok(sig)
}

/// The signing input of a JWT (`header.claims`, base64url) for a signature
/// made elsewhere; finish it with [`attach_signature`]. `header` gets `alg`
/// (and `kid` when given).
pub fn jwt_signing_input(
    algorithm: Algorithm,
    key_id: Option<&str>,
    mut header: serde_json::Map<String, Value>,
    claims: &Value,
) -> String {
    header.insert("alg".into(), json!(algorithm.as_str()));
    if let Some(kid) = key_id {
        header.entry("kid").or_insert_with(|| json!(kid));
    }
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The JWT of `input` (from [`jwt_signing_input`]) with `sig` made elsewhere.
pub fn attach_signature(input: String, algorithm: Algorithm, sig: Vec<u8>) -> Result<String> {
    let sig = normalize_signature(algorithm, sig)?;
    Ok(finish(input, &sig))
}

/// Encode and sign a JWT: `header` gets `alg` (and `kid` when the signer
/// has one) added.
pub async fn sign_jwt(
    signer: &dyn Signer,
    mut header: serde_json::Map<String, Value>,
    claims: &Value,
) -> Result<String> {
    let input = signing_input(signer, &mut header, claims);
    let sig = signer.sign(input.as_bytes()).await?;
    Ok(finish(input, &sig))
}

/// [`sign_jwt`] without waiting; `None` when the signer must wait.
pub fn sign_jwt_now(
    signer: &dyn Signer,
    mut header: serde_json::Map<String, Value>,
    claims: &Value,
) -> Option<Result<String>> {
    let input = signing_input(signer, &mut header, claims);
    Some(signer.sign_now(input.as_bytes())?.map(|sig| finish(input, &sig)))
}

fn signing_input(signer: &dyn Signer, header: &mut serde_json::Map<String, Value>, claims: &Value) -> String {
    jwt_signing_input(signer.algorithm(), signer.key_id(), std::mem::take(header), claims)
}

fn finish(mut input: String, sig: &[u8]) -> String {
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(sig));
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Secret {
        let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        Secret::new(std::fs::read_to_string(path).unwrap())
    }

    fn verify(signer: &LocalSigner, jwt: &str) {
        use ring::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let jwk = signer.public_jwk().unwrap();
        let b = |k: &str| URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
        match signer.algorithm() {
            Algorithm::Es256 => {
                let mut point = vec![4u8];
                point.extend(b("x"));
                point.extend(b("y"));
                ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &sig)
                    .unwrap();
            }
            alg => {
                let params = if alg == Algorithm::Ps256 {
                    &RSA_PSS_2048_8192_SHA256
                } else {
                    &RSA_PKCS1_2048_8192_SHA256
                };
                ring::signature::RsaPublicKeyComponents { n: b("n"), e: b("e") }
                    .verify(params, input.as_bytes(), &sig)
                    .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn every_algorithm_signs_from_every_key_form() {
        for (file, alg) in [
            ("rsa-pkcs1.pem", "RS256"),
            ("rsa-pkcs8.pem", "RS256"),
            ("rsa-pkcs1.pem", "PS256"),
            ("rsa-pkcs8.pem", "PS256"),
            ("ec-sec1.pem", "ES256"),
            ("ec-pkcs8.pem", "ES256"),
        ] {
            let signer = LocalSigner::from_pem(&key(file), alg, Some("k1".into())).unwrap();
            let jwt = sign_jwt(&signer, serde_json::Map::new(), &json!({"sub": "x"}))
                .await
                .unwrap();
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
            assert_eq!(header["alg"], alg, "{file}");
            assert_eq!(header["kid"], "k1");
            verify(&signer, &jwt);
            assert!(!format!("{signer:?}").contains("BEGIN"));
        }
    }

    #[test]
    fn what_is_wrong_with_a_key_is_named() {
        let cases = [
            ("ec-encrypted.pem", "ES256", "encrypted"),
            ("ec-public.pem", "ES256", "public key, not a private key"),
            ("p384-sec1.pem", "ES256", "P-384"),
            ("p384-pkcs8.pem", "ES256", "P-384"),
            ("ed25519.pem", "ES256", "Ed25519"),
            (
                "rsa-pkcs8.pem",
                "ES256",
                "needs a P-256 EC key but the key is an RSA key",
            ),
            (
                "rsa-pkcs1.pem",
                "ES256",
                "needs a P-256 EC key but the key is an RSA key (PKCS#1)",
            ),
            (
                "ec-pkcs8.pem",
                "RS256",
                "needs an RSA key but the key is an EC key (P-256)",
            ),
            ("ec-sec1.pem", "PS256", "needs an RSA key"),
        ];
        for (file, alg, want) in cases {
            let e = LocalSigner::from_pem(&key(file), alg, None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{file}");
            assert!(e.message().contains(want), "{file} {alg}: {}", e.message());
        }
        let e = LocalSigner::from_pem(&Secret::new("MIIBVgIBADANBgkqhkiG9w0BAQEFAASC"), "RS256", None).unwrap_err();
        assert!(e.message().contains("not PEM"), "{}", e.message());
        let e = LocalSigner::from_pem(&key("ec-sec1.pem"), "HS256", None).unwrap_err();
        assert!(e.message().contains("not supported"), "{}", e.message());
        let mut damaged = key("rsa-pkcs8.pem").expose().to_string();
        damaged.replace_range(100..140, "");
        let e = LocalSigner::from_pem(&Secret::new(damaged.clone()), "RS256", None).unwrap_err();
        assert!(!e.message().contains(&damaged[60..90]));
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[tokio::test]
    async fn callback_signatures_are_checked_converted_and_bounded() {
        let local = Arc::new(LocalSigner::from_pem(&key("ec-pkcs8.pem"), "ES256", None).unwrap());
        // A KMS answers with DER: converted to r||s.
        let l = local.clone();
        let der: SignFn = Arc::new(move |input: Vec<u8>| {
            let l = l.clone();
            Box::pin(async move {
                let raw = l.sign(&input).await?;
                Ok(p256::ecdsa::Signature::from_slice(&raw)
                    .unwrap()
                    .to_der()
                    .as_bytes()
                    .to_vec())
            })
        });
        let signer = CallbackSigner::new(
            Algorithm::Es256,
            None,
            local.public_jwk().cloned(),
            der,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(signer.sign_now(b"x").is_none());
        let jwt = sign_jwt(&signer, serde_json::Map::new(), &json!({"a": 1}))
            .await
            .unwrap();
        verify(&local, &jwt);

        let failing: SignFn = Arc::new(|_| Box::pin(async { Err(Error::config("HSM offline")) }));
        let signer = CallbackSigner::new(Algorithm::Es256, None, None, failing, Duration::from_secs(5)).unwrap();
        let e = signer.sign(b"x").await.unwrap_err();
        assert_eq!((e.kind(), e.step()), (ErrorKind::Handler, Some(Step::Signing)));
        assert!(e.message().contains("HSM offline"));

        let hanging: SignFn = Arc::new(|_| Box::pin(futures_util::future::pending()));
        let signer = CallbackSigner::new(Algorithm::Rs256, None, None, hanging, Duration::from_millis(50)).unwrap();
        let e = signer.sign(b"x").await.unwrap_err();
        assert!(e.message().contains("did not answer"), "{}", e.message());

        let garbage: SignFn = Arc::new(|_| Box::pin(async { Ok(vec![1, 2, 3]) }));
        let signer = CallbackSigner::new(Algorithm::Es256, None, None, garbage, Duration::from_secs(1)).unwrap();
        assert!(
            signer
                .sign(b"x")
                .await
                .unwrap_err()
                .message()
                .contains("not an ES256 signature")
        );

        let mut private = local.public_jwk().cloned().unwrap();
        private["d"] = json!("AAAA");
        let ok: SignFn = Arc::new(|_| Box::pin(async { Ok(vec![0; 64]) }));
        assert!(
            CallbackSigner::new(
                Algorithm::Es256,
                None,
                Some(private),
                ok.clone(),
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            CallbackSigner::new(
                Algorithm::Rs256,
                None,
                local.public_jwk().cloned(),
                ok,
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
