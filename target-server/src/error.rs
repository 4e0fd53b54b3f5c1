//! The one error type of this crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the target server could not start, or its options could not be read.
///
/// Everything after start-up (bad requests, dropped connections) is answered
/// or absorbed by the server and never surfaces here.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The listening socket could not be created, bound or put to listen.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        reason: io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("cannot build the server's runtime: {0}")]
    Runtime(io::Error),
    /// The server thread could not be spawned.
    #[error("cannot start the server thread: {0}")]
    Thread(io::Error),
    /// The access log could not be opened for appending.
    #[error("cannot open access log {}: {reason}", path.display())]
    AccessLog {
        /// The log file asked for.
        path: PathBuf,
        /// What the OS said.
        reason: io::Error,
    },
    /// A stall that [`crate::Stall::parse`] could not read, or that
    /// [`crate::Target::start`] cannot serve (zero, or not shorter than its
    /// period).
    #[error("--stall wants LENGTH/EVERY like 1s/5s, got {given:?}: {why}")]
    Stall {
        /// The stall as given (`LENGTH/EVERY`).
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// SIGINT or SIGTERM could not be listened for (`serve_forever` only).
    #[error("cannot listen for signals: {0}")]
    Signal(io::Error),
}
