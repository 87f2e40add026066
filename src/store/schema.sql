-- factorybench campaign file, schema version 1.
-- All times are Unix-epoch nanoseconds (INTEGER) from one monotonic clock per run.
-- A local `run` writes global.metrics_db; each SLURM job writes its own file
-- <campaign>/runs/<service>-<jobid>[_<task>].db with this same schema (SQLite WAL is unsafe
-- on Lustre/NFS), and readers treat a campaign as the union of its files.

CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- One row per run of one service (a sweep task is its own run).
CREATE TABLE IF NOT EXISTS runs (
  run_id            TEXT PRIMARY KEY,          -- uuid-like, unique across files
  campaign          TEXT NOT NULL,             -- benchmark.name or campaign dir name
  service           TEXT NOT NULL,
  service_kind      TEXT NOT NULL,             -- ServiceKind::as_str
  status            TEXT NOT NULL CHECK (status IN ('pending','running','success','partial','failed')),
  failure_stage     TEXT CHECK (failure_stage IN ('setup','load','benchmark','collect')),
  failure_message   TEXT,
  stop_reason       TEXT,                      -- completed | duration | requests | signal:TERM | signal:INT | signal:USR1 | max_error_rate
  started_ns        INTEGER NOT NULL,
  measure_start_ns  INTEGER,                   -- end of warmup
  ended_ns          INTEGER,
  arrival           TEXT NOT NULL,             -- constant | poisson | closed
  clients           INTEGER NOT NULL,
  target_rate       REAL,                      -- total req/s; NULL for unthrottled closed loop
  duration_s        REAL NOT NULL,
  warmup_s          REAL NOT NULL,
  seed              INTEGER NOT NULL,
  sweep_param       TEXT,
  sweep_value       TEXT,
  recipe_json       TEXT NOT NULL,             -- resolved plan of this service, secrets redacted
  recipe_sha256     TEXT NOT NULL,
  host              TEXT NOT NULL,
  tool_version      TEXT NOT NULL,
  git_commit        TEXT,
  slurm_job_id      TEXT,
  slurm_array_task  INTEGER,
  cpu_user_s        REAL,                      -- the runner's own CPU use
  cpu_system_s      REAL
);

-- Every request, warmup included (warmup = 1 rows are excluded from results).
CREATE TABLE IF NOT EXISTS requests (
  id              INTEGER PRIMARY KEY,
  run_id          TEXT NOT NULL REFERENCES runs(run_id),
  worker          INTEGER NOT NULL,
  seq             INTEGER NOT NULL,
  op              TEXT NOT NULL,
  scheduled_ns    INTEGER NOT NULL,            -- intended start (open loop) = sent for closed loop
  sent_ns         INTEGER NOT NULL,
  first_byte_ns   INTEGER,                     -- first byte / first token / first result
  done_ns         INTEGER NOT NULL,
  ok              INTEGER NOT NULL,            -- 1 success, 0 error
  error_class     TEXT,                        -- ErrorClass::as_str
  http_status     INTEGER,
  size_bytes      INTEGER NOT NULL DEFAULT 0,
  bytes_sent      INTEGER NOT NULL DEFAULT 0,
  bytes_received  INTEGER NOT NULL DEFAULT 0,
  warmup          INTEGER NOT NULL DEFAULT 0,
  input_tokens    INTEGER,
  output_tokens   INTEGER,
  tokens_from_server INTEGER,                  -- 1 server-reported, 0 counted by the client
  itl_us          BLOB                         -- inter-token gaps, little-endian u32 microseconds
);
CREATE INDEX IF NOT EXISTS requests_run ON requests(run_id, scheduled_ns);

-- 1 s time series: achieved rate, in-flight, schedule lag, CPU, GPU, ...
CREATE TABLE IF NOT EXISTS samples (
  run_id  TEXT NOT NULL REFERENCES runs(run_id),
  t_ns    INTEGER NOT NULL,
  name    TEXT NOT NULL,                       -- e.g. achieved_rps, in_flight, schedule_lag_p99_ms, gpu0_util_percent
  value   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id, name, t_ns);

-- Serialized HDR histograms (V2 format), per worker, mergeable across runs and nodes.
CREATE TABLE IF NOT EXISTS histograms (
  run_id   TEXT NOT NULL REFERENCES runs(run_id),
  worker   INTEGER NOT NULL,                   -- -1 = merged over workers
  name     TEXT NOT NULL,                      -- latency_corrected_us | latency_service_us | ttft_us | ...
  op       TEXT,                               -- NULL = all operations
  encoded  BLOB NOT NULL
);

-- Figures measured outside the timed region (recall_at_k, server-side counters, ...).
CREATE TABLE IF NOT EXISTS run_metrics (
  run_id  TEXT NOT NULL REFERENCES runs(run_id),
  name    TEXT NOT NULL,
  value   REAL NOT NULL,
  unit    TEXT NOT NULL
);

-- SLURM jobs of a campaign (written by `submit`).
CREATE TABLE IF NOT EXISTS jobs (
  job_id        TEXT NOT NULL,
  service       TEXT NOT NULL,                 -- service name, or `monitor` / `report`
  role          TEXT NOT NULL,                 -- service | monitor | report
  array_size    INTEGER,
  script_path   TEXT NOT NULL,
  submitted_ns  INTEGER NOT NULL,
  depends_on    TEXT                           -- afterok job ids, comma-separated
);
