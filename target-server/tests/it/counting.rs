//! Counts are exact, exclude the controls, reset, and match the access log.

use std::collections::BTreeMap;

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
        access_log: None,
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
        threads: 1,
        access_log: Some(log.clone()),
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
