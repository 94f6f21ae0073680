//! `traffic_split`: sends `weight` percent of a location's requests to another upstream. With
//! `sticky`, the side is a hash of the key's value, the same on every node and after every
//! restart, so one user stays on one side; a request without the value is split at random.

use super::request_key::Key;
use super::{Build, BuildCtx, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::upstream::Upstream;
use async_trait::async_trait;
use louailink_shared::plugins::TrafficSplitOptions;
use pingora_proxy::Session;
use std::sync::Arc;

/// The `traffic_split` plugin.
pub struct TrafficSplit {
    upstream: Arc<Upstream>,
    /// Percent sent to `upstream` (0-100).
    weight: u32,
    sticky: Option<Key>,
}

impl Build for TrafficSplit {
    type Options = TrafficSplitOptions;

    fn build(o: TrafficSplitOptions, ctx: &BuildCtx) -> Result<Self, String> {
        let sticky = match o.sticky.as_str() {
            "" => None,
            key => Some(Key::compile(key)?),
        };
        Ok(TrafficSplit {
            upstream: ctx.upstream(&o.upstream)?,
            weight: o.weight.min(100),
            sticky,
        })
    }
}

/// A stable hash (FNV-1a, then MurmurHash3's finaliser to spread it): fixed, unlike the
/// process-seeded hashers, so every node sends a value the same way.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[async_trait]
impl Plugin for TrafficSplit {
    fn category(&self) -> &'static str {
        "traffic_split"
    }

    fn phases(&self) -> Phases {
        Phases::UPSTREAM
    }

    fn upstream(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Arc<Upstream>> {
        let roll = match (self.weight, &self.sticky) {
            (0, _) => return None,
            (100, _) => return Some(self.upstream.clone()),
            (_, Some(key)) => key
                .with_value(session, ctx, |v| v.map(|v| (stable_hash(v) % 100) as u32))
                .unwrap_or_else(|| fastrand::u32(0..100)),
            (_, None) => fastrand::u32(0..100),
        };
        (roll < self.weight).then(|| self.upstream.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_hash_is_fixed_and_spreads_close_values() {
        // Fixed forever: nodes of different builds must agree.
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"alice"), 0x3507_d047_a67c_08f4);
        let below_30 = (0..10_000u32)
            .filter(|i| stable_hash(format!("user-{i}").as_bytes()) % 100 < 30)
            .count();
        assert!((2_700..3_300).contains(&below_30), "{below_30}");
    }
}
