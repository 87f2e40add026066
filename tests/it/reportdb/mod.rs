//! Builds campaign files from `src/store/schema.sql` with known rows (report tests).
#![allow(dead_code)]

use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

pub const SCHEMA: &str = include_str!("../../../src/store/schema.sql");
/// 2023-11-14T22:13:20Z in ns: a round start time for test runs.
pub const T0: i64 = 1_700_000_000_000_000_000;
pub const MS: i64 = 1_000_000;
pub const US: i64 = 1_000;
pub const S: i64 = 1_000_000_000;

pub struct TestDb {
    pub path: PathBuf,
    pub conn: Connection,
}

#[derive(Clone)]
pub struct RunSpec {
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub kind: String,
    pub status: String,
    pub stop_reason: Option<String>,
    pub started_ns: i64,
    pub measure_start_ns: Option<i64>,
    pub ended_ns: Option<i64>,
    pub arrival: String,
    pub clients: i64,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub recipe_json: String,
    pub host: String,
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
}

impl RunSpec {
    pub fn new(run_id: &str, service: &str, kind: &str) -> Self {
        RunSpec {
            run_id: run_id.into(),
            campaign: "test-campaign".into(),
            service: service.into(),
            kind: kind.into(),
            status: "success".into(),
            stop_reason: Some("duration".into()),
            started_ns: T0,
            measure_start_ns: Some(T0 + S),
            ended_ns: Some(T0 + 11 * S),
            arrival: "constant".into(),
            clients: 4,
            target_rate: Some(100.0),
            duration_s: 10.0,
            warmup_s: 1.0,
            sweep_param: None,
            sweep_value: None,
            recipe_json: format!(
                r#"{{"name":"{service}","kind":"{kind}","load":{{"clients":4}}}}"#
            ),
            host: "node001".into(),
            slurm_job_id: None,
            slurm_array_task: None,
        }
    }
}

#[derive(Clone, Default)]
pub struct Req {
    pub worker: i64,
    pub op: String,
    pub scheduled_ns: i64,
    pub sent_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub done_ns: i64,
    pub ok: bool,
    pub error_class: Option<String>,
    pub bytes_sent: i64,
    pub bytes_received: i64,
    pub warmup: bool,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub tokens_from_server: Option<i64>,
    pub itl_us: Option<Vec<u32>>,
}

impl Req {
    /// A successful request: scheduled at `t`, sent `lag` later, done `service` after sending.
    pub fn ok(op: &str, t: i64, lag: i64, service: i64) -> Self {
        Req {
            op: op.into(),
            scheduled_ns: t,
            sent_ns: t + lag,
            done_ns: t + lag + service,
            ok: true,
            ..Default::default()
        }
    }

    pub fn err(op: &str, t: i64, class: &str) -> Self {
        Req {
            op: op.into(),
            scheduled_ns: t,
            sent_ns: t,
            done_ns: t + MS,
            ok: false,
            error_class: Some(class.into()),
            ..Default::default()
        }
    }
}

impl TestDb {
    pub fn create(path: &Path) -> Self {
        let conn = Connection::open(path).expect("create db");
        conn.execute_batch(SCHEMA).expect("schema");
        TestDb {
            path: path.to_path_buf(),
            conn,
        }
    }

    pub fn add_run(&self, r: &RunSpec) {
        self.conn
            .execute(
                "INSERT INTO runs (run_id, campaign, service, service_kind, status, stop_reason, \
                 started_ns, measure_start_ns, ended_ns, arrival, clients, target_rate, duration_s, \
                 warmup_s, seed, sweep_param, sweep_value, recipe_json, recipe_sha256, host, \
                 tool_version, git_commit, slurm_job_id, slurm_array_task, cpu_user_s, cpu_system_s) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,42,?15,?16,?17,?18,?19,'0.1.0','abc1234',?20,?21,1.5,0.5)",
                params![
                    r.run_id,
                    r.campaign,
                    r.service,
                    r.kind,
                    r.status,
                    r.stop_reason,
                    r.started_ns,
                    r.measure_start_ns,
                    r.ended_ns,
                    r.arrival,
                    r.clients,
                    r.target_rate,
                    r.duration_s,
                    r.warmup_s,
                    r.sweep_param,
                    r.sweep_value,
                    r.recipe_json,
                    hex_sha256(r.recipe_json.as_bytes()),
                    r.host,
                    r.slurm_job_id,
                    r.slurm_array_task,
                ],
            )
            .expect("insert run");
    }

    pub fn add_requests(&mut self, run_id: &str, reqs: &[Req]) {
        let tx = self.conn.transaction().expect("tx");
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO requests (run_id, worker, seq, op, scheduled_ns, sent_ns, \
                     first_byte_ns, done_ns, ok, error_class, bytes_sent, bytes_received, warmup, \
                     input_tokens, output_tokens, tokens_from_server, itl_us) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)",
                )
                .expect("prepare");
            for (i, q) in reqs.iter().enumerate() {
                let itl: Option<Vec<u8>> = q
                    .itl_us
                    .as_ref()
                    .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect());
                st.execute(params![
                    run_id,
                    q.worker,
                    i as i64,
                    q.op,
                    q.scheduled_ns,
                    q.sent_ns,
                    q.first_byte_ns,
                    q.done_ns,
                    q.ok as i64,
                    q.error_class,
                    q.bytes_sent,
                    q.bytes_received,
                    q.warmup as i64,
                    q.input_tokens,
                    q.output_tokens,
                    q.tokens_from_server,
                    itl,
                ])
                .expect("insert request");
            }
        }
        tx.commit().expect("commit");
    }

    pub fn add_sample(&self, run_id: &str, t_ns: i64, name: &str, value: f64) {
        self.conn
            .execute(
                "INSERT INTO samples (run_id, t_ns, name, value) VALUES (?1,?2,?3,?4)",
                params![run_id, t_ns, name, value],
            )
            .expect("insert sample");
    }

    pub fn add_metric(&self, run_id: &str, name: &str, value: f64, unit: &str) {
        self.conn
            .execute(
                "INSERT INTO run_metrics (run_id, name, value, unit) VALUES (?1,?2,?3,?4)",
                params![run_id, name, value, unit],
            )
            .expect("insert metric");
    }

    pub fn add_histogram(&self, run_id: &str, worker: i64, name: &str, encoded: &[u8]) {
        self.conn
            .execute(
                "INSERT INTO histograms (run_id, worker, name, op, encoded) VALUES (?1,?2,?3,NULL,?4)",
                params![run_id, worker, name, encoded],
            )
            .expect("insert histogram");
    }
}

