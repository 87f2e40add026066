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

/// The explicit port of a URL (`scheme://[user@]host:port/...`); `None` when the URL names
/// none or does not parse.
pub fn port_of_url(url: &str) -> Option<u16> {
    let u = url::Url::parse(url).ok()?;
    u.port().or_else(|| {
        // `url` forgets a port equal to the scheme's default (`http://h:80`), which was still
        // written; read it again under a scheme that has no default port.
        u.port_or_known_default()?;
        url::Url::parse(&format!("x-{url}")).ok()?.port()
    })
}

/// The host of a URL, as the recipe's `host` defaults to it (an IPv6 literal keeps its
/// brackets).
pub fn host_of_url(url: Option<&str>) -> Option<String> {
    let u = url::Url::parse(url?).ok()?;
    match u.host()? {
        url::Host::Ipv6(a) => Some(format!("[{a}]")),
        h => Some(h.to_string()).filter(|h| !h.is_empty()),
    }
}

/// The host part of `scheme://[user@]host[:port]/...` (brackets kept off IPv6 literals).
pub fn url_host(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.host()? {
        url::Host::Ipv6(a) => Some(a.to_string()),
        h => Some(h.to_string()).filter(|h| !h.is_empty()),
    }
}

/// Whether `url` names `localhost`, 127.0.0.0/8 or `[::1]` as its host.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        // Hosts of schemes `url` does not know (`postgresql://`) are kept as written.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// `scheme://[user@]127.0.0.1[:port]/...` with the loopback host replaced by `host` (other
/// hosts are kept: an external service is reached where its URL says).
///
/// This one splices the text rather than going through `url::Url`: `host` is often a shell
/// reference (`${FB_BIND_ADDR}`) that `url` would lowercase, and `url` would rewrite the rest
/// of a URL written without a path (`http://h:1` → `http://h:1/`), which scripts and plan.json
/// show as written.
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

    #[test]
    fn hosts_and_ports_of_urls() {
        assert_eq!(port_of_url("http://h:8080/x"), Some(8080));
        assert_eq!(
            port_of_url("http://h:80/x"),
            Some(80),
            "written, though the default"
        );
        assert_eq!(port_of_url("https://u:p@h:443"), Some(443));
        assert_eq!(port_of_url("postgresql://u:p@db:5432/x"), Some(5432));
        assert_eq!(port_of_url("http://h/x"), None);
        assert_eq!(port_of_url("nonsense"), None);
        assert_eq!(
            host_of_url(Some("http://[::1]:80/")).as_deref(),
            Some("[::1]")
        );
        assert_eq!(
            host_of_url(Some("postgresql://u@db.site/x")).as_deref(),
            Some("db.site")
        );
        assert_eq!(url_host("http://u:p@[::1]:9091/x").as_deref(), Some("::1"));
        assert_eq!(
            url_host("http://10.0.0.5:8080/x").as_deref(),
            Some("10.0.0.5")
        );
        assert!(is_loopback_url("http://localhost:1/"));
        assert!(is_loopback_url("postgresql://u:p@127.0.0.2/db"));
        assert!(is_loopback_url("http://[::1]:8000"));
        assert!(!is_loopback_url("http://10.0.0.5/"));
        assert!(!is_loopback_url("nonsense"));
    }
}
