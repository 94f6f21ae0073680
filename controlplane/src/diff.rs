//! Field-level diffs between item versions, and secret redaction (private keys, webhook URLs
//! and plugin credentials shown as `sha256:<hash>`). They live in
//! `louailink_shared::notify::diff`, shared with the single-node data plane.

pub use louailink_shared::notify::diff::{
    config_changes, hash_str, hash_value, is_secret_name, item_change, redact, render, FieldChange,
    ItemChange,
};
