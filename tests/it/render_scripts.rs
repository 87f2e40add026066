//! Rendered batch scripts: insta snapshots for every service kind and runtime, and every script
//! passes `bash -n` and `shellcheck` (required in CI: scripts/start-shellcheck.sh).

use crate::common;

use factorybench::recipe;
use factorybench::render::{render_all, RenderOptions, Renderer};
use std::path::Path;
use std::process::Command;

/// The recipes whose scripts are snapshotted: the seed recipes and the render fixture.
const RECIPES: &[&str] = &[
    "recipes/comprehensive.yml",
    "recipes/ollama-vllm.yml",
    "recipes/multi-service.yml",
    "recipes/quickstart.yml",
    "tests/fixtures/render/runtimes.yml",
];

const CAMPAIGN_DIR: &str = "/shared/campaigns/test-20260101-000000";

fn render(recipe_path: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = recipe::load(&root.join(recipe_path)).expect("recipe is valid");
    let opts = RenderOptions {
        campaign_dir: CAMPAIGN_DIR.into(),
        fb_bin: "/opt/factorybench/bin/factorybench".into(),
    };
    let r = Renderer::new();
    let mut out = render_all(&r, &loaded.plan, &opts).expect("renders");
    // The capacity-search job of each service with `capacity_search` (`submit --capacity`).
    for svc in &loaded.plan.services {
        if let Some(s) = r
            .render_capacity(&loaded.plan, svc, &opts)
            .expect("renders")
        {
            out.push((format!("{}.capacity", svc.name), s));
        }
    }
    out
}

fn stem(recipe_path: &str) -> String {
    Path::new(recipe_path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn snapshots_of_every_script() {
    for r in RECIPES {
        for (svc, script) in render(r) {
            insta::assert_snapshot!(format!("{}__{svc}", stem(r)), script);
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    for r in RECIPES {
        assert_eq!(render(r), render(r), "{r}");
    }
}

fn write_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for r in RECIPES {
        for (svc, script) in render(r) {
            let p = dir.join(format!("{}__{svc}.sbatch", stem(r)));
            std::fs::write(&p, script).unwrap();
            paths.push(p);
        }
    }
    paths
}

#[test]
fn every_script_passes_bash_n() {
    let dir = tempfile::tempdir().unwrap();
    for p in write_all(dir.path()) {
        let out = Command::new("bash").arg("-n").arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_script_passes_shellcheck() {
    let Some(env) = common::server("shellcheck") else {
        return;
    };
    let bin = env
        .get("FB_TEST_SHELLCHECK")
        .cloned()
        .unwrap_or_else(|| "shellcheck".into());
    let dir = tempfile::tempdir().unwrap();
    let paths = write_all(dir.path());
    let out = Command::new(&bin)
        .args(["--shell=bash", "--severity=style"])
        .args(&paths)
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn header_carries_the_recipe_slurm_settings() {
    let scripts = render("tests/fixtures/render/runtimes.yml");
    let get = |name: &str| {
        scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
            .unwrap()
    };
    let vllm = get("vllm-sweep");
    for line in [
        "#SBATCH --job-name=fb-vllm-sweep",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj42",
        "#SBATCH --time=02:00:00",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=64G",
        "#SBATCH --gres=gpu:a100:1",
        "#SBATCH --constraint=a100",
        "#SBATCH --array=0-3%1",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --mail-type=END",
        "#SBATCH --reservation=bench",
        "module load apptainer/1.3",
        "module load cuda/12.2",
        "--sweep-index \"$FB_TASK\"",
    ] {
        assert!(vllm.contains(line), "missing `{line}` in:\n{vllm}");
    }
    // GPU → --nv; binds as given.
    assert!(vllm.contains("instance run --cleanenv --nv"));
    assert!(vllm.contains("--bind /shared/models:/models:ro"));
    // No GPU asked → no --nv.
    assert!(!get("weaviate-app").contains("--nv"));
    // depends_on is for submit, not for the script.
    assert!(!get("chroma-host").contains("pg-podman"));
    // Model sweep: the model comes from the array task.
    let ollama = get("ollama-models");
    assert!(ollama.contains("fb_models=(llama3 mistral qwen2:7b)"));
    assert!(ollama.contains("#SBATCH --array=0-2%1"));
}

#[test]
fn container_definitions_cover_every_started_kind() {
    // Apptainer is not installable here, so the .def files are checked for structure only:
    // a base image, a runscript that passes the script's arguments, and the kind label.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers");
    for (file, kind) in [
        ("ollama.def", "ollama"),
        ("vllm.def", "vllm"),
        ("triton.def", "triton"),
        ("chromadb.def", "vectordb/chromadb"),
        ("weaviate.def", "vectordb/weaviate"),
        ("postgres.def", "database/postgresql"),
        ("minio.def", "s3/minio"),
        ("factorybench.def", "client"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("Bootstrap: docker\nFrom: "), "{file}");
        assert!(
            text.contains(&format!("org.factorybench.kind {kind}\n")),
            "{file}"
        );
        let runscript = text.split("%runscript").nth(1).expect("has %runscript");
        let runscript = runscript.split("\n%").next().unwrap();
        assert!(
            runscript.contains("exec ") && runscript.contains("\"$@\""),
            "{file}"
        );
    }
    assert!(std::fs::read_to_string(dir.join("README.md"))
        .unwrap()
        .contains("not built in CI"));
}
