//! The request side of the sans-IO HTTP/1.1 codec: the [`Request`] a user
//! asks for, and [`write_request`], which turns it into wire bytes.
//!
//! The writer checks every byte a script controls (path, header names and
//! values) before anything reaches the wire, so a script cannot smuggle a
//! second header or request through a value.

use std::time::Duration;

use blast_proto::Method;

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
    /// Status codes that count as success; empty: any status below 400.
    pub expect: Vec<u16>,
    /// Follow 3xx redirects (recorded as one request, under this name).
    pub follow_redirects: bool,
    /// `path` is the full path on the origin: the origin's base path is not
    /// put before it (set for redirect targets).
    pub raw_path: bool,
}

impl Request {
    /// A GET of `path` on origin 0, named after the path, with defaults.
    pub fn get(path: &str) -> Request {
        Request {
            method: Method::Get,
            origin: 0,
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            name: path.to_string(),
            timeout: None,
            keep_body: false,
            expect: Vec::new(),
            follow_redirects: true,
            raw_path: false,
        }
    }

    /// Whether a response with `status` counts as success.
    pub fn accepts(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            status < 400
        } else {
            self.expect.contains(&status)
        }
    }
}

/// A request that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A header name or value holds bytes HTTP does not allow.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// The path is empty, does not start with `/` (and is not `*`), or holds
    /// whitespace or control bytes.
    #[error("invalid request path")]
    InvalidPath,
}

