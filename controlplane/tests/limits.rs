//! The control plane's own per-item size limit (512 KiB of JSON): an item over it is refused
//! at write time, naming it, over REST, gRPC and import, and nothing is written.

mod common;

use common::etcd::Etcd;
use common::{generation, keys, Control, ADMIN};
use louailink_control::api::grpc::error_body;
use louailink_control::pb;
use serde_json::{json, Value};

/// A mock plugin whose JSON is about 600 KiB: valid, and under etcd's 1.5 MiB.
fn big_plugin() -> Value {
    json!({"category": "mock", "status": 200, "data": "x".repeat(600 * 1024)})
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN}").parse().expect("metadata"),
    );
    r
}

fn assert_names_item(body: &Value, item: &str) {
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(item) && message.contains("per-item limit"),
        "{body}"
    );
    assert_eq!(body["error"]["details"][0]["item"], item, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_over_the_per_item_limit_is_refused_naming_it() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let (gen, before) = (generation(&etcd), keys(&etcd));

    let r = c
        .call("PUT", "/api/v1/plugins/big", Some(big_plugin()))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid"),
        "{:?}",
        r.body["error"]
    );
    assert_names_item(&r.body, "plugins.big");

    let doc = json!({"plugins": {"big": big_plugin()}}).to_string();
    let r = c
        .call(
            "PUT",
            "/api/v1/config?merge=true&format=json",
            Some(Value::String(doc.clone())),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid"),
        "{:?}",
        r.body["error"]
    );
    assert_names_item(&r.body, "plugins.big");

    let r = c
        .call(
            "POST",
            "/api/v1/validate?format=json",
            Some(Value::String(doc.clone())),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body["error"]);
    assert_names_item(&r.body, "plugins.big");

    let mut g = c.grpc().await;
    let put = pb::PutItemRequest {
        kind: "plugins".into(),
        name: "big".into(),
        value_json: big_plugin().to_string(),
        if_match: None,
    };
    let e = g.put_item(authed(put)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_names_item(&error_body(&e).expect("error body"), "plugins.big");
    let import = pb::ImportRequest {
        text: doc,
        format: "json".into(),
        merge: true,
    };
    let e = g.import_config(authed(import)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_names_item(&error_body(&e).expect("error body"), "plugins.big");

    assert_eq!(generation(&etcd), gen, "nothing written");
    assert_eq!(keys(&etcd), before);
    // Just under the limit is fine.
    let ok = json!({"category": "mock", "status": 200, "data": "x".repeat(500 * 1024)});
    let r = c.call("PUT", "/api/v1/plugins/big", Some(ok)).await;
    assert_eq!(r.status, 201, "{:?}", r.body["error"]);
}
