//! Checks that serde cannot express. Each component validates its own section; this
//! module adds the checks that span sections.

use pf_error::PfError;

use crate::model::{AlertDestination, Config, Destination, QueueKind};

fn err(key: &str, message: impl Into<String>) -> Result<(), PfError> {
    Err(PfError::config(key, message.into()))
}

/// Error messages never echo secret-bearing values (the Valkey URL, ES endpoints that
/// may carry userinfo), since they end up in logs.
pub(crate) fn validate(config: &Config) -> Result<(), PfError> {
    config.transform.validate()?;
    if config.alerts.destination == AlertDestination::File
        && config.alerts.path.as_os_str().is_empty()
    {
        return err("alerts.path", "is required when alerts.destination is file");
    }
    config.worker.validate()?;
    config
        .queue
        .sqs
        .validate(config.queue.kind == QueueKind::Sqs)?;

    let reader = &config.reader;
    if reader.batch_size == 0 {
        return err("reader.batch_size", "must be at least 1");
    }
    reader.parquet.validate()?;
    reader.ndjson.validate()?;

    let indexer = &config.indexer;
    if indexer.bulk_max_docs == 0 {
        return err("indexer.bulk_max_docs", "must be at least 1");
    }
    if indexer.bulk_max_bytes == 0 {
        return err("indexer.bulk_max_bytes", "must be at least 1");
    }
    indexer
        .elasticsearch
        .validate(indexer.destination == Destination::Elasticsearch)?;
    if indexer.destination == Destination::Parquet {
        indexer.parquet.validate()?;
    }
    if indexer.destination == Destination::Flight {
        indexer.flight.validate()?;
    }
    if config.alerts.destination == AlertDestination::Parquet
        && config.alerts.dir.as_os_str().is_empty()
    {
        return err(
            "alerts.dir",
            "is required when alerts.destination is parquet",
        );
    }
    if config.alerts.destination == AlertDestination::Elasticsearch
        && indexer.destination != Destination::Elasticsearch
    {
        return err(
            "alerts.destination",
            "`elasticsearch` needs indexer.destination: elasticsearch",
        );
    }

    config.record_dlq.validate()?;
    let valkey = &config.coordinator.valkey;
    valkey.validate()?;
    let visibility = config.queue.sqs.visibility_timeout_secs;
    if config.queue.kind == QueueKind::Sqs
        && valkey.url.is_some()
        && valkey.stale_after_secs >= u64::from(visibility)
    {
        return err(
            "coordinator.valkey.stale_after_secs",
            format!(
                "must be below queue.sqs.visibility_timeout_secs ({visibility}): a message \
                 redelivered after its holder died must find the claim stale, or it bounces \
                 between workers until SQS moves it to the DLQ"
            ),
        );
    }
    config.metrics.socket_addr()?;
    Ok(())
}
