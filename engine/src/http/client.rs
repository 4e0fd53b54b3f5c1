//! A user's HTTP client: one keep-alive connection per origin, timeouts,
//! and the one retry browsers make when a kept-alive connection turns out
//! to have been closed by the server.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blast_proto::FailureKind;

use super::connection::{
    Connection, ExchangeError, HandshakeError, IoBufs, Stream, io_failure, tls_handshake,
};
use super::origin::{Origin, Origins, Scheme};
use super::{CookieJar, Limits, Request, ResponseHead, is_redirect, write_request};
use crate::runtime::{self, Signal};

/// A response as a user sees it. A request that failed without an answer
/// has status 0 and a [`Response::failure`].
#[derive(Debug, Default)]
pub struct Response {
    /// Status code; 0 when no answer arrived.
    pub status: u16,
    /// The head (headers), when kept.
    pub head: ResponseHead,
    /// The body, when the user asked to keep it (up to the body limit).
    pub body: Vec<u8>,
    /// Body bytes received, kept or not.
    pub body_len: u64,
    /// True when the body was longer than the limit and `body` holds only
    /// its start.
    pub body_cut: bool,
    /// From the start of the request (connecting included) to the last
    /// byte of the response.
    pub elapsed: Duration,
    /// Why the request failed at the transport or protocol level, if it did
    /// (an HTTP error status is not a transport failure).
    pub failure: Option<FailureKind>,
}

/// What every client on a shard shares.
pub(crate) struct ClientShared {
    /// The node's origins.
    pub(crate) origins: Arc<Origins>,
    /// This shard's copies of the resolved ones, by index: looking one up
    /// takes no lock and touches no other core's cache lines.
    resolved: RefCell<Vec<Option<Rc<Origin>>>>,
    /// Made on the first https connection when not given.
    tls: RefCell<Option<futures_rustls::TlsConnector>>,
    pub(crate) limits: Limits,
    pub(crate) timeout: Duration,
    /// Fired when the stop timeout runs out: requests still in flight end
    /// as [`FailureKind::Stopped`].
    pub(crate) hard_stop: Signal,
    pool: RefCell<Vec<IoBufs>>,
}

impl ClientShared {
    pub(crate) fn new(
        origins: Arc<Origins>,
        tls: Option<futures_rustls::TlsConnector>,
        limits: Limits,
        timeout: Duration,
        hard_stop: Signal,
    ) -> ClientShared {
        ClientShared {
            origins,
            resolved: RefCell::new(Vec::new()),
            tls: RefCell::new(tls),
            limits,
            timeout,
            hard_stop,
            pool: RefCell::new(Vec::new()),
        }
    }

    /// This shard's copy of origin `index`, when it has one.
    fn cached(&self, index: u16) -> Option<Rc<Origin>> {
        self.resolved.borrow().get(usize::from(index))?.clone()
    }

    /// Origin `index` from the node's table, once its lookup (off this
    /// thread) is done; this shard keeps a copy.
    async fn look_up(&self, index: u16) -> Result<Rc<Origin>, FailureKind> {
        let at = usize::from(index);
        let origin = Rc::new(Origin::clone(&*self.origins.get(index).await?));
        let mut resolved = self.resolved.borrow_mut();
        if resolved.len() <= at {
            resolved.resize(at + 1, None);
        }
        resolved[at] = Some(origin.clone());
        Ok(origin)
    }

    /// The TLS connector, made from the node's settings on first use.
    fn tls(&self) -> Result<futures_rustls::TlsConnector, FailureKind> {
        let mut tls = self.tls.borrow_mut();
        if tls.is_none() {
            // Built by the lookup thread before any https origin is ready.
            let config = self.origins.tls_if_built().ok_or(FailureKind::Tls)?;
            *tls = Some(futures_rustls::TlsConnector::from(config));
        }
        tls.clone().ok_or(FailureKind::Tls)
    }

    fn take_bufs(&self) -> IoBufs {
        self.pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| IoBufs::new(self.limits))
    }

    fn give_back(&self, bufs: IoBufs) {
        self.pool.borrow_mut().push(bufs);
    }
}

/// A user's client.
#[derive(Default)]
pub(crate) struct HttpClient {
    /// Kept-alive connections, by origin index.
    conns: Vec<Option<Connection>>,
    /// The user's cookies.
    pub(crate) cookies: CookieJar,
    /// The `Cookie` header being built (kept for its capacity).
    cookie_header: String,
}

