//! The response parser: a sans-IO state machine over byte slices. The head
//! is parsed by `httparse`; framing (RFC 9112 §6.3), keep-alive and the
//! chunked decoder are here.
//!
//! The caller owns the buffer and passes the unconsumed bytes each time;
//! the parser says how many it consumed. Feeding a response one byte at a
//! time gives the same result as feeding it whole (tested below).

use std::mem::MaybeUninit;

use blast_proto::Method;

/// Limits the parser enforces; parameters so tests and fuzzers can set them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most header lines in a response head (and in chunked trailers); at
    /// most [`MAX_HEADERS_CEILING`].
    pub max_headers: usize,
    /// Most bytes in a response head (status line + headers + blank line),
    /// interim 1xx heads included; also bounds chunked trailers.
    pub max_head_bytes: usize,
    /// Most body bytes kept for the script; the rest is counted, not kept.
    pub max_body_kept: usize,
}

/// The largest `max_headers` the parser honours: header slots live on the
/// stack while a head is parsed.
pub const MAX_HEADERS_CEILING: usize = 256;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 100,
            max_head_bytes: 64 << 10,
            max_body_kept: 10 << 20,
        }
    }
}

/// Where one header's name and value sit in [`HeaderBlock`]'s bytes.
#[derive(Clone, Copy, Debug)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Response headers, kept as the raw head bytes plus spans, so a head costs
/// one copy and two vectors whose capacity is reused across responses.
#[derive(Clone, Debug, Default)]
pub struct HeaderBlock {
    raw: Vec<u8>,
    spans: Vec<Span>,
}

impl HeaderBlock {
    fn clear(&mut self) {
        self.raw.clear();
        self.spans.clear();
    }

    fn name(&self, span: &Span) -> &[u8] {
        &self.raw[span.name.0 as usize..span.name.1 as usize]
    }

    fn value(&self, span: &Span) -> &[u8] {
        &self.raw[span.value.0 as usize..span.value.1 as usize]
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.spans
            .iter()
            .find(|s| self.name(s).eq_ignore_ascii_case(name.as_bytes()))
            .map(|s| self.value(s))
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.spans
            .iter()
            .filter(move |s| self.name(s).eq_ignore_ascii_case(name.as_bytes()))
            .map(|s| self.value(s))
    }

    /// Every header as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|s| {
            // Names were checked to be tokens, which are ASCII.
            let name = std::str::from_utf8(self.name(s)).unwrap_or_default();
            (name, self.value(s))
        })
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
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

/// Longest chunk extension accepted on a chunk size line.
const MAX_CHUNK_EXT: u32 = 4096;

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size (`digits` so far).
    Size { size: u64, digits: u8 },
    /// After the size: optional whitespace and `;ext`, up to the line end.
    Ext { size: u64, len: u32 },
    /// Saw CR ending the size line; LF must follow.
    SizeLf { size: u64 },
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After data: CR (or a bare LF) must follow.
    DataCr,
    /// After data and CR: LF must follow.
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final
    /// empty line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// Saw CR at the start of a line: LF ends the body.
    EndLf,
    /// Saw CR inside a trailer line: LF ends the line.
    TrailerLf,
    /// The body and trailers are complete.
    Done,
}

/// Where a response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the (final) head.
    Head,
    /// In a body of the given framing.
    Body,
    /// The response is complete.
    Done,
}

/// Parses one response at a time; reused across responses on a connection.
#[derive(Debug)]
pub struct ResponseParser {
    limits: Limits,
    method: Method,
    state: State,
    head: ResponseHead,
    /// Bytes of interim (1xx) heads at the start of the buffer the caller
    /// keeps passing until the final head is parsed.
    interim: usize,
    /// Content-Length bytes left.
    remaining: u64,
    chunk: Chunk,
    /// Trailer bytes and lines seen, against the head limits.
    trailer_bytes: usize,
    trailer_lines: usize,
    body_len: u64,
    body_cut: bool,
}

