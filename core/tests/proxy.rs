//! The default transport goes through the proxy the environment names.
//!
//! This binary holds a single test because it sets process-wide environment
//! variables, which would race with any other test running beside it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_client::{HttpRequest, HttpTransport, ReqwestTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

#[test]
fn http_proxy_from_the_environment_is_used() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A proxy that records the request line of each request and answers it.
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = seen.clone();
    runtime.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            recorded
                .lock()
                .unwrap()
                .push(head.lines().next().unwrap_or("").to_string());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .await;
        }
    });

    // SAFETY: this is the only test of this binary, and no other thread of
    // it reads or writes the environment.
    unsafe {
        for name in [
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
            "http_proxy",
            "REQUEST_METHOD",
        ] {
            std::env::remove_var(name);
        }
        std::env::set_var("HTTP_PROXY", &proxy);
    }

    // A host name that never resolves (RFC 2606): only the proxy can answer.
    let url = Url::parse("http://as.example.invalid/.well-known/oauth-authorization-server").unwrap();
    let transport = ReqwestTransport::new().unwrap();
    let resp = runtime
        .block_on(transport.send(HttpRequest {
            method: "GET",
            url: url.clone(),
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024,
        }))
        .unwrap_or_else(|e| panic!("the request did not go through the proxy: {}", e.message));

    assert_eq!(resp.status, 200);
    assert_eq!(*seen.lock().unwrap(), vec![format!("GET {url} HTTP/1.1")]);
}
