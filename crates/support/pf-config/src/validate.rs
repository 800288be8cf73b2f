//! Checks that serde cannot express: ranges, cross-field requirements, formats.

use std::collections::HashSet;

use pf_error::PfError;

use crate::model::{Config, Destination, QueueKind};

/// Maximum SQS long-poll wait.
const SQS_MAX_WAIT_SECS: u32 = 20;
/// Maximum SQS messages per ReceiveMessage call.
const SQS_MAX_MESSAGES: u32 = 10;
/// Maximum SQS visibility timeout (12 hours).
const SQS_MAX_VISIBILITY_SECS: u32 = 43_200;

fn err(key: &str, message: impl Into<String>) -> Result<(), PfError> {
    Err(PfError::config(key, message.into()))
}

fn at_least_one(key: &str, value: u64) -> Result<(), PfError> {
    if value == 0 {
        return err(key, "must be at least 1");
    }
    Ok(())
}

/// Error messages never echo secret-bearing values (the Valkey URL, ES endpoints that
/// may carry userinfo), since they end up in logs.
pub(crate) fn validate(config: &Config) -> Result<(), PfError> {
    validate_transform(config)?;
    let worker = &config.worker;
    if worker.threads == Some(0) {
        return err(
            "worker.threads",
            "must be at least 1 (null uses one thread per CPU core)",
        );
    }
    if worker.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
        return err(
            "worker.id",
            "must not be empty (null uses <hostname>-<pid>)",
        );
    }
    at_least_one("worker.max_attempts", worker.max_attempts.into())?;
    if worker.retry_max_ms < worker.retry_base_ms {
        return err(
            "worker.retry_max_ms",
            format!(
                "must be at least worker.retry_base_ms ({}), got {}",
                worker.retry_base_ms, worker.retry_max_ms
            ),
        );
    }

    let sqs = &config.queue.sqs;
    if config.queue.kind == QueueKind::Sqs && is_blank(sqs.queue_url.as_deref()) {
        return err("queue.sqs.queue_url", "is required when queue.kind is sqs");
    }
    if sqs.wait_time_secs > SQS_MAX_WAIT_SECS {
        return err(
            "queue.sqs.wait_time_secs",
            format!(
                "must be between 0 and {SQS_MAX_WAIT_SECS} (SQS limit), got {}",
                sqs.wait_time_secs
            ),
        );
    }
    if !(1..=SQS_MAX_VISIBILITY_SECS).contains(&sqs.visibility_timeout_secs) {
        return err(
            "queue.sqs.visibility_timeout_secs",
            format!(
                "must be between 1 and {SQS_MAX_VISIBILITY_SECS} (SQS limit), got {}",
                sqs.visibility_timeout_secs
            ),
        );
    }
    if sqs.prefetch > SQS_MAX_MESSAGES {
        return err(
            "queue.sqs.prefetch",
            format!(
                "must be between 0 and {SQS_MAX_MESSAGES}, got {}",
                sqs.prefetch
            ),
        );
    }
    if !(1..=SQS_MAX_MESSAGES).contains(&sqs.max_messages) {
        return err(
            "queue.sqs.max_messages",
            format!(
                "must be between 1 and {SQS_MAX_MESSAGES} (SQS limit), got {}",
                sqs.max_messages
            ),
        );
    }

    let reader = &config.reader;
    at_least_one("reader.batch_size", reader.batch_size as u64)?;
    if let Some(columns) = &reader.parquet.columns {
        unique_names(
            "reader.parquet.columns",
            columns.iter().map(String::as_str),
            "",
        )?;
    }
    let ndjson = &reader.ndjson;
    at_least_one("reader.ndjson.max_line_bytes", ndjson.max_line_bytes as u64)?;
    at_least_one("reader.ndjson.infer_rows", ndjson.infer_rows as u64)?;
    if let Some(schema) = &ndjson.schema {
        if schema.is_empty() {
            return err(
                "reader.ndjson.schema",
                "must list at least one field (null infers the schema)",
            );
        }
        unique_names(
            "reader.ndjson.schema",
            schema.iter().map(|f| f.name.as_str()),
            ".name",
        )?;
    }

    let indexer = &config.indexer;
    at_least_one("indexer.bulk_max_docs", indexer.bulk_max_docs as u64)?;
    at_least_one("indexer.bulk_max_bytes", indexer.bulk_max_bytes as u64)?;
    let es = &indexer.elasticsearch;
    if indexer.destination == Destination::Elasticsearch {
        if es.endpoints.is_empty() {
            return err(
                "indexer.elasticsearch.endpoints",
                "needs at least one URL when indexer.destination is elasticsearch",
            );
        }
        if es.index.trim().is_empty() {
            return err("indexer.elasticsearch.index", "must not be empty");
        }
    }
    for (i, endpoint) in es.endpoints.iter().enumerate() {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            || endpoint.contains(char::is_whitespace)
        {
            return err(
                &format!("indexer.elasticsearch.endpoints[{i}]"),
                "must be an http:// or https:// URL such as https://es.example.com:9200",
            );
        }
    }
    if es.username.is_some() && es.password.is_none() {
        return err(
            "indexer.elasticsearch.password",
            "is required when indexer.elasticsearch.username is set",
        );
    }
    if es.password.is_some() && es.username.is_none() {
        return err(
            "indexer.elasticsearch.username",
            "is required when indexer.elasticsearch.password is set",
        );
    }
    if es.api_key.is_some() && es.username.is_some() {
        return err(
            "indexer.elasticsearch.api_key",
            "set either api_key or username/password, not both",
        );
    }
    at_least_one("indexer.elasticsearch.timeout_secs", es.timeout_secs)?;
    if es.retry_max_ms < es.retry_base_ms {
        return err(
            "indexer.elasticsearch.retry_max_ms",
            format!(
                "must be at least indexer.elasticsearch.retry_base_ms ({}), got {}",
                es.retry_base_ms, es.retry_max_ms
            ),
        );
    }
    if es.id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
        return err(
            "indexer.elasticsearch.id_field",
            "must not be empty (null hashes uri + etag + row)",
        );
    }
    if es
        .alerts_index
        .as_deref()
        .is_some_and(|f| f.trim().is_empty())
    {
        return err("indexer.elasticsearch.alerts_index", "must not be empty");
    }
    for (key, value) in [
        ("indexer.elasticsearch.mappings", &es.mappings),
        ("indexer.elasticsearch.index_settings", &es.index_settings),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_mapping()) {
            return err(
                key,
                "must be a mapping (an object), as in the Elasticsearch API",
            );
        }
    }
    if config.alerts.destination == crate::AlertDestination::Elasticsearch
        && indexer.destination != Destination::Elasticsearch
    {
        return err(
            "alerts.destination",
            "`elasticsearch` needs indexer.destination: elasticsearch",
        );
    }

    if config.record_dlq.dir.as_os_str().is_empty() {
        return err("record_dlq.dir", "must not be empty");
    }

    if let Some(url) = &config.coordinator.valkey.url {
        let scheme_ok = url
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
        if !scheme_ok {
            return err(
                "coordinator.valkey.url",
                "must be a URL such as redis://host:6379 (or rediss://, valkey://); \
                 null keeps metadata in memory",
            );
        }
        let v = &config.coordinator.valkey;
        if v.key_prefix.is_empty() {
            return err("coordinator.valkey.key_prefix", "must not be empty");
        }
        for (key, value) in [
            ("coordinator.valkey.ttl_secs", v.ttl_secs),
            ("coordinator.valkey.stale_after_secs", v.stale_after_secs),
            ("coordinator.valkey.timeout_ms", v.timeout_ms),
        ] {
            if value == 0 {
                return err(key, "must be greater than 0");
            }
        }
    }

    config.metrics.socket_addr()?;
    Ok(())
}

