//! A Weaviate protocol fixture: the REST v1 + GraphQL subset the client uses, with the request
//! and response shapes of Weaviate's documentation (schema, batch objects, batch delete with a
//! `where` filter, `Get { Class(nearVector: {vector: [...]}, limit: k) }`). Searches are exact
//! (brute-force squared L2), so recall against it is 1. Plain HTTP/1.1 over tokio, keep-alive.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
struct Db {
    /// class -> id -> (n, vector)
    classes: HashMap<String, BTreeMap<String, (Value, Vec<f32>)>>,
    log: Vec<String>,
    fail_batches: bool,
}

pub struct Fixture {
    pub url: String,
    db: Arc<Mutex<Db>>,
}

impl Fixture {
    pub fn log(&self) -> Vec<String> {
        self.db.lock().unwrap().log.clone()
    }
    pub fn classes(&self) -> Vec<String> {
        self.db.lock().unwrap().classes.keys().cloned().collect()
    }
    pub fn set_fail_batches(&self, on: bool) {
        self.db.lock().unwrap().fail_batches = on;
    }
}

pub async fn start() -> Fixture {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let db = Arc::new(Mutex::new(Db::default()));
    let d = db.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let d = d.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let (status, resp) = handle(&d, &method, &path, &body);
                    let text = resp.to_string();
                    let out = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if w.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Fixture { url, db }
}

fn err(status: u16, msg: &str) -> (u16, Value) {
    (status, json!({"error": [{"message": msg}]}))
}

fn handle(db: &Mutex<Db>, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut db = db.lock().unwrap();
    db.log.push(format!("{method} {path}"));
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return err(400, &format!("invalid JSON: {e}")),
        }
    };
    match (method, path) {
        ("GET", "/v1/.well-known/ready") => (200, Value::Null),
        ("POST", "/v1/schema") => {
            let Some(class) = body["class"].as_str() else {
                return err(422, "class is required");
            };
            if body["vectorizer"] != "none" {
                return err(422, "this fixture only knows vectorizer none");
            }
            if db.classes.contains_key(class) {
                return err(422, &format!("class name {class:?} already exists"));
            }
            db.classes.insert(class.to_string(), BTreeMap::new());
            (200, body)
        }
        ("DELETE", p) if p.starts_with("/v1/schema/") => {
            let class = &p["/v1/schema/".len()..];
            db.classes.remove(class);
            (200, Value::Null)
        }
        ("POST", "/v1/batch/objects") => {
            let fail = db.fail_batches;
            let Some(objs) = body["objects"].as_array() else {
                return err(422, "objects is required");
            };
            let mut out = Vec::new();
            for o in objs {
                let class = o["class"].as_str().unwrap_or("");
                let id = o["id"].as_str().unwrap_or("").to_string();
                let vector: Vec<f32> = o["vector"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect())
                    .unwrap_or_default();
                let mut res = o.clone();
                let error = if fail {
                    Some("vector lengths don't match".to_string())
                } else if let Some(c) = db.classes.get_mut(class) {
                    let dim = c.values().next().map(|(_, v)| v.len());
                    if dim.is_some_and(|d| d != vector.len()) {
                        Some(format!(
                            "vector lengths don't match: {} vs {}",
                            dim.unwrap(),
                            vector.len()
                        ))
                    } else {
                        c.insert(id, (o["properties"]["n"].clone(), vector));
                        None
                    }
                } else {
                    Some(format!("class {class:?} not found"))
                };
                res["result"] = match error {
                    Some(m) => json!({"errors": {"error": [{"message": m}]}}),
                    None => json!({}),
                };
                out.push(res);
            }
            (200, Value::Array(out))
        }
        ("DELETE", "/v1/batch/objects") => {
            let class = body["match"]["class"].as_str().unwrap_or("");
            let w = &body["match"]["where"];
            if w["path"] != json!(["id"]) || w["operator"] != "ContainsAny" {
                return err(422, "this fixture only knows where id ContainsAny");
            }
            let Some(c) = db.classes.get_mut(class) else {
                return err(422, &format!("class {class:?} not found"));
            };
            let mut n = 0;
            for id in w["valueTextArray"].as_array().into_iter().flatten() {
                if c.remove(id.as_str().unwrap_or("")).is_some() {
                    n += 1;
                }
            }
            (
                200,
                json!({"match": body["match"], "output": "minimal", "dryRun": false,
                       "results": {"matches": n, "limit": 10000, "successful": n, "failed": 0}}),
            )
        }
        ("POST", "/v1/graphql") => {
            let q = body["query"].as_str().unwrap_or("");
            let parsed = (|| {
                let after_get = q.split("Get").nth(1)?.trim_start().strip_prefix('{')?;
                let class = after_get.trim_start().split('(').next()?.trim().to_string();
                let vec_text = q.split("vector:").nth(1)?;
                let vec_text = &vec_text[vec_text.find('[')?..=vec_text.find(']')?];
                let vector: Vec<f32> = serde_json::from_str(vec_text).ok()?;
                let limit: usize = q
                    .split("limit:")
                    .nth(1)?
                    .trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()?;
                Some((class, vector, limit))
            })();
            let Some((class, vector, limit)) = parsed else {
                return (
                    200,
                    json!({"data": null, "errors": [{"message": "syntax error"}]}),
                );
            };
            let Some(c) = db.classes.get(&class) else {
                return (
                    200,
                    json!({"data": null, "errors": [{"message": format!("Cannot query field {class:?} on type \"GetObjectsObj\".")}]}),
                );
            };
            let mut hits: Vec<(f32, &String, &Value)> = c
                .iter()
                .map(|(id, (n, v))| {
                    let d = v.iter().zip(&vector).map(|(a, b)| (a - b) * (a - b)).sum();
                    (d, id, n)
                })
                .collect();
            hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
            let items: Vec<Value> = hits
                .into_iter()
                .take(limit)
                .map(|(d, id, n)| json!({"n": n, "_additional": {"id": id, "distance": d}}))
                .collect();
            (200, json!({"data": {"Get": {class: items}}}))
        }
        _ => err(404, "not found"),
    }
}
