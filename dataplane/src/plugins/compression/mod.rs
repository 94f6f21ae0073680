//! `compression`: gzip, br or zstd by the request's `Accept-Encoding` (q-values, server
//! preference br > zstd > gzip), for the configured media types. Every upstream chunk is
//! compressed and flushed at once, so streams are never held back.
//!
//! pingora's own `ResponseCompressionCtx` is not used: it ignores q-values (`gzip;q=0` still
//! gets gzip) and the server's preference, flushes only at the end of the body (a stream would
//! be held back), has fixed media types and minimum length, and transcodes bodies the client
//! did not ask for.

mod accept;
mod encoder;

use super::{Build, BuildCtx, Phases, Plugin};
use crate::request::ctx::{state_key, RequestCtx};
use crate::request::vary::{add_vary, has_token};
use bytes::Bytes;
use encoder::Encoder;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, TRANSFER_ENCODING,
};
use http::{HeaderValue, Method, Version};
use louailink_shared::plugins::CompressionOptions;
use pingora::{Error, ErrorType};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::sync::{Mutex, PoisonError};

/// A media type pattern: `type/subtype`, or `type/*` kept as the family `type/`.
enum MediaType {
    Exact(String),
    Family(String),
}

impl MediaType {
    fn matches(&self, media: &str) -> bool {
        match self {
            MediaType::Exact(t) => media.eq_ignore_ascii_case(t),
            MediaType::Family(f) => media
                .as_bytes()
                .get(..f.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(f.as_bytes())),
        }
    }
}

/// The `compression` plugin.
pub struct Compression {
    /// Levels indexed like [`accept::Codec::PREFERENCE`]; 0 = disabled.
    levels: [u32; 3],
    min_length: u64,
    types: Vec<MediaType>,
    event_stream: bool,
}

/// Per request: the encoder of the response being compressed (a `Mutex` only to make the
/// state `Sync`; it is reached through `&mut`, never locked).
#[derive(Default)]
struct Encoding(Option<Mutex<Encoder>>);

impl Build for Compression {
    type Options = CompressionOptions;

    fn build(o: CompressionOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let types = o
            .types()
            .into_iter()
            .map(|t| match t.strip_suffix('*') {
                Some(family) => MediaType::Family(family.to_string()),
                None => MediaType::Exact(t),
            })
            .collect();
        Ok(Compression {
            levels: [o.br_level, o.zstd_level, o.gzip_level],
            min_length: o.min_length.0,
            types,
            event_stream: o.event_stream,
        })
    }
}

fn content_length(header: &ResponseHeader) -> Option<u64> {
    header
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A strong ETag no longer names these bytes: make it weak (or drop one that is malformed),
/// as nginx does.
fn weaken_etag(header: &mut ResponseHeader) -> pingora::Result<()> {
    let Some(etag) = header.headers.get(ETAG).map(|v| v.as_bytes()) else {
        return Ok(());
    };
    if etag.starts_with(b"W/") {
        return Ok(());
    }
    match HeaderValue::from_bytes(&[b"W/", etag].concat()) {
        Ok(weak) if etag.starts_with(b"\"") => header.insert_header(ETAG, weak),
        _ => {
            header.remove_header(&ETAG);
            Ok(())
        }
    }
}

impl Compression {
    /// Whether this response may be compressed at all, whatever the client accepts.
    fn eligible(&self, header: &ResponseHeader) -> bool {
        let status = header.status.as_u16();
        let h = &header.headers;
        if status < 200 || matches!(status, 204 | 206 | 304) {
            return false;
        }
        if h.contains_key(CONTENT_ENCODING)
            || h.contains_key(CONTENT_RANGE)
            || has_token(h, CACHE_CONTROL, "no-transform")
        {
            return false;
        }
        // A known empty body stays empty: an encoded empty body would not be.
        if content_length(header).is_some_and(|n| n == 0 || n < self.min_length) {
            return false;
        }
        let Some(media) = h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let media = media.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            return self.event_stream;
        }
        self.types.iter().any(|t| t.matches(media))
    }
}

fn encode_error(e: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::InternalError, "compressing the response body", e)
}

