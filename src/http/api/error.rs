//! API errors in Twilio's shape: `{code, message, more_info, status}`.

use crate::http::server::{Body, Reply};
use crate::store::StoreError;

/// An API error: HTTP status, Twilio error code and a message naming what is wrong.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`, `Connection`).
    pub headers: Vec<(crate::http::server::Text, crate::http::server::Text)>,
    /// Made from a disk error of the store: the store must reopen its file (see
    /// [`crate::store::Store::note_error`]).
    pub disk_failure: bool,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            disk_failure: false,
        }
    }

    /// 404 / 20404 for `resource` (the path the client asked for).
    pub fn not_found(resource: &str) -> ApiError {
        ApiError::new(
            404,
            20404,
            format!("The requested resource {resource} was not found"),
        )
    }

    /// 400 / 20001: a parameter or limit problem.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, 20001, message)
    }

    /// 400 / 21218-style missing parameter, as 20001 with the parameter named.
    pub fn missing(param: &str) -> ApiError {
        ApiError::invalid(format!(
            "Missing required parameter {param} in the post body"
        ))
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, 20409, message)
    }

    pub fn unauthorized() -> ApiError {
        let mut e = ApiError::new(
            401,
            20003,
            "Authentication Error - invalid username or password",
        );
        e.headers
            .push(("www-authenticate".into(), "Basic realm=\"assetd\"".into()));
        e
    }

    pub fn method_not_allowed(allow: &str) -> ApiError {
        let mut e = ApiError::new(405, 20004, "Method not allowed");
        e.headers.push(("allow".into(), allow.to_string().into()));
        e
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(413, 20413, message);
        // The rest of the body is not read: the connection must not be reused.
        e.headers.push(("connection".into(), "close".into()));
        e
    }

    pub fn internal(e: &dyn std::fmt::Display) -> ApiError {
        eprintln!("assetd: internal API error: {e}");
        ApiError::new(500, 20500, "Internal Server Error")
    }

    /// A request body that could not be read: 507 when the engine could not spool it for a
    /// full disk, else 400 naming `what`.
    pub fn body(what: &str, e: &std::io::Error) -> ApiError {
        if is_disk_full(e) {
            ApiError::io(e)
        } else {
            ApiError::invalid(format!("cannot read {what}: {e}"))
        }
    }

    /// A failed file operation: 507 when the disk is full (nothing was stored; the client may
    /// retry once space is freed), else an internal error.
    pub fn io(e: &std::io::Error) -> ApiError {
        if is_disk_full(e) {
            eprintln!("assetd: the data directory's disk is full: {e}");
            ApiError::new(
                507,
                20500,
                "The server's disk is full: free space on the server, then retry",
            )
        } else {
            ApiError::internal(e)
        }
    }

    /// The JSON reply.
    pub fn into_reply(self) -> Reply {
        let body = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        });
        let mut headers = vec![("content-type".into(), "application/json".into())];
        headers.extend(self.headers);
        Reply {
            status: self.status,
            headers,
            body: Body::Bytes(body.to_string().into_bytes()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::new(404, 20404, m),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Invalid(m) => ApiError::invalid(m),
            StoreError::RateLimited {
                message,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(429, 20429, message);
                e.headers.push((
                    "retry-after".into(),
                    retry_after_secs.max(1).to_string().into(),
                ));
                e
            }
            e @ StoreError::DigestMismatch { .. } => ApiError::invalid(e.to_string()),
            StoreError::Io(e) => ApiError::io(&e),
            StoreError::Disk(e) => ApiError {
                disk_failure: true,
                ..ApiError::io(&e)
            },
            e @ (StoreError::Poisoned | StoreError::Recovering | StoreError::Closed) => {
                let mut api = ApiError::new(
                    503,
                    20503,
                    "The server is recovering from a disk error; retry in a moment",
                );
                api.headers.push(("retry-after".into(), "1".into()));
                api.disk_failure = matches!(e, StoreError::Poisoned);
                api
            }
            other => ApiError::internal(&other),
        }
    }
}

/// ENOSPC or EDQUOT.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<crate::model::RuleError> for ApiError {
    fn from(e: crate::model::RuleError) -> Self {
        ApiError::invalid(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_other_disk_errors_500_and_recovery_503() {
        let full = ApiError::from(StoreError::Disk(std::io::Error::from_raw_os_error(28)));
        assert_eq!((full.status, full.code), (507, 20500));
        assert!(full.message.contains("disk is full"), "{}", full.message);
        let other = ApiError::from(StoreError::Disk(std::io::Error::from_raw_os_error(5)));
        assert_eq!(other.status, 500);
        let back = ApiError::from(StoreError::Recovering);
        assert_eq!((back.status, back.code), (503, 20503));
        assert!(
            back.headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v == "1")
        );
    }
}
