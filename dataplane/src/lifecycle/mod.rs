//! The process around the request path: starting the pingora server ([`server`]), applying
//! config changes ([`reload`]) from files ([`watch`]) or etcd ([`fleet`]) on low-priority
//! threads ([`config_runtime`]), and reporting the node ([`node`], [`admin`]).

pub mod admin;
pub mod config_runtime;
pub mod fleet;
pub mod node;
pub mod reload;
pub mod server;
pub mod watch;
