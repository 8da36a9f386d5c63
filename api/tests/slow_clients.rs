//! Slow clients are cut off: a connection that does not finish its headers in
//! `API_HEADER_READ_TIMEOUT_MS` is closed; a request whose body does not arrive in
//! `API_BODY_READ_TIMEOUT_MS` is answered 408 and its connection closed.

mod support;

use std::time::{Duration, Instant};

use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_MS: u64 = 600;
const BODY_MS: u64 = 800;

async fn app() -> TestApp {
    TestApp::spawn_with(&[
        ("API_HEADER_READ_TIMEOUT_MS", &HEADER_MS.to_string()),
        ("API_BODY_READ_TIMEOUT_MS", &BODY_MS.to_string()),
    ])
    .await
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent and
/// when it closed. Panics when the connection is still open after `limit`.
async fn read_until_closed(
    stream: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?}; received {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Instant::now())
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let app = app().await;
    let mut half = TcpStream::connect(app.addr).await.expect("connect");
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let start = Instant::now();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: ezpulze.test\r\nX-Slow: ")
        .await
        .expect("write");
    for stream in [&mut half, &mut silent] {
        let (got, closed) = read_until_closed(stream, Duration::from_secs(8)).await;
        let after = closed - start;
        assert!(got.is_empty(), "no answer to a half request: {got:?}");
        assert!(
            after >= Duration::from_millis(HEADER_MS - 100),
            "closed after {after:?}, before the timeout"
        );
        assert!(after < Duration::from_secs(4), "closed after {after:?}");
    }
    // A client that sends its headers in time is served as before.
    let mut ok = TcpStream::connect(app.addr).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: ezpulze.test\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(HEADER_MS / 3)).await;
    ok.write_all(b"Connection: close\r\n\r\n")
        .await
        .expect("write");
    let (got, _) = read_until_closed(&mut ok, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_gets_408_and_the_connection_closes() {
    let app = app().await;
    // 10 GB announced, one byte sent.
    let mut huge = TcpStream::connect(app.addr).await.expect("connect");
    let start = Instant::now();
    huge.write_all(
        b"POST /ui/session HTTP/1.1\r\nHost: ezpulze.test\r\nContent-Type: application/json\r\n\
          Content-Length: 10000000000\r\n\r\n{",
    )
    .await
    .expect("write");
    let (got, closed) = read_until_closed(&mut huge, Duration::from_secs(8)).await;
    let after = closed - start;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert!(got.contains("\"request_timeout\""), "{got}");
    assert!(got.to_ascii_lowercase().contains("x-request-id"), "{got}");
    assert!(after >= Duration::from_millis(BODY_MS - 100), "{after:?}");
    assert!(after < Duration::from_secs(5), "{after:?}");

    // Trickling the body does not move the deadline: the whole body is due in time.
    let trickle = TcpStream::connect(app.addr).await.expect("connect");
    let (mut read, mut write) = trickle.into_split();
    let body = br#"{"token": "adm_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /ui/session HTTP/1.1\r\nHost: ezpulze.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let start = Instant::now();
    write.write_all(head.as_bytes()).await.expect("write");
    let writer = tokio::spawn(async move {
        for byte in body {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (got, closed) = read_until_closed(&mut read, Duration::from_secs(8)).await;
    writer.abort();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    let after = closed - start;
    assert!(after < Duration::from_millis(BODY_MS * 3), "{after:?}");

    // A body sent in parts within the time is read as usual (here: a sign-in with a token
    // that does not exist).
    let mut parts = TcpStream::connect(app.addr).await.expect("connect");
    parts.write_all(head.as_bytes()).await.expect("write");
    parts.write_all(&body[..10]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(BODY_MS / 3)).await;
    parts.write_all(&body[10..]).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), parts.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
}

#[tokio::test]
async fn the_client_address_still_reaches_the_handlers() {
    // An API key allowed only from another address is refused from 127.0.0.1, and one
    // allowed from 127.0.0.1 works: the peer address is known to authentication.
    let app = app().await;
    let acc = app.account("Acme").await;
    let body = |ip: &str| serde_json::json!({"name": "k", "scope_group": "full_access", "allowed_ips": [ip]});
    let (elsewhere, _) = app.key(&acc.admin, body("203.0.113.7")).await;
    let (here, _) = app.key(&acc.admin, body("127.0.0.1")).await;
    assert_eq!(app.get("/api/v1/me", &elsewhere).await.0, 403);
    assert_eq!(app.get("/api/v1/me", &here).await.0, 200);
}
