//! `POST /api/v1/validate` takes the same bodies as the writes it dry-runs: besides its JSON
//! forms, a whole config document exactly as `PUT /api/v1/config` takes it, so an exported
//! config validates as is. Nothing is ever written.

mod common;

use common::etcd::Etcd;
use common::{call, generation, keys, put_base, Control, Reply};
use louailink_control::pb;
use serde_json::{json, Value};

/// `POST /api/v1/validate` of raw `text` with `content_type` (none when empty).
async fn validate_text(c: &Control, query: &str, text: &str, content_type: &str) -> Reply {
    let headers: Vec<(&str, &str)> = if content_type.is_empty() {
        Vec::new()
    } else {
        vec![("content-type", content_type)]
    };
    call(
        &c.url(&format!("/api/v1/validate{query}")),
        "POST",
        None,
        Some(Value::String(text.to_string())),
        &headers,
    )
    .await
}

/// etcd, a control plane on it holding [`put_base`]'s items, and the generation then.
async fn with_base() -> (Etcd, Control, String) {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let gen = generation(&etcd);
    (etcd, c, gen)
}

/// A valid dry run that would change nothing.
fn assert_no_change(r: &Reply, what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(r.body["valid"], json!(true), "{what}: {r:?}");
    for list in ["added", "modified", "removed"] {
        assert_eq!(r.body[list], json!([]), "{what}: {list}: {r:?}");
    }
    assert_eq!(r.body["steps"], json!(0), "{what}: {r:?}");
}

