//! The two faces of the one service: REST (axum) and gRPC (tonic).

pub mod grpc;
pub mod rest;
