//! S3 client (`service_type: s3`): put/get/list/delete with the recipe's `object_sizes` mix,
//! signed with AWS SigV4 ([`sigv4`], checked against AWS's published examples).
//!
//! - Every object of a run lives under one prefix `factorybench/<service>-<run tag>/`:
//!   `ws/` holds the working set that gets read (created in `setup`: [`WORKING_SET_PER_SIZE`]
//!   objects per size class), `run/` the objects that puts create, `del/` a few objects that
//!   the first deletes remove. Deletes remove objects this run created (never the working set),
//!   so every get reads an object that exists.
//! - Payloads (one random buffer per size class) and their SHA-256 are made in `setup`,
//!   outside the timed region.
//! - The bucket is created when missing (HEAD → 404 → PUT, with a `LocationConstraint` for
//!   regions other than us-east-1). With `cleanup: true` (default) teardown deletes every
//!   object under the run prefix, and the bucket when this run created it.
//! - Addressing: `path` (`http://host:port/bucket/key`) or `virtual_host`
//!   (`http://bucket.host:port/key`; for `localhost` endpoints `bucket.localhost` is resolved to
//!   127.0.0.1 as RFC 6761 says). `https://` endpoints use TLS (rustls, webpki roots).
//! - Gets mark the first byte at the first body chunk and check the length.

pub mod sigv4;

