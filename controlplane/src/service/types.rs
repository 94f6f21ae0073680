//! What the service answers: items as read, write and dry-run outcomes, exports and
//! events, and what a dry run checks.

use crate::events::Event;
use crate::webhook::StatsView;
use louailink_shared::{Format, Kind};
use serde::Serialize;
use serde_json::Value;

/// One item as read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemView {
    /// The kind.
    pub kind: Kind,
    /// The name (`""` for `basic`).
    pub name: String,
    /// Its revision (the `ETag`); 0 when `basic` was never written.
    pub revision: i64,
    /// The value (secrets hashed for viewers).
    pub value: Value,
}

/// The items of one kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemList {
    /// The items, by name.
    pub items: Vec<ItemView>,
    /// The store revision read.
    pub revision: i64,
}

/// What a write did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WriteOutcome {
    /// Revision of the (last) transaction; the snapshot's when nothing changed.
    pub revision: i64,
    /// `meta/generation` after it.
    pub generation: i64,
    /// History records written, one per transaction.
    pub history_ids: Vec<i64>,
    /// Items added.
    pub added: Vec<String>,
    /// Items modified.
    pub modified: Vec<String>,
    /// Items removed.
    pub removed: Vec<String>,
    /// Transactions used (0 when nothing changed).
    pub steps: usize,
}

/// A dry run that passed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValidateOutcome {
    /// Always true (an invalid change fails with the error the write would get).
    pub valid: bool,
    /// Items that would be added.
    pub added: Vec<String>,
    /// Items that would be modified.
    pub modified: Vec<String>,
    /// Items that would be removed.
    pub removed: Vec<String>,
    /// Transactions it would take.
    pub steps: usize,
}

/// An exported config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exported {
    /// The text.
    pub text: String,
    /// `toml` or `json`.
    pub format: String,
    /// The store revision read.
    pub revision: i64,
}

/// Recent events and the webhook counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventsView {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Webhook delivery counters.
    pub webhook: StatsView,
}

/// What a dry run checks.
#[derive(Clone, Debug)]
pub enum Check {
    /// A whole config text, replacing (or merged into) the stored one.
    Config {
        /// The text.
        text: String,
        /// Its format.
        format: Format,
        /// Replace the stored config (else merge into it).
        replace: bool,
    },
    /// One item, against the stored config.
    Item {
        /// `basic` or a kind.
        kind: String,
        /// The name.
        name: String,
        /// The value.
        value: Value,
    },
}
