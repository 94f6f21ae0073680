//! What the credential plugins (`basic_auth`, `key_auth`, `jwt`) share: a constant-time
//! compare against every accepted secret, and the 401 answer.

use super::Flow;
use crate::request::reply::Reply;
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use subtle::ConstantTimeEq;

/// True when `sent` equals one of `accepted`. Every one is compared, so the time taken does not
/// tell which one (or none) matched.
pub(super) fn matches_any(accepted: &[Vec<u8>], sent: &[u8]) -> bool {
    accepted.iter().fold(false, |found, a| {
        bool::from(a.as_slice().ct_eq(sent)) | found
    })
}

/// `401 Unauthorized`, with a `WWW-Authenticate` challenge when there is one.
pub(super) fn unauthorized(challenge: Option<&str>) -> pingora::Result<Reply> {
    let mut reply = Reply::new(401, "text/plain", Bytes::from_static(b"Unauthorized"))?;
    if let Some(challenge) = challenge {
        reply.header.insert_header(WWW_AUTHENTICATE, challenge)?;
    }
    Ok(reply)
}

/// [`unauthorized`] as a plugin's decision.
pub(super) fn refuse(challenge: Option<&str>) -> pingora::Result<Flow> {
    Ok(Flow::Reply(Box::new(unauthorized(challenge)?)))
}
