//! Reply bodies read as they are sent: a [`Reply`](super::reply::Reply) may carry, after its
//! in-memory body, [`Part`]s such as ranges of files, written chunk by chunk so that a large
//! file is never held in memory. File reads run on tokio's blocking pool, never on the async
//! worker.

use bytes::Bytes;
use pingora::{Error, ErrorType, Result};
use pingora_proxy::Session;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The largest chunk read from a file and written at once.
pub const CHUNK: usize = 64 * 1024;

/// A piece of a streamed body.
#[derive(Clone, Debug)]
pub enum Part {
    /// Bytes in memory (e.g. a multipart boundary).
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, read chunk by chunk as they are sent.
    File {
        /// The open file (positional reads: clones share it safely).
        file: Arc<File>,
        /// First byte.
        offset: u64,
        /// Bytes to send.
        len: u64,
    },
}

impl Part {
    /// Bytes this part adds to the body.
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        }
    }

    /// True when it adds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `body` then `parts`, and ends the response body. Each chunk goes through `filter`
/// first (the location's `response_body` phase), which may change it or take it all.
pub async fn write_body<F>(
    session: &mut Session,
    body: Bytes,
    parts: Vec<Part>,
    mut filter: F,
) -> Result<()>
where
    F: FnMut(&mut Session, &mut Option<Bytes>, bool) -> Result<()>,
{
    if parts.is_empty() {
        return send(session, &mut filter, body, true).await;
    }
    send(session, &mut filter, body, false).await?;
    for part in parts {
        match part {
            Part::Bytes(b) => send(session, &mut filter, b, false).await?,
            Part::File { file, offset, len } => {
                let end = offset.saturating_add(len);
                let mut at = offset;
                while at < end {
                    let n = (end - at).min(CHUNK as u64) as usize;
                    let chunk = read_at(file.clone(), at, n).await?;
                    at += n as u64;
                    send(session, &mut filter, chunk, false).await?;
                }
            }
        }
    }
    send(session, &mut filter, Bytes::new(), true).await
}

/// One chunk through `filter`, then to the client (an empty chunk only when it ends the body).
async fn send<F>(session: &mut Session, filter: &mut F, chunk: Bytes, end: bool) -> Result<()>
where
    F: FnMut(&mut Session, &mut Option<Bytes>, bool) -> Result<()>,
{
    let mut chunk = Some(chunk);
    filter(session, &mut chunk, end)?;
    if !end && chunk.as_ref().is_none_or(Bytes::is_empty) {
        return Ok(());
    }
    session.write_response_body(chunk, end).await
}

async fn read_at(file: Arc<File>, offset: u64, len: usize) -> Result<Bytes> {
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Bytes::from(buf))
    })
    .await;
    match read {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Error::because(
            ErrorType::FileReadError,
            "reading a file being sent",
            e,
        )),
        Err(e) => Err(Error::because(
            ErrorType::InternalError,
            "the file read task failed",
            e,
        )),
    }
}
