//! Why a request failed, as a small `Copy` value: counted on the hot path,
//! formatted only when a report is written.
//!
//! Connection failures carry the address they were for, so a report can
//! say `connection refused (127.0.0.1:9)`: an address is a copy, not a
//! string, and there are only as many as the run's origins resolve to, so
//! failures grouped by kind stay a bounded set.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The reason a request is counted as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureKind {
    /// The server answered with a status the request does not accept.
    Status(u16),
    /// Nothing listens at this address: the TCP connection was refused.
    Refused(SocketAddr),
    /// The TCP connection to this address could not be made (unreachable,
    /// no route...).
    Connect(SocketAddr),
    /// The TCP connection to this address was not made within the timeout.
    ConnectTimeout(SocketAddr),
    /// The TLS handshake failed.
    Tls,
    /// The server at this address answered the TLS handshake in plain
    /// HTTP: the URL says `https://` for a plain-HTTP port.
    TlsGotPlainHttp(SocketAddr),
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

impl FailureKind {
    /// Whether the request failed before a connection was made (refused,
    /// unreachable, timed out connecting, or a failed TLS handshake).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            FailureKind::Refused(_)
                | FailureKind::Connect(_)
                | FailureKind::ConnectTimeout(_)
                | FailureKind::Tls
                | FailureKind::TlsGotPlainHttp(_)
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Status(code) => write!(f, "HTTP {code}"),
            FailureKind::Refused(addr) => write!(f, "connection refused ({addr})"),
            FailureKind::Connect(addr) => write!(f, "connection failed ({addr})"),
            FailureKind::ConnectTimeout(addr) => write!(f, "connect timed out ({addr})"),
            FailureKind::Tls => f.write_str("TLS handshake failed"),
            FailureKind::TlsGotPlainHttp(addr) => write!(
                f,
                "TLS handshake failed: the server at {addr} answered in plain HTTP (use http://)"
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_name_their_address() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            FailureKind::Refused(addr).to_string(),
            "connection refused (127.0.0.1:9)"
        );
        assert_eq!(
            FailureKind::ConnectTimeout("[::1]:443".parse().unwrap()).to_string(),
            "connect timed out ([::1]:443)"
        );
        assert!(
            FailureKind::TlsGotPlainHttp(addr)
                .to_string()
                .contains("answered in plain HTTP")
        );
        // Still a small Copy value: no allocation on the hot path.
        assert!(std::mem::size_of::<FailureKind>() <= 40);
        assert!(FailureKind::Refused(addr).is_connect());
        assert!(!FailureKind::Status(500).is_connect());
    }
}
