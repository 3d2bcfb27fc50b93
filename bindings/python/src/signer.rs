//! RFC 7523 client assertions signed by the core's `JwtSigner`, for
//! `SignedJWTParameters`: the key is parsed once, each call signs.

use mcp_oauth_client::{JwtSigner, Secret};
use pyo3::prelude::*;

use crate::errors::{OAuthConfigurationError, to_pyerr};

#[pyclass(frozen, module = "mcp_oauth_client._native")]
pub(crate) struct NativeSigner {
    signer: JwtSigner,
    lifetime_secs: u64,
    extra_claims: Option<serde_json::Map<String, serde_json::Value>>,
}

#[pymethods]
impl NativeSigner {
    /// A signer for `private_key_pem` (PKCS#8, PKCS#1 or SEC1 PEM) with
    /// `algorithm` (RS256, PS256 or ES256); `extra_claims_json` is a JSON
    /// object or `None`.
    #[new]
    #[pyo3(signature = (private_key_pem, algorithm, *, lifetime_seconds=300, extra_claims_json=None, key_id=None))]
    fn new(
        private_key_pem: String,
        algorithm: &str,
        lifetime_seconds: i64,
        extra_claims_json: Option<&str>,
        key_id: Option<String>,
    ) -> PyResult<Self> {
        if lifetime_seconds <= 0 {
            return Err(OAuthConfigurationError::new_err(
                "lifetime_seconds must be a positive number of seconds",
            ));
        }
        let extra_claims = match extra_claims_json {
            None => None,
            Some(json) => match serde_json::from_str(json) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                _ => {
                    return Err(OAuthConfigurationError::new_err(
                        "additional_claims must be a JSON object",
                    ));
                }
            },
        };
        let signer = JwtSigner::from_pem(&Secret::new(private_key_pem), algorithm, key_id).map_err(to_pyerr)?;
        Ok(NativeSigner {
            signer,
            lifetime_secs: lifetime_seconds as u64,
            extra_claims,
        })
    }

    /// A signed client assertion for `audience` (the authorization server's issuer).
    fn client_assertion(&self, issuer: &str, subject: &str, audience: &str) -> PyResult<String> {
        let signed = self
            .signer
            .client_assertion_now(
                issuer,
                subject,
                audience,
                self.lifetime_secs,
                self.extra_claims.as_ref(),
            )
            .ok_or_else(|| to_pyerr(mcp_oauth_client::Error::config("this key signs asynchronously")))?;
        Ok(signed.map_err(to_pyerr)?.expose().to_string())
    }

    fn __repr__(&self) -> String {
        format!("NativeSigner(alg='{}')", self.signer.signer().algorithm())
    }
}

/// The signing input of a client assertion whose signature the application
/// makes (a KMS, an HSM): the core's claims and encoding, for
/// `assertion_finish` once signed.
#[pyfunction]
#[pyo3(signature = (algorithm, issuer, subject, audience, *, lifetime_seconds=300, extra_claims_json=None, key_id=None))]
pub(crate) fn assertion_signing_input(
    algorithm: &str,
    issuer: &str,
    subject: &str,
    audience: &str,
    lifetime_seconds: i64,
    extra_claims_json: Option<&str>,
    key_id: Option<&str>,
) -> PyResult<String> {
    let algorithm = mcp_oauth_client::Algorithm::parse(algorithm).map_err(to_pyerr)?;
    if lifetime_seconds <= 0 {
        return Err(OAuthConfigurationError::new_err(
            "lifetime_seconds must be a positive number of seconds",
        ));
    }
    let extra = match extra_claims_json.map(serde_json::from_str::<serde_json::Value>) {
        None => None,
        Some(Ok(serde_json::Value::Object(m))) => Some(m),
        Some(_) => {
            return Err(OAuthConfigurationError::new_err(
                "additional_claims must be a JSON object",
            ));
        }
    };
    let claims =
        mcp_oauth_client::jwt::assertion_claims(issuer, subject, audience, lifetime_seconds as u64, extra.as_ref());
    Ok(mcp_oauth_client::keys::jwt_signing_input(
        algorithm,
        key_id,
        mcp_oauth_client::jwt::typ_jwt(),
        &claims,
    ))
}

/// The JWT of `signing_input` with the application's `signature` (ES256:
/// 64 bytes `r || s`, or DER as KMS APIs give it).
#[pyfunction]
pub(crate) fn assertion_finish(signing_input: String, algorithm: &str, signature: Vec<u8>) -> PyResult<String> {
    let algorithm = mcp_oauth_client::Algorithm::parse(algorithm).map_err(to_pyerr)?;
    mcp_oauth_client::keys::attach_signature(signing_input, algorithm, signature).map_err(to_pyerr)
}