pub fn hex_sha256(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

/// The standard run used by many tests: service `api` (http), target 100 req/s over a 10 s
/// window; 1000 successful `GET`s with 0.1 ms schedule lag and service times 1..=1000 µs
/// (corrected 101..=1100 µs), 5 `timeout` + 5 `connect` errors, 20 warmup rows (excluded),
/// 1000 bytes sent and 3000 received per successful request.
pub fn standard_http(dir: &Path) -> PathBuf {
    let path = dir.join("std.db");
    let mut db = TestDb::create(&path);
    db.add_run(&RunSpec::new("run-std", "api", "http"));
    let mut reqs = Vec::new();
    for i in 0..20 {
        let mut r = Req::ok("GET", T0 + i * 10 * MS, 0, 50 * MS);
        r.warmup = true;
        reqs.push(r);
    }
    for i in 0..1000i64 {
        let mut r = Req::ok("GET", T0 + S + i * 10 * MS, 100 * US, (i + 1) * US);
        r.bytes_sent = 1000;
        r.bytes_received = 3000;
        r.worker = i % 4;
        reqs.push(r);
    }
    for i in 0..5i64 {
        reqs.push(Req::err("GET", T0 + S + i * 10 * MS + 5 * MS, "timeout"));
        reqs.push(Req::err("POST", T0 + S + i * 10 * MS + 6 * MS, "connect"));
    }
    db.add_requests("run-std", &reqs);
    path
}

/// An LLM run (`chat`, vllm) in its own file: 100 requests at 10 req/s, TTFT from sent
/// 10·(i%10+1) ms, 10 output tokens with 9 gaps of 5 ms (2 ms every 10th request), SLO
/// TTFT ≤ 50 ms and TPOT ≤ 4 ms (10 good requests), 32 input tokens each, GPU samples.
pub fn standard_llm(path: &Path, min_requests_ok: bool) -> PathBuf {
    let mut db = TestDb::create(path);
    let mut spec = RunSpec::new("run-llm", "chat", "vllm");
    spec.target_rate = Some(10.0);
    spec.recipe_json = r#"{"name":"chat","kind":"vllm","workload":{"kind":"llm","slo":{"ttft_ms":50.0,"tpot_ms":4.0}},"load":{"max_error_rate":0.05}}"#.into();
    db.add_run(&spec);
    let n = if min_requests_ok { 100 } else { 50 };
    let mut reqs = Vec::new();
    for i in 0..n {
        let t = T0 + S + i * (10 * S / n);
        let ttft = 10 * MS * (i % 10 + 1);
        let gap_us: u32 = if i % 10 == 0 { 2000 } else { 5000 };
        let done = t + MS + ttft + 9 * gap_us as i64 * US;
        reqs.push(Req {
            op: "generate".into(),
            scheduled_ns: t,
            sent_ns: t + MS,
            first_byte_ns: Some(t + MS + ttft),
            done_ns: done,
            ok: true,
            input_tokens: Some(32),
            output_tokens: Some(10),
            tokens_from_server: Some(1),
            itl_us: Some(vec![gap_us; 9]),
            ..Default::default()
        });
    }
    db.add_requests("run-llm", &reqs);
    for s in 0..=10 {
        db.add_sample(
            "run-llm",
            T0 + S + s * S,
            "gpu0_util_percent",
            50.0 + s as f64,
        );
        db.add_sample("run-llm", T0 + S + s * S, "gpu0_power_watts", 100.0);
    }
    path.to_path_buf()
}

/// A campaign directory: runs/api-1.db (standard_http) and runs/chat-2.db (standard_llm).
pub fn standard_campaign(dir: &Path) -> PathBuf {
    let c = dir.join("campaign");
    let runs = c.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let p = standard_http(dir);
    std::fs::rename(p, runs.join("api-1.db")).unwrap();
    standard_llm(&runs.join("chat-2.db"), true);
    std::fs::write(c.join("recipe.yml"), "benchmark:\n  name: test-campaign\n").unwrap();
    c
}

/// The standard http run with every service time multiplied by `factor` (a slowed candidate).
pub fn slowed_http(path: &Path, factor: i64) -> PathBuf {
    let mut db = TestDb::create(path);
    db.add_run(&RunSpec::new("run-slow", "api", "http"));
    let reqs: Vec<Req> = (0..1000i64)
        .map(|i| {
            let mut r = Req::ok("GET", T0 + S + i * 10 * MS, 100 * US, (i + 1) * US * factor);
            r.bytes_sent = 1000;
            r.bytes_received = 3000;
            r
        })
        .collect();
    db.add_requests("run-slow", &reqs);
    path.to_path_buf()
}
