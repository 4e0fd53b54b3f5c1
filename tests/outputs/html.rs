//! The HTML report, rendered in headless Chromium.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::blast_cli::{Scratch, exclusive, start_target};

/// The Chromium binary Debian's `chromium` package installs, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args`; returns its stderr.
fn run_chromium(chromium: &Path, profile: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Pixels of the screenshot within a small distance of each colour.
fn count_colours(png_path: &Path, colours: &[(&str, [u8; 3])]) -> Vec<usize> {
    let mut decoder = png::Decoder::new(std::io::BufReader::new(File::open(png_path).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let pixels = &buf[..info.buffer_size()];
    colours
        .iter()
        .map(|(_, rgb)| {
            pixels
                .chunks_exact(channels)
                .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 12))
                .count()
        })
        .collect()
}

/// Chromium, or `None` after saying the test `name` is skipped (outside
/// CI only: CI fails without it).
fn chromium_or_skip(name: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed: scripts/install-deps.sh installs Debian's chromium package"
            );
        }
        eprintln!(
            "\n*** SKIPPED {name}: no chromium on PATH (scripts/install-deps.sh installs it; CI fails without it) ***\n"
        );
    }
    found
}

/// The part of a dumped DOM the report's script drew (not its data or its
/// scripts).
fn drawn(dom: &str) -> &str {
    let start = dom
        .find("<main id=\"report\"")
        .expect("the report's <main>");
    let end = start + dom[start..].find("</main>").expect("</main>");
    &dom[start..end]
}

