//! Issue 15 item 4, the secret-tracing test: a unique value planted in every field that can
//! hold a credential (secret keys, URLs, query strings, headers, environment) appears only in
//! 0600 files and nowhere else: command output (validate, explain, compile, run, report),
//! scripts, plan.json, the campaign file's bytes, reports.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const MARK: &str = "PLANTEDx";

fn planted(i: u32) -> String {
    format!("{MARK}{i:02}q")
}

fn recipe(port: u16, db: &Path) -> String {
    let p = planted;
    format!(
        r#"benchmark: {{name: tracing}}
global:
  metrics_db: {db}
  pushgateway_url: "http://push:{p20}@127.0.0.1:1/"
services:
  - service_name: web
    service_type: http
    url: "http://user:{p1}@127.0.0.1:{port}/x?token={p2}&n=1"
    headers:
      Authorization: "Bearer {p3}"
      X-Api-Key: "{p4}"
      Proxy-Authorization: "Basic {p5}"
      Cookie: "sid={p6}"
      X-Auth-Token: "{p7}"
      Content-Type: text/plain
    client_count: 2
    requests_per_second: 0
    duration: 1
  - service_name: pg
    service_type: database
    backend: postgresql
    container_image: docker://postgres:16
    password: "{p9}"
    environment:
      POSTGRES_PASSWORD: "{p9}"
      DB_ADMIN_PASSWORD: "{p10}"
      API_TOKEN: "{p11}"
      MY_SECRET_THING: "{p12}"
      SIGNING_KEY: "{p13}"
    duration: 1
  - service_name: pg-url
    service_type: database
    backend: postgresql
    service_url: "postgresql://bench:{p8}@127.0.0.1:5432/bench"
    duration: 1
  - service_name: store
    service_type: s3
    service_url: "http://127.0.0.1:9000/?X-Amz-Signature={p14}&X-Amz-Credential={p15}"
    access_key: "{p16}"
    secret_key: "{p17}"
    bucket_name: fb-bench
    duration: 1
  - service_name: llm
    service_type: vllm
    service_url: "http://tok:{p18}@127.0.0.1:8000"
    model: m
    api_key: "{p19}"
    duration: 1
"#,
        db = db.display(),
        p1 = p(1),
        p2 = p(2),
        p3 = p(3),
        p4 = p(4),
        p5 = p(5),
        p6 = p(6),
        p7 = p(7),
        p8 = p(8),
        p9 = p(9),
        p10 = p(10),
        p11 = p(11),
        p12 = p(12),
        p13 = p(13),
        p14 = p(14),
        p15 = p(15),
        p16 = p(16),
        p17 = p(17),
        p18 = p(18),
        p19 = p(19),
        p20 = p(20),
    )
}

fn assert_clean(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(MARK),
            "{what} {stream} leaks a planted secret:\n{text}"
        );
    }
}

/// Every file under `dir` holding a planted value is mode 0600; returns how many do.
fn only_private_files_hold_secrets(dir: &Path) -> usize {
    let mut n = 0;
    for e in walk(dir) {
        let bytes = std::fs::read(&e).unwrap();
        if String::from_utf8_lossy(&bytes).contains(MARK) {
            let mode = std::fs::metadata(&e).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} holds a planted secret", e.display());
            n += 1;
        }
    }
    n
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else if e.file_type().unwrap().is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn planted_credentials_appear_only_in_private_files() {
    let srv = common::Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let r = tmp.path().join("r.yml");
    std::fs::write(&r, recipe(srv.port, &db)).unwrap();
    let run = |args: &[&str]| -> Output {
        common::bin()
            .args(args)
            .current_dir(tmp.path())
            .env("FB_TEST_TRACING", "1")
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    };

    let v = run(&["validate", "r.yml"]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(err.contains("plain-text credential in a URL"), "{err}");
    assert!(err.contains("plain-text credential in header"), "{err}");
    assert!(err.contains("***"), "the snippet masks the value: {err}");
    assert_clean("validate", &v);
    assert_clean("validate --json", &run(&["validate", "r.yml", "--json"]));
    assert_clean("explain", &run(&["explain", "r.yml"]));
    assert_clean("explain --json", &run(&["explain", "r.yml", "--json"]));

    let c = run(&["compile", "r.yml", "--out", "camp"]);
    assert_eq!(
        c.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert_clean("compile", &c);
    let camp = tmp.path().join("camp");
    let plan = std::fs::read_to_string(camp.join("plan.json")).unwrap();
    assert!(!plan.contains(MARK), "plan.json: {plan}");
    assert!(
        plan.contains("postgresql://bench:***@127.0.0.1:5432/bench"),
        "{plan}"
    );
    for s in walk(&camp.join("scripts")) {
        let text = std::fs::read_to_string(&s).unwrap();
        assert!(!text.contains(MARK), "{}: {text}", s.display());
    }
    // The secret files and the author's own recipe (copied private) hold them; nothing else.
    assert!(only_private_files_hold_secrets(&camp) >= 2);

    // A real run of the http service: Basic auth from the URL, the headers sent, nothing
    // stored or printed in clear.
    let out = run(&[
        "run",
        "r.yml",
        "--service",
        "web",
        "--json",
        "--no-progress",
    ]);
    assert_clean("run", &out);
    assert!(out.status.code().is_some());
    // The campaign file's bytes (and its journal, if any) hold no planted value.
    for f in walk(tmp.path()) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("c.db") {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(MARK.len()).any(|w| w == MARK.as_bytes()),
                "{} holds a planted secret",
                f.display()
            );
        }
    }
    for fmt in ["json", "html", "csv"] {
        let rep = tmp.path().join(format!("rep.{fmt}"));
        let o = run(&[
            "report",
            "c.db",
            "--format",
            fmt,
            "--out",
            rep.to_str().unwrap(),
        ]);
        assert_clean(&format!("report {fmt}"), &o);
        if rep.is_file() {
            let text = std::fs::read_to_string(&rep).unwrap();
            assert!(!text.contains(MARK), "report {fmt} leaks");
        } else if rep.is_dir() {
            for f in walk(&rep) {
                let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).to_string();
                assert!(!text.contains(MARK), "{} leaks", f.display());
            }
        }
    }
}

