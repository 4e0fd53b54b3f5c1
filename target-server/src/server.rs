//! Binding, the runtime, the accept loop and shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::{self, EnterGuard, Runtime};
use tokio::sync::{mpsc, watch};

use crate::access_log::AccessLog;
use crate::service::{self, Shared};
use crate::{TargetError, TargetOptions};

/// Load tests open many connections at once; the OS default queue (often
/// 128) would turn a burst of connects into SYN retries and 1 s stalls.
const BACKLOG: u32 = 1024;

/// How long requests in flight at shutdown get to finish before their
/// connections are dropped: long enough for ordinary ones, short enough
/// that a `/delay/60000` cannot hold up `stop`.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long to pause after a failed accept, which is usually the process
/// running out of file descriptors: retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A bound, not yet serving, server.
pub(crate) struct Server {
    runtime: Runtime,
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Opens the access log, builds the runtime and starts listening.
    /// Connections that arrive before [`Server::run`] wait in the backlog.
    pub(crate) fn bind(opts: &TargetOptions) -> Result<Server, TargetError> {
        if let Some(stall) = &opts.stall {
            stall.check().map_err(|why| TargetError::Stall {
                given: stall.to_string(),
                why: why.to_owned(),
            })?;
        }
        let access_log = opts
            .access_log
            .as_deref()
            .map(AccessLog::open)
            .transpose()?;
        let runtime = build_runtime(opts.threads).map_err(TargetError::Runtime)?;
        let bind_error = |reason| TargetError::Bind {
            addr: opts.addr,
            reason,
        };
        let listener = {
            // The listener registers with the runtime it is created in.
            let _runtime = runtime.enter();
            listen(opts.addr).map_err(bind_error)?
        };
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server {
            runtime,
            listener,
            addr,
            // Stalls count from here: the server is listening.
            shared: Arc::new(Shared {
                access_log,
                stall: opts.stall,
                ..Shared::default()
            }),
        })
    }

    /// The address actually bound.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server's connections share, counts included.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Enters the server's runtime, for setting up what `shutdown` waits on.
    pub(crate) fn enter(&self) -> EnterGuard<'_> {
        self.runtime.enter()
    }

    /// Serves on the calling thread until `shutdown` completes, then closes
    /// every connection and flushes the access log.
    pub(crate) fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            runtime,
            listener,
            shared,
            ..
        } = self;
        runtime.block_on(accept_until(listener, Arc::clone(&shared), shutdown));
        // Dropping the runtime drops the connections still open after the
        // grace period, closing their sockets.
        drop(runtime);
        if let Some(log) = &shared.access_log
            && let Err(err) = log.flush()
        {
            eprintln!("blast target: cannot write the access log: {err}");
        }
    }
}

fn build_runtime(threads: usize) -> io::Result<Runtime> {
    if threads <= 1 {
        // One thread: the server thread drives everything itself, rather than
        // handing work to a single worker and idling beside it.
        runtime::Builder::new_current_thread().enable_all().build()
    } else {
        runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("blast-target-worker")
            .enable_all()
            .build()
    }
}

/// Must be called inside a runtime.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std does on Unix: a restarted `blast target` can take its port back
    // while connections of the last run sit in TIME_WAIT.
    if cfg!(unix) {
        socket.set_reuseaddr(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until `shutdown`, then asks each connection to close
/// once its request in flight is answered, waiting at most [`CLOSE_GRACE`].
async fn accept_until(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    // No header read timeout: it costs a timer per request, and would close
    // a load test's idle keep-alive connections under it after 30 s.
    http.keep_alive(true).header_read_timeout(None);
    let (close_tx, close_rx) = watch::channel(());
    // Every connection holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(
            stream,
            http.clone(),
            Arc::clone(&shared),
            close_rx.clone(),
            open_tx.clone(),
        ));
    }
    drop(listener);
    // Receivers only error once the sender is gone, which is the same news.
    let _ = close_tx.send(());
    drop(open_tx);
    let _ = tokio::time::timeout(CLOSE_GRACE, open_rx.recv()).await;
}

async fn serve_connection(
    stream: TcpStream,
    http: http1::Builder,
    shared: Arc<Shared>,
    mut close: watch::Receiver<()>,
    _open: mpsc::Sender<()>,
) {
    // A head and a large body go out in separate writes; Nagle's algorithm
    // would hold the second back until the client acknowledges the first.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| service::handle(Arc::clone(&shared), request));
    let connection = http.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    // Connection errors (a client resetting, say) are the client's business:
    // the server neither logs nor counts them.
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = close.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}
