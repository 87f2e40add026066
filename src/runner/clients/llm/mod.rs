//! LLM inference clients: Ollama (native NDJSON streaming), vLLM and any OpenAI-compatible
//! server (SSE streaming with usage), Triton (KServe v2 infer and the generate extension).
//!
//! One request = one streamed generation. The client marks the first token as the request's
//! first byte, records the time of every later token chunk (for ITL), takes token counts from
//! the server when it reports them (else counts chunks), and turns every way a response can be
//! wrong into a failed request, never a fast success:
//!
//! | what happened | error class |
//! |---|---|
//! | connection refused | `connect` |
//! | per-request timeout (`timeout` of the service) | `timeout` |
//! | non-2xx status | `http_status` (`auth` for 401/403) |
//! | connection dropped mid-stream (server killed) | `io`, with every token received so far kept |
//! | error payload inside a 200 stream, invalid JSON frame, empty stream, stream ended before the protocol's end marker | `protocol` |
//! | zero output tokens (server count 0, or no token text at all) | `validation` |
//!
//! Metric definitions: [`metrics`]. Prompts and output lengths: [`prompts`].

pub mod metrics;
pub mod prompts;
pub mod protocol;
pub mod stream;

use super::super::client::{
    BoxFuture, Client, ClientError, ErrorClass, LlmOutcome, Outcome, RequestCtx, RunMetric, Worker,
};
use crate::recipe::{LlmApi, LlmWorkload, PromptSource, Service, ServiceKind, Workload};
use prompts::{PromptSpec, Prompts};
use protocol::{Event, ServerTiming};
use serde_json::Value;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use stream::{Frame, Framer};

/// Build the LLM client of a service (no I/O).
pub fn make(svc: &Service) -> Result<Arc<dyn Client>, ClientError> {
    Ok(Arc::new(LlmClient::new(svc)?))
}

/// The client of one LLM service. `connect` hands out workers sharing one connection pool.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ServiceKind,
    api: LlmApi,
    base: String,
    w: LlmWorkload,
    seed: u64,
    timeout: Duration,
    http: reqwest::Client,
    api_key: Option<String>,
    prompts: OnceLock<Prompts>,
    stats: Mutex<ServerStats>,
}

/// Server-reported timings next to the client's own measurement of the same requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    /// Successful requests whose response carried server timings.
    pub requests: u64,
    pub server_ttft_ms_sum: f64,
    /// The client's TTFT (request start in the client → first token chunk) of the same requests.
    pub client_ttft_ms_sum: f64,
    pub server_decode_ms_sum: f64,
    /// The client's first → last token chunk of the same requests.
    pub client_decode_ms_sum: f64,
    pub server_output_tokens: u64,
    /// Token chunks the client saw in the same requests.
    pub client_token_chunks: u64,
}

impl ServerStats {
    pub fn mean(sum: f64, n: u64) -> Option<f64> {
        (n > 0).then(|| sum / n as f64)
    }

    fn metrics(&self) -> Vec<RunMetric> {
        let n = self.requests;
        let mut out = vec![RunMetric {
            name: "server_timed_requests".into(),
            value: n as f64,
            unit: "requests".into(),
        }];
        if n == 0 {
            return out;
        }
        let mut push = |name: &str, value: f64, unit: &str| {
            out.push(RunMetric {
                name: name.into(),
                value,
                unit: unit.into(),
            })
        };
        push(
            "server_ttft_ms_mean",
            self.server_ttft_ms_sum / n as f64,
            "ms",
        );
        push(
            "client_ttft_ms_mean_same_requests",
            self.client_ttft_ms_sum / n as f64,
            "ms",
        );
        push(
            "server_decode_ms_mean",
            self.server_decode_ms_sum / n as f64,
            "ms",
        );
        push(
            "client_decode_ms_mean_same_requests",
            self.client_decode_ms_sum / n as f64,
            "ms",
        );
        push(
            "server_output_tokens",
            self.server_output_tokens as f64,
            "tokens",
        );
        push(
            "client_token_chunks_same_requests",
            self.client_token_chunks as f64,
            "chunks",
        );
        out
    }
}

