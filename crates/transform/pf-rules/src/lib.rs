//! Fraud rules: a YAML rule file compiled into vectorized Arrow computations over whole
//! record batches, plus stateful sliding-window rules.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pf_rules::{BatchMeta, CompileOptions, CompiledRules, RuleFile, append_fraud_columns};
//! # fn run(tables: pf_enrichment::EnrichmentTables, batch: arrow::array::RecordBatch) -> pf_error::Result<()> {
//! let file = RuleFile::load("config/rules/fraud.yaml".as_ref())?;
//! let rules = Arc::new(CompiledRules::compile(&file, &tables, CompileOptions::default())?);
//! // On each pipeline thread, for each batch:
//! let out = rules.evaluate(&batch, &BatchMeta::contiguous("s3://b/k.parquet", 0))?;
//! let scored = append_fraud_columns(&batch, &out)?;
//! // out.alerts → the alerts destination; out.errors → the record DLQ.
//! # Ok(()) }
//! ```
//!
//! # Rule file
//!
//! See [`RuleFile`]: a `threshold` and a list of rules, each with a `name`, `severity`
//! (`low` / `medium` / `high`), `score`, optional `enabled` (default true) and exactly one
//! of `condition` (a Rhai expression) or `window` (key, time, seconds, min_count).
//! Configuration errors name the rule and key (`rules.high_value.severity`).
//!
//! # Conditions
//!
//! A condition is parsed by [`expr::parse`]. Inside the vectorized subset (literals,
//! fields, arithmetic, comparisons, `&& || !`, `in [..]`, `hour` / `minute` /
//! `day_of_week`, `lookup(..).col`, `lookup_cidr(..).col`, `in_table(..)`) it becomes
//! Arrow kernels over whole batches; identical sub-expressions of all rules are computed
//! once per batch (a table is looked up once per key expression, whichever rules use it).
//! Anything else makes the rule *not vectorizable*: it is evaluated per record by a
//! [`ConditionFallback`] (the Rhai engine), and compiling fails if none is configured.
//! [`CompiledRules::rules`] says which rules vectorized.
//!
//! Results are identical to per-record evaluation. The language's rules — `()` is null,
//! how values of different types compare, which operations fail — are written down once in
//! [`semantics`], which the kernels are tested against. Rows the kernels cannot decide
//! (an operation that fails in Rhai, such as arithmetic on `()`, or a type combination
//! without a kernel) are marked per row and evaluated per record: by the fallback when
//! there is one, else by the built-in [`ReferenceInterpreter`]. A failure is a
//! record-level error of that record ([`RuleEvaluation::errors`]: `rule <name>: …`).
//!
//! Decisions beyond the Rhai semantics, checked at compile time rather than per record:
//! an unknown table, a table column that does not exist (`lookup(..).contry`), and
//! `lookup` on a `cidr` table or `lookup_cidr` on an `exact` table are configuration
//! errors naming the rule and position. Disabled rules are not compiled at all.
//!
//! # Output
//!
//! [`CompiledRules::evaluate`] returns, per batch, which rows each rule fired on,
//! `fraud_score` (Float64: the sum of the fired rules' scores, in rule order),
//! `fraud_rules` (Utf8: the fired rule names comma-joined in rule order, null when none),
//! `is_fraud` (`fraud_score >= threshold`), the alerts, the record errors, and per-rule
//! counts (with true positives against a `label_rules` ground-truth column when the batch
//! has one, for precision and recall). [`append_fraud_columns`] adds the three columns.
//! A row whose evaluation of a rule fails counts as not fired for that rule; the caller
//! sends the record to the record DLQ.
//!
//! Alerts: one per fired row of a condition rule, keyed `rule|uri|row` (the row's ordinal
//! in its file), `details` null by default (or the score and the values of the fields the
//! condition reads, with [`CompileOptions::alert_fields`]); and one per qualifying
//! window, keyed `rule|key|t_end` (µs), `details` holding the key, window bounds and
//! count. Keys are stable across retries and workers, so the destination can deduplicate.
//!
//! # Window rules
//!
//! Evaluated by a [`WindowStore`], one call per batch and rule; semantics (inclusive
//! windows, exactly-once alerts, order independence, replays, late data, eviction) in
//! [`window`]. [`MemoryWindowStore`] is the in-process store.
//!
//! # Speed
//!
//! No per-record allocation or lock on the vectorized path: kernels run over columns,
//! every lookup goes through [`pf_enrichment::EnrichmentTable::lookup_array`] once per
//! batch and key expression, `==` / `!=` between string lookup values compare numbers
//! assigned to the table strings at compile time instead of copying strings, and the
//! window store takes each shard lock once per batch. With the five default rules, the
//! generated tables (geo 500,000 prefixes, users 100,000, threats 50,000) and 2,000,000
//! generated transactions, one thread evaluates about 5.4 M rows/s; about half of that
//! time is the three enrichment lookups and a fifth the window store (`tests/speed.rs`).

