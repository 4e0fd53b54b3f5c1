//! Stalls hold responses ready during a pause until it ends, and nothing
//! else.
//!
//! The tests cannot see when the server started, only that it was between
//! `before` and `after` its `start`: so "held until the pause ends" is
//! checked as "answered no earlier than the pause's end counted from
//! `before`", which holds however slow the machine is. "Not held" can only be
//! checked against generous bounds.

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use blast_target::{Stall, Target, TargetError, TargetOptions};

use super::client::{Client, start_with};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A target that pauses for 1 s in every 3 s: calm for [0, 3 s), paused for
/// [3 s, 4 s), calm for [4 s, 6 s), and so on. Also returns the instant just
/// before it started.
fn stalling_target() -> (Target, Instant) {
    let before = Instant::now();
    let target = start_with(TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        stall: Some(Stall::parse("1s/3s").unwrap()),
        ..TargetOptions::default()
    });
    (target, before)
}

/// Sends `GET path` on a new connection at `at`, and returns the status and
/// when the response was read.
fn get_at(addr: SocketAddr, path: &'static str, at: Instant) -> JoinHandle<(u16, Instant)> {
    // Connect now, so that only the request itself is sent during a pause.
    let mut client = Client::connect(addr);
    thread::spawn(move || {
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let status = client.get("GET", path).status;
        (status, Instant::now())
    })
}

#[test]
fn responses_ready_in_a_pause_wait_for_its_end_and_no_others_do() {
    let (target, before) = stalling_target();
    let after = Instant::now();
    let addr = target.addr();
    let pause_end = before + ms(4000);

    // Handled from the calm start into the pause: held to its end.
    let slow = get_at(addr, "/delay/3300", after);
    // Sent inside the pause (at 3.1 s, if starting took under 0.9 s), on
    // three connections at once.
    let held: Vec<_> = (0..3)
        .map(|_| get_at(addr, "/items", after + ms(3100)))
        .collect();

    // Calm: answered long before the first pause could begin.
    let mut calm = Client::connect(addr);
    assert_eq!(calm.get("GET", "/").status, 200);
    assert!(
        Instant::now() < before + ms(3000),
        "a calm request was held"
    );

    // During the pause the controls still answer, and the held requests
    // are not counted yet: a request is counted when it is answered.
    thread::sleep((after + ms(3200)).saturating_duration_since(Instant::now()));
    let mut control = Client::connect(addr);
    let counts = control.get("GET", "/_blast/counts");
    let counts_read = Instant::now();
    assert_eq!(counts.status, 200);
    if counts_read < pause_end {
        assert_eq!(counts.json()["total"], 1, "only the calm request");
    }

    let (status, answered) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert!(answered >= pause_end, "the /delay response was not held");
    for request in held {
        let (status, answered) = request.join().unwrap();
        assert_eq!(status, 200);
        assert!(
            answered >= pause_end,
            "a response in the pause was not held"
        );
        assert!(counts_read < answered, "the controls were held");
    }
    assert_eq!(target.counts().total, 5);

    // Calm again until 6 s: answered well before the next pause.
    assert_eq!(calm.get("GET", "/").status, 200);
    assert!(
        Instant::now() < before + ms(6000),
        "a calm request was held"
    );
}

#[test]
fn a_stall_that_cannot_be_served_is_refused_at_start() {
    for (length, every) in [(0, 1000), (1000, 1000), (2000, 1000)] {
        let err = Target::start(TargetOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            stall: Some(Stall {
                every: ms(every),
                length: ms(length),
            }),
            ..TargetOptions::default()
        })
        .expect_err("a bad stall");
        assert!(matches!(err, TargetError::Stall { .. }), "{err}");
    }
}
