//! The LouAILink data plane: the compiled config snapshot, the plugins and the pingora proxy
//! built from them. The `louailink` binary (main.rs) is the command line around it.
//!
//! Data flows one way, and each module uses only those above it in this table:
//!
//! | module | concept |
//! |---|---|
//! | [`events`] | what the node reports (health changes, swaps, rejections), as events |
//! | [`counters`] | what the process counts (requests by status class, per location) and its own facts |
//! | [`conn`] | client connections below HTTP: `max_connections`, the request-header deadline |
//! | [`upstream`] | backends of an upstream: load balancing, health checks, discovery, peers |
//! | [`request`] | one request's state, what is read from it, variables, replies, access log |
//! | [`plugins`] | the plugin API (phases, chains), the location built-ins and each plugin |
//! | [`runtime`] | the compiled snapshot: routers, locations, certificates |
//! | [`proxy`] | pingora's phases dispatched to the router, the plugin chain and the upstream |
//! | [`lifecycle`] | the server process: start, reload, file watch, etcd follow, node status |

pub mod conn;
pub mod counters;
pub mod events;
pub mod lifecycle;
pub mod plugins;
pub mod proxy;
pub mod request;
pub mod runtime;
pub mod upstream;
