//! Loading a certificate item: PEM text or files, parsed, its names and expiry read, and its
//! private key checked against it. Error messages never include key material.

use crate::bounded::{read_regular, MAX_PEM_FILE};
use crate::model::CertificateConf;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

/// A certificate chain with its private key, ready for a TLS listener.
#[derive(Debug)]
pub struct LoadedCert {
    /// Leaf first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's DNS names (SANs, or the subject CN when it has none), lower-case.
    pub names: Vec<String>,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl Clone for LoadedCert {
    fn clone(&self) -> Self {
        LoadedCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            names: self.names.clone(),
            not_after: self.not_after,
        }
    }
}

/// Whether `tls_cert` / `tls_key` may name files, or must hold PEM text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// PEM text or a file path (local config files, read by the data plane).
    TextOrFile,
    /// PEM text only: what arrives through the control plane's API may not make it read files.
    TextOnly,
}

/// Loads, parses and cross-checks `tls_cert` and `tls_key`.
pub fn load_certificate(conf: &CertificateConf) -> Result<LoadedCert, String> {
    load_keyed(conf, CertSource::TextOrFile).map_err(|(_, message)| message)
}

/// Like [`load_certificate`], also naming the key (`tls_cert` or `tls_key`) at fault.
pub(crate) fn load_keyed(
    conf: &CertificateConf,
    source: CertSource,
) -> Result<LoadedCert, (&'static str, String)> {
    let cert_src = conf
        .tls_cert
        .as_deref()
        .ok_or(("tls_cert", "tls_cert is missing".to_string()))?;
    let key_src = conf
        .tls_key
        .as_deref()
        .ok_or(("tls_key", "tls_key is missing".to_string()))?;
    let cert_pem = read_source(cert_src, "tls_cert", source).map_err(|e| ("tls_cert", e))?;
    let key_pem = read_source(key_src, "tls_key", source).map_err(|e| ("tls_key", e))?;

    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("tls_cert", format!("tls_cert is not valid PEM: {e}")))?;
    let leaf = chain.first().ok_or((
        "tls_cert",
        "tls_cert holds no CERTIFICATE block".to_string(),
    ))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ("tls_key", format!("tls_key is not valid PEM: {e}")))?
        .ok_or(("tls_key", "tls_key holds no private key block".to_string()))?;

    let (_, x509) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| ("tls_cert", format!("tls_cert does not parse: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    let not_after = x509.validity().not_after.timestamp();

    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            (
                "tls_key",
                format!("tls_key is not a usable private key: {e}"),
            )
        })?;
    match CertifiedKey::new(chain.clone(), Arc::clone(&signer)).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err((
                "tls_key",
                "tls_key does not match the certificate in tls_cert".into(),
            ))
        }
        Err(e) => return Err(("tls_cert", format!("tls_cert cannot be used: {e}"))),
    }
    Ok(LoadedCert {
        chain,
        key,
        names,
        not_after,
    })
}

/// PEM text as written, or the content of the (regular, bounded) file it names.
fn read_source(value: &str, key: &str, source: CertSource) -> Result<Vec<u8>, String> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    let path = value.trim();
    if path.is_empty() {
        return Err(format!("{key} is empty"));
    }
    if source == CertSource::TextOnly {
        // Never echoed nor looked at: whether a file exists is not the caller's business.
        return Err(format!(
            "{key} must be PEM text (with its -----BEGIN line) here: file paths are read only from the data plane's local config files"
        ));
    }
    read_regular(Path::new(path), MAX_PEM_FILE).map_err(|e| {
        // Something that is not plausibly a path may be key material pasted without its PEM
        // header: never echo it.
        if path.len() > 255 || path.contains('\n') {
            format!("cannot read {key} file (value not shown; PEM text must include its -----BEGIN line): {e}")
        } else {
            format!("cannot read {key} file {path:?}: {e}")
        }
    })
}

