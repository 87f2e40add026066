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
    /// Plain `http://` through hyper instead of the lean path (`FB_HTTP_CLIENT=hyper`, for
    /// comparisons).
    pub(crate) hyper: bool,
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
