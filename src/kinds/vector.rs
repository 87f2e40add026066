//! The vector-database backends (`service_type: vectordb`, `backend: …`): one descriptor each.
//!
//! A new backend adds its variant to [`VectorBackend`], its [`BackendKind`] and its entry in
//! [`BACKENDS`] here, its client in `runner/clients/vector/<name>.rs`, and one arm in
//! `runner/clients/vector/mod.rs` (`make`). Recipe decoding, ports, readiness and launch
//! arguments follow from the entry.

use super::{no_launch, Health, Launch, LaunchCtx, Server, Word, BIND_HOST};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorBackend {
    Chromadb,
    Faiss,
    Weaviate,
}

/// Everything about one vector backend, as [`super::Kind`] is for a `service_type`: unit
/// structs below, listed in [`BACKENDS`] and returned by [`VectorBackend::spec`].
pub trait BackendKind: Sync {
    fn backend(&self) -> VectorBackend;
    /// `backend:` spellings; the first is the canonical one.
    fn names(&self) -> &'static [&'static str];
    /// Default port, health check and launch function (in process: no port, nothing to wait
    /// for, nothing to launch).
    fn server(&self) -> &'static Server;
}

/// The registry: every backend; the order is the order of `backend:` names in messages.
pub static BACKENDS: [&dyn BackendKind; 3] = [&Chroma, &Faiss, &Weaviate];

pub struct Chroma;

static CHROMA_SERVER: Server = Server {
    default_port: Some(8000),
    health: Health::HttpOk {
        path: "/api/v2/heartbeat",
        bearer: false,
    },
    launch: launch_chroma,
};

impl BackendKind for Chroma {
    fn backend(&self) -> VectorBackend {
        VectorBackend::Chromadb
    }
    fn names(&self) -> &'static [&'static str] {
        &["chromadb", "chroma"]
    }
    fn server(&self) -> &'static Server {
        &CHROMA_SERVER
    }
}

pub struct Faiss;

static FAISS_SERVER: Server = Server {
    default_port: None,
    health: Health::Nothing,
    launch: no_launch,
};

impl BackendKind for Faiss {
    fn backend(&self) -> VectorBackend {
        VectorBackend::Faiss
    }
    fn names(&self) -> &'static [&'static str] {
        &["faiss"]
    }
    /// In process: no server, no port, nothing to wait for.
    fn server(&self) -> &'static Server {
        &FAISS_SERVER
    }
}

pub struct Weaviate;

static WEAVIATE_SERVER: Server = Server {
    default_port: Some(8080),
    health: Health::HttpOk {
        path: "/v1/.well-known/ready",
        bearer: false,
    },
    launch: launch_weaviate,
};

impl BackendKind for Weaviate {
    fn backend(&self) -> VectorBackend {
        VectorBackend::Weaviate
    }
    fn names(&self) -> &'static [&'static str] {
        &["weaviate"]
    }
    fn server(&self) -> &'static Server {
        &WEAVIATE_SERVER
    }
}

impl VectorBackend {
    /// This backend's entry in [`BACKENDS`].
    pub fn spec(self) -> &'static dyn BackendKind {
        match self {
            VectorBackend::Chromadb => &Chroma,
            VectorBackend::Faiss => &Faiss,
            VectorBackend::Weaviate => &Weaviate,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().names()[0]
    }
}

/// Every `backend:` spelling with its backend, in descriptor order.
pub fn backend_names() -> Vec<(&'static str, VectorBackend)> {
    BACKENDS
        .iter()
        .flat_map(|s| s.names().iter().map(move |n| (*n, s.backend())))
        .collect()
}

fn launch_chroma(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.args
        .extend(["run", "--host", BIND_HOST].into_iter().map(Word::lit));
    if cx.port.is_some() {
        l.args
            .extend([Word::lit("--port"), Word::lit(cx.port_str())]);
    }
    l.args.extend([Word::lit("--path"), Word::lit("/data")]);
    l.scratch.push(("data".into(), "/data".into()));
    l
}

fn launch_weaviate(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    for (k, v) in [
        ("PERSISTENCE_DATA_PATH", "/var/lib/weaviate"),
        ("AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "true"),
        ("DEFAULT_VECTORIZER_MODULE", "none"),
        ("CLUSTER_HOSTNAME", "node1"),
    ] {
        l.env.push((k.into(), v.into()));
    }
    l.args
        .extend(["--host", BIND_HOST].into_iter().map(Word::lit));
    if cx.port.is_some() {
        l.args
            .extend([Word::lit("--port"), Word::lit(cx.port_str())]);
    }
    l.args
        .extend(["--scheme", "http"].into_iter().map(Word::lit));
    l.scratch.push(("data".into(), "/var/lib/weaviate".into()));
    l
}
