//! The file proxy over real HTTP on loopback: a published fax is served
//! while its publication lives, to allowed clients only, and nothing but its
//! exact URL reaches it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use faxbox::lines::freeswitch::FileProxy;

/// A raw HTTP/1.0 exchange, so paths reach the server exactly as written
/// (a client library would normalise `..`). Returns status, headers, body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("the proxy accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: box\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head.to_ascii_lowercase(), body)
}

fn start(allow: &[&str]) -> FileProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    FileProxy::start(
        listener,
        allow.iter().map(|a| a.parse().unwrap()).collect(),
        None,
    )
    .unwrap()
}

fn sample_tiff(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    // Served as opaque bytes: any content shows the proxy adds nothing.
    let bytes: Vec<u8> = b"II*\0"
        .iter()
        .copied()
        .chain((0..50_000u32).map(|i| (i * 7 % 251) as u8))
        .collect();
    let path = dir.join("job-1.tif");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
fn served_while_published_and_404_after() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_tiff(dir.path());
    let proxy = start(&["127.0.0.0/8"]);
    let publication = proxy.publish(path.clone());
    let url = publication.url().to_owned();
    let prefix = format!("http://{}/fax/", proxy.local_addr());
    assert!(url.starts_with(&prefix), "{url}");
    let path_part = &url[prefix.len() - "/fax/".len()..];

    let (status, head, body) = http(proxy.local_addr(), "GET", path_part);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: image/tiff"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", bytes.len())),
        "{head}"
    );
    assert_eq!(body, bytes);

    let (status, head, body) = http(proxy.local_addr(), "HEAD", path_part);
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("content-length: {}", bytes.len())),
        "{head}"
    );
    assert!(body.is_empty(), "HEAD has no body");

    // Two publications of one file have different, unrelated URLs.
    let second = proxy.publish(path.clone());
    assert_ne!(second.url(), url);
    assert_eq!(proxy.published(), 2);
    drop(second);

    drop(publication);
    assert_eq!(proxy.published(), 0);
    let (status, _, _) = http(proxy.local_addr(), "GET", path_part);
    assert_eq!(status, 404, "a withdrawn fax is gone");
    // The file itself is untouched: withdrawing only stops serving it.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    proxy.stop();
}

#[test]
fn clients_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample_tiff(dir.path());
    // This test's client is 127.0.0.1, outside the list.
    let proxy = start(&["127.0.0.2/32", "10.0.0.0/8"]);
    let publication = proxy.publish(path);
    let path_part = publication
        .url()
        .split_once("/fax/")
        .map(|(_, t)| format!("/fax/{t}"))
        .unwrap();
    let (status, _, body) = http(proxy.local_addr(), "GET", &path_part);
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("may not fetch"),
        "{body:?}"
    );
    // Not even a wrong path tells it apart from a right one.
    let (status, _, _) = http(proxy.local_addr(), "GET", "/fax/nothing.tiff");
    assert_eq!(status, 403);
}

#[test]
fn path_traversal_and_guesses_get_404() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample_tiff(dir.path());
    // A file beside the published one, which a traversal would aim at.
    std::fs::write(dir.path().join("secret.tiff"), b"secret").unwrap();
    let proxy = start(&["127.0.0.0/8"]);
    let publication = proxy.publish(path);
    let token = publication
        .url()
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".tiff")
        .to_owned();
    let dir_name = dir.path().display().to_string();
    for attempt in [
        "/fax/../secret.tiff".to_owned(),
        "/fax/..%2fsecret.tiff".to_owned(),
        "/fax/%2e%2e/secret.tiff".to_owned(),
        format!("/fax/{token}/../secret.tiff"),
        format!("/fax/../../../../{dir_name}/secret.tiff"),
        format!("{dir_name}/secret.tiff"),
        "/etc/passwd".to_owned(),
        "/fax/".to_owned(),
        "/".to_owned(),
        format!("/fax/{}.tiff", token.to_ascii_uppercase()),
        format!("/fax/{}0.tiff", token),
        format!("/fax/{}", token),
        format!("/FAX/{token}.tiff"),
    ] {
        let (status, _, body) = http(proxy.local_addr(), "GET", &attempt);
        assert_eq!(status, 404, "{attempt}");
        assert!(!body.windows(6).any(|w| w == b"secret"), "{attempt}");
    }
    let (status, _, _) = http(proxy.local_addr(), "DELETE", &format!("/fax/{token}.tiff"));
    assert_eq!(status, 405);
    // The real URL still works: the refusals were about the paths.
    let (status, _, _) = http(proxy.local_addr(), "GET", &format!("/fax/{token}.tiff"));
    assert_eq!(status, 200);
}
