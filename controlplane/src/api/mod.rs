//! The two faces of the one service: REST (axum, with its OpenAPI document) and gRPC (tonic).

pub mod grpc;
pub mod openapi;
pub mod rest;
