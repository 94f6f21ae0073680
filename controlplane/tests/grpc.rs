//! gRPC and REST are two faces of one service: the same operations give the same results,
//! and the same errors carry the same body.

mod common;

use common::etcd::Etcd;
use common::{put_base, Control, ADMIN, VIEWER};
use louailink_control::api::grpc::error_body;
use louailink_control::pb;
use serde_json::{json, Value};
use tonic::Code;

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    r
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_rest_give_the_same_results() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let mut g = c.grpc().await;

    // Written with gRPC, read with REST (and back).
    let put = pb::PutItemRequest {
        kind: "upstreams".into(),
        name: "u".into(),
        value_json: json!({"addrs": "127.0.0.1:9"}).to_string(),
        if_match: Some(0),
    };
    let w = g
        .put_item(authed(put, ADMIN))
        .await
        .expect("put")
        .into_inner();
    assert_eq!(
        (w.added.clone(), w.steps),
        (vec!["upstreams.u".to_string()], 1)
    );
    let rest = c.call("GET", "/api/v1/upstreams/u", None).await;
    assert_eq!(rest.body["revision"].as_i64(), Some(w.revision));
    let item = g
        .get_item(authed(
            pb::GetItemRequest {
                kind: "upstreams".into(),
                name: "u".into(),
            },
            ADMIN,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(parse(&item.value_json), rest.body["value"]);
    assert_eq!(item.revision, w.revision);
    put_base(&c).await;

    let list = g
        .list_items(authed(
            pb::ListItemsRequest {
                kind: "locations".into(),
            },
            VIEWER,
        ))
        .await
        .expect("list")
        .into_inner();
    let rest = c.call("GET", "/api/v1/locations", None).await;
    assert_eq!(list.revision, rest.body["revision"].as_i64().unwrap());
    let names: Vec<&str> = list.items.iter().map(|i| i.name.as_str()).collect();
    let rest_names: Vec<&str> = rest.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, rest_names);

    // The same invalid write: same code family, same error body.
    let bad = json!({"path": "/b", "upstream": "nope"});
    let rest = c
        .call("PUT", "/api/v1/locations/b", Some(bad.clone()))
        .await;
    let put = pb::PutItemRequest {
        kind: "locations".into(),
        name: "b".into(),
        value_json: bad.to_string(),
        if_match: None,
    };
    let e = g.put_item(authed(put, ADMIN)).await.unwrap_err();
    assert_eq!((rest.status, e.code()), (400, Code::InvalidArgument));
    assert_eq!(error_body(&e).expect("details"), rest.body);
    assert_eq!(e.metadata().get("x-error-code").unwrap(), "invalid");

    // 409 with the referrers.
    let rest = c.call("DELETE", "/api/v1/upstreams/u", None).await;
    let del = pb::DeleteItemRequest {
        kind: "upstreams".into(),
        name: "u".into(),
        if_match: None,
    };
    let e = g.delete_item(authed(del, ADMIN)).await.unwrap_err();
    assert_eq!((rest.status, e.code()), (409, Code::FailedPrecondition));
    assert_eq!(error_body(&e).unwrap(), rest.body);

    // 412.
    let put = pb::PutItemRequest {
        kind: "upstreams".into(),
        name: "u".into(),
        value_json: json!({"addrs": ["127.0.0.1:8"]}).to_string(),
        if_match: Some(1),
    };
    let e = g.put_item(authed(put, ADMIN)).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted);
    assert_eq!(
        error_body(&e).unwrap()["error"]["code"],
        "revision_mismatch"
    );

    // 401 / 403.
    let e = g
        .list_items(tonic::Request::new(pb::ListItemsRequest {
            kind: "locations".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let put = pb::PutItemRequest {
        kind: "upstreams".into(),
        name: "v".into(),
        value_json: json!({"addrs": ["127.0.0.1:8"]}).to_string(),
        if_match: None,
    };
    assert_eq!(
        g.put_item(authed(put, VIEWER)).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // Export, history, validate, nodes, events: the same content.
    let x = g
        .export_config(authed(
            pb::ExportRequest {
                format: "json".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let rest = c.call("GET", "/api/v1/config?format=json", None).await;
    assert_eq!(parse(&x.text), rest.body);
    let h = g
        .history(authed(
            pb::HistoryRequest {
                limit: 10,
                item: String::new(),
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let rest = c.call("GET", "/api/v1/history?limit=10", None).await;
    let ids: Vec<i64> = h.entries.iter().map(|e| e.id).collect();
    let rest_ids: Vec<i64> = rest.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, rest_ids);
    assert_eq!(
        h.entries[0].changes[0].fields[0].path,
        rest.body["entries"][0]["changes"][0]["fields"][0]["path"]
    );
    let v = g
        .validate(authed(
            pb::ValidateRequest {
                kind: "locations".into(),
                name: "c".into(),
                value_json: json!({"path": "/c", "upstream": "u"}).to_string(),
                ..Default::default()
            },
            VIEWER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    assert_eq!(v.added, ["locations.c"]);
    let n = g
        .list_nodes(authed(pb::ListNodesRequest {}, ADMIN))
        .await
        .unwrap()
        .into_inner();
    let rest = c.call("GET", "/api/v1/nodes", None).await;
    assert_eq!(
        n.latest_revision,
        rest.body["latest_revision"].as_i64().unwrap()
    );
    let ev = g
        .list_events(authed(
            pb::ListEventsRequest {
                limit: 100,
                after_id: 0,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let rest = c.call("GET", "/api/v1/events?limit=100", None).await;
    let ev_ids: Vec<u64> = ev.events.iter().map(|e| e.id).collect();
    let rest_ids: Vec<u64> = rest.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ev_ids, rest_ids);

    // Import through gRPC, rollback through gRPC.
    let imported = g
        .import_config(authed(
            pb::ImportRequest {
                text: "[upstreams.z]\naddrs = [\"127.0.0.1:7\"]\n".into(),
                format: "toml".into(),
                merge: true,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.added, ["upstreams.z"]);
    let back = g
        .rollback(authed(
            pb::RollbackRequest {
                to: imported.history_ids[0] - 1,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.removed, ["upstreams.z"]);
    assert_eq!(c.call("GET", "/api/v1/upstreams/z", None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_watch_streams_events() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let mut g = c.grpc().await;
    let mut stream = g
        .watch_events(pb::WatchEventsRequest { after_id: 0 })
        .await
        .expect("watch")
        .into_inner();
    put_base(&c).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(common::LIMIT, stream.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        seen.push(e);
    }
    assert!(seen.iter().all(|e| e.name == "diff_config"));
    assert!(seen[2].message.contains("servers.s"), "{:?}", seen[2]);
    assert_eq!(parse(&seen[2].details_json)["action"], "put");
}
