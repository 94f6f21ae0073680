//! `louailink-control ctl`: a small client of the REST API, like `etcdctl` or `sozuctl`.
//!
//! ```text
//! louailink-control ctl get locations [api]
//! louailink-control ctl apply -f conf/            # merge the files' items in, as one change
//! louailink-control ctl delete locations api
//! louailink-control ctl nodes | events [--follow] | history | rollback <id>
//! louailink-control ctl validate -f conf/ [--replace]
//! louailink-control ctl export [--format json]
//! ```
//!
//! Output is the API's JSON (pretty), errors its error body; the exit code is 1 on an API
//! error. `--server` (or `LOUAILINK_SERVER`) and `--token` (or `LOUAILINK_TOKEN`) say where
//! and who.

use crate::store::file::config_files;
use louailink_shared::storage::etcd::item_json;
use louailink_shared::storage::ItemKey;
use louailink_shared::{parse_text, Format};
use serde_json::{json, Map, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `ctl` arguments.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The control plane's REST address.
    #[arg(
        long,
        env = "LOUAILINK_SERVER",
        default_value = "http://127.0.0.1:7000"
    )]
    pub server: String,
    /// Bearer token.
    #[arg(long, env = "LOUAILINK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `ctl` commands.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// List the items of a kind, or show one item.
    Get {
        /// `basic`, `servers`, `locations`, `upstreams`, `plugins`, `certificates`.
        kind: String,
        /// An item name.
        name: Option<String>,
    },
    /// Write the items of a file or a directory of files, as one change (others are kept).
    Apply {
        /// A config file or directory (TOML, YAML, JSON).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Also delete every stored item the files do not mention.
        #[arg(long)]
        prune: bool,
    },
    /// Delete an item.
    Delete {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// The data-plane nodes.
    Nodes,
    /// Recent events, or (`--follow`) the live stream.
    Events {
        /// Keep printing events as they happen.
        #[arg(long)]
        follow: bool,
    },
    /// Dry run: would the files apply? (Writes nothing.)
    Validate {
        /// A config file or directory.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Check them as the whole config (stored items not in the files removed).
        #[arg(long)]
        replace: bool,
    },
    /// Print the whole config.
    Export {
        /// `toml` or `json`.
        #[arg(long, default_value = "toml")]
        format: String,
    },
    /// What changed when.
    History {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this item (`locations.api`).
        #[arg(long)]
        item: Option<String>,
    },
    /// Undo every change after a history entry.
    Rollback {
        /// The history entry id.
        to: i64,
    },
}

/// Why `ctl` failed before getting an API answer.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The files could not be read or parsed.
    #[error("{0}")]
    Files(String),
    /// The HTTP request failed.
    #[error("cannot reach {server}: {error}")]
    Http {
        /// The server.
        server: String,
        /// The error.
        error: reqwest::Error,
    },
}

/// Runs a `ctl` command; returns the exit code (0 ok, 1 the API answered an error).
pub async fn run(args: CtlArgs) -> Result<i32, CtlError> {
    let base = args.server.trim_end_matches('/').to_string();
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token: args.token,
    };
    let out = match args.command {
        CtlCommand::Get { kind, name } => match name {
            Some(name) => {
                client
                    .send(
                        reqwest::Method::GET,
                        &format!("/api/v1/{kind}/{name}"),
                        None,
                    )
                    .await?
            }
            None => {
                client
                    .send(reqwest::Method::GET, &format!("/api/v1/{kind}"), None)
                    .await?
            }
        },
        CtlCommand::Apply { file, prune } => {
            let body = read_config(&file)?;
            let path = format!("/api/v1/config?format=json&merge={}", !prune);
            client.send(reqwest::Method::PUT, &path, Some(body)).await?
        }
        CtlCommand::Delete { kind, name } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/{kind}/{name}"),
                    None,
                )
                .await?
        }
        CtlCommand::Nodes => {
            client
                .send(reqwest::Method::GET, "/api/v1/nodes", None)
                .await?
        }
        CtlCommand::Events { follow: false } => {
            client
                .send(reqwest::Method::GET, "/api/v1/events", None)
                .await?
        }
        CtlCommand::Events { follow: true } => return client.follow().await,
        CtlCommand::Validate { file, replace } => {
            let text = read_config(&file)?;
            let body = json!({"text": text, "format": "json", "replace": replace}).to_string();
            client
                .send(reqwest::Method::POST, "/api/v1/validate", Some(body))
                .await?
        }
        CtlCommand::Export { format } => {
            client
                .send(
                    reqwest::Method::GET,
                    &format!("/api/v1/config?format={format}"),
                    None,
                )
                .await?
        }
        CtlCommand::History { limit, item } => {
            let mut path = format!("/api/v1/history?limit={limit}");
            if let Some(item) = item {
                path.push_str(&format!("&item={item}"));
            }
            client.send(reqwest::Method::GET, &path, None).await?
        }
        CtlCommand::Rollback { to } => {
            let body = json!({ "to": to }).to_string();
            client
                .send(reqwest::Method::POST, "/api/v1/rollback", Some(body))
                .await?
        }
    };
    Ok(print(out))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// An answer: status and body.