impl HttpClient {
    /// Sends `req` and waits for its response, within the request timeout.
    pub(crate) async fn send(&mut self, shared: &ClientShared, req: &Request) -> Response {
        let started = Instant::now();
        let mut response = Response::default();
        let origin_index = usize::from(req.origin);
        let timeout = req.timeout.unwrap_or(shared.timeout);
        let origin = match shared.cached(req.origin) {
            Some(origin) => origin,
            None => {
                // A host first named during the run is looked up off the
                // shard thread; the wait counts against the request's
                // timeout.
                let looked_up = futures_lite::future::or(
                    async {
                        runtime::with_timeout(timeout, shared.look_up(req.origin))
                            .await
                            .unwrap_or(Err(FailureKind::Timeout))
                    },
                    async {
                        shared.hard_stop.wait().await;
                        Err(FailureKind::Stopped)
                    },
                )
                .await;
                match looked_up {
                    Ok(origin) => origin,
                    Err(kind) => {
                        response.failure = Some(kind);
                        response.elapsed = started.elapsed();
                        return response;
                    }
                }
            }
        };
        let origin = &*origin;
        let timeout = timeout.saturating_sub(started.elapsed());
        if self.conns.len() <= origin_index {
            self.conns.resize_with(origin_index + 1, || None);
        }
        let mut bufs = shared.take_bufs();
        bufs.write.clear();
        let full_path = if origin.base_path.is_empty() || req.raw_path {
            None
        } else {
            // A base path from the host URL goes before the request's path.
            Some(format!("{}{}", origin.base_path, req.path))
        };
        let path = full_path.as_deref().unwrap_or(&req.path);
        if self.cookies.is_empty() {
            self.cookie_header.clear();
        } else {
            let secure = origin.scheme == Scheme::Https;
            self.cookies
                .header_for(req.origin, secure, path, &mut self.cookie_header);
        }
        let written = match &full_path {
            None => write_request(
                &mut bufs.write,
                req,
                &origin.host_header,
                &self.cookie_header,
            ),
            Some(full) => {
                let mut prefixed = req.clone();
                prefixed.path.clone_from(full);
                write_request(
                    &mut bufs.write,
                    &prefixed,
                    &origin.host_header,
                    &self.cookie_header,
                )
            }
        };
        if written.is_err() {
            shared.give_back(bufs);
            response.failure = Some(FailureKind::InvalidRequest);
            response.elapsed = started.elapsed();
            return response;
        }
        let slot = &mut self.conns[origin_index];
        let mut body = Vec::new();
        let keep = req.keep_body;
        // Connecting counts against the request's timeout, like everything
        // else until the last byte of the response.
        let connecting = std::cell::Cell::new(false);
        let attempt = async {
            let mut retried = false;
            loop {
                let (mut conn, reused) = match slot.take() {
                    Some(conn) => (conn, true),
                    None => {
                        connecting.set(true);
                        let conn = open(shared, origin, timeout).await?;
                        connecting.set(false);
                        (conn, false)
                    }
                };
                body.clear();
                let keep_body = if keep { Some(&mut body) } else { None };
                match conn
                    .exchange(&mut bufs, req.method, &shared.limits, keep_body)
                    .await
                {
                    Ok(reusable) => {
                        if reusable {
                            *slot = Some(conn);
                        }
                        return Ok(());
                    }
                    // The server closed a kept-alive connection just before
                    // our request reached it: send it once more, fresh.
                    Err(ExchangeError {
                        answered: false,
                        kind,
                    }) if reused
                        && !retried
                        && matches!(kind, FailureKind::Reset | FailureKind::NoResponse) =>
                    {
                        retried = true;
                    }
                    Err(e) => return Err(e.kind),
                }
            }
        };
        let outcome = futures_lite::future::or(
            async { runtime::with_timeout(timeout, attempt).await },
            async {
                shared.hard_stop.wait().await;
                Some(Err(FailureKind::Stopped))
            },
        )
        .await;
        response.elapsed = started.elapsed();
        match outcome {
            Some(Ok(())) => {
                let head = bufs.parser.head();
                response.status = head.status;
                response.body_len = bufs.parser.body_len();
                response.body_cut = bufs.parser.body_cut();
                if head.headers.get("set-cookie").is_some() {
                    let path = full_path.as_deref().unwrap_or(&req.path);
                    self.cookies.store(req.origin, path, &head.headers);
                }
                // A redirect's head is kept for its Location.
                if keep || (req.follow_redirects && is_redirect(head.status)) {
                    response.head = bufs.parser.take_head();
                }
                if keep {
                    response.body = body;
                }
            }
            Some(Err(kind)) => {
                response.failure = Some(kind);
                response.body_len = bufs.parser.body_len();
            }
            None => {
                response.failure = Some(if connecting.get() {
                    FailureKind::ConnectTimeout(origin.addr)
                } else {
                    FailureKind::Timeout
                });
                response.body_len = bufs.parser.body_len();
            }
        }
        shared.give_back(bufs);
        response
    }
}

/// Opens a connection to `origin`: TCP, then TLS for https.
async fn open(
    shared: &ClientShared,
    origin: &Origin,
    limit: Duration,
) -> Result<Connection, FailureKind> {
    let addr = origin.addr;
    let tcp =
        runtime::connect(addr, limit)
            .await
            .map_err(|e| match (e.kind(), io_failure(&e)) {
                (io::ErrorKind::ConnectionRefused, _) => FailureKind::Refused(addr),
                (_, FailureKind::Timeout) => FailureKind::ConnectTimeout(addr),
                _ => FailureKind::Connect(addr),
            })?;
    let stream = match origin.scheme {
        Scheme::Http => Stream::Plain(tcp),
        Scheme::Https => {
            let connector = shared.tls()?;
            let name = origin.server_name().map_err(|_| FailureKind::Tls)?;
            let tls = tls_handshake(&connector, name, tcp)
                .await
                .map_err(|e| match e {
                    HandshakeError::PlainHttp => FailureKind::TlsGotPlainHttp(addr),
                    HandshakeError::Other => FailureKind::Tls,
                })?;
            Stream::Tls(Box::new(tls))
        }
    };
    Ok(Connection::new(stream))
}
