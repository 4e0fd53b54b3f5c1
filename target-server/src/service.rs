//! One request: read its body, route it, wait if asked, count it.

use std::sync::Arc;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::access_log::AccessLog;
use crate::body::ResponseBody;
use crate::counter::RequestCounter;
use crate::reply::{self, Reply};
use crate::routes::{self, CONTROL_PREFIX};
use crate::session::Sessions;

/// Request bodies are read whole before routing (routes are synchronous);
/// this bounds what one request can make the server hold.
const REQUEST_BODY_MAX: usize = 16 << 20;

/// What all connections of one server share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// What has been served.
    pub(crate) counter: RequestCounter,
    /// Login sessions.
    pub(crate) sessions: Sessions,
    /// Where served requests are logged, if anywhere.
    pub(crate) access_log: Option<AccessLog>,
}

impl Shared {
    /// Counts (and logs) a request whose response head is ready, unless it
    /// was for the server's own controls.
    fn record(&self, method: &Method, path: &str, status: StatusCode) {
        let is_control = path
            .strip_prefix(CONTROL_PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if is_control {
            return;
        }
        self.counter.record(method, path);
        if let Some(log) = &self.access_log {
            log.record(method, path, status);
        }
    }
}

/// Why a request got no response: its body could not be read (the client
/// went away or broke framing). hyper closes the connection.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, BodyError> {
    let (parts, body) = request.into_parts();
    let reply = match Limited::new(body, REQUEST_BODY_MAX).collect().await {
        Ok(body) => routes::route(&parts, &body.to_bytes(), &shared),
        Err(err) if err.is::<LengthLimitError>() => Reply::Now(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 16 MiB\n",
        )),
        Err(err) => return Err(err),
    };
    let response = match reply {
        Reply::Now(response) => response,
        Reply::After(wait, response) => {
            tokio::time::sleep(wait).await;
            response
        }
    };
    shared.record(&parts.method, parts.uri.path(), response.status());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_paths_are_not_counted() {
        let shared = Shared::default();
        for path in ["/_blast", "/_blast/counts", "/_blast/reset", "/_blast/x"] {
            shared.record(&Method::GET, path, StatusCode::OK);
        }
        assert_eq!(shared.counter.snapshot().total, 0);
        for path in ["/_blastoff", "/x/_blast/counts", "/"] {
            shared.record(&Method::GET, path, StatusCode::OK);
        }
        assert_eq!(shared.counter.snapshot().total, 3);
    }
}
