//! Client connections below the HTTP layer: how many a server runs ([`limit`]) and the
//! deadline on each request header ([`deadline`]).

pub mod deadline;
pub mod limit;

pub use deadline::Deadlined;
pub use limit::{default_max_connections, ConnLimits, Gate, LimitSource};
