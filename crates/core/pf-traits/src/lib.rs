//! The contracts between Paraflow's components.
//!
//! Every stage of the pipeline is a trait here, so that sources, queues and
//! destinations can be swapped (local ↔ S3, memory ↔ SQS, memory ↔ Valkey,
//! stdout ↔ Elasticsearch) without touching orchestration.
//!
//! All traits are synchronous and blocking: the worker runs one pipeline per
//! thread, so a blocking call is the natural shape. Implementations backed by an
//! async client (aws-sdk, redis, elasticsearch) own a runtime and block on it;
//! their calls still run concurrently across the pipeline threads.
//!
//! Components that hold per-thread state (transforms, indexers) are built by a
//! shared factory, once per pipeline thread, so the per-record path needs no locks.

mod dlq;
mod docs;
mod indexer;
mod metadata;
mod queue;
mod reader;
#[cfg(feature = "io-runtime")]
mod runtime;
mod source;
mod transform;
mod window;

pub use dlq::RecordDlq;
pub use docs::DocBatch;
pub use indexer::{BulkLimits, IndexOutcome, Indexer, IndexerFactory};
pub use metadata::{
    Claim, Completion, ItemProgress, ItemRecord, ItemStatus, JobProgress, JobTotals, MetadataStore,
    NO_JOB,
};
pub use queue::{Delivery, WorkQueue};
pub use reader::{BatchSteps, BatchStream, ReadBatch, Reader, ResumePoint};
#[cfg(feature = "io-runtime")]
pub use runtime::io_runtime;
pub use source::{ObjectListing, ObjectSource, PinnedSource, object_changed};
pub use transform::{AlertSink, IdentityTransform, Transform, TransformFactory, TransformOutput};
pub use window::{BatchMeta, WindowAlert, WindowOutcome, WindowRequest, WindowStore};
