//! A JSON Web Key Set fetched from a URL: keys by `kid`, refreshed in the background once
//! stale, and fetched again (at most every [`UNKNOWN_KID_REFETCH`]) when a token names a key
//! the set does not hold. One fetch at a time; every read of the answer is bounded.

use super::Verifier;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a token naming an unknown key may cause a fetch (a flood of made-up `kid`s
/// costs the JWKS server one request per interval).
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
/// How often a fetch is tried again while no set has ever been fetched.
const FIRST_FETCH_RETRY: Duration = Duration::from_secs(1);

/// Why no key verifies a token.
pub enum KeyError {
    /// The set holds no key for the token's `kid`.
    Unknown,
    /// No set could be fetched yet.
    Unavailable,
}

/// The keys of one fetch.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<Verifier>>,
    /// When this set was fetched (`None`: never).
    fetched: Option<Instant>,
    /// When a fetch was last tried.
    tried: Option<Instant>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<Verifier>> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            // A token without `kid` is verified by a set of one key only.
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }
}

/// A JWKS source.
pub struct Jwks {
    url: String,
    /// The algorithms the options allow (empty = what each key implies).
    algorithms: Vec<Algorithm>,
    /// `exp`/`nbf` leeway, `iss` and `aud` checks, copied into each key's validation.
    base: Validation,
    refresh: Duration,
    client: reqwest::Client,
    current: ArcSwap<KeySet>,
    fetching: tokio::sync::Mutex<()>,
    background: AtomicBool,
}

impl Jwks {
    /// A source that fetches `url` on first use.
    pub fn new(
        url: String,
        algorithms: Vec<Algorithm>,
        base: Validation,
        refresh: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("jwks_url: {e}"))?;
        Ok(Jwks {
            url,
            algorithms,
            base,
            refresh,
            client,
            current: ArcSwap::from_pointee(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
        })
    }

    /// The verifier for a token's `kid`, fetching the set when it has to.
    pub async fn verifier(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<Verifier>, KeyError> {
        let set = self.current.load_full();
        if let Some(found) = set.find(kid) {
            if set.fetched.is_some_and(|at| at.elapsed() >= self.refresh) {
                self.refresh_in_background();
            }
            return Ok(found);
        }
        let wait = if set.fetched.is_some() {
            UNKNOWN_KID_REFETCH
        } else {
            FIRST_FETCH_RETRY
        };
        if set.tried.is_none_or(|at| at.elapsed() >= wait) {
            self.fetch_once(set.tried).await;
        }
        let set = self.current.load();
        match set.find(kid) {
            Some(found) => Ok(found),
            None if set.fetched.is_none() => Err(KeyError::Unavailable),
            None => Err(KeyError::Unknown),
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let jwks = self.clone();
        tokio::spawn(async move {
            let tried = jwks.current.load().tried;
            jwks.fetch_once(tried).await;
            jwks.background.store(false, Ordering::Release);
        });
    }

    /// Fetches the set unless another fetch finished since `seen_tried` (callers waiting on
    /// one fetch do not each start their own).
    async fn fetch_once(&self, seen_tried: Option<Instant>) {
        let _one = self.fetching.lock().await;
        let old = self.current.load_full();
        if old.tried != seen_tried {
            return;
        }
        let now = Some(Instant::now());
        let next = match self.fetch().await {
            Ok(keys) => KeySet {
                keys,
                fetched: now,
                tried: now,
            },
            Err(e) => {
                tracing::warn!(url = %self.url, "jwt: JWKS not fetched: {e}");
                // Keep serving the keys fetched before.
                KeySet {
                    keys: old.keys.clone(),
                    fetched: old.fetched,
                    tried: now,
                }
            }
        };
        self.current.store(Arc::new(next));
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Verifier>>, String> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        self.parse(&body)
    }

    /// The usable keys of a JWKS document; keys of other types or uses are skipped.
    fn parse(&self, body: &[u8]) -> Result<HashMap<String, Arc<Verifier>>, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some(verifier) = self.verifier_for(&jwk) {
                let kid = jwk.common.key_id.clone().unwrap_or_default();
                keys.insert(kid, Arc::new(verifier));
            }
        }
        Ok(keys)
    }

    fn verifier_for(&self, jwk: &Jwk) -> Option<Verifier> {
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            return None;
        }
        // What the key can verify: the algorithm it names, else its type's family.
        let implied: Vec<Algorithm> = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(named), _) => vec![named_algorithm(named)?],
            (None, AlgorithmParameters::RSA(_)) => {
                use Algorithm::*;
                vec![RS256, RS384, RS512, PS256, PS384, PS512]
            }
            (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return None,
            },
            (None, _) => return None,
        };
        let algorithms: Vec<Algorithm> = if self.algorithms.is_empty() {
            implied
        } else {
            implied
                .into_iter()
                .filter(|a| self.algorithms.contains(a))
                .collect()
        };
        if algorithms.is_empty() {
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = self.base.clone();
        validation.algorithms = algorithms;
        Some(Verifier { key, validation })
    }
}

/// The algorithm a key names, `None` for encryption and EdDSA keys (not verified here).
fn named_algorithm(named: &KeyAlgorithm) -> Option<Algorithm> {
    format!("{named:?}")
        .parse()
        .ok()
        .filter(|a| *a != Algorithm::EdDSA)
}
