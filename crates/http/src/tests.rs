use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn options() -> ClientOptions {
    ClientOptions {
        user_agent: "lennonnet-test/1 (+https://example.invalid/tests)".into(),
        proxy: None,
        resolve: vec![("mirror.test".into(), LOOPBACK)],
        connect_timeout: Duration::from_secs(5),
        timeout: Some(Duration::from_secs(10)),
        max_redirects: 2,
        address_policy: Arc::new(AllowAll),
        cookies: false,
    }
}

/// A loopback server that answers every request with `body` and records each request's head.
async fn serve(body: &'static [u8]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body).await;
            });
        }
    });
    (addr, heads)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn suffix_overrides_match_on_label_boundaries_longest_first() {
    let other: IpAddr = "10.1.2.3".parse().unwrap();
    let r = Resolver::new(
        [
            ("Mirror.Test.".to_string(), LOOPBACK),
            ("deep.mirror.test".to_string(), other),
        ],
        Arc::new(AllowAll),
    );
    let check = |host: &str, expected: Option<IpAddr>| {
        assert_eq!(r.override_for(host), expected, "{host}");
    };
    check("mirror.test", Some(LOOPBACK));
    check("img07.mirror.test", Some(LOOPBACK));
    check("IMG07.MIRROR.TEST.", Some(LOOPBACK));
    check("deep.mirror.test", Some(other));
    check("a.deep.mirror.test", Some(other));
    check("notmirror.test", None);
    check("mirror.test.evil", None);
    check("test", None);
    check("", None);
}

#[tokio::test]
async fn client_sends_the_user_agent_and_uses_the_override_with_the_urls_port() {
    let (addr, heads) = serve(b"hello").await;
    let client = options().build().unwrap();
    let url = format!("http://api.mirror.test:{}/path?q=1", addr.port());
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = read_body_limited(resp, 100).await.unwrap();
    assert_eq!(body, b"hello");
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with("GET /path?q=1 HTTP/1.1"),
        "{}",
        heads[0]
    );
    assert_eq!(
        header(&heads[0], "user-agent"),
        Some("lennonnet-test/1 (+https://example.invalid/tests)")
    );
    assert_eq!(
        header(&heads[0], "host"),
        Some(format!("api.mirror.test:{}", addr.port()).as_str())
    );
}

#[tokio::test]
async fn explicit_proxy_receives_the_request() {
    // The "proxy" is the loopback server: a plain-HTTP request through a proxy is sent to it
    // in absolute form, so the target host is never resolved or contacted.
    let (addr, heads) = serve(b"via proxy").await;
    let mut opts = options();
    opts.proxy = Some(format!("http://127.0.0.1:{}", addr.port()));
    let client = opts.build().unwrap();
    let resp = client
        .get("http://images.example.invalid/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(read_body_limited(resp, 100).await.unwrap(), b"via proxy");
    let heads = heads.lock().unwrap();
    assert!(
        heads[0].starts_with("GET http://images.example.invalid/a.jpg HTTP/1.1"),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn the_address_policy_sees_every_resolved_address() {
    struct NoLoopback;
    impl AddressPolicy for NoLoopback {
        fn check(&self, _host: &str, addr: IpAddr) -> Result<(), String> {
            if addr.is_loopback() {
                Err("loopback".into())
            } else {
                Ok(())
            }
        }
    }
    let (addr, heads) = serve(b"never").await;
    let mut opts = options();
    opts.address_policy = Arc::new(NoLoopback);
    let client = opts.build().unwrap();
    let err = client
        .get(format!("http://img.mirror.test:{}/", addr.port()))
        .send()
        .await
        .unwrap_err();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    let mut refused = None;
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<RefusedAddress>() {
            refused = Some(r.clone());
        }
        source = e.source();
    }
    assert_eq!(
        refused,
        Some(RefusedAddress {
            host: "img.mirror.test".into(),
            addr: LOOPBACK,
            reason: "loopback".into()
        })
    );
    assert!(heads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let (addr, _) = serve(b"0123456789").await;
    let client = options().build().unwrap();
    let url = format!("http://127.0.0.1:{}/big", addr.port());
    let resp = client.get(&url).send().await.unwrap();
    match read_body_limited(resp, 9).await {
        Err(BodyError::TooLarge { url: u, max_bytes }) => {
            assert_eq!((u.as_str(), max_bytes), (url.as_str(), 9));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn bad_settings_name_themselves() {
    let mut opts = options();
    opts.user_agent = "bad\nagent".into();
    assert!(matches!(opts.build(), Err(ClientError::UserAgent { .. })));
    let mut opts = options();
    opts.proxy = Some("::not a url::".into());
    let err = opts.build().unwrap_err();
    assert!(matches!(err, ClientError::Proxy { .. }), "{err:?}");
    assert!(err.to_string().contains("::not a url::"));
}

#[test]
fn options_come_from_the_http_section() {
    let mut http = HttpConfig {
        proxy: Some("socks5://127.0.0.1:1080".into()),
        ..HttpConfig::default()
    };
    http.resolve.insert("mirror.test".into(), LOOPBACK);
    let opts = ClientOptions::from_config(&http);
    assert_eq!(opts.user_agent, http.user_agent);
    assert_eq!(opts.proxy.as_deref(), Some("socks5://127.0.0.1:1080"));
    assert_eq!(opts.resolve, vec![("mirror.test".to_string(), LOOPBACK)]);
    // A socks5 proxy is accepted (reqwest's `socks` feature is on).
    opts.build().unwrap();
}
