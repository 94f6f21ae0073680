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
            config.push_str(&format!(
                "[upstreams.{name}]\naddrs = [\"{}\"]\n\n",
                b.addr()
            ));
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
        Routes {
            proxy,
            client: Client::h1(port),
            port,
            _backends: backends,
        }
    }

    /// Which location answered `GET <path>` with `Host: <host>`: its name, or the status code
    /// (e.g. `"404"`) when no backend answered.
    pub async fn hit(&self, host: &str, path: &str) -> String {
        self.client.get_with_host(host, path).await.backend()
    }
}

/// A config with one upstream `up`, one location `loc` and one server `main` on `port`; each
/// field is TOML lines added to that item, `extra` is appended (more items, `[basic]`, ...).
#[derive(Default)]
pub struct OneRoute<'a> {
    /// Server port (127.0.0.1).
    pub port: u16,
    /// Lines of `[upstreams.up]` (at least `addrs`); empty = no upstream and no
    /// `upstream = "up"` in the location.
    pub upstream: &'a str,
    /// Lines of `[locations.loc]`.
    pub location: &'a str,
    /// Lines of `[servers.main]`.
    pub server: &'a str,
    /// Anything else.
    pub extra: &'a str,
}

impl OneRoute<'_> {
    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        let mut upstream_ref = "";
        if !self.upstream.is_empty() {
            out.push_str(&format!("[upstreams.up]\n{}\n\n", self.upstream));
            upstream_ref = "upstream = \"up\"\n";
        }
        out.push_str(&format!(
            "[locations.loc]\n{upstream_ref}{}\n\n",
            self.location
        ));
        out.push_str(&format!(
            "[servers.main]\naddr = \"127.0.0.1:{}\"\nlocations = [\"loc\"]\n{}\n\n",
            self.port, self.server
        ));
        out.push_str(self.extra);
        out.push('\n');
        out
    }

    /// Starts louailink on this config; returns it with an HTTP/1.1 client for `port`.
    pub async fn start(&self) -> (Louailink, Client) {
        (Louailink::start(&self.toml()).await, Client::h1(self.port))
    }
}

/// One echo backend `b` behind one location: the common case.
pub struct Single {
    /// The backend (id `b`).
    pub backend: Backend,
    /// The proxy.
    pub proxy: Louailink,
    /// HTTP/1.1 client for the server.
    pub client: Client,
    /// The server's port.
    pub port: u16,
}

impl Single {
    /// `location`: lines of `[locations.loc]` (its upstream is the backend).
    pub async fn start(location: &str) -> Single {
        Self::start_with(location, "", "").await
    }

    /// Also lines for `[servers.main]` and extra items.
    pub async fn start_with(location: &str, server: &str, extra: &str) -> Single {
        let backend = Backend::start("b");
        let port = crate::free_port();
        let upstream = format!("addrs = {}", crate::addrs(&[&backend]));
        let config = OneRoute {
            port,
            upstream: &upstream,
            location,
            server,
            extra,
        }
        .toml();
        let proxy = Louailink::start(&config).await;
        Single {
            backend,
            proxy,
            client: Client::h1(port),
            port,
        }
    }

    /// `GET <path>` with host `host`.
    pub async fn get(&self, host: &str, path: &str) -> crate::Reply {
        self.client.get(host, path).await
    }
}

/// A server on a free port whose one location runs the plugin `p` of `category` (with these
/// option lines) in front of `backend`; `extra` holds more items (e.g. `[basic]` lines).
pub async fn plugin_in_front(
    category: &str,
    options: &str,
    extra: &str,
    backend: &Backend,
) -> (Louailink, Client) {
    let port = crate::free_port();
    let plugin = format!("[plugins.p]\ncategory = \"{category}\"\n{options}\n{extra}");
    let upstream = format!("addrs = [\"{}\"]", backend.addr());
    let config = OneRoute {
        port,
        upstream: &upstream,
        location: "plugins = [\"p\"]",
        extra: &plugin,
        ..Default::default()
    }
    .toml();
    (Louailink::start(&config).await, Client::h1(port))
}
