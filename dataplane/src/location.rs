//! A compiled location: patterns, rewrite, header rules, plugins and limits.

use crate::plugins::Plugin;
use crate::upstream::Upstream;
use crate::vars::{compile_headers, HeaderRule};
use louailink_shared::patterns::{self, HostPattern, PathPattern};
use louailink_shared::LocationConf;
use regex::Regex;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// A compiled host pattern.
#[derive(Debug, Clone)]
pub enum HostMatcher {
    /// Lower-case exact host.
    Exact(String),
    /// Lower-case suffix including the leading dot (`.a.com`).
    Wildcard(String),
    /// Regex on the host.
    Regex(Regex),
}

/// A path regex. The router matches it (with the other regexes of its tier in one set);
/// the location keeps its own compiled copy only when the regex names groups whose captures
/// a request may read: a compiled regex costs several KiB, and most are only matched.
#[derive(Debug, Clone)]
pub struct PathRegex {
    /// The regex source.
    pub source: Arc<str>,
    /// The compiled regex, when it has named groups.
    pub named: Option<Regex>,
}

/// A compiled path pattern.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// Path equals.
    Exact(String),
    /// Regex on the path.
    Regex(PathRegex),
    /// Path starts with.
    Prefix(String),
    /// Any path.
    Any,
}

/// Where a location sends its requests.
pub enum UpstreamRef {
    /// No upstream: a plugin must answer, otherwise 503.
    None,
    /// A named upstream of the same snapshot.
    Fixed(Arc<Upstream>),
    /// Taken from a request variable at request time.
    Var(Arc<str>),
}

/// A compiled location.
pub struct Location {
    /// Item name.
    pub name: Arc<str>,
    /// The config it was built from.
    pub conf: LocationConf,
    /// Host patterns (empty = any host).
    pub hosts: Vec<HostMatcher>,
    /// Path pattern.
    pub path: PathMatcher,
    /// Upstream.
    pub upstream: UpstreamRef,
    /// Path rewrite: regex and replacement.
    pub rewrite: Option<(Regex, String)>,
    /// Headers set on the upstream request.
    pub proxy_set_headers: Vec<HeaderRule>,
    /// Headers appended to the upstream request.
    pub proxy_add_headers: Vec<HeaderRule>,
    /// Headers set on the response.
    pub response_headers: Vec<HeaderRule>,
    /// Plugins, in order.
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Explicit priority.
    pub weight: i32,
    /// Largest request body.
    pub client_max_body_size: Option<u64>,
    /// In-flight limit.
    pub max_processing: Option<u64>,
    /// In-flight requests now.
    pub processing: AtomicU64,
    /// Connect retries on another backend.
    pub max_retries: u32,
    /// Time window for retries.
    pub max_retry_window: Option<Duration>,
    /// Add X-Forwarded-* and X-Real-IP.
    pub reverse_proxy_headers: bool,
    /// Named captures of host/path/rewrite regexes are needed by headers or the upstream.
    pub needs_captures: bool,
    /// A header value uses `$request_id`.
    pub needs_request_id: bool,
}