use super::util::{error_chain, http_client, resolve_secret, ReqError};
use crate::recipe::{S3Addressing, S3Op, S3Workload, Service};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ErrorClass, Outcome, RequestCtx, RunMetric, Worker,
};
use crate::runner::rng::Rng;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, Url};
use sigv4::{Credentials, SignRequest, EMPTY_SHA256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Objects per size class read by gets (created in setup).
pub const WORKING_SET_PER_SIZE: usize = 8;
/// Objects created in setup for the first deletes.
pub const DELETABLE_IN_SETUP: usize = 16;

pub struct S3Client {
    name: String,
    wl: S3Workload,
    creds: Credentials,
    endpoint: Url,
    timeout_s: f64,
    prefix: String,
    shared: Arc<Shared>,
}

struct Payload {
    size: u64,
    data: Bytes,
    sha256: String,
}

struct Shared {
    payloads: Vec<Payload>,
    /// Working set: (key, payload index).
    working_set: Mutex<Vec<(String, usize)>>,
    deletable: Mutex<Vec<String>>,
    created_bucket: AtomicBool,
    seq: AtomicU64,
}

impl Shared {
    fn payload_for(&self, size: u64) -> usize {
        self.payloads
            .iter()
            .position(|p| p.size == size)
            .unwrap_or(0)
    }
}

fn setup_err(class: ErrorClass, msg: impl Into<String>) -> ClientError {
    ClientError::new(class, "setup", msg)
}

impl S3Client {
    pub fn new(svc: &Service, wl: &S3Workload) -> Result<Self, ClientError> {
        let access_key = resolve_secret(svc, &wl.access_key, "access_key")?;
        let secret_key = resolve_secret(svc, &wl.secret_key, "secret_key")?;
        let endpoint = Url::parse(&wl.endpoint_url).map_err(|e| {
            setup_err(
                ErrorClass::Other,
                format!("endpoint_url `{}`: {e}", wl.endpoint_url),
            )
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(setup_err(
                ErrorClass::Other,
                format!(
                    "endpoint_url `{}` must be http(s)://host[:port]",
                    wl.endpoint_url
                ),
            ));
        }
        let mut rng = Rng::for_stream(svc.load.seed, 0x5333);
        let mut sizes: Vec<u64> = wl.object_sizes.weights.iter().map(|(s, _)| *s).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let payloads = sizes
            .into_iter()
            .map(|size| {
                let mut buf = vec![0u8; size as usize];
                rng.fill_bytes(&mut buf);
                let sha256 = sigv4::sha256_hex(&buf);
                Payload {
                    size,
                    data: Bytes::from(buf),
                    sha256,
                }
            })
            .collect();
        let tag = format!(
            "{:x}-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            std::process::id()
        );
        Ok(S3Client {
            name: svc.name.clone(),
            wl: wl.clone(),
            creds: Credentials {
                access_key,
                secret_key,
            },
            endpoint,
            timeout_s: svc.load.timeout_s,
            prefix: format!("factorybench/{}-{tag}", svc.name),
            shared: Arc::new(Shared {
                payloads,
                working_set: Mutex::new(Vec::new()),
                deletable: Mutex::new(Vec::new()),
                created_bucket: AtomicBool::new(false),
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// The prefix under which this run's objects live.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn http(&self) -> Result<reqwest::Client, ClientError> {
        if self.wl.addressing == S3Addressing::VirtualHost
            && self.endpoint.host_str() == Some("localhost")
        {
            let port = self.endpoint.port_or_known_default().unwrap_or(80);
            let timeout = std::time::Duration::from_secs_f64(self.timeout_s.max(0.001));
            return reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
                .pool_idle_timeout(super::util::POOL_IDLE_TIMEOUT)
                .tcp_nodelay(true)
                .resolve(
                    &format!("{}.localhost", self.wl.bucket_name),
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                )
                .build()
                .map_err(|e| setup_err(ErrorClass::Other, error_chain(&e)));
        }
        http_client(self.timeout_s)
    }

    fn conn(&self) -> Result<S3Conn, ClientError> {
        Ok(S3Conn {
            http: self.http()?,
            endpoint: self.endpoint.clone(),
            bucket: self.wl.bucket_name.clone(),
            addressing: self.wl.addressing,
            region: self.wl.region.clone(),
            creds: self.creds.clone(),
        })
    }

    fn bucket_error(&self, e: ReqError, what: &str) -> ClientError {
        let hint = match e.http_status {
            Some(401 | 403) => " (check access_key/secret_key and the bucket policy)",
            Some(301) => " (the bucket is in another region: set `region`)",
            None if e.class == ErrorClass::Connect => " (is the S3 server running?)",
            _ => "",
        };
        ClientError::new(
            e.class,
            "setup",
            format!(
                "{what} bucket `{}` at {}: {}{hint}",
                self.wl.bucket_name, self.wl.endpoint_url, e.message
            ),
        )
    }

    async fn put_many(
        &self,
        conn: &S3Conn,
        items: Vec<(String, usize)>,
    ) -> Result<(), ClientError> {
        let mut stream = futures_util::stream::iter(items.into_iter().map(|(key, pi)| {
            let p = &self.shared.payloads[pi];
            async move {
                conn.put(&key, p.data.clone(), &p.sha256)
                    .await
                    .map_err(|e| e.into_client_error("setup", &format!("put {key}")))
            }
        }))
        .buffer_unordered(8);
        while let Some(r) = stream.next().await {
            r?;
        }
        Ok(())
    }
}

/// One worker's connection: an HTTP client plus what it needs to sign.
struct S3Conn {
    http: reqwest::Client,
    endpoint: Url,
    bucket: String,
    addressing: S3Addressing,
    region: String,
    creds: Credentials,
}

impl S3Conn {
    /// URL and canonical URI for `key` (None: the bucket itself).
    fn target(&self, key: Option<&str>) -> (Url, String) {
        let enc_key = key.map(|k| sigv4::uri_encode(k, true)).unwrap_or_default();
        let mut url = self.endpoint.clone();
        let base = self.endpoint.path().trim_end_matches('/').to_string();
        let path = match self.addressing {
            S3Addressing::Path => {
                if key.is_some() {
                    format!("{base}/{}/{enc_key}", self.bucket)
                } else {
                    format!("{base}/{}", self.bucket)
                }
            }
            S3Addressing::VirtualHost => {
                let host = format!("{}.{}", self.bucket, self.endpoint.host_str().unwrap_or(""));
                let _ = url.set_host(Some(&host));
                format!("{base}/{enc_key}")
            }
        };
        url.set_path(&path);
        // set_path may re-encode; the canonical URI is exactly what goes on the wire.
        let canonical = url.path().to_string();
        (url, canonical)
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        body: Option<Bytes>,
        body_sha256: &str,
    ) -> Result<reqwest::Response, ReqError> {
        let (mut url, canonical_uri) = self.target(key);
        if !query.is_empty() {
            url.set_query(Some(&sigv4::canonical_query(query)));
        }
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        let date = sigv4::amz_date_now();
        let auth = SignRequest {
            method: method.as_str(),
            canonical_uri: &canonical_uri,
            query,
            headers: &[
                ("host", &host),
                ("x-amz-content-sha256", body_sha256),
                ("x-amz-date", &date),
            ],
            payload_sha256: body_sha256,
            amz_date: &date,
            region: &self.region,
            service: "s3",
        }
        .authorization(&self.creds);
        let mut req = self
            .http
            .request(method, url)
            .header("x-amz-content-sha256", body_sha256)
            .header("x-amz-date", date)
            .header("authorization", auth);
        if let Some(b) = body {
            req = req.header("content-length", b.len()).body(b);
        }
        Ok(req.send().await?)
    }

    async fn expect_ok(resp: reqwest::Response) -> Result<reqwest::Response, ReqError> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(ReqError::status(status, &body))
        }
    }

    async fn put(&self, key: &str, data: Bytes, sha256: &str) -> Result<(), ReqError> {
        let r = self
            .send(Method::PUT, Some(key), &[], Some(data), sha256)
            .await?;
        Self::expect_ok(r).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), ReqError> {
        let r = self
            .send(Method::DELETE, Some(key), &[], None, EMPTY_SHA256)
            .await?;
        Self::expect_ok(r).await?;
        Ok(())
    }

    /// ListObjectsV2 of `prefix`: (keys, next continuation token, body bytes).
    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: u32,
    ) -> Result<(Vec<String>, Option<String>, u64), ReqError> {
        let mk = max_keys.to_string();
        let mut q = vec![("list-type", "2"), ("prefix", prefix), ("max-keys", &mk)];
        if let Some(t) = token {
            q.push(("continuation-token", t));
        }
        let r = self.send(Method::GET, None, &q, None, EMPTY_SHA256).await?;
        let body = Self::expect_ok(r).await?.text().await?;
        if !body.contains("<ListBucketResult") {
            return Err(ReqError::new(
                ErrorClass::Protocol,
                format!("not a ListBucketResult: {}", super::util::snippet(&body)),
            ));
        }
        let keys = xml_values(&body, "Key");
        let next = if xml_values(&body, "IsTruncated").first().map(String::as_str) == Some("true") {
            xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next()
        } else {
            None
        };
        Ok((keys, next, body.len() as u64))
    }
}

/// Text of every `<tag>…</tag>` in an XML document (entities unescaped).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

impl Client for S3Client {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let conn = self.conn()?;
            // HEAD bucket: exists? reachable? credentials accepted?
            let head = conn
                .send(Method::HEAD, None, &[], None, EMPTY_SHA256)
                .await
                .map_err(|e| self.bucket_error(e, "cannot reach"))?;
            match head.status().as_u16() {
                200 => {}
                404 => {
                    let body = if self.wl.region != "us-east-1" {
                        format!(
                            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                             <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                            self.wl.region
                        )
                    } else {
                        String::new()
                    };
                    let hash = sigv4::sha256_hex(body.as_bytes());
                    let r = conn
                        .send(
                            Method::PUT,
                            None,
                            &[],
                            (!body.is_empty()).then(|| Bytes::from(body)),
                            &hash,
                        )
                        .await
                        .map_err(|e| self.bucket_error(e, "cannot create"))?;
                    S3Conn::expect_ok(r)
                        .await
                        .map_err(|e| self.bucket_error(e, "cannot create"))?;
                    self.shared.created_bucket.store(true, Ordering::Relaxed);
                    tracing::info!(service = %self.name, bucket = %self.wl.bucket_name, "created bucket");
                }
                s => {
                    return Err(self.bucket_error(ReqError::status(s, ""), "cannot use"));
                }
            }
            let mut ws = Vec::new();
            for (pi, p) in self.shared.payloads.iter().enumerate() {
                for i in 0..WORKING_SET_PER_SIZE {
                    ws.push((format!("{}/ws/{}-{i}", self.prefix, p.size), pi));
                }
            }
            self.put_many(&conn, ws.clone()).await?;
            let del: Vec<(String, usize)> = (0..DELETABLE_IN_SETUP)
                .map(|i| (format!("{}/del/{i}", self.prefix), 0))
                .collect();
            self.put_many(&conn, del.clone()).await?;
            *self.shared.working_set.lock().expect("lock") = ws;
            *self.shared.deletable.lock().expect("lock") =
                del.into_iter().map(|(k, _)| k).collect();
            Ok(())
        })
    }

    fn connect(&self, worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let conn = self.conn()?;
            let ws = self.shared.working_set.lock().expect("lock").clone();
            Ok(Box::new(S3Worker {
                conn,
                worker,
                wl: self.wl.clone(),
                shared: self.shared.clone(),
                ws,
                prefix: self.prefix.clone(),
            }) as Box<dyn Worker>)
        })
    }

    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async move {
            let mut f = crate::runner::provenance::Facts::new();
            let Ok(conn) = self.conn() else { return f };
            if let Ok(r) = conn.send(Method::HEAD, None, &[], None, EMPTY_SHA256).await {
                if let Some(s) = r
                    .headers()
                    .get(reqwest::header::SERVER)
                    .and_then(|v| v.to_str().ok())
                {
                    f.insert("service.server".into(), s.to_string());
                }
            }
            f
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            if !self.wl.cleanup {
                return Ok(Vec::new());
            }
            let conn = self.conn()?;
            let mut token: Option<String> = None;
            let mut deleted = 0u64;
            loop {
                let (keys, next, _) = conn
                    .list(&format!("{}/", self.prefix), token.as_deref(), 1000)
                    .await
                    .map_err(|e| e.into_client_error("teardown", "list for cleanup"))?;
                for chunk in keys.chunks(16) {
                    let rs =
                        futures_util::future::join_all(chunk.iter().map(|k| conn.delete(k))).await;
                    for r in rs {
                        r.map_err(|e| e.into_client_error("teardown", "delete for cleanup"))?;
                        deleted += 1;
                    }
                }
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            if self.shared.created_bucket.load(Ordering::Relaxed) {
                // Best effort: another run may have put objects in it meanwhile.
                if let Ok(r) = conn
                    .send(Method::DELETE, None, &[], None, EMPTY_SHA256)
                    .await
                {
                    if !r.status().is_success() {
                        tracing::warn!(bucket = %self.wl.bucket_name, status = r.status().as_u16(), "bucket created by this run not deleted");
                    }
                }
            }
            tracing::info!(service = %self.name, deleted, "s3 cleanup done");
            Ok(Vec::new())
        })
    }
}

