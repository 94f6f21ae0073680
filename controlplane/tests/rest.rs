//! The REST API against a real etcd: CRUD with ETags, validation (400, nothing written),
//! 409 with referrers, 412, dry runs, import/export (split into steps when large), history
//! and rollback, and the OpenAPI document matching the real routes.

mod common;

use common::etcd::Etcd;
use common::{generation, keys, put_base, Control};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_with_etags_and_readable_etcd_values() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let r = c
        .call(
            "PUT",
            "/api/v1/upstreams/u",
            Some(json!({"addrs": "127.0.0.1:9"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["added"], json!(["upstreams.u"]));
    let rev = r.body["revision"].as_i64().unwrap();
    assert_eq!(r.etag.as_deref(), Some(rev.to_string().as_str()));
    put_base(&c).await;

    let r = c.call("GET", "/api/v1/upstreams/u", None).await;
    assert_eq!(r.status, 200);
    // Stored normalized: a list, as the model writes it.
    assert_eq!(r.body["value"], json!({"addrs": ["127.0.0.1:9"]}));
    assert_eq!(
        r.etag.as_deref(),
        Some(r.body["revision"].to_string().as_str())
    );
    let r = c.call("GET", "/api/v1/locations", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    assert_eq!(r.body["items"][0]["name"], "a");

    // The same value again: nothing written.
    let before = generation(&etcd);
    let r = c
        .call(
            "PUT",
            "/api/v1/locations/a",
            Some(json!({"path": "/a", "upstream": "u"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["steps"].as_i64()),
        (200, Some(0)),
        "{r:?}"
    );
    assert_eq!(generation(&etcd), before);

    let r = c
        .call(
            "PUT",
            "/api/v1/locations/a",
            Some(json!({"path": "/b", "upstream": "u"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["modified"].clone()),
        (200, json!(["locations.a"])),
        "{r:?}"
    );
    assert_ne!(generation(&etcd), before);
    let shown = etcd.etcdctl(&["get", "--print-value-only", "/louailink/locations/a"]);
    let v: Value = serde_json::from_str(shown.trim()).expect("etcdctl shows JSON");
    assert_eq!(v, json!({"path": "/b", "upstream": "u"}));

    let r = c.call("GET", "/api/v1/basic", None).await;
    assert_eq!((r.status, r.body["revision"].as_i64()), (200, Some(0)));
    let r = c
        .call(
            "PUT",
            "/api/v1/basic",
            Some(json!({"name": "fleet", "log_level": "info"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.call("GET", "/api/v1/basic", None).await.body["value"]["name"],
        "fleet"
    );

    let r = c.call("DELETE", "/api/v1/servers/s", None).await;
    assert_eq!(
        (r.status, r.body["removed"].clone()),
        (200, json!(["servers.s"]))
    );
    let r = c.call("GET", "/api/v1/servers/s", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("servers.s"));
    let r = c.call("DELETE", "/api/v1/servers/s", None).await;
    assert_eq!(r.status, 404);
    let r = c.call("GET", "/api/v1/routes", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert!(!keys(&etcd).contains(&"/louailink/servers/s".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_writes_are_400_and_write_nothing() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let gen = generation(&etcd);
    let all_keys = keys(&etcd);
    let history = c.call("GET", "/api/v1/history", None).await.body["entries"]
        .as_array()
        .unwrap()
        .len();

    let cases: Vec<(&str, Value, &str)> = vec![
        // Wrong type.
        (
            "/api/v1/locations/b",
            json!({"path": "/b", "upstream": "u", "weight": "high"}),
            "weight",
        ),
        // A regex that does not compile.
        (
            "/api/v1/locations/b",
            json!({"path": "/b", "upstream": "u", "rewrite": "^/(x /y"}),
            "rewrite",
        ),
        // A reference to nothing.
        (
            "/api/v1/locations/b",
            json!({"path": "/b", "upstream": "nope"}),
            "unknown upstream",
        ),
        // An unknown key.
        (
            "/api/v1/upstreams/v",
            json!({"adrs": ["127.0.0.1:1"]}),
            "adrs",
        ),
        // A name with a slash (encoded) and one with "..".
        (
            "/api/v1/upstreams/a..b",
            json!({"addrs": ["127.0.0.1:1"]}),
            "..",
        ),
        // Not JSON.
        (
            "/api/v1/upstreams/v",
            Value::String("{not json".into()),
            "not JSON",
        ),
        // A server referring to a missing location.
        (
            "/api/v1/servers/t",
            json!({"addr": "127.0.0.1:18081", "locations": ["ghost"]}),
            "ghost",
        ),
    ];
    for (path, body, needle) in cases {
        let r = c.call("PUT", path, Some(body.clone())).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid"),
            "{path} {body}: {r:?}"
        );
        assert!(
            r.body.to_string().contains(needle),
            "{path}: {needle:?} not in {}",
            r.body
        );
        assert!(r.body["error"]["details"].is_array());
    }
    // An import holding one item too large for an etcd transaction.
    let big = format!(
        "[plugins.big]\ncategory = \"mock\"\nstatus = 200\ndata = \"{}\"\n",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = c
        .call("PUT", "/api/v1/config?merge=true", Some(Value::String(big)))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid"),
        "{}",
        r.body["error"]
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("plugins.big"));
    // A syntax error in an import names the line.
    let r = c
        .call(
            "PUT",
            "/api/v1/config",
            Some(Value::String("[upstreams.x\naddrs = 1\n".into())),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["details"][0]["line"].is_u64(), "{}", r.body);

    assert_eq!(generation(&etcd), gen, "nothing written");
    assert_eq!(keys(&etcd), all_keys);
    let after = c.call("GET", "/api/v1/history", None).await.body["entries"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_a_referenced_item_is_409_naming_the_referrers() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let r = c.call("DELETE", "/api/v1/upstreams/u", None).await;
    assert_eq!((r.status, r.code()), (409, "referenced"), "{r:?}");
    assert_eq!(r.body["error"]["details"][0]["item"], "locations.a");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("locations.a"));
    let r = c.call("DELETE", "/api/v1/locations/a", None).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["details"][0]["item"], "servers.s");
    assert!(keys(&etcd).contains(&"/louailink/upstreams/u".to_string()));
    // Once nothing refers to it, it goes.
    assert_eq!(
        c.call("DELETE", "/api/v1/servers/s", None).await.status,
        200
    );
    assert_eq!(
        c.call("DELETE", "/api/v1/locations/a", None).await.status,
        200
    );
    assert_eq!(
        c.call("DELETE", "/api/v1/upstreams/u", None).await.status,
        200
    );
}

async fn put_if(url: &str, tag: &str, addr: &str) -> common::Reply {
    let tag = format!("\"{tag}\"");
    common::call(
        url,
        "PUT",
        None,
        Some(json!({"addrs": [addr]})),
        &[("if-match", &tag)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_is_compare_and_swap() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let url = c.url("/api/v1/upstreams/u");
    // 0 = must not exist yet.
    let r = put_if(&url, "0", "127.0.0.1:1").await;
    assert_eq!(r.status, 201, "{r:?}");
    let tag = r.etag.clone().unwrap();
    let r = put_if(&url, "0", "127.0.0.1:2").await;
    assert_eq!((r.status, r.code()), (412, "revision_mismatch"), "{r:?}");
    let r = put_if(&url, &tag, "127.0.0.1:2").await;
    assert_eq!(r.status, 200, "{r:?}");
    // The old revision no longer matches, for writes and deletes.
    let r = put_if(&url, &tag, "127.0.0.1:3").await;
    assert_eq!(r.status, 412);
    assert!(r.body["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("current revision"));
    let quoted = format!("\"{tag}\"");
    let r = common::call(&url, "DELETE", None, None, &[("if-match", &quoted)]).await;
    assert_eq!(r.status, 412);
    let r = common::call(&url, "GET", None, None, &[]).await;
    assert_eq!(r.body["value"]["addrs"], json!(["127.0.0.1:2"]));
    // A change made straight in etcd also moves the revision.
    let current = r.etag.unwrap();
    etcd.etcdctl(&[
        "put",
        "/louailink/upstreams/u",
        r#"{"addrs":["127.0.0.1:4"]}"#,
    ]);
    assert_eq!(put_if(&url, &current, "127.0.0.1:5").await.status, 412);
    let r = common::call(
        &url,
        "PUT",
        None,
        Some(json!({"addrs": "x"})),
        &[("if-match", "abc")],
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_and_writes_nothing() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let gen = generation(&etcd);
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(
                json!({"kind": "locations", "name": "b", "value": {"path": "/b", "upstream": "u"}}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.body["valid"].clone(), r.body["added"].clone()),
        (200, json!(true), json!(["locations.b"])),
        "{r:?}"
    );
    let r = c
        .call("POST", "/api/v1/validate", Some(json!({"kind": "locations", "name": "b", "value": {"path": "/b", "upstream": "nope"}})))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid"));
    // A whole config that drops the server: valid, and says what it would remove.
    let text = "[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n[locations.a]\npath = \"/a\"\nupstream = \"u\"\n";
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(json!({"text": text, "format": "toml"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["removed"], json!(["servers.s"]));
    // Dropping the upstream but keeping the location: refused as the write would be.
    let text = "[locations.a]\npath = \"/a\"\nupstream = \"u\"\n";
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(json!({"text": text, "replace": true})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "referenced"), "{r:?}");
    assert_eq!(generation(&etcd), gen);
    assert!(keys(&etcd).contains(&"/louailink/servers/s".to_string()));
    assert!(!keys(&etcd).contains(&"/louailink/locations/b".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_round_trip_and_large_imports_in_steps() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let text = r#"[basic]
name = "fleet"

[upstreams.u]
addrs = ["127.0.0.1:9"]

[locations.a]
path = "/a"
upstream = "u"

[servers.s]
addr = ["127.0.0.1:18080"]
locations = ["a"]
"#;
    let r = c
        .call("PUT", "/api/v1/config", Some(Value::String(text.into())))
        .await;
    assert_eq!(
        (r.status, r.body["steps"].as_i64()),
        (200, Some(1)),
        "{r:?}"
    );
    let exported = c.call("GET", "/api/v1/config?format=toml", None).await;
    let Value::String(toml_text) = &exported.body else {
        panic!("not text: {exported:?}")
    };
    let a: toml::Value = toml::from_str(toml_text).unwrap();
    let b: toml::Value = toml::from_str(text).unwrap();
    assert_eq!(a, b, "export:\n{toml_text}");
    let json_export = c.call("GET", "/api/v1/config?format=json", None).await;
    assert_eq!(json_export.body["locations"]["a"]["upstream"], "u");

    // Merge keeps what the import does not mention; replace removes it.
    let more = "[upstreams.v]\naddrs = [\"127.0.0.1:10\"]\n";
    let r = c
        .call(
            "PUT",
            "/api/v1/config?merge=true",
            Some(Value::String(more.into())),
        )
        .await;
    assert_eq!(
        (r.status, r.body["added"].clone()),
        (200, json!(["upstreams.v"]))
    );
    assert!(keys(&etcd).contains(&"/louailink/servers/s".to_string()));

    // 300 locations: more than one transaction holds; applied in consistent steps.
    let mut big = String::from("[upstreams.w]\naddrs = [\"127.0.0.1:11\"]\n");
    for i in 0..300 {
        big.push_str(&format!(
            "[locations.l{i:03}]\npath = \"/p{i}\"\nupstream = \"w\"\n"
        ));
    }
    let r = c
        .call("PUT", "/api/v1/config", Some(Value::String(big)))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["steps"].as_i64().unwrap() >= 3, "{r:?}");
    let list = c.call("GET", "/api/v1/locations", None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 300);
    assert_eq!(c.call("GET", "/api/v1/servers/s", None).await.status, 404);
    assert_eq!(
        c.call("GET", "/api/v1/basic", None).await.body["revision"],
        0
    );
    // JSON imports too.
    let r = c
        .call(
            "PUT",
            "/api/v1/config?format=json&merge=true",
            Some(Value::String(
                r#"{"plugins": {"p": {"category": "ping", "path": "/ping"}}}"#.into(),
            )),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_field_diffs_and_rollback_goes_back() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    c.call(
        "PUT",
        "/api/v1/upstreams/u",
        Some(json!({"addrs": ["127.0.0.1:1"]})),
    )
    .await;
    c.call(
        "PUT",
        "/api/v1/upstreams/u",
        Some(json!({"addrs": ["127.0.0.1:2"], "algo": "random"})),
    )
    .await;
    c.call(
        "PUT",
        "/api/v1/locations/a",
        Some(json!({"path": "/a", "upstream": "u"})),
    )
    .await;
    let h = c.call("GET", "/api/v1/history", None).await;
    let entries = h.body["entries"].as_array().unwrap().clone();
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [3, 2, 1]);
    let modified = &entries[1]["changes"][0];
    assert_eq!(
        (modified["item"].as_str(), modified["action"].as_str()),
        (Some("upstreams.u"), Some("modified"))
    );
    let fields: Vec<&str> = modified["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["addrs", "algo"]);
    assert_eq!(modified["fields"][0]["before"], json!(["127.0.0.1:1"]));
    let only = c
        .call("GET", "/api/v1/history?item=locations.a", None)
        .await;
    assert_eq!(only.body["entries"].as_array().unwrap().len(), 1);
    // History keys live under the prefix, readable.
    assert!(keys(&etcd)
        .iter()
        .any(|k| k.starts_with("/louailink/history/")));

    let r = c
        .call("POST", "/api/v1/rollback", Some(json!({"to": 1})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.call("GET", "/api/v1/upstreams/u", None).await.body["value"],
        json!({"addrs": ["127.0.0.1:1"]})
    );
    assert_eq!(c.call("GET", "/api/v1/locations/a", None).await.status, 404);
    let newest = &c.call("GET", "/api/v1/history?limit=1", None).await.body["entries"][0];
    assert_eq!(newest["action"], "rollback");
    assert_eq!(
        c.call("POST", "/api/v1/rollback", Some(json!({"to": 99})))
            .await
            .status,
        400
    );
    assert_eq!(
        c.call("POST", "/api/v1/rollback", Some(json!({"too": 1})))
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route_that_answers() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let doc = c.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(doc.body["openapi"], "3.0.3");
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    let mut calls = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{kind}", "plugins")
                .replace("{name}", "doc-check");
            let body = match (method.as_str(), path.as_str()) {
                ("put", "/api/v1/config") => Some(Value::String(
                    "[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n".into(),
                )),
                ("put", _) => Some(json!({"category": "ping", "path": "/doc"})),
                ("post", "/api/v1/rollback") => Some(json!({"to": 0})),
                ("post", _) => Some(
                    json!({"kind": "upstreams", "name": "x", "value": {"addrs": ["127.0.0.1:1"]}}),
                ),
                _ => None,
            };
            let concrete = if concrete == "/api/v1/config" && method == "put" {
                "/api/v1/config?merge=true".to_string()
            } else {
                concrete
            };
            let r = c.call(&method.to_uppercase(), &concrete, body).await;
            assert_ne!(r.status, 405, "{method} {path}");
            let unrouted = r.status == 404 && r.body.to_string().contains("no such API path");
            assert!(!unrouted, "{method} {path} is documented but not routed");
            assert!(r.status < 500, "{method} {path}: {r:?}");
            calls += 1;
        }
    }
    assert_eq!(calls, 14);
    let r = c.call("GET", "/api/v1/nothing/here/at/all", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}
