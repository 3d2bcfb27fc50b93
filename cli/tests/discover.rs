//! `mcp-oauth discover` on servers that break the chain at each step, as a
//! person reads it: the failing step, the message, what would fix it, and
//! the exit status. The servers are in-process fakes (the core's test mock),
//! since the real peers cannot be made to lie; the good case against the
//! real peers is in tests/peers.rs.

#[path = "../../core/tests/mock/mod.rs"]
mod mock;

use assert_cmd::Command;
use mock::{Mock, Reply};
use serde_json::{Value, json};

/// What the program printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn discover(url: &str, extra: &[&str]) -> Run {
    let store = tempfile::tempdir().unwrap();
    let mut cmd = Command::cargo_bin("mcp-oauth").unwrap();
    cmd.arg("discover")
        .arg(url)
        .args(extra)
        .arg("--timeout")
        .arg("10")
        .env("MCP_OAUTH_STORE_PATH", store.path())
        .env_remove("NO_COLOR");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The line of a step, by its name.
fn line<'a>(run: &'a Run, what: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.contains(&format!("] {what}")))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{}", run.stdout))
}

/// The `fix:` line right after the step's line.
fn fix<'a>(run: &'a Run, what: &str) -> &'a str {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(&format!("] {what}")))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{}", run.stdout));
    let next = lines.get(i + 1).copied().unwrap_or("");
    assert!(
        next.trim_start().starts_with("fix:"),
        "no fix after {what:?}:\n{}",
        run.stdout
    );
    next
}

/// An MCP endpoint at `/mcp` that answers 401 with `challenge`.
fn mcp_401(m: &Mock, challenge: &str) {
    m.fixed("/mcp", Reply::status(401).header("www-authenticate", challenge));
}

fn challenge(m: &Mock) -> String {
    format!(
        "Bearer resource_metadata=\"{}\"",
        m.url("/.well-known/oauth-protected-resource/mcp")
    )
}

fn as_metadata(m: &Mock, issuer: &str, pkce: Option<Value>) -> Value {
    let mut meta = json!({
        "issuer": issuer,
        "authorization_endpoint": m.url("/authorize"),
        "token_endpoint": m.url("/token"),
        "registration_endpoint": m.url("/register"),
        "scopes_supported": ["read", "offline_access"],
    });
    if let Some(p) = pkce {
        meta["code_challenge_methods_supported"] = p;
    }
    meta
}

