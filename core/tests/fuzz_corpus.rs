//! Replays the fuzz targets' seed corpus (`fuzz/corpus/<target>`) and the
//! inputs of crashes found and fixed (`fuzz/regressions/<target>`) through the
//! same entry points the targets call, so a fixed bug stays fixed where
//! cargo-fuzz is not installed. Realistic seeds must be accepted and hostile
//! ones refused, which also shows the targets reach the code past the checks.
//!
//! `cargo test -p mcp-oauth-client --features fuzzing,redis --test fuzz_corpus`
#![cfg(feature = "fuzzing")]

use std::path::{Path, PathBuf};

use mcp_oauth_client::fuzzing;

type Target = fn(&[u8]) -> bool;

const TARGETS: [(&str, Target); 8] = [
    ("www_authenticate", fuzzing::www_authenticate),
    ("metadata", fuzzing::metadata),
    ("token_response", fuzzing::token_response),
    ("registration_response", fuzzing::registration_response),
    ("callback", fuzzing::callback),
    ("loopback_request", fuzzing::loopback_request),
    ("dpop", fuzzing::dpop),
    ("stored_values", fuzzing::stored_values),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a known target")
}

fn run(name: &str, file: &str) -> bool {
    let path = fuzz_dir().join("corpus").join(name).join(file);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    target(name)(&data)
}

#[test]
fn every_seed_and_regression_runs_without_a_panic() {
    let mut seen = 0;
    for (name, f) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "the target {name} has seeds");
        for path in seeds
            .iter()
            .chain(files(&fuzz_dir().join("regressions").join(name)).iter())
        {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| f(&data));
            assert!(outcome.is_ok(), "{name}: {} panics", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 8 * 5, "only {seen} inputs");
}

/// What the realistic seeds must come to (accepted), and the hostile ones
/// (refused): a target that refused everything would test little.
#[test]
fn realistic_seeds_are_accepted_and_hostile_ones_refused() {
    let table: &[(&str, &[&str], &[&str])] = &[
        (
            "www_authenticate",
            &[
                "mcp-sdk-401",
                "insufficient-scope",
                "dpop-nonce",
                "several-schemes",
                "broken-then-good",
            ],
            &[],
        ),
        (
            "metadata",
            &[
                "oidc-provider",
                "oidc-provider-openid-config",
                "pinned",
                "from-challenge",
                "mcp-sdk",
                "legacy-no-prm",
                "no-pkce-assumed",
                "bare-bodies",
            ],
            &[
                "issuer-mixup",
                "resource-elsewhere",
                "http-as",
                "no-s256",
                "javascript-endpoint",
                "server-error",
            ],
        ),
        (
            "token_response",
            &[
                "oidc-provider-code",
                "sdk-refresh",
                "dpop-token",
                "dpop-nonce-retry",
                "form-encoded",
                "id-jag-exchange",
            ],
            &[
                "dpop-nonce-again",
                "invalid-grant",
                "error-with-200",
                "html-page",
                "json-array",
                "negative-expiry",
                "absurd-expiry",
                "header-smuggling",
                "mac-token",
                "rate-limited",
                "exchange-wrong-type",
            ],
        ),
        (
            "registration_response",
            &[
                "oidc-provider",
                "mcp-sdk-secret",
                "no-redirects",
                "private-key-jwt",
                "device-oidc-provider",
                "device-no-interval",
            ],
            &[
                "swapped-redirect",
                "added-redirect",
                "tls-client-auth",
                "refused",
                "empty-client-id",
                "html",
                "device-http-uri",
                "device-long-lived",
                "device-slow-down",
                "device-user-code-control",
                "device-creds-in-uri",
            ],
        ),
        (
            "callback",
            &["oidc-provider", "no-iss", "repeated-params"],
            &["iss-missing", "iss-mixup", "denied", "wrong-state", "empty-code"],
        ),
        (
            "loopback_request",
            &["chrome-redirect", "chrome-redirect-state-expected", "denied", "bare-lf"],
            &["favicon", "wrong-state", "post", "absolute-form", "dot-segments"],
        ),
        (
            "dpop",
            &[
                "oidc-provider-nonce",
                "resource-request",
                "bad-nonces",
                "idn-host",
                "same-nonce-twice",
            ],
            &["not-a-url"],
        ),
        (
            "stored_values",
            &[
                "file",
                "file-before-versions",
                "file-dpop-token",
                "redis-plain-token",
                "redis-plain-client",
                "seal-token",
                "version-and-data",
            ],
            &[
                "redis-encrypted-shape",
                "redis-unknown-key",
                "redis-downgrade",
                "version-zero",
            ],
        ),
    ];
    for (name, accepted, refused) in table {
        for file in *accepted {
            assert!(run(name, file), "{name}/{file} should be accepted");
        }
        for file in *refused {
            assert!(!run(name, file), "{name}/{file} should be refused");
        }
    }
}
