//! Vector-database clients (`service_type: vectordb`): ChromaDB (HTTP v2), Weaviate (REST v1 +
//! GraphQL), Faiss (in-process, the site's `libfaiss_c` loaded at run time), all driven by one [`VectorClient`].
//!
//! - The client supplies the embeddings: seeded random unit vectors (`vectors: random`,
//!   default) or a file of real embeddings (`.npy` float32 2-D, or JSONL with one array — or an
//!   object with an `embedding` array — per line), see [`VectorData`].
//! - `setup` (re)creates the collection, loads `dataset_size` vectors (ids `0..dataset_size`) in
//!   batches, then measures **recall@k**: `recall_queries` query vectors are searched on the
//!   server with k = `search_k` and compared with exact brute-force (L2) results over the same
//!   loaded vectors. This happens before the timed phase, on exactly known data; `teardown`
//!   reports it as the run metric `recall_at_k` beside the QPS of the timed phase.
//! - Timed operations: `insert` adds `batch_size` new vectors (fresh ids), `search` queries one
//!   vector for `search_k` neighbours, `update` replaces `batch_size` random loaded vectors,
//!   `delete` removes `batch_size` vectors inserted during the run (or random loaded ids once
//!   none are left). Every vector sent is prepared in `setup`, outside the timed region.
//! - `teardown` drops the collection.

pub mod chroma;
pub mod faiss;
pub mod faiss_lib;
pub mod weaviate;

use super::util::ReqError;
use crate::recipe::{Service, VectorBackend, VectorDbWorkload, VectorOp, VectorSource};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ErrorClass, Outcome, RequestCtx, RunMetric, Worker,
};
use crate::runner::rng::Rng;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Vectors prepared for inserts/updates during the run (reused round-robin with fresh ids).
pub const INSERT_POOL: usize = 1024;
/// Query vectors prepared for searches during the run.
pub const QUERY_POOL: usize = 256;
/// Batch size used to load the dataset in setup.
pub const LOAD_BATCH: usize = 500;

/// One backend's operations. `Conn` is one worker's connection.
pub trait Backend: Send + Sync + 'static {
    type Conn: Send + Sync + 'static;
    /// e.g. `chromadb http://127.0.0.1:8000 collection x`.
    fn describe(&self) -> String;
    fn open(&self) -> Result<Self::Conn, ClientError>;
    /// Check the service answers, then drop and create the collection.
    fn prepare<'a>(&'a self, c: &'a Self::Conn) -> BoxFuture<'a, Result<(), ClientError>>;
    /// Insert (or, with `upsert`, replace) vectors; returns bytes sent.
    fn insert<'a>(
        &'a self,
        c: &'a Self::Conn,
        ids: &'a [u64],
        vecs: &'a [&'a [f32]],
        upsert: bool,
    ) -> BoxFuture<'a, Result<u64, ReqError>>;
    /// The ids of the `k` nearest neighbours, nearest first.
    fn search<'a>(
        &'a self,
        c: &'a Self::Conn,
        q: &'a [f32],
        k: u32,
    ) -> BoxFuture<'a, Result<Vec<u64>, ReqError>>;
    fn delete<'a>(
        &'a self,
        c: &'a Self::Conn,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), ReqError>>;
    fn drop_collection<'a>(&'a self, c: &'a Self::Conn) -> BoxFuture<'a, Result<(), ClientError>>;
    /// `(url, JSON field, product)` of the server's version endpoint (`""` = the whole body).
    fn version_endpoint(&self) -> Option<(String, &'static str, &'static str)> {
        None
    }
}

/// Row-major vectors of one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Everything the run sends, made before the timed phase.
pub struct VectorData {
    /// The `dataset_size` vectors loaded in setup (id = row).
    pub base: Vectors,
    pub inserts: Vectors,
    pub queries: Vectors,
}

fn random_unit(rng: &mut Rng, dim: usize, n: usize) -> Vectors {
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let start = data.len();
        let mut norm = 0.0f64;
        for _ in 0..dim {
            let x = rng.normal();
            norm += x * x;
            data.push(x as f32);
        }
        let inv = if norm > 0.0 { 1.0 / norm.sqrt() } else { 1.0 };
        for x in &mut data[start..] {
            *x = (*x as f64 * inv) as f32;
        }
    }
    Vectors { dim, data }
}

