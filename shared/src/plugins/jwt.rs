//! `jwt`: a bearer JSON Web Token verified with a shared secret, a public key or a JWKS.

use super::{PluginSpec, Problems};
use crate::values::{Dur, StrList};
use crate::vars::header_name;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// `jwt` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct JwtOptions {
    /// The header holding the token (`Bearer ` is stripped); default `Authorization` when
    /// neither `cookie` nor `query` is set.
    pub header: String,
    /// A cookie holding the token.
    pub cookie: String,
    /// A query parameter holding the token.
    pub query: String,
    /// The HMAC secret (HS256/384/512; a secret: hashed in diffs, events and viewer reads).
    pub secret: String,
    /// `secret` is written in base64.
    pub base64_secret: bool,
    /// A PEM public key (RSA or EC P-256/P-384).
    pub public_key: String,
    /// Where the JSON Web Key Set is fetched (keys chosen by the token's `kid`).
    pub jwks_url: String,
    /// How old the fetched JWKS may grow before it is fetched again in the background.
    pub jwks_refresh: Dur,
    /// The accepted algorithms; empty = the one the key implies (HS256, RS256 or ES256).
    pub algorithms: StrList,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Dur,
    /// When set, the `iss` claim must be one of these.
    pub issuer: StrList,
    /// When set, the `aud` claim must hold one of these.
    pub audience: StrList,
    /// Claims copied onto the upstream request: claim name -> header name. Headers of these
    /// names sent by the client are always removed.
    pub claims_to_headers: BTreeMap<String, String>,
    /// Remove the token (header, cookie or query parameter) before the request goes upstream.
    pub hide_credentials: bool,
}

impl Default for JwtOptions {
    fn default() -> Self {
        JwtOptions {
            header: String::new(),
            cookie: String::new(),
            query: String::new(),
            secret: String::new(),
            base64_secret: false,
            public_key: String::new(),
            jwks_url: String::new(),
            jwks_refresh: Dur(Duration::from_secs(600)),
            algorithms: StrList::default(),
            leeway: Dur(Duration::from_secs(60)),
            issuer: StrList::default(),
            audience: StrList::default(),
            claims_to_headers: BTreeMap::new(),
            hide_credentials: false,
        }
    }
}

/// Where a `jwt` plugin's verifying keys come from.
pub enum JwtKeys {
    /// One fixed key (secret or public key) and the algorithms it may verify.
    Fixed(DecodingKey, Vec<Algorithm>),
    /// A JWKS at this URL; the algorithms accepted (empty = what each key names).
    Jwks(String, Vec<Algorithm>),
}

/// The algorithm families a key can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
}

fn family(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Some(Family::Hmac),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
        ES256 | ES384 => Some(Family::Ec),
        EdDSA => None,
    }
}

impl JwtOptions {
    /// The header to read: `header`, else `Authorization` unless a cookie or query is set.
    pub fn header_or_default(&self) -> Option<&str> {
        if !self.header.is_empty() {
            Some(&self.header)
        } else if self.cookie.is_empty() && self.query.is_empty() {
            Some("Authorization")
        } else {
            None
        }
    }

    /// The verifying keys, or the problems that keep them from being built.
    pub fn keys(&self) -> Result<JwtKeys, Problems> {
        let mut problems = Vec::new();
        let mut algorithms = Vec::new();
        for name in self.algorithms.iter() {
            match Algorithm::from_str(name) {
                Ok(a) if family(a).is_some() => algorithms.push(a),
                _ => problems.push((
                    Some("algorithms".into()),
                    format!("{name:?} is not one of HS256/384/512, RS256/384/512, PS256/384/512, ES256/384"),
                )),
            }
        }
        let sources = [
            !self.secret.is_empty(),
            !self.public_key.is_empty(),
            !self.jwks_url.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            let msg = "set exactly one of secret, public_key and jwks_url".into();
            problems.push((None, msg));
            return Err(problems);
        }
        let keys = if !self.secret.is_empty() {
            self.secret_key()
                .map(|k| JwtKeys::Fixed(k, or_default(algorithms, Algorithm::HS256, Family::Hmac)))
                .map_err(|msg| vec![(Some("secret".into()), msg)])
        } else if !self.public_key.is_empty() {
            public_key(&self.public_key)
                .map(|(k, fam)| {
                    let default = match fam {
                        Family::Rsa => Algorithm::RS256,
                        _ => Algorithm::ES256,
                    };
                    JwtKeys::Fixed(k, or_default(algorithms, default, fam))
                })
                .map_err(|msg| vec![(Some("public_key".into()), msg)])
        } else {
            check_url(&self.jwks_url)
                .map(|()| JwtKeys::Jwks(self.jwks_url.clone(), algorithms))
                .map_err(|msg| vec![(Some("jwks_url".into()), msg)])
        };
        match keys {
            Ok(JwtKeys::Fixed(_, ref algs)) if algs.is_empty() => {
                let msg = "no listed algorithm fits the key".into();
                problems.push((Some("algorithms".into()), msg));
                Err(problems)
            }
            Ok(keys) if problems.is_empty() => Ok(keys),
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                Err(problems)
            }
        }
    }

    fn secret_key(&self) -> Result<DecodingKey, String> {
        if self.base64_secret {
            DecodingKey::from_base64_secret(&self.secret)
                .map_err(|_| "secret is not valid base64".into())
        } else {
            Ok(DecodingKey::from_secret(self.secret.as_bytes()))
        }
    }
}