/// A whole good chain on one origin: challenge, PRM, AS metadata.
fn good(m: &Mock) {
    mcp_401(m, &challenge(m));
    m.standard_prm(&m.base);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, as_metadata(m, &m.base, Some(json!(["S256"])))),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_chain_holds_and_nothing_is_registered() {
    let m = Mock::start().await;
    good(&m);
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // Every step in the client's order, one line each.
    let order = [
        "MCP server",
        "protected resource metadata",
        "resource check",
        "authorization server:",
        "authorization server metadata",
        "issuer check",
        "PKCE",
        "client identity",
        "scope",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|w| {
            run.stdout
                .find(&format!("] {w}"))
                .unwrap_or_else(|| panic!("{w} missing:\n{}", run.stdout))
        })
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "out of order:\n{}",
        run.stdout
    );
    assert!(line(&run, "MCP server").contains("-> 401"));
    assert!(line(&run, "MCP server").contains("resource_metadata="));
    assert!(line(&run, "client identity").contains("dynamic registration"));
    // The scope of the protected resource metadata, plus offline_access
    // which the authorization server offers.
    assert!(line(&run, "scope").contains("read offline_access"), "{}", run.stdout);
    assert!(run.stdout.contains("the chain holds: issuer"));
    // Piped: no colours.
    assert!(!run.stdout.contains('\u{1b}'), "escape codes when piped");
    assert_eq!(m.count("/register") + m.count("/token") + m.count("/authorize"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_protected_resource_metadata_is_a_warning_with_the_fix() {
    let m = Mock::start().await;
    // A 401 with no resource_metadata, and nothing at any well-known URL.
    mcp_401(&m, "Bearer");
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(line(&run, "MCP server").contains("no resource_metadata"));
    // Both well-known URLs were tried, each with its status.
    assert!(
        run.stdout
            .contains("/.well-known/oauth-protected-resource/mcp -> 404: not found here")
    );
    assert!(
        run.stdout
            .contains("/.well-known/oauth-protected-resource -> 404: not found here")
    );
    assert!(line(&run, "legacy mode").starts_with("[warn]"));
    assert!(fix(&run, "legacy mode").contains("serve RFC 9728 protected resource metadata"));
    assert!(line(&run, "default endpoints").starts_with("[warn]"));
    assert!(line(&run, "PKCE").contains("assumed with the default endpoints"));
    assert!(run.stdout.contains("the chain holds, with 2 warnings"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_for_another_resource_breaks_the_chain_at_the_resource_check() {
    let m = Mock::start().await;
    good(&m);
    m.fixed(
        "/.well-known/oauth-protected-resource/mcp",
        Reply::json(
            200,
            json!({"resource": "https://other.example/mcp", "authorization_servers": [m.base]}),
        ),
    );
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let l = line(&run, "resource check");
    assert!(l.starts_with("[FAIL]"), "{l}");
    assert!(l.contains("https://other.example/mcp"), "{l}");
    assert!(l.contains("another origin"), "{l}");
    assert!(fix(&run, "resource check").contains("`resource` must name this MCP server"));
    assert!(run.stdout.contains("the chain is broken at: resource check"));
    // Nothing after the broken step.
    assert!(!run.stdout.contains("] authorization server metadata"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_naming_another_issuer_breaks_the_chain_at_the_issuer_check() {
    let m = Mock::start().await;
    good(&m);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(
            200,
            as_metadata(&m, "https://login.other.example", Some(json!(["S256"]))),
        ),
    );
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let l = line(&run, "issuer check");
    assert!(l.starts_with("[FAIL]"), "{l}");
    assert!(l.contains("https://login.other.example"), "{l}");
    assert!(fix(&run, "issuer check").contains("`issuer` must be exactly the URL listed"));
    assert!(run.stdout.contains("the chain is broken at: issuer check"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_s256_breaks_the_chain_at_pkce_and_says_which_setting_allows_it() {
    let m = Mock::start().await;
    good(&m);
    // As Microsoft Entra ID: no code_challenge_methods_supported at all.
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, as_metadata(&m, &m.base, None)),
    );
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line(&run, "PKCE").starts_with("[FAIL]"));
    let f = fix(&run, "PKCE");
    assert!(f.contains("Microsoft Entra ID"), "{f}");
    assert!(f.contains("--assume-s256"), "{f}");

    // With the setting, the chain holds with a warning.
    let run = discover(&m.url("/mcp"), &["--assume-s256"]).await;
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(line(&run, "PKCE").starts_with("[warn]"));

    // A server that lists only `plain` is refused whatever the setting.
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, as_metadata(&m, &m.base, Some(json!(["plain"])))),
    );
    let run = discover(&m.url("/mcp"), &["--assume-s256"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(fix(&run, "PKCE").contains("enable PKCE with S256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_breaks_the_chain_where_it_happens() {
    // The protected resource metadata endpoint fails.
    let m = Mock::start().await;
    good(&m);
    m.fixed(
        "/.well-known/oauth-protected-resource/mcp",
        Reply::status(503).header("retry-after", "30"),
    );
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let l = line(&run, "protected resource metadata");
    assert!(l.starts_with("[FAIL]") && l.contains("-> 503: server error"), "{l}");
    assert!(fix(&run, "protected resource metadata").contains("does not fall back past a server error"));
    // The root well-known URL is not tried after a server error.
    assert_eq!(m.count("/.well-known/oauth-protected-resource"), 0);

    // The MCP server itself fails.
    let m = Mock::start().await;
    good(&m);
    m.fixed("/mcp", Reply::status(503));
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line(&run, "MCP server").contains("-> 503"));
    assert!(fix(&run, "MCP server").contains("the MCP server itself fails"));
    assert_eq!(m.count("/.well-known/oauth-protected-resource/mcp"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dynamic_registration_and_no_client_id_says_to_pre_register() {
    let m = Mock::start().await;
    good(&m);
    let mut meta = as_metadata(&m, &m.base, Some(json!(["S256"])));
    meta.as_object_mut().unwrap().remove("registration_endpoint");
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line(&run, "client identity").starts_with("[FAIL]"));
    assert!(fix(&run, "client identity").contains("--client-id"));

    // With a pre-registered client, the chain holds and says why that identity.
    let run = discover(&m.url("/mcp"), &["--client-id", "my-app"]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line(&run, "client identity").contains("pre-registered client my-app"));

    // A client ID metadata document the server accepts.
    let mut meta = as_metadata(&m, &m.base, Some(json!(["S256"])));
    meta["client_id_metadata_document_supported"] = json!(true);
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    let cimd = "https://app.example/client.json";
    let run = discover(&m.url("/mcp"), &["--client-metadata-url", cimd]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line(&run, "client identity").contains(&format!("client ID metadata document {cimd}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_of_the_challenge_is_the_one_requested() {
    let m = Mock::start().await;
    good(&m);
    mcp_401(&m, &format!("{}, scope=\"read write\"", challenge(&m)));
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line(&run, "scope").contains("read write offline_access (from the 401 challenge's scope)"));
    let run = discover(&m.url("/mcp"), &["--scope", "admin"]).await;
    assert!(line(&run, "scope").contains("admin (as configured)"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_says_the_same_for_machines() {
    let m = Mock::start().await;
    good(&m);
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(
            200,
            as_metadata(&m, "https://login.other.example", Some(json!(["S256"]))),
        ),
    );
    let run = discover(&m.url("/mcp"), &["--json"]).await;
    assert_eq!(run.code, 1);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], json!(false));
    assert_eq!(doc["error"]["step"], json!("authorization_server_metadata"));
    let failed: Vec<&Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["verdict"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["what"], "issuer check");
    assert!(failed[0]["hint"].as_str().unwrap().contains("issuer"));
    assert_eq!(doc["steps"][0]["what"], "MCP server");
    assert_eq!(doc["steps"][0]["status"], 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_says_so() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = discover(&format!("http://127.0.0.1:{port}/mcp"), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line(&run, "MCP server").contains("no response"), "{}", run.stdout);
    assert!(fix(&run, "MCP server").contains("reachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_names_where_the_metadata_is() {
    // The metadata only at a path of the server's choosing, named by the 401.
    let m = Mock::start().await;
    good(&m);
    m.fixed("/.well-known/oauth-protected-resource/mcp", Reply::status(404));
    m.fixed(
        "/custom/prm",
        Reply::json(
            200,
            json!({"resource": m.url("/mcp"), "authorization_servers": [m.base]}),
        ),
    );
    mcp_401(&m, &format!("Bearer resource_metadata=\"{}\"", m.url("/custom/prm")));
    let run = discover(&m.url("/mcp"), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    // Tried first, before the well-known URLs, which are then not needed.
    let first = run
        .stdout
        .lines()
        .find(|l| l.contains("] protected resource metadata"))
        .unwrap();
    assert!(first.contains("/custom/prm -> 200: found"), "{}", run.stdout);
    assert_eq!(m.count("/.well-known/oauth-protected-resource/mcp"), 0);

    // A 401 without any challenge is a warning: discovery goes on from the well-known URLs.
    m.fixed("/mcp", Reply::status(401));
    let run = discover(&m.url("/mcp"), &[]).await;
    assert!(line(&run, "MCP server").starts_with("[warn]"), "{}", run.stdout);
    assert!(fix(&run, "MCP server").contains("WWW-Authenticate: Bearer resource_metadata"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_checks_the_device_authorization_endpoint_instead_of_pkce() {
    let m = Mock::start().await;
    good(&m);
    // No device_authorization_endpoint, and no PKCE either: --device names the first only.
    m.fixed(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, as_metadata(&m, &m.base, None)),
    );
    let run = discover(&m.url("/mcp"), &["--device"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(line(&run, "device authorization").starts_with("[FAIL]"));
    assert!(fix(&run, "device authorization").contains("enable the device authorization grant"));
    assert!(!run.stdout.contains("] PKCE"), "{}", run.stdout);

    let mut meta = as_metadata(&m, &m.base, None);
    meta["device_authorization_endpoint"] = json!(m.url("/device/auth"));
    m.fixed("/.well-known/oauth-authorization-server", Reply::json(200, meta));
    let run = discover(&m.url("/mcp"), &["--device"]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line(&run, "device authorization").contains("/device/auth"));
}

/// Run `discover` on a pseudo-terminal (util-linux's `script`), as a person
/// at a terminal would.
async fn discover_on_a_terminal(url: &str, no_color: bool) -> String {
    let bin = assert_cmd::cargo::cargo_bin("mcp-oauth");
    let store = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{} discover {url}", bin.display()), "/dev/null"])
        .env("MCP_OAUTH_STORE_PATH", store.path())
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("script (util-linux)"))
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colours_on_a_terminal_and_none_with_no_color() {
    let m = Mock::start().await;
    good(&m);
    let coloured = discover_on_a_terminal(&m.url("/mcp"), false).await;
    assert!(
        coloured.contains("\u{1b}[32m[ ok ]") || coloured.contains("\u{1b}[1m\u{1b}[32m[ ok ]"),
        "{coloured:?}"
    );
    let plain = discover_on_a_terminal(&m.url("/mcp"), true).await;
    assert!(plain.contains("[ ok ] MCP server"), "{plain:?}");
    assert!(!plain.contains("\u{1b}[32m"), "{plain:?}");
}

#[test]
fn a_client_id_that_starts_with_a_hyphen_is_a_value_not_an_option() {
    // Authorization servers generate base64url client ids: "-K3..." is one.
    let out = assert_cmd::Command::cargo_bin("mcp-oauth")
        .unwrap()
        .args([
            "discover",
            "http://127.0.0.1:9/mcp",
            "--client-id",
            "-Kx_generated",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["server"], "http://127.0.0.1:9/mcp", "{report}");
}
