//! The downloader against a small hostile server on 127.0.0.1.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lennonnet_config::{FetchConfig, HttpConfig};
use lennonnet_fetch::{Failure, Fetcher, Sniffed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const JPEG: &[u8] =
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00fake-but-sniffable";

#[derive(Default)]
struct State {
    hits: std::sync::Mutex<HashMap<String, usize>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

struct Server {
    addr: std::net::SocketAddr,
    state: Arc<State>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, s, addr).await;
                });
            }
        });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<State>,
    addr: std::net::SocketAddr,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let hit = {
        let mut hits = state.hits.lock().unwrap();
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let respond = |status: &str, headers: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    let port = addr.port();
    let out = match path.as_str() {
        "/img.jpg" => respond("200 OK", "Content-Type: image/jpeg\r\n", JPEG),
        "/html.jpg" => respond(
            "200 OK",
            "Content-Type: image/jpeg\r\n",
            b"<!DOCTYPE html><html><body>Error</body></html>",
        ),
        "/gone" => respond("410 Gone", "", b""),
        "/missing" => respond("404 Not Found", "", b"<html>404</html>"),
        "/flaky" if hit < 3 => respond("503 Service Unavailable", "", b""),
        "/flaky" => respond("200 OK", "", JPEG),
        "/limited" if hit == 1 => respond("429 Too Many Requests", "Retry-After: 1\r\n", b""),
        "/limited" => respond("200 OK", "", JPEG),
        "/limited-forever" => respond("429 Too Many Requests", "Retry-After: 3600\r\n", b""),
        "/slow-head" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            respond("200 OK", "", JPEG)
        }
        "/trickle" => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n",
                )
                .await?;
            stream.write_all(&JPEG[..4]).await?;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                stream.write_all(b"xxxx").await?;
            }
            return Ok(());
        }
        "/big-declared" => {
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 999999999\r\n\r\n".to_vec()
        }
        "/big-streamed" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            stream.write_all(JPEG).await?;
            for _ in 0..64 {
                stream.write_all(&[0u8; 4096]).await?;
            }
            return Ok(());
        }
        "/truncated" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n")
                .await?;
            stream.write_all(JPEG).await?;
            return Ok(());
        }
        p if p.starts_with("/chain/") => {
            let n: u32 = p[7..].parse().unwrap();
            if n == 0 {
                respond("200 OK", "", JPEG)
            } else {
                respond("302 Found", &format!("Location: /chain/{}\r\n", n - 1), b"")
            }
        }
        "/loop-a" => respond("302 Found", "Location: /loop-b\r\n", b""),
        "/loop-b" => respond(
            "301 Moved Permanently",
            &format!("Location: http://127.0.0.1:{port}/loop-a\r\n"),
            b"",
        ),
        "/to-private" => respond("302 Found", "Location: http://10.255.255.1/x.jpg\r\n", b""),
        p if p.starts_with("/hold") => {
            let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_active.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            state.active.fetch_sub(1, Ordering::SeqCst);
            respond("200 OK", "", JPEG)
        }
        _ => respond("404 Not Found", "", b""),
    };
    stream.write_all(&out).await?;
    stream.shutdown().await
}

fn config() -> (FetchConfig, HttpConfig) {
    let fetch = FetchConfig {
        concurrency: 16,
        per_host_concurrency: 4,
        host_concurrency: Default::default(),
        per_host_requests_per_sec: 1000.0,
        connect_timeout_secs: 2,
        first_byte_timeout_secs: 1,
        total_timeout_secs: 4,
        stall_min_bytes_per_sec: 1024,
        stall_window_secs: 1,
        max_bytes: 100_000,
        max_redirects: 3,
        max_retries: 3,
        retry_base_delay_ms: 20,
    };
    let http = HttpConfig {
        allow_private_addresses: true,
        ..HttpConfig::default()
    };
    (fetch, http)
}

fn fetcher() -> Fetcher {
    let (f, h) = config();
    Fetcher::new(&f, &h).unwrap()
}

