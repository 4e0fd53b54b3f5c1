//! How to run the target server.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::Stall;

/// How to run the target server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOptions {
    /// Where to listen; port 0 picks a free port ([`crate::Target::addr`]
    /// tells which).
    pub addr: SocketAddr,
    /// Worker threads of the server's runtime. The default, 1, leaves the
    /// other cores to the load generator it usually shares a machine with;
    /// 0 is taken as 1.
    pub threads: usize,
    /// If set, one line `METHOD PATH STATUS` per counted request is appended
    /// to this file (buffered, flushed when the server stops).
    pub access_log: Option<PathBuf>,
    /// If set, the server pauses every response now and then, like a
    /// garbage collector stopping the world ([`Stall`]).
    pub stall: Option<Stall>,
}

impl Default for TargetOptions {
    /// 127.0.0.1:8080, one thread, no access log, no stalls.
    fn default() -> Self {
        TargetOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            threads: 1,
            access_log: None,
            stall: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_loopback_8080_one_thread_no_log_no_stall() {
        let opts = TargetOptions::default();
        assert_eq!(opts.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(opts.threads, 1);
        assert_eq!(opts.access_log, None);
        assert_eq!(opts.stall, None);
    }
}
