//! ChromaDB over its HTTP v2 API (`/api/v2/...`, tenant `default_tenant`, database
//! `default_database`).
//!
//! - readiness: the backend's health path in `crate::kinds::vector` (`GET /api/v2/heartbeat`),
//!   asked again before the collection is made
//! - `DELETE .../collections/{name}` then `POST .../collections {"name", "metadata":
//!   {"hnsw:space": "l2"}}` → collection id
//! - `POST .../collections/{id}/add|upsert {"ids", "embeddings"}`,
//!   `POST .../query {"query_embeddings": [q], "n_results": k, "include": ["distances"]}`,
//!   `POST .../delete {"ids"}`; ids are the decimal vector numbers.

use super::{health_path, http_base, json_response, Backend};
use crate::kinds::VectorBackend;
use crate::recipe::{Service, VectorDbWorkload};
use crate::runner::client::{BoxFuture, ClientError, ErrorClass};
use crate::runner::clients::util::{http_client, ReqError};
use serde_json::json;
use std::sync::OnceLock;

pub const TENANT: &str = "default_tenant";
pub const DATABASE: &str = "default_database";

pub struct Chroma {
    base: String,
    collection: String,
    timeout_s: f64,
    id: OnceLock<String>,
}

impl Chroma {
    pub fn new(svc: &Service, wl: &VectorDbWorkload) -> Result<Self, ClientError> {
        Ok(Chroma {
            base: http_base(svc),
            collection: wl.collection_name.clone(),
            timeout_s: svc.load.timeout_s,
            id: OnceLock::new(),
        })
    }

    fn collections(&self) -> String {
        format!(
            "{}/api/v2/tenants/{TENANT}/databases/{DATABASE}/collections",
            self.base
        )
    }

    fn coll(&self, op: &str) -> String {
        format!(
            "{}/{}/{op}",
            self.collections(),
            self.id.get().map(String::as_str).unwrap_or("")
        )
    }

    async fn post(
        &self,
        c: &reqwest::Client,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(serde_json::Value, u64), ReqError> {
        let bytes = serde_json::to_vec(body).expect("JSON");
        let n = bytes.len() as u64;
        let r = c
            .post(url)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await?;
        Ok((json_response(r).await?, n))
    }
}

fn setup_error(what: &str, base: &str, e: ReqError) -> ClientError {
    let hint = if e.class == ErrorClass::Connect {
        " (is ChromaDB running?)"
    } else {
        ""
    };
    ClientError::new(
        e.class,
        "setup",
        format!("chromadb {base}: {what}: {}{hint}", e.message),
    )
}

impl Backend for Chroma {
    type Conn = reqwest::Client;

    fn describe(&self) -> String {
        format!("chromadb {} collection `{}`", self.base, self.collection)
    }

    fn open(&self) -> Result<reqwest::Client, ClientError> {
        http_client(self.timeout_s)
    }

    fn prepare<'a>(&'a self, c: &'a reqwest::Client) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            let hb = format!("{}{}", self.base, health_path(VectorBackend::Chromadb));
            let r = c
                .get(&hb)
                .send()
                .await
                .map_err(|e| setup_error("heartbeat", &self.base, e.into()))?;
            json_response(r)
                .await
                .map_err(|e| setup_error("heartbeat", &self.base, e))?;
            // A fresh collection, so recall is measured on exactly the loaded vectors.
            let del = c
                .delete(format!("{}/{}", self.collections(), self.collection))
                .send()
                .await
                .map_err(|e| setup_error("delete old collection", &self.base, e.into()))?;
            let st = del.status().as_u16();
            if st != 404 && !(200..300).contains(&st) {
                let body = del.text().await.unwrap_or_default();
                return Err(setup_error(
                    "delete old collection",
                    &self.base,
                    ReqError::status(st, &body),
                ));
            }
            let (v, _) = self
                .post(
                    c,
                    &self.collections(),
                    &json!({"name": self.collection, "metadata": {"hnsw:space": "l2"}}),
                )
                .await
                .map_err(|e| setup_error("create collection", &self.base, e))?;
            let id = v["id"].as_str().ok_or_else(|| {
                ClientError::new(
                    ErrorClass::Protocol,
                    "setup",
                    format!("chromadb: create collection answered without an id: {v}"),
                )
            })?;
            let _ = self.id.set(id.to_string());
            Ok(())
        })
    }

    fn insert<'a>(
        &'a self,
        c: &'a reqwest::Client,
        ids: &'a [u64],
        vecs: &'a [&'a [f32]],
        upsert: bool,
    ) -> BoxFuture<'a, Result<u64, ReqError>> {
        Box::pin(async move {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            let url = self.coll(if upsert { "upsert" } else { "add" });
            let (_, n) = self
                .post(c, &url, &json!({"ids": ids, "embeddings": vecs}))
                .await?;
            Ok(n)
        })
    }

    fn search<'a>(
        &'a self,
        c: &'a reqwest::Client,
        q: &'a [f32],
        k: u32,
    ) -> BoxFuture<'a, Result<Vec<u64>, ReqError>> {
        Box::pin(async move {
            let (v, _) = self
                .post(
                    c,
                    &self.coll("query"),
                    &json!({"query_embeddings": [q], "n_results": k, "include": ["distances"]}),
                )
                .await?;
            let ids = v["ids"][0].as_array().ok_or_else(|| {
                ReqError::new(
                    ErrorClass::Protocol,
                    format!(
                        "query answer without ids: {}",
                        crate::runner::clients::util::snippet(&v.to_string())
                    ),
                )
            })?;
            ids.iter()
                .map(|i| {
                    i.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        ReqError::new(ErrorClass::Validation, format!("unexpected id {i}"))
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
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            self.post(c, &self.coll("delete"), &json!({"ids": ids}))
                .await?;
            Ok(())
        })
    }

    fn version_endpoint(&self) -> Option<(String, &'static str, &'static str)> {
        Some((format!("{}/api/v2/version", self.base), "", "chromadb"))
    }

    fn drop_collection<'a>(
        &'a self,
        c: &'a reqwest::Client,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            let r = c
                .delete(format!("{}/{}", self.collections(), self.collection))
                .send()
                .await
                .map_err(|e| ReqError::from(e).into_client_error("teardown", "drop collection"))?;
            let st = r.status().as_u16();
            if st == 404 || r.status().is_success() {
                Ok(())
            } else {
                let body = r.text().await.unwrap_or_default();
                Err(ReqError::status(st, &body).into_client_error("teardown", "drop collection"))
            }
        })
    }
}
