//! The bridge's wire against an in-process server: the headers each
//! transport needs, sessions, and servers that misbehave.

#[path = "../../core/tests/mock/mod.rs"]
mod mock;

use std::time::Duration;

use mcp_oauth_proxy::{ProxyConfig, TransportStrategy, parse_header, run};
use mock::{Mock, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Run the bridge over `lines` (stdin then closed) and collect stdout.
async fn bridge(cfg: ProxyConfig, lines: &[Value]) -> Vec<Value> {
    let (mut host_in, bridge_in) = tokio::io::duplex(1 << 20);
    let (bridge_out, host_out) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(run(cfg, bridge_in, bridge_out));
    for l in lines {
        host_in.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    drop(host_in);
    let mut out = Vec::new();
    let mut reader = BufReader::new(host_out).lines();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), reader.next_line())
        .await
        .expect("the bridge hung")
        .unwrap()
    {
        out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON message per line ({e}): {line}")));
    }
    task.await.unwrap().unwrap();
    out
}

fn config(mock: &Mock, path: &str, transport: TransportStrategy) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(mock.url(path).parse().unwrap());
    cfg.transport = transport;
    cfg
}

#[tokio::test]
async fn a_stateless_message_carries_its_version_method_and_name_as_headers() {
    let mock = Mock::start().await;
    mock.route("/mcp", |seen| {
        let id: Value = serde_json::from_str::<Value>(&seen.body).unwrap()["id"].clone();
        // Pretty-printed, over several lines: relayed as one line.
        let body =
            serde_json::to_string_pretty(&json!({"jsonrpc": "2.0", "id": id, "result": {"content": []}})).unwrap();
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
            delay: Duration::ZERO,
        }
    });
    let mut cfg = config(&mock, "/mcp", TransportStrategy::HttpOnly);
    let (n, v) = parse_header("X-Tenant: acme").unwrap();
    cfg.headers.insert(n, v);
    let out = bridge(
        cfg,
        &[
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
        ],
    )
    .await;
    assert_eq!(out, vec![json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})]);
    let seen = &mock.requests_to("/mcp")[0];
    assert_eq!(seen.headers["mcp-protocol-version"], "2026-07-28");
    assert_eq!(seen.headers["mcp-method"], "tools/call");
    assert_eq!(seen.headers["mcp-name"], "echo");
    assert_eq!(seen.headers["x-tenant"], "acme");
    assert!(seen.headers["accept"].contains("text/event-stream"));
    assert!(!seen.headers.contains_key("mcp-session-id"));
}

#[tokio::test]
async fn the_session_and_negotiated_version_are_sent_back_and_the_session_ended() {
    let mock = Mock::start().await;
    mock.route("/mcp", |seen| {
        if seen.method == "DELETE" {
            return Reply::status(204);
        }
        let msg: Value = serde_json::from_str(&seen.body).unwrap();
        match msg["method"].as_str() {
            Some("initialize") => Reply::json(
                200,
                json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-11-25",
                    "capabilities": {}, "serverInfo": {"name": "mock", "version": "0"}}}),
            )
            .header("mcp-session-id", "s-42"),
            Some("notifications/initialized") => Reply::status(202),
            _ => Reply::json(200, json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": []}})),
        }
    });
    let out = bridge(
        config(&mock, "/mcp", TransportStrategy::HttpFirst),
        &[
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ],
    )
    .await;
    assert_eq!(out.len(), 2, "{out:?}");
    let seen = mock.requests_to("/mcp");
    let after: Vec<_> = seen.iter().skip(1).filter(|s| s.method == "POST").collect();
    assert!(!after.is_empty());
    for s in after {
        assert_eq!(s.headers["mcp-session-id"], "s-42");
        assert_eq!(s.headers["mcp-protocol-version"], "2025-11-25");
    }
    let deletes: Vec<_> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "the session is ended when stdin closes");
    assert_eq!(deletes[0].headers["mcp-session-id"], "s-42");
}

#[tokio::test]
async fn an_sse_endpoint_on_another_origin_is_refused() {
    // Tokens for this server must never be POSTed elsewhere.
    let mock = Mock::start().await;
    mock.fixed(
        "/sse",
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: b"event: endpoint\ndata: https://elsewhere.example/messages\n\n".to_vec(),
            delay: Duration::ZERO,
        },
    );
    let out = bridge(
        config(&mock, "/sse", TransportStrategy::SseOnly),
        &[json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"})],
    )
    .await;
    assert_eq!(out.len(), 1);
    let msg = out[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("another origin"), "{msg}");
}

#[tokio::test]
async fn errors_reach_the_host_with_the_request_id_and_nothing_for_notifications() {
    let mock = Mock::start().await;
    mock.route("/mcp", |seen| {
        let msg: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        if msg["method"] == "big" {
            // More than the bridge accepts.
            return Reply::json(
                200,
                json!({"jsonrpc": "2.0", "id": msg["id"], "result": "x".repeat(4096)}),
            );
        }
        Reply {
            status: 500,
            headers: vec![],
            body: b"<html>\r\n<b>upstream\x07 down</b></html>".to_vec(),
            delay: Duration::ZERO,
        }
    });
    let mut cfg = config(&mock, "/mcp", TransportStrategy::HttpOnly);
    cfg.max_message = 1024;
    let out = bridge(
        cfg,
        &[
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 9, "method": "big"}),
        ],
    )
    .await;
    assert_eq!(
        out.len(),
        2,
        "one answer per request, none for the notification: {out:?}"
    );
    let by_id = |id: Value| out.iter().find(|m| m["id"] == id).unwrap().clone();
    let a = by_id(json!("a"));
    assert_eq!(a["error"]["data"]["httpStatus"], 500);
    let msg = a["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 500") && !msg.contains('\r') && !msg.contains('\x07'),
        "{msg}"
    );
    let big = by_id(json!(9));
    assert!(
        big["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1024 bytes"),
        "{big}"
    );
}
