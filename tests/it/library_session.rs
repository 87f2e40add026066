//! A library caller runs a plan without clap: `runner::session::run_plan` with plain options
//! (no progress output, no live monitoring), then reads the runs back from the campaign file.

use factorybench::exit;
use factorybench::runner::session::{run_plan, PlanRun, RunHooks, RunOptions};
use std::path::Path;

/// The quickstart recipe (local file storage), shortened, into a temporary directory.
fn recipe(dir: &Path) -> String {
    format!(
        "benchmark:\n  name: library-quickstart\nglobal:\n  metrics_db: {db}\n  reports_dir: reports\n  logs_dir: logs\nservices:\n  - service_name: local-files\n    service_type: file_storage\n    base_path: {base}\n    client_count: 2\n    requests_per_second: 100\n    arrival: constant\n    warmup: 0.5\n    duration: 1.5\n    operation_mix: {{write: 0.3, read: 0.6, stat: 0.1}}\n    file_sizes: {{\"4KB\": 1.0}}\n    sync_mode: none\n",
        db = dir.join("library.db").display(),
        base = dir.join("files").display(),
    )
}

#[test]
fn a_library_caller_runs_a_plan_without_clap() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("recipe.yml");
    let text = recipe(t.path());
    std::fs::write(&path, &text).unwrap();
    let loaded = factorybench::recipe::parse_str(&text, &path).unwrap();
    let opts = RunOptions {
        recipe: path.clone(),
        ..Default::default()
    };
    let PlanRun::Done(done) = run_plan(&loaded, &opts, RunHooks::default()).unwrap() else {
        panic!("the run did not end normally");
    };
    assert_eq!(done.db, t.path().join("library.db"));
    assert_eq!(done.finished.len(), 1, "{:?}", done.finished);
    assert!(done.lifecycle_failures.is_empty());
    assert!(!done.stopped);
    // What the campaign file holds is the run the session reported.
    let conn = factorybench::store::read::open_read_only(&done.db).unwrap();
    let runs = factorybench::store::read::list_runs(&conn).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, done.finished[0].run_id);
    assert_eq!(runs[0].service, "local-files");
    let summary =
        factorybench::report::summary::summarize_run(&conn, &done.finished[0].run_id).unwrap();
    assert!(summary.requests > 0, "{summary:?}");
    // The exit-code policy is the library's: a finished, valid run is 0; an invalid one 5.
    let code = done.exit_code(!summary.valid);
    assert!(code == exit::OK || code == exit::INVALID_RUN, "{code}");
    assert_eq!(done.exit_code(false), exit::OK);
    assert_eq!(done.exit_code(true), exit::INVALID_RUN);
    factorybench::out::set_log_file(None);
}

#[test]
fn a_library_caller_gets_the_exit_code_with_the_error() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("recipe.yml");
    let text = recipe(t.path());
    std::fs::write(&path, &text).unwrap();
    let loaded = factorybench::recipe::parse_str(&text, &path).unwrap();
    let opts = RunOptions {
        recipe: path.clone(),
        service: Some("nope".into()),
        ..Default::default()
    };
    let e = run_plan(&loaded, &opts, RunHooks::default()).unwrap_err();
    assert_eq!(exit::code_of(&e), exit::INVALID_INPUT);
    assert!(e.to_string().contains("no service `nope`"), "{e}");
    let opts = RunOptions {
        recipe: path,
        max_workers: Some(0),
        ..Default::default()
    };
    let e = run_plan(&loaded, &opts, RunHooks::default()).unwrap_err();
    assert_eq!(exit::code_of(&e), exit::INVALID_INPUT);
}
