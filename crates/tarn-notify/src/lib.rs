//! Topics and subscriptions: a message published to a topic of `tarn.yml` is delivered to
//! each of its subscriptions (`webhook`, `email` over SMTP, `command`, `file`), retried with
//! backoff unless the failure is permanent, and reported per subscription. Callers deliver in
//! a task of their own (the pipeline engine does), so a dead endpoint never blocks them.
//!
//! ```no_run
//! # async fn demo(topics: Vec<tarn_config::TopicSpec>) {
//! let notifier = tarn_notify::Notifier::new(topics, std::path::Path::new("."));
//! let msg = tarn_notify::Message::new("pipeline failed", serde_json::json!({"step": "Load"}));
//! let report = notifier.deliver("failures", &msg).await.unwrap();
//! assert!(report.iter().all(|d| d.delivered));
//! # }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tarn_config::{SmtpSettings, SmtpTls, Subscription, SubscriptionProtocol, TopicSpec};

/// What can go wrong publishing.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no topic is named `{name}` in tarn.yml; topics are: {known}")]
    UnknownTopic { name: String, known: String },
}

/// A notification.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// One line saying what happened.
    pub subject: String,
    /// The details, as JSON.
    pub detail: serde_json::Value,
    pub time: String,
}

impl Message {
    pub fn new(subject: impl Into<String>, detail: serde_json::Value) -> Message {
        Message {
            subject: subject.into(),
            detail,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// The JSON sent to webhooks, commands and files: the message plus a Slack-compatible
    /// `text` field, so a Slack incoming webhook shows it as is.
    pub fn body(&self, topic: &str) -> serde_json::Value {
        serde_json::json!({
            "topic": topic,
            "subject": self.subject,
            "text": format!("[{topic}] {}\n```{}```", self.subject, serde_json::to_string_pretty(&self.detail).unwrap_or_default()),
            "detail": self.detail,
            "time": self.time,
        })
    }
}

/// How one subscription's delivery went.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub protocol: String,
    /// The endpoint, with any password in it hidden.
    pub endpoint: String,
    pub delivered: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Delivers messages to topics.
#[derive(Clone)]
pub struct Notifier {
    topics: Vec<TopicSpec>,
    root: PathBuf,
    http: reqwest::Client,
    smtp: Option<SmtpSettings>,
    /// Tries per subscription.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
}

impl Notifier {
    /// `root` is the lake's folder: relative `file` endpoints and commands start there.
    pub fn new(topics: Vec<TopicSpec>, root: &Path) -> Notifier {
        Notifier {
            topics,
            root: root.to_path_buf(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            smtp: None,
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }

    /// The notifier of a lake: its topics, its folder and its mail server.
    pub fn for_lake(config: &tarn_config::LakeConfig) -> Notifier {
        Notifier {
            smtp: config.smtp.clone(),
            ..Notifier::new(config.topics.clone(), &config.root)
        }
    }

    /// Whether `topic` is declared.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t.name == topic)
    }

    /// The topics events of `kind` are published to (their `events:` list it).
    pub fn topics_for(&self, kind: &str) -> Vec<String> {
        self.topics
            .iter()
            .filter(|t| t.receives(kind))
            .map(|t| t.name.clone())
            .collect()
    }

    /// Delivers `msg` to every subscription of `topic`, with retries, and reports each.
    pub async fn deliver(&self, topic: &str, msg: &Message) -> Result<Vec<Delivery>, NotifyError> {
        let spec = self
            .topics
            .iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| NotifyError::UnknownTopic {
                name: topic.to_string(),
                known: self
                    .topics
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let body = msg.body(topic);
        let mut out = Vec::new();
        for sub in &spec.subscriptions {
            out.push(self.deliver_one(sub, &body, msg).await);
        }
        Ok(out)
    }

    async fn deliver_one(
        &self,
        sub: &Subscription,
        body: &serde_json::Value,
        msg: &Message,
    ) -> Delivery {
        let mut wait = self.backoff;
        let mut error = None;
        let mut attempts = 0;
        while attempts < self.attempts.max(1) {
            attempts += 1;
            match self.try_once(sub, body, msg).await {
                Ok(()) => {
                    error = None;
                    break;
                }
                Err(f) => {
                    error = Some(f.message);
                    if f.permanent {
                        break;
                    }
                }
            }
            if attempts < self.attempts {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Delivery {
            protocol: format!("{:?}", sub.protocol).to_lowercase(),
            endpoint: redact(&sub.endpoint),
            delivered: error.is_none(),
            attempts,
            error,
        }
    }

    async fn try_once(
        &self,
        sub: &Subscription,
        body: &serde_json::Value,
        msg: &Message,
    ) -> Result<(), Failed> {
        match sub.protocol {
            SubscriptionProtocol::Webhook => {
                let res = self
                    .http
                    .post(&sub.endpoint)
                    .json(body)
                    .send()
                    .await
                    .map_err(|e| format!("the webhook did not answer: {}", without_url(&e)))?;
                let status = res.status();
                if status.is_success() {
                    Ok(())
                } else if status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    Err(Failed::permanent(format!("the webhook answered {status}")))
                } else {
                    Err(format!("the webhook answered {status}").into())
                }
            }
            SubscriptionProtocol::File => {
                let path = self.root.join(&sub.endpoint);
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                use tokio::io::AsyncWriteExt;
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut line = body.to_string();
                line.push('\n');
                // A tokio file hands writes to a background thread: without the flush, a
                // command that ends right after (a failed `tarn taps run`) could exit before
                // the line reached the file.
                f.write_all(line.as_bytes())
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(f.flush()
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?)
            }
            SubscriptionProtocol::Command => {
                use tokio::io::AsyncWriteExt;
                let mut child = tokio::process::Command::new("sh")
                    .args(["-c", &sub.endpoint])
                    .current_dir(&self.root)
                    .env_clear()
                    .envs(tarn_config::inherited_env())
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot start the command: {e}"))?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(body.to_string().as_bytes()).await;
                }
                let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
                    .await
                    .map_err(|_| "the command did not finish in 30 s".to_string())?
                    .map_err(|e| e.to_string())?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(Failed::from(format!(
                        "the command exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            }
            SubscriptionProtocol::Email => {
                let smtp = self.smtp.as_ref().ok_or_else(|| {
                    Failed::permanent(
                        "email needs an `smtp:` block in tarn.yml (host, port, tls, username, from)",
                    )
                })?;
                let topic = body["topic"].as_str().unwrap_or_default();
                self.email(smtp, &sub.endpoint, topic, msg).await
            }
        }
    }
}

impl Notifier {
    /// Sends `msg` to `to` through the mail server: the subject line, then the details as
    /// indented JSON.
    async fn email(
        &self,
        smtp: &SmtpSettings,
        to: &str,
        topic: &str,
        msg: &Message,
    ) -> Result<(), Failed> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        let mail = lettre::Message::builder()
            .from(smtp.from.parse().map_err(|e| {
                Failed::permanent(format!("smtp.from `{}` is not an address: {e}", smtp.from))
            })?)
            .to(to
                .parse()
                .map_err(|e| Failed::permanent(format!("`{to}` is not an address: {e}")))?)
            .subject(format!("[{topic}] {}", msg.subject))
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(format!(
                "{}\n\n{}\n\n(topic {topic}, {})\n",
                msg.subject,
                serde_json::to_string_pretty(&msg.detail).unwrap_or_default(),
                msg.time
            ))
            .map_err(|e| Failed::permanent(format!("cannot build the email: {e}")))?;
        let tls = if smtp.tls == SmtpTls::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(smtp.host.clone());
            if let Some(ca) = &smtp.ca_file {
                let path = self.root.join(ca);
                let pem = tokio::fs::read(&path)
                    .await
                    .map_err(|e| format!("smtp.ca_file {}: {e}", path.display()))?;
                params = params.add_root_certificate(
                    Certificate::from_pem(&pem)
                        .map_err(|e| format!("smtp.ca_file {}: {e}", path.display()))?,
                );
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("TLS settings: {e}"))?;
            match smtp.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let Some(user) = &smtp.username {
            let password = std::env::var("TARN_SMTP_PASSWORD")
                .ok()
                .or_else(|| smtp.password.as_ref().map(|p| p.expose().to_string()))
                .ok_or_else(|| {
                    Failed::permanent(
                        "smtp.username is set but no password: set TARN_SMTP_PASSWORD",
                    )
                })?;
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        // The transport's timeout covers each read; a server that stops answering mid-dialogue
        // is cut off here, so one stuck mail server never holds a delivery forever.
        let transport = transport.build();
        let send = transport.send(mail);
        match tokio::time::timeout(Duration::from_secs(60), send).await {
            Err(_) => Err(format!(
                "the mail server {}:{} did not finish the exchange in 60 s",
                smtp.host,
                smtp.port()
            )
            .into()),
            Ok(r) => r.map(|_| ()).map_err(|e| Failed {
                message: format!("the mail server {}:{} refused: {e}", smtp.host, smtp.port()),
                permanent: e.is_permanent(),
            }),
        }
    }
}

/// Why one try failed, and whether trying again could help.
struct Failed {
    message: String,
    /// Another try would fail the same way (a refused login, a 404 webhook, a bad address).
    permanent: bool,
}

impl Failed {
    fn permanent(message: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<String> for Failed {
    fn from(message: String) -> Failed {
        Failed {
            message,
            permanent: false,
        }
    }
}

impl From<&str> for Failed {
    fn from(message: &str) -> Failed {
        message.to_string().into()
    }
}

/// A URL with its user info hidden.
fn redact(endpoint: &str) -> String {
    match (endpoint.find("://"), endpoint.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &endpoint[..s], &endpoint[at..]),
        _ => endpoint.to_string(),
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}
