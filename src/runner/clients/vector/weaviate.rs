//! Weaviate over its REST v1 API + GraphQL (`nearVector`), as documented by Weaviate. No
//! Weaviate server installs on the test machines: this client is tested against a protocol
//! fixture (tests/weaviate_fixture.rs), not the real server.
//!
//! - readiness: the backend's health path in `crate::kinds::vector` (`GET /v1/.well-known/ready`)
//! - class: `DELETE /v1/schema/{Class}`, then `POST /v1/schema` with `vectorizer: none`,
//!   `vectorIndexConfig.distance: l2-squared` and one int property `n` (the vector number)
//! - insert/update: `POST /v1/batch/objects {"objects": [{"class", "id", "properties": {"n"},
//!   "vector"}]}` (the same id again replaces the object); per-object errors are
//!   `result.errors.error[].message`
//! - search: `POST /v1/graphql` with `{ Get { Class(nearVector: {vector: [...]}, limit: k)
//!   { n _additional { id distance } } } }`
//! - delete: `DELETE /v1/batch/objects` with a `where` filter `id ContainsAny [...]`
//! - ids: vector number n ↔ UUID `00000000-0000-4000-8000-{n:012x}`.

use super::{health_path, http_base, json_response, Backend};
use crate::kinds::VectorBackend;
use crate::recipe::{Service, VectorDbWorkload};
use crate::runner::client::{BoxFuture, ClientError, ErrorClass};
use crate::runner::clients::util::{http_client, snippet, ReqError};
use serde_json::json;

pub struct Weaviate {
    base: String,
    class: String,
    timeout_s: f64,
}

/// The Weaviate class name for a collection name: `/[A-Z][_0-9A-Za-z]*/`.
pub fn class_name(collection: &str) -> String {
    let mut s: String = collection
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match s.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => s[..1].make_ascii_uppercase(),
        _ => s.insert(0, 'C'),
    }
    s
}

pub fn uuid_of(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub fn number_of(uuid: &str) -> Option<u64> {
    let tail = uuid.strip_prefix("00000000-0000-4000-8000-")?;
    u64::from_str_radix(tail, 16).ok()
}

impl Weaviate {
    pub fn new(svc: &Service, wl: &VectorDbWorkload) -> Result<Self, ClientError> {
        Ok(Weaviate {
            base: http_base(svc),
            class: class_name(&wl.collection_name),
            timeout_s: svc.load.timeout_s,
        })
    }

    async fn send(
        &self,
        c: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(serde_json::Value, u64), ReqError> {
        let mut req = c.request(method, format!("{}{path}", self.base));
        let mut n = 0;
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).expect("JSON");
            n = bytes.len() as u64;
            req = req.header("content-type", "application/json").body(bytes);
        }
        Ok((json_response(req.send().await?).await?, n))
    }
}

fn setup_error(what: &str, base: &str, e: ReqError) -> ClientError {
    let hint = if e.class == ErrorClass::Connect {
        " (is Weaviate running?)"
    } else {
        ""
    };
    ClientError::new(
        e.class,
        "setup",
        format!("weaviate {base}: {what}: {}{hint}", e.message),
    )
}

/// Errors reported inside a 200 batch answer.
fn batch_errors(v: &serde_json::Value) -> Option<String> {
    let arr = v.as_array()?;
    let msgs: Vec<String> = arr
        .iter()
        .filter_map(|o| o["result"]["errors"]["error"].as_array())
        .flatten()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect();
    (!msgs.is_empty()).then(|| format!("{} object errors, first: {}", msgs.len(), msgs[0]))
}

impl Backend for Weaviate {
    type Conn = reqwest::Client;

    fn describe(&self) -> String {
        format!("weaviate {} class `{}`", self.base, self.class)
    }

    fn open(&self) -> Result<reqwest::Client, ClientError> {
        http_client(self.timeout_s)
    }

