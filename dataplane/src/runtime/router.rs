//! Location matching for one server, through an index rather than a scan.
//!
//! Order (config.md "Which location wins"): weight (higher first), then host kind
//! (exact > wildcard, longer suffix first > regex > none), then path kind
//! (exact > regex > prefix, longer first > any), then list order. Each weight level holds
//! a host index (hash for exact hosts, suffix hash for wildcards, a list for regexes) whose
//! entries hold a path index (hash for exact paths, a byte trie for prefixes, a list for
//! regexes). A request walks host tiers in order and stops at the first tier with a path hit.

use crate::runtime::location::{HostMatcher, Location, PathMatcher};
use ahash::AHashMap;
use louailink_shared::patterns::{compile_regex, REGEX_SIZE_LIMIT};
use regex::{Regex, RegexSet, RegexSetBuilder};
use std::sync::Arc;

/// A set over several regexes (one alone is matched directly). A set that cannot be built
/// (e.g. over the size limit) falls back to matching each regex in turn.
fn build_set<'a>(sources: impl Iterator<Item = &'a str>) -> Option<RegexSet> {
    let sources: Vec<&str> = sources.collect();
    if sources.len() < 2 {
        return None;
    }
    RegexSetBuilder::new(&sources)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// A matched location and which of its host patterns matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`Router::locations`].
    pub location: u32,
    /// Index of the matching host pattern (meaningful for regex hosts).
    pub host_pattern: u16,
}

/// One candidate entry inside a path index.
#[derive(Clone, Copy, Debug)]
struct Entry {
    hit: Hit,
    /// Position in the server's `locations` list; lower wins ties.
    order: u32,
}

/// Rank of a path hit inside one host tier; lower is better.
type PathRank = (u8, usize, u32);

/// Byte trie over prefix paths; each node may end a prefix.
#[derive(Default)]
struct PrefixTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Default)]
struct TrieNode {
    children: Vec<(u8, u32)>,
    entry: Option<Entry>,
}

impl PrefixTrie {
    fn insert(&mut self, prefix: &[u8], entry: Entry) {
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::default());
        }
        let mut node = 0usize;
        for &b in prefix {
            let next = match self.nodes[node].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[node].children[i].1 as usize,
                Err(i) => {
                    let id = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.insert(i, (b, id as u32));
                    id
                }
            };
            node = next;
        }
        let slot = &mut self.nodes[node].entry;
        if slot.is_none_or(|e| e.order > entry.order) {
            *slot = Some(entry);
        }
    }

    /// The entry of the longest prefix of `path`, with that prefix's length.
    fn longest(&self, path: &[u8]) -> Option<(usize, Entry)> {
        let mut node = self.nodes.first()?;
        let mut best = node.entry.map(|e| (0, e));
        for (depth, &b) in path.iter().enumerate() {
            let Ok(i) = node.children.binary_search_by_key(&b, |c| c.0) else {
                break;
            };
            node = &self.nodes[node.children[i].1 as usize];
            if let Some(e) = node.entry {
                best = Some((depth + 1, e));
            }
        }
        best
    }
}

/// The locations of one host tier, indexed by path.
#[derive(Default)]
struct PathIndex {
    exact: AHashMap<Box<str>, Entry>,
    /// Path regex sources in list order, matched in one pass by `regex_set` once built,
    /// else one by one through `regex_each`.
    regex: Vec<(Arc<str>, Entry)>,
    regex_set: Option<RegexSet>,
    regex_each: Vec<Regex>,
    prefix: PrefixTrie,
    any: Option<Entry>,
}

impl PathIndex {
    fn insert(&mut self, path: &PathMatcher, entry: Entry) {
        let keep_first = |slot: &mut Option<Entry>| {
            if slot.is_none_or(|e| e.order > entry.order) {
                *slot = Some(entry);
            }
        };
        match path {
            PathMatcher::Exact(p) => {
                let slot = self.exact.entry(p.as_str().into()).or_insert(entry);
                if slot.order > entry.order {
                    *slot = entry;
                }
            }
            PathMatcher::Regex(re) => self.regex.push((Arc::clone(&re.source), entry)),
            PathMatcher::Prefix(p) => self.prefix.insert(p.as_bytes(), entry),
            PathMatcher::Any => keep_first(&mut self.any),
        }
    }

