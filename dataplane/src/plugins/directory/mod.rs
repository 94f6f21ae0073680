//! `directory`: static files from a folder. The location's prefix is taken off the request
//! path and the rest names a file under the folder (`lookup`, which refuses every way out of
//! it); the answer honours the request's conditions and ranges (`range`), lists directories
//! when asked (`listing`), and streams the file in chunks after the header.

mod listing;
mod lookup;
mod range;

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use crate::request::stream::Part;
use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use lookup::{DirRules, Found, Refused};
use louailink_shared::plugins::DirectoryOptions;
use percent_encoding::utf8_percent_encode;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use range::{Ranges, Validators};
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `directory` plugin.
pub struct Directory {
    /// What a lookup needs, shared with the blocking task that does it.
    dir: Arc<Dir>,
    /// `Cache-Control` of the files, when `max_age` is set.
    cache_control: Option<String>,
    /// `; charset=…` for `text/*` types (empty: none).
    charset: String,
    download: bool,
}

/// The folder and how directories in it are answered.
struct Dir {
    /// The folder, canonical.
    root: PathBuf,
    index: String,
    autoindex: bool,
}

impl Build for Directory {
    type Options = DirectoryOptions;

    fn build(o: DirectoryOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let root = std::fs::canonicalize(&o.path)
            .map_err(|e| format!("path: {:?} cannot be served: {e}", o.path))?;
        if !root.is_dir() {
            return Err(format!("path: {:?} is not a directory", o.path));
        }
        Ok(Directory {
            dir: Arc::new(Dir {
                root,
                index: o.index,
                autoindex: o.autoindex,
            }),
            cache_control: o.max_age.map(|d| format!("max-age={}", d.0.as_secs())),
            charset: if o.charset.is_empty() {
                String::new()
            } else {
                format!("; charset={}", o.charset)
            },
            download: o.download,
        })
    }
}

/// A request header as text, when present and readable.
fn req_header(session: &Session, name: header::HeaderName) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

impl Directory {
    /// What `path` names, looked up on the blocking pool.
    async fn find(&self, rest: &str, path: &str) -> Result<Found, Refused> {
        let (rel, wants_dir) = lookup::relative(rest)?;
        let dir = self.dir.clone();
        let shown = path.to_string();
        let task = tokio::task::spawn_blocking(move || {
            let rules = DirRules {
                index: &dir.index,
                autoindex: dir.autoindex,
                shown_path: &shown,
            };
            lookup::resolve(&dir.root, &rel, wants_dir, &rules)
        });
        task.await
            .unwrap_or(Err(Refused::Forbidden("the lookup failed")))
    }

    /// `Content-Type` of a file called `name`.
    fn content_type(&self, name: &Path) -> String {
        let mime = mime_guess::from_path(name).first_or_octet_stream();
        if mime.type_() == mime_guess::mime::TEXT {
            format!("{}{}", mime.essence_str(), self.charset)
        } else {
            mime.essence_str().to_string()
        }
    }

