//! `indexer.elasticsearch`: the one declaration of the Elasticsearch sink's settings.

use std::path::PathBuf;
use std::time::Duration;

use pf_types::{Backoff, Secret, SecretUrl};
use serde::{Deserialize, Serialize};

use crate::settings::{EsAuth, IndexName, IndexSetup};
use pf_error::{PfError, Result, require_at_least_one};

/// `indexer.elasticsearch.op_type`: what an existing `_id` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    /// Create or overwrite the document with the same `_id`.
    #[default]
    Index,
    /// Create only; an existing `_id` answers 409, counted as already indexed.
    Create,
}

/// `indexer.elasticsearch`: the Elasticsearch (or OpenSearch) cluster and how documents
/// are sent to it. Secrets (`password`, `api_key`, userinfo of `endpoints`) mask
/// themselves wherever the config is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// `endpoints`: node URLs (`https://host:9200`), used in turn. Default `[]`; at least
    /// one is required when `indexer.destination` is `elasticsearch`.
    pub endpoints: Vec<SecretUrl>,
    /// `index`: target index (or alias / data stream), fixed or from the record time:
    /// `transactions-{yyyy.MM.dd}` (`yyyy MM dd HH`, UTC). Default `transactions`.
    pub index: String,
    /// `username`: basic-auth user. Default `null`.
    pub username: Option<String>,
    /// `password`: basic-auth password (secret). Default `null`.
    pub password: Option<Secret>,
    /// `api_key`: base64 API key, sent as `Authorization: ApiKey` (secret); alternative
    /// to username/password. Default `null`.
    pub api_key: Option<Secret>,
    /// `ca_cert`: PEM file of the CA that signed the cluster's certificate. Default
    /// `null`: system roots.
    pub ca_cert: Option<PathBuf>,
    /// `compression`: gzip bulk bodies; trades CPU for network. Default `false`.
    pub compression: bool,
    /// `timeout_secs`: per-request timeout, seconds. Default `30`.
    pub timeout_secs: u64,
    /// `max_in_flight`: bulk requests a pipeline thread has outstanding at once. A chunk
    /// holds up to this many requests' worth of documents (`indexer.bulk_max_docs` /
    /// `bulk_max_bytes` each); its requests are sent together and all are settled
    /// (every document indexed, rejected to the record DLQ, or the chunk failed) before
    /// the chunk's checkpoint. Memory: this many request bodies per thread. Default `4`.
    pub max_in_flight: usize,
    /// `max_retries`: retries of a bulk request (or of its 429-rejected items) before the
    /// file fails as transient. Default `5`.
    pub max_retries: u32,
    /// `retry_base_ms`: first backoff delay of those retries, milliseconds, doubled each
    /// time, with jitter. Default `200`.
    pub retry_base_ms: u64,
    /// `retry_max_ms`: ceiling of that backoff, milliseconds. Default `10000`.
    pub retry_max_ms: u64,
    /// `id_field`: column whose value becomes the document `_id`. Default `null`: a hash
    /// of the file's uri and etag plus the row's ordinal, so re-processing a file
    /// overwrites instead of duplicating.
    pub id_field: Option<String>,
    /// `op_type`: `index` (create or overwrite) or `create` (an existing `_id` answers
    /// 409, counted as already indexed). Default `index`.
    pub op_type: OpType,
    /// `index_time_field`: the column a templated `index` takes its date from. Default
    /// `timestamp`.
    pub index_time_field: String,
    /// `alerts_index`: index for fraud alerts when `alerts.destination` is
    /// `elasticsearch`. Default `null`: the index name's fixed part plus `-alerts`
    /// (`transactions-alerts`).
    pub alerts_index: Option<String>,
    /// `setup`: at start-up, create the index (fixed name) or an index template
    /// (templated name) with `mappings` and `index_settings`; an existing index is left
    /// unchanged. Default `false`.
    pub setup: bool,
    /// `mappings`: the `mappings` object used by `setup`. Default `null`: dynamic mapping.
    pub mappings: Option<serde_json::Value>,
    /// `index_settings`: the `settings` object used by `setup` (shards, replicas,
    /// refresh interval). Default `null`.
    pub index_settings: Option<serde_json::Value>,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            endpoints: Vec::new(),
            index: "transactions".to_owned(),
            username: None,
            password: None,
            api_key: None,
            ca_cert: None,
            compression: false,
            timeout_secs: 30,
            max_in_flight: 4,
            max_retries: 5,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            id_field: None,
            op_type: OpType::Index,
            index_time_field: "timestamp".to_owned(),
            alerts_index: None,
            setup: false,
            mappings: None,
            index_settings: None,
        }
    }
}