    /// Compiles the regexes into one set, so a match costs one pass however many there are
    /// (a lone regex, or a set that cannot be built, is compiled on its own). Fails with the
    /// position of the location whose regex does not compile.
    fn finish(&mut self) -> Result<(), (u32, String)> {
        self.regex.sort_by_key(|(_, e)| e.order);
        self.regex_set = build_set(self.regex.iter().map(|(re, _)| &**re));
        if self.regex_set.is_none() {
            self.regex_each = self
                .regex
                .iter()
                .map(|(re, e)| compile_regex(re).map_err(|msg| (e.order, msg)))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    fn find(&self, path: &str) -> Option<(PathRank, Entry)> {
        if let Some(e) = self.exact.get(path) {
            return Some(((0, 0, e.order), *e));
        }
        let first_regex = match &self.regex_set {
            Some(set) => set.matches(path).iter().next().map(|i| &self.regex[i].1),
            None => self
                .regex_each
                .iter()
                .position(|re| re.is_match(path))
                .map(|i| &self.regex[i].1),
        };
        if let Some(e) = first_regex {
            return Some(((1, 0, e.order), *e));
        }
        if let Some((len, e)) = self.prefix.longest(path.as_bytes()) {
            return Some(((2, usize::MAX - len, e.order), e));
        }
        self.any.map(|e| ((3, 0, e.order), e))
    }
}

/// All locations sharing one weight.
#[derive(Default)]
struct Level {
    weight: i32,
    exact: AHashMap<Box<str>, PathIndex>,
    wildcard: AHashMap<Box<str>, PathIndex>,
    /// Host regexes, matched in one pass by `regex_set` once built.
    regex: Vec<(Regex, PathIndex)>,
    regex_set: Option<RegexSet>,
    any: PathIndex,
}

impl Level {
    fn find(&self, host: Option<&str>, path: &str) -> Option<Entry> {
        let Some(host) = host else {
            return self.any.find(path).map(|(_, e)| e);
        };
        if let Some((_, e)) = self.exact.get(host).and_then(|ix| ix.find(path)) {
            return Some(e);
        }
        if !self.wildcard.is_empty() {
            // Longest suffix first: ".y.a.com" before ".a.com".
            for (i, _) in host.match_indices('.') {
                if let Some((_, e)) = self.wildcard.get(&host[i..]).and_then(|ix| ix.find(path)) {
                    return Some(e);
                }
            }
        }
        let regex_best = match &self.regex_set {
            Some(set) => set
                .matches(host)
                .iter()
                .filter_map(|i| self.regex[i].1.find(path))
                .min_by_key(|(rank, _)| *rank),
            None => self
                .regex
                .iter()
                .filter(|(re, _)| re.is_match(host))
                .filter_map(|(_, ix)| ix.find(path))
                .min_by_key(|(rank, _)| *rank),
        };
        if let Some((_, e)) = regex_best {
            return Some(e);
        }
        self.any.find(path).map(|(_, e)| e)
    }
}

/// The compiled router of one server.
pub struct Router {
    /// The server's locations, in list order.
    pub locations: Vec<Arc<Location>>,
    /// Shared by the routers of successive snapshots while no location's host, path or
    /// weight (nor the list order) changes: most changes touch neither.
    levels: Arc<[Level]>,
}

/// Whether two location lists route the same way: same host, path and weight, in order.
fn same_routes(a: &[Arc<Location>], b: &[Arc<Location>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            Arc::ptr_eq(x, y)
                || (x.weight == y.weight
                    && x.conf.host == y.conf.host
                    && x.conf.path == y.conf.path)
        })
}

impl Router {
    /// The router over `locations`, reusing `previous`'s index when the routes are the same
    /// (so a change of headers or upstreams compiles no regex set again).
    pub fn rebuild(
        locations: Vec<Arc<Location>>,
        previous: Option<&Router>,
    ) -> Result<Self, (Arc<str>, String)> {
        match previous {
            Some(p) if same_routes(&p.locations, &locations) => Ok(Router {
                locations,
                levels: Arc::clone(&p.levels),
            }),
            _ => Router::new(locations),
        }
    }

