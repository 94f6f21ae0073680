//! Semantic validation of a whole configuration: addresses, patterns, references between
//! items, certificates and plugin options. Every problem is collected (never just the first),
//! each naming its item and key and, through the [`SourceMap`], its file and line.
//! The data plane, the control plane and `-t` all call [`validate`].

use crate::access_log::parse_access_log;
use crate::certs::{check_domain, load_keyed, CertSource};
use crate::error::{ConfigError, ConfigErrors};
use crate::fields::suggest;
use crate::kind::Kind;
use crate::model::Config;
use crate::patterns::{
    capture_names, parse_algo, parse_backend, parse_health_check, parse_hosts, parse_path,
    parse_rewrite, HostPattern, PathPattern,
};
use crate::plugins::check_plugin;
use crate::sources::SourceMap;
use crate::values::{split_header_line, Dur};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Accepted `basic.log_level` values.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
/// Accepted `basic.webhook.type` values.
pub const WEBHOOK_TYPES: [&str; 5] = ["json", "slack", "wecom", "dingtalk", "feishu"];
/// Accepted `certificates.*.acme` values.
pub const ACME_PROVIDERS: [&str; 1] = ["lets_encrypt"];

/// Checks everything that parsing alone cannot; returns every problem found.
pub fn validate(config: &Config, sources: &SourceMap) -> Result<(), ConfigErrors> {
    validate_since(config, sources, None)
}

/// [`validate`] for config that arrived over an API: certificates must hold PEM text, and no
/// file is ever read (a path is an error on its `tls_cert` / `tls_key`).
pub fn validate_without_files(config: &Config, sources: &SourceMap) -> Result<(), ConfigErrors> {
    run(config, sources, None, CertSource::TextOnly)
}

/// [`validate`], but a location equal to its namesake in `valid` (a config that passed
/// validation) only has its references checked again: what it says about itself (patterns,
/// variables, header lines) was checked then. Cheap for a reload that changed a few items.
pub fn validate_since(
    config: &Config,
    sources: &SourceMap,
    valid: Option<&Config>,
) -> Result<(), ConfigErrors> {
    run(config, sources, valid, CertSource::TextOrFile)
}

fn run(
    config: &Config,
    sources: &SourceMap,
    valid: Option<&Config>,
    cert_source: CertSource,
) -> Result<(), ConfigErrors> {
    let mut check = Check {
        config,
        sources,
        valid,
        cert_source,
        errors: Vec::new(),
    };
    check.basic();
    check.servers();
    check.locations();
    check.upstreams();
    check.plugins();
    check.certificates();
    if check.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(check.errors))
    }
}

/// `"1 server, 2 locations, 1 upstream, 0 plugins, 0 certificates"`.
pub fn summary(config: &Config) -> String {
    let count = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    [
        count(config.servers.len(), "server"),
        count(config.locations.len(), "location"),
        count(config.upstreams.len(), "upstream"),
        count(config.plugins.len(), "plugin"),
        count(config.certificates.len(), "certificate"),
    ]
    .join(", ")
}

