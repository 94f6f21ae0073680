//! The API's typed errors: one enum used by the service layer, turned into
//! `{"error": {"code", "message", "details": [...]}}` with an HTTP status by REST and into a
//! gRPC status (with the same JSON in its details) by gRPC.

use louailink_shared::{ConfigError, ConfigErrors};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One detail of an error: a config problem, a referring item, a revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// The item concerned (`locations.api`, `basic`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The key within the item, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the submitted text, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Detail {
    /// A detail with only a message.
    pub fn message(message: impl Into<String>) -> Self {
        Detail {
            message: message.into(),
            ..Detail::default()
        }
    }

    /// A detail about `item`.
    pub fn item(item: impl Into<String>, message: impl Into<String>) -> Self {
        Detail {
            item: Some(item.into()),
            message: message.into(),
            ..Detail::default()
        }
    }
}

impl From<&ConfigError> for Detail {
    fn from(e: &ConfigError) -> Self {
        Detail {
            item: (!e.item.is_empty()).then(|| e.item.clone()),
            key: e.key.clone(),
            message: e.message.clone(),
            line: e.line,
        }
    }
}

/// Every way an API call can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400: the request or the config it would produce is invalid.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Every problem.
        details: Vec<Detail>,
    },
    /// 401: no or unknown token.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such item, kind or history entry.
    #[error("{0}")]
    NotFound(String),
    /// 409: the item is referred to by others.
    #[error("{message}")]
    Referenced {
        /// Summary.
        message: String,
        /// One detail per referring item.
        details: Vec<Detail>,
    },
    /// 409: the change cannot be made in the current state (concurrent writers, a history
    /// gap, a partially applied split import).
    #[error("{message}")]
    Conflict {
        /// Summary.
        message: String,
        /// More.
        details: Vec<Detail>,
    },
    /// 412: `If-Match` named another revision.
    #[error("{message}")]
    RevisionMismatch {
        /// Summary.
        message: String,
        /// The current revision.
        details: Vec<Detail>,
    },
    /// 429: too many failed authentications from this client.
    #[error("{0}")]
    RateLimited(String),
    /// 503: the store (etcd) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a message and no details.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 listing config errors.
    pub fn config(message: impl Into<String>, errors: &ConfigErrors) -> Self {
        ApiError::Invalid {
            message: message.into(),
            details: errors.iter().map(Detail::from).collect(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Invalid { .. } => 400,
            ApiError::Unauthenticated(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Referenced { .. } | ApiError::Conflict { .. } => 409,
            ApiError::RevisionMismatch { .. } => 412,
            ApiError::RateLimited(_) => 429,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Referenced { .. } => "referenced",
            ApiError::Conflict { .. } => "conflict",
            ApiError::RevisionMismatch { .. } => "revision_mismatch",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The details, if any.
    pub fn details(&self) -> &[Detail] {
        match self {
            ApiError::Invalid { details, .. }
            | ApiError::Referenced { details, .. }
            | ApiError::Conflict { details, .. }
            | ApiError::RevisionMismatch { details, .. } => details,
            _ => &[],
        }
    }

    /// `{"error": {"code", "message", "details"}}`.
    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code(),
                "message": self.to_string(),
                "details": self.details(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = ApiError::Referenced {
            message: "upstreams.u is referred to".into(),
            details: vec![Detail::item("locations.a", "refers to it")],
        };
        assert_eq!(e.status(), 409);
        assert_eq!(
            e.body(),
            json!({"error": {"code": "referenced", "message": "upstreams.u is referred to",
                "details": [{"item": "locations.a", "message": "refers to it"}]}})
        );
        assert_eq!(
            ApiError::Unavailable("x".into()).body()["error"]["details"],
            json!([])
        );
    }
}
