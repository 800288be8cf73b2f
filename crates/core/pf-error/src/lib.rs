//! Error classes shared by every Paraflow crate.
//!
//! Every failure is one of three classes, and the class alone decides what the
//! worker does with it:
//!
//! * [`ErrorClass::Transient`] — retry with backoff; the work item goes back to the queue.
//! * [`ErrorClass::Permanent`] — the work item goes to the dead-letter queue; other
//!   files are unaffected.
//! * [`ErrorClass::Record`] — one record failed; it goes to the record DLQ and the
//!   file carries on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the worker should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// May succeed if retried later (network, throttling, a service restarting).
    Transient,
    /// Will fail again on every retry (corrupt file, unsupported format, bad config).
    Permanent,
    /// Concerns one record only; the rest of the file is unaffected.
    Record,
}

impl ErrorClass {
    /// The stable lower-case name used in logs, DLQ entries and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Record => "record",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified Paraflow failure with the context an operator needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum PfError {
    /// Reading or writing bytes failed; the class follows the I/O error kind.
    #[error("I/O error on {location}: {source}")]
    Io {
        /// The object, file or stream involved.
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The object does not exist (deleted after discovery, wrong key).
    #[error("object not found: {location}")]
    NotFound {
        /// The missing object.
        location: String,
    },
    /// The bytes are not valid for the declared format (corrupt footer, not Parquet, …).
    #[error("invalid {format} data in {location}: {message}")]
    InvalidData {
        /// The object being decoded.
        location: String,
        /// The format that was expected.
        format: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The data cannot be mapped to the required schema.
    #[error("schema error in {location}: {message}")]
    Schema {
        /// The object being decoded.
        location: String,
        /// What does not fit.
        message: String,
    },
    /// A work item or queue message could not be understood.
    #[error("invalid work item: {message}")]
    InvalidWorkItem {
        /// Why it was rejected.
        message: String,
    },
    /// A configuration value is missing or wrong.
    #[error("configuration error at `{key}`: {message}")]
    Config {
        /// The dotted key path, e.g. `reader.batch_size`.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A remote service (S3, SQS, Valkey, Elasticsearch, …) failed.
    #[error("{service} {operation} failed ({class}): {message}")]
    Service {
        /// The service name.
        service: &'static str,
        /// The operation that failed.
        operation: String,
        /// Whether retrying may help.
        class: ErrorClass,
        /// The service's error message.
        message: String,
    },
    /// The destination refused a request as a whole.
    #[error("indexer {destination} failed ({class}): {message}")]
    Indexer {
        /// The destination name.
        destination: &'static str,
        /// Whether retrying may help.
        class: ErrorClass,
        /// What the destination said.
        message: String,
    },
    /// The run was asked to stop before this work finished.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// This holder no longer holds the item (it was presumed dead and another worker
    /// took the item over): it must stop at once and settle nothing, since the new
    /// holder owns the item's progress and acknowledgement.
    #[error("claim lost on {location}: {holder} no longer holds it")]
    ClaimLost {
        /// The item.
        location: String,
        /// The holder that lost it.
        holder: String,
    },
}

impl PfError {
    /// The class that decides retry, dead-letter or record DLQ.
    pub fn class(&self) -> ErrorClass {
        match self {
            PfError::Io { source, .. } => io_class(source),
            PfError::NotFound { .. }
            | PfError::InvalidData { .. }
            | PfError::Schema { .. }
            | PfError::InvalidWorkItem { .. }
            | PfError::Config { .. } => ErrorClass::Permanent,
            PfError::Service { class, .. } | PfError::Indexer { class, .. } => *class,
            PfError::Interrupted(_) | PfError::ClaimLost { .. } => ErrorClass::Transient,
        }
    }

    /// Whether retrying the same work later may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// An I/O error at `location`, or [`PfError::NotFound`] when the OS says so.
    pub fn io(location: impl Into<String>, source: std::io::Error) -> Self {
        let location = location.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            PfError::NotFound { location }
        } else {
            PfError::Io { location, source }
        }
    }

    /// Invalid bytes for `format` in `location`.
    pub fn invalid_data(
        location: impl Into<String>,
        format: &'static str,
        message: impl fmt::Display,
    ) -> Self {
        PfError::InvalidData {
            location: location.into(),
            format,
            message: message.to_string(),
        }
    }

    /// A configuration error at the dotted `key`.
    pub fn config(key: impl Into<String>, message: impl fmt::Display) -> Self {
        PfError::Config {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

/// `Ok` when the count or size set at `key` is not zero; else a [`PfError::Config`] at
/// `key`: `must be at least 1`.
pub fn require_at_least_one<T: PartialEq + From<u8>>(key: &str, value: T) -> Result<()> {
    if value == T::from(0) {
        return Err(PfError::config(key, "must be at least 1"));
    }
    Ok(())
}

/// The bytes of the file that setting `key` names (a CA certificate, a key file); a
/// failure to read it is a [`PfError::Config`] at `key`: `cannot read <path>: <cause>`.
pub fn read_setting_file(key: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| PfError::config(key, format!("cannot read {}: {e}", path.display())))
}

/// I/O failures that describe the data rather than the transport will not heal on retry.
fn io_class(err: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind::*;
    match err.kind() {
        NotFound | PermissionDenied | InvalidData | InvalidInput | UnexpectedEof | Unsupported => {
            ErrorClass::Permanent
        }
        _ => ErrorClass::Transient,
    }
}

/// Result alias used across Paraflow crates.
pub type Result<T, E = PfError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_are_refused_at_their_key() {
        assert!(require_at_least_one("a.rows", 1usize).is_ok());
        let e = require_at_least_one("a.rows", 0u64).unwrap_err();
        assert_eq!(
            e.to_string(),
            PfError::config("a.rows", "must be at least 1").to_string()
        );
    }

    #[test]
    fn unreadable_setting_file_is_a_config_error_at_its_key() {
        let path = std::path::Path::new("/nonexistent/pf-error/ca.pem");
        let e = read_setting_file("sink.ca_cert", path).unwrap_err();
        let expected = "cannot read /nonexistent/pf-error/ca.pem: ";
        assert!(
            matches!(&e, PfError::Config { key, message }
                if key == "sink.ca_cert" && message.starts_with(expected)),
            "{e:?}"
        );
    }

    #[test]
    fn io_errors_are_classified_by_kind() {
        let e = PfError::io("x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(e, PfError::NotFound { .. }));
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = PfError::io(
            "x",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = PfError::io("x", std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert_eq!(e.class(), ErrorClass::Permanent);
    }

    #[test]
    fn messages_carry_context() {
        let e = PfError::config("reader.batch_size", "expected a positive integer");
        assert_eq!(
            e.to_string(),
            "configuration error at `reader.batch_size`: expected a positive integer"
        );
        assert_eq!(ErrorClass::Record.to_string(), "record");
    }
}