struct Check<'a> {
    config: &'a Config,
    sources: &'a SourceMap,
    /// A config that passed validation (see [`validate_since`]).
    valid: Option<&'a Config>,
    cert_source: CertSource,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn err(&mut self, kind: Kind, name: &str, key: &str, message: impl Into<String>) {
        let key = (!key.is_empty()).then_some(key);
        self.errors
            .push(self.sources.error(kind.as_str(), name, key, message));
    }

    /// Whether item `(kind, name)` exists (or was written but failed to decode: already reported).
    fn exists(&self, kind: Kind, name: &str) -> bool {
        self.config.has_item(kind, name)
            || self.sources.is_broken(kind.as_str(), name)
            || self.sources.is_incomplete()
    }

    /// `unknown location "x" (did you mean "y"?)`.
    fn missing(&self, kind: Kind, what: &str, name: &str) -> String {
        match suggest(name, self.config.item_names(kind)) {
            Some(s) => format!("unknown {what} {name:?} (did you mean {s:?}?)"),
            None => format!("unknown {what} {name:?}: there is no {kind}.{name}"),
        }
    }

    fn basic(&mut self) {
        let b = &self.config.basic;
        for p in b.trusted_proxies.iter() {
            if p.parse::<ipnet::IpNet>().is_err() && p.parse::<IpAddr>().is_err() {
                let msg =
                    format!("{p:?} is neither an IP address nor a CIDR (e.g. \"10.0.0.0/8\")");
                self.err(Kind::Basic, "", "trusted_proxies", msg);
            }
        }
        if let Some(level) = &b.log_level {
            if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                let msg = format!(
                    "unknown log level {level:?}; one of {}",
                    LOG_LEVELS.join(", ")
                );
                self.err(Kind::Basic, "", "log_level", msg);
            }
        }
        if let Some(hook) = &b.webhook {
            let url = hook.url.trim();
            if url.is_empty() {
                self.err(Kind::Basic, "", "webhook.url", "is required");
            } else if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.err(
                    Kind::Basic,
                    "",
                    "webhook.url",
                    "must be an http:// or https:// URL",
                );
            }
            if let Some(kind) = &hook.kind {
                if !WEBHOOK_TYPES.contains(&kind.as_str()) {
                    let msg = format!(
                        "unknown webhook type {kind:?}; one of {}",
                        WEBHOOK_TYPES.join(", ")
                    );
                    self.err(Kind::Basic, "", "webhook.type", msg);
                }
            }
        }
        if let Some(addr) = &b.admin_addr {
            if addr.parse::<SocketAddr>().is_err() {
                self.err(Kind::Basic, "", "admin_addr", not_socket_addr(addr));
            }
        }
        if b.threads == Some(0) {
            self.err(Kind::Basic, "", "threads", "must be at least 1");
        }
    }

    fn servers(&mut self) {
        let config = self.config;
        let mut listening: HashMap<SocketAddr, &str> = HashMap::new();
        for (name, s) in &config.servers {
            if s.addr.is_empty() {
                self.err(
                    Kind::Servers,
                    name,
                    "addr",
                    "no listen address; write e.g. \"0.0.0.0:80\"",
                );
            }
            for addr in s.addr.iter() {
                let Ok(sa) = addr.parse::<SocketAddr>() else {
                    self.err(Kind::Servers, name, "addr", not_socket_addr(addr));
                    continue;
                };
                match listening.get(&sa) {
                    Some(other) if other == name => {
                        self.err(
                            Kind::Servers,
                            name,
                            "addr",
                            format!("{addr} is listed twice"),
                        );
                    }
                    Some(other) => {
                        let msg = format!("{addr} is also the listen address of servers.{other}");
                        self.err(Kind::Servers, name, "addr", msg);
                    }
                    None => {
                        listening.insert(sa, name);
                    }
                }
            }
            for loc in s.locations.iter() {
                if !self.exists(Kind::Locations, loc) {
                    let msg = self.missing(Kind::Locations, "location", loc);
                    self.err(Kind::Servers, name, "locations", msg);
                }
            }
            if s.threads == Some(0) {
                self.err(Kind::Servers, name, "threads", "must be at least 1");
            }
            if s.max_connections == Some(0) {
                self.err(Kind::Servers, name, "max_connections", "must be at least 1");
            }
            let positive: [(&str, Option<Dur>); 3] = [
                ("client_header_timeout", s.client_header_timeout),
                ("downstream_read_timeout", s.downstream_read_timeout),
                ("downstream_write_timeout", s.downstream_write_timeout),
            ];
            for (key, value) in positive {
                if value.is_some_and(|d| d.0.is_zero()) {
                    self.err(Kind::Servers, name, key, "must be above 0");
                }
            }
            if s.tls && config.certificates.is_empty() && !self.sources.is_incomplete() {
                let msg =
                    "tls = true but there are no certificates; add a [certificates.<name>] item";
                self.err(Kind::Servers, name, "tls", msg);
            }
            if let (Some(min), Some(max)) = (s.tls_min_version, s.tls_max_version) {
                if min > max {
                    self.err(
                        Kind::Servers,
                        name,
                        "tls_min_version",
                        "is above tls_max_version",
                    );
                }
            }
            if let Some(spec) = &s.access_log {
                if let Err(e) = parse_access_log(spec) {
                    self.err(Kind::Servers, name, "access_log", e);
                }
            }
            if let Some(path) = &s.metrics {
                if !path.starts_with('/') {
                    self.err(
                        Kind::Servers,
                        name,
                        "metrics",
                        format!("path {path:?} must start with '/'"),
                    );
                }
            }
        }
    }

    fn locations(&mut self) {
        for (name, l) in &self.config.locations {
            let known = self
                .valid
                .and_then(|v| v.locations.get(name))
                .is_some_and(|v| v == l);
            // Named captures of the host, path and rewrite regexes: the location's variables.
            let mut captures: Vec<String> = Vec::new();
            if known {
                // Checked when it passed: only its references below.
            } else if let Some(host) = &l.host {
                match parse_hosts(host) {
                    Ok(patterns) => {
                        for p in patterns {
                            if let HostPattern::Regex(re) = p {
                                captures.extend(capture_names(&re));
                            }
                        }
                    }
                    Err(e) => self.err(Kind::Locations, name, "host", e),
                }
            }
            match parse_path(l.path.as_deref()) {
                _ if known => {}
                Ok(PathPattern::Regex(re)) => captures.extend(capture_names(&re)),
                Ok(_) => {}
                Err(e) => self.err(Kind::Locations, name, "path", e),
            }
            if let Some(rewrite) = l.rewrite.as_ref().filter(|_| !known) {
                match parse_rewrite(rewrite) {
                    Ok(r) => captures.extend(capture_names(&r.regex)),
                    Err(e) => self.err(Kind::Locations, name, "rewrite", e),
                }
            }
            if let Some(upstream) = l.upstream.as_deref().map(str::trim) {
                if known && (upstream.is_empty() || upstream.starts_with('$')) {
                    // About itself only: checked when it passed.
                } else if let Some(var) = upstream.strip_prefix('$') {
                    let var = var
                        .strip_prefix('{')
                        .and_then(|v| v.strip_suffix('}'))
                        .unwrap_or(var);
                    if !captures.iter().any(|c| c == var) {
                        let msg = format!(
                            "{upstream:?} names no variable: the host, path and rewrite regexes have no named capture (?<{var}>...)"
                        );
                        self.err(Kind::Locations, name, "upstream", msg);
                    }
                } else if upstream.is_empty() {
                    self.err(
                        Kind::Locations,
                        name,
                        "upstream",
                        "is empty; omit it or name an upstream",
                    );
                } else if !self.exists(Kind::Upstreams, upstream) {
                    let msg = self.missing(Kind::Upstreams, "upstream", upstream);
                    self.err(Kind::Locations, name, "upstream", msg);
                }
            }
            let header_lists = [
                ("proxy_set_headers", &l.proxy_set_headers),
                ("proxy_add_headers", &l.proxy_add_headers),
                ("response_headers", &l.response_headers),
            ];
            for (key, list) in header_lists.into_iter().filter(|_| !known) {
                for line in &list.0 {
                    let checked = split_header_line(line)
                        .and_then(|(_, value)| crate::vars::parse_template(value));
                    if let Err(e) = checked {
                        self.err(Kind::Locations, name, key, e);
                    }
                }
            }
            for plugin in l.plugins.iter() {
                if !self.exists(Kind::Plugins, plugin) {
                    let msg = self.missing(Kind::Plugins, "plugin", plugin);
                    self.err(Kind::Locations, name, "plugins", msg);
                }
            }
            if !known && l.max_processing == Some(0) {
                self.err(
                    Kind::Locations,
                    name,
                    "max_processing",
                    "must be at least 1",
                );
            }
        }
    }

    fn upstreams(&mut self) {
        for (name, u) in &self.config.upstreams {
            if u.addrs.is_empty() {
                self.err(
                    Kind::Upstreams,
                    name,
                    "addrs",
                    "no backend address; write e.g. [\"127.0.0.1:8000\"]",
                );
            }
            for addr in u.addrs.iter() {
                if let Err(e) = parse_backend(addr) {
                    self.err(Kind::Upstreams, name, "addrs", e);
                }
            }
            if let Err(e) = parse_algo(u.algo.as_deref()) {
                self.err(Kind::Upstreams, name, "algo", e);
            }
            if let Some(hc) = &u.health_check {
                if let Err(e) = parse_health_check(hc) {
                    self.err(Kind::Upstreams, name, "health_check", e);
                }
            }
            let positive: [(&str, Option<Dur>); 5] = [
                ("connection_timeout", u.connection_timeout),
                ("total_connection_timeout", u.total_connection_timeout),
                ("read_timeout", u.read_timeout),
                ("write_timeout", u.write_timeout),
                ("dns_refresh", u.dns_refresh),
            ];
            for (key, value) in positive {
                if value.is_some_and(|d| d.0.is_zero()) {
                    self.err(Kind::Upstreams, name, key, "must be above 0");
                }
            }
            if let (Some(connect), Some(total)) = (u.connection_timeout, u.total_connection_timeout)
            {
                if total.0 < connect.0 {
                    let msg = format!("{total} is below connection_timeout ({connect})");
                    self.err(Kind::Upstreams, name, "total_connection_timeout", msg);
                }
            }
        }
    }

    fn plugins(&mut self) {
        for (name, p) in &self.config.plugins {
            match check_plugin(p) {
                Ok(upstreams) => {
                    for (key, upstream) in upstreams {
                        if !upstream.is_empty() && !self.exists(Kind::Upstreams, &upstream) {
                            let msg = self.missing(Kind::Upstreams, "upstream", &upstream);
                            self.err(Kind::Plugins, name, key, msg);
                        }
                    }
                }
                Err(problems) => {
                    for (key, message) in problems {
                        self.err(Kind::Plugins, name, key.as_deref().unwrap_or(""), message);
                    }
                }
            }
        }
    }

    fn certificates(&mut self) {
        let mut default: Option<&str> = None;
        for (name, c) in &self.config.certificates {
            if let Some(acme) = &c.acme {
                if !ACME_PROVIDERS.contains(&acme.as_str()) {
                    let msg = format!(
                        "unknown ACME provider {acme:?}; only \"lets_encrypt\" is supported"
                    );
                    self.err(Kind::Certificates, name, "acme", msg);
                }
                if c.domains.is_empty() {
                    self.err(
                        Kind::Certificates,
                        name,
                        "domains",
                        "acme needs the domains to obtain a certificate for",
                    );
                }
            }
            if let Some(dir) = &c.acme_directory {
                if !(dir.starts_with("https://") || dir.starts_with("http://")) {
                    self.err(
                        Kind::Certificates,
                        name,
                        "acme_directory",
                        "must be an https:// URL",
                    );
                }
            }
            // With ACME the pair may be absent (not obtained yet); once present it must be sound.
            if c.acme.is_none() || c.tls_cert.is_some() || c.tls_key.is_some() {
                let unless = if c.acme.is_none() {
                    " unless acme is set"
                } else {
                    ""
                };
                match (&c.tls_cert, &c.tls_key) {
                    (Some(_), Some(_)) => {
                        if let Err((key, e)) = load_keyed(c, self.cert_source) {
                            self.err(Kind::Certificates, name, key, e);
                        }
                    }
                    (cert, key) => {
                        if cert.is_none() {
                            let msg = format!("is required (PEM text or a file path){unless}");
                            self.err(Kind::Certificates, name, "tls_cert", msg);
                        }
                        if key.is_none() {
                            let msg = format!("is required (PEM text or a file path){unless}");
                            self.err(Kind::Certificates, name, "tls_key", msg);
                        }
                    }
                }
            }
            for domain in c.domains.iter() {
                if let Err(e) = check_domain(domain) {
                    self.err(Kind::Certificates, name, "domains", e);
                }
            }
            if c.is_default {
                match default {
                    Some(first) => {
                        let msg = format!("certificates.{first} is already the default");
                        self.err(Kind::Certificates, name, "is_default", msg);
                    }
                    None => default = Some(name),
                }
            }
        }
    }
}

