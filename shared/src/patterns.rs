//! Typed forms of the string-valued keys whose syntax is ours: host and path patterns,
//! rewrite rules, backend addresses, selection algorithms and health checks. Validation and
//! the data plane both parse through here, so they never disagree.

use crate::values::parse_duration;
use crate::vars::Var;
use std::time::Duration;

/// Compiled-size limit of every regex of the config, in bytes: the data plane builds its
/// regexes with it (`RegexBuilder::size_limit`), and [`check_regex`] checks against it, so a
/// regex that passes validation always compiles. (The `regex` crate's own default.)
pub const REGEX_SIZE_LIMIT: usize = 10 * (1 << 20);

/// Checks a regex the way `regex::RegexBuilder` with [`REGEX_SIZE_LIMIT`] builds it: parses it
/// and builds its forward and reverse NFAs under the same size limit (the step that refuses
/// `(a{1000}){1000}`), skipping the matching engines the data plane adds on top. Sources that
/// passed are remembered ([`CHECKED`]). Returns the problem as one line (`unclosed group`).
pub fn check_regex(re: &str) -> Result<(), String> {
    use regex_automata::nfa::thompson::{Compiler, Config, WhichCaptures};
    let hir = parse_regex(re)?;
    let checked = CHECKED.get_or_init(Default::default);
    if checked.lock().is_ok_and(|set| set.contains(re)) {
        return Ok(());
    }
    let config = Config::new()
        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
        .shrink(false);
    let too_big = |e: regex_automata::nfa::thompson::BuildError| {
        format!("compiled regex exceeds the size limit of {REGEX_SIZE_LIMIT} bytes ({e})")
    };
    Compiler::new()
        .configure(config.clone())
        .build_from_hir(&hir)
        .map_err(too_big)?;
    Compiler::new()
        .configure(config.which_captures(WhichCaptures::None).reverse(true))
        .build_from_hir(&hir)
        .map_err(too_big)?;
    if let Ok(mut set) = checked.lock() {
        if set.len() >= CHECKED_MAX {
            set.clear();
        }
        set.insert(re.into());
    }
    Ok(())
}

/// Regex sources [`check_regex`] passed. Validation runs over the whole config on every
/// change, and building the NFAs (~17 µs a regex here) would add ~35 ms to each validation of
/// a 10,000-location config with 2,000 regexes (parsing alone takes ~6 ms).
static CHECKED: std::sync::OnceLock<std::sync::Mutex<ahash::AHashSet<Box<str>>>> =
    std::sync::OnceLock::new();

/// Most sources [`CHECKED`] remembers before it starts again.
const CHECKED_MAX: usize = 1 << 16;

/// Compiles a regex of the config under the size limit [`check_regex`] checked it against,
/// so a regex that passed validation always compiles.
pub fn compile_regex(source: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("regex {source:?} does not compile: {e}"))
}

fn parse_regex(re: &str) -> Result<regex_syntax::hir::Hir, String> {
    regex_syntax::Parser::new().parse(re).map_err(|e| {
        let report = e.to_string();
        report
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(&report)
            .to_string()
    })
}

/// The named capture groups of a regex (none when it does not parse).
pub fn capture_names(re: &str) -> Vec<String> {
    fn walk(hir: &regex_syntax::hir::Hir, out: &mut Vec<String>) {
        use regex_syntax::hir::HirKind;
        match hir.kind() {
            HirKind::Capture(c) => {
                if let Some(name) = &c.name {
                    out.push(name.to_string());
                }
                walk(&c.sub, out);
            }
            HirKind::Repetition(r) => walk(&r.sub, out),
            HirKind::Concat(subs) | HirKind::Alternation(subs) => {
                subs.iter().for_each(|h| walk(h, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(hir) = parse_regex(re) {
        walk(&hir, &mut out);
    }
    out
}

/// One entry of a location's `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// `a.com` (stored lower-case).
    Exact(String),
    /// `*.a.com`, stored as the suffix `.a.com` (lower-case).
    Wildcard(String),
    /// `~<regex>` (the regex source, without `~`).
    Regex(String),
}

/// Parses a `host` value into its patterns (comma separated).
pub fn parse_hosts(value: &str) -> Result<Vec<HostPattern>, String> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(if let Some(re) = part.strip_prefix('~') {
            check_regex(re).map_err(|e| format!("host regex {re:?} does not compile: {e}"))?;
            HostPattern::Regex(re.to_string())
        } else if let Some(suffix) = part.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!(
                    "invalid wildcard host {part:?}; write \"*.example.com\""
                ));
            }
            HostPattern::Wildcard(format!(".{}", suffix.to_ascii_lowercase()))
        } else {
            if part.contains('*') || part.contains('/') || part.contains(' ') {
                return Err(format!(
                    "invalid host {part:?}; use \"a.com\", \"*.a.com\" or \"~regex\""
                ));
            }
            HostPattern::Exact(part.to_ascii_lowercase())
        });
    }
    Ok(out)
}

