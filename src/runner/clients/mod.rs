//! One client module per service kind, and the factory that picks one for a service: the
//! client constructor of each kind's descriptor ([`crate::kinds`]). A new kind adds its module
//! and its arm in [`make_client`]; a new vector backend only its arm in [`vector::make`].

mod epoll_driver;
pub mod file_storage;
pub mod http;
mod http_decode;
mod http_driver;
mod http_lean;
mod http_target;
pub mod llm;

use super::client::{Client, ClientError};
use crate::recipe::{Service, Workload};
use std::sync::Arc;

pub mod postgres;
pub mod s3;
pub mod tensor;
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
        Workload::Vectordb(wl) => vector::make(svc, wl),
        Workload::Llm(_) => llm::make(svc),
        Workload::Tensor(wl) => Ok(Arc::new(tensor::TensorClient::new(svc, wl)?)),
    }
}
