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
    login_pasting_with(store, peers, extra, &[])
}

fn login_pasting_with(store: &Path, peers: &Peers, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let default_redirect: &[&str] = if extra.contains(&"--redirect-uri") {
        &[]
    } else {
        &["--redirect-uri", &redirect]
    };
    let mut child = Process::cargo_bin("mcp-oauth")
        .unwrap()
        .env("MCP_OAUTH_STORE_PATH", store)
        .env_remove("MCP_OAUTH_CLIENT_SECRET")
        .envs(env.iter().copied())
        .args(["login", "--no-browser", &peers.mcp_url])
        .args(default_redirect)
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
    cmd.args(["-s", "-D", "-"]);
    // One header a line, as `mcp-oauth header` prints them.
    for line in header.lines() {
        cmd.args(["-H", line]);
    }
    cmd.args(["-H", "content-type: application/json"])
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

    // discover now names the stored registration as the identity it would use.
    let client_id = stored(store)["client_info"]["client_id"].clone();
    let d = run(cli(store).args(["discover", &peers.mcp_url]));
    assert_eq!(d.code, 0, "{}", d.stdout);
    assert!(
        d.stdout.contains(&format!(
            "client identity: stored registration {} (dynamic registration)",
            client_id.as_str().unwrap()
        )),
        "{}",
        d.stdout
    );

    // A second login reuses the stored registration.
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

/// A refresh with `refresh_token` straight at the token endpoint, as the
/// stored registration: what oidc-provider says about the token.
fn raw_refresh(issuer: &str, client: &Value, refresh_token: &str) -> (u16, Value) {
    let mut cmd = Process::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}"])
        .args(["--data-urlencode", "grant_type=refresh_token"])
        .args(["--data-urlencode", &format!("refresh_token={refresh_token}")]);
    let id = client["client_id"].as_str().unwrap();
    match (
        client["client_secret"].as_str(),
        client["token_endpoint_auth_method"].as_str(),
    ) {
        (Some(secret), Some("client_secret_post")) => {
            cmd.args(["--data-urlencode", &format!("client_id={id}")])
                .args(["--data-urlencode", &format!("client_secret={secret}")]);
        }
        (Some(secret), _) => {
            cmd.args(["-u", &format!("{id}:{secret}")]);
        }
        (None, _) => {
            cmd.args(["--data-urlencode", &format!("client_id={id}")]);
        }
    }
    let out = cmd.arg(format!("{issuer}/token")).output().expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn logout_revokes_and_the_authorization_server_then_refuses_the_old_refresh_token() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let l = login_pasting(store, &peers, &[]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    let before = stored(store);
    let refresh = before["tokens"]["refresh_token"].as_str().unwrap().to_string();

    let out = run(cli(store).args(["logout", &peers.mcp_url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "revoked the refresh token at {}/token/revocation",
            peers.issuer
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("deleted the stored tokens"), "{}", out.stderr);
    assert!(!out.stderr.contains(&refresh));
    assert!(stored(store)["tokens"].is_null(), "tokens still stored");
    let (status, body) = raw_refresh(&peers.issuer, &before["client_info"], &refresh);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // Nothing left: status says so, header fails, a second logout has nothing to do.
    let s = run(cli(store).arg("status"));
    assert!(s.stdout.contains("tokens     none"), "{}", s.stdout);
    let h = run(cli(store).args(["header", &peers.mcp_url]));
    assert_eq!(h.code, 1);
    let again = run(cli(store).args(["logout", &peers.mcp_url]));
    assert_eq!(again.code, 0);
    assert!(again.stderr.contains("nothing to revoke"), "{}", again.stderr);
}

/// The person's other device: a browser that keeps cookies and follows
/// redirects, on oidc-provider's own device pages.
struct OtherDevice {
    http: reqwest::Client,
    cookies: std::collections::HashMap<String, String>,
}

struct Page {
    url: url::Url,
    body: String,
}

impl OtherDevice {
    fn new() -> Self {
        OtherDevice {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
        }
    }

    async fn go(&mut self, url: url::Url, form: Option<Vec<(String, String)>>) -> Page {
        let (mut url, mut form) = (url, form);
        for _ in 0..10 {
            let mut req = match &form {
                Some(f) => self.http.post(url.clone()).form(f),
                None => self.http.get(url.clone()),
            };
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
                req = req.header("cookie", jar.join("; "));
            }
            let resp = req.send().await.unwrap();
            for c in resp.headers().get_all("set-cookie") {
                if let Some((k, v)) = c.to_str().unwrap().split(';').next().unwrap().split_once('=') {
                    self.cookies.insert(k.trim().to_string(), v.to_string());
                }
            }
            if resp.status().is_redirection() {
                url = url.join(resp.headers()["location"].to_str().unwrap()).unwrap();
                form = None;
                continue;
            }
            return Page {
                url,
                body: resp.text().await.unwrap(),
            };
        }
        panic!("too many redirects");
    }

    /// Submit the form containing `marker`, its hidden fields and `extra`.
    async fn submit(&mut self, page: &Page, marker: &str, extra: &[(&str, &str)]) -> Page {
        let at = page
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} on {}: {}", page.url, page.body));
        let start = page.body[..at].rfind("<form").unwrap();
        let end = start + page.body[start..].find("</form>").unwrap();
        let form = &page.body[start..end];
        let mut fields: Vec<(String, String)> = form
            .split("<input")
            .skip(1)
            .filter(|i| attr(i, "type").as_deref() == Some("hidden"))
            .map(|i| (attr(i, "name").unwrap(), attr(i, "value").unwrap_or_default()))
            .collect();
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let url = page.url.join(&attr(form, "action").unwrap_or_default()).unwrap();
        self.go(url, Some(fields)).await
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')?;
    Some(tag[i..i + j].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_device_flow_approved_on_another_device() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_path_buf();
    let mut child = Process::cargo_bin("mcp-oauth")
        .unwrap()
        .env("MCP_OAUTH_STORE_PATH", &store)
        .args(["login", "--device", &peers.mcp_url, "--wait", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Read what the program shows until the code, then the rest in the background.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let mut shown = Vec::new();
    let (verification_uri, user_code) = tokio::task::spawn_blocking(move || {
        let mut uri = None;
        loop {
            let line = rx.recv().expect("the program ended before showing a code");
            shown.push(line.clone());
            let t = line.trim();
            if t.ends_with("/device") {
                uri = Some(t.to_string());
            }
            if let (Some(u), true) = (&uri, shown.iter().any(|l| l.contains("enter the code"))) {
                if !t.is_empty() && !t.contains("enter the code") && !t.ends_with("/device") {
                    return (u.clone(), t.to_string());
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(verification_uri, format!("{}/device", peers.issuer));

    let mut device = OtherDevice::new();
    let input = device.go(verification_uri.parse().unwrap(), None).await;
    let confirm = device
        .submit(&input, "op.deviceInputForm", &[("user_code", &user_code)])
        .await;
    assert!(confirm.body.contains(&user_code), "the page shows the code");
    let login = device.submit(&confirm, "op.deviceConfirmForm", &[]).await;
    device.submit(&login, "/login\"", &[]).await;

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let all = reader.join().unwrap();
    assert!(status.success(), "{all}");
    assert!(
        all.contains(&format!("logged in to {} through {}", peers.mcp_url, peers.issuer)),
        "{all}"
    );
    // The tokens work: header, then curl.
    let h = run(cli(&store).args(["header", &peers.mcp_url]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let (code, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");
    // The registration asked for the device grant.
    let grants = stored(&store)["client_info"]["grant_types"].clone();
    assert!(
        grants
            .as_array()
            .unwrap()
            .contains(&Value::from("urn:ietf:params:oauth:grant-type:device_code")),
        "{grants}"
    );
}

#[test]
#[ignore = "needs a Secret Service: run under scripts/with-keyring.sh (scripts/test.sh does)"]
fn keychain_store_login_status_header_logout() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let l = login_pasting(store, &peers, &["--store", "keychain"]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    // Nothing in the file store: only the list of servers, which holds no secret.
    let names: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".json")), "{names:?}");
    let listed = std::fs::read_to_string(store.join("keychain-servers.list")).unwrap();
    assert_eq!(listed.trim(), peers.mcp_url);

    let s = run(cli(store).args(["--store", "keychain", "status"]));
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stdout.contains("OS keychain"), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!("issuer     {}", peers.issuer)),
        "{}",
        s.stdout
    );
    assert!(s.stdout.contains("refresh    stored"), "{}", s.stdout);
    // The file store knows nothing of it.
    let f = run(cli(store).arg("status"));
    assert!(f.stdout.contains("nothing stored"), "{}", f.stdout);

    let h = run(cli(store).args(["--store", "keychain", "header", &peers.mcp_url]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    assert!(
        !s.stdout
            .contains(h.stdout.trim().trim_start_matches("Authorization: Bearer "))
    );
    let (code, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");

    let out = run(cli(store).args(["--store", "keychain", "logout", &peers.mcp_url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("revoked the refresh token"), "{}", out.stderr);
    let h = run(cli(store).args(["--store", "keychain", "header", &peers.mcp_url]));
    assert_eq!(h.code, 1, "{}", h.stdout);
    let s = run(cli(store).args(["--store", "keychain", "status"]));
    assert!(s.stdout.contains("nothing stored"), "{}", s.stdout);
}

/// A redis-server of the test's own on a free port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let child = Process::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        let r = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            port,
        };
        for _ in 0..100 {
            if r.cli(&["ping"]).trim() == "PONG" {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Process::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn redis_store_login_status_header_logout() {
    let peers = Peers::start(&[]);
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    // 32 bytes, base64: the key that encrypts the values at rest.
    let keys = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let with_redis = |cmd: &mut Command| {
        cmd.env("MCP_OAUTH_REDIS_URL", &redis.url)
            .env("MCP_OAUTH_REDIS_KEYS", keys)
            .arg("--store")
            .arg("redis");
    };
    // Without a URL: a clear error.
    let e = run(cli(store).args(["--store", "redis", "status"]));
    assert_eq!(e.code, 1);
    assert!(e.stderr.contains("--store redis needs the Redis URL"), "{}", e.stderr);
    // Without a key and without the explicit opt-out: refused.
    let e = run(cli(store)
        .env("MCP_OAUTH_REDIS_URL", &redis.url)
        .args(["--store", "redis", "header", &peers.mcp_url]));
    assert_eq!(e.code, 1, "{}", e.stderr);

    // login --no-browser into Redis.
    let l = login_pasting_with(
        store,
        &peers,
        &["--store", "redis"],
        &[("MCP_OAUTH_REDIS_URL", &redis.url), ("MCP_OAUTH_REDIS_KEYS", keys)],
    );
    assert_eq!(l.code, 0, "{}", l.stderr);
    let keys_in_redis = redis.cli(&["--scan"]);
    assert!(!keys_in_redis.trim().is_empty(), "nothing in Redis");

    let mut c = cli(store);
    with_redis(&mut c);
    let s = run(c.arg("status"));
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stdout.contains("Redis store at redis://127.0.0.1"), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!("issuer     {}", peers.issuer)),
        "{}",
        s.stdout
    );

    let mut c = cli(store);
    with_redis(&mut c);
    let h = run(c.args(["header", &peers.mcp_url]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let access = h.stdout.trim().trim_start_matches("Authorization: Bearer ").to_string();
    // Encrypted at rest: the token is nowhere in Redis in clear.
    for key in keys_in_redis.lines().filter(|k| !k.is_empty()) {
        let value = redis.cli(&["--no-raw", "dump", key]);
        assert!(value.len() > 20, "nothing at {key}");
        assert!(!value.contains(&access[..20]), "the access token in clear at {key}");
    }
    let (code, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");

    let mut c = cli(store);
    with_redis(&mut c);
    let out = run(c.args(["logout", &peers.mcp_url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("revoked the refresh token"), "{}", out.stderr);
    let mut c = cli(store);
    with_redis(&mut c);
    assert_eq!(run(c.args(["header", &peers.mcp_url])).code, 1);
}

#[test]
fn dpop_bound_tokens_header_prints_the_proof_and_curl_succeeds() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let key = common::repo_root().join("core/tests/keys/ec-pkcs8.pem");
    let key = key.to_str().unwrap();
    let l = login_pasting(store, &peers, &["--dpop-key", key]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert_eq!(stored(store)["tokens"]["token_type"], "DPoP");

    let h = run(cli(store).args(["header", &peers.mcp_url, "--dpop-key", key]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let lines: Vec<&str> = h.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", h.stdout);
    assert!(lines[0].starts_with("Authorization: DPoP "), "{}", h.stdout);
    assert!(lines[1].starts_with("DPoP: "), "{}", h.stdout);
    let (code, _, reply) = curl_mcp(&peers.mcp_url, &h.stdout, None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");
    // The proof is for one method: a GET proof does not pass for a POST.
    let g = run(cli(store).args(["header", &peers.mcp_url, "--dpop-key", key, "--method", "GET"]));
    assert_eq!(g.code, 0, "{}", g.stderr);
    let (code, _, _) = curl_mcp(&peers.mcp_url, &g.stdout, None, INITIALIZE);
    assert_eq!(code, 401);
}

#[test]
fn login_with_the_system_browser_and_the_loopback_receiver() {
    let peers = Peers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    // The "browser" follows oidc-provider's redirect to the loopback receiver,
    // as a person's would (tests/c/browser-curl.sh).
    let browser = common::repo_root().join("tests/c/browser-curl.sh");
    let l = run(cli(store)
        .env("BROWSER", format!("{} %s", browser.display()))
        .args(["login", &peers.mcp_url, "--wait", "30", "--redirect-uri"])
        .arg(format!("http://127.0.0.1:{}/callback", free_port())));
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert!(l.stderr.contains("logged in to"), "{}", l.stderr);
    let h = run(cli(store).args(["header", &peers.mcp_url]));
    let (code, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");
}

#[test]
fn login_with_a_pre_registered_client_id_and_secret() {
    let peers = Peers::start(&[]);
    // Register a confidential client once (through a first login), as an
    // administrator would pre-register one.
    let admin = tempfile::tempdir().unwrap();
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let first = login_pasting(admin.path(), &peers, &["--redirect-uri", &redirect]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let client = stored(admin.path())["client_info"].clone();
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"]
        .as_str()
        .expect("a confidential registration")
        .to_string();

    // A fresh store: the tool uses the given client, registers nothing.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let l = login_pasting_with(
        store,
        &peers,
        &["--client-id", &id, "--redirect-uri", &redirect],
        &[("MCP_OAUTH_CLIENT_SECRET", &secret)],
    );
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert!(l.stderr.contains(&format!("client_id={id}&")), "{}", l.stderr);
    assert!(!l.stderr.contains(&secret), "the secret in the output");
    assert!(stored(store)["client_info"].is_null(), "a registration was stored");
    let h =
        run(cli(store)
            .env("MCP_OAUTH_CLIENT_SECRET", &secret)
            .args(["header", &peers.mcp_url, "--client-id", &id]));
    assert_eq!(h.code, 0, "{}", h.stderr);
    let (code, _, reply) = curl_mcp(&peers.mcp_url, h.stdout.trim(), None, INITIALIZE);
    assert_eq!(code, 200, "{reply}");
    // A wrong secret is refused by the authorization server, clearly.
    let bad = login_pasting_with(
        store,
        &peers,
        &["--client-id", &id, "--redirect-uri", &redirect],
        &[("MCP_OAUTH_CLIENT_SECRET", "not-the-secret")],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid_client"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("not-the-secret"));
}
