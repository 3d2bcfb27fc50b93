//! The loopback redirect receiver (RFC 8252 §7.3) as a browser meets it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_client::{AuthorizationCodeResult, LoopbackReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use url::Url;

/// Long enough never to end a test that works; the tests do not wait for it.
const PATIENCE: Duration = Duration::from_secs(60);

fn port_of(receiver: &LoopbackReceiver) -> u16 {
    Url::parse(receiver.redirect_uri()).unwrap().port().unwrap()
}

fn waiting(receiver: &Arc<LoopbackReceiver>) -> JoinHandle<mcp_oauth_client::Result<AuthorizationCodeResult>> {
    let receiver = receiver.clone();
    tokio::spawn(async move { receiver.wait().await })
}

/// Send one GET on a new connection and read the whole answer.
async fn get(addr: SocketAddr, target: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    get_on(&mut stream, target).await
}

async fn get_on(stream: &mut TcpStream, target: &str) -> String {
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[tokio::test]
async fn an_idle_connection_and_a_favicon_request_do_not_hold_up_the_redirect() {
    let receiver = Arc::new(
        LoopbackReceiver::bind("http://127.0.0.1:0/callback", PATIENCE)
            .await
            .unwrap(),
    );
    receiver.expect_state(Some("s1".into()));
    let addr = v4(port_of(&receiver));
    let waiter = waiting(&receiver);

    // A browser's pre-connect: open, and nothing sent.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let favicon = get(addr, "/favicon.ico").await;
    assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
    // The favicon was answered while the pre-connect stayed open, unanswered.
    let mut buf = [0u8; 64];
    assert_eq!(
        idle.try_read(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );

    let page = get(addr, "/callback?code=abc&state=s1").await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("You are signed in"),
        "{page}"
    );
    let result = waiter.await.unwrap().unwrap();
    assert_eq!(result.code.unwrap().expose(), "abc");

    // The pre-connect is closed, never answered.
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn the_receiver_stops_listening_once_the_redirect_arrived_and_listens_again_for_the_next() {
    let receiver = Arc::new(
        LoopbackReceiver::bind("http://127.0.0.1:0/callback", PATIENCE)
            .await
            .unwrap(),
    );
    let addr = v4(port_of(&receiver));

    let waiter = waiting(&receiver);
    assert!(get(addr, "/callback?code=first").await.starts_with("HTTP/1.1 200"));
    assert_eq!(waiter.await.unwrap().unwrap().code.unwrap().expose(), "first");

    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // A second authorization (a step-up) uses the same redirect URI.
    receiver.listen().await.unwrap();
    let waiter = waiting(&receiver);
    assert!(get(addr, "/callback?code=second").await.starts_with("HTTP/1.1 200"));
    assert_eq!(waiter.await.unwrap().unwrap().code.unwrap().expose(), "second");
    assert_eq!(port_of(&receiver), addr.port());
}

#[tokio::test]
async fn an_error_redirect_ends_the_wait_with_the_error_and_a_failure_page() {
    let receiver = Arc::new(LoopbackReceiver::bind("http://127.0.0.1:0/cb", PATIENCE).await.unwrap());
    receiver.expect_state(Some("s2".into()));
    let addr = v4(port_of(&receiver));
    let waiter = waiting(&receiver);

    let forged = get(addr, "/cb?error=access_denied&state=other").await;
    assert!(forged.starts_with("HTTP/1.1 400"), "{forged}");
    let page = get(addr, "/cb?error=access_denied&error_description=no&state=s2").await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("Sign-in was cancelled"),
        "{page}"
    );

    let result = waiter.await.unwrap().unwrap();
    let error = result.error.unwrap();
    assert_eq!(error.error, "access_denied");
    assert_eq!(error.error_description.as_deref(), Some("no"));
    assert!(result.code.is_none());
}

#[tokio::test]
async fn a_localhost_redirect_reaches_the_receiver_on_every_address_localhost_has_here() {
    let receiver = Arc::new(
        LoopbackReceiver::bind("http://localhost:0/callback", PATIENCE)
            .await
            .unwrap(),
    );
    assert!(receiver.redirect_uri().starts_with("http://localhost:"));
    let port = port_of(&receiver);

    // What a browser does with the advertised URI: resolve localhost and
    // connect to whichever address answers.
    let waiter = waiting(&receiver);
    let mut stream = TcpStream::connect(("localhost", port)).await.unwrap();
    let page = get_on(&mut stream, "/callback?code=by-name").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert_eq!(waiter.await.unwrap().unwrap().code.unwrap().expose(), "by-name");

    // And each loopback address by itself, where the machine has it: a
    // browser may pick either.
    let has_ipv6 = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    let mut addrs = vec![v4(port)];
    if has_ipv6 {
        addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
    }
    for addr in addrs {
        receiver.listen().await.unwrap();
        let waiter = waiting(&receiver);
        let page = get(addr, "/callback?code=direct").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{addr}: {page}");
        assert_eq!(waiter.await.unwrap().unwrap().code.unwrap().expose(), "direct");
    }
}
