//! Why a request failed, as a small `Copy` value: counted on the hot path,
//! formatted only when a report is written.

use serde::{Deserialize, Serialize};

/// The reason a request is counted as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureKind {
    /// The server answered with a status the request does not accept.
    Status(u16),
    /// The TCP connection could not be made (refused, unreachable).
    Connect,
    /// The TCP connection was not made within the timeout.
    ConnectTimeout,
    /// The TLS handshake failed.
    Tls,
    /// The full response did not arrive within the request timeout.
    Timeout,
    /// The connection was reset while the request was in flight.
    Reset,
    /// The server closed the connection without sending any answer.
    NoResponse,
    /// The server closed the connection in the middle of the response.
    Truncated,
    /// The response is not valid HTTP/1.x.
    Malformed,
    /// The response head is larger than the configured limits.
    HeadersTooLarge,
    /// Another I/O error while sending or receiving.
    Io,
    /// The request could not be built (bad header, unknown host).
    InvalidRequest,
    /// The run stopped before the answer arrived (the stop timeout ran out).
    Stopped,
    /// The script marked the request failed; the reason is the failure's
    /// message, kept by the reporting side.
    Script,
    /// A redirect pointed at a URL that is not http or https.
    RedirectNotHttp,
    /// More redirects in a row than the client follows.
    TooManyRedirects,
    /// The request's host name did not resolve (looked up on its first
    /// use, once per run).
    Resolve,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Status(code) => write!(f, "HTTP {code}"),
            FailureKind::Connect => f.write_str("connection failed"),
            FailureKind::ConnectTimeout => f.write_str("connect timed out"),
            FailureKind::Tls => f.write_str("TLS handshake failed"),
            FailureKind::Timeout => f.write_str("request timed out"),
            FailureKind::Reset => f.write_str("connection reset"),
            FailureKind::NoResponse => f.write_str("connection closed without response"),
            FailureKind::Truncated => f.write_str("response truncated"),
            FailureKind::Malformed => f.write_str("malformed response"),
            FailureKind::HeadersTooLarge => f.write_str("response headers too large"),
            FailureKind::Io => f.write_str("I/O error"),
            FailureKind::InvalidRequest => f.write_str("invalid request"),
            FailureKind::Stopped => f.write_str("stopped before the response arrived"),
            FailureKind::Script => f.write_str("failed by script"),
            FailureKind::RedirectNotHttp => f.write_str("redirect to a URL that is not http(s)"),
            FailureKind::Resolve => f.write_str("cannot resolve host"),
            FailureKind::TooManyRedirects => f.write_str("too many redirects"),
        }
    }
}
