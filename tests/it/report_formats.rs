//! `report` in every format, `verify`, the JSON Schema, and agreement between formats and
//! with the SQLite rows.

use crate::common;
use crate::reportdb;

use factorybench::report::document::json_schema;
use reportdb::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn report(campaign: &Path, format: &str, out: &Path) -> i32 {
    let o = common::bin()
        .args([
            "report",
            campaign.to_str().unwrap(),
            "--format",
            format,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.stdout.is_empty());
    o.status.code().unwrap()
}

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json")
}

/// The checked-in schema is the one generated from the Rust types.
/// Regenerate with `FB_UPDATE_SCHEMAS=1 cargo test --test it -- schema_file_is_current`.
#[test]
fn schema_file_is_current() {
    let generated = json_schema();
    if std::env::var("FB_UPDATE_SCHEMAS").as_deref() == Ok("1") {
        std::fs::create_dir_all(schema_path().parent().unwrap()).unwrap();
        std::fs::write(schema_path(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(schema_path()).expect("schemas/report.schema.json");
    assert!(
        on_disk == generated,
        "schemas/report.schema.json is stale: run FB_UPDATE_SCHEMAS=1 cargo test --test it -- schema_file_is_current"
    );
}

/// A minimal JSON Schema (draft-07 subset that schemars emits) validator.
fn validate(schema: &Value, root: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return validate(&root["definitions"][name], root, v, path, errors);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, root, v, path, errors);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let ok = alts.iter().filter(|s| {
                let mut e = Vec::new();
                validate(s, root, v, path, &mut e);
                e.is_empty()
            });
            let n = ok.count();
            if n == 0 || (key == "oneOf" && n > 1) {
                errors.push(format!("{path}: {n} alternatives of {key} match"));
            }
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} not in enum"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errors.push(format!("{path}: {v} != const {c}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            _ => false,
        });
        if !fits {
            errors.push(format!("{path}: {v:.60} is not {types:?}"));
            return;
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: missing required {r}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, root, val, &format!("{path}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}: unexpected {k}")),
                    Some(s @ Value::Object(_)) => {
                        validate(s, root, val, &format!("{path}.{k}"), errors)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, root, x, &format!("{path}[{i}]"), errors);
        }
    }
}

#[test]
fn json_report_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    let out = dir.path().join("r.json");
    assert_eq!(report(&c, "json", &out), 0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let mut errors = Vec::new();
    validate(&schema, &schema, &doc, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator does reject a wrong document.
    let mut bad = doc.clone();
    bad["analysis"]["runs"][0]["total"]["requests"] = Value::String("many".into());
    bad["analysis"]["runs"][0]["llm"] = Value::Bool(true);
    let mut errors = Vec::new();
    validate(&schema, &schema, &bad, "$", &mut errors);
    assert!(errors.len() >= 2, "{errors:#?}");
    assert_eq!(doc["schema_version"], 1);
}

fn parse_csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            // No quoted fields in these fixtures except possibly invalid_reasons (last).
            let mut cells: Vec<String> = Vec::new();
            let mut cur = String::new();
            let mut q = false;
            let mut chars = l.chars().peekable();
            while let Some(ch) = chars.next() {
                match (ch, q) {
                    ('"', false) => q = true,
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', true) => q = false,
                    (',', false) => cells.push(std::mem::take(&mut cur)),
                    (c, _) => cur.push(c),
                }
            }
            cells.push(cur);
            assert_eq!(cells.len(), header.len(), "{l}");
            header.iter().cloned().zip(cells).collect()
        })
        .collect()
}

/// `name{labels} value` lines → (name, labels map, value).
fn parse_prom(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, val) = l.rsplit_once(' ').unwrap();
            let (name, labels) = head.split_once('{').unwrap();
            let labels = labels.trim_end_matches('}');
            let mut m = HashMap::new();
            for kv in labels.split("\",") {
                let (k, v) = kv.split_once("=\"").unwrap();
                m.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            (name.to_string(), m, val.parse().unwrap())
        })
        .collect()
}

