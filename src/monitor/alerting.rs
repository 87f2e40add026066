//! Alertmanager in the monitoring job: its configuration (route and receivers from
//! `monitor up`'s flags), a silence per campaign for the alerts a stress campaign sets off on
//! purpose, and the list of active alerts (`monitor alerts`), through Alertmanager's API v2.
//!
//! The receivers: generic webhooks (Alertmanager's JSON, any URL without credentials), a
//! Slack-compatible incoming webhook (its URL is a secret: read by Alertmanager from a file,
//! `api_url_file`), and e-mail through the site's SMTP relay.

use super::auth::BasicAuth;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The alerts that a campaign stressing a service is expected to set off: silenced by
/// `monitor silence --campaign C`. A stalled run or a full disk is never expected.
pub const STRESS_ALERTS: [&str; 4] = [
    "FactorybenchRunErrorRateHigh",
    "FactorybenchRunFailing",
    "FactorybenchGeneratorSaturated",
    "FactorybenchRunnerNodeCpuSaturated",
];

/// A Slack-compatible incoming webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackReceiver {
    /// 0600 file holding the webhook URL (a secret).
    pub url_file: PathBuf,
    /// `#channel`; the webhook's own when absent.
    pub channel: Option<String>,
}

/// E-mail through an SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReceiver {
    pub to: Vec<String>,
    pub from: String,
    /// `host:port` of the relay.
    pub smarthost: String,
    /// Require STARTTLS (Alertmanager's default); a relay on the cluster network may not offer it.
    pub require_tls: bool,
}

/// Where Alertmanager sends the alerts of the stack's Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receivers {
    pub webhooks: Vec<String>,
    pub slack: Option<SlackReceiver>,
    pub email: Option<EmailReceiver>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("{what} {value:?}: {why}")]
    BadReceiver {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("Alertmanager {url}: {message}")]
    Http { url: String, message: String },
    #[error("this monitoring stack has no Alertmanager (started by an older factorybench): `factorybench monitor down` then `monitor up`")]
    NoAlertmanager,
}

impl Receivers {
    /// Refuse values that would break the YAML or put a secret where it is visible.
    pub fn validate(&self) -> Result<(), AlertingError> {
        let bad = |what, value: &str, why| AlertingError::BadReceiver {
            what,
            value: value.to_string(),
            why,
        };
        let plain = |s: &str| {
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "\"'\\{}".contains(c))
        };
        for w in &self.webhooks {
            if !(w.starts_with("http://") || w.starts_with("https://")) || !plain(w) {
                return Err(bad(
                    "webhook",
                    w,
                    "give an http(s) URL without spaces or quotes",
                ));
            }
            if !crate::recipe::redact::url_credentials(w).is_empty() {
                return Err(bad(
                    "webhook",
                    &crate::recipe::redact::url(w),
                    "credentials on the command line are refused; a Slack-style secret URL goes in a file (--alert-slack-url-file)",
                ));
            }
        }
        if let Some(s) = &self.slack {
            let f = s.url_file.to_string_lossy();
            if !s.url_file.is_absolute() || !plain(&f) {
                return Err(bad(
                    "Slack URL file",
                    &f,
                    "give an absolute path without spaces or quotes",
                ));
            }
            if let Some(c) = &s.channel {
                if !plain(c) {
                    return Err(bad("Slack channel", c, "no spaces or quotes"));
                }
            }
        }
        if let Some(e) = &self.email {
            for a in e.to.iter().chain([&e.from]) {
                if !plain(a) || !a.contains('@') {
                    return Err(bad("e-mail address", a, "give user@host"));
                }
            }
            if !plain(&e.smarthost) || !e.smarthost.contains(':') {
                return Err(bad("SMTP relay", &e.smarthost, "give host:port"));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.slack.is_none() && self.email.is_none()
    }
}

/// Alertmanager's configuration: one route to the `factorybench` receiver, grouped per alert,
/// campaign and service; `group_wait` as Alertmanager takes it (`30s`).
pub fn alertmanager_config(r: &Receivers, group_wait: &str) -> String {
    let mut s = String::from(
        "# factorybench: Alertmanager of the monitoring job (generated by `factorybench monitor up`).\n\
         route:\n  receiver: factorybench\n  group_by: [alertname, campaign, service]\n",
    );
    let _ = writeln!(s, "  group_wait: {group_wait}");
    s.push_str("  group_interval: 1m\n  repeat_interval: 4h\nreceivers:\n  - name: factorybench\n");
    if !r.webhooks.is_empty() {
        s.push_str("    webhook_configs:\n");
        for w in &r.webhooks {
            let _ = writeln!(s, "      - url: \"{w}\"\n        send_resolved: true");
        }
    }
    if let Some(sl) = &r.slack {
        s.push_str("    slack_configs:\n");
        let _ = writeln!(s, "      - api_url_file: \"{}\"", sl.url_file.display());
        if let Some(c) = &sl.channel {
            let _ = writeln!(s, "        channel: \"{c}\"");
        }
        s.push_str(
            "        send_resolved: true\n\
             \x20       title: '{{ .Status | toUpper }} {{ .CommonLabels.alertname }} (campaign {{ .CommonLabels.campaign }}, service {{ .CommonLabels.service }})'\n\
             \x20       text: '{{ range .Alerts }}{{ .Annotations.summary }}. {{ end }}'\n",
        );
    }
    if let Some(e) = &r.email {
        s.push_str("    email_configs:\n");
        let _ = writeln!(s, "      - to: \"{}\"", e.to.join(", "));
        let _ = writeln!(s, "        from: \"{}\"", e.from);
        let _ = writeln!(s, "        smarthost: \"{}\"", e.smarthost);
        let _ = writeln!(s, "        require_tls: {}", e.require_tls);
        s.push_str("        send_resolved: true\n");
    }
    s
}

/// One active alert as Alertmanager reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlert {
    pub name: String,
    pub severity: String,
    pub campaign: String,
    pub service: String,
    pub run_id: String,
    /// `active` (being sent) or `suppressed` (silenced or inhibited).
    pub state: String,
    pub silenced_by: Vec<String>,
    pub summary: String,
    pub starts_at: String,
}

