//! Where reports go: `-` is standard output, a symbolic link is followed
//! (and stays a link), a FIFO is written to, never replaced.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::blast_cli::{Scratch, exclusive, start_target};

fn args<'a>(scenario: &'a Path, url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        url,
        "--iterations",
        "5",
        "--cores",
        "1",
        "--print-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn json_dash_writes_the_summary_alone_on_stdout() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("clean.rhai", CLEAN);
    let url = format!("http://{}", target.addr());
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &args(
            &scenario,
            &url,
            &["--json", "-", "--threshold", "fail_ratio<0.5"],
        ),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON alone ({e}):\n{}", ran.stdout));
    assert_eq!(summary["total"]["requests"], 5);
    // The human output moved to stderr: the summary table and the verdicts.
    assert!(ran.stderr.contains("Aggregated"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("PASS  fail_ratio<0.5"),
        "{}",
        ran.stderr
    );
    assert!(!scratch.path("-").exists());
    // The HTML report too.
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &args(&scenario, &url, &["--html", "-"]),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.starts_with("<!DOCTYPE html>"), "{}", ran.stdout);
    assert!(ran.stdout.trim_end().ends_with("</html>"));
    assert!(ran.stderr.contains("Aggregated"), "{}", ran.stderr);
    // A path that is standard output already: the same.
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &args(&scenario, &url, &["--json", "/dev/stdout"]),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON alone ({e}):\n{}", ran.stdout));
    assert_eq!(summary["total"]["requests"], 5);
}

#[test]
fn links_stay_links_and_their_targets_get_the_reports() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("clean.rhai", CLEAN);
    let url = format!("http://{}", target.addr());
    std::fs::create_dir(scratch.path("real")).unwrap();
    let link = |name: &str| {
        let path = scratch.path(name);
        std::os::unix::fs::symlink(format!("real/{name}"), &path).unwrap();
        path
    };
    // One link to an existing file, the others dangling until the run.
    std::fs::write(scratch.path("real/summary.json"), "old").unwrap();
    let json = link("summary.json");
    let html = link("report.html");
    let stats = link("run_stats.csv");
    let prefix = scratch.path("run");
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &args(
            &scenario,
            &url,
            &[
                "--json",
                json.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
                "--csv",
                prefix.to_str().unwrap(),
            ],
        ),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for path in [&json, &html, &stats] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{} was replaced",
            path.display()
        );
    }
    let summary = read_json(&scratch.path("real/summary.json"));
    assert_eq!(summary["total"]["requests"], 5);
    let page = std::fs::read_to_string(scratch.path("real/report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..40]);
    let rows = records(&scratch.path("real/run_stats.csv"));
    assert_eq!(rows.last().unwrap()[1], "Aggregated");
    assert_eq!(rows.last().unwrap()[2], "5");
}

#[test]
fn a_fifo_gets_the_report_and_stays_a_fifo() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("clean.rhai", CLEAN);
    let url = format!("http://{}", target.addr());
    let fifo = scratch.path("summary.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // The reader reports over a channel, so a blast that never writes to
    // the FIFO fails this test instead of hanging it.
    let (sent, read) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::fs::File::open(&fifo).and_then(|mut f| f.read_to_string(&mut text));
            let _ = sent.send(text);
        });
    }
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &args(&scenario, &url, &["--json", fifo.to_str().unwrap()]),
    );
    let text = read
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("nothing came through the FIFO: {}", ran.stderr));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON from the FIFO");
    assert_eq!(summary["total"]["requests"], 5);
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
    assert!(!scratch.path("summary.fifo.tmp").exists());
}