fn setup_err(class: ErrorClass, msg: impl Into<String>) -> ClientError {
    ClientError::new(class, "setup", msg)
}

impl LlmClient {
    pub fn new(svc: &Service) -> Result<Self, ClientError> {
        let Workload::Llm(w) = &svc.workload else {
            return Err(setup_err(
                ErrorClass::Other,
                format!("service {} has no LLM workload", svc.name),
            ));
        };
        let base = svc
            .endpoint
            .url
            .clone()
            .ok_or_else(|| {
                setup_err(
                    ErrorClass::Other,
                    format!("service {} has neither service_url nor port", svc.name),
                )
            })?
            .trim_end_matches('/')
            .to_string();
        let api_key = match &w.api_key {
            None => None,
            Some(s) => Some(s.resolve().map_err(|e| {
                setup_err(ErrorClass::Auth, format!("api_key of {}: {e}", svc.name))
            })?),
        };
        let timeout = Duration::from_secs_f64(svc.load.timeout_s.max(0.001));
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .pool_idle_timeout(super::util::POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| setup_err(ErrorClass::Other, format!("HTTP client: {e}")))?;
        Ok(LlmClient {
            inner: Arc::new(Inner {
                kind: svc.kind,
                api: w.api,
                base,
                w: w.clone(),
                seed: svc.load.seed,
                timeout,
                http,
                api_key,
                prompts: OnceLock::new(),
                stats: Mutex::new(ServerStats::default()),
            }),
        })
    }

    /// Server timings vs the client's measurement so far (also reported by `teardown`).
    pub fn server_stats(&self) -> ServerStats {
        self.inner.stats.lock().expect("stats lock").clone()
    }

    /// The prompt and output length request `seq` gets (after `setup`).
    pub fn prompt_for(&self, seq: u64) -> Option<PromptSpec> {
        let p = self.inner.prompts.get()?;
        Some(p.for_request(self.inner.seed, seq, &self.inner.w.output_tokens))
    }
}

impl Client for LlmClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(self.inner.setup())
    }

    fn connect(&self, _worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(Box::new(LlmWorker { inner }) as Box<dyn Worker>) })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        let m = self.server_stats().metrics();
        Box::pin(async move { Ok(m) })
    }

    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async move {
            let i = &self.inner;
            let auth = i.api_key.as_ref().map(|k| format!("Bearer {k}"));
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            let (path, product) = match i.api {
                LlmApi::OllamaGenerate | LlmApi::OllamaChat => ("/api/version", "ollama"),
                LlmApi::TritonGenerate | LlmApi::TritonInfer => ("/v2", "triton"),
                // vLLM answers `/version`; other OpenAI-compatible servers may not.
                LlmApi::Completions | LlmApi::ChatCompletions => ("/version", "openai-compatible"),
            };
            let mut f = super::util::http_version_facts(
                &i.http,
                &format!("{}{path}", i.base),
                Some("version"),
                &headers,
            )
            .await;
            if !f.contains_key("service.version") && !f.contains_key("service.server") {
                // llama.cpp's server tells its build in `/props`.
                f.extend(
                    super::util::http_version_facts(
                        &i.http,
                        &format!("{}/props", i.base),
                        Some("build_info"),
                        &headers,
                    )
                    .await,
                );
            }
            f.insert("service.product".into(), product.into());
            f.insert("service.model".into(), i.w.model.clone());
            f
        })
    }
}

struct LlmWorker {
    inner: Arc<Inner>,
}

impl Worker for LlmWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.inner.request(ctx))
    }
}

/// What a response stream delivered, accumulated frame by frame.
#[derive(Debug, Default, Clone)]
pub struct StreamState {
    pub frames: u64,
    pub token_chunks: u64,
    pub counted_tokens: u64,
    pub first_token_ns: Option<i64>,
    pub last_token_ns: Option<i64>,
    /// Times of every token chunk after the first.
    pub later_token_ns: Vec<i64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub server_timing: Option<ServerTiming>,
    pub done: bool,
    pub error: Option<String>,
    pub protocol_error: Option<String>,
}

