//! A compiled location: patterns, rewrite, header rules, plugins and limits.

use crate::counters::{self, Counters};
use crate::plugins::{builtin, Chain, Plugin};
use crate::upstream::Upstream;
use louailink_shared::patterns::{self, compile_regex, HostPattern, PathPattern};
use louailink_shared::LocationConf;
use regex::Regex;
use std::collections::HashMap;
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
    /// The rewrite regex, whose named groups are captures too.
    rewrite: Option<Regex>,
    /// The configured plugins, in order (to tell whether a rebuilt plugin is still ours).
    plugins: Vec<Arc<dyn Plugin>>,
    /// Built-in and configured plugins by phase.
    pub chain: Chain,
    /// Explicit priority.
    pub weight: i32,
    /// Connect retries on another backend.
    pub max_retries: u32,
    /// Time window for retries.
    pub max_retry_window: Option<Duration>,
    /// Named captures of host/path/rewrite regexes are needed by headers or the upstream.
    pub needs_captures: bool,
    /// Its requests, by name: a rebuilt location of the same name keeps counting on them.
    pub counters: Arc<Counters>,
    /// Bytes of the path its prefix pattern matched (0 for other patterns), told to plugins
    /// that map the rest of the path (e.g. `directory`).
    pub prefix_len: usize,
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
        let builtins = builtin::compile(conf)?;
        let chain = Chain::new(
            builtins
                .before
                .iter()
                .chain(&plugins)
                .chain(&builtins.after),
        );
        let prefix_len = match &path {
            PathMatcher::Prefix(p) => p.len(),
            _ => 0,
        };
        let needs_captures = builtins.needs_captures
            || plugins.iter().any(|p| p.needs_captures())
            || matches!(upstream, UpstreamRef::Var(_));
        Ok(Location {
            name: Arc::from(name),
            conf: conf.clone(),
            hosts,
            path,
            upstream,
            rewrite: builtins.rewrite_captures,
            plugins,
            chain,
            weight: conf.weight.unwrap_or(0),
            max_retries: conf.max_retries.unwrap_or(0),
            max_retry_window: conf.max_retry_window.map(|d| d.0),
            needs_captures,
            counters: counters::location(name),
            prefix_len,
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
        if let Some(re) = &self.rewrite {
            take(re, path);
        }
    }
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
