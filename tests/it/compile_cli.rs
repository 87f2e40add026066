//! `factorybench compile`: the campaign layout, secrets kept out of scripts, atomic output,
//! site templates, and an injection test that executes the rendered scripts with stub
//! `apptainer`/`podman`/`module`/`factorybench` commands and proves no recipe value runs.

use crate::common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compile(recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    common::bin()
        .arg("compile")
        .arg(recipe)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn read_env_file(p: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect()
}

#[test]
fn writes_the_campaign_layout() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    let o = compile(&root().join("recipes/comprehensive.yml"), &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("compiled 7 services into"), "{stdout}");
    assert!(stdout.contains("scripts/postgres-test.sbatch"), "{stdout}");
    for f in ["recipe.yml", "plan.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for d in ["logs", "runs", "endpoints", "scripts", "secrets"] {
        assert!(out.join(d).is_dir(), "{d}");
    }
    for svc in [
        "ollama-llama2",
        "vllm-mistral",
        "triton-bert",
        "chromadb-test",
        "postgres-test",
        "minio-test",
        "lustre-test",
    ] {
        let s = out.join(format!("scripts/{svc}.sbatch"));
        assert!(s.is_file(), "{svc}");
        let text = std::fs::read_to_string(&s).unwrap();
        assert!(text.contains(&format!("FB_CAMPAIGN_DIR={}", out.display())));
    }
    assert_eq!(
        std::fs::read(out.join("recipe.yml")).unwrap(),
        std::fs::read(root().join("recipes/comprehensive.yml")).unwrap()
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["services"].as_array().unwrap().len(), 7);
    // Secrets: 0700 directory, 0600 files, only for services that have file secrets.
    assert_eq!(mode(&out.join("secrets")), 0o700);
    assert_eq!(mode(&out.join("secrets/postgres-test.env")), 0o600);
    assert_eq!(mode(&out.join("secrets/minio-test.env")), 0o600);
    assert!(!out.join("secrets/lustre-test.env").exists());
    // The recipe holds plain-text secrets: owner only.
    assert_eq!(mode(&out.join("recipe.yml")), 0o600);
}

#[test]
fn no_secret_value_in_scripts_or_plan() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    let o = compile(&root().join("tests/fixtures/render/secrets.yml"), &out, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let plain = [
        "Plain-DB-Pass-7f3a9c",
        "Plain-Token-22e81b",
        "Plain-Access-93ac11",
        "Plain-Secret-0b77de",
        "Plain-Api-Key-5d2e90",
    ];
    // Generated secrets: random, 24+ characters, one per generated credential.
    let s3gen = read_env_file(&out.join("secrets/s3gen.env"));
    let generated: Vec<String> = ["FB_S3_ACCESS_KEY", "FB_S3_SECRET_KEY"]
        .iter()
        .map(|k| s3gen[*k].clone())
        .collect();
    for g in &generated {
        assert!(
            g.len() >= 24 && g.chars().all(|c| c.is_ascii_alphanumeric()),
            "{g}"
        );
    }
    assert_ne!(generated[0], generated[1]);
    let pg = read_env_file(&out.join("secrets/pg.env"));
    assert_eq!(pg["FB_DB_PASSWORD"], "Plain-DB-Pass-7f3a9c");
    // One source of truth (issue 14): the container's POSTGRES_PASSWORD is the client's
    // FB_DB_PASSWORD (an alias in the script), never a second stored copy.
    assert!(!pg.contains_key("POSTGRES_PASSWORD"), "{pg:?}");
    let pg_script = std::fs::read_to_string(out.join("scripts/pg.sbatch")).unwrap();
    assert!(
        pg_script.contains("export POSTGRES_PASSWORD=\"${FB_DB_PASSWORD}\""),
        "{pg_script}"
    );
    assert_eq!(pg["API_TOKEN"], "Plain-Token-22e81b");
    // MINIO_ROOT_USER repeats the access key: treated as a secret too.
    let s3plain = read_env_file(&out.join("secrets/s3plain.env"));
    assert_eq!(s3plain["MINIO_ROOT_USER"], "Plain-Access-93ac11");
    // Env / file secrets are not stored at all.
    assert!(!out.join("secrets/pgenv.env").exists());

    let mut outputs = vec![out.join("plan.json")];
    for e in std::fs::read_dir(out.join("scripts")).unwrap() {
        outputs.push(e.unwrap().path());
    }
    for f in &outputs {
        let text = std::fs::read_to_string(f).unwrap();
        for s in plain
            .iter()
            .copied()
            .chain(generated.iter().map(String::as_str))
        {
            assert!(!text.contains(s), "{} contains secret {s}", f.display());
        }
    }
    // What compile prints (stdout) holds no secret either; no generated one reaches stderr.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    for s in plain
        .iter()
        .copied()
        .chain(generated.iter().map(String::as_str))
    {
        assert!(!stdout.contains(s), "compile output contains {s}");
    }
    for s in &generated {
        assert!(!stderr.contains(s.as_str()), "compile stderr contains {s}");
    }
    // Env secrets are checked by name; file secrets read on the node.
    let pgenv = std::fs::read_to_string(out.join("scripts/pgenv.sbatch")).unwrap();
    assert!(pgenv.contains(": \"${PGPASS_FROM_ENV:?"));
    assert!(
        pgenv.contains("IFS= read -r PG_EXTRA_PASSWORD < /run/secrets/pg || true"),
        "{pgenv}"
    );
}