impl StreamState {
    /// Apply the frames of one network read received at `now_ns`.
    pub fn on_frames(&mut self, api: LlmApi, frames: &[Frame], now_ns: i64) {
        let mut events = Vec::new();
        for f in frames {
            self.frames += 1;
            if let Err(e) = protocol::parse_frame(api, f, &mut events) {
                self.protocol_error.get_or_insert(e);
            }
        }
        for e in events {
            match e {
                Event::Token { tokens } => {
                    self.token_chunks += 1;
                    self.counted_tokens += tokens;
                    if self.first_token_ns.is_none() {
                        self.first_token_ns = Some(now_ns);
                    } else {
                        self.later_token_ns.push(now_ns);
                    }
                    self.last_token_ns = Some(now_ns);
                }
                Event::Usage {
                    prompt_tokens,
                    completion_tokens,
                } => {
                    self.prompt_tokens = prompt_tokens.or(self.prompt_tokens);
                    self.completion_tokens = completion_tokens.or(self.completion_tokens);
                }
                Event::ServerTiming(t) => self.server_timing = Some(t),
                Event::Done => self.done = true,
                Event::Error(m) => {
                    self.error.get_or_insert(m);
                }
            }
        }
    }

    /// The LLM part of the outcome (kept for failed requests too).
    pub fn llm_outcome(&self, approx_input_tokens: u64) -> LlmOutcome {
        let from_server = self.completion_tokens.is_some();
        LlmOutcome {
            input_tokens: Some(self.prompt_tokens.unwrap_or(approx_input_tokens)),
            output_tokens: Some(self.completion_tokens.unwrap_or(self.counted_tokens)),
            tokens_from_server: from_server,
            token_times_ns: self.later_token_ns.clone(),
        }
    }

    /// Judge the finished stream. `transport` = an error reading the body.
    pub fn verdict(
        &self,
        api: LlmApi,
        transport: Option<(ErrorClass, String)>,
    ) -> Option<(ErrorClass, String)> {
        if let Some(t) = transport {
            return Some(t);
        }
        if let Some(e) = &self.error {
            return Some((ErrorClass::Protocol, format!("error in stream: {e}")));
        }
        if let Some(e) = &self.protocol_error {
            return Some((ErrorClass::Protocol, e.clone()));
        }
        if self.frames == 0 {
            return Some((ErrorClass::Protocol, "empty response stream".into()));
        }
        if protocol::requires_done(api) && !self.done {
            return Some((
                ErrorClass::Protocol,
                "stream ended before the end-of-response marker".into(),
            ));
        }
        if self.completion_tokens == Some(0) || self.token_chunks == 0 {
            return Some((
                ErrorClass::Validation,
                format!(
                    "zero output tokens (server count {:?}, token chunks {})",
                    self.completion_tokens, self.token_chunks
                ),
            ));
        }
        None
    }
}

fn classify_reqwest(e: &reqwest::Error, in_body: bool) -> ErrorClass {
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() {
        ErrorClass::Connect
    } else if in_body || e.is_body() || e.is_request() {
        ErrorClass::Io
    } else if e.is_decode() {
        ErrorClass::Protocol
    } else {
        ErrorClass::Other
    }
}

