//! What a DPoP proof costs per request, beside the Bearer hot path.
//!
//! ```sh
//! cargo run --release -p mcp-oauth-client --example bench_dpop
//! ```
//!
//! Both providers hold a token (no network): one presents it as a Bearer
//! token, one as a DPoP token with a local ES256 key. Each figure is the time
//! of one `OAuthClientProvider::cached_headers` call (the headers of one
//! request), the median of several runs of many calls; the DPoP one includes
//! signing a fresh proof (`jti`, `htm`, `htu`, `iat`, `ath`). `Dpop::proof_now`
//! is the proof alone, and `PrivateKey::sign` the ES256 signature in it.
//! Options: `--iterations N` per run (default 20000),
//! `--runs N` (default 7).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use mcp_oauth_client::{
    Dpop, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, OAuthToken, PrivateKey, ProviderConfig, RequestInfo,
    TokenBinding, TokenStorage,
};

const SERVER: &str = "https://mcp.example.com/mcp";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

/// An access token the size of a typical JWT access token.
fn token(dpop: Option<&Dpop>) -> OAuthToken {
    let mut t = OAuthToken::bearer(format!("eyJ{}", "a".repeat(800)));
    if let Some(d) = dpop {
        t.token_type = "DPoP".into();
        d.bind(&mut t);
    }
    t
}

/// A provider holding `token`, ready for the hot path.
async fn provider_with(token: OAuthToken, binding: Option<Arc<dyn TokenBinding>>) -> OAuthClientProvider {
    let storage = Arc::new(MemoryStorage::new());
    storage.set_tokens(token).await.unwrap();
    let mut cfg = ProviderConfig::new(SERVER, OAuthClientMetadata::new(vec!["http://127.0.0.1:9/cb".into()]));
    cfg.binding = binding;
    let p = OAuthClientProvider::new(cfg, storage, None).unwrap();
    // The first call loads the stored token; from then on the hot path has it.
    p.headers(&RequestInfo::new("POST", SERVER)).await.unwrap().unwrap();
    assert!(p.cached_headers("POST", SERVER).is_some());
    p
}

/// Median µs per call of `f` over `runs` runs of `iterations` calls.
fn measure(iterations: usize, runs: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut per_call: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations = arg("--iterations", 20_000).max(1);
    let runs = arg("--runs", 7).max(1);

    let bearer = provider_with(token(None), None).await;
    let dpop = Arc::new(Dpop::generate());
    let bound = provider_with(token(Some(&dpop)), Some(dpop.clone())).await;
    let h = bound.cached_headers("POST", SERVER).unwrap();
    assert!(h.authorization().starts_with("DPoP ") && h.dpop().is_some());

    let bearer_us = measure(iterations, runs, || {
        black_box(bearer.cached_headers(black_box("POST"), black_box(SERVER)));
    });
    let dpop_us = measure(iterations, runs, || {
        black_box(bound.cached_headers(black_box("POST"), black_box(SERVER)));
    });
    let access_token = token(None).access_token.expose().to_string();
    let proof_us = measure(iterations, runs, || {
        black_box(dpop.proof_now(black_box("POST"), black_box(SERVER), Some(&access_token)));
    });

    let key = PrivateKey::generate_es256();
    let input = dpop
        .proof_now("POST", SERVER, Some(&access_token))
        .unwrap()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    let signature_us = measure(iterations, runs, || {
        black_box(key.sign(black_box(input.as_bytes())).unwrap());
    });

    println!("hot path, per request (median of {runs} runs x {iterations} calls):");
    println!("  Bearer  cached_headers                 {bearer_us:>9.3} µs");
    println!("  DPoP    cached_headers (ES256 proof)   {dpop_us:>9.3} µs");
    println!("  DPoP    proof alone (Dpop::proof_now)  {proof_us:>9.3} µs");
    println!("  ES256   signature alone (PrivateKey)   {signature_us:>9.3} µs");
    println!(
        "  a DPoP request costs {:.1} µs more than a Bearer one",
        dpop_us - bearer_us
    );
}
