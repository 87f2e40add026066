//! Issue 14: what a started container is given is what the client uses (one source of truth),
//! `service_url` parts honoured, Triton arguments and models, Faiss, and the Pushgateway —
//! caught by `validate`/`compile` with locations instead of failing on the compute node.

use crate::common;

use factorybench::recipe::{self, EnvValue, Secret, Service, Workload};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(yaml: &str) -> Result<recipe::Loaded, recipe::RecipeError> {
    recipe::parse_str(yaml, Path::new("t.yml"))
}

fn one(yaml: &str) -> Service {
    load(yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .plan
        .services
        .remove(0)
}

/// A postgresql service as users write it (the seed's format).
const USERS_PG: &str = "\
services:
  - service_name: pg
    service_type: database
    backend: postgresql
    container_image: docker://postgres:16
    service_url: postgresql://localhost:5432
    environment:
      POSTGRES_PASSWORD: benchmark
      POSTGRES_DB: benchmark_db
";

#[test]
fn postgres_container_and_client_share_user_password_database() {
    let s = one(USERS_PG);
    let Workload::Database(d) = &s.workload else {
        panic!()
    };
    assert_eq!(d.database, "benchmark_db");
    assert_eq!(d.password, Some(Secret::Plain("benchmark".into())));
    // The container takes them from the workload only: no second copy from `environment`.
    assert!(
        s.container
            .env
            .iter()
            .all(|e| !e.name.starts_with("POSTGRES_")),
        "{:?}",
        s.container.env
    );

    // The rendered script: one POSTGRES_DB, the client's user, the password from the one
    // secret (never generated).
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("r.yml");
    std::fs::write(&r, USERS_PG).unwrap();
    let out = t.path().join("camp");
    let o = common::bin()
        .arg("compile")
        .arg(&r)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = std::fs::read_to_string(out.join("scripts/pg.sbatch")).unwrap();
    assert_eq!(script.matches("POSTGRES_DB=").count(), 1, "{script}");
    assert!(script.contains("POSTGRES_DB=benchmark_db"));
    assert!(script.contains("POSTGRES_USER=factorybench"));
    assert!(!script.contains("benchmark\n") && !script.contains("=benchmark'"));
    let secrets = std::fs::read_to_string(out.join("secrets/pg.env")).unwrap();
    let pw_lines: Vec<&str> = secrets.lines().filter(|l| l.contains("PASSWORD")).collect();
    assert!(
        pw_lines
            .iter()
            .all(|l| l.ends_with("=benchmark") || l.ends_with("='benchmark'")),
        "{secrets}"
    );
}

#[test]
fn postgres_conflicting_sources_are_errors_with_locations() {
    let y = USERS_PG.replace(
        "    environment:",
        "    database: other_db\n    environment:",
    );
    let e = load(&y)
        .err()
        .unwrap_or_else(|| panic!("refused"))
        .to_string();
    assert!(e.contains("services[0].environment.POSTGRES_DB"), "{e}");
    assert!(e.contains("differs from `services[0].database`"), "{e}");

    let y = USERS_PG.replace("    environment:", "    password: other\n    environment:");
    let e = load(&y)
        .err()
        .unwrap_or_else(|| panic!("refused"))
        .to_string();
    assert!(
        e.contains("services[0].environment.POSTGRES_PASSWORD"),
        "{e}"
    );
    assert!(!e.contains("benchmark'"), "no value in the message: {e}");
}

#[test]
fn database_service_url_user_password_database_are_honoured() {
    let s = one(
        "services:\n  - service_name: pg\n    service_type: database\n    runtime: external\n    service_url: postgresql://ana:s%40cret@db.local:6432/sales\n",
    );
    let Workload::Database(d) = &s.workload else {
        panic!()
    };
    assert_eq!((d.user.as_str(), d.database.as_str()), ("ana", "sales"));
    assert_eq!(d.password, Some(Secret::Plain("s@cret".into())));
    assert_eq!(
        (s.endpoint.host.as_str(), s.endpoint.port),
        ("db.local", Some(6432))
    );
    // And they agree with the explicit keys or are refused.
    let e = load("services:\n  - service_name: pg\n    service_type: database\n    runtime: external\n    user: bob\n    service_url: postgresql://ana@db.local/sales\n")
        .err().unwrap_or_else(|| panic!("refused"))
        .to_string();
    assert!(e.contains("services[0].service_url"), "{e}");
}

#[test]
fn a_non_postgres_environment_is_kept() {
    let s = one(&USERS_PG.replace(
        "      POSTGRES_DB: benchmark_db\n",
        "      POSTGRES_DB: benchmark_db\n      TZ: UTC\n",
    ));
    assert!(s
        .container
        .env
        .iter()
        .any(|e| e.name == "TZ" && matches!(&e.value, EnvValue::Plain(v) if v == "UTC")));
}

#[test]
fn triton_container_args_follow_the_image_and_repository_is_not_doubled() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("camp");
    let o = common::bin()
        .arg("compile")
        .arg(root().join("recipes/triton.yml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = std::fs::read_to_string(out.join("scripts/triton-llm.sbatch")).unwrap();
    let image = script
        .find("docker://nvcr.io/nvidia/tritonserver:24.08-trtllm-python-py3")
        .expect("image");
    let arg = script
        .find("args+=('--model-repository=/models')")
        .expect("container_args rendered");
    assert!(
        image < arg,
        "container_args must follow the image:\n{script}"
    );
    assert_eq!(
        script.matches("--model-repository=/models").count(),
        1,
        "{script}"
    );
}

#[test]
fn triton_without_a_bound_model_repository_is_warned() {
    let l = load("services:\n  - service_name: t\n    service_type: triton\n    model: ensemble\n    container_image: docker://nvcr.io/nvidia/tritonserver:24.01-py3\n    port: 8000\n").unwrap();
    let w = l.render_warnings();
    assert!(w.contains("model repository `/models` is not bound"), "{w}");
    assert!(w.contains("services[0].binds"), "{w}");
    let l = load("services:\n  - service_name: t\n    service_type: triton\n    model: ensemble\n    container_image: x.sif\n    binds: [\"/repo:/models:ro\"]\n").unwrap();
    assert!(!l.render_warnings().contains("model repository"));
}

/// `validate` and `compile` warn (the recipe's format is fine, and recipes users already have
/// keep validating); `submit` refuses the service with the location: its job could not start.
/// Another service of the same recipe is still submitted with `--service`.
#[test]
fn submit_refuses_triton_without_a_model_repository() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r.yml");
    std::fs::write(
        &r,
        "benchmark: {name: t}
services:
  - service_name: files
    service_type: file_storage
    base_path: /tmp
  - service_name: t
    service_type: triton
    model: ensemble
    container_image: docker://nvcr.io/nvidia/tritonserver:24.01-py3
    port: 8000
",
    )
    .unwrap();
    let o = common::bin().arg("validate").arg(&r).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    let camps = dir.path().join("campaigns");
    let o = common::bin()
        .args(["submit", "--dry-run", "--campaigns-dir"])
        .arg(&camps)
        .arg(&r)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error"), "{err}");
    assert!(
        err.contains("r.yml:6:5"),
        "location of the Triton service: {err}"
    );
    assert!(
        !err.contains("warning"),
        "printed once, as the error: {err}"
    );
    assert!(
        err.contains("model repository `/models` is not bound"),
        "{err}"
    );
    assert!(err.contains("nothing was submitted"), "{err}");
    assert!(
        !camps.exists() || std::fs::read_dir(&camps).unwrap().next().is_none(),
        "no campaign directory is left"
    );
    let o = common::bin()
        .args([
            "submit",
            "--dry-run",
            "--service",
            "files",
            "--campaigns-dir",
        ])
        .arg(&camps)
        .arg(&r)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Issue 24: an image model on Triton is driven with tensors (KServe v2 infer); driving it with
/// a text `api` is refused at `api`.
#[test]
fn triton_image_models_run_as_tensors_and_refuse_text() {
    let base = "services:\n  - service_name: t\n    service_type: triton\n    model: resnet50\n    runtime: external\n    service_url: http://127.0.0.1:8000\n";
    let s = one(base);
    let Workload::Tensor(t) = &s.workload else {
        panic!("not tensor: {:?}", s.workload)
    };
    assert_eq!((t.model.as_str(), t.batch_size), ("resnet50", 1));
    assert_eq!(t.encoding, recipe::TensorEncoding::Auto);
    assert_eq!(t.source, recipe::TensorSource::Random);
    let s = one(&format!(
        "{base}    batch_size: 8\n    images: /data/imgs\n    tensor_encoding: json\n"
    ));
    let Workload::Tensor(t) = &s.workload else {
        panic!("not tensor")
    };
    assert_eq!(t.batch_size, 8);
    assert_eq!(t.encoding, recipe::TensorEncoding::Json);
    assert_eq!(
        t.source,
        recipe::TensorSource::Images {
            dir: "/data/imgs".into()
        }
    );
    // `api: tensor` makes any model a tensor model; a text model stays on generate.
    let s = one(&base
        .replace("resnet50", "my_net")
        .replace("runtime:", "api: tensor\n    runtime:"));
    assert!(matches!(s.workload, Workload::Tensor(_)));
    let s = one(&base.replace("resnet50", "ensemble"));
    assert!(matches!(s.workload, Workload::Llm(_)));

    let e = load(&format!("{base}    api: generate\n"))
        .err()
        .unwrap_or_else(|| panic!("refused"))
        .to_string();
    assert!(e.contains("looks like an image model"), "{e}");
    assert!(e.contains("api: tensor"), "{e}");
    assert!(e.contains("services[0].api"), "{e}");
    let e = load(&format!("{base}    prompt: {{input_tokens: 5}}\n"))
        .err()
        .unwrap_or_else(|| panic!("refused"))
        .to_string();
    assert!(e.contains("`prompt` is for text models"), "{e}");
    let e =
        load("services:\n  - {service_name: o, service_type: ollama, model: m, batch_size: 4}\n")
            .err()
            .unwrap_or_else(|| panic!("refused"))
            .to_string();
    assert!(e.contains("triton` tensor inference only"), "{e}");
}

#[test]
fn loopback_pushgateway_is_warned_with_its_location() {
    let l = load("global: {pushgateway_url: \"http://localhost:9091\"}\nservices:\n  - {service_name: h, service_type: http, runtime: external, service_url: \"http://10.0.0.1:80\", url: /}\n").unwrap();
    let w = l.render_warnings();
    assert!(w.contains("loopback Pushgateway"), "{w}");
    assert!(w.contains("global.pushgateway_url"), "{w}");
    assert!(w.contains("PUSHGATEWAY_URL"), "{w}");
    let l = load("global: {pushgateway_url: \"http://mel0001:9091\"}\nservices:\n  - {service_name: h, service_type: http, runtime: external, service_url: \"http://10.0.0.1:80\", url: /}\n").unwrap();
    assert!(!l.render_warnings().contains("loopback"));
}

#[test]
fn pushgateway_url_env_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY (test): this is the only test in this binary reading PUSHGATEWAY_URL.
    std::env::set_var("PUSHGATEWAY_URL", "http://pgw.example:9091");
    let got = factorybench::monitor::stack::pushgateway_with_source(
        Some("http://recipe.example:9091"),
        dir.path(),
    );
    std::env::remove_var("PUSHGATEWAY_URL");
    assert_eq!(
        got,
        Some(("http://pgw.example:9091".to_string(), "PUSHGATEWAY_URL"))
    );
    let got = factorybench::monitor::stack::pushgateway_with_source(
        Some("http://recipe.example:9091"),
        dir.path(),
    );
    assert_eq!(
        got,
        Some((
            "http://recipe.example:9091".to_string(),
            "global.pushgateway_url"
        ))
    );
    assert_eq!(
        factorybench::monitor::stack::pushgateway_with_source(None, dir.path()),
        None
    );
}

#[test]
fn a_started_service_on_an_ephemeral_port_is_warned_with_its_location() {
    let started = |port: &str| {
        format!("services:\n  - {{service_name: h, service_type: http, runtime: host, start_command: [srv], {port}, url: /}}\n")
    };
    let w = load(&started("port: 57340")).unwrap().render_warnings();
    assert!(
        w.contains("port 57340 is in Linux's default ephemeral range"),
        "{w}"
    );
    assert!(w.contains("services[0].port"), "{w}");
    assert!(w.contains("below 32768"), "{w}");
    let w = load(&started("service_url: \"http://127.0.0.1:40000\""))
        .unwrap()
        .render_warnings();
    assert!(w.contains("port 40000"), "{w}");
    assert!(w.contains("services[0].service_url"), "{w}");
    // Below or above the range, and a server the job does not start: no warning.
    for ok in ["port: 32767", "port: 61000"] {
        let w = load(&started(ok)).unwrap().render_warnings();
        assert!(!w.contains("ephemeral"), "{ok}: {w}");
    }
    let w = load("services:\n  - {service_name: h, service_type: http, runtime: external, service_url: \"http://10.0.0.1:50000\", url: /}\n")
        .unwrap()
        .render_warnings();
    assert!(!w.contains("ephemeral"), "{w}");
}

#[test]
fn client_threads_default_range_and_where_it_is_ignored() {
    let pg = |extra: &str| {
        format!("services:\n  - {{service_name: pg, service_type: database, runtime: external, host: db, client_count: 40, requests_per_second: 0{extra}}}\n")
    };
    // Default: one thread per 16 clients, at most one per core.
    let l = one(&pg("")).load;
    assert_eq!(l.client_threads, None);
    assert_eq!(l.client_threads_for(64), 3);
    assert_eq!(l.client_threads_for(2), 2);
    // Set: at most one per client, whatever the cores.
    let l = one(&pg(", client_threads: 8")).load;
    assert_eq!(l.client_threads_for(2), 8);
    assert_eq!(
        one(&pg(", client_threads: 100")).load.client_threads_for(2),
        40
    );
    assert!(load(&pg(", client_threads: 8"))
        .unwrap()
        .render_warnings()
        .is_empty());
    // Out of range: an error with its location.
    let e = load(&pg(", client_threads: 0")).err().unwrap().to_string();
    assert!(e.contains("services[0].client_threads"), "{e}");
    let e = load(&pg(", client_threads: 5000"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("client_threads"), "{e}");
    // Ignored (warned): an open loop, another kind.
    let w = load(
        &pg(", requests_per_second: 5, arrival: poisson, client_threads: 2")
            .replace("requests_per_second: 0, ", ""),
    )
    .unwrap()
    .render_warnings();
    assert!(
        w.contains("`client_threads` is ignored: an open loop"),
        "{w}"
    );
    let w = load("services:\n  - {service_name: s, service_type: s3, runtime: external, endpoint_url: \"http://10.0.0.1:80\", access_key_env: A, secret_key_env: B, client_threads: 2}\n")
        .unwrap()
        .render_warnings();
    assert!(
        w.contains("`client_threads` is ignored: `s3` clients"),
        "{w}"
    );
    assert!(w.contains("closed loop of database or http"), "{w}");
    let w = load("services:\n  - {service_name: h, service_type: http, runtime: external, service_url: \"http://10.0.0.1:80\", url: /, client_count: 4, requests_per_second: 0, client_threads: 2}\n")
        .unwrap()
        .render_warnings();
    assert!(!w.contains("client_threads"), "{w}");
}
