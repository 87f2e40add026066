//! One client module per service kind, and the factory that picks one for a service.
//! Each engineer adds their module and its match arm in [`make_client`].

pub mod file_storage;
pub mod http;

use super::client::{Client, ClientError, ErrorClass};
use crate::recipe::{Service, Workload};
use std::sync::Arc;

/// Build the client for a service (no network I/O here; `Client::setup` does that).
pub fn make_client(svc: &Service) -> Result<Arc<dyn Client>, ClientError> {
    match &svc.workload {
        Workload::FileStorage(w) => Ok(Arc::new(file_storage::FileStorageClient::new(
            w,
            svc.load.seed,
        ))),
        Workload::Http(w) => Ok(Arc::new(http::HttpClient::new(svc, w)?)),
        Workload::Database(_) => Err(not_yet("database")),
        Workload::S3(_) => Err(not_yet("s3")),
        Workload::Vectordb(_) => Err(not_yet("vectordb")),
        Workload::Llm(_) => Err(not_yet("llm")),
    }
}

fn not_yet(kind: &str) -> ClientError {
    ClientError::new(
        ErrorClass::Other,
        "setup",
        format!("the {kind} client is not built yet"),
    )
}
