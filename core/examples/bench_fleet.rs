//! A fleet on the Redis store: how many refreshes reach the authorization
//! server, and what a request with a valid token costs beside the in-memory
//! store.
//!
//! ```sh
//! scripts/setup.sh    # redis-server, the peers and the venv
//! cargo run --release -p mcp-oauth-client --example bench_fleet --features redis
//! ```
//!
//! It starts a redis-server of its own (or a three-node cluster with
//! `--cluster`) on free ports and the real peers (oidc-provider with rotating
//! refresh tokens and reuse detection, the MCP Python SDK's server), logs in
//! once, then starts `--processes` processes (default 8) sharing the store.
//! For each of `--expiries` rounds (default 10) it waits for the access token
//! to expire and lets every process send `--requests` MCP requests at once
//! (default 100): the refreshes counted by the authorization server should
//! be exactly one per round, with no `invalid_grant`. Access tokens live
//! `--ttl` seconds (default 10), longer than a round takes, so that each
//! round sees one expiry.
//!
//! Then, with a long-lived token: the time of `headers()` for a request (the
//! hot path, what each MCP request pays) and of a whole MCP request, for a
//! provider on the Redis store and one on the in-memory store holding the
//! same token (medians over `--runs` runs, default 7).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::redis_servers::{RedisCluster, RedisServer};
use common::{HeadlessHandler, Mcp, Peers};
use mcp_oauth_client::{
    EncryptionKey, MemoryStorage, OAuthClientMetadata, OAuthClientProvider, ProviderConfig, RedisOptions, RedisStorage,
    RequestInfo, TokenStorage,
};
use serde_json::{Value, json};

const CHILD_ENV: &str = "BENCH_FLEET_CHILD";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn options(urls: &str) -> RedisOptions {
    RedisOptions::parse(urls)
        .key_prefix("bench-fleet")
        .encryption_key(EncryptionKey::new("bench", &[0x5a; 32]).unwrap())
}

