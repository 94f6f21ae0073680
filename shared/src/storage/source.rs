//! `-c` values: a config file, a directory of config files, or an etcd URL
//! `etcd://h1:2379,h2:2379/prefix?user=…&password=…&ca=…&cert=…&key=…&timeout=…`.
//!
//! The password is kept in a [`Secret`], which never shows in `Debug` or `Display`.

use crate::fields::unknown_message;
use crate::storage::keys::{normalize_prefix, DEFAULT_PREFIX};
use crate::values::parse_duration;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default timeout of one etcd request (and of connecting).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The options an `etcd://` URL accepts.
const OPTIONS: [&str; 6] = ["user", "password", "ca", "cert", "key", "timeout"];

/// Why a `-c` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The URL as a whole is malformed.
    #[error("etcd URL {url}: {message}")]
    Url {
        /// The URL, password redacted.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// One option of the URL is wrong.
    #[error("etcd URL {url}: option {option:?}: {message}")]
    Option {
        /// The URL, password redacted.
        url: String,
        /// The option's name.
        option: String,
        /// What is wrong.
        message: String,
    },
}

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// One config file (also used for a path that does not exist, so the loader reports it).
    File(PathBuf),
    /// A directory of config files, merged.
    Dir(PathBuf),
    /// An etcd cluster and prefix.
    Etcd(EtcdSpec),
}

impl ConfigSource {
    /// Parses a `-c` value: `etcd://…` is etcd; otherwise a directory if one exists there,
    /// else a file.
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        if text.starts_with("etcd://") {
            return EtcdSpec::parse(text).map(ConfigSource::Etcd);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(SourceError::Url {
                    url: redact_url(text),
                    message: format!("unknown scheme {scheme:?}; use etcd:// or a path"),
                });
            }
        }
        let path = PathBuf::from(text);
        Ok(if path.is_dir() {
            ConfigSource::Dir(path)
        } else {
            ConfigSource::File(path)
        })
    }

    /// The etcd spec, when the source is etcd.
    pub fn etcd(&self) -> Option<&EtcdSpec> {
        match self {
            ConfigSource::Etcd(spec) => Some(spec),
            _ => None,
        }
    }

    /// The path, when the source is a file or a directory.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::File(p) | ConfigSource::Dir(p) => Some(p),
            ConfigSource::Etcd(_) => None,
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) | ConfigSource::Dir(p) => write!(f, "{}", p.display()),
            ConfigSource::Etcd(spec) => spec.fmt(f),
        }
    }
}

/// A secret string (a password): shown as `***` in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for handing to the etcd client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// TLS files for the etcd connection (PEM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) used to verify the etcd servers (default: none, so `ca` is needed).
    pub ca: Option<PathBuf>,
    /// Client certificate, for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// Client private key, with `cert`.
    pub key: Option<PathBuf>,
}

/// A parsed `etcd://` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSpec {
    /// `host:port` of each etcd member.
    pub endpoints: Vec<String>,
    /// Key prefix, normalized: starts with `/`, no trailing `/` (default `/louailink`).
    pub prefix: String,
    /// User for etcd's auth.
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<Secret>,
    /// TLS, when any of `ca`, `cert`, `key` is given.
    pub tls: Option<TlsFiles>,
    /// Timeout of connecting and of each request.
    pub timeout: Duration,
}

