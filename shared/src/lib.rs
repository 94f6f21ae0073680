//! LouAILink's shared library: the config model, its parsing and validation.

pub mod access_log;
pub mod certs;
pub mod error;
pub mod formats;
pub mod incremental;
pub mod items;
pub mod keys;
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

pub use access_log::{parse_access_log, LogPart, LogTag};
pub use certs::{load_certificate, LoadedCert};
pub use error::{ConfigError, ConfigErrors};
pub use formats::Format;
pub use kind::{Kind, UnknownKind};
pub use loader::{check_name, decode_item, load, parse_text, Item, Loaded};
pub use model::*;
pub use plugins::{plugin_options, MockOptions, PingOptions, PluginOptions};
pub use sources::SourceMap;
pub use validate::{summary, validate, validate_since};
