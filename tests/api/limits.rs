//! Finding 5 of issue 14: a body sent at a byte a second was never cut off, and 100 such
//! connections stayed open past 170 s without a login. Bodies now have a deadline that grows
//! with the bytes received (408 `request_timeout`), and one address may have only so many
//! requests in flight (429 beyond it).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taizhang::config::Settings;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// An answer read off a raw connection.
struct Raw {
    status: u16,
    /// The head, lower-cased.
    head: String,
    body: Value,
}

/// Connects and sends a request head announcing `length` body bytes, then `first` of them.
async fn open(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    length: usize,
    first: &[u8],
) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connect");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(first).await.expect("first bytes");
    stream
}

/// Reads one answer (head and a Content-Length body).
async fn answer(stream: &mut (impl AsyncRead + Unpin)) -> Raw {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(raw) = parse(&bytes) {
                return raw;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => panic!(
                    "the connection ended before a whole answer: {:?}",
                    String::from_utf8_lossy(&bytes)
                ),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("an answer within a minute")
}

fn parse(bytes: &[u8]) -> Option<Raw> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let body = bytes.get(end + 4..end + 4 + length)?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Raw {
        status,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        head,
    })
}

/// Whether the server closes the connection (EOF or reset) within a minute.
async fn closed(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 4096];
    let drain = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .is_ok()
}

fn assert_problem(raw: &Raw, status: u16, code: &str) {
    assert_eq!(raw.status, status, "{}", raw.head);
    assert!(
        raw.head.contains("content-type: application/problem+json"),
        "{}",
        raw.head
    );
    assert_eq!(raw.body["code"], code, "{}", raw.body);
    assert_eq!(raw.body["status"], status);
}

fn quick_bodies(s: &mut Settings) {
    s.http.body_grace = Duration::from_secs(2);
}

async fn a_body_trickled_at_a_byte_a_second_is_cut_off_with_408(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_bodies).await;
    let body = br#"{"phone":"13900000001","password":"demo-city-0001","device_id":"trickle"}"#;
    let stream = open(
        &app.address,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        body.len(),
        &body[..1],
    )
    .await;
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for byte in &body[1..] {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    });
    let raw = answer(&mut reader).await;
    assert_problem(&raw, 408, "request_timeout");
    assert_eq!(raw.body["title"], "请求体接收超时");
    assert!(
        raw.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("字节")),
        "{}",
        raw.body
    );
    assert!(raw.head.contains("connection: close"), "{}", raw.head);
    // Not before the grace period (a lower bound only: the machine may be slow).
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(closed(&mut reader).await, "the connection is closed");
    trickle.abort();

    // A photo body that stops after its first kilobyte is cut off the same way.
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let auth = format!("Bearer {token}");
    let mut stream = open(
        &app.address,
        "PUT",
        &format!("/api/v1/photos/{}", "ab".repeat(32)),
        &[("content-type", "image/jpeg"), ("authorization", &auth)],
        5_000_000,
        &[0xff; 1000],
    )
    .await;
    let raw = answer(&mut stream).await;
    assert_problem(&raw, 408, "request_timeout");
    assert!(closed(&mut stream).await, "the connection is closed");
    // Nothing was stored: the photo is unknown.
    let head = app
        .request(
            reqwest::Method::HEAD,
            &format!("/api/v1/photos/{}", "ab".repeat(32)),
        )
        .bearer_auth(&token)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 404);
}

async fn a_body_that_keeps_pace_is_not_cut_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_bodies).await;
    // 5000 bytes (JSON allows the padding) in five pieces a second apart: 1000 B/s, twice the
    // minimum rate, and longer in all than the grace period.
    let mut body = json!({"phone": CITY_ADMIN.phone, "password": CITY_ADMIN.password, "device_id": "slow-link"})
        .to_string()
        .into_bytes();
    body.resize(5000, b' ');
    let mut stream = open(
        &app.address,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        body.len(),
        &body[..1000],
    )
    .await;
    for piece in body[1000..].chunks(1000) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stream.write_all(piece).await.expect("piece");
    }
    let raw = answer(&mut stream).await;
    assert_eq!(raw.status, 200, "{} {}", raw.head, raw.body);
    assert!(raw.body["access_token"].is_string());
    // A body read to its end leaves the connection open for the next request.
    assert!(!raw.head.contains("connection: close"), "{}", raw.head);
}