#[test]
fn generated_secrets_differ_between_compiles() {
    let t = tempfile::tempdir().unwrap();
    let r = root().join("tests/fixtures/render/secrets.yml");
    compile(&r, &t.path().join("a"), &[]);
    compile(&r, &t.path().join("b"), &[]);
    let a = read_env_file(&t.path().join("a/secrets/s3gen.env"));
    let b = read_env_file(&t.path().join("b/secrets/s3gen.env"));
    assert_ne!(a["FB_S3_SECRET_KEY"], b["FB_S3_SECRET_KEY"]);
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn one_service_only() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    let o = compile(
        &root().join("recipes/comprehensive.yml"),
        &out,
        &["--service", "postgres-test"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(entries(&out.join("scripts")), ["postgres-test.sbatch"]);
    assert_eq!(entries(&out.join("secrets")), ["postgres-test.env"]);
}

#[test]
fn unknown_service_is_exit_2_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    let o = compile(
        &root().join("recipes/comprehensive.yml"),
        &out,
        &["--service", "nope"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown service `nope`"), "{err}");
    assert!(err.contains("postgres-test"), "{err}");
    assert!(entries(t.path()).is_empty(), "{:?}", entries(t.path()));
}

#[test]
fn a_template_error_leaves_no_half_written_output() {
    let t = tempfile::tempdir().unwrap();
    let site = t.path().join("site");
    std::fs::create_dir_all(site.join("runtime")).unwrap();
    // The postgres script renders fine; a later service's runtime template is broken, so the
    // failure comes after other scripts were already rendered.
    std::fs::write(
        site.join("runtime/external.sh.j2"),
        "{{ this_variable_does_not_exist }}\n",
    )
    .unwrap();
    let out = t.path().join("camp");
    let o = compile(
        &root().join("recipes/comprehensive.yml"),
        &out,
        &["--templates", site.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("runtime/external.sh.j2"), "{err}");
    assert!(!out.exists());
    assert_eq!(entries(t.path()), ["site"], "no temporary directory left");
}

#[test]
fn existing_output_is_kept_unless_force() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep").unwrap();
    let r = root().join("recipes/ollama-vllm.yml");
    let o = compile(&r, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(entries(&out), ["precious.txt"]);
    let o = compile(&r, &out, &["--force"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!out.join("precious.txt").exists());
    assert!(out.join("scripts/vllm-mistral.sbatch").is_file());
    assert_eq!(entries(t.path()), ["camp"]);
    // A directory holding only empty directories (what `submit` prepares) is filled in place.
    let out2 = t.path().join("camp2");
    std::fs::create_dir_all(out2.join("logs")).unwrap();
    assert_eq!(compile(&r, &out2, &[]).status.code(), Some(0));
    assert!(out2.join("plan.json").is_file());
}

#[test]
fn site_templates_override_builtins() {
    let t = tempfile::tempdir().unwrap();
    let site = t.path().join("site");
    std::fs::create_dir_all(site.join("runtime")).unwrap();
    std::fs::write(
        site.join("runtime/apptainer.sh.j2"),
        "# SITE APPTAINER for {{ service.name | shell_quote }}\nfb_service_start() { site-launch; }\nfb_service_stop() { :; }\n",
    )
    .unwrap();
    let out = t.path().join("camp");
    let o = compile(
        &root().join("recipes/ollama-vllm.yml"),
        &out,
        &["--templates", site.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = std::fs::read_to_string(out.join("scripts/ollama-llama2.sbatch")).unwrap();
    assert!(s.contains("# SITE APPTAINER for ollama-llama2"));
    assert!(!s.contains("apptainer instance"));
    // The rest of the script is still the built-in one.
    assert!(s.contains("#SBATCH --job-name=fb-ollama-llama2"));
}

#[test]
fn unsafe_out_path_is_rejected() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("has space");
    let o = compile(&root().join("recipes/ollama-vllm.yml"), &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// Injection: values full of shell syntax are rendered, then the scripts really run with stub
// commands on PATH. Nothing in a value may execute; every value must arrive verbatim.

const INJECTION_RECIPE: &str = r#"
benchmark:
  name: "inj $(touch MARK)"
  description: "$(touch MARK) `touch MARK` ; touch MARK"
services:
  - service_name: host-inj
    service_type: http
    runtime: host
    start_command: ["stub-server", "$(touch MARK)", "`touch MARK`", "a; touch MARK", "it's \"q\"", "line1\nline2 $(touch MARK)"]
    port: 18099
    url: "/x$(touch MARK)"
    environment:
      PLAIN_VAR: "$(touch MARK)`touch MARK`;touch MARK 'q' \"dq\"\n$(touch MARK)"
    slurm: {modules: ["mod$(touch MARK)", "m'q\nx"], extra: ["--comment=$(touch MARK)"]}
  - service_name: app-inj
    service_type: vllm
    container_image: "docker://img$(touch MARK)`touch MARK`'q'"
    port: 18098
    model: "m$(touch MARK);`touch MARK`'\"\nx"
    binds: ["/src$(touch MARK):/dst`touch MARK`:ro", "/a'b;c"]
    container_args: ["--opt=$(touch MARK)", "; touch MARK", "x\ny"]
    environment:
      X_VAL: "$(touch MARK)'\"`touch MARK`"
    sweep: {model: ["a$(touch MARK)", "b'`touch MARK`\"", "c;touch MARK"]}
  - service_name: pod-inj
    service_type: database
    runtime: podman
    container_image: "docker://pg$(touch MARK)"
    database: "db$(touch MARK)"
    user: "u'`touch MARK`"
    password_file: "PWFILE"
    environment:
      POSTGRES_INITDB_ARGS: "--x=$(touch MARK)"
"#;

/// A stub command: records its argv (NUL-separated) in a new file under `$STUB_CALLS`, plus the
/// value of `$STUB_ENV_NAME` when asked.
const STUB: &str = r#"#!/bin/bash
f=$(mktemp "$STUB_CALLS/call.XXXXXX")
printf '%s\0' "$(basename "$0")" "$@" > "$f"
if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then printf 'ENV:POSTGRES_PASSWORD=%s\0' "$POSTGRES_PASSWORD" >> "$f"; fi
if [[ -n "${APPTAINERENV_VLLM_API_KEY:-}" ]]; then printf 'ENV:x\0' >> "$f"; fi
if [[ "$(basename "$0")" == stub-server ]]; then exec sleep 60; fi
exit 0
"#;

fn calls(dir: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let argv: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        out.push(argv);
    }
    out
}

fn has_call(all: &[Vec<String>], cmd: &str, wanted: &[&str]) -> bool {
    all.iter()
        .any(|c| c[0] == cmd && wanted.iter().all(|w| c.iter().any(|a| a == w)))
}

#[test]
fn injection_nothing_in_a_recipe_value_executes() {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let stubs = t.path().join("stubs");
    let call_dir = t.path().join("calls");
    for d in [&work, &stubs, &call_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    for name in [
        "apptainer",
        "podman",
        "module",
        "factorybench",
        "stub-server",
    ] {
        let p = stubs.join(name);
        std::fs::write(&p, STUB).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pwfile = t.path().join("pw$(touch MARK)'file");
    std::fs::write(&pwfile, "file-secret-value\n").unwrap();
    let recipe = work.join("inj.yml");
    std::fs::write(
        &recipe,
        INJECTION_RECIPE.replace("PWFILE", &pwfile.display().to_string()),
    )
    .unwrap();
    // The recipe passes validation (the values are legal), so they really reach the renderer.
    let camp = t.path().join("camp");
    let o = compile(&recipe, &camp, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
    for (svc, task) in [
        ("host-inj", None),
        ("app-inj", Some("1")),
        ("pod-inj", None),
    ] {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(camp.join(format!("scripts/{svc}.sbatch")))
            .current_dir(&work)
            .env("PATH", &path)
            .env("FB_BIN", stubs.join("factorybench"))
            .env("STUB_CALLS", &call_dir)
            .env("TMPDIR", t.path())
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURM_ARRAY_JOB_ID")
            .env_remove("SLURM_ARRAY_TASK_ID");
        if let Some(task) = task {
            cmd.env("SLURM_ARRAY_TASK_ID", task);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{svc}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing executed: no MARK anywhere a `touch MARK` could have landed.
    for d in [&work, t.path(), &camp, &stubs] {
        assert!(!d.join("MARK").exists(), "MARK created in {}", d.display());
    }
    let all = calls(&call_dir);
    // Every value arrived verbatim.
    assert!(has_call(
        &all,
        "stub-server",
        &[
            "$(touch MARK)",
            "`touch MARK`",
            "a; touch MARK",
            "it's \"q\"",
            "line1\nline2 $(touch MARK)"
        ]
    ));
    assert!(has_call(&all, "module", &["load", "mod$(touch MARK)"]));
    assert!(has_call(&all, "module", &["load", "m'q\nx"]));
    assert!(has_call(
        &all,
        "apptainer",
        &[
            "instance",
            "run",
            "docker://img$(touch MARK)`touch MARK`'q'",
            "/src$(touch MARK):/dst`touch MARK`:ro",
            "/a'b;c:/a'b;c",
            "X_VAL=$(touch MARK)'\"`touch MARK`",
            "--opt=$(touch MARK)",
            "; touch MARK",
            "x\ny",
            // Array task 1 of the model sweep.
            "b'`touch MARK`\"",
        ]
    ));
    assert!(
        has_call(&all, "apptainer", &["instance", "stop"]),
        "instance stopped on exit"
    );
    assert!(has_call(
        &all,
        "podman",
        &[
            "run",
            "docker://pg$(touch MARK)",
            "POSTGRES_USER=u'`touch MARK`",
            "POSTGRES_DB=db$(touch MARK)",
            "POSTGRES_INITDB_ARGS=--x=$(touch MARK)",
            "POSTGRES_PASSWORD",
            // The file secret reaches the container through the environment, not argv.
            "ENV:POSTGRES_PASSWORD=file-secret-value",
        ]
    ));
    assert!(
        has_call(&all, "podman", &["stop"]),
        "container stopped on exit"
    );
    assert!(!all.iter().any(|c| c
        .iter()
        .any(|a| a.contains("file-secret-value") && !a.starts_with("ENV:"))));
    // The runner got the campaign's recipe, the service, its own DB and the sweep index.
    assert!(has_call(
        &all,
        "factorybench",
        &["ready", "--service", "host-inj"]
    ));
    assert!(has_call(
        &all,
        "factorybench",
        &[
            "run",
            "--service",
            "app-inj",
            "--sweep-index",
            "1",
            "--no-progress"
        ]
    ));
    // Endpoint files are valid JSON stamped with the job.
    let ep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(camp.join("endpoints/pod-inj.json")).unwrap())
            .unwrap();
    assert_eq!(ep["port"], 5432);
    assert!(ep["job_id"].as_str().unwrap().starts_with("local-"));
    assert_eq!(ep["url"], "postgresql://127.0.0.1:5432/db$(touch MARK)");
    assert!(camp.join("endpoints/app-inj_1.json").is_file());
}
