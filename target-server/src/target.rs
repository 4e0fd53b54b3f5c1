//! The running server: [`Target`] in the background, or [`serve_forever`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::server::Server;
use crate::service::Shared;
use crate::{Counts, TargetError, TargetOptions};

/// A target server running on a background thread that owns its runtime.
///
/// Dropping it stops it too, as [`Target::stop`] does.
#[derive(Debug)]
pub struct Target {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Target {
    /// Binds `opts.addr` (port 0 picks a free port) and serves on a
    /// background thread. Returns once the socket is listening: connections
    /// made from then on are accepted.
    pub fn start(opts: TargetOptions) -> Result<Target, TargetError> {
        let server = Server::bind(&opts)?;
        let addr = server.addr();
        let shared = Arc::clone(server.shared());
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("blast-target".to_owned())
            // A dropped sender stops the server too.
            .spawn(move || server.run(async move { _ = stopped.await }))
            .map_err(TargetError::Thread)?;
        Ok(Target {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on, with the actual port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far, by path (query excluded), by method and
    /// path, and in total; the `/_blast/` endpoints are not counted. A
    /// request is counted before its response is written, so once a client
    /// has read a response, that request is in here.
    pub fn counts(&self) -> Counts {
        self.shared.counter.snapshot()
    }

    /// Stops accepting, lets requests in flight finish (for at most a
    /// second), closes every connection, flushes the access log and joins the
    /// server thread.
    pub fn stop(self) {
        // Drop does the work.
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may be gone already; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported on
            // stderr; re-raising it here could abort a panicking test.
            let _ = thread.join();
        }
    }
}

/// Serves in the foreground until SIGINT (Ctrl-C) or SIGTERM, printing the
/// address on stdout once listening: `blast target`.
pub fn serve_forever(opts: TargetOptions) -> Result<(), TargetError> {
    let server = Server::bind(&opts)?;
    let stopped = {
        let _runtime = server.enter();
        shutdown_signal().map_err(TargetError::Signal)?
    };
    let shared = Arc::clone(server.shared());
    println!("blast target listening on http://{}", server.addr());
    if let Some(stall) = &opts.stall {
        println!("blast target stalls for LENGTH in every EVERY: {stall}");
    }
    server.run(stopped);
    let total = shared.counter.snapshot().total;
    let noun = if total == 1 { "request" } else { "requests" };
    println!("blast target stopped after {total} {noun}");
    Ok(())
}

/// Listens for SIGINT and SIGTERM now, so that failing to is an error at
/// start rather than a server that cannot be stopped. Needs a runtime.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
