//! Tests of `response`.

use super::*;

/// The outcome of feeding a whole response to a fresh parser.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    status: u16,
    framing: Option<Framing>,
    keep_alive: bool,
    body: Vec<u8>,
    body_len: u64,
    /// Bytes left after the response.
    rest: usize,
    /// The body ended at EOF rather than by its framing.
    at_eof: bool,
}

/// Feeds `input` in pieces of `step` bytes, as a connection would
/// (unconsumed bytes stay at the front), then EOF.
fn feed(method: Method, input: &[u8], step: usize, limits: Limits) -> Result<Parsed, CodecError> {
    let mut parser = ResponseParser::new(limits);
    parser.reset(method);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut more = |buf: &mut Vec<u8>| -> bool {
        if fed == input.len() {
            return false;
        }
        let end = (fed + step).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        true
    };
    loop {
        if let Some(consumed) = parser.parse_head(&buf)? {
            buf.drain(..consumed);
            break;
        }
        if !more(&mut buf) {
            parser.finish_at_eof()?;
            unreachable!("finish_at_eof accepted a missing head");
        }
    }
    let mut body = Vec::new();
    let mut at_eof = false;
    loop {
        let (consumed, progress) = parser.parse_body(&buf, Some(&mut body))?;
        buf.drain(..consumed);
        if progress == BodyProgress::Done {
            break;
        }
        assert!(
            buf.is_empty(),
            "NeedMore left {} bytes unconsumed",
            buf.len()
        );
        if !more(&mut buf) {
            parser.finish_at_eof()?;
            at_eof = true;
            break;
        }
    }
    while more(&mut buf) {}
    let head = parser.head();
    Ok(Parsed {
        status: head.status,
        framing: head.framing,
        keep_alive: head.keep_alive,
        body,
        body_len: parser.body_len(),
        rest: buf.len(),
        at_eof,
    })
}

/// Whole, byte by byte and in 7-byte pieces must agree.
fn parse(method: Method, input: &[u8]) -> Result<Parsed, CodecError> {
    parse_with(method, input, Limits::default())
}

fn parse_with(method: Method, input: &[u8], limits: Limits) -> Result<Parsed, CodecError> {
    let whole = feed(method, input, input.len().max(1), limits);
    for step in [1, 7] {
        assert_eq!(
            feed(method, input, step, limits),
            whole,
            "feeding {step} bytes at a time differs for {:?}",
            String::from_utf8_lossy(input)
        );
    }
    whole
}

fn ok(status: u16, framing: Framing, keep_alive: bool, body: &[u8]) -> Parsed {
    Parsed {
        status,
        framing: Some(framing),
        keep_alive,
        body: body.to_vec(),
        body_len: body.len() as u64,
        rest: 0,
        at_eof: framing == Framing::Close,
    }
}

#[test]
fn framing_cases() {
    use Framing::*;
    use Method::*;
    let cases: &[(&str, Method, &str, Parsed)] = &[
        (
            "content-length",
            Get,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            ok(200, Length(5), true, b"hello"),
        ),
        (
            "zero length",
            Get,
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ok(200, Length(0), true, b""),
        ),
        (
            "repeated equal lengths",
            Get,
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc",
            ok(200, Length(3), true, b"abc"),
        ),
        (
            "chunked",
            Get,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            ok(200, Chunked, true, b"hello world"),
        ),
        (
            "chunked, upper-case hex, extensions, trailers",
            Get,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n\
             A ; name=value\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n",
            ok(200, Chunked, true, b"0123456789"),
        ),
        (
            "chunked with bare LF line ends",
            Get,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
            ok(200, Chunked, true, b"abc"),
        ),
        (
            "transfer-encoding wins over content-length, no reuse",
            Get,
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            ok(200, Chunked, false, b"hi"),
        ),
        (
            "transfer-encoding not ending in chunked reads to close",
            Get,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped",
            ok(200, Close, false, b"zipped"),
        ),
        (
            "no length: read to close",
            Get,
            "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end",
            ok(200, Close, false, b"until the end"),
        ),
        (
            "HEAD has no body whatever the headers say",
            Head,
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            ok(200, Empty, true, b""),
        ),
        (
            "HEAD with transfer-encoding",
            Head,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ok(200, Empty, true, b""),
        ),
        (
            "204",
            Delete,
            "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
            ok(204, Empty, true, b""),
        ),
        (
            "304",
            Get,
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            ok(304, Empty, true, b""),
        ),
        (
            "1xx heads are skipped",
            Post,
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
             HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            ok(201, Length(2), true, b"ok"),
        ),
        (
            "connection: close",
            Get,
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\nx",
            ok(200, Length(1), false, b"x"),
        ),
        (
            "connection tokens in a list",
            Get,
            "HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 1\r\n\r\nx",
            ok(200, Length(1), false, b"x"),
        ),
        (
            "HTTP/1.0 closes by default",
            Get,
            "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
            ok(200, Length(1), false, b"x"),
        ),
        (
            "HTTP/1.0 with keep-alive",
            Get,
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
            ok(200, Length(1), true, b"x"),
        ),
        (
            "error statuses parse like any other",
            Get,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            ok(503, Length(4), true, b"busy"),
        ),
        (
            "obsolete line folding and space before colon are tolerated",
            Get,
            "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length : 1\r\n\r\nx",
            ok(200, Length(1), true, b"x"),
        ),
    ];
    for (name, method, input, want) in cases {
        let got = parse(*method, input.as_bytes());
        assert_eq!(got.as_ref(), Ok(want), "{name}");
    }
}

