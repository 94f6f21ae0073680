//! The item table of a [`Config`]: one decoded item of any kind ([`Item`]), and getting,
//! putting, removing and listing a config's items by [`Kind`] and name. This is the one place
//! that maps kinds to the fields of [`Config`]; a new kind is added here, in [`Kind`], in
//! the model and in the decoding (the `items` module).

use crate::kind::Kind;
use crate::model::{
    Basic, CertificateConf, Config, LocationConf, PluginConf, ServerConf, UpstreamConf,
};

/// One decoded item of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// The `basic` item.
    Basic(Basic),
    /// A `servers` item.
    Server(ServerConf),
    /// A `locations` item.
    Location(LocationConf),
    /// An `upstreams` item.
    Upstream(UpstreamConf),
    /// A `plugins` item.
    Plugin(PluginConf),
    /// A `certificates` item.
    Certificate(CertificateConf),
}

impl Item {
    /// The kind this item belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Item::Basic(_) => Kind::Basic,
            Item::Server(_) => Kind::Servers,
            Item::Location(_) => Kind::Locations,
            Item::Upstream(_) => Kind::Upstreams,
            Item::Plugin(_) => Kind::Plugins,
            Item::Certificate(_) => Kind::Certificates,
        }
    }

    /// Puts the item into `config` under `name` (ignored for `basic`), replacing any previous one.
    pub fn insert_into(self, config: &mut Config, name: &str) {
        let name = name.to_string();
        match self {
            Item::Basic(b) => config.basic = b,
            Item::Server(s) => {
                config.servers.insert(name, s);
            }
            Item::Location(l) => {
                config.locations.insert(name, l);
            }
            Item::Upstream(u) => {
                config.upstreams.insert(name, u);
            }
            Item::Plugin(p) => {
                config.plugins.insert(name, p);
            }
            Item::Certificate(c) => {
                config.certificates.insert(name, c);
            }
        }
    }
}

impl Config {
    /// A copy of item `(kind, name)` (`basic` whatever the name), if the config has one.
    pub fn item(&self, kind: Kind, name: &str) -> Option<Item> {
        Some(match kind {
            Kind::Basic => Item::Basic(self.basic.clone()),
            Kind::Servers => Item::Server(self.servers.get(name)?.clone()),
            Kind::Locations => Item::Location(self.locations.get(name)?.clone()),
            Kind::Upstreams => Item::Upstream(self.upstreams.get(name)?.clone()),
            Kind::Plugins => Item::Plugin(self.plugins.get(name)?.clone()),
            Kind::Certificates => Item::Certificate(self.certificates.get(name)?.clone()),
        })
    }

    /// The names of the items of `kind`, sorted (`[""]` for `basic`).
    pub fn item_names(&self, kind: Kind) -> Vec<&str> {
        fn keys<V>(map: &std::collections::BTreeMap<String, V>) -> Vec<&str> {
            map.keys().map(String::as_str).collect()
        }
        match kind {
            Kind::Basic => vec![""],
            Kind::Servers => keys(&self.servers),
            Kind::Locations => keys(&self.locations),
            Kind::Upstreams => keys(&self.upstreams),
            Kind::Plugins => keys(&self.plugins),
            Kind::Certificates => keys(&self.certificates),
        }
    }

    /// Whether the config has item `(kind, name)` (`basic` always).
    pub fn has_item(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Basic => true,
            Kind::Servers => self.servers.contains_key(name),
            Kind::Locations => self.locations.contains_key(name),
            Kind::Upstreams => self.upstreams.contains_key(name),
            Kind::Plugins => self.plugins.contains_key(name),
            Kind::Certificates => self.certificates.contains_key(name),
        }
    }

    /// Removes item `(kind, name)`; `basic` goes back to its defaults. True if it was there.
    pub fn remove_item(&mut self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Basic => std::mem::take(&mut self.basic) != Basic::default(),
            Kind::Servers => self.servers.remove(name).is_some(),
            Kind::Locations => self.locations.remove(name).is_some(),
            Kind::Upstreams => self.upstreams.remove(name).is_some(),
            Kind::Plugins => self.plugins.remove(name).is_some(),
            Kind::Certificates => self.certificates.remove(name).is_some(),
        }
    }

    /// Every item, copied: `basic` first (named `""`), then the named kinds in
    /// [`Kind::NAMED`] order, each by name.
    pub fn items(&self) -> impl Iterator<Item = (Kind, &str, Item)> + '_ {
        fn each<'a, V: Clone>(
            map: &'a std::collections::BTreeMap<String, V>,
            kind: Kind,
            wrap: fn(V) -> Item,
        ) -> impl Iterator<Item = (Kind, &'a str, Item)> + 'a {
            map.iter()
                .map(move |(name, v)| (kind, name.as_str(), wrap(v.clone())))
        }
        std::iter::once((Kind::Basic, "", Item::Basic(self.basic.clone())))
            .chain(each(&self.servers, Kind::Servers, Item::Server))
            .chain(each(&self.locations, Kind::Locations, Item::Location))
            .chain(each(&self.upstreams, Kind::Upstreams, Item::Upstream))
            .chain(each(&self.plugins, Kind::Plugins, Item::Plugin))
            .chain(each(
                &self.certificates,
                Kind::Certificates,
                Item::Certificate,
            ))
    }

    /// How many named items the config has (every kind but `basic`).
    pub fn named_count(&self) -> usize {
        Kind::NAMED.iter().map(|k| self.item_names(*k).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        let mut c = Config::default();
        c.basic.threads = Some(2);
        c.upstreams.insert("u".into(), UpstreamConf::default());
        c.locations.insert("b".into(), LocationConf::default());
        c.locations.insert("a".into(), LocationConf::default());
        c.plugins.insert("p".into(), PluginConf::default());
        c
    }

    #[test]
    fn every_item_round_trips_through_the_table() {
        let c = sample();
        let listed: Vec<(Kind, &str)> = c.items().map(|(k, n, _)| (k, n)).collect();
        assert_eq!(
            listed,
            [
                (Kind::Basic, ""),
                (Kind::Locations, "a"),
                (Kind::Locations, "b"),
                (Kind::Upstreams, "u"),
                (Kind::Plugins, "p"),
            ]
        );
        let mut again = Config::default();
        for (kind, name, item) in c.items() {
            assert_eq!(item.kind(), kind);
            assert_eq!(c.item(kind, name).as_ref(), Some(&item));
            item.insert_into(&mut again, name);
        }
        assert_eq!(again, c);
        assert_eq!(c.named_count(), 4);
        assert_eq!(c.item_names(Kind::Locations), ["a", "b"]);
    }

    #[test]
    fn removal_takes_out_one_item() {
        let mut c = sample();
        assert!(c.has_item(Kind::Locations, "a"));
        assert!(c.remove_item(Kind::Locations, "a"));
        assert!(!c.has_item(Kind::Locations, "a") && c.has_item(Kind::Locations, "b"));
        assert!(!c.remove_item(Kind::Locations, "a"), "already gone");
        assert!(c.item(Kind::Servers, "a").is_none());
        assert!(c.remove_item(Kind::Basic, ""));
        assert_eq!(c.basic, Basic::default());
        assert!(c.has_item(Kind::Basic, ""), "basic always exists");
    }
}
