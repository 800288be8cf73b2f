//! The Rhai script stage of the pipeline and the per-record evaluator of rule conditions.
//!
//! * [`ScriptEngine`] — one sandboxed [`rhai::Engine`] with Paraflow's built-ins (table
//!   lookups, time helpers, hashing, string helpers, `alert`), shared by every thread.
//! * [`ScriptTransformFactory`] / [`ScriptTransform`] — compile a script defining
//!   `fn transform(record)` once, run it on every record of each batch; columns the
//!   script does not touch pass through as the same Arrow arrays.
//! * [`TransformStage`] — the configured stage: the script (optional), then the fraud
//!   rules of `pf-rules` (optional, vectorized with Rhai as the per-record fallback),
//!   adding `fraud_score`, `fraud_rules` and `is_fraud` to every record.
//! * [`RhaiConditions`] — rule conditions (Rhai expressions) evaluated one record at a
//!   time, the fallback of the vectorized rule engine; its docs list the Rhai comparison
//!   and arithmetic semantics a vectorized evaluator must reproduce.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Float64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use pf_traits::{DocBatch, Transform};
//! use pf_transform::{ScriptEngine, ScriptLimits, ScriptOptions, ScriptTransformFactory};
//!
//! let engine = ScriptEngine::new(Default::default(), ScriptLimits::default())?;
//! let factory = ScriptTransformFactory::new(
//!     &engine,
//!     "fn transform(record) { record.big = record.amount > 100.0; record }",
//!     ScriptOptions::default(),
//! )?;
//! let schema = Arc::new(Schema::new(vec![Field::new("amount", DataType::Float64, false)]));
//! let batch = RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![5.0, 500.0]))])
//!     .unwrap();
//! let item = pf_types::WorkItem::from_uri("file:///tx.parquet")?;
//! let out = factory.transform().apply(&item, DocBatch::contiguous(batch, 0))?;
//! assert_eq!(out.docs.batch.num_columns(), 2);
//! # Ok::<(), pf_error::PfError>(())
//! ```

mod builtins;
mod conditions;
mod config;
mod convert;
mod engine;
mod error;
mod limits;
mod stage;
mod transform;

pub use conditions::RhaiConditions;
pub use config::TransformConfig;
pub use engine::ScriptEngine;
pub use limits::ScriptLimits;
/// Describes the transform stage's metrics (rule hits, window state).
pub use pf_rules::describe_metrics;
pub use stage::{RuleTally, TransformStage, compile_rules};
pub use transform::{ScriptOptions, ScriptTransform, ScriptTransformFactory};

/// The Rhai crate this one is built on, so callers can name [`rhai::Scope`] and friends
/// without a version skew.
pub use rhai;