/// Asserts that each colour covers at least a line's worth of pixels.
/// Takes a screenshot of `page`, `height` pixels tall, into `shot`, and
/// asserts the page wrote nothing to its console (no error, no warning).
fn screenshot_in_silence(chromium: &Path, profile: &Path, page: &Path, shot: &Path, height: u32) {
    let (_, log) = run_chromium(
        chromium,
        profile,
        page,
        &[
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            &format!("--window-size=1280,{height}"),
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
}

fn assert_lines_drawn(shot: &Path, colours: &[(&str, [u8; 3])]) {
    let counts = count_colours(shot, colours);
    for ((name, _), count) in colours.iter().zip(&counts) {
        // A line across a chart is hundreds of pixels; a legend swatch is
        // a few dozen.
        assert!(
            *count >= 300,
            "the {name} line is not drawn ({count} pixels): {counts:?}"
        );
    }
}

#[test]
fn the_html_report_draws_its_charts_in_chromium() {
    let Some(chromium) = chromium_or_skip("the_html_report_draws_its_charts_in_chromium") else {
        return;
    };
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("mixed.rhai", MIXED);
    let report = scratch.path("report/run.html");
    let url = format!("http://{}", target.addr());
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &[
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "5s",
            "--cores",
            "1",
            "--html",
            report.to_str().unwrap(),
            "--threshold",
            "fail_ratio<0.9",
            "--only-summary",
        ],
    );
    // MIXED fails requests and raises script errors on purpose: exit 1.
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    target.stop();

    // Self-contained: nothing to fetch, and a policy that forbids fetching.
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for fetch in ["<link", "<script src", "<img", "<iframe", "url("] {
        assert!(!html.contains(fetch), "the report holds {fetch:?}");
    }

    // After its scripts ran: four charts (nothing was scheduled, so no
    // lateness chart), and no error banner.
    let profile = scratch.path("chromium-profile");
    let (dom, _) = run_chromium(
        &chromium,
        &profile,
        &report,
        &["--virtual-time-budget=5000", "--dump-dom"],
    );
    assert!(dom.contains("data-rendered=\"4\""), "{dom}");
    assert_eq!(dom.matches("<canvas").count(), 4, "{dom}");
    assert!(!dom.contains("id=\"stopped-early\""), "{dom}");
    assert!(
        !drawn(&dom).contains("uncorrected"),
        "nothing was corrected: {dom}"
    );
    assert!(dom.contains(">ended by<"), "{dom}");
    assert!(!dom.contains("<p id=\"report-error\""), "{dom}");
    assert!(
        dom.contains("fail_ratio&lt;0.9"),
        "the thresholds table is drawn"
    );

    // A screenshot, with the page's console on stderr: no console message
    // at all, and every chart's lines drawn in their colours.
    let shot = scratch.path("report.png");
    screenshot_in_silence(&chromium, &profile, &report, &shot, 2400);
    let colours = [
        ("requests/s", [0x1f, 0x77, 0xb4]),
        ("failures/s", [0xd6, 0x27, 0x28]),
        ("p50", [0x2c, 0xa0, 0x2c]),
        ("p95", [0xff, 0x7f, 0x0e]),
        ("p99", [0x94, 0x67, 0xbd]),
        ("users", [0x17, 0xbe, 0xcf]),
        ("iterations/s", [0x8c, 0x56, 0x4b]),
    ];
    assert_lines_drawn(&shot, &colours);
}

#[test]
fn the_report_of_a_corrected_open_run_that_stopped_early_in_chromium() {
    let Some(chromium) =
        chromium_or_skip("the_report_of_a_corrected_open_run_that_stopped_early_in_chromium")
    else {
        return;
    };
    // Chromium takes both cores for a moment: not beside a load test.
    let _one = exclusive();
    let (summary, stats) = super::synthetic::open_run();
    let scratch = Scratch::new();
    let report = scratch.path("open.html");
    std::fs::write(
        &report,
        blast_control::html::render(&summary, stats.history(), 1.0),
    )
    .unwrap();
    let profile = scratch.path("chromium-profile");
    let (dom, _) = run_chromium(
        &chromium,
        &profile,
        &report,
        &["--virtual-time-budget=5000", "--dump-dom"],
    );
    assert!(!dom.contains("<p id=\"report-error\""), "{dom}");
    // Five charts: the lateness one too.
    let main = drawn(&dom);
    assert!(dom.contains("data-rendered=\"5\""), "{dom}");
    assert_eq!(dom.matches("<canvas").count(), 5, "{dom}");
    assert!(
        main.contains("id=\"stopped-early\">Stopped early: stop condition: dropped&gt;10</p>"),
        "{dom}"
    );
    // An uncorrected row under the endpoint's and under the total's.
    assert_eq!(main.matches("↳ uncorrected").count(), 2, "{dom}");
    assert!(main.contains("coordinated omission"), "{dom}");
    assert!(main.contains("id=\"lateness\""), "{dom}");
    assert!(main.contains(">dropped iterations<"), "{dom}");
    assert!(main.contains("12 dropped"), "{dom}");
    assert!(main.contains(">open (arrival rate)<"), "{dom}");

    let shot = scratch.path("open.png");
    screenshot_in_silence(&chromium, &profile, &report, &shot, 3000);
    assert_lines_drawn(
        &shot,
        &[
            ("iterations/s", [0x8c, 0x56, 0x4b]),
            ("dropped/s", [0xe3, 0x77, 0xc2]),
            ("lateness p99", [0xbc, 0xbd, 0x22]),
        ],
    );
}

#[test]
fn a_run_whose_stages_fix_its_length_says_so_not_until_stopped() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("clean.rhai", CLEAN);
    let url = format!("http://{}", target.addr());
    let report = scratch.path("run.html");
    let json = scratch.path("run.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "--cores",
            "1",
            "--html",
            report.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        blast_in(scratch.dir.path(), &[], &args)
    };
    for (extra, planned) in [
        (&["--stages", "1s:2,1s:1"][..], "for 2s (the stages)"),
        (&["--iterations", "3"][..], "for 3 iterations"),
    ] {
        let ran = run(extra);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let first = ran.stderr.lines().next().unwrap();
        assert!(first.ends_with(&format!(" {planned}")), "{first}");
        assert!(!ran.stderr.contains("Ctrl-C"), "{}", ran.stderr);
        assert_eq!(read_json(&json)["parameters"]["planned"], planned);
        // The report shows the summary's words, and has no "until stopped".
        let html = std::fs::read_to_string(&report).unwrap();
        assert!(
            html.contains(&format!("\"planned\":\"{planned}\"")),
            "{planned}"
        );
        assert!(html.contains("[\"planned run time\", p.planned]"));
        assert!(!html.contains("until stopped"));
    }
}
