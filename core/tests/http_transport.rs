//! The reqwest transport against small in-process servers: what happens to a
//! pooled connection the server closed, idle connections, and TLS roots.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_oauth_client::{HttpRequest, HttpTransport, NetworkFailure, ReqwestTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// What a test server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Requests read on a connection that had already been answered once,
    /// then dropped with a reset instead of an answer.
    dropped_on_reuse: AtomicUsize,
}

/// Read one request head (this client sends no body with GET, and the POST
/// body is read by `Content-Length`). `None` when the peer closed first.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => buf.push(byte[0]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    Some(head)
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";

/// How the test server drops a connection.
#[derive(Clone, Copy, Debug)]
enum Drop {
    /// A TCP reset (SO_LINGER 0): the client reads "connection reset by peer".
    Reset,
    /// An orderly close: hyper reads "connection closed before message completed".
    Close,
}

/// A server that answers the first request of every connection and keeps the
/// connection open; a second request on the same connection is read and then
/// dropped unanswered, as a server does when its keep-alive timer fires just
/// as the client reuses the connection.
async fn closing_server(how: Drop) -> (Url, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/.well-known/x", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_none() {
                    return;
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                if stream.write_all(OK).await.is_err() {
                    return;
                }
                if read_request(&mut stream).await.is_none() {
                    return;
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                s.dropped_on_reuse.fetch_add(1, Ordering::SeqCst);
                if let Drop::Reset = how {
                    let _ = stream.set_zero_linger();
                }
                drop(stream);
            });
        }
    });
    (url, seen)
}

/// A server that answers every request and keeps connections open.
async fn keep_alive_server() -> (Url, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/.well-known/x", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                while read_request(&mut stream).await.is_some() {
                    s.requests.fetch_add(1, Ordering::SeqCst);
                    if stream.write_all(OK).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn request(method: &'static str, url: &Url) -> HttpRequest {
    HttpRequest {
        method,
        url: url.clone(),
        headers: vec![("accept".into(), "application/json".into())],
        body: (method == "POST").then(|| b"grant_type=refresh_token".to_vec()),
        timeout: Duration::from_secs(10),
        max_response_bytes: 1024,
    }
}

#[tokio::test]
async fn a_get_on_a_pooled_connection_the_server_closed_is_sent_again_on_a_new_one() {
    for how in [Drop::Reset, Drop::Close] {
        let (url, seen) = closing_server(how).await;
        let transport = ReqwestTransport::new().unwrap();

        let first = transport.send(request("GET", &url)).await.unwrap();
        assert_eq!(first.status, 200);
        let second = transport.send(request("GET", &url)).await;

        // The situation under test happened: the second request went out on
        // the pooled connection and the server dropped it.
        assert_eq!(seen.dropped_on_reuse.load(Ordering::SeqCst), 1, "{how:?}");
        let second = second.unwrap_or_else(|e| panic!("{how:?}: the GET was not sent again: {}", e.message));
        assert_eq!(second.status, 200);
        assert!(seen.connections.load(Ordering::SeqCst) >= 2, "{how:?}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 3, "{how:?}");
    }
}

#[tokio::test]
async fn a_post_on_a_pooled_connection_the_server_closed_is_not_sent_again() {
    let (url, seen) = closing_server(Drop::Reset).await;
    let transport = ReqwestTransport::new().unwrap();

    assert_eq!(transport.send(request("GET", &url)).await.unwrap().status, 200);
    let e = transport.send(request("POST", &url)).await.unwrap_err();

    assert_eq!(seen.dropped_on_reuse.load(Ordering::SeqCst), 1);
    assert_eq!(e.failure, NetworkFailure::Other);
    // A POST may have been acted on (a code redeemed, a client registered):
    // sending it again is not this layer's call.
    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    assert!(!e.message.contains("grant_type"), "{}", e.message);
}

#[tokio::test]
async fn a_get_that_times_out_is_not_sent_again() {
    // A server that reads requests and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/slow", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            if read_request(&mut stream).await.is_some() {
                s.requests.fetch_add(1, Ordering::SeqCst);
            }
            held.push(stream);
        }
    });
    let transport = ReqwestTransport::new().unwrap();
    let mut req = request("GET", &url);
    req.timeout = Duration::from_millis(300);

    let e = transport.send(req).await.unwrap_err();

    assert_eq!(e.failure, NetworkFailure::Timeout);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pooled_connection_idle_past_the_pool_timeout_is_not_reused() {
    let (url, seen) = keep_alive_server().await;
    let transport = ReqwestTransport::new().unwrap();

    transport.send(request("GET", &url)).await.unwrap();
    // Idle for longer than the pool keeps a connection; servers commonly
    // keep one for 5 s, so a connection kept longer may be closing.
    tokio::time::sleep(mcp_oauth_client::http::POOL_IDLE_TIMEOUT + Duration::from_secs(1)).await;
    transport.send(request("GET", &url)).await.unwrap();

    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    assert!(mcp_oauth_client::http::POOL_IDLE_TIMEOUT < Duration::from_secs(5));
}

/// A private CA and an HTTPS server on 127.0.0.1 with a certificate it
/// signed. Returns the server's URL and the CA certificate in PEM.
async fn private_ca_server() -> (Url, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("https://{}/.well-known/x", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(OK).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, ca_cert.pem())
}

#[tokio::test]
async fn a_server_with_a_private_ca_is_trusted_only_once_the_ca_is_added() {
    use mcp_oauth_client::http::TransportOptions;

    let (url, ca_pem) = private_ca_server().await;

    let e = ReqwestTransport::new()
        .unwrap()
        .send(request("GET", &url))
        .await
        .unwrap_err();
    assert_eq!(e.failure, NetworkFailure::Tls, "{}", e.message);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, &ca_pem).unwrap();
    let mut options = TransportOptions::default();
    options.add_root_certificates_file(&file).unwrap();
    let resp = ReqwestTransport::with_options(&options)
        .unwrap()
        .send(request("GET", &url))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    let mut options = TransportOptions::default();
    options.add_root_certificates_pem(ca_pem.as_bytes()).unwrap();
    let resp = ReqwestTransport::with_options(&options)
        .unwrap()
        .send(request("GET", &url))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn extra_root_certificates_that_are_not_pem_or_hold_no_certificate_are_refused_by_name() {
    use mcp_oauth_client::ErrorKind;
    use mcp_oauth_client::http::TransportOptions;

    let dir = tempfile::tempdir().unwrap();
    let mut options = TransportOptions::default();

    let der = dir.path().join("ca.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a]).unwrap();
    let e = options.add_root_certificates_file(&der).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(e.message().contains("ca.der") && e.message().contains("not PEM"), "{e}");

    let key = dir.path().join("key.pem");
    let key_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(&key, &key_pem).unwrap();
    let e = options.add_root_certificates_file(&key).unwrap_err();
    assert!(
        e.message().contains("key.pem") && e.message().contains("no certificate"),
        "{e}"
    );
    // The key pasted by mistake is not repeated in the error.
    assert!(!e.to_string().contains(key_pem.lines().nth(1).unwrap()));

    let e = options
        .add_root_certificates_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
        .unwrap_err();
    assert!(e.message().contains("not valid PEM"), "{e}");
    let e = options
        .add_root_certificates_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(e.message().contains("not a usable X.509 certificate"), "{e}");

    let missing = dir.path().join("missing.pem");
    let e = options.add_root_certificates_file(&missing).unwrap_err();
    assert!(e.message().contains("missing.pem"), "{e}");

    assert!(options.extra_root_certificates.is_empty());
}
