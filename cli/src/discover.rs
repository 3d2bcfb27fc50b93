//! `mcp-oauth discover`: the core's diagnosis, rendered. Every step, its
//! verdict and what would fix it come from the core; this only lays them out.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use mcp_oauth_client::{DiscoveryReport, DiscoveryStep, Verdict};
use serde_json::{Value, json};

/// The core names its settings; a person at this program uses its flags.
fn with_flags(hint: &str) -> String {
    hint.replace(
        "assume_s256_when_pkce_unadvertised",
        "--assume-s256 (assume_s256_when_pkce_unadvertised)",
    )
    .replace("(allow_http_hosts)", "(--allow-http HOST)")
    .replace("configure its client_id", "give its client_id (--client-id)")
}

fn tag(v: Verdict) -> (&'static str, Style) {
    match v {
        Verdict::Ok => ("ok", AnsiColor::Green.on_default().bold()),
        Verdict::NotFound => ("--", Style::new().dimmed()),
        Verdict::Skipped => ("skip", AnsiColor::Yellow.on_default()),
        Verdict::Warning => ("warn", AnsiColor::Yellow.on_default().bold()),
        Verdict::Failed => ("FAIL", AnsiColor::Red.on_default().bold()),
        _ => ("?", Style::new()),
    }
}

fn step_line(s: &DiscoveryStep) -> String {
    let mut line = s.what.clone();
    match (&s.url, s.status) {
        (Some(url), Some(status)) => line.push_str(&format!(": {url} -> {status}")),
        (Some(url), None) if s.verdict == Verdict::Failed && is_fetch(s) => {
            line.push_str(&format!(": {url} -> no response"))
        }
        (Some(url), None) => line.push_str(&format!(" ({url})")),
        (None, _) => {}
    }
    if !s.detail.is_empty() {
        line.push_str(": ");
        line.push_str(&s.detail);
    }
    line
}

fn is_fetch(s: &DiscoveryStep) -> bool {
    matches!(
        s.what.as_str(),
        mcp_oauth_client::discovery::PROBE | "protected resource metadata" | "authorization server metadata"
    )
}

/// The lines a person reads.
pub fn render_text(url: &str, report: &DiscoveryReport) -> std::io::Result<()> {
    let mut out = anstream::stdout();
    let bold = Style::new().bold();
    writeln!(out, "{bold}discovering the OAuth of {url}{bold:#}")?;
    for s in &report.steps {
        let (label, style) = tag(s.verdict);
        writeln!(out, "{style}[{label:^4}]{style:#} {}", step_line(s))?;
        if let Some(hint) = &s.hint {
            let cyan = AnsiColor::Cyan.on_default();
            writeln!(out, "       {cyan}fix:{cyan:#} {}", with_flags(hint))?;
        }
    }
    let warnings = report.steps.iter().filter(|s| s.verdict == Verdict::Warning).count();
    match (&report.error, &report.discovered) {
        (Some(e), _) => {
            // An error no step recorded (a URL the server sent that is not one).
            if !report.steps.iter().any(|s| s.verdict == Verdict::Failed) {
                let (label, style) = tag(Verdict::Failed);
                writeln!(out, "{style}[{label:^4}]{style:#} {e}")?;
            }
            let red = AnsiColor::Red.on_default().bold();
            let at = report
                .steps
                .iter()
                .find(|s| s.verdict == Verdict::Failed)
                .map(|s| s.what.as_str())
                .unwrap_or_else(|| e.step().map(|s| s.as_str()).unwrap_or("configuration"));
            writeln!(out, "{red}the chain is broken at: {at}{red:#}")?;
        }
        (None, Some(d)) => {
            let (word, style) = if warnings > 0 {
                (
                    format!(
                        "the chain holds, with {warnings} warning{}",
                        if warnings == 1 { "" } else { "s" }
                    ),
                    AnsiColor::Yellow.on_default().bold(),
                )
            } else {
                ("the chain holds".to_string(), AnsiColor::Green.on_default().bold())
            };
            writeln!(
                out,
                "{style}{word}{style:#}: issuer {}, resource {}",
                d.issuer, d.resource
            )?;
        }
        (None, None) => writeln!(out, "nothing was discovered")?,
    }
    Ok(())
}

fn step_json(s: &DiscoveryStep) -> Value {
    json!({
        "step": s.step.as_str(),
        "what": s.what,
        "url": s.url,
        "status": s.status,
        "verdict": s.verdict.as_str(),
        "detail": s.detail,
        "hint": s.hint,
    })
}

/// One JSON document for machines.
pub fn render_json(url: &str, report: &DiscoveryReport) -> std::io::Result<()> {
    let d = report.discovered.as_ref();
    let doc = json!({
        "server": url,
        "ok": report.is_ok(),
        "warnings": report.has_warnings(),
        "steps": report.steps.iter().map(step_json).collect::<Vec<_>>(),
        "challenge": report.challenge.as_ref().map(|c| json!({
            "resource_metadata": c.resource_metadata,
            "scope": c.scope,
            "error": c.error,
        })),
        "issuer": d.map(|d| d.issuer.clone()),
        "resource": d.map(|d| d.resource.clone()),
        "authorization_endpoint": d.and_then(|d| d.server.authorization_endpoint.clone()),
        "token_endpoint": d.and_then(|d| d.server.token_endpoint.clone()),
        "registration_endpoint": d.and_then(|d| d.server.registration_endpoint.clone()),
        "client_identity": report.client_identity,
        "scope": report.scope,
        "error": report.error.as_ref().map(|e| json!({
            "kind": e.kind().as_str(),
            "step": e.step().map(|s| s.as_str()),
            "message": e.message(),
            "status": e.status(),
            "url": e.url(),
        })),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{doc:#}")
}
