//! Servers for the integration tests to point blast at: a real nginx
//! ([`nginx::Nginx`]) and a raw TCP server that misbehaves on purpose
//! ([`faults::FaultServer`]). Both bind 127.0.0.1 on a free port, hand back
//! their address, and stop when dropped.

pub mod faults;
pub mod nginx;
