//! Helpers shared by the data clients: error classification and small HTTP conveniences.

use crate::recipe::{Secret, Service};
use crate::runner::client::{ClientError, ErrorClass, Outcome};
use std::time::Duration;

/// A failed request, before it becomes an [`Outcome`] or a [`ClientError`].
#[derive(Debug, Clone)]
pub struct ReqError {
    pub class: ErrorClass,
    pub http_status: Option<u16>,
    pub message: String,
}

impl ReqError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ReqError {
            class,
            http_status: None,
            message: message.into(),
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        ReqError {
            class: class_of_status(status),
            http_status: Some(status),
            message: format!("HTTP {status}: {}", snippet(body)),
        }
    }

    pub fn into_outcome(self, op: &'static str) -> Outcome {
        Outcome {
            op,
            error: Some(self.class),
            error_message: Some(self.message),
            http_status: self.http_status,
            ..Default::default()
        }
    }

    pub fn into_client_error(self, stage: &'static str, what: &str) -> ClientError {
        ClientError::new(self.class, stage, format!("{what}: {}", self.message))
    }
}

impl From<reqwest::Error> for ReqError {
    fn from(e: reqwest::Error) -> Self {
        ReqError::new(class_of_reqwest(&e), reqwest_error_text(&e))
    }
}

/// The error with its chain of causes, the credentials of the URL it quotes masked: reqwest
/// writes the request's URL into its message (`error sending request for url (...)`), and a
/// `service_url` may carry `user:password@` or a `?token=` (errors reach logs and the campaign
/// file).
pub fn reqwest_error_text(e: &reqwest::Error) -> String {
    let text = error_chain(e);
    match e.url() {
        Some(u) => {
            crate::recipe::redact::text(&text, &crate::recipe::redact::url_credentials(u.as_str()))
        }
        None => text,
    }
}

/// 401/403 are authentication failures; every other non-success status is `http_status`.
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::Auth,
        _ => ErrorClass::HttpStatus,
    }
}

pub fn class_of_reqwest(e: &reqwest::Error) -> ErrorClass {
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() {
        ErrorClass::Connect
    } else if e.is_decode() {
        ErrorClass::Protocol
    } else if e.is_body() || e.is_request() {
        // The connection broke while sending or reading (server killed, reset).
        ErrorClass::Io
    } else {
        ErrorClass::Other
    }
}

/// `e: cause: cause` — reqwest's top-level message alone ("error sending request") says little.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// At most 300 characters of a response body, on one line.
pub fn snippet(body: &str) -> String {
    let one: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one.trim().to_string()
}

/// How long a pooled HTTP connection may sit idle and still be reused: below the shortest
/// keep-alive timeout of common servers (uvicorn's, which serves vLLM and many Python services,
/// is 5 s), so a request never goes out on a connection the server is closing at that moment
/// (a POST cut off that way could not be resent).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// An HTTP client for one worker (its own connection pool), with the run's timeout.
pub fn http_client(timeout_s: f64) -> Result<reqwest::Client, ClientError> {
    let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(4)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ClientError::new(ErrorClass::Other, "setup", error_chain(&e)))
}

/// Resolve a secret of `svc`; a `Generated` secret is read from the environment variable that
/// the campaign's secrets file defines for it (`FB_DB_PASSWORD`, `FB_S3_ACCESS_KEY`, ...).
pub fn resolve_secret(svc: &Service, secret: &Secret, what: &str) -> Result<String, ClientError> {
    if matches!(secret, Secret::Generated) {
        if let Some((var, _)) = svc
            .secrets()
            .into_iter()
            .find(|(_, s)| std::ptr::eq(*s, secret))
        {
            return std::env::var(var).map_err(|_| {
                ClientError::new(
                    ErrorClass::Auth,
                    "setup",
                    format!(
                        "{what} of service `{}` is generated: set {var} (batch scripts read it from the campaign's secrets/{}.env)",
                        svc.name, svc.name
                    ),
                )
            });
        }
    }
    secret.resolve().map_err(|e| {
        ClientError::new(
            ErrorClass::Auth,
            "setup",
            format!("{what} of service `{}`: {e}", svc.name),
        )
    })
}

/// Best-effort `service.version` / `service.server` from `GET url`: the JSON field `field`
/// (dotted path) of a 2xx body and the `Server` header of any response. Errors yield nothing.
pub async fn http_version_facts(
    http: &reqwest::Client,
    url: &str,
    field: Option<&str>,
    headers: &[(&str, &str)],
) -> crate::runner::provenance::Facts {
    let mut f = crate::runner::provenance::Facts::new();
    let mut req = http.get(url).timeout(std::time::Duration::from_secs(5));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let Ok(resp) = req.send().await else {
        return f;
    };
    if let Some(s) = resp
        .headers()
        .get(reqwest::header::SERVER)
        .and_then(|v| v.to_str().ok())
    {
        f.insert("service.server".into(), s.to_string());
    }
    if let (true, Some(field)) = (resp.status().is_success(), field) {
        if let Ok(v) = resp.json::<serde_json::Value>().await {
            let mut cur = &v;
            for part in field.split('.').filter(|p| !p.is_empty()) {
                cur = &cur[part];
            }
            let s = match cur {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            if let Some(s) = s.filter(|s| !s.is_empty()) {
                f.insert("service.version".into(), s);
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection to a URL with credentials: reqwest quotes the URL in its message;
    /// the text that reaches logs and the campaign file does not carry the password or token.
    #[test]
    fn reqwest_errors_do_not_quote_url_credentials() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(async {
            reqwest::Client::new()
                .get(format!(
                    "http://admin:pw-s3cr3t@127.0.0.1:{port}/v1?token=tok-s3cr3t"
                ))
                .send()
                .await
                .unwrap_err()
        });
        let raw = error_chain(&e);
        let text = reqwest_error_text(&e);
        assert!(raw.contains("127.0.0.1"), "{raw}");
        assert!(!text.contains("pw-s3cr3t"), "{text}");
        assert!(!text.contains("tok-s3cr3t"), "{text}");
        assert!(text.contains("127.0.0.1"), "still says where: {text}");
        assert_eq!(ReqError::from(e).class, ErrorClass::Connect);
    }
}