/// Error text with the chain of causes, the URL's credentials masked.
fn describe(e: &reqwest::Error) -> String {
    crate::runner::clients::util::reqwest_error_text(e)
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.get(self.url(path)).timeout(self.timeout);
        match &self.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    fn post(&self, path: &str, timeout: Duration) -> reqwest::RequestBuilder {
        let r = self
            .http
            .post(self.url(path))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match &self.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// GET a JSON document in setup; non-2xx is an error naming the endpoint.
    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let resp = self.get(path).send().await.map_err(|e| {
            setup_err(
                classify_reqwest(&e, false),
                format!("GET {}: {}", self.url(path), describe(&e)),
            )
        })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(setup_err(
                status_class(status.as_u16()),
                format!(
                    "GET {} answered {status}: {}",
                    self.url(path),
                    snippet(&body)
                ),
            ));
        }
        serde_json::from_str(&body).map_err(|e| {
            setup_err(
                ErrorClass::Protocol,
                format!(
                    "GET {}: invalid JSON ({e}): {}",
                    self.url(path),
                    snippet(&body)
                ),
            )
        })
    }

    async fn setup(&self) -> Result<(), ClientError> {
        let prompts = match &self.w.prompts {
            PromptSource::Synthetic { input_tokens } => Prompts::Synthetic {
                input_tokens: input_tokens.clone(),
            },
            PromptSource::File { path } => Prompts::File(
                prompts::load_jsonl(path).map_err(|e| setup_err(ErrorClass::Io, e.to_string()))?,
            ),
        };
        let _ = self.prompts.set(prompts);
        match self.api {
            LlmApi::Completions | LlmApi::ChatCompletions => self.check_openai_model().await,
            LlmApi::OllamaGenerate | LlmApi::OllamaChat => self.check_ollama_model().await,
            LlmApi::TritonGenerate | LlmApi::TritonInfer => self.check_triton_model().await,
        }
    }

    async fn check_openai_model(&self) -> Result<(), ClientError> {
        let v = self.get_json("/v1/models").await?;
        let ids: Vec<&str> = v
            .get("data")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if ids.contains(&self.w.model.as_str()) {
            return Ok(());
        }
        Err(setup_err(
            ErrorClass::Validation,
            format!(
                "model {:?} is not served by {} ({} /v1/models lists: {})",
                self.w.model,
                self.base,
                self.kind,
                if ids.is_empty() {
                    "nothing".to_string()
                } else {
                    ids.join(", ")
                }
            ),
        ))
    }

    fn ollama_names(v: &Value) -> Vec<String> {
        v.get("models")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        m.get("name")
                            .or_else(|| m.get("model"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ollama_has(names: &[String], model: &str) -> bool {
        let norm = |n: &str| {
            if n.contains(':') {
                n.to_string()
            } else {
                format!("{n}:latest")
            }
        };
        let want = norm(model);
        names.iter().any(|n| norm(n) == want)
    }

    async fn check_ollama_model(&self) -> Result<(), ClientError> {
        let names = Self::ollama_names(&self.get_json("/api/tags").await?);
        if Self::ollama_has(&names, &self.w.model) {
            return Ok(());
        }
        if !self.w.pull_model {
            return Err(setup_err(
                ErrorClass::Validation,
                format!(
                    "model {:?} is not present on {} (/api/tags lists: {}); set `pull_model: true` to pull it before the run",
                    self.w.model,
                    self.base,
                    if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
                ),
            ));
        }
        self.pull_ollama_model().await?;
        let names = Self::ollama_names(&self.get_json("/api/tags").await?);
        if Self::ollama_has(&names, &self.w.model) {
            Ok(())
        } else {
            Err(setup_err(
                ErrorClass::Validation,
                format!(
                    "pulled {:?} but /api/tags still does not list it",
                    self.w.model
                ),
            ))
        }
    }

    /// `POST /api/pull` (streamed progress); outside the timed region.
    async fn pull_ollama_model(&self) -> Result<(), ClientError> {
        tracing::info!(model = %self.w.model, "pulling model");
        let body = serde_json::json!({ "model": self.w.model, "stream": true });
        let pull_timeout = Duration::from_secs(3600);
        let mut resp = self
            .post("/api/pull", pull_timeout)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                setup_err(
                    classify_reqwest(&e, false),
                    format!("pull: {}", describe(&e)),
                )
            })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(setup_err(
                status_class(status.as_u16()),
                format!("pull {:?}: {status}: {}", self.w.model, snippet(&text)),
            ));
        }
        let mut framer = Framer::new(stream::Framing::Ndjson);
        let mut frames = Vec::new();
        let mut last_status = String::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| setup_err(ErrorClass::Io, format!("pull: {}", describe(&e))))?;
            let end = chunk.is_none();
            match chunk {
                Some(b) => framer.push(&b, &mut frames),
                None => framer.finish(&mut frames),
            }
            for f in frames.drain(..) {
                let v: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
                if let Some(e) = v.get("error").and_then(Value::as_str) {
                    return Err(setup_err(
                        ErrorClass::Validation,
                        format!("pull {:?}: {e}", self.w.model),
                    ));
                }
                if let Some(s) = v.get("status").and_then(Value::as_str) {
                    last_status = s.to_string();
                }
            }
            if end {
                break;
            }
        }
        if last_status == "success" {
            Ok(())
        } else {
            Err(setup_err(
                ErrorClass::Protocol,
                format!(
                    "pull {:?} ended without success (last status {last_status:?})",
                    self.w.model
                ),
            ))
        }
    }

    async fn check_triton_model(&self) -> Result<(), ClientError> {
        for path in [
            "/v2/health/ready".to_string(),
            format!("/v2/models/{}/ready", protocol::path_segment(&self.w.model)),
        ] {
            let resp = self.get(&path).send().await.map_err(|e| {
                setup_err(
                    classify_reqwest(&e, false),
                    format!("GET {}: {}", self.url(&path), describe(&e)),
                )
            })?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                return Err(setup_err(
                    if status.as_u16() == 404 || status.as_u16() == 400 {
                        ErrorClass::Validation
                    } else {
                        status_class(status.as_u16())
                    },
                    format!(
                        "GET {} answered {status} (model {:?} not ready): {}",
                        self.url(&path),
                        self.w.model,
                        snippet(&text)
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn request(&self, ctx: &mut RequestCtx<'_>) -> Outcome {
        let op = protocol::op_label(self.api);
        let Some(prompts) = self.prompts.get() else {
            return Outcome::err(op, ErrorClass::Other, "LLM client used before setup");
        };
        let spec = prompts.for_request(self.seed, ctx.seq, &self.w.output_tokens);
        let body = protocol::request_body(self.api, &self.w, &spec).to_string();
        let mut out = Outcome {
            op,
            size_bytes: spec.text.len() as u64,
            bytes_sent: body.len() as u64,
            ..Default::default()
        };
        let path = protocol::request_path(self.api, &self.w.model);
        let started_ns = ctx.clock.now_ns();
        let send = self.post(&path, self.timeout).body(body).send().await;
        let mut resp = match send {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(classify_reqwest(&e, false));
                out.error_message = Some(describe(&e));
                return out;
            }
        };
        let status = resp.status();
        out.http_status = Some(status.as_u16());
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            out.bytes_received = text.len() as u64;
            out.error = Some(status_class(status.as_u16()));
            out.error_message = Some(format!("HTTP {status}: {}", snippet(&text)));
            return out;
        }
        let mut framer = Framer::new(protocol::framing(self.api));
        let mut frames = Vec::with_capacity(8);
        let mut st = StreamState::default();
        let mut transport = None;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    let now = ctx.clock.now_ns();
                    out.bytes_received += bytes.len() as u64;
                    framer.push(&bytes, &mut frames);
                    if !frames.is_empty() {
                        st.on_frames(self.api, &frames, now);
                        frames.clear();
                    }
                }
                Ok(None) => {
                    let now = ctx.clock.now_ns();
                    framer.finish(&mut frames);
                    st.on_frames(self.api, &frames, now);
                    break;
                }
                Err(e) => {
                    let class = classify_reqwest(&e, true);
                    transport = Some((
                        class,
                        format!(
                            "{} after {} token chunks: {}",
                            if class == ErrorClass::Timeout {
                                "timed out"
                            } else {
                                "stream broken"
                            },
                            st.token_chunks,
                            describe(&e)
                        ),
                    ));
                    break;
                }
            }
        }
        if let Some(t) = st.first_token_ns {
            ctx.first_byte_ns = Some(t);
        }
        out.llm = Some(st.llm_outcome(spec.approx_input_tokens));
        if let Some((class, msg)) = st.verdict(self.api, transport) {
            out.error = Some(class);
            out.error_message = Some(msg);
            return out;
        }
        if let (Some(t), Some(first)) = (st.server_timing, st.first_token_ns) {
            let mut s = self.stats.lock().expect("stats lock");
            if let Some(server_ttft) = t.ttft_ms {
                s.requests += 1;
                s.server_ttft_ms_sum += server_ttft;
                s.client_ttft_ms_sum += (first - started_ns) as f64 / 1e6;
                s.server_decode_ms_sum += t.decode_ms.unwrap_or(0.0);
                s.client_decode_ms_sum += (st.last_token_ns.unwrap_or(first) - first) as f64 / 1e6;
                s.server_output_tokens += t.tokens.or(st.completion_tokens).unwrap_or(0);
                s.client_token_chunks += st.token_chunks;
            }
        }
        out
    }
}

