//! Counts are exact, exclude the controls, reset, match the access log, and
//! place requests in seconds by arrival.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use blast_target::{Counts, TargetOptions};

use super::client::{Client, start, start_with};

/// The paths each connection cycles through, one of them unknown.
const PATHS: [&str; 5] = ["/", "/items", "/items/7", "/status/503", "/nowhere"];

/// `requests` keep-alive requests over each of `connections` connections at
/// once, cycling through [`PATHS`].
fn hammer(addr: std::net::SocketAddr, connections: usize, requests: usize) {
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..requests {
                    let response = client.get("GET", PATHS[i % PATHS.len()]);
                    assert!(response.status >= 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn expect_exact(counts: &Counts, total: u64) {
    assert_eq!(counts.total, total);
    let per_path = total / PATHS.len() as u64;
    let want: BTreeMap<String, u64> = PATHS.iter().map(|p| (p.to_string(), per_path)).collect();
    assert_eq!(counts.by_path, want);
    for path in PATHS {
        assert_eq!(counts.method_path("GET", path), per_path);
    }
    assert_eq!(counts.by_method_path.len(), PATHS.len());
    assert_eq!(counts.per_second.iter().sum::<u64>(), total);
}

#[test]
fn counts_are_exact_over_keep_alive_connections() {
    let target = start();
    hammer(target.addr(), 4, 125);
    expect_exact(&target.counts(), 500);

    // The HTTP view agrees, and asking does not count.
    let mut client = Client::connect(target.addr());
    let over_http: Counts =
        serde_json::from_slice(&client.get("GET", "/_blast/counts").body).expect("counts JSON");
    expect_exact(&over_http, 500);
    assert_eq!(target.counts().total, 500);
}

#[test]
fn counts_are_exact_with_several_worker_threads() {
    let target = start_with(TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        ..TargetOptions::default()
    });
    hammer(target.addr(), 5, 100);
    expect_exact(&target.counts(), 500);
}

#[test]
fn counts_exclude_the_query_and_split_by_method() {
    let target = start();
    let mut client = Client::connect(target.addr());
    client.get("GET", "/bytes/3?chunked=1");
    client.get("GET", "/bytes/3");
    client.get("HEAD", "/bytes/3?x=y");
    client.send("POST", "/echo", &[], b"body");
    client.get("GET", "/echo?a=b");
    let counts = target.counts();
    assert_eq!(counts.total, 5);
    assert_eq!(counts.path("/bytes/3"), 3);
    assert_eq!(counts.method_path("GET", "/bytes/3"), 2);
    assert_eq!(counts.method_path("HEAD", "/bytes/3"), 1);
    assert_eq!(counts.method_path("POST", "/echo"), 1);
    assert_eq!(counts.method_path("GET", "/echo"), 1);
}

#[test]
fn reset_zeroes_the_counts() {
    let target = start();
    let mut client = Client::connect(target.addr());
    client.get("GET", "/");
    client.get("GET", "/nowhere");
    assert_eq!(target.counts().total, 2);
    assert_eq!(client.get("POST", "/_blast/reset").status, 204);
    assert_eq!(target.counts(), Counts::default());
    client.get("GET", "/");
    assert_eq!(target.counts().path("/"), 1);
    assert_eq!(target.counts().total, 1);
}

#[test]
fn access_log_has_one_line_per_counted_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let target = start_with(TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        access_log: Some(log.clone()),
        ..TargetOptions::default()
    });
    let mut client = Client::connect(target.addr());
    client.get("GET", "/");
    client.get("GET", "/items/2000?q=1");
    client.send("POST", "/items", &[], b"{}");
    client.get("GET", "/_blast/counts");
    client.get("DELETE", "/status/503");
    target.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "GET / 200\nGET /items/2000 404\nPOST /items 201\nDELETE /status/503 503\n"
    );
}

#[test]
fn requests_spread_over_three_seconds_land_in_as_many_seconds() {
    let target = start();
    let mut client = Client::connect(target.addr());
    // 13 requests 250 ms apart. Each waits for the last response, so the
    // second arrives no earlier than the first; the last comes at least
    // 2.75 s after that: seconds 0 to 2 at least.
    let first = Instant::now();
    for i in 0..13 {
        let due = first + Duration::from_millis(250 * i);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        assert_eq!(client.get("GET", "/items").status, 200);
        // Controls are not counted, in any second.
        client.get("GET", "/_blast/counts");
    }
    let counts = target.counts();
    assert_eq!(counts.total, 13);
    assert_eq!(counts.per_second.iter().sum::<u64>(), 13);
    assert!(counts.per_second.len() >= 3, "{:?}", counts.per_second);
    assert!(counts.per_second[0] > 0, "{:?}", counts.per_second);

    let over_http: Counts =
        serde_json::from_slice(&client.get("GET", "/_blast/counts").body).expect("counts JSON");
    assert_eq!(over_http.per_second, counts.per_second);

    assert_eq!(client.get("POST", "/_blast/reset").status, 204);
    assert_eq!(target.counts().per_second, Vec::<u64>::new());
    client.get("GET", "/");
    assert_eq!(target.counts().per_second, [1]);
}