struct Answer {
    ok: bool,
    status: u16,
    body: String,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, CtlError> {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let http = |error| CtlError::Http {
            server: self.base.clone(),
            error,
        };
        let resp = r.send().await.map_err(http)?;
        let status = resp.status();
        let body = resp.text().await.map_err(http)?;
        Ok(Answer {
            ok: status.is_success(),
            status: status.as_u16(),
            body,
        })
    }

    /// Prints live events, one line each, until the stream ends.
    async fn follow(&self) -> Result<i32, CtlError> {
        let http = |error| CtlError::Http {
            server: self.base.clone(),
            error,
        };
        let mut resp = self
            .request(reqwest::Method::GET, "/api/v1/events?stream=true")
            .send()
            .await
            .map_err(http)?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.map_err(http)?;
            return Ok(print(Answer {
                ok: false,
                status,
                body,
            }));
        }
        let mut buffer = String::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                for line in block.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        if let Ok(e) = serde_json::from_str::<Value>(data.trim()) {
                            println!(
                                "{} {} {}: {}",
                                s(&e["time"]),
                                s(&e["name"]),
                                s(&e["node"]),
                                s(&e["message"])
                            );
                            let _ = std::io::stdout().flush();
                        }
                    }
                }
            }
        }
        Ok(0)
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Prints an answer; returns the exit code.
fn print(answer: Answer) -> i32 {
    let parsed: Option<Value> = serde_json::from_str(&answer.body).ok();
    if answer.ok {
        match parsed {
            Some(v) => println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or(answer.body)
            ),
            None => print!("{}", answer.body),
        }
        return 0;
    }
    match parsed.as_ref().map(|v| &v["error"]) {
        Some(e) if e.is_object() => {
            eprintln!(
                "error ({} {}): {}",
                answer.status,
                s(&e["code"]),
                s(&e["message"])
            );
            for d in e["details"].as_array().into_iter().flatten() {
                let mut at = s(&d["item"]).to_string();
                if let Some(k) = d["key"].as_str() {
                    at.push_str(&format!(" key {k:?}"));
                }
                if at.is_empty() {
                    eprintln!("  - {}", s(&d["message"]));
                } else {
                    eprintln!("  - {at}: {}", s(&d["message"]));
                }
            }
        }
        _ => eprintln!("error ({}): {}", answer.status, answer.body),
    }
    1
}

/// The items of a file or directory as one JSON config document (checked for syntax, kinds,
/// names and types here, with file:line errors; references are checked by the server
/// against the whole stored config).
pub fn read_config(path: &Path) -> Result<String, CtlError> {
    let files = if path.is_dir() {
        config_files(path).map_err(|e| CtlError::Files(e.to_string()))?
    } else {
        vec![path.to_path_buf()]
    };
    let mut root = Map::new();
    let mut errors = Vec::new();
    for file in files {
        let Some(format) = Format::from_path(&file) else {
            errors.push(format!(
                "{}: unknown config format; use .toml, .yaml, .yml or .json",
                file.display()
            ));
            continue;
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        let loaded = match parse_text(&text, format, Some(&file)) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        for (kind, name, item) in loaded.written_items() {
            let key = ItemKey::of(kind, name);
            let value = item_json(&item).map_err(|e| CtlError::Files(e.to_string()))?;
            if key.put_in(&mut root, value).is_some() {
                errors.push(format!("{}: {key} is defined twice", file.display()));
            }
        }
    }
    if !errors.is_empty() {
        return Err(CtlError::Files(errors.join("\n")));
    }
    Ok(Value::Object(root).to_string())
}
