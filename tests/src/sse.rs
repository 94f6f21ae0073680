//! A streamed (SSE) response read chunk by chunk, as an LLM client reads one: every chunk
//! must come, in order, and the stream must end cleanly (not be cut).
//!
//! Meant for the backends' `/sse` and `/gated` endpoints, whose chunks are `data: <i>\n\n`.

use crate::Client;
use std::time::Duration;

/// How long a single chunk may take before the stream counts as stalled.
const CHUNK_LIMIT: Duration = Duration::from_secs(10);

/// An open streamed response.
pub struct SseStream {
    name: String,
    resp: reqwest::Response,
    received: String,
}

impl SseStream {
    /// `GET host path` with `client`; asserts a 200 `text/event-stream` answer.
    pub async fn open(name: &str, client: &Client, host: &str, path: &str) -> SseStream {
        let resp = client
            .inner()
            .get(client.url(host, path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: stream request failed: {e:?}"));
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "{name}"
        );
        SseStream {
            name: name.to_string(),
            resp,
            received: String::new(),
        }
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.resp.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The protocol version.
    pub fn version(&self) -> http::Version {
        self.resp.version()
    }

    /// Reads until chunk `i` (`data: i`) has arrived; panics if the stream stalls, is cut or
    /// ends first.
    pub async fn read_chunk(&mut self, i: usize) {
        let want = format!("data: {i}\n\n");
        while !self.received.ends_with(&want) {
            let (name, got) = (&self.name, &self.received);
            let chunk = tokio::time::timeout(CHUNK_LIMIT, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("{name}: chunk {i} never came; got {got:?}"))
                .unwrap_or_else(|e| {
                    panic!("{name}: stream cut before chunk {i}: {e:?}; got {got:?}")
                })
                .unwrap_or_else(|| panic!("{name}: stream ended before chunk {i}; got {got:?}"));
            self.received.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads to the end; asserts that chunks `0..chunks` came, in order, and nothing else,
    /// and that the stream ended cleanly.
    pub async fn finish(mut self, chunks: usize) {
        self.read_chunk(chunks - 1).await;
        while let Some(rest) = self
            .resp
            .chunk()
            .await
            .unwrap_or_else(|e| panic!("{}: stream not ended cleanly: {e:?}", self.name))
        {
            self.received.push_str(&String::from_utf8_lossy(&rest));
        }
        let expected: String = (0..chunks).map(|i| format!("data: {i}\n\n")).collect();
        assert_eq!(self.received, expected, "{}", self.name);
    }
}
