//! The LouAILink data plane: config snapshot, router, upstreams, plugins and the pingora
//! proxy built from them. The `louailink` binary (main.rs) is the command line around it.

pub mod access_log;
pub mod admin;
pub mod config_runtime;
pub mod ctx;
pub mod errors;
pub mod events;
pub mod fleet;
pub mod location;
pub mod node;
pub mod plugins;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod upstream;
pub mod vars;
pub mod watch;