/// The listed algorithms that fit the key's family, or the family's default.
fn or_default(listed: Vec<Algorithm>, default: Algorithm, fam: Family) -> Vec<Algorithm> {
    if listed.is_empty() {
        return vec![default];
    }
    listed
        .into_iter()
        .filter(|a| family(*a) == Some(fam))
        .collect()
}

/// An RSA or EC public key in PEM.
fn public_key(pem: &str) -> Result<(DecodingKey, Family), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((key, Family::Rsa));
    }
    DecodingKey::from_ec_pem(pem.as_bytes())
        .map(|key| (key, Family::Ec))
        .map_err(|_| "not an RSA or EC public key in PEM".into())
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

impl PluginSpec for JwtOptions {
    const CATEGORY: &'static str = "jwt";
    const SECRETS: &'static [&'static str] = &["secret"];

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = self.keys().err().unwrap_or_default();
        if !self.header.is_empty() && header_name(&self.header).is_none() {
            let msg = format!("{:?} is not a header name", self.header);
            problems.push((Some("header".into()), msg));
        }
        for (key, value) in [("cookie", &self.cookie), ("query", &self.query)] {
            if value.contains(['&', '=', '#', ';', ' ', ',']) {
                let msg = format!("{value:?} is not a {key} name");
                problems.push((Some(key.into()), msg));
            }
        }
        for (claim, header) in &self.claims_to_headers {
            if header_name(header).is_none() {
                let msg = format!("claim {claim:?}: {header:?} is not a header name");
                problems.push((Some("claims_to_headers".into()), msg));
            }
        }
        if self.jwks_refresh.get() < Duration::from_secs(1) {
            let msg = "jwks_refresh must be at least 1s".into();
            problems.push((Some("jwks_refresh".into()), msg));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn problems(toml_text: &str) -> Vec<String> {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        let map = serde_json::to_value(table).unwrap();
        match decode::<JwtOptions>(map.as_object().unwrap()) {
            Ok(_) => vec![],
            Err(p) => p
                .into_iter()
                .map(|(k, m)| format!("{}: {m}", k.unwrap_or_default()))
                .collect(),
        }
    }

    #[test]
    fn one_key_source_with_fitting_algorithms_is_required() {
        assert_eq!(problems("secret = \"s\""), Vec::<String>::new());
        assert!(problems("")[0].contains("exactly one"));
        assert!(problems("secret = \"s\"\njwks_url = \"https://a/k\"")[0].contains("exactly one"));
        assert!(problems("secret = \"s\"\nalgorithms = [\"RS256\"]")[0].contains("algorithms"));
        assert!(problems("secret = \"s\"\nalgorithms = [\"none\"]")[0].contains("algorithms"));
        assert!(problems("public_key = \"nope\"")[0].starts_with("public_key"));
        assert!(problems("jwks_url = \"ftp://x\"")[0].starts_with("jwks_url"));
        assert!(problems("secret = \"%%\"\nbase64_secret = true")[0].starts_with("secret"));
    }

    #[test]
    fn token_places_and_claim_headers_are_checked() {
        let p = problems("secret = \"s\"\nheader = \"a b\"\ncookie = \"a;b\"\n[claims_to_headers]\nsub = \"x y\"");
        assert_eq!(p.len(), 3, "{p:?}");
    }
}
