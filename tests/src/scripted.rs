//! A raw HTTP/1.1 backend that records every request byte for byte as it arrived and answers
//! from a script chosen by the request's path: for comparing what two proxies send upstream
//! and for answers a well-behaved server library would not give (HTTP/1.0 bodies until close,
//! 1xx heads, a refused `Expect`, a connection closed while idle).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The answer to a path, and what the connection does after it.
fn script(method: &str, path: &str, body_len: usize) -> (Vec<u8>, bool) {
    let p = path.split('?').next().unwrap_or(path);
    let plain = |s: &str| (s.as_bytes().to_vec(), false);
    match p {
        "/cl" => plain("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: a\r\nX-Up: b\r\n\r\nhello"),
        "/chunked" => plain(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        ),
        "/http10" => (b"HTTP/1.0 200 OK\r\nX-Old: 1\r\n\r\nuntil the close".to_vec(), true),
        "/204" => plain("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
        "/304" => plain("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
        "/head" if method == "HEAD" => plain("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        "/head" => plain("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
        "/hints" => plain(
            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        "/keepalive" => plain(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
        ),
        "/close" => (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        "/big" => {
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
            out.extend((0..1_048_576u32).map(|i| b'a' + (i % 26) as u8));
            (out, false)
        }
        _ => {
            let text = format!("{method} {path} {body_len}");
            plain(&format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            ))
        }
    }
}

/// The recording backend.
pub struct Scripted {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Starts on a free loopback port. `idle_close`: close a connection that stays idle this
    /// long after a response, without a word (as backends with a short keep-alive do).
    pub async fn start(idle_close: Option<Duration>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, s.clone(), idle_close));
            }
        });
        Scripted {
            port,
            seen,
            connections,
            task,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests received since the last call, each as its bytes on the wire.
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut s: TcpStream, seen: Arc<Mutex<Vec<Vec<u8>>>>, idle_close: Option<Duration>) {
    let mut buf = Vec::new();
    loop {
        let idle = buf.is_empty();
        let wait = async {
            loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    return Some(i + 4);
                }
                if !fill(&mut s, &mut buf).await {
                    return None;
                }
            }
        };
        let head_len = match idle_close {
            Some(t) if idle => match tokio::time::timeout(t, wait).await {
                Ok(found) => found,
                Err(_) => return,
            },
            _ => wait.await,
        };
        let Some(head_len) = head_len else { return };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_lowercase();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or("").to_uppercase();
        let path = words.next().unwrap_or("").to_string();
        let field = |name: &str| {
            head.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        if path.starts_with("/refuse-expect") {
            seen.lock().expect("lock").push(buf[..head_len].to_vec());
            let _ = s
                .write_all(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
        if field("expect").as_deref() == Some("100-continue") {
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
        let (end, body_len) = if field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match chunked_end(&mut s, &mut buf, head_len).await {
                Some(found) => found,
                None => return,
            }
        } else {
            let n: usize = field("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_len + n {
                if !fill(&mut s, &mut buf).await {
                    return;
                }
            }
            (head_len + n, n)
        };
        seen.lock().expect("lock").push(buf[..end].to_vec());
        buf.drain(..end);
        let (answer, close) = script(&method, &path, body_len);
        if s.write_all(&answer).await.is_err() || close {
            return;
        }
    }
}

/// Where a chunked body starting at `from` ends (after its trailer) and its data length.
async fn chunked_end(s: &mut TcpStream, buf: &mut Vec<u8>, from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    let mut data = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[at..], b"\r\n") {
                break at + i;
            }
            if !fill(s, buf).await {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(&buf[at..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(&buf[at..], b"\r\n") {
                        break at + i;
                    }
                    if !fill(s, buf).await {
                        return None;
                    }
                };
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((at, data));
                }
            }
        }
        while buf.len() < at + size + 2 {
            if !fill(s, buf).await {
                return None;
            }
        }
        at += size + 2;
        data += size;
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match s.read(&mut chunk).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