async fn requests_per_address_are_capped_while_others_are_served(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.trust_proxy_headers = true;
        s.http.max_in_flight_per_addr = 8;
        s.http.body_grace = Duration::from_secs(4);
    })
    .await;
    let flooder = [
        ("content-type", "application/json"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    // Forty slow logins from one address, each stalled after its first byte.
    let mut slow = Vec::new();
    for _ in 0..40 {
        slow.push(
            open(
                &app.address,
                "POST",
                "/api/v1/auth/login",
                &flooder,
                100,
                b"{",
            )
            .await,
        );
    }
    let from = |addr: &'static str| app.get("/healthz").header("x-forwarded-for", addr).send();
    // Once the server has taken the first eight, that address gets 429 …
    let mut refused = None;
    for _ in 0..40 {
        let response = from("203.0.113.9").await.expect("request");
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the flooding address is refused");
    assert!(refused.headers().get("retry-after").is_some());
    problem(refused, 429, "rate_limited").await;
    // … while another address is served, and the flooder is still refused after it.
    assert_eq!(from("198.51.100.1").await.expect("request").status(), 200);
    assert_eq!(from("203.0.113.9").await.expect("request").status(), 429);

    // Every slow connection gets an answer and is closed: eight cut off, the rest refused.
    let answers = futures_util::future::join_all(slow.iter_mut().map(|s| async move {
        let raw = answer(s).await;
        assert!(closed(s).await, "the connection is closed");
        raw
    }))
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, [[408; 8].as_slice(), &[429; 32]].concat());
    for raw in &answers {
        let code = if raw.status == 408 {
            "request_timeout"
        } else {
            "rate_limited"
        };
        assert_problem(raw, raw.status, code);
    }
    // The slots are free again.
    assert_eq!(from("203.0.113.9").await.expect("request").status(), 200);
}

/// A chunked body answered before it was read (here 401: no token) used to be drained to its
/// end with no deadline at all; now the connection closes after the answer.
async fn an_early_answer_closes_a_slow_chunked_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&host).await.expect("connect");
    let head = format!(
        "PUT /api/v1/photos/{} HTTP/1.1\r\nhost: {host}\r\ncontent-type: image/jpeg\r\n\
         transfer-encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n",
        "ab".repeat(32)
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let raw = answer(&mut stream).await;
    assert_problem(&raw, 401, "missing_token");
    assert!(raw.head.contains("connection: close"), "{}", raw.head);
    assert!(closed(&mut stream).await, "the connection is closed");
}

/// The flags' environment variables reach the server: the real binary, a one-second grace and
/// two requests per address.
async fn the_binary_takes_the_limits_from_its_environment(backend: Backend) {
    let data_dir = tempfile::tempdir().expect("data dir");
    let url = match backend {
        Backend::Sqlite => data_dir
            .path()
            .join("taizhang.sqlite3")
            .display()
            .to_string(),
        Backend::Postgres => crate::pg::fresh_database(),
    };
    let server = crate::server_process::spawn(
        &url,
        data_dir.path(),
        "127.0.0.1:0",
        TEST_SECRET,
        &[
            ("TAIZHANG_WORKERS", "2".as_ref()),
            ("TAIZHANG_BODY_TIMEOUT_SECS", "1".as_ref()),
            ("TAIZHANG_MAX_REQUESTS_PER_ADDR", "2".as_ref()),
        ],
    )
    .expect("start taizhang");
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(
            open(
                &server.address,
                "POST",
                "/api/v1/auth/login",
                &[("content-type", "application/json")],
                100,
                b"{",
            )
            .await,
        );
    }
    let mut statuses = Vec::new();
    for stream in &mut slow {
        statuses.push(answer(stream).await.status);
    }
    statuses.sort();
    assert_eq!(statuses, [408, 408, 429]);
}

both_backends!(
    a_body_trickled_at_a_byte_a_second_is_cut_off_with_408,
    a_body_that_keeps_pace_is_not_cut_off,
    requests_per_address_are_capped_while_others_are_served,
    an_early_answer_closes_a_slow_chunked_body,
    the_binary_takes_the_limits_from_its_environment,
);
