//! Server certificates chosen by SNI: exact name, then the closest wildcard, then the default.

use ahash::AHashMap;
use louailink_shared::CertificateConf;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};
use std::sync::Arc;

/// The certificates of one snapshot, indexed by name.
#[derive(Default)]
pub struct CertStore {
    exact: AHashMap<String, Arc<CertifiedKey>>,
    /// Keyed by suffix with its dot: `*.a.com` → `.a.com`.
    wildcard: AHashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads every certificate; fails with the name of the first that does not load, and why.
    pub fn build<'a>(
        items: impl Iterator<Item = (&'a String, &'a CertificateConf)>,
    ) -> Result<Self, (String, String)> {
        let provider = rustls::crypto::ring::default_provider();
        let mut store = CertStore::default();
        for (name, conf) in items {
            if conf.tls_cert.is_none() && conf.acme.is_some() {
                continue; // not issued yet
            }
            let loaded =
                louailink_shared::certs::load_certificate(conf).map_err(|e| (name.clone(), e))?;
            let key = provider
                .key_provider
                .load_private_key(loaded.key)
                .map_err(|e| (name.clone(), format!("unusable private key: {e}")))?;
            let certified = Arc::new(CertifiedKey::new(loaded.chain, key));
            let domains: Vec<String> = if conf.domains.is_empty() {
                loaded.names
            } else {
                conf.domains
                    .iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect()
            };
            for d in domains {
                match d.strip_prefix('*') {
                    Some(suffix) => store.wildcard.insert(suffix.to_string(), certified.clone()),
                    None => store.exact.insert(d, certified.clone()),
                };
            }
            if conf.is_default {
                store.default = Some(certified);
            }
        }
        Ok(store)
    }

    /// The certificate for an SNI name (lower-case), or the default.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            if let Some(c) = self.exact.get(name) {
                return Some(c.clone());
            }
            for (i, _) in name.match_indices('.') {
                if let Some(c) = self.wildcard.get(&name[i..]) {
                    return Some(c.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// The TLS 1.3 cipher suites rustls/ring offers.
const TLS13_SUITES: [rustls::CipherSuite; 3] = [
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
];

/// rustls resolver reading the current snapshot's certificates at each handshake.
#[derive(Debug)]
pub struct SniResolver {
    /// The live config.
    pub state: Arc<arc_swap::ArcSwap<crate::runtime::snapshot::Snapshot>>,
    /// `tls_min_version = "tls1.3"`: refuse clients that cannot speak TLS 1.3. (The server
    /// side always offers 1.3, so a client that offers it gets it.)
    pub require_tls13: bool,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.require_tls13
            && !hello
                .cipher_suites()
                .iter()
                .any(|s| TLS13_SUITES.contains(s))
        {
            return None;
        }
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        self.state.load().certs.lookup(sni.as_deref())
    }
}