/// Checks a `domains` entry: a DNS name, optionally `*.` followed by one.
pub fn check_domain(name: &str) -> Result<(), String> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a valid domain name (e.g. \"a.com\" or \"*.a.com\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    }

    fn conf(cert: &str, key: &str) -> CertificateConf {
        CertificateConf {
            tls_cert: Some(cert.into()),
            tls_key: Some(key.into()),
            ..Default::default()
        }
    }

    fn load_keyed_files(c: &CertificateConf) -> Result<LoadedCert, (&'static str, String)> {
        load_keyed(c, CertSource::TextOrFile)
    }

    #[test]
    fn paths_are_refused_in_text_only_mode_and_devices_always() {
        let (cert, key) = self_signed(&["a.com"]);
        let e = load_keyed(&conf(&cert, "/etc/hostname"), CertSource::TextOnly).unwrap_err();
        assert_eq!(e.0, "tls_key");
        assert!(e.1.contains("must be PEM text"), "{}", e.1);
        assert!(!e.1.contains("hostname"), "{}", e.1);
        assert!(load_keyed(&conf(&cert, &key), CertSource::TextOnly).is_ok());
        let e = load_keyed_files(&conf("/dev/zero", &key)).unwrap_err();
        assert!(e.1.contains("not a regular file"), "{}", e.1);
    }

    #[test]
    fn loads_pem_text_with_names_and_expiry() {
        let (cert, key) = self_signed(&["A.example.com", "*.b.example.com"]);
        let c = load_certificate(&conf(&cert, &key)).unwrap();
        assert_eq!(c.names, ["a.example.com", "*.b.example.com"]);
        assert_eq!(c.chain.len(), 1);
        assert!(c.not_after > 1_700_000_000, "{}", c.not_after);
    }

    #[test]
    fn loads_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["a.com"]);
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, cert).unwrap();
        std::fs::write(&kp, key).unwrap();
        let c = load_certificate(&conf(cp.to_str().unwrap(), kp.to_str().unwrap())).unwrap();
        assert_eq!(c.names, ["a.com"]);
        let e = load_keyed_files(&conf(cp.to_str().unwrap(), "/nonexistent/k.pem")).unwrap_err();
        assert_eq!(e.0, "tls_key");
        assert!(e.1.contains("cannot read tls_key file"), "{}", e.1);
    }

    #[test]
    fn key_material_is_never_echoed() {
        let (cert, _) = self_signed(&["a.com"]);
        let blob = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC".repeat(8);
        let e = load_certificate(&conf(&cert, &blob)).unwrap_err();
        assert!(!e.contains("MIIE"), "{e}");
        assert!(e.contains("value not shown"), "{e}");
    }

    #[test]
    fn mismatched_key_is_rejected_without_leaking_it() {
        let (cert, _) = self_signed(&["a.com"]);
        let (_, other_key) = self_signed(&["b.com"]);
        let e = load_keyed_files(&conf(&cert, &other_key)).unwrap_err();
        assert_eq!(
            e,
            (
                "tls_key",
                "tls_key does not match the certificate in tls_cert".to_string()
            )
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let (cert, key) = self_signed(&["a.com"]);
        let e = load_keyed_files(&conf("-----BEGIN CERTIFICATE-----\nnope\n", &key)).unwrap_err();
        assert_eq!(e.0, "tls_cert");
        let e = load_keyed_files(&conf(&cert, "-----BEGIN NOTHING-----\n")).unwrap_err();
        assert_eq!(e.0, "tls_key");
        let e = load_keyed_files(&CertificateConf::default()).unwrap_err();
        assert_eq!(e.0, "tls_cert");
    }

    #[test]
    fn domains() {
        assert!(check_domain("a.com").is_ok());
        assert!(check_domain("*.a.com").is_ok());
        assert!(check_domain("a..com").is_err());
        assert!(check_domain("*.").is_err());
        assert!(check_domain("a.*.com").is_err());
        assert!(check_domain("-a.com").is_err());
    }
}
