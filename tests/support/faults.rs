//! An in-process TCP server that breaks HTTP in one chosen way, to test how
//! the client copes with broken servers.
//!
//! A thread per connection, plain std sockets (socket2 only to send a RST).
//! Dropping the server stops every thread it started, within a bounded time.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A valid keep-alive response.
pub const OK_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

/// What [`Fault::TruncatedBody`] and [`Fault::ResetMidResponse`] send: a head
/// that promises 100 bytes of body, and 10 of them.
pub const PARTIAL_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";

/// What [`Fault::Garbage`] sends: not HTTP from its first byte on.
pub const GARBAGE_RESPONSE: &[u8] = b"\x00\x01\x02 this is not http \xfe\xff\r\n\r\n";

/// How often a connection thread that waits on its socket checks whether the
/// server is being dropped.
const POLL: Duration = Duration::from_millis(50);
/// How long a closing connection keeps reading what the client still sends,
/// so that the close is a FIN and not a RST (as nginx's lingering close).
const LINGER: Duration = Duration::from_secs(1);
/// How long `Drop` waits for the server's threads.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads a request, sends [`PARTIAL_RESPONSE`], then resets the
    /// connection (RST).
    ResetMidResponse,
    /// Reads a request, sends [`PARTIAL_RESPONSE`], then closes (FIN).
    TruncatedBody,
    /// Reads requests and never answers; the connection stays open until
    /// the client closes it or the server is dropped.
    NoResponse,
    /// Reads a request, sends [`GARBAGE_RESPONSE`], then closes (FIN).
    Garbage,
    /// Answers every request with [`OK_RESPONSE`], one byte per interval.
    SlowTrickle {
        /// Pause before each byte, in milliseconds.
        interval_ms: u64,
    },
    /// Answers `requests` requests with [`OK_RESPONSE`], then closes (FIN)
    /// without having said `Connection: close`: a server's keep-alive or
    /// idle close. With 0, closes as soon as it accepts.
    CloseAfter {
        /// Requests answered on each connection before it is closed.
        requests: u32,
    },
    /// Answers every request with [`OK_RESPONSE`], keeping the connection
    /// alive.
    Ok,
}

/// A running fault server on 127.0.0.1; dropping it stops it.
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    fault: Fault,
    shutdown: AtomicBool,
    requests: AtomicU64,
    connections: AtomicU64,
    /// A clone of every open connection's socket, so that `Drop` can shut
    /// them down and wake threads blocked in a read or write.
    open: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultServer {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fault server");
        let addr = listener.local_addr().expect("fault server address");
        let shared = Arc::new(Shared {
            fault,
            shutdown: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-accept-{}", addr.port()))
                .spawn(move || accept_connections(listener, &shared))
                .expect("spawn the fault server's acceptor")
        };
        FaultServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Complete request heads received so far, on all connections. Bytes a
    /// closing connection drains after its close are not counted.
    pub fn requests_seen(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // The acceptor is blocked in accept(): a connection wakes it, and it
        // then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            join_until(acceptor, deadline);
        }
        // The acceptor has stopped, so every connection is in `open` by now.
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            join_until(worker, deadline);
        }
    }
}

/// Joins `handle` if it finishes before `deadline`; otherwise leaves it
/// detached, so that a stuck thread fails no more than its own test.
fn join_until(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}

/// A poisoned lock only means another connection thread panicked: the map
/// and list inside are still sound.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_connections(listener: TcpListener, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                // Out of fds or the like: back off rather than spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let id = next_id;
        next_id += 1;
        lock(&shared.open).insert(id, clone);
        let worker = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("fault-conn-{id}"))
                .spawn(move || {
                    let mut stream = stream;
                    let _ = serve(&mut stream, &shared);
                    // The socket closes (with a FIN, or the RST that `serve`
                    // armed) only when its last descriptor does: the clone
                    // goes first.
                    lock(&shared.open).remove(&id);
                    drop(stream);
                })
        };
        let mut workers = lock(&shared.workers);
        workers.retain(|worker| !worker.is_finished());
        match worker {
            Ok(worker) => workers.push(worker),
            Err(_) => {
                lock(&shared.open).remove(&id);
            }
        }
    }
}

/// Runs the fault on one connection. Returns when the connection should
/// close: an error here is only the client leaving or the server stopping.
fn serve(stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_nodelay(true)?;
    let mut requests = RequestReader::default();
    match shared.fault {
        Fault::Ok => loop {
            requests.next(stream, shared)?;
            stream.write_all(OK_RESPONSE)?;
        },
        Fault::CloseAfter { requests: count } => {
            for _ in 0..count {
                requests.next(stream, shared)?;
                stream.write_all(OK_RESPONSE)?;
            }
            close_lingering(stream, shared)
        }
        Fault::ResetMidResponse => {
            requests.next(stream, shared)?;
            stream.write_all(PARTIAL_RESPONSE)?;
            // A RST discards whatever is still in the send queue: give the
            // partial response time to reach the client first.
            pause(shared, Duration::from_millis(20))?;
            socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO))
        }
        Fault::TruncatedBody => {
            requests.next(stream, shared)?;
            stream.write_all(PARTIAL_RESPONSE)?;
            close_lingering(stream, shared)
        }
        Fault::Garbage => {
            requests.next(stream, shared)?;
            stream.write_all(GARBAGE_RESPONSE)?;
            close_lingering(stream, shared)
        }
        Fault::NoResponse => loop {
            requests.next(stream, shared)?;
        },
        Fault::SlowTrickle { interval_ms } => loop {
            requests.next(stream, shared)?;
            for byte in OK_RESPONSE {
                pause(shared, Duration::from_millis(interval_ms))?;
                stream.write_all(std::slice::from_ref(byte))?;
            }
        },
    }
}

/// Sends a FIN, then reads and discards what the client still sends until
/// it closes too (or `LINGER` passes): closing a socket with unread data
/// would send a RST instead.
fn close_lingering(stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while Instant::now() < deadline && !shared.shutdown.load(Ordering::SeqCst) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps for `duration`, or fails as soon as the server is being dropped.
fn pause(shared: &Shared, duration: Duration) -> io::Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Err(stopping());
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        thread::sleep((deadline - now).min(POLL));
    }
}

fn stopping() -> io::Error {
    io::Error::other("fault server stopping")
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads requests off a connection: heads up to the blank line, then a
/// Content-Length body if any (chunked request bodies are not supported).
#[derive(Default)]
struct RequestReader {
    buf: Vec<u8>,
}

impl RequestReader {
    /// Consumes the next whole request, counting it once its head is in.
    fn next(&mut self, stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
        let head_len = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(stream, shared)?;
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let request_len = head_len + content_length(&self.buf[..head_len]);
        while self.buf.len() < request_len {
            self.fill(stream, shared)?;
        }
        self.buf.drain(..request_len);
        Ok(())
    }

    fn fill(&mut self, stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        loop {
            if shared.shutdown.load(Ordering::SeqCst) {
                return Err(stopping());
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}
