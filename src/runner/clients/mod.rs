//! One client module per service kind, and the factory that picks one for a service.
//! Each engineer adds their module and its match arm in [`make_client`].

pub mod file_storage;
pub mod http;
pub mod llm;

use super::client::{Client, ClientError};
use crate::recipe::{Service, VectorBackend, Workload};
use std::sync::Arc;

pub mod postgres;
pub mod s3;
pub mod util;
pub mod vector;

/// Build the client for a service (no network I/O here; `Client::setup` does that).
pub fn make_client(svc: &Service) -> Result<Arc<dyn Client>, ClientError> {
    match &svc.workload {
        Workload::FileStorage(w) => Ok(Arc::new(file_storage::FileStorageClient::new(
            w,
            svc.load.seed,
        ))),
        Workload::Http(w) => Ok(Arc::new(http::HttpClient::new(svc, w)?)),
        Workload::Database(wl) => Ok(Arc::new(postgres::PostgresClient::new(svc, wl)?)),
        Workload::S3(wl) => Ok(Arc::new(s3::S3Client::new(svc, wl)?)),
        Workload::Vectordb(wl) => match wl.backend {
            VectorBackend::Chromadb => Ok(Arc::new(vector::VectorClient::new(
                svc,
                wl,
                vector::chroma::Chroma::new(svc, wl)?,
            )?)),
            VectorBackend::Weaviate => Ok(Arc::new(vector::VectorClient::new(
                svc,
                wl,
                vector::weaviate::Weaviate::new(svc, wl)?,
            )?)),
            VectorBackend::Faiss => Ok(Arc::new(vector::VectorClient::new(
                svc,
                wl,
                vector::faiss::Faiss::new(svc, wl)?,
            )?)),
        },
        Workload::Llm(_) => llm::make(svc),
    }
}
