//! The compiled config: one immutable [`snapshot::Snapshot`] of servers' routers
//! ([`router`]), locations with their plugin chains ([`location`]) and certificates ([`tls`]),
//! swapped in whole.

pub mod location;
pub mod router;
pub mod snapshot;
pub mod tls;