    /// Builds the index over `locations` (given in the server's list order); fails on a
    /// regex that does not compile, naming its location.
    pub fn new(locations: Vec<Arc<Location>>) -> Result<Self, (Arc<str>, String)> {
        let mut levels: Vec<Level> = Vec::new();
        for (order, loc) in locations.iter().enumerate() {
            let level = match levels.iter().position(|l| l.weight == loc.weight) {
                Some(i) => &mut levels[i],
                None => {
                    levels.push(Level {
                        weight: loc.weight,
                        ..Level::default()
                    });
                    levels.last_mut().expect("just pushed")
                }
            };
            let entry = |host_pattern: usize| Entry {
                hit: Hit {
                    location: order as u32,
                    host_pattern: host_pattern as u16,
                },
                order: order as u32,
            };
            if loc.hosts.is_empty() {
                level.any.insert(&loc.path, entry(0));
            }
            for (i, host) in loc.hosts.iter().enumerate() {
                let index = match host {
                    HostMatcher::Exact(h) => level.exact.entry(h.as_str().into()).or_default(),
                    HostMatcher::Wildcard(s) => {
                        level.wildcard.entry(s.as_str().into()).or_default()
                    }
                    HostMatcher::Regex(re) => {
                        match level
                            .regex
                            .iter()
                            .position(|(r, _)| r.as_str() == re.as_str())
                        {
                            Some(p) => &mut level.regex[p].1,
                            None => {
                                level.regex.push((re.clone(), PathIndex::default()));
                                &mut level.regex.last_mut().expect("just pushed").1
                            }
                        }
                    }
                };
                index.insert(&loc.path, entry(i));
            }
        }
        for level in &mut levels {
            level.regex_set = build_set(level.regex.iter().map(|(re, _)| re.as_str()));
            let indexes = level
                .exact
                .values_mut()
                .chain(level.wildcard.values_mut())
                .chain(level.regex.iter_mut().map(|(_, ix)| ix))
                .chain(std::iter::once(&mut level.any));
            for index in indexes {
                index.finish().map_err(|(order, e)| {
                    let name = locations.get(order as usize).map(|l| Arc::clone(&l.name));
                    (name.unwrap_or_else(|| "?".into()), e)
                })?;
            }
        }
        levels.sort_by_key(|l| std::cmp::Reverse(l.weight));
        Ok(Router {
            locations,
            levels: levels.into(),
        })
    }

