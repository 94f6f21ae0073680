//! The local admin listener: `GET /_louailink/ready` (503 until the first full config is
//! applied) and `GET /_louailink/status` (the node's status as JSON).

use crate::lifecycle::node::NodeView;
use crate::runtime::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// The admin API.
pub struct Admin {
    /// The live config.
    pub state: Arc<ArcSwap<Snapshot>>,
    /// This node.
    pub node: Arc<NodeView>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/_louailink/ready" if self.node.is_ready() => {
                reply(StatusCode::OK, "text/plain", b"ready\n".to_vec())
            }
            "/_louailink/ready" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"not ready: no full config applied yet\n".to_vec(),
            ),
            "/_louailink/status" => {
                let status = self.node.status(&self.state.load());
                match serde_json::to_vec_pretty(&status) {
                    Ok(body) => reply(StatusCode::OK, "application/json", body),
                    Err(e) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        e.to_string().into_bytes(),
                    ),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
