//! Tensor inference through KServe v2 (`service_type: triton` with `api: tensor`, or an image
//! model such as `resnet50`): the Open Inference Protocol that Triton, KServe and MLServer speak.
//!
//! Setup (outside the timed region) reads the model's metadata (`GET /v2/models/{m}`: inputs,
//! shapes, datatypes), builds a small pool of request bodies — seeded random tensors, or the
//! `.ppm`/`.pgm` images of the recipe's `images` directory resized to the input — with
//! `batch_size` items each, and sends one request to choose the encoding: the binary tensor
//! extension (`Inference-Header-Content-Length`, outputs asked in binary too), or JSON when the
//! server refuses binary (`tensor_encoding: auto`, the default). Each timed request is one
//! `POST /v2/models/{m}/infer` (`op = infer`) whose response is checked (outputs present, one row
//! per batch item, binary sizes adding up). Teardown reports `inferences`, `inferences_per_s`
//! (batch items per second from the first measured request sent to the last answered; requests
//! sent within `warmup` of the first one are left out, as the engine leaves out the warmup) and
//! the encoding.

pub mod images;
pub mod kserve;

use crate::recipe::{Service, TensorEncoding, TensorSource, TensorWorkload};
use crate::rng::Rng;
use crate::runner::client::{
    BoxFuture, Client, ClientError, ErrorClass, Outcome, RequestCtx, RunMetric, Worker,
};
use crate::runner::clients::util::{http_client, ReqError};
use kserve::{InputSpec, ModelMeta, HEADER_LEN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Distinct request bodies prepared at setup (requests cycle through them).
const POOL: usize = 4;

/// The encoding a run settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Binary,
    Json,
}

struct Payload {
    body: bytes::Bytes,
    /// `Inference-Header-Content-Length` (binary bodies).
    header_len: Option<usize>,
}

struct Prepared {
    url: String,
    wire: Wire,
    payloads: Vec<Payload>,
    /// Rows expected in each output (`None` for a model without a batch dimension).
    batch_rows: Option<usize>,
    inferences_per_request: u64,
}

/// Successful measured inferences and the span they were made in.
#[derive(Default)]
struct Stats {
    inferences: AtomicU64,
    /// When the first request of the run was sent (nanoseconds since `epoch`): the warmup ends
    /// `warmup_s` later.
    first_sent_ns: OnceLock<u64>,
    /// First measured request sent / last response checked (nanoseconds since `epoch`).
    span_ns: Mutex<Option<(u64, u64)>>,
}

pub struct TensorClient {
    base: String,
    wl: TensorWorkload,
    timeout_s: f64,
    seed: u64,
    warmup_ns: u64,
    epoch: Instant,
    prepared: OnceLock<Arc<Prepared>>,
    stats: Arc<Stats>,
}

fn setup_err(class: ErrorClass, message: impl Into<String>) -> ClientError {
    ClientError::new(class, "setup", message)
}

impl TensorClient {
    pub fn new(svc: &Service, wl: &TensorWorkload) -> Result<Self, ClientError> {
        let base = svc.endpoint.url.clone().ok_or_else(|| {
            setup_err(
                ErrorClass::Other,
                "the service has no URL: give `service_url` or `port`",
            )
        })?;
        Ok(TensorClient {
            base: base.trim_end_matches('/').to_string(),
            wl: wl.clone(),
            timeout_s: svc.load.timeout_s,
            seed: svc.load.seed,
            warmup_ns: (svc.load.warmup_s * 1e9) as u64,
            epoch: Instant::now(),
            prepared: OnceLock::new(),
            stats: Arc::new(Stats::default()),
        })
    }

    fn model_url(&self) -> String {
        format!(
            "{}/v2/models/{}",
            self.base,
            crate::runner::clients::llm::protocol::path_segment(&self.wl.model)
        )
    }

