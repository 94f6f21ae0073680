//! `directory`: static files from a folder, with the location's prefix stripped: MIME types,
//! validators and 304, ranges (206, multipart, 416, If-Range), index files, autoindex,
//! downloads, large files streamed, and every way out of the folder refused.

use louailink_tests::attack::rss_kib;
use louailink_tests::client::raw_request;
use louailink_tests::{free_port, Client, Louailink, OneRoute};
use reqwest::Method;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The secret next to (not under) the served folder.
const SECRET: &str = "the secret outside the root";

/// A temp dir holding `www/` (served) and `secret/` (outside it, reachable only by escape).
struct Site {
    _dir: TempDir,
    root: PathBuf,
}

/// Bytes 0..n of a fixed pattern, so any misplaced byte shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("www");
        let secret = dir.path().join("secret");
        for d in [
            &root,
            &root.join("sub"),
            &root.join("docs"),
            &root.join("trap"),
            &secret,
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        write(&secret.join("secret.txt"), SECRET.as_bytes());
        write(&root.join("index.html"), b"<h1>home</h1>");
        write(&root.join("style.css"), b"body{}");
        write(&root.join("data.bin"), &pattern(256));
        write(&root.join("docs/index.html"), b"docs home");
        write(&root.join("sub/a file & <b>.txt"), b"x");
        write(&root.join("sub/x:y.txt"), b"y");
        symlink(&secret, root.join("link_out")).expect("symlink");
        symlink("../secret/secret.txt", root.join("leak.txt")).expect("symlink");
        symlink("style.css", root.join("link_in.css")).expect("symlink");
        symlink("../../secret/secret.txt", root.join("trap/index.html")).expect("symlink");
        let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
            .expect("no NUL in a temp path");
        // SAFETY: mkfifo reads a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
        Site { _dir: dir, root }
    }

    /// louailink serving this site under `/static/` with these extra option lines.
    async fn serve(&self, options: &str, server: &str) -> (Louailink, Client, u16) {
        let port = free_port();
        let extra = format!(
            "[plugins.files]\ncategory = \"directory\"\npath = \"{}\"\n{options}\n",
            self.root.display()
        );
        let config = OneRoute {
            port,
            location: "path = \"/static/\"\nplugins = [\"files\"]",
            server,
            extra: &extra,
            ..Default::default()
        }
        .toml();
        (Louailink::start(&config).await, Client::h1(port), port)
    }
}

/// Sends a request and returns status, headers and the raw body.
async fn fetch(req: reqwest::RequestBuilder) -> (u16, http::HeaderMap, Vec<u8>) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn files_are_served_under_the_prefix_with_their_type_and_validators() {
    let site = Site::new();
    let (_lk, c, _) = site
        .serve("charset = \"utf-8\"\nmax_age = \"1m\"", "")
        .await;
    let css = c
        .get("s.test", "/static/style.css")
        .await
        .expect_status(200);
    assert_eq!(css.body, "body{}");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("cache-control"), Some("max-age=60"));
    assert_eq!(css.header("accept-ranges"), Some("bytes"));
    assert!(css.header("etag").is_some_and(|e| e.starts_with('"')));
    assert!(css.header("last-modified").is_some());
    let bin = c.get("s.test", "/static/data.bin").await.expect_status(200);
    assert_eq!(bin.header("content-type"), Some("application/octet-stream"));
    let linked = c.get("s.test", "/static/link_in.css").await;
    assert_eq!(linked.body, "body{}", "a symlink inside the folder is fine");

    // The index file answers for a directory; a directory without its slash is redirected.
    let home = c.get("s.test", "/static/").await.expect_status(200);
    assert_eq!(home.body, "<h1>home</h1>");
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let docs = c.get("s.test", "/static/docs?x=1").await.expect_status(301);
    assert_eq!(docs.header("location"), Some("/static/docs/?x=1"));
    assert_eq!(c.get("s.test", "/static/docs/").await.body, "docs home");
    // No index and no autoindex: 403; a missing file: 404.
    assert_eq!(c.get("s.test", "/static/sub/").await.status, 403);
    assert_eq!(c.get("s.test", "/static/nope.txt").await.status, 404);
    assert_eq!(c.get("s.test", "/static/style.css/").await.status, 404);

    // HEAD: the header only; other methods: 405 naming the allowed ones.
    let head = Client::send(c.request(Method::HEAD, "s.test", "/static/style.css")).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("content-length"), Some("6"));
    let post = Client::send(c.request(Method::POST, "s.test", "/static/style.css")).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn a_current_copy_gets_304() {
    let site = Site::new();
    let (_lk, c, _) = site.serve("", "").await;
    let first = c.get("s.test", "/static/style.css").await;
    let etag = first.header("etag").expect("etag").to_string();
    let modified = first.header("last-modified").expect("date").to_string();
    let get = |name: &'static str, value: String| {
        Client::send(
            c.request(Method::GET, "s.test", "/static/style.css")
                .header(name, value),
        )
    };
    let not_modified = get("if-none-match", etag.clone()).await;
    assert_eq!((not_modified.status, not_modified.body.as_str()), (304, ""));
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(
        get("if-none-match", format!("\"a\", W/{etag}"))
            .await
            .status,
        304
    );
    assert_eq!(get("if-none-match", "\"other\"".into()).await.status, 200);
    assert_eq!(get("if-modified-since", modified.clone()).await.status, 304);
    let old = "Sun, 06 Nov 1994 08:49:37 GMT".to_string();
    assert_eq!(get("if-modified-since", old).await.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = c
        .request(Method::GET, "s.test", "/static/style.css")
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", modified);
    assert_eq!(Client::send(both).await.status, 200);
}

