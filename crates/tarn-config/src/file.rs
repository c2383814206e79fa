//! The shape of `tarn.yml` as written by users (serde structs, unknown keys refused).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The top level of `tarn.yml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub lake: Option<String>,
    pub environment: Option<String>,
    pub storage: Option<String>,
    pub metadata: Option<String>,
    pub s3: Option<S3Settings>,
    pub smtp: Option<SmtpSettings>,
    pub domains: Option<Vec<DomainEntry>>,
    pub layers: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    pub topics: Option<Vec<TopicSpec>>,
    /// The topic failed executions are reported to (default `failures`).
    pub error_topic: Option<String>,
    /// Model endpoints `tarn serve` hosts, by name.
    pub endpoints: Option<BTreeMap<String, crate::EndpointSpec>>,
    /// Singer taps that ingest into the lake.
    pub taps: Option<Vec<crate::TapSpec>>,
    /// Named grants tokens carry (`tarn token create --policy NAME`).
    pub policies: Option<BTreeMap<String, Vec<crate::GrantSpec>>>,
    /// Limits on what enters the lake's servers and queries.
    pub limits: Option<crate::limits::LimitsSpec>,
    /// What a load does when a file brings columns a table without a contract lacks:
    /// `widen` (add them, and say so) or `refuse`.
    pub schema_evolution: Option<crate::SchemaEvolution>,
    /// Where Glue ETL and `spark` steps run.
    pub spark: Option<SparkSettings>,
    #[serde(default)]
    pub environments: BTreeMap<String, Settings>,
}

impl FileConfig {
    /// The settings given at the top level, before any environment's overrides.
    pub fn base(&self) -> Settings {
        Settings {
            storage: self.storage.clone(),
            metadata: self.metadata.clone(),
            s3: self.s3.clone(),
            smtp: self.smtp.clone(),
            domains: self.domains.clone(),
            layers: self.layers.clone(),
            tags: self.tags.clone(),
            topics: self.topics.clone(),
        }
    }
}

/// The settings an environment may override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub storage: Option<String>,
    pub metadata: Option<String>,
    pub s3: Option<S3Settings>,
    pub smtp: Option<SmtpSettings>,
    pub domains: Option<Vec<DomainEntry>>,
    pub layers: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    pub topics: Option<Vec<TopicSpec>>,
}

/// A domain is written either as a bare name or as a map with a description and tags.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum DomainEntry {
    Name(String),
    Spec(DomainSpec),
}

/// A business area that owns one zone per layer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl From<DomainEntry> for DomainSpec {
    fn from(e: DomainEntry) -> Self {
        match e {
            DomainEntry::Name(name) => DomainSpec {
                name,
                description: None,
                tags: BTreeMap::new(),
            },
            DomainEntry::Spec(s) => s,
        }
    }
}

/// Where notifications go. Parsed and validated now; delivery comes with the notify component.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    /// When set, the topic belongs to this domain, which must be declared.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Kinds of lake events published to the topic as they happen, e.g.
    /// `model.version.approved`; a trailing `*` matches a prefix (`model.version.*`).
    #[serde(default)]
    pub events: Vec<String>,
}

impl TopicSpec {
    /// Whether events of `kind` are published to this topic.
    pub fn receives(&self, kind: &str) -> bool {
        self.events.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => p == kind,
        })
    }
}

/// One subscription of a topic, as SNS has them: a protocol and an endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub protocol: SubscriptionProtocol,
    pub endpoint: String,
}

/// How a subscription is delivered.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionProtocol {
    Webhook,
    Email,
    Command,
    File,
}

/// How to reach an S3 or S3-compatible store when `storage` is an `s3://` URL. Every field is
/// optional: what is missing comes from the usual AWS environment variables (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The store's URL, for S3-compatible stores (MinIO, moto, Ceph...): `http://host:port`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Better left to `AWS_SECRET_ACCESS_KEY`; never printed.
    #[serde(default, skip_serializing)]
    pub secret_access_key: Option<Secret>,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    #[serde(default)]
    pub virtual_hosted_style: Option<bool>,
}

/// Where Glue ETL and `spark` steps run (`spark:` in tarn.yml): a step's own `master:` comes
/// first, then `TARN_SPARK_MASTER`, then `master` here, else `local[*]`.
///
/// ```yaml
/// spark:
///   master: spark://spark-master:7077
///   conf:
///     spark.executor.memory: 4g
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparkSettings {
    #[serde(default)]
    pub master: Option<String>,
    /// Spark properties passed as `--conf KEY=VALUE` (not for secrets: Spark may log them).
    #[serde(default)]
    pub conf: BTreeMap<String, String>,
}

/// The mail server `email` subscriptions are sent through.
///
/// ```yaml
/// smtp:
///   host: smtp.example.com
///   port: 587            # default: 587 with starttls, 465 with tls, 25 with none
///   tls: starttls        # starttls (default) | tls | none
///   username: alerts@example.com
///   from: "tarn alerts <alerts@example.com>"
///   # the password comes from TARN_SMTP_PASSWORD (or `password:`, never printed)
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Better left to `TARN_SMTP_PASSWORD`; never printed.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// The sender, `name <address>` or an address.
    pub from: String,
    /// A PEM file of extra certificate authorities to trust (a private mail server's CA),
    /// relative to the lake folder.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption (a relay on loopback).
    None,
}

impl SmtpSettings {
    /// The port: as given, or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

/// A value that must never be shown: its `Debug` prints `***`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
