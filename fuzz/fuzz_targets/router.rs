//! The router: locations with any host and path patterns, matched against any host and
//! path. Nothing panics, and without hosts an exact path wins over every other kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use louailink::runtime::location::Location;
use louailink::runtime::router::Router;
use louailink_shared::LocationConf;
use std::collections::HashMap;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines: "host|path" patterns for locations, the last line the request "host|path".
    let mut lines: Vec<&str> = text.lines().take(32).collect();
    let Some(request) = lines.pop() else {
        return;
    };
    let mut locations = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (host, path) = line.split_once('|').unwrap_or(("", line));
        let conf = LocationConf {
            host: (!host.is_empty()).then(|| host.to_string()),
            path: Some(path.to_string()),
            ..LocationConf::default()
        };
        if let Ok(loc) = Location::compile(&format!("l{i}"), &conf, &HashMap::new(), &HashMap::new()) {
            locations.push(Arc::new(loc));
        }
    }
    let catch_all = LocationConf {
        path: Some("/".into()),
        ..LocationConf::default()
    };
    if let Ok(loc) = Location::compile("any", &catch_all, &HashMap::new(), &HashMap::new()) {
        locations.push(Arc::new(loc));
    }
    let Ok(router) = Router::new(locations) else {
        return;
    };
    let (host, path) = request.split_once('|').unwrap_or(("", request));
    let host = (!host.is_empty()).then_some(host);
    let hit = router.find(host, path);
    // Without hosts and weights, an exact path beats every other kind.
    let exact = format!("={path}");
    let hostless = locations_without_hosts(&router);
    if hostless && router.locations.iter().any(|l| l.conf.path.as_deref() == Some(&exact)) {
        let hit = hit.expect("an exact location exists");
        let winner = &router.locations[hit.location as usize];
        assert_eq!(winner.conf.path.as_deref(), Some(&*exact), "{path:?}");
    }
});

fn locations_without_hosts(router: &Router) -> bool {
    router.locations.iter().all(|l| l.conf.host.is_none())
}