impl EtcdSpec {
    /// A plain (no auth, no TLS) spec for `endpoints` and `prefix`.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Result<Self, SourceError> {
        let mut spec = EtcdSpec {
            endpoints,
            prefix: DEFAULT_PREFIX.to_string(),
            user: None,
            password: None,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
        };
        spec.prefix = normalize_prefix(prefix).map_err(|e| SourceError::Url {
            url: spec.to_string(),
            message: e.to_string(),
        })?;
        for endpoint in &spec.endpoints {
            check_endpoint(endpoint).map_err(|message| SourceError::Url {
                url: spec.to_string(),
                message,
            })?;
        }
        Ok(spec)
    }

    /// Parses `etcd://h1:2379,h2:2379/prefix?user=…&password=…&ca=…&cert=…&key=…&timeout=…`.
    /// Option values may be percent-encoded.
    pub fn parse(url: &str) -> Result<Self, SourceError> {
        let shown = redact_url(url);
        let url_err = |message: String| SourceError::Url {
            url: shown.clone(),
            message,
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| url_err("must start with etcd://".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if hosts.is_empty() {
            return Err(url_err("no etcd endpoint; write etcd://host:2379".into()));
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            check_endpoint(host).map_err(&url_err)?;
            endpoints.push(host.to_string());
        }
        let prefix = if path.trim_matches('/').is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            let decoded = percent_decode(path).map_err(&url_err)?;
            normalize_prefix(&decoded).map_err(|e| url_err(e.to_string()))?
        };
        let mut spec = EtcdSpec {
            endpoints,
            prefix,
            user: None,
            password: None,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
        };
        let mut seen: Vec<String> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let opt_err = |message: String| SourceError::Option {
                url: shown.clone(),
                option: name.to_string(),
                message,
            };
            if !OPTIONS.contains(&name) {
                return Err(opt_err(unknown_message("option", name, &OPTIONS)));
            }
            if seen.iter().any(|s| s == name) {
                return Err(opt_err("given twice".into()));
            }
            seen.push(name.to_string());
            let value = percent_decode(raw).map_err(&opt_err)?;
            if value.is_empty() {
                return Err(opt_err("has no value".into()));
            }
            let tls = || spec.tls.clone().unwrap_or_default();
            match name {
                "user" => spec.user = Some(value),
                "password" => spec.password = Some(Secret(value)),
                "ca" => {
                    spec.tls = Some(TlsFiles {
                        ca: Some(value.into()),
                        ..tls()
                    })
                }
                "cert" => {
                    spec.tls = Some(TlsFiles {
                        cert: Some(value.into()),
                        ..tls()
                    })
                }
                "key" => {
                    spec.tls = Some(TlsFiles {
                        key: Some(value.into()),
                        ..tls()
                    })
                }
                _ => {
                    spec.timeout = parse_duration(&value).map_err(&opt_err)?;
                    if spec.timeout.is_zero() {
                        return Err(opt_err("must be above 0".into()));
                    }
                }
            }
        }
        match (&spec.user, &spec.password) {
            (Some(_), None) => return Err(url_err("user is given without password".into())),
            (None, Some(_)) => return Err(url_err("password is given without user".into())),
            _ => {}
        }
        if let Some(tls) = &spec.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return Err(url_err(
                    "cert and key must be given together (client certificate)".into(),
                ));
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for EtcdSpec {
    /// The URL form, with the password shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd://{}{}", self.endpoints.join(","), self.prefix)?;
        let mut opts: Vec<String> = Vec::new();
        if let Some(user) = &self.user {
            opts.push(format!("user={}", percent_encode(user)));
        }
        if self.password.is_some() {
            opts.push("password=***".into());
        }
        if let Some(tls) = &self.tls {
            for (name, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                if let Some(p) = path {
                    opts.push(format!(
                        "{name}={}",
                        percent_encode(&p.display().to_string())
                    ));
                }
            }
        }
        if self.timeout != DEFAULT_TIMEOUT {
            opts.push(format!("timeout={}", crate::values::Dur(self.timeout)));
        }
        if !opts.is_empty() {
            write!(f, "?{}", opts.join("&"))?;
        }
        Ok(())
    }
}

/// Checks one `host:port` (or `[v6]:port`).
fn check_endpoint(host: &str) -> Result<(), String> {
    let Some((name, port)) = host.rsplit_once(':') else {
        return Err(format!("endpoint {host:?} has no port; write host:2379"));
    };
    if name.is_empty() || name == "[]" {
        return Err(format!("endpoint {host:?} has no host"));
    }
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("endpoint {host:?}: {port:?} is not a port"));
    }
    if name.contains(['/', '@', ' ', '?', '#']) {
        return Err(format!("endpoint {host:?} is not host:port"));
    }
    Ok(())
}

