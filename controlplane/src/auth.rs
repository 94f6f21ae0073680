//! Bearer-token auth with two roles (`admin` writes and reads, `viewer` reads), shared by
//! REST and gRPC. Tokens are kept only as SHA-256 digests and compared in constant time;
//! failed attempts are logged (peer and reason, never the token) and rate-limited per
//! client address; a valid token is never refused by that limit. With no token configured the API is open, and the server binds only
//! loopback addresses (checked at start).

use crate::admission::Admission;
use crate::diff::hash_str;
use crate::error::ApiError;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Failed attempts allowed per client within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at most (older entries are dropped first).
const MAX_TRACKED: usize = 10_000;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only; secrets shown as hashes.
    Viewer,
    /// Reads and writes; sees private keys.
    Admin,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The role.
    pub role: Role,
    /// For history and logs: `admin:sha256:…` (a hash of the token), or `local`.
    pub actor: String,
}

impl Caller {
    /// An admin without a token (open mode, the CLI's file mode).
    pub fn local() -> Self {
        Caller {
            role: Role::Admin,
            actor: "local".into(),
        }
    }

    /// Fails with 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this token is a viewer token: it may read but not write".into(),
            ))
        }
    }

    /// Whether secrets may be shown to this caller.
    pub fn sees_secrets(&self) -> bool {
        self.role == Role::Admin
    }
}

struct Failures {
    count: u32,
    since: Instant,
}

/// The configured tokens and the failure counters.
pub struct Auth {
    tokens: Vec<([u8; 32], Role, String)>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    admission: Admission,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Admin and viewer tokens (empty ones are ignored).
    pub fn new(admin: &[String], viewer: &[String]) -> Self {
        let mut tokens = Vec::new();
        for (list, role) in [(admin, Role::Admin), (viewer, Role::Viewer)] {
            for t in list.iter().filter(|t| !t.is_empty()) {
                let name = format!("{}:{}", role_name(role), hash_str(t));
                tokens.push((digest(t), role, name));
            }
        }
        Auth {
            tokens,
            failures: Mutex::new(HashMap::new()),
            admission: Admission::default(),
        }
    }

    /// Waits for one of the caller's slots for a request with a body (see [`Admission`]).
    pub async fn admit(&self, caller: &Caller) -> Result<OwnedSemaphorePermit, ApiError> {
        self.admission.admit(&caller.actor).await
    }

    /// True when no token is configured: everyone is admin (loopback only).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value from `peer`.
    pub fn check(&self, peer: IpAddr, header: Option<&str>) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller::local());
        }
        let token = header
            .map(str::trim)
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            self.refuse_if_limited(peer)?;
            self.fail(peer, "no bearer token");
            return Err(ApiError::Unauthenticated(
                "an `Authorization: Bearer <token>` header is required".into(),
            ));
        };
        let d = digest(token);
        // Check every token, so the time taken does not tell which one matched.
        let mut found = None;
        for (known, role, name) in &self.tokens {
            if same(known, &d) && found.is_none() {
                found = Some((*role, name.clone()));
            }
        }
        // A valid token is never refused: the limit only slows guessing from an address, and
        // must not lock out the admin who shares it (a NAT, the same host as an attacker).
        match found {
            Some((role, actor)) => Ok(Caller { role, actor }),
            None => {
                self.refuse_if_limited(peer)?;
                self.fail(peer, "unknown token");
                Err(ApiError::Unauthenticated("unknown token".into()))
            }
        }
    }

    fn refuse_if_limited(&self, peer: IpAddr) -> Result<(), ApiError> {
        if self.limited(peer) {
            tracing::warn!(%peer, "authentication refused: too many failed attempts");
            return Err(ApiError::RateLimited(format!(
                "too many failed authentications from {peer}; try again later"
            )));
        }
        Ok(())
    }

    fn limited(&self, peer: IpAddr) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&peer)
            .is_some_and(|f| f.since.elapsed() < WINDOW && f.count >= MAX_FAILURES)
    }

    fn fail(&self, peer: IpAddr, reason: &str) {
        tracing::warn!(%peer, reason, "authentication failed");
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.since.elapsed() < WINDOW);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(peer).or_insert(Failures {
            count: 0,
            since: Instant::now(),
        });
        if entry.since.elapsed() >= WINDOW {
            *entry = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        entry.count += 1;
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_rate_limit() {
        let auth = Auth::new(&["a-secret".into()], &["v-secret".into()]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let admin = auth.check(ip, Some("Bearer a-secret")).unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(!admin.actor.contains("a-secret"));
        let viewer = auth.check(ip, Some("Bearer v-secret")).unwrap();
        assert!(viewer.require_admin().is_err());
        assert_eq!(auth.check(ip, None).unwrap_err().status(), 401);
        for _ in 1..MAX_FAILURES {
            assert_eq!(
                auth.check(ip, Some("Bearer nope")).unwrap_err().status(),
                401
            );
        }
        assert_eq!(
            auth.check(ip, Some("Bearer nope")).unwrap_err().status(),
            429
        );
        assert_eq!(auth.check(ip, None).unwrap_err().status(), 429);
        // A valid token from the same address still gets in.
        assert!(auth.check(ip, Some("Bearer a-secret")).is_ok());
        assert!(auth.check(ip, Some("Bearer v-secret")).is_ok());
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(auth.check(other, Some("Bearer nope")).is_err());
        assert_eq!(
            auth.check(other, Some("Bearer nope")).unwrap_err().status(),
            401
        );
        assert!(Auth::new(&[], &[]).is_open());
    }
}