/// A location's `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// `=/api`
    Exact(String),
    /// `~<regex>`
    Regex(String),
    /// `/api` (prefix)
    Prefix(String),
    /// absent or empty
    Any,
}

/// Parses a `path` value.
pub fn parse_path(value: Option<&str>) -> Result<PathPattern, String> {
    let v = value.map(str::trim).unwrap_or("");
    Ok(if v.is_empty() {
        PathPattern::Any
    } else if let Some(exact) = v.strip_prefix('=') {
        PathPattern::Exact(exact.trim().to_string())
    } else if let Some(re) = v.strip_prefix('~') {
        let re = re.trim();
        check_regex(re).map_err(|e| format!("path regex {re:?} does not compile: {e}"))?;
        PathPattern::Regex(re.to_string())
    } else {
        PathPattern::Prefix(v.to_string())
    })
}

/// A parsed `rewrite`: regex source and replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The regex applied to the path.
    pub regex: String,
    /// The replacement (`$1`, `$name`, `${name}`).
    pub replacement: String,
}

/// Parses `"<regex> <replacement>"`.
pub fn parse_rewrite(value: &str) -> Result<Rewrite, String> {
    let mut parts = value.split_whitespace();
    let (Some(re), replacement, None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "rewrite {value:?} must be \"<regex> <replacement>\" (two parts separated by a space)"
        ));
    };
    check_regex(re).map_err(|e| format!("rewrite regex {re:?} does not compile: {e}"))?;
    Ok(Rewrite {
        regex: re.to_string(),
        replacement: replacement.unwrap_or("").to_string(),
    })
}

/// One entry of `addrs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendAddr {
    /// `host:port` (an IP or a host name to resolve).
    pub host_port: String,
    /// Host part, without brackets.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Relative weight (default 1).
    pub weight: usize,
    /// Written as `https://...`.
    pub tls: bool,
}

/// Parses `"10.0.0.1:8001"`, `"10.0.0.1:8001 3"`, `"[::1]:80"`, `"https://api.example.com"`.
pub fn parse_backend(value: &str) -> Result<BackendAddr, String> {
    let mut parts = value.split_whitespace();
    let addr = parts.next().ok_or("empty backend address")?;
    let weight = match parts.next() {
        None => 1,
        Some(w) => w.parse::<usize>().ok().filter(|w| *w > 0).ok_or_else(|| {
            format!("backend weight {w:?} in {value:?} must be a positive integer")
        })?,
    };
    if parts.next().is_some() {
        return Err(format!(
            "backend {value:?} must be \"host:port\" or \"host:port weight\""
        ));
    }
    let (tls, rest, default_port) = if let Some(r) = addr.strip_prefix("https://") {
        (true, r, 443)
    } else if let Some(r) = addr.strip_prefix("http://") {
        (false, r, 80)
    } else {
        (false, addr, 0)
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("backend {value:?}: unclosed '['"))?;
        (h.to_string(), after.strip_prefix(':').unwrap_or(""))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (rest.to_string(), ""),
        }
    };
    let port = if port.is_empty() {
        if default_port == 0 {
            return Err(format!(
                "backend {value:?} has no port; write \"host:port\""
            ));
        }
        default_port
    } else {
        port.parse::<u16>()
            .map_err(|_| format!("backend {value:?} has an invalid port {port:?}"))?
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("backend {value:?} has an invalid host"));
    }
    let host_port = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(BackendAddr {
        host_port,
        host,
        port,
        weight,
        tls,
    })
}

/// Backend selection algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Weighted round robin.
    RoundRobin,
    /// Uniform random (weighted).
    Random,
    /// Fewest in-flight requests.
    LeastConn,
    /// Consistent hashing.
    Hash(Var),
}

/// Parses `algo`.
pub fn parse_algo(value: Option<&str>) -> Result<Algo, String> {
    let v = value.map(str::trim).unwrap_or("round_robin");
    let named = |rest: &str, what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!(
                "algo {v:?} needs a {what} name, e.g. \"hash:{what}:X-User\""
            ))
        } else {
            Ok(rest.to_string())
        }
    };
    Ok(match v {
        "" | "round_robin" | "rr" => Algo::RoundRobin,
        "random" => Algo::Random,
        "least_conn" => Algo::LeastConn,
        "hash:ip" => Algo::Hash(Var::ClientIp),
        "hash:path" => Algo::Hash(Var::Path),
        "hash:url" => Algo::Hash(Var::Uri),
        _ => {
            if let Some(h) = v.strip_prefix("hash:header:") {
                let name = named(h, "header")?;
                let header = crate::vars::header_name(&name)
                    .ok_or_else(|| format!("algo {v:?}: invalid header name {name:?}"))?;
                Algo::Hash(Var::RequestHeader(header))
            } else if let Some(c) = v.strip_prefix("hash:cookie:") {
                Algo::Hash(Var::Cookie(named(c, "cookie")?))
            } else if let Some(q) = v.strip_prefix("hash:query:") {
                Algo::Hash(Var::QueryParam(named(q, "query")?))
            } else {
                return Err(format!(
                    "unknown algo {v:?}; expected one of {}",
                    crate::model::ALGOS
                ));
            }
        }
    })
}

