//! `request_id`: keeps the client's request id when it is a sane token (letters, digits,
//! `-_.:`, at most 128 bytes), otherwise makes one; the id becomes `$request_id` and
//! `{request_id}`, and is sent upstream and back to the client in the configured header.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::inspect::{hex32, push_ascii};
use async_trait::async_trait;
use http::HeaderName;
use louailink_shared::plugins::RequestIdOptions;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

/// The longest client-sent id that is kept.
const MAX_KEPT: usize = 128;

/// The `request_id` plugin.
pub struct RequestId {
    header: HeaderName,
    uuid: bool,
}

impl Build for RequestId {
    type Options = RequestIdOptions;

    fn build(options: RequestIdOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let header = HeaderName::from_bytes(options.header_name.as_bytes())
            .map_err(|_| format!("header_name {:?} is not a header name", options.header_name))?;
        Ok(RequestId {
            header,
            uuid: options.algorithm == "uuid",
        })
    }
}

/// A client id worth keeping: it goes into logs and upstream headers as is.
fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEPT
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl RequestId {
    fn generate(&self, out: &mut String) {
        let n = fastrand::u128(..);
        if !self.uuid {
            return push_ascii(out, &hex32(n));
        }
        // Version 4, variant 10xx.
        let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
        let d = hex32(n);
        let mut id = [b'-'; 36];
        id[..8].copy_from_slice(&d[..8]);
        id[9..13].copy_from_slice(&d[8..12]);
        id[14..18].copy_from_slice(&d[12..16]);
        id[19..23].copy_from_slice(&d[16..20]);
        id[24..].copy_from_slice(&d[20..]);
        push_ascii(out, &id);
    }
}

#[async_trait]
impl Plugin for RequestId {
    fn category(&self) -> &'static str {
        "request_id"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::UPSTREAM_REQUEST | Phases::RESPONSE
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let sent = session
            .req_header()
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .filter(|id| sane(id));
        ctx.request_id.clear();
        match sent {
            Some(id) => ctx.request_id.push_str(id),
            None => self.generate(&mut ctx.request_id),
        }
        Ok(Flow::Continue)
    }

    fn upstream_request(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        request.insert_header(self.header.clone(), ctx.request_id.as_str())
    }

    fn response(
        &self,
        _session: &mut Session,
        header: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        header.insert_header(self.header.clone(), ctx.request_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_or_hex_and_only_sane_client_ids_are_kept() {
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        let uuid = RequestId {
            header: HeaderName::from_static("x-request-id"),
            uuid: true,
        };
        let hex = RequestId {
            header: HeaderName::from_static("x-request-id"),
            uuid: false,
        };
        for _ in 0..100 {
            let (mut a, mut b) = (String::new(), String::new());
            uuid.generate(&mut a);
            hex.generate(&mut b);
            assert!(re.is_match(&a), "{a}");
            assert!(
                b.len() == 32 && b.bytes().all(|c| c.is_ascii_hexdigit()),
                "{b}"
            );
        }
        assert!(sane("abc-123_x.y:z"));
        for bad in ["", "a b", "a\"b", "<script>", &"x".repeat(129)] {
            assert!(!sane(bad), "{bad:?}");
        }
    }
}
