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

/// Writes `body` then `parts`, and ends the response body.
pub async fn write_body(session: &mut Session, body: Bytes, parts: Vec<Part>) -> Result<()> {
    if parts.is_empty() {
        return session.write_response_body(Some(body), true).await;
    }
    if !body.is_empty() {
        session.write_response_body(Some(body), false).await?;
    }
    for part in parts {
        match part {
            Part::Bytes(b) => session.write_response_body(Some(b), false).await?,
            Part::File { file, offset, len } => {
                let end = offset.saturating_add(len);
                let mut at = offset;
                while at < end {
                    let n = (end - at).min(CHUNK as u64) as usize;
                    let chunk = read_at(file.clone(), at, n).await?;
                    at += n as u64;
                    session.write_response_body(Some(chunk), false).await?;
                }
            }
        }
    }
    session.write_response_body(Some(Bytes::new()), true).await
}

/// Reads exactly `len` bytes at `offset` on the blocking pool. A file that shrank since its
/// header was sent is an error: the response cannot be completed, the connection is closed.
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
