//! Benchmark helper: push N request rows through the store writer as fast as one producer
//! can and report rows/s (time from the first send until everything is committed).
//! `store_writer DB_PATH [ROWS]`; rows go through a `RequestSink` (as the engine records them)
//! unless `FB_WRITER_CHANNEL=1` (one channel message per row).

#![allow(clippy::disallowed_macros)] // a benchmark tool, not the product

use factorybench::recipe::ServiceKind;
use factorybench::runner::client::Outcome;
use factorybench::store::{NewRun, RequestRow, RunStatus, Store};
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("writer.db"));
    let rows: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let store = Store::open(&path)?;
    let h = store.handle();
    let run_id = factorybench::store::new_run_id();
    h.create_run_sync(NewRun {
        run_id: run_id.clone(),
        campaign: "writer-bench".into(),
        service: "w".into(),
        service_kind: ServiceKind::Http,
        status: RunStatus::Running,
        started_ns: 0,
        arrival: "closed",
        clients: 1,
        target_rate: None,
        duration_s: 0.0,
        warmup_s: 0.0,
        seed: 0,
        sweep_param: None,
        sweep_value: None,
        recipe_json: "{}".into(),
        recipe_sha256: String::new(),
        host: factorybench::store::hostname(),
        tool_version: factorybench::version_string().into(),
        git_commit: None,
        slurm_job_id: None,
        slurm_array_task: None,
    })?;
    let id: Arc<str> = run_id.into();
    let o = Outcome {
        http_status: Some(200),
        bytes_received: 100,
        ..Outcome::ok("GET")
    };
    let channel = std::env::var("FB_WRITER_CHANNEL").is_ok_and(|v| v == "1");
    let sink = h.request_sink(&id, 16);
    let t0 = Instant::now();
    for i in 0..rows {
        let t = i as i64 * 1000;
        let row = RequestRow::from_outcome(
            id.clone(),
            (i % 16) as u32,
            i,
            t,
            t + 10,
            Some(t + 500),
            t + 900,
            false,
            &o,
        );
        if channel {
            h.request(row);
        } else {
            sink.push((i % 16) as usize, row);
        }
    }
    drop(sink);
    let sent = t0.elapsed();
    h.flush_sync()?;
    let total = t0.elapsed();
    drop(h);
    let stats = store.close()?;
    println!(
        "writer: {rows} rows committed in {:.2} s = {:.0} rows/s ({} transactions; producer enqueued at {:.0} rows/s)",
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        stats.transactions,
        rows as f64 / sent.as_secs_f64()
    );
    Ok(())
}