/// The details of an error body as `(item, key)` pairs.
fn details(r: &Reply) -> Vec<(String, String)> {
    r.body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| {
                    let field = |k: &str| d[k].as_str().unwrap_or("").to_string();
                    (field("item"), field("key"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_config_validates_as_is() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let r = c
        .call("PUT", "/api/v1/basic", Some(json!({"name": "fleet"})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let gen = generation(&etcd);

    let toml = c.call("GET", "/api/v1/config?format=toml", None).await;
    let Value::String(toml) = toml.body else {
        panic!("TOML export is text: {toml:?}")
    };
    assert_no_change(
        &validate_text(&c, "", &toml, "application/toml").await,
        "TOML export, TOML content type",
    );
    assert_no_change(
        &validate_text(&c, "", &toml, "").await,
        "TOML export, no content type",
    );
    assert_no_change(
        &validate_text(&c, "?format=toml", &toml, "text/plain").await,
        "TOML export, ?format=toml",
    );

    let exported = c.call("GET", "/api/v1/config?format=json", None).await;
    assert!(exported.body.is_object(), "{exported:?}");
    let r = c
        .call("POST", "/api/v1/validate", Some(exported.body.clone()))
        .await;
    assert_no_change(&r, "JSON export, JSON content type");

    // The same export through gRPC's Validate (its whole-config form).
    let x = c
        .grpc()
        .await
        .export_config(pb::ExportRequest {
            format: "json".into(),
        })
        .await
        .expect("export")
        .into_inner();
    let v = c
        .grpc()
        .await
        .validate(pb::ValidateRequest {
            text: x.text,
            format: x.format,
            replace: true,
            ..Default::default()
        })
        .await
        .expect("an export validates over gRPC")
        .into_inner();
    assert!(v.valid && v.added.is_empty() && v.modified.is_empty() && v.removed.is_empty());

    // A changed export says what it would change, like the import would.
    let changed = toml.replace("name = \"fleet\"", "name = \"fleet2\"");
    assert_ne!(changed, toml, "the export holds basic.name");
    let r = validate_text(&c, "", &changed, "application/toml").await;
    assert_eq!(
        (r.status, r.body["modified"].clone()),
        (200, json!(["basic"])),
        "{r:?}"
    );
    assert_eq!(generation(&etcd), gen, "validating wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_whole_document_is_400_naming_the_item_and_writes_nothing() {
    let (etcd, c, gen) = with_base().await;
    let before = keys(&etcd);
    let toml = c.call("GET", "/api/v1/config?format=toml", None).await;
    let Value::String(toml) = toml.body else {
        panic!("TOML export is text: {toml:?}")
    };

    // A reference to an upstream that does not exist.
    let bad = format!("{toml}\n[locations.b]\npath = \"/b\"\nupstream = \"nope\"\n");
    let r = validate_text(&c, "", &bad, "application/toml").await;
    assert_eq!((r.status, r.code()), (400, "invalid"), "{r:?}");
    assert!(
        details(&r).contains(&("locations.b".into(), "upstream".into())),
        "{r:?}"
    );

    // A misspelt key, and a misspelt kind, in a JSON document.
    let mut doc = c.call("GET", "/api/v1/config?format=json", None).await.body;
    doc["upstreams"]["u"]["algoo"] = json!("random");
    doc["locatoins"] = json!({"c": {"path": "/c"}});
    let r = c.call("POST", "/api/v1/validate", Some(doc)).await;
    assert_eq!((r.status, r.code()), (400, "invalid"), "{r:?}");
    let found = details(&r);
    assert!(
        found.contains(&("upstreams.u".into(), "algoo".into())),
        "{r:?}"
    );
    assert!(
        found.contains(&(String::new(), "locatoins".into())),
        "{r:?}"
    );
    assert!(
        r.body
            .to_string()
            .contains("did you mean \\\"locations\\\""),
        "{r:?}"
    );

    // A TOML syntax error names its line.
    let r = validate_text(&c, "", "[upstreams.u]\naddrs = [\n", "application/toml").await;
    assert_eq!((r.status, r.code()), (400, "invalid"), "{r:?}");
    assert!(r.body["error"]["details"][0]["line"].is_u64(), "{r:?}");

    // Keys of the JSON forms and of a document together: which is meant is unclear.
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(json!({"kind": "upstreams", "upstreams": {}})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.to_string().contains("mixes"), "{r:?}");

    assert_eq!(generation(&etcd), gen, "nothing was written");
    assert_eq!(keys(&etcd), before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_replaces_unless_merge_like_the_import() {
    let (etcd, c, gen) = with_base().await;
    let doc = "[locations.b]\npath = \"/b\"\nupstream = \"u\"\n";
    let toml = [("content-type", "application/toml")];
    let import = |query: &'static str| {
        let url = c.url(&format!("/api/v1/config{query}"));
        async move { call(&url, "PUT", None, Some(Value::String(doc.into())), &toml).await }
    };
    // Replacing: upstream u would go while the new location b refers to it; the dry run
    // gets the import's own error.
    let r = validate_text(&c, "", doc, "application/toml").await;
    assert_eq!((r.status, r.code()), (400, "invalid"), "{r:?}");
    assert!(
        details(&r).contains(&("locations.b".into(), "upstream".into())),
        "{r:?}"
    );
    let written = import("").await;
    assert_eq!((written.status, details(&written)), (r.status, details(&r)));
    assert_eq!(generation(&etcd), gen, "neither wrote anything");
    // Merged in: only b is added, as the import with merge=true then does.
    let r = validate_text(&c, "?merge=true", doc, "application/toml").await;
    assert_eq!(
        (r.status, r.body["added"].clone(), r.body["removed"].clone()),
        (200, json!(["locations.b"]), json!([])),
        "{r:?}"
    );
    assert_eq!(generation(&etcd), gen, "validating wrote nothing");
    let written = import("?merge=true").await;
    assert_eq!(
        (written.status, written.body["added"].clone()),
        (200, r.body["added"].clone()),
        "{written:?}"
    );
}

/// A regex that parses but compiles past the data plane's size limit: the control plane used
/// to store it (201) and every node then refused the whole config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_over_the_compiled_size_limit_is_refused_as_the_nodes_would() {
    let (etcd, c, gen) = with_base().await;
    let huge = json!({"path": "~^/b(a{1000}){1000}$", "upstream": "u"});
    let r = c
        .call("PUT", "/api/v1/locations/huge", Some(huge.clone()))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(details(&r), [("locations.huge".into(), "path".into())]);
    assert!(r.body.to_string().contains("size limit"), "{r:?}");
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(json!({"locations": {"huge": huge}})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        details(&r).contains(&("locations.huge".into(), "path".into())),
        "{r:?}"
    );
    assert_eq!(generation(&etcd), gen, "nothing written");
}

/// A plugin naming an upstream that does not exist: the nodes could not build it, so the
/// control plane refuses it too, naming the plugin and its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_naming_a_missing_upstream_is_refused_as_the_nodes_would() {
    let (etcd, c, gen) = with_base().await;
    let split = json!({"category": "traffic_split", "upstream": "canary", "weight": 10});
    let r = c
        .call("PUT", "/api/v1/plugins/split", Some(split.clone()))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(details(&r), [("plugins.split".into(), "upstream".into())]);
    assert!(r.body.to_string().contains("canary"), "{r:?}");
    assert_eq!(generation(&etcd), gen, "nothing written");
    // With the upstream in the same document it is fine.
    let canary = json!({"addrs": ["127.0.0.1:9"]});
    let r = c
        .call(
            "POST",
            "/api/v1/validate",
            Some(json!({"plugins": {"split": split}, "upstreams": {"canary": canary}})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}