/// Sent unless the script gives its own `User-Agent`.
const USER_AGENT: &[u8] =
    concat!("User-Agent: blast/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes();

/// Most digits a `usize` takes in decimal.
const MAX_DECIMAL_DIGITS: usize = 20;

/// Appends `req` to `out` as HTTP/1.1, with `Host: host` and, when
/// `cookie` is not empty, `Cookie: cookie` (the user's jar; checked like
/// any header).
///
/// In order: the request line; `Host` unless the request's headers hold
/// one; the request's headers as given; `Content-Length` when the body is
/// not empty or the method is POST, PUT or PATCH, unless the script framed
/// the body itself with `Content-Length` or `Transfer-Encoding` (it is then
/// trusted, right or wrong: a load test may want to send exactly that); a
/// default `User-Agent`; the blank line; the body.
///
/// Everything is checked before anything is written: on error `out` is
/// left as it was. `out` grows at most once.
pub fn write_request(
    out: &mut Vec<u8>,
    req: &Request,
    host: &str,
    cookie: &str,
) -> Result<(), RequestError> {
    if !is_valid_path(req.path.as_bytes()) {
        return Err(RequestError::InvalidPath);
    }
    let method = req.method.as_str().as_bytes();
    let mut len = method.len() + 1 + req.path.len() + b" HTTP/1.1\r\n".len();
    let mut has_host = false;
    let mut has_framing = false;
    let mut has_user_agent = false;
    for (name, value) in &req.headers {
        if !is_token(name.as_bytes()) || !is_field_value(value.as_bytes()) {
            return Err(RequestError::InvalidHeader(name.clone()));
        }
        has_host |= name.eq_ignore_ascii_case("host");
        has_framing |= name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        has_user_agent |= name.eq_ignore_ascii_case("user-agent");
        len += name.len() + 2 + value.len() + 2;
    }
    if !has_host {
        // The host comes from the run's origins, not the script, but a
        // header built from it is checked like any other.
        if !is_field_value(host.as_bytes()) {
            return Err(RequestError::InvalidHeader("Host".to_string()));
        }
        len += b"Host: \r\n".len() + host.len();
    }
    if !cookie.is_empty() {
        if !is_field_value(cookie.as_bytes()) {
            return Err(RequestError::InvalidHeader("Cookie".to_string()));
        }
        len += b"Cookie: \r\n".len() + cookie.len();
    }
    let content_length = !has_framing
        && (!req.body.is_empty()
            || matches!(req.method, Method::Post | Method::Put | Method::Patch));
    if content_length {
        len += b"Content-Length: \r\n".len() + MAX_DECIMAL_DIGITS;
    }
    if !has_user_agent {
        len += USER_AGENT.len();
    }
    len += 2 + req.body.len();
    out.reserve(len);

    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(req.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !has_host {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !cookie.is_empty() {
        out.extend_from_slice(b"Cookie: ");
        out.extend_from_slice(cookie.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if content_length {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, req.body.len());
        out.extend_from_slice(b"\r\n");
    }
    if !has_user_agent {
        out.extend_from_slice(USER_AGENT);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&req.body);
    Ok(())
}

/// An origin-form path (`/...`) or `*`, with no byte that would end the
/// request target early (whitespace) or start a new line (CR, LF).
/// Non-ASCII bytes pass: servers see them as the script wrote them.
fn is_valid_path(path: &[u8]) -> bool {
    match path {
        b"*" => true,
        [b'/', ..] => path.iter().all(|&b| b > b' ' && b != 0x7f),
        _ => false,
    }
}

/// Which bytes are `tchar` (RFC 9110 §5.6.2).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TCHAR[usize::from(b)])
}

/// CR and LF would end the header line; NUL is cut short by many servers.
/// Other bytes go through as the script wrote them.
fn is_field_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; MAX_DECIMAL_DIGITS];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            method,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            ..Request::get(path)
        }
    }

    const UA: &str = concat!("User-Agent: blast/", env!("CARGO_PKG_VERSION"), "\r\n");

    #[test]
    fn cookies_go_in_one_checked_header() {
        let req = request(Method::Get, "/", &[], b"");
        let mut out = Vec::new();
        write_request(&mut out, &req, "h", "a=1; b=2").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nCookie: a=1; b=2\r\n"), "{text}");
        assert!(write_request(&mut Vec::new(), &req, "h", "a=1\r\nX: y").is_err());
    }

    #[test]
    fn expect_decides_success() {
        let mut req = Request::get("/");
        assert!(req.accepts(200) && req.accepts(302) && !req.accepts(404));
        req.expect = vec![404];
        assert!(req.accepts(404) && !req.accepts(200));
    }

    #[test]
    fn writes_exact_bytes() {
        let cases: &[(&str, Request, String)] = &[
            (
                "plain GET",
                request(Method::Get, "/", &[], b""),
                format!("GET / HTTP/1.1\r\nHost: example.com\r\n{UA}\r\n"),
            ),
            (
                "GET with headers, in order",
                request(
                    Method::Get,
                    "/a?b=c",
                    &[("Accept", "*/*"), ("X-Id", "7")],
                    b"",
                ),
                format!(
                    "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Id: 7\r\n{UA}\r\n"
                ),
            ),
            (
                "POST with body",
                request(
                    Method::Post,
                    "/login",
                    &[("Content-Type", "application/json")],
                    b"{\"u\":1}",
                ),
                format!(
                    "POST /login HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\n\
                     Content-Length: 7\r\n{UA}\r\n{{\"u\":1}}"
                ),
            ),
            (
                "PUT without body still says 0",
                request(Method::Put, "/x", &[], b""),
                format!("PUT /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n{UA}\r\n"),
            ),
            (
                "DELETE with body gets a length",
                request(Method::Delete, "/x", &[], b"abc"),
                format!(
                    "DELETE /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n{UA}\r\nabc"
                ),
            ),
            (
                "HEAD",
                request(Method::Head, "/", &[], b""),
                format!("HEAD / HTTP/1.1\r\nHost: example.com\r\n{UA}\r\n"),
            ),
            (
                "OPTIONS *",
                request(Method::Options, "*", &[], b""),
                format!("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n{UA}\r\n"),
            ),
            (
                "Host override keeps its place",
                request(Method::Get, "/", &[("X-A", "1"), ("hOsT", "other:81")], b""),
                format!("GET / HTTP/1.1\r\nX-A: 1\r\nhOsT: other:81\r\n{UA}\r\n"),
            ),
            (
                "script's Content-Length is trusted",
                request(Method::Post, "/", &[("content-length", "2")], b"abcd"),
                format!(
                    "POST / HTTP/1.1\r\nHost: example.com\r\ncontent-length: 2\r\n{UA}\r\nabcd"
                ),
            ),
            (
                "script's Transfer-Encoding frames the body",
                request(
                    Method::Post,
                    "/",
                    &[("Transfer-Encoding", "chunked")],
                    b"0\r\n\r\n",
                ),
                format!(
                    "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n{UA}\r\n0\r\n\r\n"
                ),
            ),
            (
                "User-Agent override",
                request(Method::Get, "/", &[("user-agent", "me/1")], b""),
                "GET / HTTP/1.1\r\nHost: example.com\r\nuser-agent: me/1\r\n\r\n".to_string(),
            ),
            (
                "empty value and non-ASCII path pass",
                request(Method::Get, "/caf\u{e9}", &[("X-Empty", "")], b""),
                format!("GET /caf\u{e9} HTTP/1.1\r\nHost: example.com\r\nX-Empty: \r\n{UA}\r\n"),
            ),
        ];
        for (what, req, want) in cases {
            let mut out = b"previous".to_vec();
            write_request(&mut out, req, "example.com", "").unwrap();
            assert_eq!(String::from_utf8_lossy(&out[8..]), *want, "{what}");
            assert_eq!(&out[..8], b"previous", "{what}: appends");
        }
    }

    #[test]
    fn large_body_length_is_exact() {
        let req = request(Method::Post, "/", &[], &vec![b'x'; 1_234_567]);
        let mut out = Vec::new();
        write_request(&mut out, &req, "h", "").unwrap();
        let text = String::from_utf8_lossy(&out[..100]);
        assert!(text.contains("\r\nContent-Length: 1234567\r\n"), "{text}");
        assert_eq!(out.len(), out.capacity().min(out.len()));
        assert!(out.ends_with(b"xx"));
    }

    #[test]
    fn rejects_injection_and_bad_paths() {
        let bad_headers: &[(&str, &str)] = &[
            ("X-A", "1\r\nX-Injected: 1"),
            ("X-A", "1\nX-Injected: 1"),
            ("X-A", "1\rX"),
            ("X-A", "a\0b"),
            ("X-A\r\nX-Injected", "1"),
            ("X A", "1"),
            ("X-A:", "1"),
            ("", "1"),
            ("X-\u{e9}", "1"),
            ("X(A)", "1"),
        ];
        for &(name, value) in bad_headers {
            let req = request(Method::Get, "/", &[("Ok", "1"), (name, value)], b"");
            let mut out = b"kept".to_vec();
            let err = write_request(&mut out, &req, "h", "").unwrap_err();
            assert!(
                matches!(&err, RequestError::InvalidHeader(n) if n == name),
                "{name:?}: {err}"
            );
            assert_eq!(out, b"kept", "{name:?}: nothing written");
        }
        let req = request(Method::Get, "/", &[], b"");
        assert!(matches!(
            write_request(&mut Vec::new(), &req, "h\r\nX: 1", ""),
            Err(RequestError::InvalidHeader(_))
        ));

        for path in [
            "",
            "a/b",
            "http://x/",
            "/a b",
            "/a\tb",
            "/a\r\nX: 1",
            "/a\nb",
            "/\0",
            "/\u{7f}",
            "**",
        ] {
            let req = request(Method::Get, path, &[], b"");
            let mut out = Vec::new();
            assert!(
                matches!(
                    write_request(&mut out, &req, "h", ""),
                    Err(RequestError::InvalidPath)
                ),
                "{path:?}"
            );
            assert!(out.is_empty());
        }
    }

    #[test]
    fn decimal() {
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (10, "10"),
            (usize::MAX, "18446744073709551615"),
        ] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, want.as_bytes());
        }
    }
}
