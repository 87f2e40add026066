// Record the git commit for provenance in reports (`factorybench --version`).
#![allow(clippy::disallowed_macros)] // cargo reads a build script's stdout
fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    println!("cargo:rerun-if-env-changed=FACTORYBENCH_GIT_COMMIT");
    if std::env::var("FACTORYBENCH_GIT_COMMIT").is_ok() {
        return;
    }
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
    {
        if out.status.success() {
            let c = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rustc-env=FACTORYBENCH_GIT_COMMIT={c}");
        }
    }
}
