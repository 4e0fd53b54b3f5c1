//! STUB: the response parser (being written). The signatures are the contract.
use blast_proto::Method;

/// Limits the parser enforces; parameters so tests and fuzzers can set them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most header lines in a response head (and in chunked trailers).
    pub max_headers: usize,
    /// Most bytes in a response head (status line + headers + blank line).
    pub max_head_bytes: usize,
    /// Most body bytes kept for the script; the rest is counted, not kept.
    pub max_body_kept: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 100,
            max_head_bytes: 64 << 10,
            max_body_kept: 10 << 20,
        }
    }
}

/// Response headers, kept as the raw head bytes plus spans.
#[derive(Clone, Debug, Default)]
pub struct HeaderBlock {}

impl HeaderBlock {
    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let _ = name;
        unimplemented!()
    }
    /// Every value of header `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let _ = name;
        std::iter::empty()
    }
    /// Every header as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        std::iter::empty()
    }
    /// Number of headers.
    pub fn len(&self) -> usize {
        0
    }
    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        true
    }
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Clone, Debug, Default)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The headers.
    pub headers: HeaderBlock,
    /// How the body is delimited.
    pub framing: Option<Framing>,
    /// Whether the connection may be reused after this response.
    pub keep_alive: bool,
}

/// Whether a body is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyProgress {
    /// More bytes are needed.
    NeedMore,
    /// The body (and any trailers) is complete.
    Done,
}

/// A response that is not valid HTTP/1.1 within the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The status line or a header is malformed.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// The head is larger than the limit.
    #[error("response head too large")]
    HeadersTooLarge,
    /// More headers than the limit.
    #[error("too many response headers")]
    TooManyHeaders,
    /// A chunk size line or chunk terminator is malformed.
    #[error("malformed chunked body")]
    BadChunk,
    /// The connection closed before the body was complete.
    #[error("response truncated")]
    Truncated,
    /// The server switched protocols (101), which this client does not do.
    #[error("unsupported protocol switch")]
    Upgrade,
}

/// Parses one response at a time; reused across responses on a connection.
#[derive(Debug)]
pub struct ResponseParser {}

impl ResponseParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> ResponseParser {
        let _ = limits;
        unimplemented!()
    }
    /// Prepares for the response to a request of `method`.
    pub fn reset(&mut self, method: Method) {
        let _ = method;
    }
    /// Parses a head from `buf`: `Ok(None)` when more bytes are needed,
    /// `Ok(Some(consumed))` once a final (non-1xx) head is parsed.
    pub fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        let _ = buf;
        unimplemented!()
    }
    /// The head parsed by the last successful `parse_head`.
    pub fn head(&self) -> &ResponseHead {
        unimplemented!()
    }
    /// Takes the head out, leaving an empty one.
    pub fn take_head(&mut self) -> ResponseHead {
        unimplemented!()
    }
    /// Decodes body bytes from `buf`, appending them to `keep` when given
    /// (up to `max_body_kept`). Returns bytes consumed and progress.
    pub fn parse_body(
        &mut self,
        buf: &[u8],
        keep: Option<&mut Vec<u8>>,
    ) -> Result<(usize, BodyProgress), CodecError> {
        let _ = (buf, keep);
        unimplemented!()
    }
    /// The connection reached end of file: fine for a close-delimited body,
    /// `Truncated` for anything else unfinished.
    pub fn finish_at_eof(&mut self) -> Result<(), CodecError> {
        unimplemented!()
    }
    /// Decoded body bytes seen so far in this response.
    pub fn body_len(&self) -> u64 {
        0
    }
    /// True when kept body bytes were cut at `max_body_kept`.
    pub fn body_cut(&self) -> bool {
        false
    }
}