#[derive(Debug, thiserror::Error)]
pub enum VectorFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

/// Load a `.npy` (little-endian float32, C order, 2-D) or JSONL file of embeddings.
pub fn load_vectors(path: &Path) -> Result<Vectors, VectorFileError> {
    let p = path.display().to_string();
    let fmt = |message: String| VectorFileError::Format {
        path: p.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|source| VectorFileError::Io {
        path: p.clone(),
        source,
    })?;
    if bytes.starts_with(b"\x93NUMPY") {
        if bytes.len() < 10 {
            return Err(fmt("truncated .npy header".into()));
        }
        let (hlen, hstart) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(fmt(format!("unsupported .npy version {v}"))),
        };
        let header = std::str::from_utf8(bytes.get(hstart..hstart + hlen).unwrap_or_default())
            .map_err(|_| fmt("bad .npy header".into()))?;
        if !header.contains("'<f4'") {
            return Err(fmt(format!(
                "only little-endian float32 ('<f4') .npy files are supported, header: {}",
                header.trim()
            )));
        }
        if header.contains("'fortran_order': True") {
            return Err(fmt("Fortran-order .npy files are not supported".into()));
        }
        let shape = header
            .split("'shape':")
            .nth(1)
            .and_then(|s| s.split('(').nth(1))
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| fmt("no shape in .npy header".into()))?;
        let dims: Vec<usize> = shape
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| fmt(format!("bad shape ({shape})")))?;
        let [n, dim] = dims[..] else {
            return Err(fmt(format!("expected a 2-D array, shape is ({shape})")));
        };
        let body = &bytes[hstart + hlen..];
        if body.len() < n * dim * 4 || dim == 0 {
            return Err(fmt(format!(
                "{} data bytes for shape ({n}, {dim})",
                body.len()
            )));
        }
        let data = body[..n * dim * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        return Ok(Vectors { dim, data });
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| fmt("neither .npy nor UTF-8 JSONL".into()))?;
    let mut dim = 0usize;
    let mut data = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fmt(format!("line {}: {e}", i + 1)))?;
        let arr = match &v {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(o) => match o.get("embedding") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err(fmt(format!("line {}: no `embedding` array", i + 1))),
            },
            _ => return Err(fmt(format!("line {}: expected an array of numbers", i + 1))),
        };
        if dim == 0 {
            dim = arr.len();
        }
        if arr.len() != dim || dim == 0 {
            return Err(fmt(format!(
                "line {}: {} numbers, the first line has {dim}",
                i + 1,
                arr.len()
            )));
        }
        for x in arr {
            data.push(
                x.as_f64()
                    .ok_or_else(|| fmt(format!("line {}: not a number: {x}", i + 1)))?
                    as f32,
            );
        }
    }
    if dim == 0 {
        return Err(fmt("no vectors".into()));
    }
    Ok(Vectors { dim, data })
}

impl VectorData {
    pub fn prepare(wl: &VectorDbWorkload, seed: u64) -> Result<Self, ClientError> {
        let dim = wl.dimension as usize;
        let n = wl.dataset_size as usize;
        let mut rng = Rng::for_stream(seed, 0x7663);
        match &wl.vectors {
            VectorSource::Random => Ok(VectorData {
                base: random_unit(&mut rng, dim, n),
                inserts: random_unit(&mut rng, dim, INSERT_POOL),
                queries: random_unit(&mut rng, dim, QUERY_POOL),
            }),
            VectorSource::File { path } => {
                let all = load_vectors(path).map_err(|e| {
                    ClientError::new(ErrorClass::Validation, "setup", e.to_string())
                })?;
                if all.dim != dim {
                    return Err(ClientError::new(
                        ErrorClass::Validation,
                        "setup",
                        format!(
                            "{} holds {}-dimensional vectors but the recipe says dimension: {dim}",
                            path.display(),
                            all.dim
                        ),
                    ));
                }
                if all.len() < n.max(1) {
                    return Err(ClientError::new(
                        ErrorClass::Validation,
                        "setup",
                        format!(
                            "{} holds {} vectors, fewer than dataset_size {n}",
                            path.display(),
                            all.len()
                        ),
                    ));
                }
                let rest = all.len() - n;
                let take = |from: usize, count: usize| Vectors {
                    dim,
                    data: all.data[from * dim..(from + count) * dim].to_vec(),
                };
                let base = take(0, n);
                // Queries and inserts: the vectors after the dataset when there are any (held
                // out), otherwise dataset vectors.
                let queries = if rest > 0 {
                    take(n, rest.min(QUERY_POOL))
                } else {
                    take(0, n.min(QUERY_POOL))
                };
                let inserts = if rest > QUERY_POOL {
                    take(n + QUERY_POOL, (rest - QUERY_POOL).min(INSERT_POOL))
                } else {
                    take(0, n.min(INSERT_POOL))
                };
                Ok(VectorData {
                    base,
                    inserts,
                    queries,
                })
            }
        }
    }
}

