//! The hot path (`OAuthClientProvider::cached_headers`, the headers of one
//! request with a valid token held) from 1 thread, from as many threads as
//! CPUs and from 8 threads, and what a DPoP proof adds per request.
//!
//! ```sh
//! cargo run --release -p mcp-oauth-client --example bench_hot_path [-- --iterations N --runs N]
//! ```
//!
//! The Bearer figures are aggregate nanoseconds per call (wall time over all
//! calls of all threads), the best of `--runs` rounds of `--iterations`
//! calls in all (default 2,000,000 and 5), the thread counts interleaved in
//! each round. The DPoP figures are per call on one thread: `cached_headers`
//! with a DPoP-bound token (a fresh ES256 proof: `jti`, `htm`, `htu`, `iat`,
//! `ath`), `Dpop::proof_now` alone, and `PrivateKey::sign` alone. Lines
//! starting with `RESULT` are for `bench/run.py`.

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

/// An access token of about 1 KB, the size of a typical JWT access token.
fn token(dpop: Option<&Dpop>) -> OAuthToken {
    let mut t = OAuthToken::bearer(format!("eyJ{}", "a".repeat(990)));
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

/// Wall nanoseconds per call, over all calls, of `threads` threads sharing
/// `p`, `total` calls in all.
fn aggregate_ns(p: &OAuthClientProvider, threads: usize, total: usize) -> f64 {
    let each = total / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    let h = p.cached_headers(black_box("POST"), black_box(SERVER)).unwrap();
                    black_box(h.authorization());
                }
            });
        }
    });
    start.elapsed().as_secs_f64() * 1e9 / (each * threads) as f64
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
    let iterations = arg("--iterations", 2_000_000).max(8);
    let runs = arg("--runs", 5).max(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let bearer = provider_with(token(None), None).await;
    let counts = [1, cpus, 8];
    let names = ["1", "cores", "8"];
    aggregate_ns(&bearer, 1, iterations / 10);
    let mut best = [f64::INFINITY; 3];
    for _ in 0..runs {
        for (k, &n) in counts.iter().enumerate() {
            best[k] = best[k].min(aggregate_ns(&bearer, n, iterations));
        }
    }
    println!("Bearer cached_headers, aggregate ns per call (best of {runs} rounds x {iterations} calls):");
    for (k, &n) in counts.iter().enumerate() {
        println!("  {n:2} thread(s)  {:>8.1} ns", best[k]);
        println!("RESULT ours_ns_{} {:.2}", names[k], best[k]);
    }

    let dpop = Arc::new(Dpop::generate());
    let bound = provider_with(token(Some(&dpop)), Some(dpop.clone())).await;
    let h = bound.cached_headers("POST", SERVER).unwrap();
    assert!(h.authorization().starts_with("DPoP ") && h.dpop().is_some());
    let dpop_iterations = 20_000;
    let dpop_us = measure(dpop_iterations, runs, || {
        black_box(bound.cached_headers(black_box("POST"), black_box(SERVER)));
    });
    let access_token = token(None).access_token.expose().to_string();
    let proof_us = measure(dpop_iterations, runs, || {
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
    let signature_us = measure(dpop_iterations, runs, || {
        black_box(key.sign(black_box(input.as_bytes())).unwrap());
    });
    println!("DPoP, one thread, per request (median of {runs} runs x {dpop_iterations} calls):");
    println!("  DPoP    cached_headers (ES256 proof)   {dpop_us:>9.3} µs");
    println!("  DPoP    proof alone (Dpop::proof_now)  {proof_us:>9.3} µs");
    println!("  ES256   signature alone (PrivateKey)   {signature_us:>9.3} µs");
    println!("RESULT dpop_headers_us {dpop_us:.3}");
    println!("RESULT dpop_proof_us {proof_us:.3}");
    println!("RESULT es256_sign_us {signature_us:.3}");
    println!("RESULT cpus {cpus}");
}