pub mod config;
mod engine;
/// The condition language, from the shared front end (`pf-lang`).
pub use pf_lang::condition as expr;
mod interp;
/// The values and operator semantics of the language, from the shared front end.
pub use pf_lang::semantics;
mod vector;
pub mod window;

use arrow::array::RecordBatch;

pub use config::{RuleFile, RuleKind, RuleSpec, WindowSpec};
pub use engine::{
    CompileOptions, CompiledRules, FRAUD_RULES, FRAUD_SCORE, IS_FRAUD, LABEL_RULES, RecordError,
    RuleCounts, RuleEvaluation, RuleInfo, RuleMode, append_fraud_columns,
};
pub use interp::ReferenceInterpreter;
pub use window::{
    MemoryWindowOptions, MemoryWindowStore, WINDOW_EVENTS, WINDOW_KEYS, WindowAlert, WindowOutcome,
    WindowRequest, WindowStore, WindowStoreStats,
};

/// Counter by `rule` and `severity`: rows each rule fired on.
pub const RULE_HITS: &str = "paraflow_rule_hits_total";
/// Counter by `rule`: window-rule events ignored as later than the allowed lateness.
pub const RULE_LATE_EVENTS: &str = "paraflow_rule_late_events_total";

/// Describes the rules' metrics (rule hits, window state) to the installed recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    for (name, help) in [
        (
            RULE_HITS,
            "Rows each fraud rule fired on, by rule and severity; rows re-read by a retry count again.",
        ),
        (
            RULE_LATE_EVENTS,
            "Window-rule events ignored as later than the allowed lateness, by rule.",
        ),
    ] {
        describe_counter!(name, Unit::Count, help);
    }
    for (name, what) in [(WINDOW_KEYS, "Keys"), (WINDOW_EVENTS, "Events")] {
        describe_gauge!(
            name,
            Unit::Count,
            format!(
                "{what} held by the in-process window store, over all window rules (refreshed at most once a second)."
            )
        );
    }
}

// Shared with window stores outside this crate.
pub use pf_traits::BatchMeta;

/// Per-record evaluation of condition rules, for what the kernels do not cover —
/// implemented by the script (Rhai) crate.
///
/// `rule` is the rule's position in [`RuleFile::rules`] (disabled rules included), so an
/// implementation can compile the same file's conditions and index them the same way.
/// An `Err` is a record-level failure of that row; the engine reports it as
/// `rule <name>: <message>`.
pub trait ConditionFallback: Send + Sync {
    /// The condition of rule number `rule` for row `row` of `batch`.
    fn eval(&self, rule: usize, batch: &RecordBatch, row: usize) -> ConditionOutcome;
}

/// A condition's value for one row, or why it could not be evaluated (a record-level
/// failure of that row).
pub type ConditionOutcome = Result<bool, String>;