    async fn metadata(&self, http: &reqwest::Client) -> Result<ModelMeta, ClientError> {
        let url = self.model_url();
        let resp = http.get(&url).send().await.map_err(|e| {
            ReqError::from(e).into_client_error(
                "setup",
                &format!("{url} (is the KServe v2 / Triton server running?)"),
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != 200 {
            return Err(ReqError::status(status, &text).into_client_error(
                "setup",
                &format!(
                    "model `{}` metadata ({url}); is the model loaded?",
                    self.wl.model
                ),
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            setup_err(
                ErrorClass::Protocol,
                format!("{url}: not KServe v2 model metadata: {e}"),
            )
        })
    }

    /// The raw tensors of each pooled request.
    fn tensors(&self, inputs: &[InputSpec]) -> Result<Vec<Vec<Vec<u8>>>, ClientError> {
        let mut rng = Rng::new(self.seed);
        match &self.wl.source {
            TensorSource::Random => Ok((0..POOL)
                .map(|_| {
                    inputs
                        .iter()
                        .map(|s| kserve::random_tensor(s, &mut rng))
                        .collect()
                })
                .collect()),
            TensorSource::Images { dir } => {
                let imgs =
                    images::load_dir(dir).map_err(|e| setup_err(ErrorClass::Io, e.to_string()))?;
                let per = self.wl.batch_size as usize;
                let n = imgs.len().div_ceil(per).clamp(1, POOL);
                (0..n)
                    .map(|p| {
                        inputs
                            .iter()
                            .map(|s| kserve::image_tensor(s, &imgs, p * per))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| setup_err(ErrorClass::Validation, e))
                    })
                    .collect()
            }
        }
    }
}

/// One infer request: the response checked, its size returned.
async fn infer(
    http: &reqwest::Client,
    url: &str,
    p: &Payload,
    batch_rows: Option<usize>,
    ctx: Option<&mut RequestCtx<'_>>,
) -> Result<u64, ReqError> {
    let mut req = http.post(url).body(p.body.clone());
    req = match p.header_len {
        Some(n) => req
            .header(HEADER_LEN, n)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream"),
        None => req.header(reqwest::header::CONTENT_TYPE, "application/json"),
    };
    let resp = req.send().await?;
    if let Some(ctx) = ctx {
        ctx.mark_first_byte();
    }
    let status = resp.status().as_u16();
    let header_len = resp
        .headers()
        .get(HEADER_LEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = resp.bytes().await?;
    if status != 200 {
        return Err(ReqError::status(status, &String::from_utf8_lossy(&body)));
    }
    kserve::check_response(&body, header_len, batch_rows).map_err(|m| ReqError {
        class: ErrorClass::Validation,
        http_status: Some(status),
        message: m,
    })?;
    Ok(body.len() as u64)
}

impl Client for TensorClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let http = http_client(self.timeout_s)?;
            let meta = self.metadata(&http).await?;
            let inputs = kserve::resolve_inputs(&meta, self.wl.batch_size).map_err(|e| {
                setup_err(
                    ErrorClass::Validation,
                    format!("model `{}`: {e}", self.wl.model),
                )
            })?;
            let outputs: Vec<String> = meta.outputs.iter().map(|o| o.name.clone()).collect();
            let raw = self.tensors(&inputs)?;
            let batched = inputs.iter().any(|s| s.batched);
            let batch_rows = batched.then_some(self.wl.batch_size as usize);
            let url = format!("{}/infer", self.model_url());
            let build = |wire: Wire| -> Vec<Payload> {
                raw.iter()
                    .enumerate()
                    .map(|(i, r)| match wire {
                        Wire::Binary => {
                            let (body, n) =
                                kserve::binary_body(&i.to_string(), &inputs, r, &outputs);
                            Payload {
                                body: body.into(),
                                header_len: Some(n),
                            }
                        }
                        Wire::Json => Payload {
                            body: kserve::json_body(&i.to_string(), &inputs, r).into(),
                            header_len: None,
                        },
                    })
                    .collect()
            };
            let first = match self.wl.encoding {
                TensorEncoding::Json => Wire::Json,
                TensorEncoding::Binary | TensorEncoding::Auto => Wire::Binary,
            };
            let mut payloads = build(first);
            let mut wire = first;
            if let Err(e) = infer(&http, &url, &payloads[0], batch_rows, None).await {
                let fallback = self.wl.encoding == TensorEncoding::Auto && e.http_status.is_some();
                if !fallback {
                    return Err(
                        e.into_client_error("setup", &format!("first infer request to {url}"))
                    );
                }
                tracing::warn!(
                    "{url}: the binary tensor extension was refused ({}); falling back to JSON",
                    e.message
                );
                payloads = build(Wire::Json);
                wire = Wire::Json;
                infer(&http, &url, &payloads[0], batch_rows, None)
                    .await
                    .map_err(|j| {
                        j.into_client_error(
                            "setup",
                            &format!("{url} refused binary ({}) and JSON", e.message),
                        )
                    })?;
            }
            let prepared = Prepared {
                url,
                wire,
                payloads,
                batch_rows,
                inferences_per_request: if batched {
                    u64::from(self.wl.batch_size)
                } else {
                    1
                },
            };
            let _ = self.prepared.set(Arc::new(prepared));
            Ok(())
        })
    }

