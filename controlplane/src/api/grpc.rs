//! The gRPC face of the service (`proto/louailink/control/v1/control.proto`, tonic). Like
//! REST it only translates: metadata `authorization` → [`Caller`], messages → service calls,
//! [`ApiError`] → a status whose details hold the same JSON body REST sends.

use crate::auth::{Auth, Caller};
use crate::error::ApiError;
use crate::events::Event;
use crate::pb;
use crate::pb::control_server::{Control, ControlServer};
use crate::service::{format_of, Check, ItemView, Service, WriteOutcome};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Code, Request, Response, Status};

/// The gRPC service.
pub struct Grpc {
    service: Arc<Service>,
    auth: Arc<Auth>,
}

/// The tonic server for `service`.
pub fn server(service: Arc<Service>, auth: Arc<Auth>) -> ControlServer<Grpc> {
    ControlServer::new(Grpc { service, auth })
        .max_decoding_message_size(crate::api::rest::BODY_LIMIT)
        .max_encoding_message_size(crate::api::rest::BODY_LIMIT)
}

/// The status for an API error: a matching code, the message, the JSON body as details and
/// `x-error-code` metadata.
pub fn status(e: &ApiError) -> Status {
    let code = match e {
        ApiError::Invalid { .. } => Code::InvalidArgument,
        ApiError::Unauthenticated(_) => Code::Unauthenticated,
        ApiError::Forbidden(_) => Code::PermissionDenied,
        ApiError::NotFound(_) => Code::NotFound,
        ApiError::Referenced { .. } => Code::FailedPrecondition,
        ApiError::Conflict { .. } | ApiError::RevisionMismatch { .. } => Code::Aborted,
        ApiError::RateLimited(_) => Code::ResourceExhausted,
        ApiError::Unavailable(_) => Code::Unavailable,
        ApiError::Internal(_) => Code::Internal,
    };
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut status = Status::with_details(code, e.to_string(), body.into());
    if let Ok(v) = e.code().parse() {
        status.metadata_mut().insert("x-error-code", v);
    }
    status
}

/// The REST error body carried by a status from this server, if any.
pub fn error_body(status: &Status) -> Option<Value> {
    serde_json::from_slice(status.details()).ok()
}

impl Grpc {
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let peer = request
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.auth.check(peer, header).map_err(|e| status(&e))
    }

    /// The caller of a request with a body, and one of its token's slots (see
    /// [`Auth::admit`]), held until answered.
    async fn admitted<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Caller, tokio::sync::OwnedSemaphorePermit), Status> {
        let caller = self.caller(request)?;
        let permit = self.auth.admit(&caller).await.map_err(|e| status(&e))?;
        Ok((caller, permit))
    }
}

fn item(v: ItemView) -> pb::Item {
    pb::Item {
        kind: v.kind.to_string(),
        name: v.name,
        revision: v.revision,
        value_json: v.value.to_string(),
    }
}

fn written(o: WriteOutcome) -> pb::WriteResponse {
    pb::WriteResponse {
        revision: o.revision,
        generation: o.generation,
        history_ids: o.history_ids,
        added: o.added,
        modified: o.modified,
        removed: o.removed,
        steps: i32::try_from(o.steps).unwrap_or(i32::MAX),
    }
}

fn event(e: Event) -> pb::Event {
    pb::Event {
        id: e.id,
        time: e.time,
        name: e.name,
        message: e.message,
        node: e.node,
        details_json: e.details.to_string(),
    }
}

fn json_of(text: &str) -> Result<Value, Status> {
    serde_json::from_str(text)
        .map_err(|e| status(&ApiError::invalid(format!("value_json is not JSON: {e}"))))
}

fn opt_json(v: &Option<Value>) -> String {
    v.as_ref().map(Value::to_string).unwrap_or_default()
}

