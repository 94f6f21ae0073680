//! `compression`: gzip, br and zstd by `Accept-Encoding` (q-values, server preference), only
//! where it is safe (no double encoding, no ranges, no `no-transform`, no HEAD, no small
//! bodies, no event streams unless told), and flushed chunk by chunk.

use bytes::Bytes;
use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Per-read bound, only to avoid hangs.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// A backend that answers every request with these exact bytes and closes the connection:
/// any header the test needs (Content-Encoding, ETag, 206, ...).
async fn raw_backend(response: impl Into<Vec<u8>>) -> String {
    let response: Vec<u8> = response.into();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(&response).await;
            });
        }
    });
    addr
}

/// A 200 response with this content type, extra header lines and body (with its length).
fn response(content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A JSON body of about `n` bytes, compressible like a real API answer.
fn json_body(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item {i}\",\"ok\":true}},"
        ));
        i += 1;
    }
    s.pop();
    s.push(']');
    s
}

/// louailink with `compression` (these options) in front of `addr`.
async fn start(options: &str, addr: &str) -> (Louailink, Client) {
    let port = free_port();
    let config = OneRoute {
        port,
        upstream: &format!("addrs = [\"{addr}\"]"),
        location: "plugins = [\"p\"]",
        server: "enabled_h2 = true",
        extra: &format!("[plugins.p]\ncategory = \"compression\"\n{options}"),
    }
    .toml();
    (Louailink::start(&config).await, Client::h1(port))
}

/// What the client sees: status, headers and the raw (still encoded) body.
struct Seen {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn fetch(c: &Client, method: reqwest::Method, accept: Option<&str>) -> Seen {
    let mut req = c.request(method, "z.test", "/x");
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    Seen {
        status,
        headers,
        body,
    }
}

async fn get(c: &Client, accept: Option<&str>) -> Seen {
    fetch(c, reqwest::Method::GET, accept).await
}

fn decode(encoding: &str, data: &[u8]) -> String {
    let mut out = String::new();
    let read = match encoding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_string(&mut out),
        "br" => brotli::Decompressor::new(data, 4096).read_to_string(&mut out),
        "zstd" => {
            zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_string(&mut out))
        }
        other => panic!("unexpected encoding {other}"),
    };
    read.unwrap_or_else(|e| panic!("{encoding} body does not decode: {e}"));
    out
}

#[tokio::test]
async fn each_codec_decodes_to_the_original_body_with_vary_and_no_length() {
    let body = json_body(4000);
    let addr = raw_backend(response("application/json", "", &body)).await;
    let (lk, h1) = start("", &addr).await;
    let h2 = Client::h2c(lk.ports()[0]);
    for (c, codec) in [
        (&h1, "gzip"),
        (&h1, "br"),
        (&h1, "zstd"),
        (&h2, "gzip"),
        (&h2, "br"),
    ] {
        let r = get(c, Some(codec)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(codec));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{codec}");
        assert_eq!(r.header("content-length"), None, "{codec}");
        assert!(
            r.body.len() < body.len() / 2,
            "{codec}: {} bytes",
            r.body.len()
        );
        assert_eq!(decode(codec, &r.body), body, "{codec}");
    }
}

#[tokio::test]
async fn q_values_choose_and_refuse_codecs() {
    let body = json_body(2000);
    let addr = raw_backend(response("text/html; charset=utf-8", "", &body)).await;
    let (_lk, c) = start("", &addr).await;
    for (accept, want) in [
        (Some("gzip;q=0, br"), Some("br")),
        (Some("br;q=0.5, gzip;q=0.8"), Some("gzip")),
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("zstd, gzip"), Some("zstd")),
        (Some("*"), Some("br")),
        (Some("*;q=0"), None),
        (Some("identity"), None),
        (Some("deflate"), None),
        (None, None),
    ] {
        let r = get(&c, accept).await;
        assert_eq!(r.header("content-encoding"), want, "{accept:?}");
        match want {
            Some(codec) => assert_eq!(decode(codec, &r.body), body, "{accept:?}"),
            None => {
                assert_eq!(r.body, body.as_bytes(), "{accept:?}");
                let length = body.len().to_string();
                assert_eq!(r.header("content-length"), Some(length.as_str()));
            }
        }
    }
}

