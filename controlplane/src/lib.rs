//! LouAILink's control plane: one service layer ([`service`]) over a config store (etcd or
//! a directory), served as REST ([`api::rest`]) and gRPC ([`api::grpc`]), with history,
//! node tracking, events and webhooks, and the `ctl` client.
//!
//! | module | concept |
//! |---|---|
//! | [`service`] | every operation: validated writes, dry runs, import/export, history, rollback (the facade; its answer types in `service::types`, the write planner in `service/plan.rs`, the guarded write path in `service/write.rs`) |
//! | [`store`] | where the config lives (etcd or a directory); guarded commits |
//! | [`auth`], [`admission`] | bearer tokens, roles, failed-auth rate limit; per-token slots for requests with bodies |
//! | [`history`], [`diff`] | history records, field-level diffs, secret hashing |
//! | [`events`], [`webhook`], [`nodes`] | events, their delivery, node tracking |
//! | [`api`] | REST and gRPC; the OpenAPI document |
//! | [`server`] | wiring it all up; [`ctl`]: the command-line client |

pub mod admission;
pub mod api;
pub mod auth;
pub mod ctl;
pub mod diff;
pub mod error;
pub mod events;
pub mod history;
pub mod nodes;
pub mod server;
pub mod service;
pub mod store;
pub mod webhook;

/// The generated gRPC types, client and server.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("louailink.control.v1");
}