#[tokio::test]
async fn ranges_get_206_multipart_or_416_and_if_range_is_honoured() {
    let site = Site::new();
    let (_lk, c, _) = site.serve("", "").await;
    let data = pattern(256);
    let range = |value: &'static str| {
        fetch(
            c.request(Method::GET, "s.test", "/static/data.bin")
                .header("range", value),
        )
    };
    let (status, h, body) = range("bytes=10-19").await;
    assert_eq!(status, 206);
    assert_eq!(header(&h, "content-range"), "bytes 10-19/256");
    assert_eq!(body, &data[10..20]);
    let (status, h, body) = range("bytes=-6").await;
    assert_eq!(
        (status, header(&h, "content-range")),
        (206, "bytes 250-255/256")
    );
    assert_eq!(body, &data[250..]);

    let (status, h, body) = range("bytes=0-1, 100-102").await;
    assert_eq!(status, 206);
    let ct = header(&h, "content-type");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {ct}"));
    let mut want = Vec::new();
    for (a, b) in [(0usize, 1usize), (100, 102)] {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\
             Content-Range: bytes {a}-{b}/256\r\n\r\n"
        );
        want.extend_from_slice(head.as_bytes());
        want.extend_from_slice(&data[a..=b]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(body, want);
    assert_eq!(header(&h, "content-length"), want.len().to_string());

    let (status, h, body) = range("bytes=256-").await;
    assert_eq!((status, header(&h, "content-range")), (416, "bytes */256"));
    assert!(body.is_empty());

    // If-Range: the current tag keeps the range; a stale one gets the whole file.
    let etag = c.get("s.test", "/static/data.bin").await;
    let etag = etag.header("etag").expect("etag").to_string();
    let if_range = |tag: String| {
        fetch(
            c.request(Method::GET, "s.test", "/static/data.bin")
                .header("range", "bytes=0-3")
                .header("if-range", tag),
        )
    };
    assert_eq!(if_range(etag).await.0, 206);
    let (status, _, body) = if_range("\"stale\"".into()).await;
    assert_eq!((status, body.len()), (200, 256));
}

#[tokio::test]
async fn autoindex_lists_with_escaped_names_and_download_attaches() {
    let site = Site::new();
    let (_lk, c, _) = site.serve("autoindex = true\ndownload = true", "").await;
    let list = c.get("s.test", "/static/sub/").await.expect_status(200);
    assert_eq!(
        list.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        list.body
            .contains("<a href=\"a%20file%20%26%20%3Cb%3E.txt\">a file &amp; &lt;b&gt;.txt</a>"),
        "{}",
        list.body
    );
    assert!(list.body.contains("href=\"x%3Ay.txt\""), "{}", list.body);
    assert!(list.body.contains("href=\"../\""));
    assert!(
        !list.body.contains("<b>"),
        "names are escaped: {}",
        list.body
    );
    let file = c
        .get("s.test", "/static/sub/x:y.txt")
        .await
        .expect_status(200);
    assert_eq!(file.body, "y");
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"x:y.txt\"; filename*=UTF-8''x%3Ay.txt")
    );
}

/// Where two bodies first differ, for a readable failure.
fn same_bytes(got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b);
    Err(format!(
        "{} bytes instead of {}, first difference at {at:?}",
        got.len(),
        want.len()
    ))
}

