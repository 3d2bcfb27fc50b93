//! Many providers in one process: 10,000 providers (`--providers N`), each
//! with its own store holding a valid token of about 1 KB, each having
//! loaded it (one `headers` call). Prints the resident memory per provider
//! (growth of `VmRSS` over the providers), the threads of the process
//! before, at a tenth and at the end (they should not grow with providers),
//! and the time to create one provider after the first (median of all but
//! the first). Linux (`/proc/self/status`).
//!
//! ```sh
//! cargo run --release -p mcp-oauth-client --example bench_scale [-- --providers N]
//! ```
//!
//! Lines starting with `RESULT` are for `bench/run.py`.

use std::sync::Arc;
use std::time::Instant;

use mcp_oauth_client::{
    MemoryStorage, OAuthClientMetadata, OAuthClientProvider, OAuthToken, ProviderConfig, RequestInfo, TokenStorage,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

/// A field of `/proc/self/status` (`VmRSS` in KiB, `Threads`).
fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn main() {
    let n = arg("--providers", 10_000).max(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let token = OAuthToken::bearer(format!("eyJ{}", "a".repeat(990)));
    let make = |i: usize| {
        let storage = Arc::new(MemoryStorage::new());
        rt.block_on(storage.set_tokens(token.clone())).unwrap();
        let url = format!("https://mcp{i}.example.com/mcp");
        let cfg = ProviderConfig::new(&url, OAuthClientMetadata::new(vec!["http://127.0.0.1:9/cb".into()]));
        let start = Instant::now();
        let p = OAuthClientProvider::new(cfg, storage, None).unwrap();
        let created = start.elapsed();
        assert!(
            rt.block_on(p.headers(&RequestInfo::new("POST", &url)))
                .unwrap()
                .is_some()
        );
        (p, created)
    };

    let (first, first_created) = make(0);
    let rss_before = status("VmRSS");
    let threads_before = status("Threads");
    let mut providers = Vec::with_capacity(n);
    providers.push(first);
    let mut creations = Vec::with_capacity(n);
    let mut threads_tenth = threads_before;
    for i in 1..n {
        let (p, created) = make(i);
        providers.push(p);
        creations.push(created.as_secs_f64() * 1e6);
        if i == n / 10 {
            threads_tenth = status("Threads");
        }
    }
    let rss_after = status("VmRSS");
    let threads_after = status("Threads");
    creations.sort_by(f64::total_cmp);
    let per_provider = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / (n - 1) as f64;
    let median_us = creations[creations.len() / 2];
    println!("{n} providers, each holding a loaded ~1 KB token:");
    println!("  resident memory per provider   {:>9.0} bytes", per_provider);
    println!(
        "  threads: after the first {threads_before}, at {} {threads_tenth}, at {n} {threads_after}",
        n / 10
    );
    println!(
        "  creating the first provider    {:>9.1} µs (median of the others {median_us:.1} µs)",
        first_created.as_secs_f64() * 1e6
    );
    println!("RESULT rss_per_provider_bytes {per_provider:.0}");
    println!("RESULT threads_first {threads_before}");
    println!("RESULT threads_tenth {threads_tenth}");
    println!("RESULT threads_last {threads_after}");
    println!("RESULT create_first_us {:.1}", first_created.as_secs_f64() * 1e6);
    println!("RESULT create_next_us {median_us:.1}");
    drop(providers);
}
