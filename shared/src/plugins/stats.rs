//! `stats`: answers JSON with process and traffic counters on one path.

use super::{check_path, PluginSpec, Problems};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `stats` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatsOptions {
    /// Exact path answered (default `/stats`).
    pub path: String,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            path: "/stats".into(),
        }
    }
}

impl PluginSpec for StatsOptions {
    const CATEGORY: &'static str = "stats";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        match check_path(&self.path) {
            Err(e) => vec![(Some("path".into()), e)],
            Ok(()) => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    #[test]
    fn the_path_defaults_to_stats_and_must_be_absolute() {
        let o: StatsOptions = decode(&Map::new()).unwrap();
        assert_eq!(o.path, "/stats");
        let mut bad = Map::new();
        bad.insert("path".into(), Value::from("stats"));
        let e = decode::<StatsOptions>(&bad).unwrap_err();
        assert_eq!(e[0].0.as_deref(), Some("path"), "{e:?}");
    }
}
