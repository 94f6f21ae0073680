//! Process logging, set up the same way by both binaries: `RUST_LOG` (else a fallback level,
//! else `info`) filters by target, lines go to stderr or are appended to a file.

use std::path::Path;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber. `fallback` applies when `RUST_LOG` is unset or unreadable;
/// `with_target` prints each event's module. Fails only when the log file cannot be opened.
pub fn init(log: Option<&Path>, fallback: Option<&str>, with_target: bool) -> std::io::Result<()> {
    // `Targets` ("info", "louailink=debug,pingora=warn") rather than `EnvFilter`: the latter
    // links regex-automata's full-DFA builder, which every regex of the config then pays for
    // in build time and memory.
    let filter = [std::env::var("RUST_LOG").ok().as_deref(), fallback]
        .into_iter()
        .flatten()
        .find_map(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let builder = tracing_subscriber::fmt().with_target(with_target);
    match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .finish()
                .with(filter)
                .init();
        }
        None => builder
            .with_writer(std::io::stderr)
            .finish()
            .with(filter)
            .init(),
    }
    Ok(())
}