/// Exact k nearest neighbours of `q` in `base` by squared L2 distance (ties: lower id first).
pub fn brute_force_knn(base: &Vectors, q: &[f32], k: usize) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = (0..base.len())
        .map(|i| {
            let r = base.row(i);
            let s: f32 = r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
            (s, i as u64)
        })
        .collect();
    let k = k.min(d.len());
    if k == 0 {
        return Vec::new();
    }
    d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.truncate(k);
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().map(|(_, i)| i).collect()
}

/// |found ∩ exact| / |exact|.
pub fn recall(found: &[u64], exact: &[u64]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hit = exact.iter().filter(|e| found.contains(e)).count();
    hit as f64 / exact.len() as f64
}

pub struct VectorClient<B: Backend> {
    backend: Arc<B>,
    wl: VectorDbWorkload,
    seed: u64,
    state: Arc<State>,
}

struct State {
    data: Mutex<Option<Arc<VectorData>>>,
    next_id: AtomicU64,
    deletable: Mutex<Vec<u64>>,
    recall: Mutex<Option<(f64, u32)>>,
}

impl<B: Backend> VectorClient<B> {
    pub fn new(svc: &Service, wl: &VectorDbWorkload, backend: B) -> Result<Self, ClientError> {
        Ok(VectorClient {
            backend: Arc::new(backend),
            wl: wl.clone(),
            seed: svc.load.seed,
            state: Arc::new(State {
                data: Mutex::new(None),
                next_id: AtomicU64::new(wl.dataset_size),
                deletable: Mutex::new(Vec::new()),
                recall: Mutex::new(None),
            }),
        })
    }

    fn data(&self) -> Result<Arc<VectorData>, ClientError> {
        self.state
            .data
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| ClientError::new(ErrorClass::Other, "connect", "setup has not run"))
    }
}

impl<B: Backend> Client for VectorClient<B> {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let data = Arc::new(VectorData::prepare(&self.wl, self.seed)?);
            let conn = self.backend.open()?;
            self.backend.prepare(&conn).await?;
            let base = &data.base;
            let mut start = 0usize;
            while start < base.len() {
                let end = (start + LOAD_BATCH).min(base.len());
                let ids: Vec<u64> = (start as u64..end as u64).collect();
                let vecs: Vec<&[f32]> = (start..end).map(|i| base.row(i)).collect();
                self.backend
                    .insert(&conn, &ids, &vecs, false)
                    .await
                    .map_err(|e| {
                        e.into_client_error(
                            "setup",
                            &format!("loading the dataset into {}", self.backend.describe()),
                        )
                    })?;
                start = end;
            }
            // Recall@k on the loaded data (outside the timed region).
            let k = self.wl.search_k as usize;
            let nq = self.wl.recall_queries as usize;
            if nq > 0 && !base.is_empty() && !data.queries.is_empty() {
                let mut sum = 0.0;
                for i in 0..nq {
                    let q = data.queries.row(i % data.queries.len());
                    let found = self
                        .backend
                        .search(&conn, q, self.wl.search_k)
                        .await
                        .map_err(|e| e.into_client_error("setup", "recall search"))?;
                    sum += recall(&found, &brute_force_knn(base, q, k));
                }
                let r = sum / nq as f64;
                tracing::info!(backend = %self.backend.describe(), recall_at_k = r, k, queries = nq, "recall measured");
                *self.state.recall.lock().expect("lock") = Some((r, nq as u32));
            }
            *self.state.data.lock().expect("lock") = Some(data);
            Ok(())
        })
    }

    fn connect(&self, _worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            Ok(Box::new(VectorWorker {
                conn: self.backend.open()?,
                backend: self.backend.clone(),
                data: self.data()?,
                wl: self.wl.clone(),
                state: self.state.clone(),
            }) as Box<dyn Worker>)
        })
    }

    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async move {
            let Some((url, field, product)) = self.backend.version_endpoint() else {
                return Default::default();
            };
            let http = reqwest::Client::new();
            let mut f = super::util::http_version_facts(&http, &url, Some(field), &[]).await;
            f.insert("service.product".into(), product.into());
            f
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            let conn = self.backend.open()?;
            self.backend.drop_collection(&conn).await?;
            let mut out = Vec::new();
            if let Some((r, nq)) = *self.state.recall.lock().expect("lock") {
                out.push(RunMetric {
                    name: "recall_at_k".into(),
                    value: r,
                    unit: "ratio".into(),
                });
                out.push(RunMetric {
                    name: "recall_k".into(),
                    value: self.wl.search_k as f64,
                    unit: "neighbours".into(),
                });
                out.push(RunMetric {
                    name: "recall_queries".into(),
                    value: nq as f64,
                    unit: "queries".into(),
                });
            }
            Ok(out)
        })
    }
}