#[test]
fn numbers_agree_across_formats_and_with_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    let (j, csv, prom, html) = (
        dir.path().join("r.json"),
        dir.path().join("r.csv"),
        dir.path().join("r.prom"),
        dir.path().join("r.html"),
    );
    for (f, p) in [
        ("json", &j),
        ("csv", &csv),
        ("prom", &prom),
        ("html", &html),
    ] {
        assert_eq!(report(&c, f, p), 0, "{f}");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    let rows = parse_csv(&std::fs::read_to_string(&csv).unwrap());
    let prom = parse_prom(&std::fs::read_to_string(&prom).unwrap());
    let html = std::fs::read_to_string(&html).unwrap();

    // Known figures of the rows (see reportdb::standard_http / standard_llm).
    let run = |id: &str| {
        doc["analysis"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == id)
            .unwrap()
            .clone()
    };
    let api = run("run-std");
    assert_eq!(api["total"]["latency_corrected_ms"]["p99"], 1.09);
    assert_eq!(api["total"]["latency_uncorrected_ms"]["p50"], 0.5);
    assert_eq!(api["total"]["requests"], 1010);
    assert_eq!(api["total"]["throughput_ops_per_s"], 100.0);
    let chat = run("run-llm");
    assert_eq!(chat["llm"]["goodput"]["good_requests"], 10);
    assert_eq!(chat["llm"]["output_tokens"], 1000);

    let mut checked = 0;
    for row in &rows {
        // The matching JSON object.
        let op = &row["op"];
        let (obj, llm) = if row["scope"] == "run" {
            let r = run(&row["run_id"]);
            let o = if op == "all" {
                r["total"].clone()
            } else {
                r["operations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|o| &o["op"] == op)
                    .unwrap()
                    .clone()
            };
            (
                o,
                if op == "all" {
                    r["llm"].clone()
                } else {
                    Value::Null
                },
            )
        } else {
            let s = doc["analysis"]["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == row["service"].as_str())
                .unwrap()
                .clone();
            let o = if op == "all" {
                s["total"].clone()
            } else {
                s["operations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|o| &o["op"] == op)
                    .unwrap()
                    .clone()
            };
            (
                o,
                if op == "all" {
                    s["llm"].clone()
                } else {
                    Value::Null
                },
            )
        };
        let pairs: Vec<(&str, &Value)> = vec![
            ("requests", &obj["requests"]),
            ("errors", &obj["errors"]),
            ("error_rate", &obj["error_rate"]),
            ("throughput_ops_per_s", &obj["throughput_ops_per_s"]),
            ("throughput_mb_per_s", &obj["throughput_mb_per_s"]),
            (
                "latency_corrected_p50_ms",
                &obj["latency_corrected_ms"]["p50"],
            ),
            (
                "latency_corrected_p99_ms",
                &obj["latency_corrected_ms"]["p99"],
            ),
            (
                "latency_corrected_p999_ms",
                &obj["latency_corrected_ms"]["p999"],
            ),
            (
                "latency_corrected_mean_ms",
                &obj["latency_corrected_ms"]["mean"],
            ),
            ("latency_corrected_cv", &obj["latency_corrected_ms"]["cv"]),
            (
                "latency_uncorrected_p99_ms",
                &obj["latency_uncorrected_ms"]["p99"],
            ),
            (
                "latency_uncorrected_max_ms",
                &obj["latency_uncorrected_ms"]["max"],
            ),
            ("ttft_p99_ms", &llm["ttft_ms"]["p99"]),
            ("tpot_p50_ms", &llm["tpot_ms"]["p50"]),
            ("output_tokens_per_s", &llm["output_tokens_per_s"]),
            ("goodput_ratio", &llm["goodput"]["goodput_ratio"]),
        ];
        for (col, jv) in pairs {
            let cell = &row[col];
            let (pname, divisor) = factorybench::report::text::prom_name(col);
            let prom_v = prom.iter().find(|(n, l, _)| {
                n == &format!("factorybench_{pname}")
                    && l["scope"] == row["scope"]
                    && l["run_id"] == row["run_id"]
                    && &l["op"] == op
            });
            match jv.as_f64() {
                Some(x) => {
                    assert_eq!(cell.parse::<f64>().unwrap(), x, "csv {col} {row:?}");
                    // Prometheus carries base units (seconds, bytes/s): same value / divisor.
                    assert_eq!(prom_v.unwrap().2, x / divisor, "prom {col}");
                    checked += 1;
                }
                None => {
                    assert_eq!(cell, "", "csv {col} should be empty");
                    assert!(prom_v.is_none(), "prom {col} should be absent");
                }
            }
        }
    }
    assert!(checked > 60, "{checked}");
    // HTML shows the same figures (formatted for reading).
    assert!(
        html.contains("<td>1.09</td>"),
        "corrected p99 of api in HTML"
    );
    assert!(html.contains("VALID"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no external resources"
    );
    assert!(!html.contains("<script"));
}

#[test]
fn verify_detects_tampering_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    for f in ["json", "html", "csv", "prom"] {
        let p = dir.path().join(format!("r.{f}"));
        assert_eq!(report(&c, f, &p), 0);
        common::bin().arg("verify").arg(&p).assert().code(0);
        let text = std::fs::read_to_string(&p).unwrap();
        // 1010 measured requests of the api run appear in every format.
        let tampered = text.replacen("1010", "1011", 1);
        assert!(tampered != text, "{f} contains 1010");
        std::fs::write(&p, tampered).unwrap();
        common::bin()
            .arg("verify")
            .arg(&p)
            .assert()
            .code(6)
            .stderr(predicates::str::contains("TAMPERED"));
    }
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    common::bin().arg("verify").arg(&junk).assert().code(2);
    common::bin()
        .arg("verify")
        .arg(dir.path().join("nope"))
        .assert()
        .code(2);
}

#[test]
fn report_exit_codes_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // Invalid (too few requests) → 5, INVALID banner in HTML.
    let small = standard_llm(&dir.path().join("small.db"), false);
    let html = dir.path().join("small.html");
    assert_eq!(report(&small, "html", &html), 5);
    let text = std::fs::read_to_string(&html).unwrap();
    let body = text.split("<body>").nth(1).unwrap();
    assert!(
        body.trim_start()
            .starts_with("<div class=\"banner invalid\""),
        "INVALID at the top"
    );
    assert!(body.contains("too few requests: 50 measured"));
    // Partial → 3.
    let p = dir.path().join("partial.db");
    {
        let db = TestDb::create(&p);
        let mut spec = RunSpec::new("p", "api", "http");
        spec.status = "partial".into();
        spec.ended_ns = None;
        db.add_run(&spec);
    }
    let out = dir.path().join("partial.json");
    assert_eq!(report(&p, "json", &out), 3);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["analysis"]["partial"], true);
    assert_eq!(
        doc["analysis"]["runs"][0]["invalid_reasons"][0]["code"],
        "partial_run"
    );
    // A run that failed at setup has no requests: invalid, with its failure message.
    let f = dir.path().join("failed.db");
    {
        let db = TestDb::create(&f);
        let mut spec = RunSpec::new("f", "pg", "database");
        spec.status = "failed".into();
        spec.ended_ns = None;
        db.add_run(&spec);
        db.conn
            .execute(
                "UPDATE runs SET failure_stage = 'setup', failure_message = 'service never became ready within 60 s'",
                [],
            )
            .unwrap();
    }
    for fmt in ["json", "html", "csv", "prom"] {
        let out = dir.path().join(format!("failed.{fmt}"));
        assert_eq!(report(&f, fmt, &out), 5, "{fmt}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("run failed at setup: service never became ready within 60 s"),
            "{fmt}"
        );
        assert!(!text.contains("NaN"), "{fmt}");
    }
    // Bad input → 2 with a clear message.
    common::bin()
        .args(["report", "/nonexistent/campaign"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no such file or directory"));
    common::bin()
        .args(["report", small.to_str().unwrap(), "--format", "xml"])
        .assert()
        .code(2);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    common::bin()
        .arg("report")
        .arg(&empty)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no campaign files"));
}

fn redact(v: &mut Value) {
    const KEYS: [&str; 8] = [
        "report_sha256",
        "generated_at",
        "generated_on_host",
        "tool_version",
        "git_commit",
        "campaign_path",
        "source_file",
        "path",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if (KEYS.contains(&k.as_str()) && !x.is_null()) || k == "sources" {
                    *x = Value::String("[redacted]".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

#[test]
fn json_and_csv_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    let j = dir.path().join("r.json");
    assert_eq!(report(&c, "json", &j), 0);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    redact(&mut doc);
    insta::assert_json_snapshot!("report_json", doc);
    let csv = dir.path().join("r.csv");
    assert_eq!(report(&c, "csv", &csv), 0);
    let text: String = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("# ")
                && !l.starts_with("# run ")
                && !l.starts_with("# factorybench")
                && !l.starts_with("# valid")
            {
                let key = l.split(':').next().unwrap();
                format!("{key}: [redacted]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    insta::assert_snapshot!("report_csv", text);
}

/// One run of every service kind, each with its own operations, renders in every format.
#[test]
fn every_service_kind_renders_in_every_format() {
    use factorybench::recipe::ServiceKind;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.db");
    let mut db = TestDb::create(&path);
    for (k, kind) in ServiceKind::ALL.iter().enumerate() {
        let ops: &[&str] = match kind {
            ServiceKind::Vectordb => &["insert", "search"],
            ServiceKind::Database => &["select", "insert", "update"],
            ServiceKind::S3 => &["get", "put"],
            ServiceKind::FileStorage => &["read", "write"],
            ServiceKind::Http => &["GET"],
            ServiceKind::Ollama | ServiceKind::Vllm | ServiceKind::Triton | ServiceKind::Nim => {
                &["generate"]
            }
        };
        let id = format!("run-{}", kind.as_str());
        db.add_run(&RunSpec::new(&id, kind.as_str(), kind.as_str()));
        let reqs: Vec<Req> = (0..1000i64)
            .map(|i| {
                let mut r = Req::ok(
                    ops[i as usize % ops.len()],
                    T0 + S + i * 10 * MS,
                    0,
                    (k as i64 + 1) * 100 * US,
                );
                if kind.is_llm() {
                    r.first_byte_ns = Some(r.sent_ns + 50 * US);
                    r.output_tokens = Some(4);
                    r.input_tokens = Some(8);
                    r.itl_us = Some(vec![10, 20, 30]);
                }
                r
            })
            .collect();
        db.add_requests(&id, &reqs);
        if *kind == ServiceKind::Vectordb {
            db.add_metric(&id, "recall_at_10", 0.9, "ratio");
        }
    }
    for f in ["json", "html", "csv", "prom"] {
        let out = dir.path().join(format!("all.{f}"));
        assert_eq!(report(&path, f, &out), 0, "{f}");
        let text = std::fs::read_to_string(&out).unwrap();
        for kind in ServiceKind::ALL {
            assert!(
                text.contains(&format!("run-{}", kind.as_str())),
                "{f} lacks {kind}"
            );
        }
        common::bin().arg("verify").arg(&out).assert().code(0);
    }
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("all.json")).unwrap())
            .unwrap();
    let runs = doc["analysis"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), ServiceKind::ALL.len());
    for r in runs {
        assert_eq!(r["valid"], true, "{}", r["run_id"]);
        let llm = matches!(
            r["service_kind"].as_str().unwrap(),
            "ollama" | "vllm" | "triton" | "nim"
        );
        assert_eq!(r["llm"].is_object(), llm, "{}", r["run_id"]);
    }
    let vdb = runs
        .iter()
        .find(|r| r["service_kind"] == "vectordb")
        .unwrap();
    assert_eq!(vdb["run_metrics"][0]["name"], "recall_at_10");
    assert_eq!(vdb["operations"].as_array().unwrap().len(), 2);
    let prom = std::fs::read_to_string(dir.path().join("all.prom")).unwrap();
    assert!(
        prom.contains("name=\"recall_at_10\",unit=\"ratio\"} 0.9"),
        "recall in prom"
    );
    let csv = std::fs::read_to_string(dir.path().join("all.csv")).unwrap();
    assert!(csv.contains(",recall_at_10=0.9 ratio,"), "recall in csv");
}

/// The Prometheus exposition passes promtool's parser and linter (base units, naming).
#[test]
fn prom_report_passes_promtool() {
    let Some(_env) = common::server("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = standard_campaign(dir.path());
    let p = dir.path().join("r.prom");
    assert_eq!(report(&c, "prom", &p), 0);
    let o = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .expect("promtool (scripts/install-prometheus.sh)");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && out.trim().is_empty(),
        "promtool: {out}"
    );
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("factorybench_latency_corrected_p99_seconds{scope=\"run\",campaign=\"test-campaign\",service=\"api\",service_kind=\"http\",run_id=\"run-std\",sweep_value=\"\",op=\"all\"} 0.00109"));
}

/// A rate sweep (array tasks with sweep values) gets one aggregate per point and a
/// latency-vs-throughput chart.
#[test]
fn sweep_points_are_separate_services_with_a_curve() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("c/runs");
    std::fs::create_dir_all(&runs).unwrap();
    for (task, rate) in [100i64, 200, 400].into_iter().enumerate() {
        let mut db = TestDb::create(&runs.join(format!("api-7_{task}.db")));
        let mut spec = RunSpec::new(&format!("sweep{task}"), "api", "http");
        spec.sweep_param = Some("requests_per_second".into());
        spec.sweep_value = Some(rate.to_string());
        spec.target_rate = Some(rate as f64);
        spec.slurm_job_id = Some("7".into());
        spec.slurm_array_task = Some(task as i64);
        db.add_run(&spec);
        let n = rate * 10;
        let reqs: Vec<Req> = (0..n)
            .map(|i| {
                Req::ok(
                    "GET",
                    T0 + S + i * (10 * S / n),
                    0,
                    (task as i64 + 1) * 100 * US,
                )
            })
            .collect();
        db.add_requests(&spec.run_id, &reqs);
    }
    let c = dir.path().join("c");
    let out = dir.path().join("s.html");
    assert_eq!(report(&c, "html", &out), 0);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("api: corrected latency vs throughput over the requests_per_second sweep")
    );
    let j = dir.path().join("s.json");
    assert_eq!(report(&c, "json", &j), 0);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    let svcs = doc["analysis"]["services"].as_array().unwrap();
    assert_eq!(svcs.len(), 3);
    assert_eq!(svcs[2]["sweep_value"], "400");
    assert_eq!(svcs[2]["total"]["throughput_ops_per_s"], 400.0);
    assert_eq!(svcs[2]["total"]["latency_corrected_ms"]["p99"], 0.3);
    assert_eq!(doc["provenance"]["slurm_job_ids"], serde_json::json!(["7"]));
}
