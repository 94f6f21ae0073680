//! The config model: six kinds of named items, as written in TOML/YAML/JSON and stored in etcd.
//!
//! Field names are the user-facing keys. Aliases are accepted on input; output always uses
//! the primary name. Every struct tolerates missing keys (`#[serde(default)]`); unknown keys
//! are reported by the loader with a "did you mean" suggestion.

use crate::values::{Dur, HeaderList, Size, StrList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole configuration: one `basic` item and named items of the other five kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Process-wide settings.
    pub basic: Basic,
    /// Listeners.
    pub servers: BTreeMap<String, ServerConf>,
    /// Routing rules.
    pub locations: BTreeMap<String, LocationConf>,
    /// Backend groups.
    pub upstreams: BTreeMap<String, UpstreamConf>,
    /// Plugin instances.
    pub plugins: BTreeMap<String, PluginConf>,
    /// TLS certificates.
    pub certificates: BTreeMap<String, CertificateConf>,
}

pub use crate::kind::KINDS;

/// Process-wide settings (`[basic]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Basic {
    /// Instance name, shown in logs and status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default worker threads per server (default: CPU count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`); `RUST_LOG` wins when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Pid file path (default `$HOME/.louailink/louailink.pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
    /// Unix socket used to hand listening sockets to a new process (`-u`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_sock: Option<String>,
    /// Time given to in-flight requests after SIGQUIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Dur>,
    /// Time after which a graceful shutdown turns hard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown_timeout: Option<Dur>,
    /// Template for error bodies; `{status}`, `{message}` are replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_template: Option<String>,
    /// CIDRs (or IPs) whose `X-Forwarded-For` is believed.
    #[serde(skip_serializing_if = "StrList::is_empty")]
    pub trusted_proxies: StrList,
    /// Notification webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// Local admin listener for `/_louailink/ready` and `/_louailink/status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    /// Idle upstream connections kept per server process (all upstreams together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_keepalive_pool_size: Option<usize>,
}

/// Where and how notification events are delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Webhook {
    /// Receiver URL.
    pub url: String,
    /// Payload format: `json`, `slack`, `wecom`, `dingtalk`, `feishu`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Event names to send (empty = all).
    #[serde(skip_serializing_if = "StrList::is_empty")]
    pub notifications: StrList,
}

/// TLS protocol versions accepted in `tls_min_version` / `tls_max_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2
    #[serde(rename = "tls1.2")]
    Tls12,
    /// TLS 1.3
    #[serde(rename = "tls1.3")]
    Tls13,
}

/// A listener (`[servers.<name>]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConf {
    /// Listen addresses, comma separated.
    pub addr: StrList,
    /// Location names served by this server.
    pub locations: StrList,
    /// Worker threads for this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// TLS listener; certificates chosen by SNI.
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    /// h2 via ALPN with TLS, h2c (prior knowledge) without.
    #[serde(skip_serializing_if = "is_false")]
    pub enabled_h2: bool,
    /// Lowest TLS version offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_min_version: Option<TlsVersion>,
    /// Highest TLS version offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_max_version: Option<TlsVersion>,
    /// Access log preset or template; absent = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
    /// Path answering Prometheus metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// OTLP endpoint for traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_exporter: Option<String>,
    /// Client read timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_read_timeout: Option<Dur>,
    /// Client write timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_write_timeout: Option<Dur>,
    /// Idle keep-alive timeout for client connections (default 75s; `0s` disables keep-alive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout: Option<Dur>,
    /// Total time a client has to send a request header (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_header_timeout: Option<Dur>,
    /// Concurrent client connections accepted (default: half the open-file limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// `false` matches and forwards raw paths (default: normalised; config.md "Path patterns").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize_path: Option<bool>,
}

/// A routing rule (`[locations.<name>]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocationConf {
    /// Host patterns, comma separated; absent = any host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path pattern; absent or empty = any path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Upstream name or `$var`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// `"<regex> <replacement>"` path rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// Headers set on the upstream request.
    #[serde(alias = "proxy_headers", skip_serializing_if = "HeaderList::is_empty")]
    pub proxy_set_headers: HeaderList,
    /// Headers appended to the upstream request.
    #[serde(skip_serializing_if = "HeaderList::is_empty")]
    pub proxy_add_headers: HeaderList,
    /// Headers set on the response.
    #[serde(alias = "headers", skip_serializing_if = "HeaderList::is_empty")]
    pub response_headers: HeaderList,
    /// Plugin names, run in order.
    #[serde(alias = "proxy_plugins", skip_serializing_if = "StrList::is_empty")]
    pub plugins: StrList,
    /// Explicit priority, higher first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Largest accepted request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_max_body_size: Option<Size>,
    /// In-flight requests allowed on this location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_processing: Option<u64>,
    /// Retries of a failed connect on another backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Time window within which retries may happen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retry_window: Option<Dur>,
    /// Set X-Forwarded-For/-Proto/-Host and X-Real-IP.
    #[serde(skip_serializing_if = "is_false")]
    pub enable_reverse_proxy_headers: bool,
}

/// Backend selection algorithm names, for validation messages.
pub const ALGOS: &str = "round_robin, random, least_conn, hash:ip, hash:header:<name>, hash:cookie:<name>, hash:query:<name>, hash:path, hash:url";

/// Backend discovery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// Addresses as written (host names resolved once).
    #[default]
    Static,
    /// Re-resolve host names every `dns_refresh`.
    Dns,
}

/// Application protocol towards the upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alpn {
    /// HTTP/1.1.
    #[default]
    H1,
    /// HTTP/2 (h2c without TLS).
    H2,
    /// Prefer HTTP/2, fall back to HTTP/1.1.
    H2h1,
}

/// A group of backends (`[upstreams.<name>]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamConf {
    /// `"host:port"` or `"host:port weight"`.
    pub addrs: StrList,
    /// Selection algorithm, see [`ALGOS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algo: Option<String>,
    /// `static` or `dns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
    /// DNS re-resolution period (default 30s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<Dur>,
    /// Only A records.
    #[serde(skip_serializing_if = "is_false")]
    pub ipv4_only: bool,
    /// TLS to the upstream.
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    /// SNI sent to the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Verify the upstream certificate (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_cert: Option<bool>,
    /// `h1`, `h2` or `h2h1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Alpn>,
    /// `"http://host/path?interval=3s&..."` or `"tcp://?interval=3s"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// TCP connect timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<Dur>,
    /// Connect timeout including the TLS handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_connection_timeout: Option<Dur>,
    /// Timeout of each read from the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<Dur>,
    /// Timeout of each write to the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<Dur>,
    /// Idle time after which a pooled connection is closed; `0s` disables reuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    /// Idle connections kept per backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_pool_size: Option<usize>,
}

/// A plugin instance (`[plugins.<name>]`): a category plus that plugin's own options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginConf {
    /// Which plugin (`ping`, `mock`, ...).
    #[serde(default)]
    pub category: String,
    /// The plugin's own options, validated by the plugin.
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A TLS certificate (`[certificates.<name>]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateConf {
    /// PEM text or a file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// PEM text or a file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Names served (default: the certificate's SANs).
    #[serde(skip_serializing_if = "StrList::is_empty")]
    pub domains: StrList,
    /// Served when no SNI matches.
    #[serde(skip_serializing_if = "is_false")]
    pub is_default: bool,
    /// `"lets_encrypt"` to have the control plane obtain it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<String>,
    /// ACME directory URL override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_directory: Option<String>,
    /// Renew / warn this many days before expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_days: Option<u32>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl HeaderList {
    /// True when there are no header lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
