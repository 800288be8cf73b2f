//! `indexer.flight`: the one declaration of the Arrow Flight destination's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use pf_error::{PfError, Result};

/// `indexer.flight`: the Flight server and how record batches are put to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlightSinkConfig {
    /// `endpoint`: `grpc://host:port` (plaintext) or `grpc+tls://host:port`. Default
    /// `null`; required when `indexer.destination` is `flight`.
    pub endpoint: Option<String>,
    /// `descriptor`: the `FlightDescriptor` path every `DoPut` names (the data set).
    /// Default `transactions`.
    pub descriptor: String,
    /// `ca_cert`: PEM file of the CA that signed the server's certificate, for
    /// `grpc+tls://`. Default `null` (required with TLS: no system roots are built in).
    pub ca_cert: Option<PathBuf>,
    /// `token_env`: environment variable holding a bearer token, sent as
    /// `authorization: Bearer …` when set and not empty. Default `PF_FLIGHT_TOKEN`.
    pub token_env: String,
    /// `connect_timeout_secs`: connection timeout, seconds. Default `10`.
    pub connect_timeout_secs: u64,
    /// `timeout_secs`: timeout of one `DoPut` call, seconds. Default `60`.
    pub timeout_secs: u64,
}

impl Default for FlightSinkConfig {
    fn default() -> Self {
        FlightSinkConfig {
            endpoint: None,
            descriptor: "transactions".into(),
            ca_cert: None,
            token_env: "PF_FLIGHT_TOKEN".into(),
            connect_timeout_secs: 10,
            timeout_secs: 60,
        }
    }
}

impl FlightSinkConfig {
    /// Checks the values a run cannot start with, naming the key.
    pub fn validate(&self) -> Result<()> {
        let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) else {
            return Err(PfError::config(
                "indexer.flight.endpoint",
                "is required when indexer.destination is flight (e.g. grpc://127.0.0.1:8815)",
            ));
        };
        if endpoint.starts_with("grpc+tls://") && self.ca_cert.is_none() {
            return Err(PfError::config(
                "indexer.flight.ca_cert",
                "is required with grpc+tls:// (the CA that signed the server's certificate)",
            ));
        }
        if self.descriptor.is_empty() {
            return Err(PfError::config(
                "indexer.flight.descriptor",
                "must not be empty",
            ));
        }
        if self.timeout_secs == 0 || self.connect_timeout_secs == 0 {
            return Err(PfError::config(
                "indexer.flight.timeout_secs",
                "timeouts must be at least 1 second",
            ));
        }
        Ok(())
    }
}