#[tokio::test]
async fn disabled_codecs_are_not_offered() {
    let body = json_body(2000);
    let addr = raw_backend(response("application/json", "", &body)).await;
    let (_lk, c) = start("br_level = 0\nzstd_level = 0\ngzip_level = 1", &addr).await;
    let r = get(&c, Some("br, zstd, gzip;q=0.1")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &r.body), body);
    assert_eq!(
        get(&c, Some("br, zstd")).await.header("content-encoding"),
        None
    );
}

#[tokio::test]
async fn encoded_ranged_no_transform_small_and_binary_bodies_pass_as_they_are() {
    let body = json_body(2000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(body.as_bytes()).expect("gzip");
    let gzipped = gz.finish().expect("gzip");
    let encoded = {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            gzipped.len()
        )
        .into_bytes();
        r.extend_from_slice(&gzipped);
        r
    };
    let cases = [
        ("already gzip", None),
        (
            "206",
            Some(format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1999/9000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )),
        ),
        (
            "no-transform",
            Some(response("text/plain", "Cache-Control: public, no-transform\r\n", &body)),
        ),
        ("small", Some(response("application/json", "", &body[..255]))),
        ("binary", Some(response("image/png", "", &body))),
        ("no type", Some(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()))),
    ];
    for (name, raw) in cases {
        let addr = match raw {
            Some(r) => raw_backend(r).await,
            None => raw_backend(encoded.clone()).await,
        };
        let (_lk, c) = start("", &addr).await;
        let r = get(&c, Some("br, gzip, zstd")).await;
        match name {
            "already gzip" => {
                assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
                assert_eq!(r.body, gzipped, "{name}: passed byte for byte");
            }
            _ => {
                assert_eq!(r.header("content-encoding"), None, "{name}");
                assert!(body.as_bytes().starts_with(&r.body), "{name}");
                assert!(r.header("content-length").is_some(), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn strong_etags_become_weak_and_existing_vary_is_kept() {
    let body = json_body(2000);
    let extra = "ETag: \"v1\"\r\nVary: Origin\r\nAccept-Ranges: bytes\r\n";
    let addr = raw_backend(response("application/json", extra, &body)).await;
    let (_lk, c) = start("", &addr).await;
    let r = get(&c, Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(
        r.header("accept-ranges"),
        None,
        "ranges of the encoded body are not served"
    );
    let vary: Vec<&str> = r
        .headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(vary, ["Origin", "Accept-Encoding"]);
    let plain = get(&c, None).await;
    assert_eq!(
        plain.header("etag"),
        Some("\"v1\""),
        "uncompressed: the strong ETag stays"
    );
}

#[tokio::test]
async fn head_gets_the_headers_of_an_uncompressed_answer() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front("compression", "min_length = 1", "", &b).await;
    let r = fetch(&c, reqwest::Method::HEAD, Some("gzip, br")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.is_empty());
    let g = get(&c, Some("gzip")).await;
    assert_eq!(g.header("content-encoding"), Some("gzip"));
    assert!(decode("gzip", &g.body).contains("\"backend\":\"b\""));
}

#[tokio::test]
async fn event_streams_are_left_alone_unless_configured() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front("compression", "", "", &b).await;
    let resp = c
        .request(
            reqwest::Method::GET,
            "z.test",
            "/sse?chunks=3&interval_ms=10",
        )
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers().get("content-encoding"), None);
    let text = resp.text().await.expect("body");
    assert_eq!(text, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

/// Decodes a body as it arrives, chunk by chunk.
enum Incremental {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Incremental {
    fn new(codec: &str) -> Incremental {
        match codec {
            "gzip" => Incremental::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "br" => Incremental::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            _ => Incremental::Zstd(zstd::stream::write::Decoder::new(Vec::new()).expect("zstd")),
        }
    }

    /// Feeds received bytes; returns everything decoded so far.
    fn feed(&mut self, data: &[u8]) -> String {
        let out = match self {
            Incremental::Gzip(d) => d
                .write_all(data)
                .and_then(|()| d.flush())
                .map(|()| d.get_ref()),
            Incremental::Br(d) => d
                .write_all(data)
                .and_then(|()| d.flush())
                .map(|()| d.get_ref()),
            Incremental::Zstd(d) => d
                .write_all(data)
                .and_then(|()| d.flush())
                .map(|()| d.get_ref()),
        };
        String::from_utf8_lossy(out.expect("decodes")).into_owned()
    }
}

#[tokio::test]
async fn every_chunk_of_a_stream_is_decodable_before_the_next_is_sent() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front("compression", "event_stream = true", "", &b).await;
    for codec in ["gzip", "br", "zstd"] {
        let mut resp = c
            .request(reqwest::Method::GET, "z.test", "/gated?chunks=3")
            .header("accept-encoding", codec)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.headers()["content-encoding"], codec);
        let mut decoder = Incremental::new(codec);
        for i in 0..3 {
            if i > 0 {
                // The backend sends chunk i only now: chunk i-1 was decoded without it.
                b.release_chunk();
            }
            let want = format!("data: {i}\n\n");
            let mut decoded = String::new();
            while !decoded.ends_with(&want) {
                let chunk = tokio::time::timeout(READ_LIMIT, resp.chunk())
                    .await
                    .unwrap_or_else(|_| panic!("{codec}: chunk {i} held back; decoded {decoded:?}"))
                    .expect("stream")
                    .unwrap_or_else(|| panic!("{codec}: stream ended before chunk {i}"));
                decoded = decoder.feed(&chunk);
            }
            let expected: String = (0..=i).map(|j| format!("data: {j}\n\n")).collect();
            assert_eq!(decoded, expected, "{codec}");
        }
        let mut rest = Vec::new();
        while let Some(chunk) = resp.chunk().await.expect("stream ends cleanly") {
            rest.extend_from_slice(&chunk);
        }
        decoder.feed(&rest);
    }
}

#[tokio::test]
async fn plugin_replies_are_compressed_too() {
    let data = json_body(1000);
    let port = free_port();
    let config = OneRoute {
        port,
        location: "plugins = [\"z\", \"m\"]",
        extra: &format!(
            "[plugins.z]\ncategory = \"compression\"\n\n[plugins.m]\ncategory = \"mock\"\ndata = '{data}'\n"
        ),
        ..Default::default()
    }
    .toml();
    let _lk = Louailink::start(&config).await;
    let c = Client::h1(port);
    let r = get(&c, Some("zstd")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(decode("zstd", &r.body), data);
    let r = get(&c, None).await;
    assert_eq!(r.body, data.as_bytes());
}

#[tokio::test]
async fn an_accept_encoding_of_8_kb_of_junk_gets_a_normal_answer() {
    let body = json_body(2000);
    let addr = raw_backend(response("application/json", "", &body)).await;
    let (_lk, c) = start("", &addr).await;
    let commas = ",".repeat(8192);
    let junk = ";q=;;=,x;q=0.5;;".repeat(512);
    for hostile in [
        commas.clone(),
        junk.clone(),
        format!("{junk}, gzip;q=0.1{commas}"),
    ] {
        let r = get(&c, Some(&hostile)).await;
        assert_eq!(r.status, 200);
        let got = match r.header("content-encoding") {
            Some(codec) => decode(codec, &r.body),
            None => String::from_utf8_lossy(&r.body).into_owned(),
        };
        assert_eq!(got, body);
    }
    assert_eq!(
        get(&c, Some(&format!("{junk}, gzip")))
            .await
            .header("content-encoding"),
        Some("gzip")
    );
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"squeeze\"]",
        extra: "[plugins.squeeze]\ncategory = \"compression\"\ngzip_level = 10\nbr_level = 12\nzstd_level = 23\ncontent_types = [\"json\", \"text/event-stream\"]",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.squeeze",
        "gzip_level",
        "br_level",
        "zstd_level",
        "content_types",
        "event_stream = true",
    ]);
    let off = OneRoute {
        port: free_port(),
        location: "plugins = [\"squeeze\"]",
        extra: "[plugins.squeeze]\ncategory = \"compression\"\ngzip_level = 0\nbr_level = 0\nzstd_level = 0",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&off);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.squeeze", "every codec is disabled"]);
}