/// A client of one Alertmanager.
pub struct Alertmanager {
    http: reqwest::Client,
    url: String,
    auth: Option<BasicAuth>,
}

impl Alertmanager {
    pub fn new(url: &str, auth: Option<BasicAuth>) -> Result<Self, AlertingError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AlertingError::Http {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Alertmanager {
            http,
            url: url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, AlertingError> {
        let req = match &self.auth {
            Some(a) => a.apply(req),
            None => req,
        };
        let err = |message: String| AlertingError::Http {
            url: self.url.clone(),
            message,
        };
        let r = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!("HTTP {status}: {}", text.trim())));
        }
        serde_json::from_str(&text).map_err(|e| err(format!("bad JSON: {e}")))
    }

    /// Silence the [`STRESS_ALERTS`] of `campaign` (of its run `run_id` only, when given) from
    /// now for `duration`; returns the silence id.
    pub async fn silence_stress(
        &self,
        campaign: &str,
        run_id: Option<&str>,
        duration: Duration,
        created_by: &str,
    ) -> Result<String, AlertingError> {
        let now = std::time::SystemTime::now();
        let rfc = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let exact = |name: &str, value: &str| serde_json::json!({"name": name, "value": value, "isRegex": false, "isEqual": true});
        let mut matchers = vec![
            exact("campaign", campaign),
            serde_json::json!({"name": "alertname", "value": STRESS_ALERTS.join("|"), "isRegex": true, "isEqual": true}),
        ];
        let what = match run_id {
            Some(r) => {
                matchers.push(exact("run_id", r));
                format!("run {r} of campaign {campaign}")
            }
            None => format!("campaign {campaign}"),
        };
        let body = serde_json::json!({
            "matchers": matchers,
            "startsAt": rfc(now),
            "endsAt": rfc(now + duration),
            "createdBy": created_by,
            "comment": format!("factorybench: {what} stresses its service on purpose"),
        });
        let v = self
            .send(
                self.http
                    .post(format!("{}/api/v2/silences", self.url))
                    .json(&body),
            )
            .await?;
        Ok(v["silenceID"].as_str().unwrap_or_default().to_string())
    }

    /// Every alert Alertmanager holds (firing ones, silenced or not).
    pub async fn alerts(&self) -> Result<Vec<ActiveAlert>, AlertingError> {
        let v = self
            .send(self.http.get(format!("{}/api/v2/alerts", self.url)))
            .await?;
        let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
        let mut out: Vec<ActiveAlert> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| ActiveAlert {
                name: s(&a["labels"]["alertname"]),
                severity: s(&a["labels"]["severity"]),
                campaign: s(&a["labels"]["campaign"]),
                service: s(&a["labels"]["service"]),
                run_id: s(&a["labels"]["run_id"]),
                state: s(&a["status"]["state"]),
                silenced_by: a["status"]["silencedBy"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect(),
                summary: s(&a["annotations"]["summary"]),
                starts_at: s(&a["startsAt"]),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.campaign, &a.service, &a.name, &a.run_id).cmp(&(
                &b.campaign,
                &b.service,
                &b.name,
                &b.run_id,
            ))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_with_every_receiver() {
        let r = Receivers {
            webhooks: vec!["http://10.0.0.5:8080/hook".into()],
            slack: Some(SlackReceiver {
                url_file: "/home/ana/.secrets/slack-hook".into(),
                channel: Some("#bench".into()),
            }),
            email: Some(EmailReceiver {
                to: vec!["ops@example.org".into()],
                from: "factorybench@example.org".into(),
                smarthost: "smtp.example.org:25".into(),
                require_tls: false,
            }),
        };
        r.validate().unwrap();
        insta::assert_snapshot!(alertmanager_config(&r, "30s"));
    }

    #[test]
    fn refuses_secrets_and_broken_values() {
        let mut r = Receivers {
            webhooks: vec!["https://user:pw@hooks.example.org/x".into()],
            ..Default::default()
        };
        let e = r.validate().unwrap_err().to_string();
        assert!(!e.contains("pw@"), "{e}");
        r.webhooks = vec!["http://a/\"x".into()];
        assert!(r.validate().is_err());
        r.webhooks.clear();
        r.email = Some(EmailReceiver {
            to: vec!["nobody".into()],
            from: "a@b".into(),
            smarthost: "relay:25".into(),
            require_tls: true,
        });
        assert!(r.validate().is_err());
    }
}