    fn connect(&self, _worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let prepared = self.prepared.get().cloned().ok_or_else(|| {
                ClientError::new(ErrorClass::Other, "connect", "setup has not run")
            })?;
            Ok(Box::new(TensorWorker {
                http: http_client(self.timeout_s)?,
                prepared,
                stats: self.stats.clone(),
                epoch: self.epoch,
                warmup_ns: self.warmup_ns,
            }) as Box<dyn Worker>)
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            let n = self.stats.inferences.load(Ordering::Relaxed);
            let mut out = vec![RunMetric {
                name: "inferences".into(),
                value: n as f64,
                unit: "inferences".into(),
            }];
            if let Some((a, b)) = *self.stats.span_ns.lock().expect("lock") {
                if b > a {
                    out.push(RunMetric {
                        name: "inferences_per_s".into(),
                        value: n as f64 / ((b - a) as f64 / 1e9),
                        unit: "inferences/s".into(),
                    });
                }
            }
            if let Some(p) = self.prepared.get() {
                out.push(RunMetric {
                    name: "batch_size".into(),
                    value: p.inferences_per_request as f64,
                    unit: "inferences".into(),
                });
                out.push(RunMetric {
                    name: "binary_tensors".into(),
                    value: if p.wire == Wire::Binary { 1.0 } else { 0.0 },
                    unit: "bool".into(),
                });
            }
            Ok(out)
        })
    }

    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async move {
            let http = reqwest::Client::new();
            crate::runner::clients::util::http_version_facts(
                &http,
                &format!("{}/v2", self.base),
                Some("version"),
                &[],
            )
            .await
        })
    }
}

struct TensorWorker {
    http: reqwest::Client,
    prepared: Arc<Prepared>,
    stats: Arc<Stats>,
    epoch: Instant,
    warmup_ns: u64,
}

impl Worker for TensorWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let p = &self.prepared;
            let payload = &p.payloads[(ctx.seq % p.payloads.len() as u64) as usize];
            let sent = self.epoch.elapsed().as_nanos() as u64;
            let first = *self.stats.first_sent_ns.get_or_init(|| sent);
            let measured = sent >= first + self.warmup_ns;
            match infer(&self.http, &p.url, payload, p.batch_rows, Some(ctx)).await {
                Ok(received) => {
                    if measured {
                        let done = self.epoch.elapsed().as_nanos() as u64;
                        self.stats
                            .inferences
                            .fetch_add(p.inferences_per_request, Ordering::Relaxed);
                        let mut span = self.stats.span_ns.lock().expect("lock");
                        *span = Some(match *span {
                            None => (sent, done),
                            Some((a, b)) => (a.min(sent), b.max(done)),
                        });
                    }
                    Outcome {
                        op: "infer",
                        http_status: Some(200),
                        size_bytes: payload.body.len() as u64,
                        bytes_sent: payload.body.len() as u64,
                        bytes_received: received,
                        ..Default::default()
                    }
                }
                Err(e) => e.into_outcome("infer"),
            }
        })
    }
}
