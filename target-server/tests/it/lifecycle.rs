//! Starting, binding errors and stopping.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use blast_target::{Target, TargetError, TargetOptions};

use super::client::{Client, start};

#[test]
fn port_zero_gets_a_real_port() {
    let target = start();
    assert_ne!(target.addr().port(), 0);
    assert!(target.addr().ip().is_loopback());
    assert_eq!(Client::connect(target.addr()).get("GET", "/").status, 200);
}

#[test]
fn a_taken_port_is_a_bind_error_naming_the_address() {
    let first = start();
    let err = Target::start(TargetOptions {
        addr: first.addr(),
        ..TargetOptions::default()
    })
    .expect_err("port is taken");
    assert!(matches!(err, TargetError::Bind { addr, .. } if addr == first.addr()));
    assert!(err.to_string().contains(&first.addr().to_string()), "{err}");
}

#[test]
fn a_bad_access_log_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Target::start(TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        access_log: Some(dir.path().join("no-such-dir").join("log")),
        ..TargetOptions::default()
    })
    .expect_err("log cannot be opened");
    assert!(matches!(err, TargetError::AccessLog { .. }));
}

#[test]
fn stop_closes_idle_connections_and_stops_listening() {
    let target = start();
    let addr = target.addr();
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("GET", "/").status, 200);
    let started = Instant::now();
    target.stop();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(idle.is_closed());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn stop_waits_at_most_a_grace_period_for_slow_requests() {
    let target = start();
    let addr = target.addr();
    let slow = std::thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.write(b"GET /delay/5000 HTTP/1.1\r\nHost: test\r\n\r\n");
        client.is_closed()
    });
    // Let the request reach the server before stopping it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(stream) = TcpStream::connect(addr) {
            drop(stream);
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    target.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert!(slow.join().unwrap(), "the slow connection was closed");
}

#[test]
fn dropping_a_target_stops_it() {
    let addr = {
        let target = start();
        target.addr()
    };
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn many_targets_can_run_at_once() {
    let targets: Vec<Target> = (0..4).map(|_| start()).collect();
    for target in &targets {
        assert_eq!(
            Client::connect(target.addr()).get("GET", "/items/1").status,
            200
        );
    }
    for target in targets {
        assert_eq!(target.counts().total, 1);
        target.stop();
    }
}
