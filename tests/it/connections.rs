//! Connections a slow or idle client holds: thousands of idle sockets and a client sending its
//! headers a byte at a time never take `/health` away from anyone; idle and slow sockets are
//! closed after `server.idle_timeout`; at the bound, busy connections are kept and a reserve
//! still answers `/health` and the API; one address cannot take every connection; the soft
//! descriptor limit is raised to the hard one at start.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::support::*;

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(server: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(server))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

fn addr_of(server: &TestServer) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// Whether the server has closed `stream` (EOF or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408/503 written before closing: keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

/// `GET /health` on a fresh connection from `from`: its status and how long it took.
async fn health_from(server: &TestServer, from: IpAddr) -> (StatusCode, Duration) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client.get(server.url("/health")).send().await.unwrap();
    let status = response.status();
    response.bytes().await.unwrap();
    (status, started.elapsed())
}

/// Sends `GET /health` one byte every `every`, forever (until dropped).
async fn dribble(mut stream: TcpStream, every: Duration) {
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if stream.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_idle_connections_and_a_slow_client_leave_health_fast() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.server.idle_timeout = Duration::from_secs(60);
        c.server.max_connections = 2000;
        c.server.max_connections_per_ip = 256;
    })
    .await;
    let addr = addr_of(&server);
    let slow = tokio::spawn(dribble(
        connect_from(addr, loopback(1)).await.unwrap(),
        Duration::from_millis(500),
    ));
    let mut idle = Vec::with_capacity(5000);
    for n in 0..5000u32 {
        let from = loopback(2 + (n % 25) as u8);
        idle.push(connect_from(addr, from).await.expect("connect"));
    }
    // Other tests share these two cores, so one probe may lose the CPU for a while: the
    // median must be within 100 ms, and none may come near a timeout.
    let mut took = Vec::new();
    for probe in 0..20u8 {
        let (status, time) = health_from(&server, loopback(30 + probe)).await;
        assert_eq!(status, StatusCode::OK);
        took.push(time);
    }
    // Also from an address already at its own bound: its own idle socket makes room.
    let (status, time) = health_from(&server, loopback(2)).await;
    assert_eq!(status, StatusCode::OK);
    took.push(time);
    took.sort();
    let (median, slowest) = (took[took.len() / 2], took[took.len() - 1]);
    println!("/health with 5,000 idle connections: median {median:?}, slowest {slowest:?}");
    assert!(median < Duration::from_millis(100), "{took:?}");
    assert!(slowest < Duration::from_secs(2), "{took:?}");
    let mut open = 0;
    for stream in idle.iter_mut() {
        if !closed_within(stream, Duration::from_millis(1)).await {
            open += 1;
        }
    }
    assert!(
        open <= 2000 + 64,
        "the server holds at most its bound: {open} still open"
    );
    // The slow client was the longest idle: it gave way to newcomers long ago.
    slow.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_connections_are_closed_after_the_idle_timeout() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.server.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = addr_of(&server);
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(connect_from(addr, loopback(1)).await.unwrap());
    }
    // A keep-alive connection after one answered request.
    let mut used = connect_from(addr, loopback(1)).await.unwrap();
    used.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = used.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let mut slow = connect_from(addr, loopback(1)).await.unwrap();
    let started = Instant::now();
    let slow_closed = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            let mut probe = [0u8; 256];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(300), slow.read(&mut probe)).await
            {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(15) {
                break;
            }
        }
        Duration::MAX
    });
    for stream in idle.iter_mut().chain([&mut used]) {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "an idle connection outlived the idle timeout"
        );
    }
    let slow_after = slow_closed.await.unwrap();
    assert!(
        slow_after < Duration::from_secs(5),
        "the slow client was cut after {slow_after:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_bound_busy_connections_stay_and_the_reserve_answers_health_and_the_api() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.server.max_connections = 8;
        c.server.max_connections_per_ip = 100;
        c.server.connection_reserve = 4;
    })
    .await;
    let token = server.token("alice");
    // Eight busy connections: server-sent event streams stay open.
    let mut busy = Vec::new();
    for n in 0..8u8 {
        let client = reqwest::Client::builder()
            .local_address(loopback(10 + n))
            .build()
            .unwrap();
        let response = client
            .get(server.url("/api/v1/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        busy.push(response);
    }
    let (status, took) = health_from(&server, loopback(40)).await;
    assert_eq!(status, StatusCode::OK, "the reserve answers /health");
    assert!(
        took < Duration::from_secs(2),
        "answered, not left waiting: {took:?}"
    );
    let (status, _) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(status, StatusCode::OK, "the reserve answers the API");
    let (status, body) = json_of(
        client()
            .get(server.url("/s/not-a-token/film.mkv"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 503, "SERVER_BUSY");
    for response in &mut busy {
        assert!(
            tokio::time::timeout(Duration::from_millis(10), response.chunk())
                .await
                .is_err(),
            "busy event streams are never closed for a newcomer"
        );
    }
    drop(busy);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = json_of(
        client()
            .get(server.url("/s/not-a-token/film.mkv"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "AUTH_FAILED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.server.max_connections_per_ip = 4;
    })
    .await;
    let token = server.token("alice");
    let from = loopback(7);
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut busy = Vec::new();
    for _ in 0..4 {
        let response = client
            .get(server.url("/api/v1/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        busy.push(response);
    }
    let mut fifth = connect_from(addr_of(&server), from).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), fifth.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("SERVER_BUSY"), "{answer}");
    let (status, _) = health_from(&server, loopback(8)).await;
    assert_eq!(status, StatusCode::OK, "other addresses are unaffected");
    server.stop().await;
}

#[test]
fn the_server_raises_its_soft_descriptor_limit_to_the_hard_one() {
    let prlimit = require_tool("prlimit", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(prlimit)
        .arg("--nofile=1024:8192")
        .arg(env!("CARGO_BIN_EXE_magnetar"))
        .arg("serve")
        .env("MAGNETAR__STORAGE__DATA_DIR", dir.path())
        .env("MAGNETAR__SERVER__LISTEN", "127.0.0.1:0")
        .env("MAGNETAR__ENGINE__DHT", "false")
        .env("MAGNETAR__ENGINE__PEER_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let soft = loop {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("")
            .to_owned();
        let soft: Vec<&str> = line.split_whitespace().collect();
        if soft.get(3) == Some(&"8192") || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        soft.split_whitespace().nth(3) == Some("8192"),
        "soft limit not raised: {soft}"
    );
}