struct VectorWorker<B: Backend> {
    conn: B::Conn,
    backend: Arc<B>,
    data: Arc<VectorData>,
    wl: VectorDbWorkload,
    state: Arc<State>,
}

fn op_name(op: VectorOp) -> &'static str {
    match op {
        VectorOp::Insert => "insert",
        VectorOp::Search => "search",
        VectorOp::Update => "update",
        VectorOp::Delete => "delete",
    }
}

impl<B: Backend> Worker for VectorWorker<B> {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let op = self.wl.mix.pick(ctx.rng.next_f64());
            let name = op_name(op);
            let batch = self.wl.batch_size as usize;
            let dim = self.data.base.dim;
            let vec_bytes = (batch * dim * 4) as u64;
            let res: Result<Outcome, ReqError> = match op {
                VectorOp::Insert => {
                    let first = self
                        .state
                        .next_id
                        .fetch_add(batch as u64, Ordering::Relaxed);
                    let ids: Vec<u64> = (first..first + batch as u64).collect();
                    let pool = &self.data.inserts;
                    let vecs: Vec<&[f32]> = ids
                        .iter()
                        .map(|id| pool.row(*id as usize % pool.len()))
                        .collect();
                    match self.backend.insert(&self.conn, &ids, &vecs, false).await {
                        Ok(sent) => {
                            self.state.deletable.lock().expect("lock").extend(&ids);
                            Ok(Outcome {
                                op: name,
                                size_bytes: vec_bytes,
                                bytes_sent: sent,
                                ..Default::default()
                            })
                        }
                        Err(e) => Err(e),
                    }
                }
                VectorOp::Search => {
                    let q = self
                        .data
                        .queries
                        .row(ctx.rng.below(self.data.queries.len() as u64) as usize);
                    self.backend
                        .search(&self.conn, q, self.wl.search_k)
                        .await
                        .map(|ids| {
                            ctx.mark_first_byte();
                            Outcome {
                                op: name,
                                size_bytes: (dim * 4) as u64,
                                bytes_received: ids.len() as u64 * 8,
                                ..Default::default()
                            }
                        })
                }
                VectorOp::Update => {
                    let n = self.data.base.len().max(1) as u64;
                    let ids: Vec<u64> = (0..batch).map(|_| ctx.rng.below(n)).collect();
                    let pool = &self.data.inserts;
                    let vecs: Vec<&[f32]> = ids
                        .iter()
                        .map(|_| pool.row(ctx.rng.below(pool.len() as u64) as usize))
                        .collect();
                    self.backend
                        .insert(&self.conn, &ids, &vecs, true)
                        .await
                        .map(|sent| Outcome {
                            op: name,
                            size_bytes: vec_bytes,
                            bytes_sent: sent,
                            ..Default::default()
                        })
                }
                VectorOp::Delete => {
                    let mut ids: Vec<u64> = {
                        let mut d = self.state.deletable.lock().expect("lock");
                        let keep = d.len().saturating_sub(batch);
                        d.split_off(keep)
                    };
                    let n = self.data.base.len().max(1) as u64;
                    while ids.len() < batch {
                        ids.push(ctx.rng.below(n));
                    }
                    self.backend
                        .delete(&self.conn, &ids)
                        .await
                        .map(|()| Outcome::ok(name))
                }
            };
            res.unwrap_or_else(|e| e.into_outcome(name))
        })
    }
}

