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
    /// A signer for `private_key_pem` (PKCS#8) with `algorithm` (only ES256
    /// with a P-256 key); `extra_claims_json` is a JSON object or `None`.
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
