//! `cors`: answers CORS preflights and adds the CORS headers to the responses for the
//! allowed origins.

use super::{PluginSpec, Problems};
use crate::patterns::parse_path;
use crate::values::{Dur, StrList};
use crate::vars::header_name;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `allow_origin` entry that reflects any well-formed request `Origin`.
pub const REFLECT_ORIGIN: &str = "$http_origin";

/// `cors` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct CorsOptions {
    /// The paths handled, location syntax: `/prefix`, `=/exact`, `~regex`; empty = all.
    pub path: String,
    /// `*`, origins (`https://a.com`, `http://localhost:3000`), or `$http_origin` (any).
    pub allow_origin: StrList,
    /// Methods a preflight may ask for; `*` (default) = the one asked.
    pub allow_methods: StrList,
    /// Request headers a preflight may ask for; `*` (default) = those asked.
    pub allow_headers: StrList,
    /// Let the browser send cookies and credentials (never with `allow_origin = "*"`).
    pub allow_credentials: bool,
    /// Response headers the page may read (`Access-Control-Expose-Headers`).
    pub expose_headers: StrList,
    /// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`).
    pub max_age: Option<Dur>,
}

impl Default for CorsOptions {
    fn default() -> Self {
        let star = || StrList(vec!["*".into()]);
        CorsOptions {
            path: String::new(),
            allow_origin: star(),
            allow_methods: star(),
            allow_headers: star(),
            allow_credentials: false,
            expose_headers: StrList::default(),
            max_age: None,
        }
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, no path, lower case.
pub fn origin_ok(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]_".contains(&b));
    scheme_ok && authority_ok
}

fn check_names(key: &str, list: &StrList, valid: fn(&str) -> bool, problems: &mut Problems) {
    if list.iter().any(|n| n == "*") && list.0.len() > 1 {
        problems.push((Some(key.into()), "\"*\" must stand alone".into()));
    }
    for n in list.iter().filter(|n| *n != "*") {
        if !valid(n) {
            problems.push((Some(key.into()), format!("{n:?} is not a valid name")));
        }
    }
}

impl PluginSpec for CorsOptions {
    const CATEGORY: &'static str = "cors";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if let Err(e) = parse_path(Some(&self.path)) {
            problems.push((Some("path".into()), e));
        }
        let origins = &self.allow_origin;
        if origins.is_empty() {
            problems.push((Some("allow_origin".into()), "is empty".into()));
        }
        let special = |o: &String| o == "*" || o == REFLECT_ORIGIN;
        if origins.iter().any(special) && origins.0.len() > 1 {
            let msg = "\"*\" and \"$http_origin\" must stand alone";
            problems.push((Some("allow_origin".into()), msg.into()));
        }
        for o in origins.iter().filter(|o| !special(o)) {
            if !origin_ok(o) {
                let msg = format!(
                    "{o:?} is not an origin: \"scheme://host[:port]\", lower case, no path"
                );
                problems.push((Some("allow_origin".into()), msg));
            }
        }
        if self.allow_credentials && origins.iter().any(|o| o == "*") {
            let msg = "allow_credentials = true with allow_origin = \"*\": browsers refuse \
                       credentials for any origin; list the origins";
            problems.push((Some("allow_credentials".into()), msg.into()));
        }
        let method = |m: &str| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic());
        let header = |h: &str| header_name(h).is_some();
        check_names("allow_methods", &self.allow_methods, method, &mut problems);
        check_names("allow_headers", &self.allow_headers, header, &mut problems);
        check_names(
            "expose_headers",
            &self.expose_headers,
            header,
            &mut problems,
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn problems(json: serde_json::Value) -> Vec<String> {
        let serde_json::Value::Object(map) = json else {
            unreachable!("an object")
        };
        match decode::<CorsOptions>(&map) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|(k, _)| k.unwrap_or_default()).collect(),
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "https://a.com",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(origin_ok(ok), "{ok}");
        }
        for bad in [
            "null",
            "a.com",
            "https://a.com/",
            "https://A.com",
            "https://a.com, b",
            "",
        ] {
            assert!(!origin_ok(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_need_listed_origins() {
        let json = serde_json::json!({"allow_credentials": true});
        assert_eq!(
            problems(json),
            ["allow_credentials"],
            "the default origin is *"
        );
        let listed =
            serde_json::json!({"allow_credentials": true, "allow_origin": "https://a.com"});
        assert!(problems(listed).is_empty());
    }
}