type Reply<T> = Result<Response<T>, Status>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Control for Grpc {
    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Reply<pb::ListItemsResponse> {
        let caller = self.caller(&request)?;
        let r = request.into_inner();
        let list = self
            .service
            .list(&caller, &r.kind)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::ListItemsResponse {
            items: list.items.into_iter().map(item).collect(),
            revision: list.revision,
        }))
    }

    async fn get_item(&self, request: Request<pb::GetItemRequest>) -> Reply<pb::Item> {
        let caller = self.caller(&request)?;
        let r = request.into_inner();
        let v = self
            .service
            .get(&caller, &r.kind, &r.name)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(item(v)))
    }

    async fn put_item(&self, request: Request<pb::PutItemRequest>) -> Reply<pb::WriteResponse> {
        let (caller, _slot) = self.admitted(&request).await?;
        let r = request.into_inner();
        let value = json_of(&r.value_json)?;
        let o = self
            .service
            .put(&caller, &r.kind, &r.name, value, r.if_match)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(written(o)))
    }

    async fn delete_item(
        &self,
        request: Request<pb::DeleteItemRequest>,
    ) -> Reply<pb::WriteResponse> {
        let (caller, _slot) = self.admitted(&request).await?;
        let r = request.into_inner();
        let o = self
            .service
            .delete(&caller, &r.kind, &r.name, r.if_match)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(written(o)))
    }

    async fn validate(&self, request: Request<pb::ValidateRequest>) -> Reply<pb::ValidateResponse> {
        let (caller, _slot) = self.admitted(&request).await?;
        let r = request.into_inner();
        let check = if r.kind.is_empty() {
            let format = format_of(&r.format).map_err(|e| status(&e))?;
            Check::Config {
                text: r.text,
                format,
                replace: r.replace,
            }
        } else {
            Check::Item {
                kind: r.kind,
                name: r.name,
                value: json_of(&r.value_json)?,
            }
        };
        let o = self
            .service
            .validate(&caller, check)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::ValidateResponse {
            valid: o.valid,
            added: o.added,
            modified: o.modified,
            removed: o.removed,
            steps: i32::try_from(o.steps).unwrap_or(i32::MAX),
        }))
    }

    async fn export_config(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Reply<pb::ExportResponse> {
        let caller = self.caller(&request)?;
        let r = request.into_inner();
        let format = if r.format.is_empty() {
            "toml"
        } else {
            &r.format
        };
        let x = self
            .service
            .export(&caller, format)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::ExportResponse {
            text: x.text,
            format: x.format,
            revision: x.revision,
        }))
    }

    async fn import_config(&self, request: Request<pb::ImportRequest>) -> Reply<pb::WriteResponse> {
        let (caller, _slot) = self.admitted(&request).await?;
        let r = request.into_inner();
        let format = format_of(&r.format).map_err(|e| status(&e))?;
        let o = self
            .service
            .import(&caller, &r.text, format, r.merge)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(written(o)))
    }

    async fn history(&self, request: Request<pb::HistoryRequest>) -> Reply<pb::HistoryResponse> {
        let caller = self.caller(&request)?;
        let r = request.into_inner();
        let limit = if r.limit == 0 { 50 } else { r.limit as usize };
        let item = (!r.item.is_empty()).then_some(r.item.as_str());
        let entries = self
            .service
            .history(&caller, limit, item)
            .await
            .map_err(|e| status(&e))?;
        let entries = entries
            .into_iter()
            .map(|e| pb::HistoryEntry {
                id: e.id,
                revision: e.revision,
                time: e.time,
                actor: e.actor,
                action: e.action,
                truncated: e.truncated,
                changes: e
                    .changes
                    .into_iter()
                    .map(|c| pb::ItemChange {
                        item: c.item,
                        action: c.action,
                        fields: c
                            .fields
                            .into_iter()
                            .map(|f| pb::FieldChange {
                                before_json: opt_json(&f.before),
                                after_json: opt_json(&f.after),
                                path: f.path,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::HistoryResponse { entries }))
    }

    async fn rollback(&self, request: Request<pb::RollbackRequest>) -> Reply<pb::WriteResponse> {
        let (caller, _slot) = self.admitted(&request).await?;
        let to = request.into_inner().to;
        let o = self
            .service
            .rollback(&caller, to)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(written(o)))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Reply<pb::ListNodesResponse> {
        let caller = self.caller(&request)?;
        let v = self.service.nodes(&caller).await.map_err(|e| status(&e))?;
        let nodes = v
            .nodes
            .into_iter()
            .map(|n| pb::Node {
                id: n.id,
                host: n.host,
                version: n.version,
                applied_revision: n.applied_revision,
                in_sync: n.in_sync,
                config_hash: n.config_hash,
                status: n.status,
                rejected: n
                    .rejected
                    .into_iter()
                    .map(|r| pb::RejectedItem {
                        key: r.key,
                        revision: r.revision,
                        error: r.error,
                    })
                    .collect(),
                backends: n
                    .backends
                    .into_iter()
                    .map(|b| pb::BackendHealth {
                        upstream: b.upstream,
                        addr: b.addr,
                        healthy: b.healthy,
                    })
                    .collect(),
                started_at: n.started_at,
                last_seen: n.last_seen,
                alarms: n.alarms,
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse {
            nodes,
            latest_revision: v.latest_revision,
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Reply<pb::ListEventsResponse> {
        let caller = self.caller(&request)?;
        let r = request.into_inner();
        let limit = if r.limit == 0 { 100 } else { r.limit as usize };
        let view = self.service.events(&caller, r.after_id, limit);
        Ok(Response::new(pb::ListEventsResponse {
            events: view.events.into_iter().map(event).collect(),
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Reply<Self::WatchEventsStream> {
        let caller = self.caller(&request)?;
        let after = request.into_inner().after_id;
        let (past, rx) = self.service.watch(&caller, after);
        let live = BroadcastStream::new(rx).filter_map(|r| async move { r.ok() });
        let all = stream::iter(past).chain(live).map(|e| Ok(event(e)));
        Ok(Response::new(Box::pin(all)))
    }
}
