//! LouAILink's shared library, used by both binaries.
//!
//! | module | concept |
//! |---|---|
//! | [`model`], [`values`], [`patterns`] | the config model, its value types, host/path/rewrite/algo syntax |
//! | [`formats`], [`loader`], [`incremental`], [`sources`], [`fields`], [`items`] | reading TOML/YAML/JSON files into items, key by key, with file:line |
//! | [`mod@validate`], [`error`] | checks across items, with errors naming item, key and line |
//! | [`plugins`] | each built-in plugin's options, checks and secret options |
//! | [`vars`], [`access_log`] | the request-variable vocabulary, header and log templates |
//! | [`certs`], [`bounded`] | loading certificates and keys; bounded reads of local files |
//! | [`storage`] | where config lives: etcd (layout, follow, commits), the node's state file |
//! | [`notify`] | events, diffs with secrets hashed, webhooks |
//! | [`logging`] | the binaries' log setup |

pub mod access_log;
pub mod bounded;
pub mod certs;
pub mod depth;
pub mod error;
pub mod fields;
pub mod formats;
pub mod incremental;
pub mod items;
pub mod kind;
pub mod loader;
pub mod logging;
pub mod model;
pub mod notify;
pub mod patterns;
pub mod plugins;
pub mod sources;
pub mod storage;
pub mod table;
pub mod validate;
pub mod values;
pub mod vars;

pub use access_log::parse_access_log;
pub use certs::{load_certificate, LoadedCert};
pub use error::{ConfigError, ConfigErrors};
pub use formats::Format;
pub use kind::{Kind, UnknownKind};
pub use loader::{check_name, decode_item, load, parse_text, Item, Loaded};
pub use model::*;
pub use plugins::{check_plugin, MockOptions, PingOptions};
pub use sources::SourceMap;
pub use validate::{summary, validate, validate_since, validate_without_files};
