//! Webhook delivery (`basic.webhook`): formats, filtering, retries with backoff and bounded
//! buffering with drop counting. It lives in `louailink_shared::notify::webhook`, shared with
//! the single-node data plane.

pub use louailink_shared::notify::webhook::{payload, spawn, wanted, Retry, Stats, StatsView};
