//! Clients: reqwest over HTTP/1.1, h2c or TLS (every host name resolves to 127.0.0.1), a raw
//! TCP client for hand-written (malformed, oversized, smuggling) requests, and a TLS probe that
//! reports which certificate a server presents.

use crate::certs::TestCa;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Per-request upper bound, only to avoid hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Resolves every name to 127.0.0.1 (the URL's port is kept), so tests can use real host names
/// (and real SNI) without touching DNS.
struct Loopback;

impl Resolve for Loopback {
    fn resolve(&self, _name: Name) -> Resolving {
        Box::pin(async {
            let addrs: Addrs =
                Box::new(std::iter::once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            Ok(addrs)
        })
    }
}

type MakeBuilder = Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>;

/// An HTTP client bound to one proxy port.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    scheme: &'static str,
    port: u16,
    make: MakeBuilder,
}

fn base() -> reqwest::ClientBuilder {
    crate::init();
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(Loopback))
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
}

fn root(der: &[u8]) -> reqwest::Certificate {
    reqwest::Certificate::from_der(der).expect("CA certificate")
}

impl Client {
    fn new(make: MakeBuilder, scheme: &'static str, port: u16) -> Client {
        Client {
            http: make().build().expect("reqwest client"),
            scheme,
            port,
            make,
        }
    }

    /// HTTP/1.1 over plain TCP.
    pub fn h1(port: u16) -> Client {
        Self::new(Arc::new(|| base().http1_only()), "http", port)
    }

    /// HTTP/2 with prior knowledge (h2c) over plain TCP.
    pub fn h2c(port: u16) -> Client {
        Self::new(Arc::new(|| base().http2_prior_knowledge()), "http", port)
    }

    /// HTTPS trusting only `ca`; ALPN offers h2 and http/1.1.
    pub fn tls(port: u16, ca: &TestCa) -> Client {
        let der = ca.cert_der();
        Self::new(
            Arc::new(move || base().tls_certs_only([root(&der)])),
            "https",
            port,
        )
    }

    /// HTTPS trusting only `ca`, HTTP/1.1 only.
    pub fn tls_h1(port: u16, ca: &TestCa) -> Client {
        let der = ca.cert_der();
        Self::new(
            Arc::new(move || base().tls_certs_only([root(&der)]).http1_only()),
            "https",
            port,
        )
    }

    /// The same kind of client with its own, empty connection pool.
    pub fn clone_fresh(&self) -> Client {
        Self::new(self.make.clone(), self.scheme, self.port)
    }

    /// `scheme://host:port/path`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }

    /// A request to `host` (also the SNI for TLS) and `path` (with query).
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(host, path))
    }

    /// `GET http://host:port/path`.
    pub async fn get(&self, host: &str, path: &str) -> Reply {
        Self::send(self.request(reqwest::Method::GET, host, path)).await
    }

    /// `GET` to 127.0.0.1 with an explicit `Host` header (any case, any port).
    pub async fn get_with_host(&self, host_header: &str, path: &str) -> Reply {
        Self::send(
            self.request(reqwest::Method::GET, "127.0.0.1", path)
                .header("host", host_header),
        )
        .await
    }

    /// Sends and reads the whole body; panics on a transport error.
    pub async fn send(req: reqwest::RequestBuilder) -> Reply {
        match Self::try_send(req).await {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e:?}"),
        }
    }

    /// Sends and reads the whole body.
    pub async fn try_send(req: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(Reply {
            status,
            version,
            headers,
            body,
        })
    }

    /// The underlying reqwest client (for streaming reads).
    pub fn inner(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Protocol version the client used.
    pub version: http::Version,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// First value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The backend's echo; panics (showing the response) when it is not one.
    pub fn echo(&self) -> Echo {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a backend echo ({e}): {} {}", self.status, self.body))
    }

    /// The id of the backend that answered (from `x-backend`), or `"<status>"` when none did.
    pub fn backend(&self) -> String {
        match self.header("x-backend") {
            Some(id) => id.to_string(),
            None => self.status.to_string(),
        }
    }

    /// Asserts the status, showing the body otherwise; returns self.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// What a backend saw, as reported in its JSON answer.
#[derive(Debug, Deserialize)]
pub struct Echo {
    /// Backend id.
    pub backend: String,
    /// Request method.
    pub method: String,
    /// Path and query as received by the backend.
    pub uri: String,
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: String,
    /// Lower-case header names and their values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Length of the request body.
    pub body_len: i64,
    /// Whether the backend connection was TLS.
    pub tls: bool,
    /// SNI the backend received.
    #[serde(default)]
    pub sni: Option<String>,
}

impl Echo {
    /// The first value of a request header the backend received.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of a request header, comma-joined lists split (so `a, b` and two `a`/`b`
    /// lines read the same).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect()
    }
}

/// A raw HTTP/1.x response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-cased), in order.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw TCP connection for hand-written requests.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    /// Connects to 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
        RawConn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes bytes (errors are returned: the server may close early on bad input).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes into the buffer; false on EOF, error or timeout.
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(REQUEST_TIMEOUT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => {
                self.eof = true;
                false
            }
        }
    }

    /// Reads the next response; `None` when the connection closed (or stayed silent for the
    /// request timeout) before a complete response arrived.
    pub async fn read_response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if chunked {
            resp.body = self.read_chunked().await?;
        } else if let Some(len) = length {
            while self.buf.len() < len {
                if !self.fill().await {
                    return None;
                }
            }
            resp.body = self.buf.drain(..len).collect();
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            while self.fill().await {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Some(resp)
    }

    async fn read_chunked(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if !self.fill().await {
                    return None;
                }
            };
            let size_line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                if !self.fill().await {
                    return None;
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Some(body);
            }
        }
    }

    /// True when the server closed the connection (reads EOF within the request timeout).
    pub async fn is_closed(&mut self) -> bool {
        while self.fill().await {}
        self.eof
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends one raw request on a new connection and reads one response.
pub async fn raw_request(port: u16, request: &[u8]) -> Option<RawResponse> {
    let mut conn = RawConn::connect(port).await;
    let _ = conn.send(request).await;
    conn.read_response().await
}

/// Accepts any server certificate: the probe reports it rather than judging it.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS handshake with 127.0.0.1:`port`, sending `sni` (or no SNI for `None`); returns the
/// leaf certificate (DER) the server presented, or the handshake error.
pub async fn peer_certificate(port: u16, sni: Option<&str>) -> Result<Vec<u8>, String> {
    crate::init();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // An IP-address server name makes rustls send no SNI at all.
    let name = match sni {
        Some(s) => ServerName::try_from(s.to_string()).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no peer certificate")?;
    Ok(certs[0].to_vec())
}
