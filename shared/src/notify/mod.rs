//! Notification events, shared by the control plane and a single-node data plane
//! (controlplane.md, "Notification events"): one concept per module.
//!
//! | module | concept |
//! |---|---|
//! | [`event`] | the event and its names |
//! | [`hub`] | numbering, the bounded recent list, live broadcast, the webhook setting |
//! | [`webhook`] | delivery: payload formats, filtering, retries with backoff, drop counting |
//! | [`diff`] | field-level diffs of items and whole configs, secrets hashed |

pub mod diff;
pub mod event;
pub mod hub;
pub mod webhook;

pub use event::{Event, NAMES};
pub use hub::{Events, DEFAULT_RECENT};
