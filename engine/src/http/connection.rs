//! One keep-alive connection: a socket (plain or TLS) and one request /
//! response exchange at a time over it, driving the sans-IO codec.
//!
//! Buffers and the parser are not part of a connection: a user waiting
//! between tasks keeps its socket but no buffers, so they come from a
//! per-shard pool ([`IoBufs`]) for the length of one exchange.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use blast_proto::{FailureKind, Method};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{BodyProgress, CodecError, Limits, ResponseParser};
use crate::runtime::TcpStream;

/// The byte stream under a connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<FirstBytes>>),
}

/// How many of the server's first bytes [`FirstBytes`] keeps: enough for
/// `HTTP/1.`.
const FIRST_BYTES: usize = 7;

/// A TCP stream that keeps the first bytes the server sent, so that a
/// failed TLS handshake can tell a server that answered in plain HTTP
/// (`https://` to a plain-HTTP port) from other failures. Past those
/// bytes, a read costs one comparison more.
pub(crate) struct FirstBytes {
    inner: TcpStream,
    first: [u8; FIRST_BYTES],
    kept: usize,
}

impl FirstBytes {
    pub(crate) fn new(inner: TcpStream) -> FirstBytes {
        FirstBytes {
            inner,
            first: [0; FIRST_BYTES],
            kept: 0,
        }
    }
}

/// Whether the first bytes a server sent are an HTTP/1.x response.
pub(crate) fn is_plain_http(first: &[u8]) -> bool {
    first.starts_with(b"HTTP/1.")
}

/// The TLS handshake over `tcp`; when it fails, whether the server
/// answered in plain HTTP.
pub(crate) async fn tls_handshake(
    connector: &futures_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    tcp: TcpStream,
) -> Result<futures_rustls::client::TlsStream<FirstBytes>, HandshakeError> {
    // Fallible: a failed handshake gives the stream back, with the bytes
    // the server sent first.
    match connector
        .connect(name, FirstBytes::new(tcp))
        .into_fallible()
        .await
    {
        Ok(tls) => Ok(tls),
        Err((_, stream)) if is_plain_http(&stream.first[..stream.kept]) => {
            Err(HandshakeError::PlainHttp)
        }
        Err(_) => Err(HandshakeError::Other),
    }
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// The server answered in plain HTTP.
    PlainHttp,
    /// Anything else (a bad certificate, a closed connection...).
    Other,
}

impl AsyncRead for FirstBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.kept < FIRST_BYTES
            && let Poll::Ready(Ok(n)) = read
        {
            let take = n.min(FIRST_BYTES - this.kept);
            this.first[this.kept..this.kept + take].copy_from_slice(&buf[..take]);
            this.kept += take;
        }
        read
    }
}

impl AsyncWrite for FirstBytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        };
        match read {
            // A server that drops TLS without close_notify is closing the
            // connection, not failing the request.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }
}

/// Per-exchange buffers and parser, pooled per shard.
pub(crate) struct IoBufs {
    pub(crate) write: Vec<u8>,
    read: Vec<u8>,
    start: usize,
    end: usize,
    pub(crate) parser: ResponseParser,
}

/// Initial read buffer; it grows for large heads, up to the head limit.
const READ_BUF: usize = 16 << 10;

