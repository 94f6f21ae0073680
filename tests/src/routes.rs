//! A routing fixture: one backend and one upstream per location, each named like the location,
//! so the backend that answers tells which location won.

use crate::{Backend, Client, Louailink};

/// A proxy whose server lists the given locations in order, each with its own backend.
pub struct Routes {
    /// The proxy.
    pub proxy: Louailink,
    /// HTTP/1.1 client for the server.
    pub client: Client,
    /// The server's port.
    pub port: u16,
    _backends: Vec<Backend>,
}

impl Routes {
    /// `locations`: `(name, toml lines)` such as `("api", r#"path = "/api""#)`. Each location
    /// gets `upstream = "<name>"` unless its lines set an upstream themselves.
    pub async fn start(locations: &[(&str, &str)]) -> Routes {
        let port = crate::free_port();
        let mut config = String::new();
        let mut backends = Vec::new();
        for (name, lines) in locations {
            let b = Backend::start(name);
            config.push_str(&format!("[upstreams.{name}]\naddrs = [\"{}\"]\n\n", b.addr()));
            backends.push(b);
            let upstream = if lines.contains("upstream") {
                String::new()
            } else {
                format!("upstream = \"{name}\"\n")
            };
            config.push_str(&format!("[locations.{name}]\n{upstream}{lines}\n\n"));
        }
        let names: Vec<String> = locations.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        config.push_str(&format!(
            "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [{}]\n",
            names.join(", ")
        ));
        let proxy = Louailink::start(&config).await;
        Routes { proxy, client: Client::h1(port), port, _backends: backends }
    }

    /// Which location answered `GET <path>` with `Host: <host>`: its name, or the status code
    /// (e.g. `"404"`) when no backend answered.
    pub async fn hit(&self, host: &str, path: &str) -> String {
        self.client.get_with_host(host, path).await.backend()
    }
}