impl Plugin for Compression {
    fn category(&self) -> &'static str {
        "compression"
    }

    fn phases(&self) -> Phases {
        Phases::RESPONSE | Phases::RESPONSE_BODY
    }

    fn response(
        &self,
        session: &mut Session,
        header: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if !self.eligible(header) {
            return Ok(());
        }
        add_vary(header, "Accept-Encoding")?;
        let req = session.req_header();
        if req.method == Method::HEAD {
            return Ok(());
        }
        let offered = req.headers.get_all(ACCEPT_ENCODING).iter();
        let enabled = self.levels.map(|l| l > 0);
        let Some(codec) = accept::choose(offered.map(HeaderValue::as_bytes), enabled) else {
            return Ok(());
        };
        let level = self.levels[codec.index()];
        let encoder = match Encoder::new(codec, level, content_length(header)) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "no encoder; sending the body as is");
                return Ok(());
            }
        };
        let http10 = req.version == Version::HTTP_10;
        header.insert_header(CONTENT_ENCODING, codec.token())?;
        header.remove_header(&CONTENT_LENGTH);
        header.remove_header(&ACCEPT_RANGES);
        weaken_etag(header)?;
        // pingora chose the body framing before this phase: without a length, HTTP/1.1 needs
        // chunks (h2 drops the header; an HTTP/1.0 client gets a body ended by the close).
        if !http10 && !header.headers.contains_key(TRANSFER_ENCODING) {
            if header.version < Version::HTTP_11 {
                header.set_version(Version::HTTP_11);
            }
            header.insert_header(TRANSFER_ENCODING, "chunked")?;
        }
        ctx.plugin_states.get_mut::<Encoding>(state_key(self)).0 = Some(Mutex::new(encoder));
        Ok(())
    }

    fn response_body(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let key = state_key(self);
        // Looked up first so that a response left alone makes no state.
        if ctx.plugin_states.get::<Encoding>(key).is_none() {
            return Ok(());
        }
        let state = &mut ctx.plugin_states.get_mut::<Encoding>(key).0;
        let input = body.as_deref().unwrap_or_default();
        let out = if end_of_stream {
            let Some(encoder) = state.take() else {
                return Ok(());
            };
            let encoder = encoder.into_inner().unwrap_or_else(PoisonError::into_inner);
            encoder.finish(input)
        } else {
            match state.as_mut() {
                Some(encoder) if !input.is_empty() => encoder
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .chunk(input),
                _ => return Ok(()),
            }
        };
        *body = Some(out.map_err(encode_error)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(options: serde_json::Value) -> Compression {
        let conf: louailink_shared::PluginConf = serde_json::from_value(options).unwrap();
        let o = louailink_shared::plugins::decode::<CompressionOptions>(&conf.options).unwrap();
        Compression::build(o, &BuildCtx::new(&Default::default())).unwrap()
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            h.append_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn only_eligible_responses_are_compressed() {
        let p = plugin(serde_json::json!({"category": "compression"}));
        let ok = |status, headers: &[(&str, &str)]| p.eligible(&response(status, headers));
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(ok(200, &[json]));
        assert!(ok(404, &[("content-type", "TEXT/HTML")]));
        assert!(ok(200, &[json, ("content-length", "256")]));
        assert!(!ok(200, &[json, ("content-length", "255")]));
        assert!(!ok(200, &[json, ("content-encoding", "gzip")]));
        assert!(!ok(206, &[json]));
        assert!(!ok(200, &[json, ("content-range", "bytes 0-9/100")]));
        assert!(!ok(204, &[json]));
        assert!(!ok(304, &[json]));
        assert!(!ok(200, &[json, ("cache-control", "public, No-Transform")]));
        assert!(!ok(200, &[("content-type", "image/png")]));
        assert!(!ok(200, &[]));
        assert!(!ok(200, &[("content-type", "text/event-stream")]));
        let sse = plugin(serde_json::json!({"category": "compression", "event_stream": true}));
        assert!(sse.eligible(&response(200, &[("content-type", "text/event-stream")])));
    }

    #[test]
    fn strong_etags_become_weak() {
        for (before, after) in [
            (Some("\"abc\""), Some("W/\"abc\"")),
            (Some("W/\"abc\""), Some("W/\"abc\"")),
            (Some("abc"), None),
            (None, None),
        ] {
            let mut h = response(200, &[]);
            if let Some(b) = before {
                h.insert_header(ETAG, b).unwrap();
            }
            weaken_etag(&mut h).unwrap();
            let got = h.headers.get(ETAG).map(|v| v.to_str().unwrap());
            assert_eq!(got, after, "{before:?}");
        }
    }
}
