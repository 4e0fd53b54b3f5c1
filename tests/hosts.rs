//! Hosts besides the run's: named by absolute URL in a script (resolved
//! before the run when written out, else on first use, off the shards),
//! reached by a redirect, or not resolving at all.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::blast_cli::{
    Scratch, blast, blast_with_env, endpoint, exclusive, failures, run_json, start_target,
    total_requests,
};

/// A server on 127.0.0.1 that answers `GET /to-X` with a redirect to
/// `targets[X]` (and closes): the client must reach a host the script
/// never names.
struct Redirector {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Redirector {
    fn start(targets: Vec<(&'static str, String)>) -> Redirector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split(' ').nth(1).unwrap_or("/");
                let location = targets
                    .iter()
                    .find(|(name, _)| path == format!("/to-{name}"))
                    .map_or("/", |(_, url)| url.as_str());
                let _ = (&stream).write_all(
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        Redirector {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn hosts_named_by_url_or_reached_by_redirect_are_resolved_and_bad_names_fail_cleanly() {
    let _one = exclusive();
    let (run_host, second, third) = (start_target(None), start_target(None), start_target(None));
    let (b, c) = (second.addr().port(), third.addr().port());
    // Only the redirect names the third target.
    let redirector = Redirector::start(vec![
        ("c", format!("http://127.0.0.1:{c}/items/3")),
        ("nowhere", "http://nowhere.invalid/x".to_string()),
    ]);
    let r = redirector.port;
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "hosts.rhai",
        &format!(
            "const B = {b};\n\
             user(\"U\", #{{ wait: constant(0.1), tasks: [Fn(\"t\")] }});\n\
             fn t() {{\n\
                 http::get(\"/\");\n\
                 http::get(\"http://localhost:{b}/items/1\", #{{ name: \"written out\" }});\n\
                 http::get(`http://127.0.0.1:${{global::B}}/items/2`, #{{ name: \"first use\" }});\n\
                 http::get(\"http://127.0.0.1:{r}/to-c\", #{{ name: \"redirected\" }});\n\
                 http::get(\"http://nonexistent.invalid/\", #{{ name: \"nowhere\" }});\n\
                 http::get(`http://${{env(\"NOWHERE\", \"nonexistent.invalid:81\")}}/`, #{{ name: \"nowhere later\" }});\n\
                 http::get(\"http://127.0.0.1:{r}/to-nowhere\", #{{ name: \"redirected nowhere\" }});\n\
             }}\n"
        ),
    );
    let check = blast(&["check", "-s", scenario.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains(&format!(
            "hosts besides -H: http://localhost:{b}, http://127.0.0.1:{r}, http://nonexistent.invalid\n"
        )),
        "{}",
        check.stdout
    );
    let url = format!("http://{}", run_host.addr());
    let (ran, summary) = run_json(
        &scenario,
        &url,
        &[
            "-u",
            "4",
            "-r",
            "20",
            // Whole tasks only: a timed run may cut one between its
            // requests, and the counts below compare them.
            "--iterations",
            "8",
            "--cores",
            "2",
            "--exit-code-on-error",
            "0",
        ],
    );
    assert!(
        ran.stderr.contains("cannot resolve nonexistent.invalid"),
        "{}",
        ran.stderr
    );
    let tasks = endpoint(&summary, "GET", "/")["requests"].as_u64().unwrap();
    assert_eq!(tasks, 8, "{summary:#}");
    assert_eq!(run_host.counts().total, tasks);
    assert_eq!(second.counts().path("/items/1"), tasks);
    assert_eq!(second.counts().path("/items/2"), tasks);
    assert_eq!(third.counts().path("/items/3"), tasks);
    let mut failed = failures(&summary);
    failed.sort();
    assert_eq!(
        failed,
        [
            (
                "nowhere".to_string(),
                "cannot resolve host".to_string(),
                tasks
            ),
            ("nowhere later".into(), "cannot resolve host".into(), tasks),
            (
                "redirected nowhere".into(),
                "cannot resolve host".into(),
                tasks
            ),
        ],
        "{summary:#}"
    );
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
    assert_eq!(total_requests(&summary), 7 * tasks);
}

#[test]
fn the_two_hosts_example_reaches_its_second_host_by_url() {
    let _one = exclusive();
    let (run_host, api) = (start_target(None), start_target(None));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two_hosts.rhai");
    let json = std::env::temp_dir().join(format!("blast-two-hosts-{}.json", std::process::id()));
    let api_url = format!("http://localhost:{}", api.addr().port());
    let url = format!("http://{}", run_host.addr());
    let ran = blast_with_env(
        &[
            "run",
            "-s",
            example.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "4",
            "-r",
            "20",
            "-t",
            "2s",
            "--cores",
            "2",
            "--json",
            json.to_str().unwrap(),
            "--only-summary",
        ],
        &[("API_HOST", &api_url)],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let api_requests = endpoint(&summary, "GET", "api /items/:id")["requests"]
        .as_u64()
        .unwrap();
    assert!(api_requests > 0, "{summary:#}");
    assert_eq!(api.counts().path("/items/7"), api_requests);
    assert_eq!(api.counts().total, api_requests);
    assert_eq!(
        run_host.counts().path("/"),
        endpoint(&summary, "GET", "/")["requests"].as_u64().unwrap()
    );
    assert_eq!(summary["total"]["failures"], 0, "{summary:#}");
    let check = blast(&["check", "-s", example.to_str().unwrap()]);
    assert!(
        check
            .stdout
            .contains("hosts besides -H: http://localhost:8089\n"),
        "{}",
        check.stdout
    );
}