impl Location {
    /// Compiles a location; references are resolved against the snapshot being built.
    pub fn compile(
        name: &str,
        conf: &LocationConf,
        upstreams: &HashMap<String, Arc<Upstream>>,
        plugins: &HashMap<String, Arc<dyn Plugin>>,
    ) -> Result<Self, String> {
        let hosts = match conf.host.as_deref() {
            None => Vec::new(),
            Some(h) => patterns::parse_hosts(h)?
                .into_iter()
                .map(|p| {
                    Ok(match p {
                        HostPattern::Exact(h) => HostMatcher::Exact(h),
                        HostPattern::Wildcard(s) => HostMatcher::Wildcard(s),
                        HostPattern::Regex(r) => HostMatcher::Regex(compile_regex(&r)?),
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let path = match patterns::parse_path(conf.path.as_deref())? {
            PathPattern::Exact(p) => PathMatcher::Exact(p),
            PathPattern::Regex(r) => PathMatcher::Regex(PathRegex {
                named: (!patterns::capture_names(&r).is_empty())
                    .then(|| compile_regex(&r))
                    .transpose()?,
                source: r.into(),
            }),
            PathPattern::Prefix(p) => PathMatcher::Prefix(p),
            PathPattern::Any => PathMatcher::Any,
        };
        let rewrite = match conf.rewrite.as_deref() {
            None => None,
            Some(r) => {
                let r = patterns::parse_rewrite(r)?;
                Some((compile_regex(&r.regex)?, r.replacement))
            }
        };
        let upstream = match conf.upstream.as_deref().map(str::trim) {
            None | Some("") => UpstreamRef::None,
            Some(v) => match v.strip_prefix('$') {
                Some(var) => {
                    UpstreamRef::Var(Arc::from(var.trim_matches(|c| c == '{' || c == '}')))
                }
                None => UpstreamRef::Fixed(
                    upstreams
                        .get(v)
                        .cloned()
                        .ok_or_else(|| format!("upstream {v:?} does not exist"))?,
                ),
            },
        };
        let plugins = conf
            .plugins
            .iter()
            .map(|p| {
                plugins
                    .get(p)
                    .cloned()
                    .ok_or_else(|| format!("plugin {p:?} does not exist"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let proxy_set_headers = compile_headers(&conf.proxy_set_headers.0)?;
        let proxy_add_headers = compile_headers(&conf.proxy_add_headers.0)?;
        let response_headers = compile_headers(&conf.response_headers.0)?;
        let rewrite_outer = rewrite
            .as_ref()
            .is_some_and(|(re, rep)| !crate::vars::outer_vars(rep, re).is_empty());
        let needs_captures = rewrite_outer
            || matches!(upstream, UpstreamRef::Var(_))
            || [&proxy_set_headers, &proxy_add_headers, &response_headers]
                .iter()
                .any(|rules| rules.iter().any(|r| r.value.uses_captures()));
        let needs_request_id = [&proxy_set_headers, &proxy_add_headers, &response_headers]
            .iter()
            .any(|rules| rules.iter().any(|r| r.value.uses_request_id()));
        Ok(Location {
            name: Arc::from(name),
            conf: conf.clone(),
            hosts,
            path,
            upstream,
            rewrite,
            proxy_set_headers,
            proxy_add_headers,
            response_headers,
            plugins,
            weight: conf.weight.unwrap_or(0),
            client_max_body_size: conf.client_max_body_size.map(|s| s.0),
            max_processing: conf.max_processing,
            processing: AtomicU64::new(0),
            max_retries: conf.max_retries.unwrap_or(0),
            max_retry_window: conf.max_retry_window.map(|d| d.0),
            reverse_proxy_headers: conf.enable_reverse_proxy_headers,
            needs_captures,
            needs_request_id,
        })
    }

    /// True when this location's upstream and plugins are the very objects in these maps.
    pub fn same_references(
        &self,
        upstreams: &HashMap<String, Arc<Upstream>>,
        plugins: &HashMap<String, Arc<dyn Plugin>>,
    ) -> bool {
        let upstream_same = match (&self.upstream, self.conf.upstream.as_deref()) {
            (UpstreamRef::Fixed(u), Some(name)) => upstreams
                .get(name.trim())
                .is_some_and(|n| Arc::ptr_eq(n, u)),
            _ => true,
        };
        upstream_same
            && self
                .conf
                .plugins
                .iter()
                .zip(&self.plugins)
                .all(|(name, p)| plugins.get(name).is_some_and(|n| Arc::ptr_eq(n, p)))
    }

    /// Named captures of the matching host regex, path regex and rewrite regex.
    pub fn captures(
        &self,
        host_pattern: u16,
        host: &str,
        path: &str,
        out: &mut Vec<(Arc<str>, String)>,
    ) {
        let mut take = |re: &Regex, text: &str| {
            if let Some(caps) = re.captures(text) {
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        out.push((Arc::from(name), m.as_str().to_string()));
                    }
                }
            }
        };
        if let Some(HostMatcher::Regex(re)) = self.hosts.get(host_pattern as usize) {
            take(re, host);
        }
        if let PathMatcher::Regex(PathRegex {
            named: Some(re), ..
        }) = &self.path
        {
            take(re, path);
        }
        if let Some((re, _)) = &self.rewrite {
            take(re, path);
        }
    }
}

/// Compiles a regex of the config (its syntax was checked by validation).
pub fn compile_regex(source: &str) -> Result<Regex, String> {
    Regex::new(source).map_err(|e| format!("regex {source:?} does not compile: {e}"))
}

/// A bare location for unit tests of the router.
#[cfg(test)]
pub fn test_location(name: &str, host: Option<&str>, path: Option<&str>, weight: i32) -> Location {
    let conf = LocationConf {
        host: host.map(String::from),
        path: path.map(String::from),
        weight: Some(weight),
        ..LocationConf::default()
    };
    Location::compile(name, &conf, &HashMap::new(), &HashMap::new()).expect("valid test location")
}