impl ElasticsearchConfig {
    /// The defaults with one endpoint and `index`, as tests and benches start from.
    pub fn for_endpoint(endpoint: impl Into<String>, index: &str) -> Self {
        ElasticsearchConfig {
            endpoints: vec![SecretUrl::new(endpoint)],
            index: index.to_owned(),
            ..ElasticsearchConfig::default()
        }
    }

    /// The parsed `index`; an invalid name is a configuration error naming the key.
    pub fn index_name(&self) -> Result<IndexName> {
        IndexName::parse(&self.index, &self.index_time_field)
    }

    /// `alerts_index`, else the fixed part of `index` plus `-alerts`.
    pub fn alerts_index(&self) -> String {
        self.alerts_index.clone().unwrap_or_else(|| {
            let base = self.index.split('{').next().unwrap_or("paraflow");
            format!("{}-alerts", base.trim_end_matches(['-', '_', '.']))
        })
    }

    /// The credentials: basic auth when `username` and `password` are both set, else
    /// the API key, else none.
    pub fn auth(&self) -> EsAuth {
        match (&self.username, &self.password, &self.api_key) {
            (Some(username), Some(password), _) => EsAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            (_, _, Some(key)) => EsAuth::ApiKey(key.clone()),
            _ => EsAuth::None,
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The retry policy of bulk requests and throttled items.
    pub fn retry(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_max_ms),
        )
    }

    /// What `setup` creates, when it is on.
    pub fn index_setup(&self) -> Option<IndexSetup> {
        self.setup.then(|| IndexSetup {
            mappings: self.mappings.clone(),
            settings: self.index_settings.clone(),
        })
    }

    /// Checks what can be checked without the cluster; errors name the key.
    /// `in_use`: whether `indexer.destination` is `elasticsearch` (endpoints are then
    /// required).
    pub fn validate(&self, in_use: bool) -> Result<()> {
        let err = |key: &str, message: String| Err(PfError::config(key, message));
        if in_use {
            if self.endpoints.is_empty() {
                return err(
                    "indexer.elasticsearch.endpoints",
                    "needs at least one URL when indexer.destination is elasticsearch".into(),
                );
            }
            if self.index.trim().is_empty() {
                return err("indexer.elasticsearch.index", "must not be empty".into());
            }
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let endpoint = endpoint.expose();
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                || endpoint.contains(char::is_whitespace)
            {
                return err(
                    &format!("indexer.elasticsearch.endpoints[{i}]"),
                    "must be an http:// or https:// URL such as https://es.example.com:9200".into(),
                );
            }
        }
        if self.username.is_some() && self.password.is_none() {
            return err(
                "indexer.elasticsearch.password",
                "is required when indexer.elasticsearch.username is set".into(),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return err(
                "indexer.elasticsearch.username",
                "is required when indexer.elasticsearch.password is set".into(),
            );
        }
        if self.api_key.is_some() && self.username.is_some() {
            return err(
                "indexer.elasticsearch.api_key",
                "set either api_key or username/password, not both".into(),
            );
        }
        require_at_least_one("indexer.elasticsearch.timeout_secs", self.timeout_secs)?;
        require_at_least_one("indexer.elasticsearch.max_in_flight", self.max_in_flight)?;
        Backoff::from_config(
            "indexer.elasticsearch",
            self.retry_base_ms,
            self.retry_max_ms,
        )?;
        for (key, value, message) in [
            (
                "indexer.elasticsearch.id_field",
                &self.id_field,
                "must not be empty (null hashes uri + etag + row)",
            ),
            (
                "indexer.elasticsearch.alerts_index",
                &self.alerts_index,
                "must not be empty",
            ),
        ] {
            if value.as_deref().is_some_and(|f| f.trim().is_empty()) {
                return err(key, message.into());
            }
        }
        for (key, value) in [
            ("indexer.elasticsearch.mappings", &self.mappings),
            ("indexer.elasticsearch.index_settings", &self.index_settings),
        ] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return err(
                    key,
                    "must be a mapping (an object), as in the Elasticsearch API".into(),
                );
            }
        }
        Ok(())
    }
}
