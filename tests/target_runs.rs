//! Whole runs against the built-in target: exact counts, spawn timing, the
//! demo and the examples.

use crate::blast_cli::{
    Scratch, blast, endpoint, exclusive, run_json, start_target, total_requests,
};

/// Users come up at the global spawn rate across shards: 40 users at 20/s
/// on 2 shards are all up after about 2 s, not 2 s per shard; and every
/// request blast counts, the target counted.
#[test]
fn users_spawn_at_the_global_rate_and_counts_match_the_target() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "ping.rhai",
        "user(\"U\", #{ wait: constant(0.5), tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/items/7\", #{ name: \"/items/:id\" }); }\n",
    );
    let url = format!("http://{}", target.addr());
    let (ran, summary) = run_json(
        &scenario,
        &url,
        &["-u", "40", "-r", "20", "-t", "5s", "--cores", "2"],
    );
    assert!(
        ran.stderr.contains("All 40 users spawned"),
        "{}",
        ran.stderr
    );
    let total = total_requests(&summary);
    assert_eq!(target.counts().total, total);
    assert_eq!(
        endpoint(&summary, "GET", "/items/:id")["requests"]
            .as_u64()
            .unwrap(),
        total
    );
    // 40 users, each one request per ~0.5 s once spawned over the first 2 s:
    // about 40 * (5 - 1) / 0.5 = 320; generous bounds for a busy machine.
    assert!((150..=420).contains(&total), "{total}");
    crate::blast_cli::assert_matches_schema(&summary);
}

#[test]
fn demo_runs_the_quickstart_against_the_built_in_target() {
    let _one = exclusive();
    let scratch = Scratch::new();
    let json = scratch.path("demo.json");
    let ran = blast(&[
        "demo",
        "-t",
        "3s",
        "-u",
        "10",
        "-r",
        "10",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let total = total_requests(&summary);
    assert!(
        ran.stderr
            .contains(&format!("The target counted {total} requests.")),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stdout.contains("Response time percentiles"),
        "{}",
        ran.stdout
    );
}

/// `examples/shape_reverse.rhai` follows its shape (stages that turn
/// around mid-ramp, then a wave) with no script error or failure, ends
/// when the shape returns `()`, and its hooks say what they saw.
#[test]
fn the_reversing_shape_example_runs_cleanly() {
    let _one = exclusive();
    let target = start_target(None);
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shape_reverse.rhai");
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "shape_reverse.rhai",
        &std::fs::read_to_string(example).unwrap(),
    );
    let url = format!("http://{}", target.addr());
    let (ran, summary) = run_json(&scenario, &url, &["--cores", "2", "--stop-timeout", "60s"]);
    let counts = target.counts();
    target.stop();
    assert_eq!(summary["stop_reason"], "shape ended");
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
    assert_eq!(summary["total"]["failures"], 0, "{summary:#}");
    assert_eq!(counts.total, total_requests(&summary));
    // 6 s of stages and 6 s of wave; a user left over would hold the stop
    // for the stop timeout.
    let duration = summary["duration_s"].as_f64().unwrap();
    assert!(duration < 40.0, "{duration}");
    assert!(
        ran.stderr
            .contains("[shape] stages over with 12 users; the wave starts"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("[on_spawning_complete] all 12 users running"),
        "{}",
        ran.stderr
    );
}
