//! `mcp-oauth` against the real peers (oidc-provider and the protected MCP
//! server, started by tests/peers/launch.py through the core's test
//! support): discover on a good server, login with a pasted redirect,
//! status, header used by curl, refresh, logout.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use common::Peers;
use serde_json::Value;

fn cli(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("mcp-oauth").unwrap();
    cmd.env("MCP_OAUTH_STORE_PATH", store)
        .env_remove("MCP_OAUTH_STORE")
        .env_remove("MCP_OAUTH_CLIENT_SECRET");
    cmd
}

/// What the program printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The person's part without a browser: fetch the authorization URL without
/// following the redirect (oidc-provider is set up to grant at once, as
/// core/tests/common's HeadlessHandler relies on) and return the address
/// the browser would have been sent to.
fn consent(authorization_url: &str) -> String {
    let out = Process::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
        .arg(authorization_url)
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, location) = text.split_once(' ').unwrap();
    assert!(status.starts_with('3'), "authorization endpoint answered {status}");
    location.to_string()
}

/// `mcp-oauth login --no-browser URL`, the redirect pasted on its standard
/// input once it printed the authorization URL.
fn login_pasting(store: &Path, peers: &Peers, extra: &[&str]) -> Run {
    let mut child = Process::cargo_bin("mcp-oauth")
        .unwrap()
        .env("MCP_OAUTH_STORE_PATH", store)
        .args(["login", "--no-browser", &peers.mcp_url, "--redirect-uri"])
        .arg(format!("http://127.0.0.1:{}/callback", free_port()))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let auth_url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the program ended without an authorization URL:\n{seen}"
        );
        seen.push_str(&line);
        let t = line.trim();
        if t.starts_with(&format!("{}/auth?", peers.issuer)) {
            break t.to_string();
        }
    };
    let location = consent(&auth_url);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{location}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: seen + &rest,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The stored tokens, read from the file store as the core wrote them.
fn stored(store: &Path) -> Value {
    let file = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a token file");
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

/// curl `body` to the MCP server with the `header` line, as a person would.
/// Returns the HTTP status, the session id, and the JSON-RPC reply.
fn curl_mcp(url: &str, header: &str, session: Option<&str>, body: &str) -> (u16, Option<String>, Value) {
    let mut cmd = Process::new("curl");
    cmd.args(["-s", "-D", "-", "-H", header])
        .args(["-H", "content-type: application/json"])
        .args(["-H", "accept: application/json, text/event-stream"])
        .args(["-H", "mcp-protocol-version: 2025-06-18"]);
    if let Some(s) = session {
        cmd.args(["-H", &format!("mcp-session-id: {s}")]);
    }
    let out = cmd.args(["--data", body, url]).output().expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let session = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("mcp-session-id"))
            .map(|(_, v)| v.trim().to_string())
    });
    let reply = if body.trim_start().starts_with('{') {
        serde_json::from_str(body).unwrap_or(Value::Null)
    } else {
        body.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or(Value::Null)
    };
    (status, session, reply)
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}"#;
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;

#[test]
fn discover_login_status_header_against_the_real_peers() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();

    // discover: the whole chain holds; nothing is registered.
    let d = run(cli(store).args(["discover", &peers.mcp_url]));
    assert_eq!(d.code, 0, "{}{}", d.stdout, d.stderr);
    assert!(
        d.stdout
            .contains(&format!("authorization server: using {}", peers.issuer))
    );
    assert!(d.stdout.contains("PKCE: S256"));
    assert!(d.stdout.contains("client identity: dynamic registration"));
    assert!(d.stdout.contains("scope: mcp:read"));
    assert!(d.stdout.contains("the chain holds: issuer"));
    // Nothing was registered, so nothing was stored (a lock file at most).
    let files: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(files.is_empty(), "discover stored something");

    // header before any login: a clear error, no token.
    let h = run(cli(store).args(["header", &peers.mcp_url]));
    assert_eq!(h.code, 1);
    assert!(h.stderr.contains("run `mcp-oauth login"), "{}", h.stderr);
    assert!(h.stdout.is_empty());

    // login --no-browser with the pasted redirect.
    let l = login_pasting(store, &peers, &[]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert!(l.stderr.contains("Open this URL in a browser"), "{}", l.stderr);
    assert!(
        l.stderr
            .contains(&format!("logged in to {} through {}", peers.mcp_url, peers.issuer)),
        "{}",
        l.stderr
    );
    let tokens = stored(store)["tokens"].clone();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // status: what is stored, never a secret.
    let s = run(cli(store).arg("status"));
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stdout.contains(&peers.mcp_url), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!("issuer     {}", peers.issuer)),
        "{}",
        s.stdout
    );
    assert!(s.stdout.contains("scope      mcp:read"), "{}", s.stdout);
    assert!(s.stdout.contains("(in "), "{}", s.stdout);
    assert!(s.stdout.contains("refresh    stored"), "{}", s.stdout);
    let sj = run(cli(store).args(["status", "--json"]));
    let doc: Value = serde_json::from_str(&sj.stdout).unwrap();
    assert_eq!(doc["servers"][0]["server"], peers.mcp_url.as_str());
    assert_eq!(doc["servers"][0]["expired"], false);
    for out in [&s.stdout, &sj.stdout] {
        assert!(!out.contains(&access) && !out.contains(&refresh), "a secret in status");
    }

    // header, used by curl: initialize and tools/list succeed.
    let h = run(cli(store).args(["header", &peers.mcp_url]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let header = h.stdout.trim().to_string();
    assert_eq!(header, format!("Authorization: Bearer {access}"));
    let (status, session, reply) = curl_mcp(&peers.mcp_url, &header, None, INITIALIZE);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["serverInfo"]["name"], "mcp-oauth-client test peer");
    let (status, _, reply) = curl_mcp(&peers.mcp_url, &header, session.as_deref(), TOOLS_LIST);
    assert_eq!(status, 200, "{reply}");
    let names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"whoami"), "{names:?}");
    // Without the header the server refuses: the header is what made it work.
    let (status, _, _) = curl_mcp(&peers.mcp_url, "x-nothing: 1", None, INITIALIZE);
    assert_eq!(status, 401);

    // A second login reuses the stored registration.
    let client_id = stored(store)["client_info"]["client_id"].clone();
    let l = login_pasting(store, &peers, &[]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert_eq!(stored(store)["client_info"]["client_id"], client_id);
}

#[test]
fn header_refreshes_a_token_that_is_due() {
    let peers = Peers::start(&["--access-token-ttl", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let l = login_pasting(store, &peers, &[]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    let before = stored(store)["tokens"].clone();
    // Past the access token's lifetime.
    std::thread::sleep(Duration::from_millis(4_500));
    let h = run(cli(store).args(["-v", "header", &peers.mcp_url]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let after = stored(store)["tokens"].clone();
    assert_ne!(after["access_token"], before["access_token"]);
    assert_eq!(
        h.stdout.trim(),
        format!("Authorization: Bearer {}", after["access_token"].as_str().unwrap())
    );
    // --verbose showed the refresh request, and no secret.
    assert!(h.stderr.contains("step=refresh"), "{}", h.stderr);
    for secret in [
        &before["refresh_token"],
        &after["refresh_token"],
        &after["access_token"],
    ] {
        assert!(!h.stderr.contains(secret.as_str().unwrap()), "a secret in --verbose");
    }
    let (status, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(status, 200, "{reply}");
}
