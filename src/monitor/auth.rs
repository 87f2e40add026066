//! Basic-auth credentials of the monitoring stack's servers (Prometheus, Pushgateway,
//! Alertmanager): below both the stack, which makes them, and the clients that send them.

/// Basic-auth credentials (the password never appears in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({}, <redacted>)", self.user)
    }
}

impl BasicAuth {
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(&self.user, Some(&self.password))
    }
}
