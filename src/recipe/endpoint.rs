//! Where a service is reached, resolved once at plan time.
//!
//! Before this, `port` was stored on the service and again on the vector and database
//! workloads, and the compiler, readiness, the vector clients and the PostgreSQL client each
//! worked out port and URL their own way. Now [`Endpoint::resolve`] decides it and everyone reads
//! [`crate::recipe::Service::endpoint`].

use super::plan::{ServiceKind, Workload};
use serde::Serialize;

/// The host clients use when neither the recipe's `host` nor a URL names one.
pub const DEFAULT_HOST: &str = "127.0.0.1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The host clients connect to: the recipe's `host` (vectordb, database), else the host of
    /// `service_url`, else `127.0.0.1`.
    pub host: String,
    /// The port the service listens on and clients connect to: `port`, else the port of
    /// `service_url`, else the kind's (or vector backend's) default port. `None` when there is
    /// none (file storage, Faiss, HTTP without a port).
    pub port: Option<u16>,
    /// The base URL: `service_url`, else `postgresql://{host}:{port}/{database}` for a database,
    /// else `http://127.0.0.1:{port}`.
    #[serde(serialize_with = "super::redact::ser_opt_url")]
    pub url: Option<String>,
}

impl Endpoint {
    /// The same endpoint reached at `host` instead (the service node's address for clients on
    /// other nodes): the host and the URL's host part are replaced when they are the default
    /// loopback address the started service would otherwise bind.
    pub fn with_host(&self, host: &str) -> Endpoint {
        let mut e = self.clone();
        if e.host == DEFAULT_HOST || e.host == "localhost" {
            e.host = host.to_string();
        }
        e.url = e.url.map(|u| replace_url_host(&u, host));
        e
    }

    /// Resolve the endpoint of a decoded service from its recipe values: `port`, `service_url`
    /// and `host` (the latter only for kinds that have the key).
    pub fn resolve(
        kind: ServiceKind,
        workload: &Workload,
        port: Option<u16>,
        service_url: Option<&str>,
        host: Option<String>,
    ) -> Endpoint {
        let url_port = service_url.and_then(port_of_url);
        let default_port = crate::kinds::server(kind, Some(workload)).and_then(|s| s.default_port);
        let port = port.or(url_port).or(default_port);
        let host = host
            .or_else(|| host_of_url(service_url))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let url = match (service_url, workload) {
            (Some(u), _) => Some(u.to_string()),
            (None, Workload::Database(d)) => {
                port.map(|p| format!("postgresql://{host}:{p}/{}", d.database))
            }
            (None, _) => port.map(|p| format!("http://{DEFAULT_HOST}:{p}")),
        };
        Endpoint { host, port, url }
    }

    /// `host:port` (an IPv6 host in brackets) of a client that connects to host and port
    /// rather than to [`Endpoint::url`] (the vector clients without an http(s) `service_url`).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{host}:{}", self.port.unwrap_or_default())
    }
}

/// The explicit port of a URL (`scheme://[user@]host:port/...`).
pub fn port_of_url(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let hostport = rest.split(['/', '?', '#']).next()?;
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    hostport.rsplit_once(':')?.1.parse::<u16>().ok()
}

/// The host of a URL, as the recipe's `host` defaults to it.
pub fn host_of_url(url: Option<&str>) -> Option<String> {
    let rest = url?.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') || authority.starts_with('[') => Some(h.to_string()),
        _ => Some(authority.to_string()),
    }
}

/// The host part of `scheme://[user@]host[:port]/...` (brackets kept off IPv6 literals).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// `scheme://[user@]127.0.0.1[:port]/...` with the loopback host replaced by `host` (other
/// hosts are kept: an external service is reached where its URL says).
pub(crate) fn replace_url_host(url: &str, host: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let (h, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, format!(":{p}")),
        _ => (hostport, String::new()),
    };
    if h != DEFAULT_HOST && h != "localhost" {
        return url.to_string();
    }
    format!("{scheme}://{user}{host}{port}{tail}")
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn with_host_replaces_only_loopback() {
        assert_eq!(
            replace_url_host("http://127.0.0.1:8080/v1?x", "10.0.0.5"),
            "http://10.0.0.5:8080/v1?x"
        );
        assert_eq!(
            replace_url_host("postgresql://u:p@localhost/db", "10.0.0.5"),
            "postgresql://u:p@10.0.0.5/db"
        );
        assert_eq!(
            replace_url_host("http://db.site:80/", "10.0.0.5"),
            "http://db.site:80/"
        );
    }
}