impl ResponseParser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> ResponseParser {
        ResponseParser {
            limits,
            method: Method::Get,
            state: State::Head,
            head: ResponseHead::default(),
            interim: 0,
            remaining: 0,
            chunk: Chunk::Size { size: 0, digits: 0 },
            trailer_bytes: 0,
            trailer_lines: 0,
            body_len: 0,
            body_cut: false,
        }
    }

    /// Prepares for the response to a request of `method`.
    pub fn reset(&mut self, method: Method) {
        self.method = method;
        self.state = State::Head;
        self.head.status = 0;
        self.head.minor_version = 1;
        self.head.headers.clear();
        self.head.framing = None;
        self.head.keep_alive = false;
        self.interim = 0;
        self.remaining = 0;
        self.chunk = Chunk::Size { size: 0, digits: 0 };
        self.trailer_bytes = 0;
        self.trailer_lines = 0;
        self.body_len = 0;
        self.body_cut = false;
    }

    /// Parses a head from `buf`: `Ok(None)` when more bytes are needed,
    /// `Ok(Some(consumed))` once a final (non-1xx) head is parsed. Interim
    /// 1xx heads are skipped and included in `consumed`; until then the
    /// caller passes the same unconsumed bytes again, with more at the end.
    pub fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        if self.state != State::Head {
            return Err(CodecError::Malformed("head parsed twice"));
        }
        loop {
            let rest = buf.get(self.interim..).unwrap_or_default();
            let Some(len) = self.parse_one_head(rest)? else {
                if buf.len() > self.limits.max_head_bytes {
                    return Err(CodecError::HeadersTooLarge);
                }
                return Ok(None);
            };
            let end = self.interim + len;
            if end > self.limits.max_head_bytes {
                return Err(CodecError::HeadersTooLarge);
            }
            match self.head.status {
                101 => return Err(CodecError::Upgrade),
                100..=199 => {
                    // Interim response (100 Continue, 103 Early Hints):
                    // skipped; the final one follows.
                    self.interim = end;
                    self.head.headers.clear();
                }
                _ => {
                    self.decide_framing()?;
                    self.state =
                        if matches!(self.head.framing, Some(Framing::Empty | Framing::Length(0))) {
                            State::Done
                        } else {
                            State::Body
                        };
                    return Ok(Some(end));
                }
            }
        }
    }

    /// Parses one head at the start of `buf` into `self.head`, returning its
    /// length, or `None` when it is incomplete.
    fn parse_one_head(&mut self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        let mut slots =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
        let slots = &mut slots[..self.limits.max_headers.min(MAX_HEADERS_CEILING)];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response_with_uninit_headers(&mut response, buf, slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(head_error(e)),
        };
        let (Some(version), Some(code)) = (response.version, response.code) else {
            return Err(CodecError::Malformed("incomplete status line"));
        };
        if !(100..=999).contains(&code) {
            return Err(CodecError::Malformed("status code out of range"));
        }
        let head = &mut self.head;
        head.status = code;
        head.minor_version = version;
        head.headers.clear();
        head.headers.raw.extend_from_slice(&buf[..len]);
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start as u32, (start + s.len()) as u32)
        };
        for header in response.headers.iter() {
            head.headers.spans.push(Span {
                name: offset(header.name.as_bytes()),
                value: offset(header.value),
            });
        }
        Ok(Some(len))
    }

    /// Sets framing and keep-alive from the parsed final head.
    fn decide_framing(&mut self) -> Result<(), CodecError> {
        let head = &mut self.head;
        let headers = &head.headers;
        let mut close = false;
        let mut keep_alive_token = false;
        for value in headers.get_all("connection") {
            for token in tokens(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        let mut keep_alive = if head.minor_version == 0 {
            keep_alive_token && !close
        } else {
            !close
        };

        let no_body = self.method == Method::Head || matches!(head.status, 204 | 304);
        let mut transfer_encoding = None;
        for value in headers.get_all("transfer-encoding") {
            for token in tokens(value) {
                transfer_encoding = Some(token.eq_ignore_ascii_case(b"chunked"));
            }
        }
        let mut content_length: Option<u64> = None;
        for value in headers.get_all("content-length") {
            for token in tokens(value) {
                let n =
                    parse_decimal(token).ok_or(CodecError::Malformed("invalid content-length"))?;
                if content_length.is_some_and(|seen| seen != n) {
                    return Err(CodecError::Malformed("conflicting content-length"));
                }
                content_length = Some(n);
            }
        }

        let framing = if no_body {
            Framing::Empty
        } else if let Some(chunked_last) = transfer_encoding {
            // Transfer-Encoding wins over Content-Length; a message with both
            // may be an attempt at smuggling, so its connection is not reused.
            if content_length.is_some() || head.minor_version == 0 {
                keep_alive = false;
            }
            if chunked_last {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else if let Some(n) = content_length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        if framing == Framing::Close {
            keep_alive = false;
        }
        if let Framing::Length(n) = framing {
            self.remaining = n;
        }
        head.framing = Some(framing);
        head.keep_alive = keep_alive;
        Ok(())
    }

    /// The head parsed by the last successful `parse_head`.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// Takes the head out, leaving an empty one.
    pub fn take_head(&mut self) -> ResponseHead {
        std::mem::take(&mut self.head)
    }

    /// Decodes body bytes from `buf`, appending them to `keep` when given
    /// (up to `max_body_kept`). Returns bytes consumed and progress.
    pub fn parse_body(
        &mut self,
        buf: &[u8],
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<(usize, BodyProgress), CodecError> {
        match self.state {
            State::Head => return Err(CodecError::Malformed("body before head")),
            State::Done => return Ok((0, BodyProgress::Done)),
            State::Body => {}
        }
        match self.head.framing {
            Some(Framing::Length(_)) => {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.data(&buf[..take], keep.as_deref_mut());
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::Done;
                    return Ok((take, BodyProgress::Done));
                }
                Ok((take, BodyProgress::NeedMore))
            }
            Some(Framing::Close) => {
                self.data(buf, keep);
                Ok((buf.len(), BodyProgress::NeedMore))
            }
            Some(Framing::Chunked) => self.parse_chunked(buf, keep),
            Some(Framing::Empty) | None => {
                self.state = State::Done;
                Ok((0, BodyProgress::Done))
            }
        }
    }

    /// Counts body bytes and keeps what fits.
    fn data(&mut self, bytes: &[u8], keep: Option<&mut Vec<u8>>) {
        self.body_len += bytes.len() as u64;
        if let Some(keep) = keep {
            let room = self.limits.max_body_kept.saturating_sub(keep.len());
            if bytes.len() > room {
                self.body_cut = true;
            }
            keep.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn parse_chunked(
        &mut self,
        buf: &[u8],
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<(usize, BodyProgress), CodecError> {
        let mut at = 0;
        while at < buf.len() {
            if let Chunk::Data(left) = self.chunk {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - at);
                self.data(&buf[at..at + take], keep.as_deref_mut());
                at += take;
                let left = left - take as u64;
                self.chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            let byte = buf[at];
            at += 1;
            self.chunk = self.chunk_step(byte)?;
            if self.chunk == Chunk::Done {
                self.state = State::Done;
                return Ok((at, BodyProgress::Done));
            }
        }
        Ok((at, BodyProgress::NeedMore))
    }

    /// One byte of chunk framing (everything but chunk data).
    fn chunk_step(&mut self, byte: u8) -> Result<Chunk, CodecError> {
        let next = match self.chunk {
            Chunk::Size { size, digits } => match hex_value(byte) {
                Some(d) => {
                    if digits >= 16 {
                        return Err(CodecError::BadChunk);
                    }
                    Chunk::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(CodecError::BadChunk),
                None => return self.after_size(size, byte, 0),
            },
            Chunk::Ext { size, len } => return self.after_size(size, byte, len),
            Chunk::SizeLf { size } => match byte {
                b'\n' => self.chunk_start(size),
                _ => return Err(CodecError::BadChunk),
            },
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::Size { size: 0, digits: 0 },
                _ => return Err(CodecError::BadChunk),
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::Size { size: 0, digits: 0 },
                _ => return Err(CodecError::BadChunk),
            },
            Chunk::TrailerStart => match byte {
                b'\r' => Chunk::EndLf,
                b'\n' => Chunk::Done,
                _ => {
                    self.trailer_lines += 1;
                    if self.trailer_lines > self.limits.max_headers {
                        return Err(CodecError::TooManyHeaders);
                    }
                    self.trailer_byte()?;
                    Chunk::TrailerLine
                }
            },
            Chunk::TrailerLine => match byte {
                b'\r' => Chunk::TrailerLf,
                b'\n' => Chunk::TrailerStart,
                _ => {
                    self.trailer_byte()?;
                    Chunk::TrailerLine
                }
            },
            Chunk::TrailerLf => match byte {
                b'\n' => Chunk::TrailerStart,
                _ => return Err(CodecError::BadChunk),
            },
            Chunk::EndLf => match byte {
                b'\n' => Chunk::Done,
                _ => return Err(CodecError::BadChunk),
            },
            Chunk::Data(_) | Chunk::Done => return Err(CodecError::BadChunk),
        };
        Ok(next)
    }

    /// A byte after a chunk size's digits: whitespace, an extension, or the
    /// line end.
    fn after_size(&mut self, size: u64, byte: u8, len: u32) -> Result<Chunk, CodecError> {
        match byte {
            b'\r' => Ok(Chunk::SizeLf { size }),
            b'\n' => Ok(self.chunk_start(size)),
            // Control bytes other than tab have no place in a size line.
            b if (b < 0x20 && b != b'\t') || b == 0x7f => Err(CodecError::BadChunk),
            // Before any extension only whitespace or `;` may follow digits.
            b if len == 0 && !matches!(b, b' ' | b'\t' | b';') => Err(CodecError::BadChunk),
            _ if len >= MAX_CHUNK_EXT => Err(CodecError::BadChunk),
            b' ' | b'\t' if len == 0 => Ok(Chunk::Ext { size, len: 0 }),
            _ => Ok(Chunk::Ext { size, len: len + 1 }),
        }
    }

    /// The state after a complete size line.
    fn chunk_start(&self, size: u64) -> Chunk {
        if size == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data(size)
        }
    }

    fn trailer_byte(&mut self) -> Result<(), CodecError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.max_head_bytes {
            return Err(CodecError::HeadersTooLarge);
        }
        Ok(())
    }

    /// The connection reached end of file: fine for a close-delimited body,
    /// `Truncated` for anything else unfinished.
    pub fn finish_at_eof(&mut self) -> Result<(), CodecError> {
        match self.state {
            State::Done => Ok(()),
            State::Body if self.head.framing == Some(Framing::Close) => {
                self.state = State::Done;
                Ok(())
            }
            State::Head | State::Body => Err(CodecError::Truncated),
        }
    }

    /// Decoded body bytes seen so far in this response.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// True when kept body bytes were cut at `max_body_kept`.
    pub fn body_cut(&self) -> bool {
        self.body_cut
    }
}

fn head_error(e: httparse::Error) -> CodecError {
    match e {
        httparse::Error::TooManyHeaders => CodecError::TooManyHeaders,
        httparse::Error::Version => CodecError::Malformed("bad HTTP version"),
        httparse::Error::Status => CodecError::Malformed("bad status code"),
        httparse::Error::HeaderName => CodecError::Malformed("bad header name"),
        httparse::Error::HeaderValue => CodecError::Malformed("bad header value"),
        httparse::Error::NewLine => CodecError::Malformed("bad line ending"),
        httparse::Error::Token => CodecError::Malformed("bad token"),
    }
}

/// The comma-separated, trimmed, non-empty elements of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
