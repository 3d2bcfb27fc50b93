//! The keychain store against a real Secret Service (gnome-keyring). The
//! tests that need one are ignored by default and run by scripts/test.sh
//! inside scripts/with-keyring.sh, which starts a private D-Bus session with
//! an unlocked keyring:
//!
//! ```sh
//! scripts/with-keyring.sh cargo test -p mcp-oauth-client --features keyring --test keyring -- --include-ignored
//! ```
#![cfg(feature = "keyring")]

use std::process::Command;

use mcp_oauth_client::{
    CasOutcome, ErrorKind, KeyringStorage, OAuthClientInformationFull, OAuthToken, Secret, TokenStorage, Version,
};

const CHILD_VAR: &str = "MCP_OAUTH_KEYRING_CHILD";
const SERVER: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://as.example.com";

fn unique_service() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!(
        "mcp-oauth-client-test-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn require_secret_service() {
    assert!(
        std::env::var_os("MCP_OAUTH_KEYRING_TESTS").is_some(),
        "run under scripts/with-keyring.sh (a Secret Service on a private D-Bus session)"
    );
}

/// Run the ignored test `name` of this file in a new process, with `env`.
fn child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--ignored", "--test-threads=1", "--nocapture"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn secret_tool(args: &[&str]) -> Option<String> {
    let out = Command::new("secret-tool").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tokens() -> OAuthToken {
    let mut t = OAuthToken::bearer("keyring-access-token");
    t.refresh_token = Some(Secret::new("keyring-refresh-token"));
    t.scope = Some("mcp:read".into());
    t.issuer = Some(ISSUER.into());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Secret Service: run under scripts/with-keyring.sh"]
async fn stores_reads_back_from_another_process_and_deletes() {
    require_secret_service();
    let service = unique_service();
    let store = KeyringStorage::with_service(&service, SERVER).unwrap();
    assert!(store.load_tokens().await.unwrap().value.is_none());

    let written = match store
        .compare_and_set_tokens(Version::ABSENT, Some(tokens()))
        .await
        .unwrap()
    {
        CasOutcome::Stored(v) => v,
        CasOutcome::Conflict(_) => panic!("an empty store conflicted"),
    };
    let mut info = OAuthClientInformationFull::new("keyring-client", Some(Secret::new("keyring-client-secret")));
    info.issuer = Some(ISSUER.into());
    store.set_client_info(info).await.unwrap();

    // The entries are in the Secret Service, named per server and per issuer,
    // as another program sees them.
    let raw = secret_tool(&["lookup", "service", &service, "username", &store.tokens_account()])
        .expect("secret-tool finds the server's entry");
    assert!(raw.contains("keyring-refresh-token"));
    let raw = secret_tool(&[
        "lookup",
        "service",
        &service,
        "username",
        &KeyringStorage::client_account(ISSUER),
    ])
    .expect("secret-tool finds the issuer's entry");
    assert!(raw.contains("keyring-client"));

    // Another process reads them back.
    let out = child(
        "child_reads_back",
        &[(CHILD_VAR, &service), ("MCP_OAUTH_KEYRING_EXPECT", "present")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A write over an old version conflicts and changes nothing.
    let mut newer = tokens();
    newer.access_token = Secret::new("newer-access-token");
    match store
        .compare_and_set_tokens(Version(written.0 + 100), Some(newer))
        .await
        .unwrap()
    {
        CasOutcome::Conflict(now) => assert_eq!(now.version, written),
        CasOutcome::Stored(_) => panic!("a stale write went through"),
    }

    // Deleting the tokens removes them for every process; the registration stays.
    assert!(matches!(
        store.compare_and_set_tokens(written, None).await.unwrap(),
        CasOutcome::Stored(Version::ABSENT)
    ));
    assert!(store.get_tokens().await.unwrap().is_none());
    let out = child(
        "child_reads_back",
        &[(CHILD_VAR, &service), ("MCP_OAUTH_KEYRING_EXPECT", "absent")],
    );
    assert!(out.status.success(), "child: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        store.get_client_info_for(ISSUER).await.unwrap().unwrap().client_id,
        "keyring-client"
    );

    // Forgetting everything leaves no entry behind.
    assert!(store.delete_all(true).await.unwrap());
    assert!(secret_tool(&["lookup", "service", &service, "username", &store.tokens_account()]).is_none());
    assert!(store.get_client_info_for(ISSUER).await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "run by stores_reads_back_from_another_process_and_deletes in a child process"]
async fn child_reads_back() {
    let Ok(service) = std::env::var(CHILD_VAR) else {
        return;
    };
    let store = KeyringStorage::with_service(&service, SERVER).unwrap();
    let got = store.get_tokens().await.unwrap();
    if std::env::var("MCP_OAUTH_KEYRING_EXPECT").as_deref() == Ok("absent") {
        assert!(got.is_none());
        return;
    }
    let got = got.expect("the other process's tokens");
    assert_eq!(got.access_token.expose(), "keyring-access-token");
    assert_eq!(got.refresh_token.unwrap().expose(), "keyring-refresh-token");
    let info = store.get_client_info_for(ISSUER).await.unwrap().unwrap();
    assert_eq!(info.client_id, "keyring-client");
    assert_eq!(info.client_secret.unwrap().expose(), "keyring-client-secret");
    assert_eq!(
        store.get_client_info().await.unwrap().unwrap().client_id,
        "keyring-client"
    );
    // Another server's store under the same service shares the registration
    // but not the tokens.
    let other = KeyringStorage::with_service(&service, "https://other.example.com/mcp").unwrap();
    assert!(other.get_tokens().await.unwrap().is_none());
    assert_eq!(
        other.get_client_info_for(ISSUER).await.unwrap().unwrap().client_id,
        "keyring-client"
    );
}

#[test]
fn without_a_secret_service_the_error_says_so() {
    // A bus address where nothing listens: what a host without a desktop
    // session (or with the keyring daemon stopped) meets.
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}", dir.path().join("no-bus").display());
    let out = child(
        "child_without_a_secret_service",
        &[(CHILD_VAR, "no-service"), ("DBUS_SESSION_BUS_ADDRESS", &address)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by without_a_secret_service_the_error_says_so in a child process"]
async fn child_without_a_secret_service() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let store = KeyringStorage::with_service(&unique_service(), SERVER).unwrap();
    for e in [
        store.get_tokens().await.unwrap_err(),
        store.set_tokens(tokens()).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.message().contains("the OS keychain cannot"), "{e}");
        assert!(e.message().contains("Secret Service"), "{e}");
        assert!(!e.to_string().contains("keyring-refresh-token"), "{e}");
    }
}

#[test]
fn names_are_checked() {
    assert!(KeyringStorage::with_service("", SERVER).is_err());
    assert!(KeyringStorage::with_service("svc\n", SERVER).is_err());
    assert!(KeyringStorage::with_service("svc", "").is_err());
    let s = KeyringStorage::new(SERVER).unwrap();
    assert_eq!(s.service(), KeyringStorage::DEFAULT_SERVICE);
    assert_eq!(s.tokens_account(), format!("tokens {SERVER}"));
    assert_eq!(
        KeyringStorage::client_account("https://as.example.com/"),
        "client https://as.example.com"
    );
}
