//! Attacker-side tools for the hostile suite: slow clients, raw h2 frames, and what the proxy
//! process costs (its resident memory, its open-file limit).

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a slow client's connection ended.
#[derive(Debug)]
pub struct Trickled {
    /// The server closed the connection (EOF or reset) before the bound.
    pub closed: bool,
    /// Time from connect to close (or to the bound).
    pub lived: Duration,
    /// Bytes written before the end.
    pub sent: usize,
    /// What the server sent.
    pub reply: Vec<u8>,
}

impl Trickled {
    /// The status of the server's answer, if it sent one.
    pub fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.reply);
        text.split_whitespace().nth(1)?.parse().ok()
    }
}

/// Sends `bytes` one at a time, `gap` apart, until the server closes the connection or
/// `bound` passes (then sends nothing more and keeps reading until the bound).
pub async fn trickle(port: u16, bytes: &[u8], gap: Duration, bound: Duration) -> Trickled {
    let start = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(bound, rd.read_to_end(&mut reply)).await;
        (reply, start.elapsed())
    });
    let mut sent = 0;
    for b in bytes {
        if reader.is_finished() || start.elapsed() >= bound {
            break;
        }
        if wr.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(gap).await;
    }
    let (reply, lived) = reader.await.expect("reader task");
    Trickled {
        closed: lived < bound,
        lived,
        sent,
        reply,
    }
}

/// Opens a connection and sends `prefix` (the start of a request header), then holds it.
pub async fn hold_open(port: u16, prefix: &[u8]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(prefix).await.ok()?;
    Some(s)
}

/// True when the peer closed `s` within `within` (EOF or error); false when it stayed open.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Resident memory of process `pid`, in KiB (0 when it cannot be read).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Lowers the open-file limit of the running process `pid` (our child) to `n`.
pub fn set_nofile(pid: i32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: prlimit reads the struct we pass and writes nothing (old limit pointer is null).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit({pid}, NOFILE, {n}) failed");
}

/// One h2 frame: 9-byte header and payload.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The h2 client connection preface followed by an empty SETTINGS frame.
pub fn h2_preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(h2_frame(0x4, 0, 0, &[]));
    v
}
