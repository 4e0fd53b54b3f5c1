//! One request: read its body, route it, wait if asked or stalled, count it.

use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::Stall;
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
#[derive(Debug)]
pub(crate) struct Shared {
    /// What has been served.
    pub(crate) counter: RequestCounter,
    /// Login sessions.
    pub(crate) sessions: Sessions,
    /// Where served requests are logged, if anywhere.
    pub(crate) access_log: Option<AccessLog>,
    /// When the server started, which stalls count from.
    pub(crate) started: Instant,
    /// The server's pauses, if any.
    pub(crate) stall: Option<Stall>,
}

impl Default for Shared {
    /// Started now; no log, no stalls.
    fn default() -> Self {
        Shared {
            counter: RequestCounter::default(),
            sessions: Sessions::default(),
            access_log: None,
            started: Instant::now(),
            stall: None,
        }
    }
}

impl Shared {
    /// Counts (and logs) a request whose response head is ready.
    fn record(&self, method: &Method, path: &str, status: StatusCode, arrived: Instant) {
        self.counter.record(method, path, arrived);
        if let Some(log) = &self.access_log {
            log.record(method, path, status);
        }
    }

    /// Holds a response that is ready during a pause until the pause ends.
    async fn hold_if_stalled(&self) {
        let Some(stall) = &self.stall else { return };
        if let Some(end) = stall.pause_end(self.started.elapsed()) {
            tokio::time::sleep_until((self.started + end).into()).await;
        }
    }
}

/// Whether `path` is one of the server's own controls, which are neither
/// counted nor stalled.
fn is_control(path: &str) -> bool {
    path.strip_prefix(CONTROL_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Why a request got no response: its body could not be read (the client
/// went away or broke framing). hyper closes the connection.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, BodyError> {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let counted = !is_control(parts.uri.path());
    if counted {
        shared.counter.arrive(arrived);
    }
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
    if counted {
        shared.hold_if_stalled().await;
        shared.record(&parts.method, parts.uri.path(), response.status(), arrived);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_paths_are_told_apart() {
        for path in ["/_blast", "/_blast/counts", "/_blast/reset", "/_blast/x"] {
            assert!(is_control(path), "{path}");
        }
        for path in ["/_blastoff", "/x/_blast/counts", "/", ""] {
            assert!(!is_control(path), "{path}");
        }
    }
}