#[test]
fn bytes_after_a_response_are_left_for_the_caller() {
    let got = parse(
        Method::Get,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n",
    )
    .unwrap();
    assert_eq!(got.body, b"hi");
    assert_eq!(got.rest, "HTTP/1.1 200 OK\r\n".len());
    let got = parse(
        Method::Get,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nextra",
    )
    .unwrap();
    assert_eq!(got.rest, 5);
}

#[test]
fn malformed_input() {
    use CodecError::*;
    let cases: &[(&str, &str, CodecError)] = &[
        (
            "garbage status line",
            "garbage\r\n\r\n",
            Malformed("bad HTTP version"),
        ),
        (
            "binary garbage",
            "\x16\x03\x01\x02\x00\x01\x00\x01",
            Malformed("bad HTTP version"),
        ),
        (
            "bad version",
            "HTTP/2.0 200 OK\r\n\r\n",
            Malformed("bad HTTP version"),
        ),
        (
            "bad status code",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            Malformed("bad status code"),
        ),
        (
            "status out of range",
            "HTTP/1.1 099 Low\r\n\r\n",
            Malformed("status code out of range"),
        ),
        (
            "bad header name",
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            Malformed("bad header name"),
        ),
        (
            "bad content-length",
            "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
            Malformed("invalid content-length"),
        ),
        (
            "negative content-length",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            Malformed("invalid content-length"),
        ),
        (
            "huge content-length",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            Malformed("invalid content-length"),
        ),
        (
            "conflicting content-length",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            Malformed("conflicting content-length"),
        ),
        (
            "switching protocols",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n",
            Upgrade,
        ),
        (
            "bad chunk size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            BadChunk,
        ),
        (
            "empty chunk size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            BadChunk,
        ),
        (
            "chunk size overflows",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            BadChunk,
        ),
        (
            "junk after chunk size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n",
            BadChunk,
        ),
        (
            "chunk longer than its size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            BadChunk,
        ),
        (
            "CR not followed by LF in size line",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\rhi",
            BadChunk,
        ),
        ("truncated head", "HTTP/1.1 200 OK\r\nContent-Le", Truncated),
        ("empty response", "", Truncated),
        (
            "truncated length body",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            Truncated,
        ),
        (
            "truncated chunked body",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            Truncated,
        ),
        (
            "chunked body without its last chunk",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            Truncated,
        ),
        (
            "chunked body without the final empty line",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
            Truncated,
        ),
    ];
    for (name, input, want) in cases {
        let got = parse(Method::Get, input.as_bytes());
        assert_eq!(got, Err(*want), "{name}");
    }
}

