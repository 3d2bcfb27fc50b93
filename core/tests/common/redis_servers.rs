//! Real Redis servers for the tests of the Redis store: one instance, or a
//! three-node Redis Cluster, each started on free 127.0.0.1 ports in a
//! temporary directory with persistence off, and stopped when dropped.
//!
//! Debian's `redis-server` and `redis-cli` (scripts/setup.sh installs them)
//! are looked up on PATH, or taken from `REDIS_SERVER` / `REDIS_CLI`. A
//! missing one fails the test loudly: these tests are never skipped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the Redis store's tests need Debian's redis-server \
             (run scripts/setup.sh, or apt-get install redis-server), or {var} set to it"
        )
    })
}

/// A port that is free now, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 50000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited: {status}");
        }
        assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One redis-server process.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    fn spawn(port: u16, dir: tempfile::TempDir, extra: Vec<String>) -> RedisServer {
        let mut s = RedisServer {
            port,
            dir,
            extra,
            child: None,
        };
        s.start();
        s
    }

    /// A single instance with ACL user `fleet` (password `fleet-secret`)
    /// besides the default user, which has no password.
    pub fn single() -> RedisServer {
        let extra = ["--user", "fleet", "on", ">fleet-secret", "~*", "&*", "+@all"]
            .map(String::from)
            .to_vec();
        RedisServer::spawn(free_port(), tempfile::tempdir().unwrap(), extra)
    }

    /// Start it (again, on the same port and directory).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(tool("REDIS_SERVER", "redis-server"))
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_port(self.port, &mut child);
        self.child = Some(child);
    }

    /// Stop it (SIGKILL: what it held in memory is gone, as after a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop it cleanly, saving its data (`SHUTDOWN SAVE`), as a maintenance
    /// restart does: [`RedisServer::start`] then finds the data again.
    pub fn stop_saving(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new(tool("REDIS_CLI", "redis-cli"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "shutdown", "save"])
                .output();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Run `redis-cli` against it and return what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(tool("REDIS_CLI", "redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A three-node Redis Cluster (no replicas).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let extra = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ];
                RedisServer::spawn(free_port(), tempfile::tempdir().unwrap(), extra)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(nodes[0].port, &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nodes {
            while !n.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster did not become ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The node serving `key`'s slot.
    pub fn node_for(&self, key: &str) -> &RedisServer {
        let slot: u16 = self.nodes[0].cli(&["cluster", "keyslot", key]).trim().parse().unwrap();
        let shards = self.nodes[0].cli(&["cluster", "slots"]);
        // `cluster slots` in redis-cli's plain output: start, end, ip, port, id, ...
        let lines: Vec<&str> = shards.lines().collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>()) {
                if let Ok(port) = lines[i + 3].parse::<u16>() {
                    if (start..=end).contains(&slot) {
                        return self.nodes.iter().find(|n| n.port == port).unwrap();
                    }
                }
            }
            i += 1;
        }
        panic!("no node serves slot {slot}: {shards}");
    }
}