/// Replaces the value of `password=` in a URL by `***`, for error messages.
fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| {
            if p.starts_with("password=") {
                "password=***".to_string()
            } else {
                p.to_string()
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// Decodes `%XX` escapes (UTF-8); `+` stays `+`.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad %-escape; write %XX with two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes do not form UTF-8 text".to_string())
}

/// Escapes what would break the URL form (`%`, `&`, `=`, `?`, `#`, space).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | '&' | '=' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let url = "etcd://10.0.0.1:2379,[::1]:2379/fleet/a/?user=lou&password=p%26w%3D1&ca=/etc/ca.pem&cert=/c.pem&key=/k.pem&timeout=2s";
        let ConfigSource::Etcd(spec) = ConfigSource::parse(url).unwrap() else {
            panic!("not etcd")
        };
        assert_eq!(spec.endpoints, ["10.0.0.1:2379", "[::1]:2379"]);
        assert_eq!(spec.prefix, "/fleet/a");
        assert_eq!(spec.user.as_deref(), Some("lou"));
        assert_eq!(spec.password.as_ref().map(Secret::expose), Some("p&w=1"));
        let tls = spec.tls.clone().unwrap();
        assert_eq!(tls.ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(tls.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(tls.key, Some(PathBuf::from("/k.pem")));
        assert_eq!(spec.timeout, Duration::from_secs(2));
        let shown = format!("{spec} {spec:?}");
        assert!(
            !shown.contains("p&w") && !shown.contains("p%26w"),
            "{shown}"
        );
        assert!(shown.contains("password=***"), "{shown}");
        // Display round-trips (except the password).
        let again = EtcdSpec::parse(&spec.to_string()).unwrap();
        assert_eq!(again.endpoints, spec.endpoints);
        assert_eq!((again.prefix, again.timeout), (spec.prefix, spec.timeout));
    }

    #[test]
    fn defaults() {
        let spec = EtcdSpec::parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(spec.prefix, "/louailink");
        assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
        assert!(spec.tls.is_none() && spec.user.is_none());
        assert_eq!(spec.to_string(), "etcd://127.0.0.1:2379/louailink");
        assert_eq!(EtcdSpec::parse("etcd://h:1/").unwrap().prefix, "/louailink");
    }

    #[test]
    fn paths() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(
            ConfigSource::parse(d).unwrap(),
            ConfigSource::Dir(dir.path().into())
        );
        let f = format!("{d}/missing.toml");
        assert_eq!(
            ConfigSource::parse(&f).unwrap(),
            ConfigSource::File(f.clone().into())
        );
        assert!(ConfigSource::parse("http://x:1").is_err());
    }

    #[test]
    fn errors_are_clear_and_redacted() {
        let cases = [
            ("etcd://", "no etcd endpoint"),
            ("etcd://host/x", "has no port"),
            ("etcd://host:99999", "is not a port"),
            (
                "etcd://h:1?usr=a",
                "unknown option (did you mean \"user\"?)",
            ),
            ("etcd://h:1?user=a", "without password"),
            ("etcd://h:1?password=secret", "without user"),
            ("etcd://h:1?cert=/c", "together"),
            ("etcd://h:1?timeout=soon", "invalid duration"),
            ("etcd://h:1?timeout=0s", "above 0"),
            ("etcd://h:1?user=a&user=b&password=x", "given twice"),
            ("etcd://h:1?password=%zz&user=a", "bad %-escape"),
            ("etcd://h:1/a//b", "prefix"),
        ];
        for (url, want) in cases {
            let e = EtcdSpec::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("secret"), "{url}: {e}");
        }
    }
}
