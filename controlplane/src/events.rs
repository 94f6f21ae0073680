//! Notification events: numbered, kept in a bounded list of recent ones
//! (`GET /api/v1/events`), and broadcast to live subscribers (SSE, gRPC `WatchEvents`, the
//! webhook sender). The event and its hub live in `louailink_shared::notify`, shared with
//! the single-node data plane.

pub use louailink_shared::notify::event::{Event, NAMES};
pub use louailink_shared::notify::hub::{Events, DEFAULT_RECENT};