/// Fetches `path` and compares the failure reason (or "ok") with `expected`.
async fn check(
    f: &Fetcher,
    server: &Server,
    path: &str,
    expected: &str,
) -> lennonnet_fetch::Outcome {
    let outcome = f.fetch(&server.url(path)).await;
    let got = match &outcome.result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.reason().to_string(),
    };
    assert_eq!(got, expected, "{path}: {:?}", outcome.result);
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_of_a_hostile_server() {
    let server = Server::start().await;
    let f = fetcher();
    let ok = check(&f, &server, "/img.jpg", "ok").await;
    let fetched = ok.result.unwrap();
    assert_eq!(fetched.sniffed, Sniffed::Jpeg);
    assert_eq!(&fetched.body[..], JPEG);
    assert_eq!(ok.attempts, 1);

    let html = check(&f, &server, "/html.jpg", "not_an_image").await;
    assert_eq!(
        html.result.unwrap_err(),
        Failure::NotAnImage {
            sniffed: Sniffed::Html
        }
    );
    check(&f, &server, "/gone", "http_410").await;
    let missing = check(&f, &server, "/missing", "http_404").await;
    assert_eq!(missing.attempts, 1, "a 404 is not retried");
    assert_eq!(server.hits("/missing"), 1);
    check(&f, &server, "/big-declared", "too_large").await;
    check(&f, &server, "/big-streamed", "too_large").await;
    check(&f, &server, "/truncated", "body").await;
    let chain = check(&f, &server, "/chain/3", "ok").await;
    assert!(chain.final_url.unwrap().ends_with("/chain/0"));
    check(&f, &server, "/chain/4", "too_many_redirects").await;
    check(&f, &server, "/loop-a", "redirect_loop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_retry_after_is_honoured() {
    let server = Server::start().await;
    let f = fetcher();
    let flaky = check(&f, &server, "/flaky", "ok").await;
    assert_eq!(flaky.attempts, 3);
    let t = Instant::now();
    let limited = check(&f, &server, "/limited", "ok").await;
    assert_eq!(limited.attempts, 2);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 not honoured ({:?})",
        t.elapsed()
    );
    let t = Instant::now();
    check(&f, &server, "/limited-forever", "rate_limited").await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "waited for an absurd Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_servers_hit_their_timeouts() {
    let server = Server::start().await;
    let (mut fc, hc) = config();
    fc.max_retries = 0;
    let f = Fetcher::new(&fc, &hc).unwrap();
    let t = Instant::now();
    check(&f, &server, "/slow-head", "first_byte_timeout").await;
    assert!(t.elapsed() < Duration::from_secs(3));
    let t = Instant::now();
    check(&f, &server, "/trickle", "stalled").await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_limit_holds() {
    let server = Server::start().await;
    let f = Arc::new(fetcher());
    let mut tasks = Vec::new();
    for i in 0..24 {
        let f = f.clone();
        let url = server.url(&format!("/hold{i}"));
        tasks.push(tokio::spawn(async move { f.fetch(&url).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().result.is_ok());
    }
    let max = server.state.max_active.load(Ordering::SeqCst);
    assert!(
        max <= 4,
        "{max} connections at once to one host; the limit is 4"
    );
    assert!(max >= 2, "requests were not concurrent at all ({max})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_url_in_flight_twice_is_fetched_once() {
    let server = Server::start().await;
    let f = Arc::new(fetcher());
    let url = server.url("/hold");
    let (a, b) = tokio::join!(f.fetch(&url), f.fetch(&url));
    assert!(a.result.is_ok() && b.result.is_ok());
    assert_eq!(server.hits("/hold"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_refuses_private_targets_unless_allowed() {
    let server = Server::start().await;
    let (fc, mut hc) = config();
    hc.allow_private_addresses = false;
    hc.resolve
        .insert("mirror.test".into(), "127.0.0.1".parse().unwrap());
    let f = Fetcher::new(&fc, &hc).unwrap();
    // An IP literal, a name that resolves to loopback, and a redirect to a private address.
    let literal = f.fetch(&server.url("/img.jpg")).await;
    assert_eq!(
        literal.reason().map(|r| r.as_str()),
        Some("address_refused"),
        "{:?}",
        literal.result
    );
    let named = f
        .fetch(&format!(
            "http://img01.mirror.test:{}/img.jpg",
            server.addr.port()
        ))
        .await;
    assert_eq!(
        named.reason().map(|r| r.as_str()),
        Some("address_refused"),
        "{:?}",
        named.result
    );
    assert!(named.result.unwrap_err().to_string().contains("loopback"));
    assert_eq!(server.hits("/img.jpg"), 0, "a refused target was contacted");

    let allowed = fetcher();
    let hop = allowed.fetch(&server.url("/to-private")).await;
    // Allowed here (so the hop is followed): the private target is simply unreachable.
    assert_ne!(hop.reason().map(|r| r.as_str()), Some("address_refused"));
    let (fc, mut hc) = config();
    hc.allow_private_addresses = false;
    let guarded = Fetcher::new(&fc, &hc).unwrap();
    let bad_scheme = guarded.fetch("file:///etc/passwd").await;
    assert_eq!(bad_scheme.reason().map(|r| r.as_str()), Some("bad_url"));
}
