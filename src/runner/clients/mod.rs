//! One client module per service kind, and the factory that picks one for a service.
//! Each engineer adds their module and its match arm in [`make_client`].

pub mod llm;

use super::client::{Client, ClientError, ErrorClass};
use crate::recipe::{Service, Workload};
use std::sync::Arc;

/// Build the client for a service (no network I/O here; `Client::setup` does that).
pub fn make_client(svc: &Service) -> Result<Arc<dyn Client>, ClientError> {
    match &svc.workload {
        Workload::FileStorage(_) => Err(not_yet("file_storage")),
        Workload::Http(_) => Err(not_yet("http")),
        Workload::Database(_) => Err(not_yet("database")),
        Workload::S3(_) => Err(not_yet("s3")),
        Workload::Vectordb(_) => Err(not_yet("vectordb")),
        Workload::Llm(_) => llm::make(svc),
    }
}

fn not_yet(kind: &str) -> ClientError {
    ClientError::new(
        ErrorClass::Other,
        "setup",
        format!("the {kind} client is not built yet"),
    )
}
