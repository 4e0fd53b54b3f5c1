//! Tests of the test servers themselves, with a raw std client: if these
//! fail, every test built on the servers is suspect.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::faults::{Fault, FaultServer, GARBAGE_RESPONSE, OK_RESPONSE, PARTIAL_RESPONSE};
use crate::support::nginx::{CHUNKED_BODY, FILE_LEN, Nginx, NginxConfig, file_body};

/// Long enough for a loaded CI machine, short enough that a hang fails fast.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A keep-alive HTTP/1.1 connection that shows the framing it received.
struct RawClient {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Data chunks, when the body was chunked.
    chunks: usize,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        RawClient {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("send request");
    }

    fn send_get(&mut self, path: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    }

    fn get(&mut self, path: &str) -> RawResponse {
        self.send_get(path);
        self.response().expect("read response")
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "line without CRLF",
            ));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn response(&mut self) -> io::Result<RawResponse> {
        let status_line = self.line()?;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header with a colon");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
            chunks: 0,
        };
        if status == 204 || status == 304 {
            return Ok(response);
        }
        if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let size_line = self.line()?;
                let size = size_line.split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size.trim(), 16)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                let start = response.body.len();
                response.body.resize(start + size, 0);
                self.reader.read_exact(&mut response.body[start..])?;
                response.chunks += 1;
                if !self.line()?.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk too long"));
                }
            }
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("numeric Content-Length");
            response.body.resize(length, 0);
            self.reader.read_exact(&mut response.body)?;
        } else {
            self.reader.read_to_end(&mut response.body)?;
        }
        Ok(response)
    }

    /// Whether the server has closed the connection: the next read is EOF.
    fn at_eof(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }

    /// Reads until EOF or an error; returns the bytes and the error, if any.
    fn read_all(&mut self) -> (Vec<u8>, Option<io::Error>) {
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return (data, None),
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => return (data, Some(e)),
            }
        }
    }
}

fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    condition()
}

#[test]
fn nginx_serves_hello_on_its_own_port() {
    let nginx = Nginx::start(NginxConfig::default());
    assert!(nginx.addr().ip().is_loopback());
    assert_ne!(nginx.addr().port(), 80);
    assert_eq!(
        nginx.url(),
        format!("http://127.0.0.1:{}", nginx.addr().port())
    );
    let response = RawClient::connect(nginx.addr()).get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("6"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.body, b"hello\n");
}

#[test]
fn nginx_access_log_counts_keep_alive_requests_exactly() {
    let nginx = Nginx::start(NginxConfig::default());
    let mut client = RawClient::connect(nginx.addr());
    for _ in 0..5 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(nginx.wait_for_access_log_lines(5, CLIENT_TIMEOUT), 5);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(nginx.access_log_lines(), 5, "{}", nginx.access_log());
    assert_eq!(nginx.access_log(), "GET / 200\n".repeat(5));
}

#[test]
fn nginx_closes_after_keepalive_requests() {
    let nginx = Nginx::start(NginxConfig {
        keepalive_requests: 3,
        worker_processes: 2,
        ..NginxConfig::default()
    });
    let mut client = RawClient::connect(nginx.addr());
    for _ in 0..2 {
        let response = client.get("/");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
    let third = client.get("/");
    assert_eq!(third.status, 200);
    assert_eq!(third.header("connection"), Some("close"));
    assert!(client.at_eof(), "nginx kept the connection open");
    assert_eq!(nginx.wait_for_access_log_lines(3, CLIENT_TIMEOUT), 3);
}

#[test]
fn nginx_chunked_location_sends_several_chunks() {
    let nginx = Nginx::start(NginxConfig::default());
    let response = RawClient::connect(nginx.addr()).get("/chunked");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    assert_eq!(response.body, CHUNKED_BODY.as_bytes());
    assert!(response.chunks >= 2, "{} chunk(s)", response.chunks);
    // The SSI subrequest is not logged on its own.
    assert_eq!(nginx.wait_for_access_log_lines(1, CLIENT_TIMEOUT), 1);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(nginx.access_log(), "GET /chunked 200\n");
}

#[test]
fn nginx_file_has_content_length() {
    let nginx = Nginx::start(NginxConfig::default());
    let response = RawClient::connect(nginx.addr()).get("/file");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("10000"));
    assert_eq!(response.body.len(), FILE_LEN);
    assert_eq!(response.body, file_body());
}

#[test]
fn nginx_204_and_304_have_no_body() {
    let nginx = Nginx::start(NginxConfig::default());
    let mut client = RawClient::connect(nginx.addr());
    assert_eq!(client.get("/empty").status, 204);
    assert_eq!(client.get("/notmod").status, 304);
    // Had either sent a body, this response would not parse.
    assert_eq!(client.get("/").body, b"hello\n");
    assert_eq!(nginx.wait_for_access_log_lines(3, CLIENT_TIMEOUT), 3);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(
        nginx.access_log(),
        "GET /empty 204\nGET /notmod 304\nGET / 200\n"
    );
}

#[test]
fn nginx_serves_extra_locations_and_prefix_files() {
    let nginx = Nginx::start(NginxConfig {
        extra_locations: "location = /extra { return 201 \"extra\\n\"; }".to_string(),
        ..NginxConfig::default()
    });
    std::fs::write(nginx.prefix().join("html/page.txt"), "page\n").unwrap();
    let mut client = RawClient::connect(nginx.addr());
    let extra = client.get("/extra");
    assert_eq!(
        (extra.status, extra.body.as_slice()),
        (201, &b"extra\n"[..])
    );
    let page = client.get("/page.txt");
    assert_eq!((page.status, page.body.as_slice()), (200, &b"page\n"[..]));
    assert_eq!(client.get("/missing").status, 404);
}