/// The same credentials in flow style: each service is one line, so every warning (about one
/// header, one URL, one environment variable) and every error (a mistyped key) quotes a line
/// that holds the other services' fields' secrets too. With `typo` each line also carries an
/// unknown key, so every planted value appears on a line quoted by a diagnostic whose subject
/// is another key.
fn flow_recipe(port: u16, db: &Path, typo: bool) -> String {
    let p = planted;
    let t = if typo { ", client_cont: 2" } else { "" };
    format!(
        r#"benchmark: {{name: tracing-flow}}
global: {{metrics_db: "{db}", pushgateway_url: "http://push:{p20}@127.0.0.1:1/"}}
services:
  - {{service_name: web, service_type: http, url: "http://user:{p1}@127.0.0.1:{port}/x?token={p2}&n=1", headers: {{Authorization: "Bearer {p3}", X-Api-Key: "{p4}", Proxy-Authorization: "Basic {p5}", Cookie: "sid={p6}", X-Auth-Token: "{p7}", Content-Type: text/plain}}, client_count: 2, duration: 1{t}}}
  - {{service_name: pg, service_type: database, backend: postgresql, container_image: "docker://postgres:16", password: "{p9}", environment: {{POSTGRES_PASSWORD: "{p9}", DB_ADMIN_PASSWORD: "{p10}", API_TOKEN: "{p11}", MY_SECRET_THING: "{p12}", SIGNING_KEY: "{p13}"}}, duration: 1{t}}}
  - {{service_name: pg-url, service_type: database, backend: postgresql, service_url: "postgresql://bench:{p8}@127.0.0.1:5432/bench", duration: 1{t}}}
  - {{service_name: store, service_type: s3, service_url: "http://127.0.0.1:9000/?X-Amz-Signature={p14}&X-Amz-Credential={p15}", access_key: "{p16}", secret_key: "{p17}", bucket_name: fb-bench, duration: 1{t}}}
  - {{service_name: llm, service_type: vllm, service_url: "http://tok:{p18}@127.0.0.1:8000", model: m, api_key: "{p19}", duration: 1{t}}}
"#,
        db = db.display(),
        p1 = p(1),
        p2 = p(2),
        p3 = p(3),
        p4 = p(4),
        p5 = p(5),
        p6 = p(6),
        p7 = p(7),
        p8 = p(8),
        p9 = p(9),
        p10 = p(10),
        p11 = p(11),
        p12 = p(12),
        p13 = p(13),
        p14 = p(14),
        p15 = p(15),
        p16 = p(16),
        p17 = p(17),
        p18 = p(18),
        p19 = p(19),
        p20 = p(20),
    )
}

#[test]
fn secret_every_quoted_line_masks_every_planted_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    for typo in [false, true] {
        let text = flow_recipe(9, &db, typo);
        // Every planted value sits on a line with another key (the premise of the test).
        for i in 1..=20 {
            let line = text.lines().find(|l| l.contains(&planted(i))).unwrap();
            assert!(line.matches(": ").count() > 2, "{line}");
        }
        let r = tmp.path().join("flow.yml");
        std::fs::write(&r, &text).unwrap();
        for args in [
            &["validate", "flow.yml"][..],
            &["validate", "flow.yml", "--json"],
            &["explain", "flow.yml"],
            &["compile", "flow.yml", "--out", "camp-flow"],
        ] {
            let o = common::bin()
                .args(args)
                .current_dir(tmp.path())
                .timeout(Duration::from_secs(60))
                .output()
                .unwrap();
            assert_clean(&format!("{args:?} (typo: {typo})"), &o);
            let err = String::from_utf8_lossy(&o.stderr);
            if args == ["validate", "flow.yml"] {
                assert_eq!(o.status.code(), Some(if typo { 2 } else { 0 }), "{err}");
                // Each service line is quoted by several diagnostics, each about one key,
                // and every quote masks the other keys' secrets as well.
                for svc in ["web", "pg", "pg-url", "store", "llm"] {
                    let quoted = format!("service_name: {svc},");
                    assert!(
                        err.matches(&quoted).count() >= 1,
                        "{svc} is never quoted:\n{err}"
                    );
                }
                let warnings = err.matches("warning: plain-text").count();
                assert!(warnings >= 12, "{warnings} secret warnings:\n{err}");
                if typo {
                    assert_eq!(err.matches("unknown key `client_cont`").count(), 5, "{err}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(tmp.path().join("camp-flow"));
    }
    // A recipe that does not parse: the quoted line is masked by its `key: value` pairs.
    let bad = format!(
        "benchmark: {{name: x}}\nservices:\n  - {{service_name: pg, password: {}, api_key: \"{}\", headers: {{X-Api-Key: {}}}, bad: [ }}\n",
        planted(1),
        planted(2),
        planted(3)
    );
    std::fs::write(tmp.path().join("bad.yml"), bad).unwrap();
    let o = common::bin()
        .args(["validate", "bad.yml"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid YAML"));
    assert_clean("validate (invalid YAML)", &o);
}
