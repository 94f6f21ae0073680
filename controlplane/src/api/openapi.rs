//! The OpenAPI 3.0 document served at `/api/v1/openapi.json`. Its paths and methods are
//! checked against the router's [`crate::api::rest::ROUTES`] (unit test here, and end to end
//! by calling every documented operation).

use louailink_shared::kind::KIND_NAMES;
use louailink_shared::KINDS;
use serde_json::{json, Value};

fn error_responses(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        map.insert(
            (*code).to_string(),
            json!({"description": describe(code), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(map)
}

fn describe(code: &str) -> &'static str {
    match code {
        "400" => "invalid request or config (details list every problem)",
        "401" => "no or unknown token",
        "403" => "viewer token used for a write",
        "404" => "no such kind, item or history entry",
        "409" => "referred to by other items (details name them), or changed concurrently",
        "412" => "If-Match names another revision",
        "429" => "too many failed authentications, or this token's writes and dry runs already in progress",
        "503" => "etcd unavailable, or a change staged over several transactions not finished",
        _ => "error",
    }
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn op(
    summary: &str,
    params: Value,
    body: Option<Value>,
    success: (&str, Value),
    errors: &[&str],
) -> Value {
    let mut responses = error_responses(errors);
    if let Value::Object(r) = &mut responses {
        r.insert(success.0.to_string(), success.1);
    }
    let mut o = json!({"summary": summary, "parameters": params, "responses": responses});
    if let (Some(body), Value::Object(o)) = (body, &mut o) {
        o.insert("requestBody".into(), body);
    }
    o
}

fn json_body(s: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": s}}})
}

/// The document.
pub fn document() -> Value {
    let kind = json!({"name": "kind", "in": "path", "required": true, "schema": {"type": "string", "enum": KINDS}});
    let name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let if_match = json!({"name": "If-Match", "in": "header", "required": false, "description": "compare-and-swap: the revision last read (its ETag); 0 = must not exist", "schema": {"type": "string"}});
    let format = json!({"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["toml", "json", "yaml"]}});
    let merge = json!({"name": "merge", "in": "query", "required": false, "description": "keep the stored items the document does not mention", "schema": {"type": "boolean"}});
    let mut kinds = serde_json::Map::new();
    for kind in KIND_NAMES {
        kinds.insert(
            kind.into(),
            json!({"type": "object", "additionalProperties": true}),
        );
    }
    let read_errors = ["401", "404", "429", "503"];
    let write_errors = ["400", "401", "403", "404", "409", "412", "429", "503"];
    let item_value = json!({"type": "object", "description": "the item's fields, as in the TOML", "additionalProperties": true});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "LouAILink control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Config items in etcd, validated like `louailink -t`; every write is one etcd transaction. Auth: `Authorization: Bearer <token>` (admin or viewer)."
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
                    "code": {"type": "string", "enum": ["invalid", "unauthenticated", "forbidden", "not_found", "referenced", "conflict", "revision_mismatch", "rate_limited", "unavailable", "internal"]},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object", "properties": {"item": {"type": "string"}, "key": {"type": "string"}, "message": {"type": "string"}, "line": {"type": "integer"}}}}}}}},
                "Item": {"type": "object", "properties": {"kind": {"type": "string"}, "name": {"type": "string"}, "revision": {"type": "integer"}, "value": item_value}},
                "ItemList": {"type": "object", "properties": {"items": {"type": "array", "items": schema("Item")}, "revision": {"type": "integer"}}},
                "WriteOutcome": {"type": "object", "properties": {"revision": {"type": "integer"}, "generation": {"type": "integer"}, "history_ids": {"type": "array", "items": {"type": "integer"}}, "added": {"type": "array", "items": {"type": "string"}}, "modified": {"type": "array", "items": {"type": "string"}}, "removed": {"type": "array", "items": {"type": "string"}}, "steps": {"type": "integer"}}},
                "ConfigDocument": {"type": "object", "description": "a whole config, as GET /api/v1/config?format=json exports it: basic and a table per kind", "properties": kinds},
                "ValidateRequest": {"type": "object", "description": "one item (kind, name, value) or a whole config text (text, format, replace: true by default)", "properties": {"kind": {"type": "string"}, "name": {"type": "string"}, "value": {"type": "object"}, "text": {"type": "string"}, "format": {"type": "string"}, "replace": {"type": "boolean"}}},
                "ValidateOutcome": {"type": "object", "properties": {"valid": {"type": "boolean"}, "added": {"type": "array", "items": {"type": "string"}}, "modified": {"type": "array", "items": {"type": "string"}}, "removed": {"type": "array", "items": {"type": "string"}}, "steps": {"type": "integer"}}},
                "HistoryEntry": {"type": "object", "properties": {"id": {"type": "integer"}, "revision": {"type": "integer"}, "time": {"type": "string"}, "actor": {"type": "string"}, "action": {"type": "string"}, "truncated": {"type": "boolean"}, "changes": {"type": "array", "items": {"type": "object", "properties": {"item": {"type": "string"}, "action": {"type": "string", "enum": ["added", "removed", "modified"]}, "fields": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "before": {}, "after": {}}}}}}}}},
                "Node": {"type": "object", "properties": {"id": {"type": "string"}, "host": {"type": "string"}, "version": {"type": "string"}, "applied_revision": {"type": "integer"}, "in_sync": {"type": "boolean"}, "config_hash": {"type": "string"}, "status": {"type": "string"}, "rejected": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}, "revision": {"type": "integer"}, "error": {"type": "string"}}}}, "alarms": {"type": "array", "items": {"type": "string"}}, "backends": {"type": "array", "items": {"type": "object", "properties": {"upstream": {"type": "string"}, "addr": {"type": "string"}, "healthy": {"type": "boolean"}}}}, "started_at": {"type": "string"}, "last_seen": {"type": "string"}}},
                "Event": {"type": "object", "properties": {"id": {"type": "integer"}, "time": {"type": "string"}, "name": {"type": "string"}, "message": {"type": "string"}, "node": {"type": "string"}, "details": {"type": "object"}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {"200": {"description": "OpenAPI 3.0"}}}},
            "/api/v1/config": {
                "get": op("export the whole config", json!([format]), None, ("200", json!({"description": "TOML or JSON text; ETag = revision"})), &read_errors),
                "put": op("import a whole config (TOML, JSON or YAML) as one change; merge=true keeps items not mentioned",
                    json!([format, merge]),
                    Some(json!({"required": true, "content": {"application/toml": {"schema": {"type": "string"}}, "application/json": {"schema": schema("ConfigDocument")}, "application/yaml": {"schema": {"type": "string"}}}})),
                    ("200", ok("written", schema("WriteOutcome"))), &write_errors)
            },
            "/api/v1/validate": {"post": op("dry run: a valid change answers what it would do; an invalid one the error the write would get. The body is one item or a config text as JSON (ValidateRequest), or a whole config document exactly as PUT /api/v1/config takes it (so an export validates as is; merge=true keeps items it does not mention)",
                json!([format, merge]),
                Some(json!({"required": true, "content": {
                    "application/json": {"schema": {"anyOf": [schema("ValidateRequest"), schema("ConfigDocument")]}},
                    "application/toml": {"schema": {"type": "string"}},
                    "application/yaml": {"schema": {"type": "string"}}}})),
                ("200", ok("valid", schema("ValidateOutcome"))), &["400", "401", "404", "409", "429", "503"])},
            "/api/v1/history": {"get": op("changes, newest first, with field-level diffs (secrets hashed)",
                json!([{"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "item", "in": "query", "schema": {"type": "string"}, "description": "e.g. locations.api"}]),
                None, ("200", ok("entries", json!({"type": "object", "properties": {"entries": {"type": "array", "items": schema("HistoryEntry")}}}))), &read_errors)},
            "/api/v1/rollback": {"post": op("undo every change after a history entry, as one validated change",
                json!([]), Some(json_body(json!({"type": "object", "required": ["to"], "properties": {"to": {"type": "integer"}}}))),
                ("200", ok("written", schema("WriteOutcome"))), &write_errors)},
            "/api/v1/nodes": {"get": op("data-plane nodes", json!([]), None,
                ("200", ok("nodes", json!({"type": "object", "properties": {"nodes": {"type": "array", "items": schema("Node")}, "latest_revision": {"type": "integer"}}}))), &read_errors)},
            "/api/v1/events": {"get": op("recent events; with Accept: text/event-stream (or stream=true) a live SSE stream (Last-Event-ID resumes)",
                json!([{"name": "after", "in": "query", "schema": {"type": "integer"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "stream", "in": "query", "schema": {"type": "boolean"}}]),
                None, ("200", json!({"description": "events", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"events": {"type": "array", "items": schema("Event")}, "webhook": {"type": "object", "properties": {"delivered": {"type": "integer"}, "failed": {"type": "integer"}, "dropped": {"type": "integer"}, "retries": {"type": "integer"}}}}}},
                    "text/event-stream": {"schema": {"type": "string"}}}})), &read_errors)},
            "/api/v1/basic": {
                "get": op("the basic item (ETag = revision)", json!([]), None, ("200", ok("item", schema("Item"))), &read_errors),
                "put": op("replace the basic item", json!([if_match]), Some(json_body(item_value.clone())), ("200", ok("written", schema("WriteOutcome"))), &write_errors)
            },
            "/api/v1/{kind}": {"get": op("list the items of a kind", json!([kind]), None, ("200", ok("items", schema("ItemList"))), &read_errors)},
            "/api/v1/{kind}/{name}": {
                "get": op("read an item (ETag = revision)", json!([kind, name]), None, ("200", ok("item", schema("Item"))), &read_errors),
                "put": op("create (201) or replace (200) an item; If-Match makes it compare-and-swap", json!([kind, name, if_match]),
                    Some(json_body(item_value)), ("200", ok("written", schema("WriteOutcome"))), &write_errors),
                "delete": op("delete an item (409 while others refer to it)", json!([kind, name, if_match]), None,
                    ("200", ok("deleted", schema("WriteOutcome"))), &write_errors)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::rest::ROUTES;
    use std::collections::BTreeSet;

    #[test]
    fn documents_exactly_the_routes() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }
}