struct S3Worker {
    conn: S3Conn,
    worker: u32,
    wl: S3Workload,
    shared: Arc<Shared>,
    ws: Vec<(String, usize)>,
    prefix: String,
}

impl Worker for S3Worker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.wl.mix.pick(ctx.rng.next_f64()) {
                S3Op::Put => {
                    let size = self.wl.object_sizes.pick(ctx.rng.next_f64());
                    let p = &self.shared.payloads[self.shared.payload_for(size)];
                    let n = self.shared.seq.fetch_add(1, Ordering::Relaxed);
                    let key = format!("{}/run/w{}-{n}", self.prefix, self.worker);
                    match self.conn.put(&key, p.data.clone(), &p.sha256).await {
                        Ok(()) => {
                            self.shared.deletable.lock().expect("lock").push(key);
                            Outcome {
                                op: "put",
                                http_status: Some(200),
                                size_bytes: p.size,
                                bytes_sent: p.size,
                                ..Default::default()
                            }
                        }
                        Err(e) => with_size(e.into_outcome("put"), p.size),
                    }
                }
                S3Op::Get => {
                    let (key, pi) = &self.ws[ctx.rng.below(self.ws.len() as u64) as usize];
                    let expected = self.shared.payloads[*pi].size;
                    let r = match self
                        .conn
                        .send(Method::GET, Some(key), &[], None, EMPTY_SHA256)
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => return with_size(e.into_outcome("get"), expected),
                    };
                    let status = r.status().as_u16();
                    if !r.status().is_success() {
                        let body = r.text().await.unwrap_or_default();
                        return with_size(
                            ReqError::status(status, &body).into_outcome("get"),
                            expected,
                        );
                    }
                    let mut stream = r.bytes_stream();
                    let mut n = 0u64;
                    while let Some(chunk) = stream.next().await {
                        match chunk {
                            Ok(c) => {
                                if n == 0 && !c.is_empty() {
                                    ctx.mark_first_byte();
                                }
                                n += c.len() as u64;
                            }
                            Err(e) => {
                                let mut o = ReqError::from(e).into_outcome("get");
                                o.bytes_received = n;
                                return with_size(o, expected);
                            }
                        }
                    }
                    let mut o = Outcome {
                        op: "get",
                        http_status: Some(status),
                        size_bytes: expected,
                        bytes_received: n,
                        ..Default::default()
                    };
                    if n != expected {
                        o.error = Some(ErrorClass::Validation);
                        o.error_message =
                            Some(format!("get {key}: {n} bytes, expected {expected}"));
                    }
                    o
                }
                S3Op::List => {
                    match self
                        .conn
                        .list(&format!("{}/ws/", self.prefix), None, 1000)
                        .await
                    {
                        Ok((keys, _, bytes)) => {
                            ctx.mark_first_byte();
                            let mut o = Outcome {
                                op: "list",
                                http_status: Some(200),
                                bytes_received: bytes,
                                ..Default::default()
                            };
                            if keys.len() < self.ws.len().min(1000) {
                                o.error = Some(ErrorClass::Validation);
                                o.error_message = Some(format!(
                                    "list returned {} keys, the working set has {}",
                                    keys.len(),
                                    self.ws.len()
                                ));
                            }
                            o
                        }
                        Err(e) => e.into_outcome("list"),
                    }
                }
                S3Op::Delete => {
                    let key = self.shared.deletable.lock().expect("lock").pop();
                    let key = key.unwrap_or_else(|| {
                        // Nothing of ours left to delete: S3 deletes of absent keys succeed
                        // (204), so this still measures a DELETE round trip.
                        format!("{}/run/absent-{}", self.prefix, ctx.seq)
                    });
                    match self.conn.delete(&key).await {
                        Ok(()) => Outcome {
                            op: "delete",
                            http_status: Some(204),
                            ..Default::default()
                        },
                        Err(e) => e.into_outcome("delete"),
                    }
                }
            }
        })
    }
}