fn is_blank(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.trim().is_empty())
}

/// Names must be non-empty and unique; errors point at the offending entry.
fn unique_names<'a>(
    key: &str,
    names: impl Iterator<Item = &'a str>,
    suffix: &str,
) -> Result<(), PfError> {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if name.trim().is_empty() {
            return err(&format!("{key}[{i}]{suffix}"), "must not be empty");
        }
        if !seen.insert(name) {
            return err(
                &format!("{key}[{i}]{suffix}"),
                format!("duplicate name `{name}`"),
            );
        }
    }
    Ok(())
}

fn validate_transform(config: &Config) -> Result<(), PfError> {
    let t = &config.transform;
    at_least_one("transform.max_operations", t.max_operations)?;
    let mut names = std::collections::HashSet::new();
    for (i, table) in t.tables.iter().enumerate() {
        if table.name.trim().is_empty() {
            return err(&format!("transform.tables[{i}].name"), "must not be empty");
        }
        if !names.insert(table.name.as_str()) {
            return err(
                &format!("transform.tables[{i}].name"),
                format!("duplicate table name `{}`", table.name),
            );
        }
        if table.key.trim().is_empty() {
            return err(&format!("transform.tables[{i}].key"), "must not be empty");
        }
    }
    if config.alerts.destination == crate::AlertDestination::File
        && config.alerts.path.as_os_str().is_empty()
    {
        return err("alerts.path", "is required when alerts.destination is file");
    }
    Ok(())
}