    /// The answer for an open file: 200, 206, 304 or 416.
    fn file_reply(
        &self,
        session: &Session,
        file: File,
        meta: &Metadata,
        name: &Path,
    ) -> pingora::Result<Reply> {
        let size = meta.len();
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let v = Validators::new(size, modified);
        let content_type = self.content_type(name);
        let not_modified = v.not_modified(
            req_header(session, header::IF_NONE_MATCH),
            req_header(session, header::IF_MODIFIED_SINCE),
        );
        let ranges = match req_header(session, header::RANGE) {
            // Ranges are for GET only; a HEAD gets the whole file's header.
            Some(r) if session.req_header().method == http::Method::GET => {
                if v.range_applies(req_header(session, header::IF_RANGE)) {
                    range::parse(r, size)
                } else {
                    Ranges::Full
                }
            }
            _ => Ranges::Full,
        };
        let file = Arc::new(file);
        let mut reply = if not_modified {
            Reply::with_header(ResponseHeader::build(304, Some(6))?, Bytes::new())
        } else {
            match ranges {
                Ranges::Full => {
                    let whole = Part::File {
                        file,
                        offset: 0,
                        len: size,
                    };
                    Reply::streamed(200, &content_type, vec![whole])?
                }
                Ranges::Partial(r) if r.len() == 1 => {
                    let (offset, len) = (r[0].start, r[0].len);
                    let part = Part::File { file, offset, len };
                    let mut reply = Reply::streamed(206, &content_type, vec![part])?;
                    let content_range = r[0].content_range(size);
                    reply
                        .header
                        .insert_header(header::CONTENT_RANGE, content_range)?;
                    reply
                }
                Ranges::Partial(r) => multipart(file, &r, size, &content_type)?,
                Ranges::Unsatisfiable => {
                    let mut reply = Reply::new(416, "text/plain", Bytes::new())?;
                    let content_range = format!("bytes */{size}");
                    reply
                        .header
                        .insert_header(header::CONTENT_RANGE, content_range)?;
                    return Ok(reply);
                }
            }
        };
        let h = &mut reply.header;
        h.insert_header(header::ETAG, v.etag)?;
        h.insert_header(header::LAST_MODIFIED, httpdate::fmt_http_date(v.modified))?;
        h.insert_header(header::ACCEPT_RANGES, "bytes")?;
        if let Some(cc) = &self.cache_control {
            h.insert_header(header::CACHE_CONTROL, cc)?;
        }
        if self.download {
            h.insert_header(header::CONTENT_DISPOSITION, attachment(name))?;
        }
        Ok(reply)
    }
}

/// A 206 `multipart/byteranges` reply of `ranges` of the file.
fn multipart(
    file: Arc<File>,
    ranges: &[range::ByteRange],
    size: u64,
    content_type: &str,
) -> pingora::Result<Reply> {
    let boundary = format!("{:016x}", fastrand::u64(..));
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    for r in ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            r.content_range(size)
        );
        parts.push(Part::Bytes(Bytes::from(head)));
        parts.push(Part::File {
            file: file.clone(),
            offset: r.start,
            len: r.len,
        });
    }
    parts.push(Part::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    let content_type = format!("multipart/byteranges; boundary={boundary}");
    Reply::streamed(206, &content_type, parts)
}

/// `Content-Disposition: attachment` naming the file: an ASCII fallback name, and the exact
/// name percent-encoded (RFC 6266).
fn attachment(name: &Path) -> String {
    let name = name.to_string_lossy();
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(&name, listing::LINK);
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

/// `405` naming the methods a folder answers.
fn method_not_allowed() -> pingora::Result<Flow> {
    let body = Bytes::from_static(b"Method Not Allowed");
    let mut reply = Reply::new(405, "text/plain", body)?;
    reply.header.insert_header(header::ALLOW, "GET, HEAD")?;
    Ok(Flow::Reply(Box::new(reply)))
}

#[async_trait]
impl Plugin for Directory {
    fn category(&self) -> &'static str {
        "directory"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let method = &session.req_header().method;
        if method != http::Method::GET && method != http::Method::HEAD {
            return method_not_allowed();
        }
        let uri = &session.req_header().uri;
        let path = uri.path();
        let Some(rest) = path.get(ctx.prefix_len..) else {
            return Ok(Flow::Error(404, "not found".into()));
        };
        let found = self.find(rest, path).await;
        let reply = match found {
            Ok(Found::File { file, meta, name }) => self.file_reply(session, file, &meta, &name)?,
            Ok(Found::Listing(page)) => {
                Reply::new(200, "text/html; charset=utf-8", Bytes::from(page))?
            }
            Ok(Found::AddSlash) => {
                let uri = &session.req_header().uri;
                let location = match uri.query() {
                    Some(q) => format!("{}/?{q}", uri.path()),
                    None => format!("{}/", uri.path()),
                };
                let mut reply = Reply::new(301, "text/plain", Bytes::new())?;
                reply.header.insert_header(header::LOCATION, location)?;
                reply
            }
            Err(Refused::Forbidden(why)) => return Ok(Flow::Error(403, why.into())),
            Err(Refused::NotFound) => return Ok(Flow::Error(404, "not found".into())),
        };
        Ok(Flow::Reply(Box::new(reply)))
    }
}
