//! The HTML report rendered by a real headless Chromium: charts present, no console errors,
//! no network; screenshots in target/test-artifacts/ (look at them).

use crate::common;
use crate::reportdb;

use reportdb::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run headless Chromium with the network disabled; returns (stdout, stderr).
fn chromium(bin: &str, args: &[String], url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("timeout")
        .arg("90")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            // Any attempt to reach the network fails loudly (the page must not need it).
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("net::ERR")
                || l.contains("Failed to load resource")
        })
        .collect()
}

fn render_and_check(bin: &str, campaign: &Path, name: &str, expect_code: i32) -> String {
    let html = artifacts().join(format!("{name}.html"));
    common::bin()
        .args([
            "report",
            campaign.to_str().unwrap(),
            "--format",
            "html",
            "--out",
        ])
        .arg(&html)
        .assert()
        .code(expect_code);
    let url = format!("file://{}", html.display());
    let png = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let (_, err) = chromium(
        bin,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2400".into(),
        ],
        &url,
    );
    assert!(
        console_errors(&err).is_empty(),
        "console errors: {:#?}",
        console_errors(&err)
    );
    let size = std::fs::metadata(&png).expect("screenshot written").len();
    assert!(
        size > 20_000,
        "screenshot too small ({size} bytes): blank page?"
    );
    let (dom, err) = chromium(bin, &["--dump-dom".into()], &url);
    assert!(
        console_errors(&err).is_empty(),
        "console errors: {:#?}",
        console_errors(&err)
    );
    eprintln!("screenshot: {}", png.display());
    dom
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(env) = common::server("chromium") else {
        return;
    };
    let bin = &env["FB_TEST_CHROMIUM"];
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    let dom = render_and_check(bin, &c, "report-valid", 0);
    assert!(dom.contains("id=\"verdict\""));
    assert!(dom.contains("<strong>VALID</strong>"));
    let charts = dom.matches("<svg").count();
    // http run: 4 + 2 per-op charts; LLM run: 4 + 3 LLM + 2 telemetry; 1 service comparison.
    assert!(charts >= 15, "{charts} charts rendered");
    assert!(dom.contains("Corrected latency CDF") && dom.contains("TTFT distribution"));
    assert!(dom.contains("Telemetry: util_percent") && dom.contains("Telemetry: power_watts"));
    assert!(dom.contains("polyline"));

    // A rate sweep: one latency/throughput curve.
    let runs = dir.path().join("sweep/runs");
    std::fs::create_dir_all(&runs).unwrap();
    for (task, rate) in [100i64, 200, 400, 800].into_iter().enumerate() {
        let mut db = TestDb::create(&runs.join(format!("api-7_{task}.db")));
        let mut spec = RunSpec::new(&format!("sweep{task}"), "api", "http");
        spec.sweep_param = Some("requests_per_second".into());
        spec.sweep_value = Some(rate.to_string());
        spec.target_rate = Some(rate as f64);
        db.add_run(&spec);
        let n = rate * 10;
        let reqs: Vec<Req> = (0..n)
            .map(|i| {
                Req::ok(
                    "GET",
                    T0 + S + i * (10 * S / n),
                    0,
                    (task as i64 + 1).pow(2) * 100 * US + (i % 50) * 10 * US,
                )
            })
            .collect();
        db.add_requests(&spec.run_id, &reqs);
    }
    let dom = render_and_check(bin, &dir.path().join("sweep"), "report-sweep", 0);
    assert!(dom.contains("corrected latency vs throughput over the requests_per_second sweep"));

    // An invalid campaign says INVALID at the top.
    let bad = standard_llm(&dir.path().join("bad.db"), false);
    let dom = render_and_check(bin, &bad, "report-invalid", 5);
    let body = dom.split("<body>").nth(1).unwrap();
    assert!(body
        .trim_start()
        .starts_with("<div class=\"banner invalid\" id=\"verdict\"><strong>INVALID</strong>"));
}