#[tokio::test]
async fn a_large_file_is_streamed_intact_without_holding_it_in_memory() {
    let site = Site::new();
    let size = 24 << 20;
    let data = pattern(size);
    write(&site.root.join("big.bin"), &data);
    let (lk, c, _) = site.serve("", "").await;
    // A range in the middle; it also warms the proxy up (buffers, blocking threads).
    let (status, _, body) = fetch(
        c.request(Method::GET, "s.test", "/static/big.bin")
            .header("range", "bytes=10000000-10999999"),
    )
    .await;
    assert_eq!(status, 206);
    same_bytes(&body, &data[10_000_000..11_000_000]).expect("the range intact");

    let before = rss_kib(lk.pid());
    let (status, h, body) = fetch(c.request(Method::GET, "s.test", "/static/big.bin")).await;
    let after = rss_kib(lk.pid());
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), size.to_string());
    same_bytes(&body, &data).expect("the file intact");
    let grown_kib = after.saturating_sub(before);
    assert!(
        grown_kib < (size as u64 / 1024) / 2,
        "the proxy grew by {grown_kib} KiB (from {before}) while sending a {} KiB file",
        size / 1024
    );
}

/// Requests an attacker would send to leave the folder (raw, so no client tidies them up).
const ESCAPES: [&str; 9] = [
    "/static/../secret/secret.txt",
    "/static/%2e%2e/secret/secret.txt",
    "/static/%2E%2E%2Fsecret%2Fsecret.txt",
    "/static/..%5csecret%5csecret.txt",
    "/static/%252e%252e/secret/secret.txt",
    "/static/sub/..%2f..%2f..%2fsecret/secret.txt",
    "/static/a%00.txt",
    "/static/leak.txt",
    "/static/link_out/secret.txt",
];

async fn raw_get(port: u16, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: s.test\r\nConnection: close\r\n\r\n");
    match raw_request(port, req.as_bytes()).await {
        Some(r) => (r.status, r.text()),
        None => (0, String::new()),
    }
}

#[tokio::test]
async fn every_way_out_of_the_folder_is_refused_and_never_serves_a_file() {
    let site = Site::new();
    let (_lk, _c, port) = site.serve("autoindex = true", "").await;
    // With the proxy's normalisation (the default), some never reach the plugin (400, or no
    // location matches once `..` is resolved); none gets the file.
    for path in ESCAPES {
        let (status, body) = raw_get(port, path).await;
        assert!(matches!(status, 400 | 403 | 404), "{path}: {status}");
        assert!(!body.contains(SECRET), "{path} leaked the secret");
    }
    // Symlinks out of the folder reach the plugin as they are: 403.
    assert_eq!(raw_get(port, "/static/leak.txt").await.0, 403);
    assert_eq!(raw_get(port, "/static/link_out/secret.txt").await.0, 403);
    assert_eq!(raw_get(port, "/static/link_out/").await.0, 403);
    assert_eq!(
        raw_get(port, "/static/trap/").await.0,
        403,
        "an index leading out"
    );
    // A FIFO would hang a reader: refused, not opened.
    assert_eq!(raw_get(port, "/static/fifo").await.0, 403);

    // Without normalisation every form reaches the plugin itself, which refuses it: 403.
    let (_lk, _c, port) = site.serve("", "normalize_path = false").await;
    for path in ESCAPES {
        let (status, body) = raw_get(port, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains(SECRET), "{path} leaked the secret");
    }
    let (status, _) = raw_get(port, "/static/..\\secret\\secret.txt").await;
    assert!(matches!(status, 400 | 403), "backslashes: {status}");
    assert_eq!(raw_get(port, "/static/style.css").await.0, 200);
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("f.txt");
    write(&file, b"x");
    let check = |options: String| {
        let config = OneRoute {
            port: free_port(),
            location: "plugins = [\"files\"]",
            extra: &format!("[plugins.files]\ncategory = \"directory\"\n{options}"),
            ..Default::default()
        }
        .toml();
        Louailink::check(&config)
    };
    let out = check("path = \"www\"\nindex = \"a/b\"\ncharset = \"utf 8\"".into());
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.files",
        "must be an absolute path",
        "index",
        "charset",
    ]);
    let out = check(format!("path = \"{}\"", file.display()));
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.files", "path", "is not a directory"]);
    let out = check(format!("path = \"{}\"", dir.path().join("none").display()));
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.files", "path", "cannot be served"]);
}
