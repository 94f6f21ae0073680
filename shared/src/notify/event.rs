//! A notification event (controlplane.md, "Notification events"): its names and its shape,
//! the same for the control plane and a single-node data plane.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every event name (controlplane.md, "Notification events").
pub const NAMES: [&str; 13] = [
    "diff_config",
    "config_rejected",
    "backend_unhealthy",
    "backend_healthy",
    "node_online",
    "node_offline",
    "restart",
    "restart_pending",
    "lets_encrypt",
    "lets_encrypt_fail",
    "tls_validity",
    "etcd_unavailable",
    "etcd_recovered",
];

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing number (per sending process).
    pub id: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// One of [`NAMES`].
    pub name: String,
    /// A readable message (for a `diff_config`, the diff; secrets hashed).
    pub message: String,
    /// The node concerned, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Event-specific fields.
    #[serde(default)]
    pub details: Value,
}
