//! `forward_auth`: asks an auth service about each request; a 2xx answer lets it on (with
//! chosen headers of the answer copied onto it), any other answer goes back to the client.

use super::{PluginSpec, Problems};
use crate::values::{Dur, StrList};
use crate::vars::header_name;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// `forward_auth` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct ForwardAuthOptions {
    /// The auth service (`http://` or `https://`); required.
    pub auth_url: String,
    /// Client request headers sent to the auth service (besides the `X-Forwarded-*` ones).
    pub request_headers: StrList,
    /// Headers of a 2xx answer copied onto the request that goes upstream.
    pub response_headers: StrList,
    /// How long the auth service may take (default 3s); longer is a 503.
    pub timeout: Dur,
}

impl Default for ForwardAuthOptions {
    fn default() -> Self {
        ForwardAuthOptions {
            auth_url: String::new(),
            request_headers: StrList::default(),
            response_headers: StrList::default(),
            timeout: Dur(Duration::from_secs(3)),
        }
    }
}

impl PluginSpec for ForwardAuthOptions {
    const CATEGORY: &'static str = "forward_auth";
    // The URL may carry a token (`https://auth/check?token=…`, or user:password@).
    const SECRETS: &'static [&'static str] = &["auth_url"];

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if let Err(e) = check_url(&self.auth_url) {
            problems.push((Some("auth_url".into()), e));
        }
        for (key, list) in [
            ("request_headers", &self.request_headers),
            ("response_headers", &self.response_headers),
        ] {
            for name in list.iter().filter(|n| header_name(n).is_none()) {
                problems.push((Some(key.into()), format!("{name:?} is not a header name")));
            }
        }
        if self.timeout.0.is_zero() {
            problems.push((Some("timeout".into()), "timeout must be above 0".into()));
        }
        problems
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("auth_url is required, e.g. \"http://127.0.0.1:9000/auth\"".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn bad_keys(json: Value) -> Vec<String> {
        crate::plugins::bad_keys::<ForwardAuthOptions>(json)
    }

    #[test]
    fn the_url_and_header_names_are_checked() {
        let json = serde_json::json!({
            "auth_url": "https://auth.test/check", "request_headers": "Cookie, Authorization"
        });
        let o: ForwardAuthOptions = decode(json.as_object().unwrap()).unwrap();
        assert_eq!(o.request_headers.0, ["Cookie", "Authorization"]);
        assert_eq!(o.timeout, Dur(Duration::from_secs(3)));
        assert_eq!(bad_keys(serde_json::json!({})), ["auth_url"]);
        for url in [
            "auth.test/check",
            "ftp://auth.test/",
            "http://",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                bad_keys(serde_json::json!({ "auth_url": url })),
                ["auth_url"],
                "{url}"
            );
        }
        assert_eq!(
            bad_keys(serde_json::json!({
                "auth_url": "http://a.test/", "request_headers": ["bad name"],
                "response_headers": ["X-User", "x:y"], "timeout": "0s"
            })),
            ["request_headers", "response_headers", "timeout"]
        );
    }
}