    /// Finds the location for a lower-case host without port (None = no host) and a path.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<Hit> {
        self.levels
            .iter()
            .find_map(|l| l.find(host, path))
            .map(|e| e.hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::location::test_location;

    fn router(specs: &[(&str, Option<&str>, Option<&str>, i32)]) -> Router {
        Router::new(
            specs
                .iter()
                .map(|(name, host, path, weight)| {
                    Arc::new(test_location(name, *host, *path, *weight))
                })
                .collect(),
        )
        .expect("test routes compile")
    }

    fn name(r: &Router, host: Option<&str>, path: &str) -> Option<String> {
        r.find(host, path)
            .map(|h| r.locations[h.location as usize].name.to_string())
    }

    #[test]
    fn host_kinds_in_order() {
        let r = router(&[
            ("none", None, Some("/"), 0),
            ("regex", Some("~^[a-z]+\\.a\\.com$"), Some("/"), 0),
            ("wild", Some("*.a.com"), Some("/"), 0),
            ("wild_long", Some("*.b.a.com"), Some("/"), 0),
            ("exact", Some("x.a.com"), Some("/"), 0),
        ]);
        assert_eq!(name(&r, Some("x.a.com"), "/"), Some("exact".into()));
        assert_eq!(name(&r, Some("y.a.com"), "/"), Some("wild".into()));
        assert_eq!(name(&r, Some("z.b.a.com"), "/"), Some("wild_long".into()));
        assert_eq!(name(&r, Some("a.com"), "/"), Some("none".into()));
        assert_eq!(name(&r, Some("xa.com"), "/"), Some("none".into()));
        assert_eq!(name(&r, None, "/"), Some("none".into()));
    }

    #[test]
    fn regex_host_beats_none_and_falls_through() {
        let r = router(&[
            ("none", None, Some("/"), 0),
            ("regex", Some("~^t[0-9]+\\.a\\.com$"), Some("/api"), 0),
        ]);
        assert_eq!(name(&r, Some("t1.a.com"), "/api/x"), Some("regex".into()));
        assert_eq!(name(&r, Some("t1.a.com"), "/other"), Some("none".into()));
    }

    #[test]
    fn path_kinds_in_order() {
        let r = router(&[
            ("any", None, None, 0),
            ("short", None, Some("/a"), 0),
            ("long", None, Some("/a/b"), 0),
            ("re", None, Some("~^/a/b/[0-9]+$"), 0),
            ("exact", None, Some("=/a/b/1"), 0),
        ]);
        assert_eq!(name(&r, None, "/a/b/1"), Some("exact".into()));
        assert_eq!(name(&r, None, "/a/b/2"), Some("re".into()));
        assert_eq!(name(&r, None, "/a/b/x"), Some("long".into()));
        assert_eq!(name(&r, None, "/ax"), Some("short".into()));
        assert_eq!(name(&r, None, "/z"), Some("any".into()));
    }

    #[test]
    fn weight_and_list_order() {
        let r = router(&[
            ("first", None, Some("/a"), 0),
            ("second", None, Some("/a"), 0),
            ("heavy", None, Some("/"), 10),
            ("exact_host", Some("h.com"), Some("/a"), 0),
        ]);
        assert_eq!(name(&r, Some("h.com"), "/a"), Some("heavy".into()));
        let r = router(&[
            ("first", None, Some("/a"), 0),
            ("second", None, Some("/a"), 0),
        ]);
        assert_eq!(name(&r, None, "/a"), Some("first".into()));
    }

    #[test]
    fn rebuild_shares_the_index_only_while_routes_stay() {
        let first = router(&[("a", None, Some("/a"), 0), ("b", None, Some("/b"), 0)]);
        // New location objects (say, a header changed) with the same routes: index shared.
        let same = router(&[("a", None, Some("/a"), 0), ("b", None, Some("/b"), 0)]);
        let same = Router::rebuild(same.locations, Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&first.levels, &same.levels));
        assert_eq!(name(&same, None, "/b"), Some("b".into()));

        // A path, a host or the order changed: a new index that routes the new way.
        for changed in [
            router(&[("a", None, Some("/a"), 0), ("b", None, Some("/c"), 0)]),
            router(&[
                ("a", None, Some("/a"), 0),
                ("b", Some("h.com"), Some("/b"), 0),
            ]),
            router(&[("b", None, Some("/b"), 0), ("a", None, Some("/a"), 0)]),
        ] {
            let rebuilt = Router::rebuild(changed.locations, Some(&first)).unwrap();
            assert!(!Arc::ptr_eq(&first.levels, &rebuilt.levels));
            assert_eq!(name(&rebuilt, None, "/a"), Some("a".into()));
        }
        let moved = router(&[("a", None, Some("/a"), 0), ("b", None, Some("/c"), 0)]);
        let moved = Router::rebuild(moved.locations, Some(&first)).unwrap();
        assert_eq!(name(&moved, None, "/c"), Some("b".into()));
        assert_eq!(name(&moved, None, "/b"), None);
    }

    #[test]
    fn nothing_matches() {
        let r = router(&[("h", Some("h.com"), Some("/a"), 0)]);
        assert_eq!(name(&r, Some("h.com"), "/b"), None);
        assert_eq!(name(&r, None, "/a"), None);
    }
}