#[test]
fn nginx_stops_when_dropped() {
    let nginx = Nginx::start(NginxConfig::default());
    let addr = nginx.addr();
    let prefix = nginx.prefix().to_path_buf();
    // An idle keep-alive connection must not hold up the stop.
    let mut client = RawClient::connect(addr);
    assert_eq!(client.get("/").status, 200);
    let started = Instant::now();
    drop(nginx);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(client.at_eof());
    assert!(TcpStream::connect(addr).is_err(), "something still listens");
    assert!(!prefix.exists());
}

#[test]
fn fault_ok_keeps_connections_alive() {
    let server = FaultServer::start(Fault::Ok);
    assert_eq!(server.url(), format!("http://{}", server.addr()));
    let mut client = RawClient::connect(server.addr());
    for _ in 0..3 {
        let response = client.get("/");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
    }
    assert_eq!(server.requests_seen(), 3);
    assert_eq!(server.connections(), 1);
}

#[test]
fn fault_server_reads_bodies_and_pipelined_requests() {
    let server = FaultServer::start(Fault::Ok);
    let mut client = RawClient::connect(server.addr());
    client.send(
        b"POST /a HTTP/1.1\r\nHost: test\r\ncontent-length: 5\r\n\r\n\r\n\r\n\r\
          GET /b HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(client.response().unwrap().body, b"ok");
    assert_eq!(client.response().unwrap().body, b"ok");
    // The body, all blank lines, must not count as a third request.
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.requests_seen(), 2);
}

#[test]
fn fault_reset_mid_response_sends_rst() {
    let server = FaultServer::start(Fault::ResetMidResponse);
    let mut client = RawClient::connect(server.addr());
    client.send_get("/");
    let (data, error) = client.read_all();
    assert_eq!(data, PARTIAL_RESPONSE);
    let kind = error.map(|e| e.kind());
    assert_eq!(kind, Some(io::ErrorKind::ConnectionReset));
}

#[test]
fn fault_truncated_body_closes_cleanly() {
    let server = FaultServer::start(Fault::TruncatedBody);
    let mut client = RawClient::connect(server.addr());
    client.send_get("/");
    let (data, error) = client.read_all();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(data, PARTIAL_RESPONSE);
    assert_eq!(server.requests_seen(), 1);
}

#[test]
fn fault_no_response_holds_the_connection_until_dropped() {
    let server = FaultServer::start(Fault::NoResponse);
    let mut client = RawClient::connect(server.addr());
    client.send_get("/");
    assert!(eventually(|| server.requests_seen() == 1));
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let silent = client.reader.read(&mut byte).unwrap_err();
    assert!(
        matches!(
            silent.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{silent:?}"
    );
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    client
        .reader
        .get_ref()
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .unwrap();
    assert!(client.at_eof());
}

#[test]
fn fault_garbage_is_not_http() {
    let server = FaultServer::start(Fault::Garbage);
    let mut client = RawClient::connect(server.addr());
    client.send_get("/");
    let (data, error) = client.read_all();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(data, GARBAGE_RESPONSE);
    assert!(!data.starts_with(b"HTTP/"));
}

#[test]
fn fault_slow_trickle_sends_a_byte_at_a_time() {
    let interval = Duration::from_millis(5);
    let server = FaultServer::start(Fault::SlowTrickle {
        interval_ms: interval.as_millis() as u64,
    });
    let mut client = RawClient::connect(server.addr());
    let started = Instant::now();
    for _ in 0..2 {
        client.send_get("/");
        let mut data = Vec::new();
        let mut reads = 0;
        while data.len() < OK_RESPONSE.len() {
            let mut buf = [0u8; 1024];
            let n = client.reader.read(&mut buf).expect("read");
            assert_ne!(n, 0, "closed after {data:?}");
            data.extend_from_slice(&buf[..n]);
            reads += 1;
        }
        assert_eq!(data, OK_RESPONSE);
        assert!(reads > OK_RESPONSE.len() / 2, "{reads} reads");
    }
    assert!(started.elapsed() >= interval * 2 * OK_RESPONSE.len() as u32);
    assert_eq!(server.requests_seen(), 2);
}

#[test]
fn fault_close_after_closes_silently() {
    let server = FaultServer::start(Fault::CloseAfter { requests: 3 });
    for _ in 0..2 {
        let mut client = RawClient::connect(server.addr());
        for _ in 0..3 {
            let response = client.get("/");
            assert_eq!(response.status, 200);
            assert_eq!(response.header("connection"), None);
        }
        assert!(client.at_eof());
    }
    assert_eq!(server.requests_seen(), 6);
    assert_eq!(server.connections(), 2);
}

#[test]
fn fault_close_after_zero_closes_at_once() {
    let server = FaultServer::start(Fault::CloseAfter { requests: 0 });
    let mut client = RawClient::connect(server.addr());
    assert!(client.at_eof());
    assert_eq!(server.requests_seen(), 0);
    assert_eq!(server.connections(), 1);
}

#[test]
fn fault_server_drop_stops_busy_connections_promptly() {
    let server = FaultServer::start(Fault::SlowTrickle { interval_ms: 1000 });
    let mut clients: Vec<RawClient> = (0..4).map(|_| RawClient::connect(server.addr())).collect();
    for client in &mut clients {
        client.send_get("/");
    }
    assert!(eventually(|| server.requests_seen() == 4));
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for client in &mut clients {
        assert!(client.at_eof());
    }
}