fn with_size(mut o: Outcome, size: u64) -> Outcome {
    o.size_bytes = size;
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_lists() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key></Contents>\
                 <Contents><Key>c</Key></Contents><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>";
        assert_eq!(xml_values(x, "Key"), vec!["a&b", "c"]);
        assert_eq!(xml_values(x, "NextContinuationToken"), vec!["tok"]);
    }

    fn conn(endpoint: &str, addressing: S3Addressing) -> S3Conn {
        S3Conn {
            http: reqwest::Client::new(),
            endpoint: Url::parse(endpoint).unwrap(),
            bucket: "bkt".into(),
            addressing,
            region: "us-east-1".into(),
            creds: Credentials {
                access_key: "a".into(),
                secret_key: "s".into(),
            },
        }
    }

    #[test]
    fn path_and_virtual_host_urls() {
        let c = conn("http://127.0.0.1:9000", S3Addressing::Path);
        let (u, canon) = c.target(Some("dir/a b.bin"));
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/bkt/dir/a%20b.bin");
        assert_eq!(canon, "/bkt/dir/a%20b.bin");
        let (u, canon) = c.target(None);
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/bkt");
        assert_eq!(canon, "/bkt");
        let c = conn("https://s3.example.org", S3Addressing::VirtualHost);
        let (u, canon) = c.target(Some("k"));
        assert_eq!(u.as_str(), "https://bkt.s3.example.org/k");
        assert_eq!(canon, "/k");
        let (u, canon) = c.target(None);
        assert_eq!(u.as_str(), "https://bkt.s3.example.org/");
        assert_eq!(canon, "/");
    }
}
