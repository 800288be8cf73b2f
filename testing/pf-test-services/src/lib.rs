//! Test harness for the suites that need real services.
//!
//! [`Moto`] (S3 + SQS emulator), [`Valkey`] and the Elasticsearch-compatible
//! [`SearchServer`]s (noida-db, osmem-server) run as child processes from the project's
//! virtualenv (installed by `testing/setup-services.sh`), each on a free loopback port.
//! Starting waits until the service answers; dropping the handle kills and reaps the
//! child it started, and nothing else. A missing service is a test failure with the
//! command that installs it, never a silent skip.

mod moto;
mod process;
mod search;
mod valkey;

pub use moto::Moto;
pub use process::{ServiceProcess, free_port, service_binary, venv_dir};
pub use search::{SearchServer, SearchServerKind};
pub use valkey::{Valkey, ValkeyCluster};

/// The access key pair the harness gives every AWS client and child process; moto
/// accepts any credentials.
pub const TEST_ACCESS_KEY: &str = "testing";
/// See [`TEST_ACCESS_KEY`].
pub const TEST_SECRET_KEY: &str = "testing";
/// The region the harness uses.
pub const TEST_REGION: &str = "us-east-1";
