//! Helpers for the LLM client tests: build a service from a recipe snippet, drive a client
//! through the engine's `Client`/`Worker` contract, and a scripted fixture server speaking
//! the OpenAI SSE, Ollama NDJSON and Triton (KServe v2 + generate extension) protocols over
//! raw HTTP/1.1, so a test can script delays, bad payloads and dropped connections.
#![allow(dead_code)]

use factorybench::recipe::{self, Service};
use factorybench::runner::client::{Client, Outcome, RequestCtx};
use factorybench::runner::clock::Clock;
use factorybench::runner::rng::Rng;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A service from the YAML of one `services:` entry (indented by 4 spaces).
pub fn service(entry: &str) -> Service {
    let text = format!(
        "benchmark:\n  name: llm-test\nglobal:\n  metrics_db: /tmp/unused-llm-test.db\nservices:\n  - {}\n",
        entry.trim_start()
    );
    let loaded = recipe::parse_str(&text, Path::new("llm-test.yml"))
        .unwrap_or_else(|e| panic!("recipe does not validate: {e}\n{text}"));
    loaded.plan.services.into_iter().next().unwrap()
}

/// One request as the engine would record it.
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: u64,
    pub sent_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub done_ns: i64,
    pub outcome: Outcome,
}

impl Row {
    pub fn ttft_ms(&self) -> f64 {
        (self.first_byte_ns.expect("first token") - self.sent_ns) as f64 / 1e6
    }
}

/// Drive `n` requests over `workers` concurrent workers (closed loop), like the engine does.
pub async fn drive(client: Arc<dyn Client>, n: u64, workers: u32) -> Vec<Row> {
    let clock = Clock::new();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut worker = client.connect(w).await.expect("connect");
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::for_stream(1, w as u64);
            let mut rows = Vec::new();
            loop {
                let seq = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seq >= n {
                    break;
                }
                let sent_ns = clock.now_ns();
                let mut ctx = RequestCtx {
                    worker: w,
                    seq,
                    rng: &mut rng,
                    clock: &clock,
                    sent_ns: clock.now_ns(),
                    first_byte_ns: None,
                };
                let outcome = worker.request(&mut ctx).await;
                let first_byte_ns = ctx.first_byte_ns;
                rows.push(Row {
                    seq,
                    sent_ns,
                    first_byte_ns,
                    done_ns: clock.now_ns(),
                    outcome,
                });
            }
            rows
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.extend(t.await.unwrap());
    }
    rows.sort_by_key(|r| r.seq);
    rows
}

/// What the fixture does for a generation request.
#[derive(Debug, Clone)]
pub enum Script {
    /// Stream `tokens` tokens: the first after `ttft_ms`, then one every `itl_ms`.
    Tokens {
        tokens: u32,
        ttft_ms: u64,
        itl_ms: u64,
    },
    /// A well-formed stream with no token text and a completion count of 0.
    ZeroTokens,
    /// 200 with an empty body.
    Empty,
    /// One token, then an error payload inside the 200 stream, then the end marker.
    ErrorInStream,
    /// `tokens` tokens, then the connection is dropped without ending the body.
    KillAfter { tokens: u32 },
    /// A non-2xx status.
    Status(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Ollama,
    Triton,
}

/// Start a fixture on an ephemeral loopback port; returns its base URL.
pub async fn fixture(dialect: Dialect, model: &str, script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let model = model.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            let model = model.clone();
            tokio::spawn(async move {
                let _ = serve_conn(sock, dialect, &model, &script).await;
            });
        }
    });
    url
}

async fn read_request(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, String)>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut tmp = [0u8; 4096];
                let n = sock.read(&mut tmp).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            buf.drain(..end + 4 + len);
            let line = head.lines().next().unwrap_or("").to_string();
            return Ok(Some((line, body)));
        }
        let mut tmp = [0u8; 4096];
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn respond_json(sock: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await
}

async fn chunk(sock: &mut TcpStream, data: &str) -> std::io::Result<()> {
    sock.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
}