#[test]
fn oversized_heads_and_too_many_headers() {
    let limits = Limits {
        max_headers: 4,
        max_head_bytes: 200,
        max_body_kept: 1 << 20,
    };
    let mut big = String::from("HTTP/1.1 200 OK\r\nX-Big: ");
    big.push_str(&"a".repeat(300));
    big.push_str("\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        parse_with(Method::Get, big.as_bytes(), limits),
        Err(CodecError::HeadersTooLarge)
    );
    // A head that never ends stops at the limit, not at EOF.
    let endless = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(300));
    assert_eq!(
        parse_with(Method::Get, endless.as_bytes(), limits),
        Err(CodecError::HeadersTooLarge)
    );
    let many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    assert_eq!(
        parse_with(Method::Get, many.as_bytes(), limits),
        Err(CodecError::TooManyHeaders)
    );
    let four = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse_with(Method::Get, four.as_bytes(), limits)
            .unwrap()
            .status,
        200
    );
    // Interim heads count against the same budget.
    let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(10) + "HTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(
        parse_with(Method::Get, interim.as_bytes(), limits),
        Err(CodecError::HeadersTooLarge)
    );
    // Trailers too.
    let trailers = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{}\r\n",
        "T: 1\r\n".repeat(5)
    );
    assert_eq!(
        parse_with(Method::Get, trailers.as_bytes(), limits),
        Err(CodecError::TooManyHeaders)
    );
    let long_trailer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: {}\r\n\r\n",
        "x".repeat(300)
    );
    assert_eq!(
        parse_with(Method::Get, long_trailer.as_bytes(), limits),
        Err(CodecError::HeadersTooLarge)
    );
}

#[test]
fn kept_bodies_are_cut_at_the_limit_and_counted_in_full() {
    let limits = Limits {
        max_body_kept: 4,
        ..Limits::default()
    };
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n012\r\n7\r\n3456789\r\n0\r\n\r\n",
    ] {
        let mut parser = ResponseParser::new(limits);
        parser.reset(Method::Get);
        let head = parser.parse_head(input).unwrap().unwrap();
        let mut body = Vec::new();
        let (consumed, progress) = parser.parse_body(&input[head..], Some(&mut body)).unwrap();
        assert_eq!((head + consumed, progress), (input.len(), BodyProgress::Done));
        assert_eq!(body, b"0123");
        assert_eq!(parser.body_len(), 10);
        assert!(parser.body_cut());
    }
}

#[test]
fn unkept_bodies_are_counted() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    let mut parser = ResponseParser::new(Limits::default());
    parser.reset(Method::Get);
    let head = parser.parse_head(input).unwrap().unwrap();
    let (consumed, progress) = parser.parse_body(&input[head..], None).unwrap();
    assert_eq!((consumed, progress), (10, BodyProgress::Done));
    assert_eq!(parser.body_len(), 10);
    assert!(!parser.body_cut());
}

#[test]
fn headers_are_readable_and_the_parser_is_reusable() {
    let mut parser = ResponseParser::new(Limits::default());
    for round in 0..3 {
        parser.reset(Method::Get);
        let input = format!(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a={round}\r\nContent-Type: text/plain\r\n\
             set-cookie: b=2\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(parser.parse_head(input.as_bytes()).unwrap().is_some());
        let headers = &parser.head().headers;
        assert_eq!(headers.len(), 4);
        assert_eq!(headers.get("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(headers.get("X-Missing"), None);
        let cookies: Vec<&[u8]> = headers.get_all("SET-COOKIE").collect();
        assert_eq!(cookies, [format!("a={round}").as_bytes(), b"b=2"]);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["Set-Cookie", "Content-Type", "set-cookie", "Content-Length"]
        );
        assert_eq!(parser.parse_body(b"", None), Ok((0, BodyProgress::Done)));
    }
    let head = parser.take_head();
    assert_eq!(head.headers.len(), 4);
    assert!(parser.head().headers.is_empty());
}

#[test]
fn parsing_out_of_order_is_an_error_not_a_panic() {
    let mut parser = ResponseParser::new(Limits::default());
    parser.reset(Method::Get);
    assert!(parser.parse_body(b"abc", None).is_err());
    assert_eq!(parser.finish_at_eof(), Err(CodecError::Truncated));
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert!(parser.parse_head(input).unwrap().is_some());
    assert!(parser.parse_head(input).is_err());
    assert_eq!(parser.finish_at_eof(), Ok(()));
}