fn provider(mcp_url: &str, storage: Arc<dyn TokenStorage>) -> OAuthClientProvider {
    let mut m = OAuthClientMetadata::new(vec!["http://127.0.0.1:3030/callback".into()]);
    m.client_name = Some("fleet benchmark".into());
    let mut cfg = ProviderConfig::new(mcp_url.to_string(), m);
    cfg.timeout = Duration::from_secs(30);
    OAuthClientProvider::new(cfg, storage, Some(Arc::new(HeadlessHandler::default()))).unwrap()
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A process of the fleet: for each round, wait for the parent's go, send
/// the requests at once, and write what happened.
async fn child(mcp_url: String, urls: String, dir: PathBuf, id: usize, rounds: usize, requests: usize) {
    let store = Arc::new(RedisStorage::new(options(&urls), &mcp_url).unwrap());
    let mcp = Arc::new(Mcp::new(&mcp_url, provider(&mcp_url, store)));
    for round in 0..rounds {
        let go = dir.join(format!("go-{round}"));
        wait_for("the parent's go", || go.exists()).await;
        let calls: Vec<_> = (0..requests)
            .map(|i| {
                let mcp = mcp.clone();
                tokio::spawn(async move { mcp.tool("echo", json!({"text": format!("{id}-{i}")})).await })
            })
            .collect();
        let (mut ok, mut failed, mut invalid_grant) = (0, 0, 0);
        for c in calls {
            match c.await.unwrap() {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => {
                    failed += 1;
                    eprintln!("process {id}: HTTP {} {}", r.status, r.body);
                }
                Err(e) => {
                    failed += 1;
                    if e.oauth_error() == Some("invalid_grant") {
                        invalid_grant += 1;
                    }
                    eprintln!("process {id}: {e}");
                }
            }
        }
        let report = json!({"ok": ok, "failed": failed, "invalid_grant": invalid_grant});
        let tmp = dir.join(format!(".done-{round}-{id}"));
        std::fs::write(&tmp, report.to_string()).unwrap();
        std::fs::rename(tmp, dir.join(format!("done-{round}-{id}"))).unwrap();
    }
}

async fn as_state(peers: &Peers) -> Value {
    peers.state().await
}

fn refreshes(state: &Value) -> u64 {
    state["token_requests"]["refresh_token"].as_u64().unwrap_or(0)
}

/// Median µs per call of `f` over `runs` runs of `iterations` calls.
async fn measure<F, Fut>(iterations: usize, runs: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_call = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..iterations {
            f().await;
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e6 / iterations as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let v: Value = serde_json::from_str(&spec).unwrap();
        child(
            v["mcp_url"].as_str().unwrap().into(),
            v["redis"].as_str().unwrap().into(),
            PathBuf::from(v["dir"].as_str().unwrap()),
            v["id"].as_u64().unwrap() as usize,
            v["rounds"].as_u64().unwrap() as usize,
            v["requests"].as_u64().unwrap() as usize,
        )
        .await;
        return;
    }
    let processes = arg("--processes", 8);
    let rounds = arg("--expiries", 10);
    let requests = arg("--requests", 100);
    let runs = arg("--runs", 7);
    let cluster = flag("--cluster");
    // Access tokens live this long: longer than a round takes, so each round
    // sees exactly one expiry (the one it starts with).
    let ttl = arg("--ttl", 10);

    let (_single, _cluster, urls) = if cluster {
        let c = RedisCluster::start();
        let urls = c.urls().join(",");
        (None, Some(c), urls)
    } else {
        let s = RedisServer::single();
        let url = s.url();
        (Some(s), None, url)
    };
    let ttl_arg = ttl.to_string();
    let peers = Peers::start(&["--json-response", "--stateless", "--access-token-ttl", &ttl_arg]);
    let store = Arc::new(RedisStorage::new(options(&urls), &peers.mcp_url).unwrap());
    let first = Mcp::new(&peers.mcp_url, provider(&peers.mcp_url, store.clone()));
    assert_eq!(first.tool("echo", json!({"text": "login"})).await.unwrap().status, 200);
    println!(
        "fleet on {} ({}): {processes} processes x {requests} concurrent requests, {rounds} expiries",
        if cluster {
            "a three-node Redis Cluster"
        } else {
            "one Redis instance"
        },
        urls
    );

    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<Child> = (0..processes)
        .map(|id| {
            let spec = json!({"mcp_url": peers.mcp_url, "redis": urls, "dir": dir.path(), "id": id,
                              "rounds": rounds, "requests": requests});
            Command::new(&exe)
                .env(CHILD_ENV, spec.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();

    let mut per_round = Vec::new();
    let mut durations = Vec::new();
    let (mut total_ok, mut total_failed, mut total_invalid_grant) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        // Wait for the stored access token to expire.
        let t = store.get_tokens().await.unwrap().unwrap();
        let at = t.expires_at.unwrap();
        while now_unix() < at {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = refreshes(&as_state(&peers).await);
        let started = Instant::now();
        std::fs::write(dir.path().join(format!("go-{round}")), b"").unwrap();
        let done = |id: usize| dir.path().join(format!("done-{round}-{id}"));
        wait_for("every process to finish the round", || {
            (0..processes).all(|id| done(id).exists())
        })
        .await;
        durations.push(started.elapsed().as_secs_f64());
        for id in 0..processes {
            let r: Value = serde_json::from_slice(&std::fs::read(done(id)).unwrap()).unwrap();
            total_ok += r["ok"].as_u64().unwrap();
            total_failed += r["failed"].as_u64().unwrap();
            total_invalid_grant += r["invalid_grant"].as_u64().unwrap();
        }
        per_round.push(refreshes(&as_state(&peers).await) - before);
    }
    for mut c in children {
        let _ = c.wait();
    }
    let state = as_state(&peers).await;
    let total: u64 = per_round.iter().sum();
    println!("refreshes reaching the authorization server: {total} over {rounds} expiries (per expiry: {per_round:?})");
    let longest = durations.iter().copied().fold(0.0, f64::max);
    println!("the longest round took {longest:.1} s; access tokens live {ttl} s");
    if longest >= ttl as f64 {
        println!("(a round outlived its token, so it saw a second expiry: raise --ttl)");
    }
    println!(
        "requests: {total_ok} succeeded, {total_failed} failed ({total_invalid_grant} invalid_grant); \
         token endpoint errors: {}",
        state["token_errors"]
    );

    // Latency with a valid token: long-lived tokens from now on.
    reqwest::Client::new()
        .post(format!("{}/access-token-ttl", peers.control_url))
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .unwrap();
    let t = store.get_tokens().await.unwrap().unwrap();
    let at = t.expires_at.unwrap();
    while now_unix() < at {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let redis_mcp = Mcp::new(&peers.mcp_url, provider(&peers.mcp_url, store.clone()));
    assert_eq!(
        redis_mcp.tool("echo", json!({"text": "refresh"})).await.unwrap().status,
        200
    );
    let memory = Arc::new(MemoryStorage::new());
    memory
        .set_tokens(store.get_tokens().await.unwrap().unwrap())
        .await
        .unwrap();
    memory
        .set_client_info(store.get_client_info().await.unwrap().unwrap())
        .await
        .unwrap();
    let memory_mcp = Mcp::new(&peers.mcp_url, provider(&peers.mcp_url, memory));
    assert_eq!(
        memory_mcp.tool("echo", json!({"text": "load"})).await.unwrap().status,
        200
    );

    let url = peers.mcp_url.clone();
    let headers_of = |p: OAuthClientProvider| {
        let url = url.clone();
        move || {
            let p = p.clone();
            let url = url.clone();
            async move {
                black_box(p.headers(&RequestInfo::new("POST", &url)).await.unwrap().unwrap());
            }
        }
    };
    let iterations = 20_000;
    let h_redis = measure(iterations, runs, headers_of(redis_mcp.provider.clone())).await;
    let h_memory = measure(iterations, runs, headers_of(memory_mcp.provider.clone())).await;
    println!(
        "headers() with a valid token (median of {runs} runs of {iterations}): Redis store {h_redis:.3} µs, in-memory store {h_memory:.3} µs"
    );
    let mcp_calls = 200;
    let call_redis = measure(mcp_calls, runs, || async {
        assert_eq!(redis_mcp.tool("echo", json!({"text": "x"})).await.unwrap().status, 200);
    })
    .await;
    let call_memory = measure(mcp_calls, runs, || async {
        assert_eq!(memory_mcp.tool("echo", json!({"text": "x"})).await.unwrap().status, 200);
    })
    .await;
    println!(
        "a whole MCP request (tools/call echo, median of {runs} runs of {mcp_calls}): \
         Redis store {call_redis:.0} µs, in-memory store {call_memory:.0} µs"
    );
}