/// The client of a vector database service: one arm per backend (the client constructor of
/// the backend's descriptor in [`crate::kinds::vector`]).
pub fn make(svc: &Service, wl: &VectorDbWorkload) -> Result<Arc<dyn Client>, ClientError> {
    Ok(match wl.backend {
        VectorBackend::Chromadb => {
            Arc::new(VectorClient::new(svc, wl, chroma::Chroma::new(svc, wl)?)?)
        }
        VectorBackend::Weaviate => Arc::new(VectorClient::new(
            svc,
            wl,
            weaviate::Weaviate::new(svc, wl)?,
        )?),
        VectorBackend::Faiss => Arc::new(VectorClient::new(svc, wl, faiss::Faiss::new(svc, wl)?)?),
    })
}

/// The health path of an HTTP backend, from its entry in [`crate::kinds::vector`] (the one
/// `factorybench ready` asks).
pub(crate) fn health_path(b: VectorBackend) -> &'static str {
    b.spec()
        .server()
        .health
        .http_path()
        .expect("an HTTP backend has an HTTP health check")
}

/// `http://host:port` of an HTTP vector database: `service_url` when it is http(s), else the
/// resolved endpoint's host and port.
pub fn http_base(svc: &Service) -> String {
    if let Some(u) = &svc.service_url {
        if u.starts_with("http://") || u.starts_with("https://") {
            return u.trim_end_matches('/').to_string();
        }
    }
    format!("http://{}", svc.endpoint.authority())
}

/// Read a JSON response, classifying failures.
pub(crate) async fn json_response(resp: reqwest::Response) -> Result<serde_json::Value, ReqError> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    if !(200..300).contains(&status) {
        return Err(ReqError::status(status, &text));
    }
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        ReqError::new(
            ErrorClass::Protocol,
            format!("bad JSON ({e}): {}", super::util::snippet(&text)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vectors_are_unit_and_repeatable() {
        let a = random_unit(&mut Rng::new(1), 16, 10);
        let b = random_unit(&mut Rng::new(1), 16, 10);
        assert_eq!(a, b);
        for i in 0..a.len() {
            let n: f32 = a.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn brute_force_and_recall() {
        let base = Vectors {
            dim: 2,
            data: vec![0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 5.0, 5.0],
        };
        assert_eq!(brute_force_knn(&base, &[0.9, 0.0], 2), vec![1, 0]);
        assert_eq!(brute_force_knn(&base, &[5.0, 4.0], 1), vec![3]);
        assert_eq!(brute_force_knn(&base, &[0.0, 0.0], 10).len(), 4);
        assert_eq!(recall(&[1, 2], &[1, 0]), 0.5);
        assert_eq!(recall(&[0, 1], &[1, 0]), 1.0);
    }

    #[test]
    fn loads_npy_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        // numpy.save of np.array([[1,2,3],[4,5,6]], dtype='<f4'), format 1.0
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for x in [1f32, 2., 3., 4., 5., 6.] {
            bytes.extend(x.to_le_bytes());
        }
        let p = dir.path().join("v.npy");
        std::fs::write(&p, &bytes).unwrap();
        let v = load_vectors(&p).unwrap();
        assert_eq!((v.dim, v.len()), (3, 2));
        assert_eq!(v.row(1), &[4., 5., 6.]);

        let p = dir.path().join("v.jsonl");
        std::fs::write(&p, "[1, 2]\n{\"embedding\": [3, 4.5]}\n\n").unwrap();
        let v = load_vectors(&p).unwrap();
        assert_eq!(v.data, vec![1., 2., 3., 4.5]);

        std::fs::write(&p, "[1, 2]\n[3]\n").unwrap();
        let e = load_vectors(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, &bytes[..20]).unwrap();
        assert!(load_vectors(&p).is_err());
    }
}