    fn prepare<'a>(&'a self, c: &'a reqwest::Client) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            self.send(
                c,
                reqwest::Method::GET,
                health_path(VectorBackend::Weaviate),
                None,
            )
            .await
            .map_err(|e| setup_error("ready", &self.base, e))?;
            match self
                .send(
                    c,
                    reqwest::Method::DELETE,
                    &format!("/v1/schema/{}", self.class),
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.http_status == Some(404) => {}
                Err(e) => return Err(setup_error("delete old class", &self.base, e)),
            }
            let schema = json!({
                "class": self.class,
                "description": "factorybench vectors",
                "vectorizer": "none",
                "vectorIndexType": "hnsw",
                "vectorIndexConfig": {"distance": "l2-squared"},
                "properties": [{"name": "n", "dataType": ["int"]}],
            });
            self.send(c, reqwest::Method::POST, "/v1/schema", Some(&schema))
                .await
                .map_err(|e| setup_error("create class", &self.base, e))?;
            Ok(())
        })
    }

    fn insert<'a>(
        &'a self,
        c: &'a reqwest::Client,
        ids: &'a [u64],
        vecs: &'a [&'a [f32]],
        _upsert: bool,
    ) -> BoxFuture<'a, Result<u64, ReqError>> {
        Box::pin(async move {
            let objects: Vec<serde_json::Value> = ids
                .iter()
                .zip(vecs)
                .map(|(n, v)| {
                    json!({"class": self.class, "id": uuid_of(*n), "properties": {"n": n}, "vector": v})
                })
                .collect();
            let (v, sent) = self
                .send(
                    c,
                    reqwest::Method::POST,
                    "/v1/batch/objects",
                    Some(&json!({"objects": objects})),
                )
                .await?;
            match batch_errors(&v) {
                Some(m) => Err(ReqError::new(ErrorClass::Validation, m)),
                None => Ok(sent),
            }
        })
    }

    fn search<'a>(
        &'a self,
        c: &'a reqwest::Client,
        q: &'a [f32],
        k: u32,
    ) -> BoxFuture<'a, Result<Vec<u64>, ReqError>> {
        Box::pin(async move {
            let vector = serde_json::to_string(q).expect("JSON");
            let query = format!(
                "{{ Get {{ {}(nearVector: {{vector: {vector}}}, limit: {k}) {{ n _additional {{ id distance }} }} }} }}",
                self.class
            );
            let (v, _) = self
                .send(
                    c,
                    reqwest::Method::POST,
                    "/v1/graphql",
                    Some(&json!({ "query": query })),
                )
                .await?;
            if let Some(errs) = v["errors"].as_array().filter(|e| !e.is_empty()) {
                return Err(ReqError::new(
                    ErrorClass::Protocol,
                    format!(
                        "GraphQL error: {}",
                        errs[0]["message"].as_str().unwrap_or("?")
                    ),
                ));
            }
            let hits = v["data"]["Get"][&self.class].as_array().ok_or_else(|| {
                ReqError::new(
                    ErrorClass::Protocol,
                    format!("no data.Get.{} in {}", self.class, snippet(&v.to_string())),
                )
            })?;
            hits.iter()
                .map(|h| {
                    h["_additional"]["id"]
                        .as_str()
                        .and_then(number_of)
                        .or_else(|| h["n"].as_u64())
                        .ok_or_else(|| {
                            ReqError::new(ErrorClass::Validation, format!("unexpected hit {h}"))
                        })
                })
                .collect()
        })
    }

    fn delete<'a>(
        &'a self,
        c: &'a reqwest::Client,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<(), ReqError>> {
        Box::pin(async move {
            let uuids: Vec<String> = ids.iter().map(|n| uuid_of(*n)).collect();
            let body = json!({
                "match": {
                    "class": self.class,
                    "where": {"path": ["id"], "operator": "ContainsAny", "valueTextArray": uuids},
                },
                "output": "minimal",
            });
            let (v, _) = self
                .send(c, reqwest::Method::DELETE, "/v1/batch/objects", Some(&body))
                .await?;
            match v["results"]["failed"].as_u64() {
                Some(0) | None => Ok(()),
                Some(f) => Err(ReqError::new(
                    ErrorClass::Validation,
                    format!("batch delete: {f} objects failed"),
                )),
            }
        })
    }

    fn version_endpoint(&self) -> Option<(String, &'static str, &'static str)> {
        Some((format!("{}/v1/meta", self.base), "version", "weaviate"))
    }

    fn drop_collection<'a>(
        &'a self,
        c: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            match self
                .send(
                    c,
                    reqwest::Method::DELETE,
                    &format!("/v1/schema/{}", self.class),
                    None,
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.http_status == Some(404) => Ok(()),
                Err(e) => Err(e.into_client_error("teardown", "drop class")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(class_name("benchmark_collection"), "Benchmark_collection");
        assert_eq!(class_name("9x-y"), "C9x_y");
        assert_eq!(uuid_of(255), "00000000-0000-4000-8000-0000000000ff");
        assert_eq!(number_of(&uuid_of(123_456)), Some(123_456));
        assert_eq!(number_of("not-a-uuid"), None);
    }
}
