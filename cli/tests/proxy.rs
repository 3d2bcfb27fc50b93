//! `mcp-oauth proxy` as a stdio host runs it: the binary started with pipes,
//! JSON-RPC lines written to its stdin and read from its stdout, against the
//! real peers; the person's browser is tests/c/browser-curl.sh ($BROWSER).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use common::Peers;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Bridge {
    fn start(store: &Path, url: &str, port: u16, extra: &[&str]) -> Bridge {
        let browser = common::repo_root().join("tests/c/browser-curl.sh");
        let mut child = Command::cargo_bin("mcp-oauth")
            .unwrap()
            .env("MCP_OAUTH_STORE_PATH", store)
            .env_remove("MCP_OAUTH_STORE")
            .env("BROWSER", format!("{} %s", browser.display()))
            .env("MCP_PROXY_TEST_TENANT", "acme")
            .args(["proxy", url, &port.to_string(), "--wait", "60"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Bridge {
            stdin: child.stdin.take(),
            child,
            lines: rx,
        }
    }

    fn send(&mut self, v: Value) {
        let w = self.stdin.as_mut().unwrap();
        writeln!(w, "{v}").unwrap();
        w.flush().unwrap();
    }

    /// The response to `id`; every line on stdout must be one JSON-RPC message.
    fn response(&mut self, id: i64) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("no answer from the bridge within 60 s");
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carried non-JSON ({e}): {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
            if v["id"] == json!(id) && v.get("method").is_none() {
                return v;
            }
        }
    }

    /// Close stdin: the bridge ends the session and exits 0, printing nothing more.
    fn close(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the bridge exited with {status}");
        assert!(
            self.lines.recv_timeout(Duration::from_secs(5)).is_err(),
            "output after the end"
        );
    }
}

fn initialize(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "stdio-host", "version": "0"}}})
}

fn session(bridge: &mut Bridge, text: &str) {
    assert!(bridge.response_to(initialize(1), 1)["result"]["serverInfo"].is_object());
    bridge.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let r = bridge.response_to(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}}),
        2,
    );
    assert_eq!(r["result"]["content"][0]["text"], text, "{r}");
}

impl Bridge {
    fn response_to(&mut self, msg: Value, id: i64) -> Value {
        self.send(msg);
        self.response(id)
    }
}

#[test]
fn a_stdio_host_logs_in_once_then_runs_from_stored_tokens() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // First run: the 401 starts the flow in the "browser"; the host sees
    // only its answers.
    let mut b = Bridge::start(
        dir.path(),
        &peers.mcp_url,
        port,
        &["--header", "X-Tenant: ${MCP_PROXY_TEST_TENANT}"],
    );
    session(&mut b, "first");
    b.close();
    let after_first = peers_authorizations(&peers);
    assert_eq!(after_first, 1);
    // Second run (a restart of the host): the stored tokens, no person.
    let mut b = Bridge::start(dir.path(), &peers.mcp_url, port, &["--no-browser"]);
    session(&mut b, "second");
    b.close();
    assert_eq!(peers_authorizations(&peers), 1, "no second log-in");
}

#[test]
fn two_instances_started_at_once_share_one_login() {
    let peers = Peers::start(&["--json-response"]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut a = Bridge::start(dir.path(), &peers.mcp_url, port, &[]);
    let mut b = Bridge::start(dir.path(), &peers.mcp_url, port, &[]);
    a.send(initialize(1));
    b.send(initialize(1));
    assert!(a.response(1)["result"].is_object());
    assert!(b.response(1)["result"].is_object());
    a.close();
    b.close();
    assert_eq!(peers_authorizations(&peers), 1, "one person-facing flow for both");
}

#[test]
fn bad_options_fail_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (vec!["--transport", "carrier-pigeon"], "unknown transport"),
        (vec!["--header", "no colon"], "Name: value"),
        (vec!["--header", "X-A: ${MCP_PROXY_TEST_UNSET_VARIABLE}"], "not set"),
        (
            vec!["--static-oauth-client-info", "{\"client_secret\": \"s\"}"],
            "client_id",
        ),
        (vec!["--host", "example.com"], "loopback"),
    ] {
        let out = Command::cargo_bin("mcp-oauth")
            .unwrap()
            .env("MCP_OAUTH_STORE_PATH", dir.path())
            .args(["proxy", "http://127.0.0.1:9/mcp"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

fn peers_authorizations(peers: &Peers) -> u64 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(peers.authorizations())
}
