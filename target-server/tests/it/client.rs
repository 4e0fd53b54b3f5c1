//! A minimal HTTP/1.1 client over `std::net::TcpStream`, for tests only:
//! it writes requests as text and reads responses by their framing
//! (`Content-Length`, chunked, or close), remembering how many chunks came.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use blast_target::{Target, TargetOptions};

/// Starts a target on a free loopback port.
pub fn start() -> Target {
    start_with(TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..TargetOptions::default()
    })
}

/// Starts a target with these options.
pub fn start_with(opts: TargetOptions) -> Target {
    Target::start(opts).expect("target starts")
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Data chunks, if the body was chunked.
    pub chunks: Option<usize>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// One keep-alive connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request with no body and reads the response.
    pub fn get(&mut self, method: &str, path: &str) -> Response {
        self.send(method, path, &[], b"")
    }

    /// Sends a request and reads the response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.write(&request(method, path, headers, body));
        self.read(method)
    }

    /// Writes raw bytes, e.g. several requests at once.
    pub fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write request");
    }

    /// Another handle on the socket, to write from a second thread.
    pub fn try_clone_writer(&self) -> TcpStream {
        self.writer.try_clone().unwrap()
    }

    /// Reads one response to a request made with `method`.
    pub fn read(&mut self, method: &str) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let mut parts = line.trim_end().splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts.next().and_then(|s| s.parse().ok()).expect("status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let header = line.trim_end_matches(['\r', '\n']);
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("header colon");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            chunks: None,
        };
        if method == "HEAD" || matches!(status, 204 | 304) {
            return response;
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            response.chunks = Some(self.read_chunked(&mut response.body));
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            response.body.resize(len, 0);
            self.reader.read_exact(&mut response.body).expect("body");
        } else {
            self.reader.read_to_end(&mut response.body).expect("body");
        }
        response
    }

    fn read_chunked(&mut self, body: &mut Vec<u8>) -> usize {
        let mut chunks = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("chunk size");
            let size = line.trim_end().split(';').next().unwrap();
            let size = usize::from_str_radix(size, 16).expect("hex chunk size");
            if size == 0 {
                // No trailers are sent: just the final CRLF.
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                assert_eq!(line, "\r\n");
                return chunks;
            }
            chunks += 1;
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..]).expect("chunk");
            let mut crlf = [0; 2];
            self.reader.read_exact(&mut crlf).unwrap();
            assert_eq!(&crlf, b"\r\n");
        }
    }

    /// True once the server has closed the connection (EOF, or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

/// A request as text; `Content-Length` is added when there is a body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The byte generated bodies hold at `offset`.
pub fn pattern_byte(offset: usize) -> u8 {
    b'a' + (offset % 26) as u8
}