async fn serve_conn(
    mut sock: TcpStream,
    dialect: Dialect,
    model: &str,
    script: &Script,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some((line, _body)) = read_request(&mut sock, &mut buf).await? {
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        match (dialect, path.as_str()) {
            (Dialect::OpenAi, "/v1/models") => {
                respond_json(
                    &mut sock,
                    200,
                    &format!(r#"{{"object":"list","data":[{{"id":"{model}","object":"model"}}]}}"#),
                )
                .await?;
                continue;
            }
            (Dialect::Ollama, "/api/tags") => {
                respond_json(
                    &mut sock,
                    200,
                    &format!(r#"{{"models":[{{"name":"{model}","model":"{model}"}}]}}"#),
                )
                .await?;
                continue;
            }
            (Dialect::Triton, "/v2/health/ready") => {
                respond_json(&mut sock, 200, "").await?;
                continue;
            }
            (Dialect::Triton, p) if p == format!("/v2/models/{model}/ready") => {
                respond_json(&mut sock, 200, "").await?;
                continue;
            }
            (Dialect::Triton, p) if p.ends_with("/ready") => {
                respond_json(&mut sock, 404, r#"{"error":"unknown model"}"#).await?;
                continue;
            }
            _ => {}
        }
        if let Script::Status(code) = script {
            respond_json(&mut sock, *code, r#"{"error":"scripted failure"}"#).await?;
            continue;
        }
        let infer = path.ends_with("/infer");
        if infer {
            if let Script::Tokens {
                tokens, ttft_ms, ..
            } = script
            {
                tokio::time::sleep(Duration::from_millis(*ttft_ms)).await;
                let words: Vec<String> = (0..*tokens).map(|i| format!("w{i}")).collect();
                let body = format!(
                    r#"{{"model_name":"{model}","outputs":[{{"name":"text_output","datatype":"BYTES","shape":[1,1],"data":["{}"]}}]}}"#,
                    words.join(" ")
                );
                respond_json(&mut sock, 200, &body).await?;
                continue;
            }
        }
        let ctype = if dialect == Dialect::Ollama {
            "application/x-ndjson"
        } else {
            "text/event-stream"
        };
        sock.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let token = |i: u32| {
            match dialect {
            Dialect::OpenAi => format!("data: {{\"choices\":[{{\"index\":0,\"text\":\" t{i}\",\"finish_reason\":null}}]}}\n\n"),
            Dialect::Ollama => format!("{{\"model\":\"{model}\",\"response\":\" t{i}\",\"done\":false}}\n"),
            Dialect::Triton => format!("data: {{\"model_name\":\"{model}\",\"text_output\":\" t{i}\"}}\n\n"),
        }
        };
        let end = |n: u32| {
            match dialect {
            Dialect::OpenAi => format!(
                "data: {{\"choices\":[{{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{n}}}}}\n\ndata: [DONE]\n\n"
            ),
            Dialect::Ollama => format!(
                "{{\"model\":\"{model}\",\"response\":\"\",\"done\":true,\"prompt_eval_count\":3,\"eval_count\":{n}}}\n"
            ),
            Dialect::Triton => String::new(),
        }
        };
        let error = match dialect {
            Dialect::OpenAi => {
                "data: {\"error\":{\"message\":\"scripted engine failure\",\"code\":500}}\n\n"
                    .to_string()
            }
            Dialect::Ollama => "{\"error\":\"scripted engine failure\"}\n".to_string(),
            Dialect::Triton => "data: {\"error\":\"scripted engine failure\"}\n\n".to_string(),
        };
        match script {
            Script::Tokens {
                tokens,
                ttft_ms,
                itl_ms,
            } => {
                tokio::time::sleep(Duration::from_millis(*ttft_ms)).await;
                for i in 0..*tokens {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(*itl_ms)).await;
                    }
                    chunk(&mut sock, &token(i)).await?;
                }
                let e = end(*tokens);
                if !e.is_empty() {
                    chunk(&mut sock, &e).await?;
                }
            }
            Script::ZeroTokens => chunk(&mut sock, &end(0)).await?,
            Script::Empty => {}
            Script::ErrorInStream => {
                chunk(&mut sock, &token(0)).await?;
                chunk(&mut sock, &error).await?;
                let e = end(1);
                if !e.is_empty() {
                    chunk(&mut sock, &e).await?;
                }
            }
            Script::KillAfter { tokens } => {
                for i in 0..*tokens {
                    chunk(&mut sock, &token(i)).await?;
                }
                sock.flush().await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                // Drop the connection mid-body, as a killed server does.
                return Ok(());
            }
            Script::Status(_) => unreachable!(),
        }
        sock.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}
