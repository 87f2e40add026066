//! What both HTTP paths of the `http` client share (the hyper/reqwest path in `http` and the
//! lean path in `http_lean`): the prepared request target, how an I/O error and a response
//! status become an outcome. Both import it; neither imports the other's internals back.

use crate::runner::client::{ErrorClass, Outcome};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Uri};

/// One `http` service's request, prepared once at setup.
pub(crate) struct Target {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    /// `host:port` to connect to.
    pub(crate) authority: String,
    pub(crate) host_header: HeaderValue,
    pub(crate) path_and_query: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
    pub(crate) expect_status: Option<u16>,
    pub(crate) https: bool,
    pub(crate) op: &'static str,
    /// The whole request as the lean path writes it (plain `http://`).
    pub(crate) wire: Vec<u8>,
    /// How plain `http://` is sent (`FB_HTTP_CLIENT`, for comparisons).
    pub(crate) plain: PlainClient,
}

/// The client of plain `http://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlainClient {
    /// The lean path: an unpaced closed loop on epoll driver threads (`http_driver`), every
    /// other loop on the engine's tasks (`http_lean`). The default.
    Lean,
    /// The lean path on the engine's tasks only (`FB_HTTP_CLIENT=tasks`).
    LeanTasks,
    /// hyper's HTTP/1.1 client (`FB_HTTP_CLIENT=hyper`).
    Hyper,
}

impl PlainClient {
    /// What `FB_HTTP_CLIENT` asks for (unset or anything else: [`PlainClient::Lean`]).
    pub(crate) fn from_env() -> PlainClient {
        match std::env::var("FB_HTTP_CLIENT").as_deref() {
            Ok("hyper") => PlainClient::Hyper,
            Ok("tasks") => PlainClient::LeanTasks,
            _ => PlainClient::Lean,
        }
    }
}

pub(crate) fn classify_io(e: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
        | AddrNotAvailable => ErrorClass::Connect,
        TimedOut => ErrorClass::Timeout,
        _ => ErrorClass::Io,
    }
}

pub(crate) fn status_outcome(t: &Target, mut o: Outcome, status: u16) -> Outcome {
    o.http_status = Some(status);
    let ok = match t.expect_status {
        Some(s) => s == status,
        None => (200..300).contains(&status),
    };
    if !ok {
        o.error = Some(if status == 401 || status == 403 {
            ErrorClass::Auth
        } else {
            ErrorClass::HttpStatus
        });
        o.error_message = Some(format!(
            "HTTP {status} from {} {} (expected {})",
            t.method,
            t.uri,
            t.expect_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "2xx".into())
        ));
    }
    o
}
