//! STUB: the request type and writer (being written).
use blast_proto::Method;
use std::time::Duration;

/// An HTTP request as a user asks for it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Index of the origin (scheme, host, port) in the run's resolved origins.
    pub origin: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (may be empty).
    pub body: Vec<u8>,
    /// The statistics entry name.
    pub name: String,
    /// Request timeout; the run's default when `None`.
    pub timeout: Option<Duration>,
    /// Keep the body for the script (up to the limit), or only count it.
    pub keep_body: bool,
}

/// A request that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A header name or value holds bytes HTTP does not allow.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
}

/// Appends `req` to `out` as HTTP/1.1, with `Host: host`.
pub fn write_request(out: &mut Vec<u8>, req: &Request, host: &str) -> Result<(), RequestError> {
    let _ = (out, req, host);
    unimplemented!()
}