fn status_class(status: u16) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::Auth,
        _ => ErrorClass::HttpStatus,
    }
}

fn snippet(s: &str) -> String {
    let t: String = s.trim().chars().take(300).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &str) -> Frame {
        Frame {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn tokens_timestamps_and_usage() {
        let api = LlmApi::Completions;
        let mut st = StreamState::default();
        st.on_frames(api, &[frame(r#"{"choices":[{"text":"a"}]}"#)], 100);
        st.on_frames(
            api,
            &[
                frame(r#"{"choices":[{"text":"b"}]}"#),
                frame(r#"{"choices":[{"text":"c"}]}"#),
            ],
            250,
        );
        st.on_frames(
            api,
            &[
                frame(r#"{"choices":[{"text":"","finish_reason":"length"}]}"#),
                frame(r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}"#),
                frame("[DONE]"),
            ],
            300,
        );
        assert_eq!(st.verdict(api, None), None);
        assert_eq!(st.first_token_ns, Some(100));
        let o = st.llm_outcome(9);
        assert_eq!(o.token_times_ns, vec![250, 250]);
        assert_eq!((o.input_tokens, o.output_tokens), (Some(4), Some(3)));
        assert!(o.tokens_from_server);
    }

    #[test]
    fn counted_when_server_is_silent() {
        let api = LlmApi::TritonGenerate;
        let mut st = StreamState::default();
        st.on_frames(api, &[frame(r#"{"text_output":"x"}"#)], 1);
        st.on_frames(api, &[frame(r#"{"text_output":"y"}"#)], 2);
        assert_eq!(st.verdict(api, None), None);
        let o = st.llm_outcome(12);
        assert_eq!((o.input_tokens, o.output_tokens), (Some(12), Some(2)));
        assert!(!o.tokens_from_server);
    }

    #[test]
    fn invalid_streams_fail() {
        let api = LlmApi::ChatCompletions;
        let class = |frames: &[&str]| {
            let mut st = StreamState::default();
            let fs: Vec<Frame> = frames.iter().map(|d| frame(d)).collect();
            st.on_frames(api, &fs, 1);
            st.verdict(api, None).map(|v| v.0)
        };
        assert_eq!(class(&[]), Some(ErrorClass::Protocol));
        assert_eq!(class(&["[DONE]"]), Some(ErrorClass::Validation));
        assert_eq!(
            class(&[r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, "[DONE]"]),
            Some(ErrorClass::Validation)
        );
        assert_eq!(
            class(&[
                r#"{"choices":[{"delta":{"content":"x"}}]}"#,
                r#"{"choices":[],"usage":{"completion_tokens":0}}"#,
                "[DONE]"
            ]),
            Some(ErrorClass::Validation)
        );
        assert_eq!(
            class(&[r#"{"choices":[{"delta":{"content":"x"}}]}"#]),
            Some(ErrorClass::Protocol)
        );
        assert_eq!(
            class(&[
                r#"{"choices":[{"delta":{"content":"x"}}]}"#,
                r#"{"error":{"message":"CUDA out of memory"}}"#,
                "[DONE]"
            ]),
            Some(ErrorClass::Protocol)
        );
        assert_eq!(class(&["not json", "[DONE]"]), Some(ErrorClass::Protocol));
        let mut st = StreamState::default();
        st.on_frames(
            api,
            &[frame(r#"{"choices":[{"delta":{"content":"x"}}]}"#)],
            1,
        );
        let v = st.verdict(api, Some((ErrorClass::Io, "reset".into())));
        assert_eq!(v.unwrap().0, ErrorClass::Io);
        assert_eq!(st.llm_outcome(1).output_tokens, Some(1));
    }

    #[test]
    fn ollama_model_names() {
        let names = vec!["llama2:latest".to_string(), "smollm2:135m".to_string()];
        assert!(Inner::ollama_has(&names, "llama2"));
        assert!(Inner::ollama_has(&names, "smollm2:135m"));
        assert!(!Inner::ollama_has(&names, "smollm2"));
    }
}
