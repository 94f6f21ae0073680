//! `jwt`: lets a request on only with a valid bearer JSON Web Token (signature by a secret, a
//! public key or a JWKS key chosen by `kid`; `exp`/`nbf` with leeway; optional `iss`/`aud`);
//! chosen claims go upstream as headers. Otherwise 401 with a `WWW-Authenticate: Bearer`
//! challenge (RFC 6750), or 503 while no JWKS could be fetched.

mod jwks;

use super::auth::unauthorized;
use super::{describe, Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::{state_key, RequestCtx};
use crate::request::params::{cookie, query_param, remove_cookie, remove_query_param};
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::{DecodingKey, Validation};
use jwks::{Jwks, KeyError};
use louailink_shared::plugins::{JwtKeys, JwtOptions};
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The longest token looked at (longer ones are refused unparsed).
const MAX_TOKEN: usize = 8192;

/// A key and what a token verified with it must satisfy.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

enum Keys {
    Fixed(Arc<Verifier>),
    Jwks(Arc<Jwks>),
}

/// The `jwt` plugin.
pub struct Jwt {
    keys: Keys,
    header: Option<HeaderName>,
    cookie: String,
    query: String,
    claims_to_headers: Vec<(String, HeaderName)>,
    hide_credentials: bool,
}

/// The claim headers of one verified request, set on the upstream request.
#[derive(Default)]
struct ClaimHeaders(Vec<(HeaderName, HeaderValue)>);

impl Build for Jwt {
    type Options = JwtOptions;

    fn build(options: JwtOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let mut base = Validation::default();
        base.leeway = options.leeway.get().as_secs();
        base.validate_nbf = true;
        // `exp` is checked when present, not required (tokens without it never expire).
        base.required_spec_claims.clear();
        if !options.issuer.is_empty() {
            base.set_issuer(&options.issuer.0);
        }
        if options.audience.is_empty() {
            base.validate_aud = false;
        } else {
            base.set_audience(&options.audience.0);
        }
        let keys = match options.keys().map_err(describe)? {
            JwtKeys::Fixed(key, algorithms) => {
                let mut validation = base;
                validation.algorithms = algorithms;
                Keys::Fixed(Arc::new(Verifier { key, validation }))
            }
            JwtKeys::Jwks(url, algorithms) => Keys::Jwks(Arc::new(Jwks::new(
                url,
                algorithms,
                base,
                options.jwks_refresh.get(),
            )?)),
        };
        let header_named = |h: &str| {
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("{h:?} is not a header name"))
        };
        Ok(Jwt {
            keys,
            header: options.header_or_default().map(header_named).transpose()?,
            claims_to_headers: options
                .claims_to_headers
                .iter()
                .map(|(claim, h)| Ok((claim.clone(), header_named(h)?)))
                .collect::<Result<_, String>>()?,
            cookie: options.cookie,
            query: options.query,
            hide_credentials: options.hide_credentials,
        })
    }
}

/// Why a request is refused.
enum Refusal {
    Missing,
    Invalid,
    KeysUnavailable,
}

impl Jwt {
    /// The token as sent: the header (a `Bearer ` prefix stripped), else the cookie, else
    /// the query parameter.
    fn token<'a>(&self, req: &'a RequestHeader) -> Option<&'a [u8]> {
        let from_header = self
            .header
            .as_ref()
            .and_then(|h| req.headers.get(h))
            .map(|v| {
                let v = v.as_bytes();
                match v.get(..7) {
                    Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
                    _ => v,
                }
            });
        let in_cookie = || match self.cookie.as_str() {
            "" => None,
            name => cookie(req, name),
        };
        let in_query = || match self.query.as_str() {
            "" => None,
            name => query_param(req.uri.query(), name),
        };
        from_header
            .or_else(|| in_cookie().map(str::as_bytes))
            .or_else(|| in_query().map(str::as_bytes))
            .filter(|t| !t.is_empty())
    }

    async fn verify(&self, req: &RequestHeader) -> Result<Map<String, Value>, Refusal> {
        let token = self.token(req).ok_or(Refusal::Missing)?;
        if token.len() > MAX_TOKEN {
            return Err(Refusal::Invalid);
        }
        let token = std::str::from_utf8(token).map_err(|_| Refusal::Invalid)?;
        let verifier = match &self.keys {
            Keys::Fixed(v) => v.clone(),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
                jwks.verifier(header.kid.as_deref())
                    .await
                    .map_err(|e| match e {
                        KeyError::Unknown => Refusal::Invalid,
                        KeyError::Unavailable => Refusal::KeysUnavailable,
                    })?
            }
        };
        jsonwebtoken::decode::<Map<String, Value>>(token, &verifier.key, &verifier.validation)
            .map(|data| data.claims)
            .map_err(|_| Refusal::Invalid)
    }

    /// The configured claims of a verified token as header values (strings as they are,
    /// other values as JSON; a value no header can carry is left out).
    fn claim_headers(&self, claims: &Map<String, Value>) -> ClaimHeaders {
        let values = self.claims_to_headers.iter().filter_map(|(claim, header)| {
            let value = match claims.get(claim)? {
                Value::String(s) => HeaderValue::from_str(s),
                other => HeaderValue::from_str(&other.to_string()),
            };
            Some((header.clone(), value.ok()?))
        });
        ClaimHeaders(values.collect())
    }
}

fn refusal_reply(refusal: Refusal) -> pingora::Result<Reply> {
    match refusal {
        Refusal::Missing => unauthorized(Some("Bearer")),
        Refusal::Invalid => unauthorized(Some("Bearer error=\"invalid_token\"")),
        Refusal::KeysUnavailable => Reply::new(
            503,
            "text/plain",
            Bytes::from_static(b"Service Unavailable"),
        ),
    }
}

#[async_trait]
impl Plugin for Jwt {
    fn category(&self) -> &'static str {
        "jwt"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::UPSTREAM_REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        match self.verify(session.req_header()).await {
            Ok(claims) => {
                if !self.claims_to_headers.is_empty() {
                    *ctx.plugin_states.get_mut::<ClaimHeaders>(state_key(self)) =
                        self.claim_headers(&claims);
                }
                Ok(Flow::Continue)
            }
            Err(refusal) => Ok(Flow::Reply(Box::new(refusal_reply(refusal)?))),
        }
    }

    fn upstream_request(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // The upstream trusts these headers: the client's own never pass.
        for (_, header) in &self.claims_to_headers {
            request.remove_header(header);
        }
        if let Some(ClaimHeaders(values)) = ctx.plugin_states.get(state_key(self)) {
            for (name, value) in values {
                request.append_header(name.clone(), value.clone())?;
            }
        }
        if self.hide_credentials {
            if let Some(h) = &self.header {
                request.remove_header(h);
            }
            if !self.cookie.is_empty() {
                remove_cookie(request, &self.cookie)?;
            }
            if !self.query.is_empty() {
                remove_query_param(request, &self.query)?;
            }
        }
        Ok(())
    }
}
