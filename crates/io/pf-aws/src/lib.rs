//! AWS SDK set-up shared by the S3 object source and the SQS queue.
//!
//! [`AwsContext::connect`] resolves region, endpoint and credentials the way the AWS CLI
//! does (environment, profile, instance/container roles), with an optional endpoint
//! override for S3-compatible stores and emulators (LocalStack, moto, MinIO). TLS is
//! rustls on *ring*, so no C crypto library is built.
//!
//! Paraflow's component traits are blocking (one pipeline per thread), while the SDK is
//! async: the context owns a small multi-threaded Tokio runtime, and callers from any
//! thread drive one request at a time with [`AwsContext::block_on`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use pf_error::{ErrorClass, PfError, Result};

/// Region used when neither the settings nor the environment name one. Emulators accept
/// any region; real AWS needs the bucket's region, which the operator sets.
pub const FALLBACK_REGION: &str = "us-east-1";

/// How to reach AWS (or an S3/SQS-compatible service).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSettings {
    /// Endpoint override, e.g. `http://localhost:4566`; `None` means the AWS endpoints.
    pub endpoint: Option<String>,
    /// Region; `None` means the default chain (`AWS_REGION`, profile), else [`FALLBACK_REGION`].
    pub region: Option<String>,
    /// Explicit access key pair, bypassing the default credential chain (tests, emulators).
    pub credentials: Option<StaticCredentials>,
    /// Attempts per request, including the first (the SDK's standard retry with backoff).
    pub max_attempts: u32,
}

impl AwsSettings {
    /// Settings for `endpoint` (or AWS) in `region`, with the default credential chain.
    pub fn new(endpoint: Option<String>, region: Option<String>) -> Self {
        AwsSettings {
            endpoint,
            region,
            credentials: None,
            max_attempts: 5,
        }
    }
}

/// A fixed access key pair.
#[derive(Clone, PartialEq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// A resolved SDK configuration plus the runtime that drives its requests.
#[derive(Clone)]
pub struct AwsContext {
    runtime: Arc<tokio::runtime::Runtime>,
    config: SdkConfig,
    settings: AwsSettings,
}

impl std::fmt::Debug for AwsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsContext")
            .field("settings", &self.settings)
            .finish()
    }
}

impl AwsContext {
    /// Resolves configuration and starts the runtime. Fails only on local problems
    /// (runtime start-up); unreachable endpoints surface on the first request.
    pub fn connect(settings: &AwsSettings) -> Result<Self> {
        let runtime = pf_traits::io_runtime("pf-aws", 2, "the AWS client runtime")?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        } else if settings.endpoint.is_some() && !region_in_environment() {
            // Emulators take any region; asking the instance metadata service for one
            // would only stall start-up on a laptop.
            loader = loader.region(Region::new(FALLBACK_REGION));
        }
        if let Some(c) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "paraflow-settings",
            ));
        }
        let mut config = runtime.block_on(loader.load());
        if config.region().is_none() {
            config = config
                .into_builder()
                .region(Region::new(FALLBACK_REGION))
                .build();
        }
        Ok(AwsContext {
            runtime: Arc::new(runtime),
            config,
            settings: settings.clone(),
        })
    }

    /// The resolved SDK configuration, for building service clients.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    /// The settings this context was built from.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// Whether an endpoint override is in use (path-style S3 addressing then applies).
    pub fn has_custom_endpoint(&self) -> bool {
        self.settings.endpoint.is_some()
    }

    /// Runs `future` to completion on the context's runtime, blocking this thread.
    ///
    /// Must not be called from inside the runtime itself.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The runtime, for spawning concurrent requests (e.g. several SendMessageBatch calls).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// Turns an SDK error into a classified [`PfError::Service`].
///
/// Transport failures, timeouts, throttling and 5xx are transient; other service errors
/// (access denied, no such bucket/queue, bad request) are permanent.
pub fn service_error<E>(
    service: &'static str,
    operation: impl Into<String>,
    err: &SdkError<E, HttpResponse>,
) -> PfError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (class, message) = classify(err);
    PfError::Service {
        service,
        operation: operation.into(),
        class,
        message,
    }
}

/// The class and a one-line description of an SDK error.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> (ErrorClass, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let inner = se.err();
            let code = inner.code().unwrap_or("Unknown");
            let message = inner.message().unwrap_or("");
            let class = if status >= 500 || status == 429 || is_throttling(code) {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            };
            (class, format!("HTTP {status} {code}: {message}"))
        }
        SdkError::ConstructionFailure(_) => (
            ErrorClass::Permanent,
            format!("request not built: {}", chain(err)),
        ),
        SdkError::ResponseError(_) => (
            ErrorClass::Transient,
            format!("bad response: {}", chain(err)),
        ),
        SdkError::TimeoutError(_) => (ErrorClass::Transient, "timed out".to_owned()),
        SdkError::DispatchFailure(_) => {
            (ErrorClass::Transient, format!("not sent: {}", chain(err)))
        }
        _ => (ErrorClass::Transient, chain(err)),
    }
}

/// The service error code of an SDK error (e.g. `NoSuchKey`), when the service sent one.
pub fn error_code<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The HTTP status of a service error response.
pub fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        _ => None,
    }
}

fn region_in_environment() -> bool {
    ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "RequestLimitExceeded"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalError"
            | "ServiceUnavailable"
            | "AWS.SimpleQueueService.ServiceUnavailable"
            | "KMS.ThrottlingException"
    )
}

/// The error and its sources on one line; SDK errors hide the useful part in the chain.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_in_debug_output() {
        let c = StaticCredentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AKIA") && !shown.contains("very-secret"),
            "{shown}"
        );
    }

    #[test]
    fn falls_back_to_a_region_and_keeps_the_endpoint() {
        let mut s = AwsSettings::new(Some("http://127.0.0.1:1".into()), None);
        s.credentials = Some(StaticCredentials {
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
        });
        let ctx = AwsContext::connect(&s).unwrap();
        assert!(ctx.sdk_config().region().is_some());
        assert_eq!(ctx.sdk_config().endpoint_url(), Some("http://127.0.0.1:1"));
        assert!(ctx.has_custom_endpoint());
    }
}