/// A parsed `health_check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// `Some((host_header, path_and_query))` for HTTP, `None` for TCP.
    pub http: Option<(String, String)>,
    /// Check period (default 3s).
    pub interval: Duration,
    /// Timeout of one check (default 1s).
    pub timeout: Duration,
    /// Consecutive successes to become healthy (default 1).
    pub success: usize,
    /// Consecutive failures to become unhealthy (default 1).
    pub failure: usize,
}

/// Parses `"http://host/path?interval=3s&timeout=1s&success=2&failure=3"` or `"tcp://?interval=3s"`.
pub fn parse_health_check(value: &str) -> Result<HealthCheck, String> {
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| format!("health_check {value:?} must start with http:// or tcp://"))?;
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut hc = HealthCheck {
        http: None,
        interval: Duration::from_secs(3),
        timeout: Duration::from_secs(1),
        success: 1,
        failure: 1,
    };
    let mut extra = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let count = || {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("health_check {k}={v:?} must be a positive integer"))
        };
        match k {
            "interval" => hc.interval = parse_duration(v)?,
            "timeout" | "connection_timeout" | "read_timeout" => hc.timeout = parse_duration(v)?,
            "success" => hc.success = count()?,
            "failure" => hc.failure = count()?,
            _ => extra.push(pair),
        }
    }
    if hc.interval.is_zero() {
        return Err("health_check interval must be above 0".into());
    }
    match scheme {
        "tcp" => {
            if !extra.is_empty() {
                return Err(format!(
                    "health_check: unknown option(s) {}",
                    extra.join("&")
                ));
            }
        }
        "http" | "https" => {
            let (host, path) = match target.find('/') {
                Some(i) => (&target[..i], &target[i..]),
                None => (target, "/"),
            };
            // Options that are not ours stay in the probe's query string.
            let path = if extra.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", extra.join("&"))
            };
            hc.http = Some((host.to_string(), path));
        }
        other => return Err(format!("health_check scheme {other:?} must be http or tcp")),
    }
    Ok(hc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_regex_refuses_exactly_what_the_compiler_refuses() {
        for (re, compiles) in [
            ("^/b(a{1000}){1000}$", false),
            ("^/b(a{100}){10}$", true),
            (r"^/api/v(?<ver>\d+)/(?<rest>.*)$", true),
            (r"\w{1000}", false),
            (r"\w{50}", true),
        ] {
            let checked = check_regex(re);
            assert_eq!(checked.is_ok(), compiles, "{re}: {checked:?}");
            assert_eq!(compile_regex(re).is_ok(), compiles, "{re}");
        }
        let e = check_regex("^/b(a{1000}){1000}$").unwrap_err();
        assert!(e.contains("size limit"), "{e}");
    }

    #[test]
    fn hosts_and_paths() {
        assert_eq!(
            parse_hosts("A.com, *.b.com,~^x$").unwrap(),
            vec![
                HostPattern::Exact("a.com".into()),
                HostPattern::Wildcard(".b.com".into()),
                HostPattern::Regex("^x$".into())
            ]
        );
        assert!(parse_hosts("~(").is_err());
        assert_eq!(
            parse_path(Some("=/a")).unwrap(),
            PathPattern::Exact("/a".into())
        );
        assert_eq!(
            parse_path(Some("/a")).unwrap(),
            PathPattern::Prefix("/a".into())
        );
        assert_eq!(parse_path(None).unwrap(), PathPattern::Any);
        assert!(parse_path(Some("~[")).is_err());
        assert_eq!(
            parse_path(Some("~^/(x")).unwrap_err(),
            "path regex \"^/(x\" does not compile: unclosed group"
        );
    }

    #[test]
    fn backends() {
        let b = parse_backend("10.0.0.1:8001 3").unwrap();
        assert_eq!((b.host_port.as_str(), b.weight), ("10.0.0.1:8001", 3));
        assert_eq!(parse_backend("[::1]:80").unwrap().host_port, "[::1]:80");
        assert!(parse_backend("https://api.x.com").unwrap().tls);
        assert!(parse_backend("10.0.0.1").is_err());
        assert!(parse_backend("10.0.0.1:99999").is_err());
        assert!(parse_backend("10.0.0.1:80 0").is_err());
    }

    #[test]
    fn algos_and_checks() {
        assert_eq!(
            parse_algo(Some("hash:header:X-User")).unwrap(),
            Algo::Hash(Var::RequestHeader("x-user".into()))
        );
        assert!(parse_algo(Some("hash:header:")).is_err());
        assert!(parse_algo(Some("fastest")).is_err());
        let hc = parse_health_check("http://up/healthz?interval=2s&failure=3").unwrap();
        assert_eq!(hc.http, Some(("up".into(), "/healthz".into())));
        assert_eq!((hc.interval, hc.failure), (Duration::from_secs(2), 3));
        assert!(parse_health_check("tcp://?interval=1s")
            .unwrap()
            .http
            .is_none());
        assert!(parse_health_check("ftp://x").is_err());
    }
}