fn not_socket_addr(addr: &str) -> String {
    format!("{addr:?} is not a socket address; write e.g. \"0.0.0.0:80\" or \"[::]:80\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;
    use crate::loader::parse_text;
    use std::path::Path;

    /// Every validation error of a TOML text, as displayed (file `v.toml`).
    fn errors(text: &str) -> Vec<String> {
        let loaded = parse_text(text, Format::Toml, Some(Path::new("v.toml"))).unwrap();
        match validate(&loaded.config, &loaded.sources) {
            Ok(()) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_errors(text: &str, expected: &[&str]) {
        let mut got = errors(text);
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
    }

    const BACKEND: &str = "[upstreams.u]\naddrs = \"127.0.0.1:1\"\n";

    #[test]
    fn since_a_valid_config_changed_locations_and_every_reference_are_checked() {
        let valid_text = format!(
            "{BACKEND}[upstreams.v]\naddrs = \"127.0.0.1:2\"\n\
             [locations.a]\npath = \"~^/(?<x>[a-z]+)$\"\nupstream = \"$x\"\n\
             [locations.b]\npath = \"/b\"\nupstream = \"v\"\n"
        );
        let valid = parse_text(&valid_text, Format::Toml, None).unwrap().config;
        validate(&valid, &SourceMap::default()).unwrap();
        let check =
            |config: &Config| match validate_since(config, &SourceMap::default(), Some(&valid)) {
                Ok(()) => Vec::new(),
                Err(e) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            };
        assert_eq!(check(&valid), Vec::<String>::new());
        // A changed location is checked whole; an unchanged one still has its references
        // checked: upstream v is gone.
        let mut changed = valid.clone();
        changed.locations.get_mut("a").unwrap().path = Some("~([".into());
        changed.upstreams.remove("v");
        let got = check(&changed);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter()
                .any(|e| e.starts_with("locations.a: key \"path\"")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|e| e.starts_with("locations.a: key \"upstream\"")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|e| e.contains("unknown upstream \"v\"")),
            "{got:?}"
        );
        // The same errors as a full validation.
        let full: Vec<String> = validate(&changed, &SourceMap::default())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, full);
    }

    #[test]
    fn servers() {
        let text = r#"[servers.a]
locations = "lo"
[servers.b]
addr = "0.0.0.0:80, [::]:80, 0.0.0.0:80, localhost:80"
locations = "l0"
threads = 0
tls = true
tls_min_version = "tls1.3"
tls_max_version = "tls1.2"
access_log = "combinde"
metrics = "stats"
[servers.c]
addr = "[::]:80"
max_connections = 0
client_header_timeout = "0s"
keepalive_timeout = "0s"
[locations.lo]
"#;
        assert_errors(
            text,
            &[
                "v.toml:1: servers.a: key \"addr\": no listen address; write e.g. \"0.0.0.0:80\"",
                "v.toml:4: servers.b: key \"addr\": 0.0.0.0:80 is listed twice",
                "v.toml:4: servers.b: key \"addr\": \"localhost:80\" is not a socket address; write e.g. \"0.0.0.0:80\" or \"[::]:80\"",
                "v.toml:5: servers.b: key \"locations\": unknown location \"l0\" (did you mean \"lo\"?)",
                "v.toml:6: servers.b: key \"threads\": must be at least 1",
                "v.toml:7: servers.b: key \"tls\": tls = true but there are no certificates; add a [certificates.<name>] item",
                "v.toml:8: servers.b: key \"tls_min_version\": is above tls_max_version",
                "v.toml:10: servers.b: key \"access_log\": unknown access_log preset \"combinde\" (did you mean \"combined\"?)",
                "v.toml:11: servers.b: key \"metrics\": path \"stats\" must start with '/'",
                "v.toml:13: servers.c: key \"addr\": [::]:80 is also the listen address of servers.b",
                "v.toml:14: servers.c: key \"max_connections\": must be at least 1",
                "v.toml:15: servers.c: key \"client_header_timeout\": must be above 0",
            ],
        );
    }

    #[test]
    fn locations() {
        let text = format!(
            r#"{BACKEND}[plugins.p]
category = "ping"
path = "/ping"
[locations.host_var]
host = "~^(?<tenant>[a-z]+)\\.a\\.com$"
upstream = "$tenant"
[locations.path_var]
path = "~^/(?<svc>[a-z]+)/"
upstream = "${{svc}}"
[locations.rewrite_var]
rewrite = "^/(?<up>[a-z]+)/(.*)$ /$2"
upstream = "$up"
[locations.bad]
host = "a.com, ~(["
path = "~(["
rewrite = "one two three"
upstream = "$nothing"
proxy_set_headers = ["X-A 1"]
proxy_add_headers = ["Bad Name: 1"]
response_headers = [": empty"]
plugins = "p, q"
max_processing = 0
[locations.empty_upstream]
upstream = " "
plugins = "p"
[locations.bad_variable]
response_headers = ["X-T: ${{tenant"]
"#
        );
        assert_errors(
            &text,
            &[
                "v.toml:16: locations.bad: key \"host\": host regex \"([\" does not compile: unclosed character class",
                "v.toml:17: locations.bad: key \"path\": path regex \"([\" does not compile: unclosed character class",
                "v.toml:18: locations.bad: key \"rewrite\": rewrite \"one two three\" must be \"<regex> <replacement>\" (two parts separated by a space)",
                "v.toml:19: locations.bad: key \"upstream\": \"$nothing\" names no variable: the host, path and rewrite regexes have no named capture (?<nothing>...)",
                "v.toml:20: locations.bad: key \"proxy_set_headers\": header \"X-A 1\" must be written \"Name: value\"",
                "v.toml:21: locations.bad: key \"proxy_add_headers\": invalid header name \"Bad Name\" in \"Bad Name: 1\"",
                "v.toml:22: locations.bad: key \"response_headers\": invalid header name \"\" in \": empty\"",
                "v.toml:23: locations.bad: key \"plugins\": unknown plugin \"q\": there is no plugins.q",
                "v.toml:24: locations.bad: key \"max_processing\": must be at least 1",
                "v.toml:26: locations.empty_upstream: key \"upstream\": is empty; omit it or name an upstream",
                "v.toml:29: locations.bad_variable: key \"response_headers\": unclosed \"${\" in \"${tenant\"",
            ],
        );
    }

    #[test]
    fn upstreams() {
        let text = r#"[upstreams.empty]
algo = "hash:header:"
[upstreams.bad]
addrs = ["10.0.0.1:80 0", "[::1]:80", "https://api.example.com"]
health_check = "http://x/h?interval=0s"
connection_timeout = "3s"
total_connection_timeout = "1s"
read_timeout = "0s"
write_timeout = "1s"
dns_refresh = "0s"
idle_timeout = "0s"
[upstreams.good]
addrs = "a.internal:80 2, 10.0.0.2:80"
algo = "hash:cookie:sid"
health_check = "tcp://?interval=1s"
"#;
        assert_errors(
            text,
            &[
                "v.toml:1: upstreams.empty: key \"addrs\": no backend address; write e.g. [\"127.0.0.1:8000\"]",
                "v.toml:2: upstreams.empty: key \"algo\": algo \"hash:header:\" needs a header name, e.g. \"hash:header:X-User\"",
                "v.toml:4: upstreams.bad: key \"addrs\": backend weight \"0\" in \"10.0.0.1:80 0\" must be a positive integer",
                "v.toml:5: upstreams.bad: key \"health_check\": health_check interval must be above 0",
                "v.toml:7: upstreams.bad: key \"total_connection_timeout\": 1s is below connection_timeout (3s)",
                "v.toml:8: upstreams.bad: key \"read_timeout\": must be above 0",
                "v.toml:10: upstreams.bad: key \"dns_refresh\": must be above 0",
            ],
        );
    }

    #[test]
    fn plugins() {
        let text = r#"[plugins.m]
category = "mock"
status = 42
headers = "nocolon"
[plugins.x]
category = "compresion"
[plugins.none]
path = "/"
"#;
        // Every built-in category is listed, in registry order (not spelled out here, so that
        // adding a plugin does not change this test).
        let known = crate::plugins::categories().join(", ");
        assert!(known.starts_with("ping, mock, request_id, "), "{known}");
        assert_errors(
            text,
            &[
                "v.toml:3: plugins.m: key \"status\": 42 is not an HTTP status (100-599)",
                "v.toml:4: plugins.m: key \"headers\": header \"nocolon\" must be written \"Name: value\"",
                "v.toml:6: plugins.x: key \"category\": unknown plugin category \"compresion\" (did you mean \"compression\"?)",
                &format!("v.toml:7: plugins.none: key \"category\": is required; one of {known}"),
            ],
        );
    }

    #[test]
    fn certificates() {
        let dir = tempfile::tempdir().unwrap();
        let write_pair = |name: &str, host: &str| {
            let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
            let (c, k) = (
                dir.path().join(format!("{name}.crt")),
                dir.path().join(format!("{name}.key")),
            );
            std::fs::write(&c, ck.cert.pem()).unwrap();
            std::fs::write(&k, ck.key_pair.serialize_pem()).unwrap();
            (c.display().to_string(), k.display().to_string())
        };
        let (a_crt, a_key) = write_pair("a", "a.com");
        let (_, b_key) = write_pair("b", "b.com");
        let text = format!(
            r#"[certificates.good]
tls_cert = "{a_crt}"
tls_key = "{a_key}"
is_default = true
domains = "a.com, *.a.com"
[certificates.mismatch]
tls_cert = "{a_crt}"
tls_key = "{b_key}"
is_default = true
[certificates.half]
tls_cert = "{a_crt}"
domains = ["bad..name"]
[certificates.acme_ok]
acme = "lets_encrypt"
domains = "x.com"
acme_directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
[certificates.acme_bad]
acme = "zerossl"
acme_directory = "ftp://x"
[servers.s]
addr = "0.0.0.0:443"
tls = true
"#
        );
        assert_errors(
            &text,
            &[
                "v.toml:8: certificates.mismatch: key \"tls_key\": tls_key does not match the certificate in tls_cert",
                "v.toml:9: certificates.mismatch: key \"is_default\": certificates.good is already the default",
                "v.toml:10: certificates.half: key \"tls_key\": is required (PEM text or a file path) unless acme is set",
                "v.toml:12: certificates.half: key \"domains\": \"bad..name\" is not a valid domain name (e.g. \"a.com\" or \"*.a.com\")",
                "v.toml:18: certificates.acme_bad: key \"acme\": unknown ACME provider \"zerossl\"; only \"lets_encrypt\" is supported",
                "v.toml:17: certificates.acme_bad: key \"domains\": acme needs the domains to obtain a certificate for",
                "v.toml:19: certificates.acme_bad: key \"acme_directory\": must be an https:// URL",
            ],
        );
    }

    #[test]
    fn basic() {
        let text = r#"[basic]
trusted_proxies = "10.0.0.0/8, 192.168.1.1, ::1, 10.0.0.0/33, proxy.local"
log_level = "verbose"
admin_addr = "localhost:9000"
threads = 0
[basic.webhook]
type = "teams"
"#;
        assert_errors(
            text,
            &[
                "v.toml:2: basic: key \"trusted_proxies\": \"10.0.0.0/33\" is neither an IP address nor a CIDR (e.g. \"10.0.0.0/8\")",
                "v.toml:2: basic: key \"trusted_proxies\": \"proxy.local\" is neither an IP address nor a CIDR (e.g. \"10.0.0.0/8\")",
                "v.toml:3: basic: key \"log_level\": unknown log level \"verbose\"; one of error, warn, info, debug, trace",
                "v.toml:4: basic: key \"admin_addr\": \"localhost:9000\" is not a socket address; write e.g. \"0.0.0.0:80\" or \"[::]:80\"",
                "v.toml:5: basic: key \"threads\": must be at least 1",
                "v.toml:6: basic: key \"webhook.url\": is required",
                "v.toml:7: basic: key \"webhook.type\": unknown webhook type \"teams\"; one of json, slack, wecom, dingtalk, feishu",
            ],
        );
        let ok = "[basic]\nlog_level = \"INFO\"\nadmin_addr = \"127.0.0.1:9000\"\n[basic.webhook]\nurl = \"https://hooks.slack.com/x\"\ntype = \"slack\"\n";
        assert_errors(ok, &[]);
    }

    #[test]
    fn without_sources_errors_name_item_and_key_only() {
        let mut config = Config::default();
        config.servers.insert("s".into(), Default::default());
        let e = validate(&config, &SourceMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "servers.s: key \"addr\": no listen address; write e.g. \"0.0.0.0:80\""
        );
    }

    #[test]
    fn summaries() {
        let text = format!("{BACKEND}[upstreams.v]\naddrs = \"127.0.0.1:2\"\n[plugins.p]\ncategory = \"ping\"\npath = \"/p\"\n");
        let loaded = parse_text(&text, Format::Toml, None).unwrap();
        assert_eq!(
            summary(&loaded.config),
            "0 servers, 0 locations, 2 upstreams, 1 plugin, 0 certificates"
        );
    }
}
