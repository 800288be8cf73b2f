use std::collections::HashMap;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use pf_aws::{AwsContext, AwsSettings, StaticCredentials};

use crate::process::{ServiceProcess, free_port, service_binary};
use crate::{TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY};

/// A moto server (S3 + SQS emulator) on a free loopback port, with SDK clients bound to
/// it; stopped on drop.
pub struct Moto {
    process: ServiceProcess,
    aws: AwsContext,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Moto {
    /// Starts an empty emulator.
    pub fn start() -> Moto {
        let port = free_port();
        // moto_server.py is `moto_server` with a race of moto's SQS queue closed (see
        // the file), run by the virtualenv's Python, which has moto; looking up
        // `moto_server` first fails with the install hint when moto is missing.
        service_binary("moto_server");
        let mut command = Command::new(service_binary("python"));
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = ServiceProcess::start("moto_server", command, port);
        let aws = AwsContext::connect(&Self::settings_for(port)).expect("AWS client set-up");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(aws.sdk_config())
                .force_path_style(true)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(aws.sdk_config());
        Moto {
            process,
            aws,
            s3,
            sqs,
        }
    }

    fn settings_for(port: u16) -> AwsSettings {
        let mut s = AwsSettings::new(
            Some(format!("http://127.0.0.1:{port}")),
            Some(TEST_REGION.to_owned()),
        );
        s.credentials = Some(StaticCredentials {
            access_key_id: TEST_ACCESS_KEY.to_owned(),
            secret_access_key: TEST_SECRET_KEY.to_owned(),
        });
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// Settings that reach this emulator, for Paraflow components under test.
    pub fn settings(&self) -> AwsSettings {
        Self::settings_for(self.process.port())
    }

    /// The SDK context the harness' own clients use.
    pub fn aws(&self) -> &AwsContext {
        &self.aws
    }

    /// An S3 client (path-style) bound to the emulator.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// An SQS client bound to the emulator.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// Environment for a child process (pf-worker, pf-discoverer) to reach the emulator
    /// through the default credential chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY.to_owned()),
            ("AWS_REGION", TEST_REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Creates `bucket`.
    pub fn create_bucket(&self, bucket: &str) {
        self.aws
            .block_on(self.s3.create_bucket().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }

    /// Uploads `body` as `bucket/key`.
    pub fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.aws
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
    }

    /// Downloads every object under `prefix` of `bucket` into `dir`, at its key relative
    /// to `prefix`; returns how many.
    pub fn download_prefix(&self, bucket: &str, prefix: &str, dir: &std::path::Path) -> usize {
        let mut count = 0;
        let mut token = None;
        loop {
            let page = self
                .aws
                .block_on(
                    self.s3
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(token.take())
                        .send(),
                )
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
            for object in page.contents() {
                let key = object.key().expect("object key");
                let body = self
                    .aws
                    .block_on(async {
                        let out = self.s3.get_object().bucket(bucket).key(key).send().await?;
                        Ok::<_, Box<dyn std::error::Error>>(out.body.collect().await?.to_vec())
                    })
                    .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"));
                let dest = dir.join(
                    key.strip_prefix(prefix)
                        .unwrap_or(key)
                        .trim_start_matches('/'),
                );
                std::fs::create_dir_all(dest.parent().expect("a parent")).unwrap();
                std::fs::write(&dest, body).unwrap();
                count += 1;
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => return count,
            }
        }
    }

    /// Deletes `bucket/key`.
    pub fn delete_object(&self, bucket: &str, key: &str) {
        self.aws
            .block_on(self.s3.delete_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e:?}"));
    }

    /// Creates a queue with `attributes` and returns its URL.
    pub fn create_queue(&self, name: &str, attributes: &[(QueueAttributeName, String)]) -> String {
        let attributes: HashMap<_, _> = attributes.iter().cloned().collect();
        let out = self
            .aws
            .block_on(
                self.sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(Some(attributes))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"));
        out.queue_url().expect("queue url").to_owned()
    }

    /// Approximate visible + in-flight message counts of `queue_url`.
    pub fn queue_depth(&self, queue_url: &str) -> (u64, u64) {
        let out = self
            .aws
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(queue_url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("queue attributes of {queue_url}: {e:?}"));
        let get = |k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Sends one raw message body to `queue_url`.
    pub fn send_message(&self, queue_url: &str, body: &str) {
        self.aws
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("send to {queue_url}: {e:?}"));
    }
}
