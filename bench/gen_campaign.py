#!/usr/bin/env python3
"""Generate a synthetic campaign directory (runs/*.db, schema.sql) for report benchmarks/demos.

usage: gen_campaign.py OUT_DIR TOTAL_REQUESTS [--slow FACTOR] [--seed N] [--llm-share 0.1]

Three services: `api` (http, GET/POST), `store` (s3, get/put, 2 array tasks = 2 files) and
`chat` (vllm, streamed tokens with ITL blobs and GPU samples). Deterministic for a seed.
`--slow 2` multiplies every service time by 2 (a deliberately slowed candidate).
"""
import json, hashlib, os, random, sqlite3, struct, sys

args = sys.argv[1:]
if len(args) < 2:
    sys.exit(__doc__)
out, total = args[0], int(args[1])
slow = float(args[args.index("--slow") + 1]) if "--slow" in args else 1.0
seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 1
rng = random.Random(seed)
schema = open(os.path.join(os.path.dirname(__file__), "..", "src", "store", "schema.sql")).read()
os.makedirs(os.path.join(out, "runs"), exist_ok=True)
T0 = 1_700_000_000_000_000_000
S = 1_000_000_000

def run_row(db, run_id, service, kind, rate, dur, recipe, job, task):
    rj = json.dumps(recipe, sort_keys=True)
    db.execute(
        "INSERT INTO runs VALUES (" + ",".join("?" * 28) + ")",
        (run_id, "synthetic-campaign", service, kind, "success", None, None, "duration",
         T0, T0 + 2 * S, T0 + (2 + dur) * S, "poisson", 8, rate, float(dur), 2.0, seed,
         "rate" if task is not None else None, str(rate) if task is not None else None,
         rj, hashlib.sha256(rj.encode()).hexdigest(), "node%03d" % (1 + (task or 0)), "0.1.0",
         "synthetic", job, task, 1.0, 0.2))

# A pool of inter-token gap sequences (µs), reused across requests to keep generation fast.
GAPS = []
for _ in range(256):
    g = [max(1, int(rng.lognormvariate(0, 0.3) * 12_000 * slow)) for _ in range(127)]
    GAPS.append((struct.pack("<127I", *g), sum(g)))


def gen(path, run_id, service, kind, n, ops, mean_ms, llm=False, job="1000", task=None):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.executescript(schema)
    db.execute("PRAGMA synchronous=OFF")
    rate = 200.0 if llm else 5000.0
    dur = max(10, int(n / rate))
    rate = n / dur
    recipe = {"name": service, "kind": kind, "load": {"max_error_rate": 0.02},
              "workload": {"kind": "llm", "slo": {"ttft_ms": 200.0, "tpot_ms": 25.0}} if llm else {"kind": kind}}
    run_row(db, run_id, service, kind, rate, dur, recipe, job, task)
    rows = []
    t = T0 + 2 * S
    step = dur * S / n
    for i in range(n):
        sched = int(t + i * step)
        lag = int(rng.expovariate(1 / 20_000))  # 20 us mean
        sent = sched + lag
        svc = int(rng.lognormvariate(0, 0.5) * mean_ms * 1e6 * slow)
        ok = 0 if rng.random() < 0.002 else 1
        op = ops[i % len(ops)]
        if llm:
            out_tok = rng.randint(32, 128)
            ttft = int(svc * 0.3)
            blob, gap_sum = GAPS[(i * 7919 + out_tok) % len(GAPS)]
            blob = blob[: 4 * (out_tok - 1)]
            gap_sum = sum(struct.unpack("<%dI" % (out_tok - 1), blob))
            done = sent + ttft + gap_sum * 1000
            rows.append((run_id, i % 8, i, op, sched, sent, sent + ttft, done, ok, None if ok else "timeout",
                         None, 0, 200, 2000, 0, 64, out_tok, 1, blob))
        else:
            done = sent + svc
            size = 4096 if op in ("put", "POST") else 0
            rows.append((run_id, i % 8, i, op, sched, sent, done - svc // 3, done, ok, None if ok else "connect",
                         200 if ok else None, size, 300 + size, 4096 if op in ("get", "GET") else 200, 0,
                         None, None, None, None))
        if len(rows) >= 50_000:
            db.executemany("INSERT INTO requests (run_id,worker,seq,op,scheduled_ns,sent_ns,first_byte_ns,done_ns,ok,error_class,http_status,size_bytes,bytes_sent,bytes_received,warmup,input_tokens,output_tokens,tokens_from_server,itl_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            rows = []
    if rows:
        db.executemany("INSERT INTO requests (run_id,worker,seq,op,scheduled_ns,sent_ns,first_byte_ns,done_ns,ok,error_class,http_status,size_bytes,bytes_sent,bytes_received,warmup,input_tokens,output_tokens,tokens_from_server,itl_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    if llm:
        for s in range(dur + 1):
            ts = T0 + (2 + s) * S
            db.execute("INSERT INTO samples VALUES (?,?,?,?)", (run_id, ts, "gpu0_util_percent", 60 + 30 * rng.random()))
            db.execute("INSERT INTO samples VALUES (?,?,?,?)", (run_id, ts, "gpu0_power_watts", 250 + 50 * rng.random()))
    else:
        db.execute("INSERT INTO run_metrics VALUES (?,?,?,?)", (run_id, "server_connections_max", 8, "count"))
    db.commit()
    db.close()

llm_share = float(args[args.index("--llm-share") + 1]) if "--llm-share" in args else 0.1
n_api = int(total * (1 - llm_share) * 5 / 9)
n_store = int(total * (1 - llm_share) * 4 / 9)
n_chat = total - n_api - n_store
gen(os.path.join(out, "runs", "api-1000.db"), "api-1000", "api", "http", n_api, ["GET", "GET", "GET", "POST"], 2.0)
gen(os.path.join(out, "runs", "store-1001_0.db"), "store-1001-0", "store", "s3", n_store // 2, ["get", "put"], 5.0, job="1001", task=0)
gen(os.path.join(out, "runs", "store-1001_1.db"), "store-1001-1", "store", "s3", n_store - n_store // 2, ["get", "put"], 5.0, job="1001", task=1)
gen(os.path.join(out, "runs", "chat-1002.db"), "chat-1002", "chat", "vllm", n_chat, ["generate"], 400.0, llm=True, job="1002")
print("wrote", out, total, "requests")
