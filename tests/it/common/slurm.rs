//! Campaigns submitted to the test SLURM cluster: submit a recipe, poll `status --json`, read
//! `logs` (shared by slurm_cluster.rs and slurm_multinode.rs).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which factorybench binary the batch jobs run.
#[derive(Debug, Clone, Copy)]
pub enum JobBin {
    /// `FB_BIN` in the environment `sbatch` passes on: the binary under test.
    Env,
    /// No `FB_BIN`: the absolute path `compile` wrote into the scripts.
    Compiled,
}

/// A submitted campaign in its own temporary directory.
pub struct Camp {
    _root: tempfile::TempDir,
    pub root: PathBuf,
    pub dir: PathBuf,
    pub submit_stdout: String,
    bin: JobBin,
}

/// SLURM's final states: anything else (including states not named here) is a job still
/// queued, running or being signalled.
pub const FINISHED: &[&str] = &[
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "SPECIAL_EXIT",
    "REVOKED",
    "LAUNCH_FAILED",
];

/// `factorybench` run in `root` with the environment a batch job inherits from `sbatch`.
pub fn fb(root: &Path, bin: JobBin) -> assert_cmd::Command {
    let mut c = super::bin();
    c.current_dir(root);
    match bin {
        JobBin::Env => c.env("FB_BIN", assert_cmd::cargo::cargo_bin("factorybench")),
        JobBin::Compiled => c.env_remove("FB_BIN"),
    };
    c
}

/// Write `recipe` (with `@ROOT@` replaced by a fresh temporary directory named `prefix…`)
/// and `submit` it with `args`; panics when submit fails.
pub fn submit(recipe: &str, args: &[&str], prefix: &str, bin: JobBin) -> Camp {
    submit_with_path(recipe, args, prefix, bin, None)
}

/// [`submit`] with `first_on_path` (a directory of shims) put first on `PATH`.
pub fn submit_with_path(
    recipe: &str,
    args: &[&str],
    prefix: &str,
    bin: JobBin,
    first_on_path: Option<&std::path::Path>,
) -> Camp {
    let t = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let root = t.path().to_path_buf();
    std::fs::write(
        root.join("recipe.yml"),
        recipe.replace("@ROOT@", &root.display().to_string()),
    )
    .unwrap();
    let mut cmd = fb(&root, bin);
    if let Some(d) = first_on_path {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![d.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    let out = cmd
        .args(["submit", "recipe.yml"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "submit failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = stdout
        .lines()
        .find_map(|l| l.strip_prefix("campaign: "))
        .expect("submit prints the campaign")
        .to_string();
    Camp {
        dir: root.join(rel),
        root,
        _root: t,
        submit_stdout: stdout,
        bin,
    }
}

impl Camp {
    /// A campaign directory `dir` under `t` that something else created (a failed submit).
    pub fn from_dir(t: tempfile::TempDir, dir: PathBuf, bin: JobBin) -> Camp {
        Camp {
            root: t.path().to_path_buf(),
            _root: t,
            dir,
            submit_stdout: String::new(),
            bin,
        }
    }

    pub fn fb(&self) -> assert_cmd::Command {
        fb(&self.root, self.bin)
    }

    pub fn status_json(&self) -> Value {
        let out = self
            .fb()
            .args(["status", "--json"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn logs(&self) -> String {
        let out = self.fb().arg("logs").arg(&self.dir).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Poll `status --json` until `pred` holds (panics after `budget`, with the logs).
    pub fn wait_until(&self, budget: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.status_json();
            if pred(&v) {
                return v;
            }
            if t0.elapsed() > budget {
                panic!(
                    "{what}: not after {budget:?}: {v:#}\nlogs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Poll until no job of the campaign is queued or running.
    pub fn wait_done(&self, budget: Duration) -> Value {
        self.wait_until(budget, "campaign done", |v| {
            v["jobs"].as_array().is_some_and(|jobs| {
                jobs.iter()
                    .all(|j| FINISHED.contains(&j["state"].as_str().unwrap_or("")))
            })
        })
    }
}
