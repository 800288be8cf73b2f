//! `storage.s3`: the one declaration of the S3 connection's settings.

use pf_aws::AwsSettings;
use serde::{Deserialize, Serialize};

use crate::OnDemandS3;

/// `storage.s3`: the S3 connection used for `s3://` URIs (input objects, record DLQ).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `endpoint`: custom endpoint (LocalStack, moto, MinIO). Default `null`: AWS.
    pub endpoint: Option<String>,
    /// `region`: AWS region. Default `null`: the AWS default chain.
    pub region: Option<String>,
    /// `force_path_style`: address buckets as `endpoint/bucket` instead of
    /// `bucket.endpoint`. Default `null`: true when `endpoint` is set, because emulators
    /// rarely resolve virtual-host names.
    pub force_path_style: Option<bool>,
}

impl S3Config {
    /// The effective path-style flag: `force_path_style`, else whether an endpoint is set.
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }

    /// The S3 source, connecting on the first `s3://` URI (local runs never start an
    /// AWS client).
    pub fn build(&self) -> OnDemandS3 {
        OnDemandS3::new(
            AwsSettings::new(self.endpoint.clone(), self.region.clone()),
            self.path_style(),
        )
    }
}