impl IoBufs {
    pub(crate) fn new(limits: Limits) -> IoBufs {
        IoBufs {
            write: Vec::with_capacity(1024),
            read: vec![0; READ_BUF],
            start: 0,
            end: 0,
            parser: ResponseParser::new(limits),
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Makes room to read more, keeping unconsumed bytes; grows the buffer
    /// when it is full of a head not yet complete.
    fn make_room(&mut self, max_head: usize) {
        if self.start > 0 {
            self.read.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.read.len() {
            // Room for one byte past the limit, so the parser sees the
            // overflow and says so.
            let target = (self.read.len() * 2)
                .min(max_head + 1)
                .max(self.read.len() + 1);
            self.read.resize(target, 0);
        }
    }
}

/// Why an exchange failed, and whether it may be retried on a fresh
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExchangeError {
    pub(crate) kind: FailureKind,
    /// At least one byte of an answer arrived: never retried, the server
    /// saw and answered the request.
    pub(crate) answered: bool,
}

/// The request was not answered: nothing came back.
fn unanswered(kind: FailureKind) -> ExchangeError {
    ExchangeError {
        kind,
        answered: false,
    }
}

fn answered(kind: FailureKind) -> ExchangeError {
    ExchangeError {
        kind,
        answered: true,
    }
}

/// Maps an I/O error to the failure it counts as.
pub(crate) fn io_failure(e: &io::Error) -> FailureKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => FailureKind::Reset,
        io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => FailureKind::Io,
    }
}

fn codec_failure(e: CodecError) -> FailureKind {
    match e {
        CodecError::HeadersTooLarge | CodecError::TooManyHeaders => FailureKind::HeadersTooLarge,
        CodecError::Truncated => FailureKind::Truncated,
        CodecError::Malformed(_) | CodecError::BadChunk | CodecError::Upgrade => {
            FailureKind::Malformed
        }
    }
}

/// A connection to one origin.
pub(crate) struct Connection {
    stream: Stream,
    /// Requests answered on this connection so far.
    pub(crate) served: u64,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Connection {
        Connection { stream, served: 0 }
    }

    /// Writes the request in `bufs.write` and reads its response, keeping
    /// the body in `keep` when given. On success returns whether the
    /// connection may carry another request.
    pub(crate) async fn exchange(
        &mut self,
        bufs: &mut IoBufs,
        method: Method,
        limits: &Limits,
        mut keep: Option<&mut Vec<u8>>,
    ) -> Result<bool, ExchangeError> {
        bufs.clear();
        bufs.parser.reset(method);
        self.stream
            .write_all(&bufs.write)
            .await
            .map_err(|e| unanswered(io_failure(&e)))?;

        // The head.
        let mut received = false;
        loop {
            if bufs.end > bufs.start {
                match bufs.parser.parse_head(&bufs.read[bufs.start..bufs.end]) {
                    Ok(Some(consumed)) => {
                        bufs.start += consumed;
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(answered(codec_failure(e))),
                }
            }
            bufs.make_room(limits.max_head_bytes);
            let n = match self.stream.read(&mut bufs.read[bufs.end..]).await {
                Ok(n) => n,
                Err(e) => {
                    let kind = io_failure(&e);
                    return Err(if received {
                        answered(kind)
                    } else {
                        unanswered(kind)
                    });
                }
            };
            if n == 0 {
                return Err(if received {
                    answered(FailureKind::Truncated)
                } else {
                    unanswered(FailureKind::NoResponse)
                });
            }
            received = true;
            bufs.end += n;
        }

        // The body.
        loop {
            let (consumed, progress) = bufs
                .parser
                .parse_body(&bufs.read[bufs.start..bufs.end], keep.as_deref_mut())
                .map_err(|e| answered(codec_failure(e)))?;
            bufs.start += consumed;
            if progress == BodyProgress::Done {
                break;
            }
            if bufs.start == bufs.end {
                bufs.clear();
            }
            bufs.make_room(limits.max_head_bytes);
            let n = self
                .stream
                .read(&mut bufs.read[bufs.end..])
                .await
                .map_err(|e| answered(io_failure(&e)))?;
            if n == 0 {
                bufs.parser
                    .finish_at_eof()
                    .map_err(|e| answered(codec_failure(e)))?;
                return Ok(false);
            }
            bufs.end += n;
        }
        self.served += 1;
        // Bytes after the response were not asked for (no pipelining): a
        // connection in that state cannot be trusted with the next request.
        Ok(bufs.parser.head().keep_alive && bufs.start == bufs.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_answer_is_told_from_a_tls_record() {
        assert!(is_plain_http(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(is_plain_http(b"HTTP/1.0"));
        // A TLS alert record, and too few bytes to tell.
        assert!(!is_plain_http(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
        assert!(!is_plain_http(b"HTTP/"));
    }
}
