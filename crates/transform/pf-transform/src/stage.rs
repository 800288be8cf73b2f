use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use pf_enrichment::EnrichmentTables;
use pf_error::{ErrorClass, PfError, Result};
use pf_rules::{
    BatchMeta, CompileOptions, CompiledRules, ConditionFallback, ConditionOutcome,
    MemoryWindowOptions, MemoryWindowStore, RULE_HITS, RULE_LATE_EVENTS, RuleCounts, RuleFile,
    RuleMode, WindowStore, append_fraud_columns,
};
use pf_traits::{DocBatch, IdentityTransform, Transform, TransformFactory, TransformOutput};
use pf_types::{Alert, RecordFailure, Severity, Stage, WorkItem};

use crate::{
    RhaiConditions, ScriptEngine, ScriptOptions, ScriptTransform, ScriptTransformFactory,
    TransformConfig,
};

/// Per-rule counts over the whole run (all threads), for the summary's `fraud_by_rule`
/// and precision/recall. Updated once per batch.
#[derive(Debug, Default)]
pub struct RuleTally {
    counts: Mutex<BTreeMap<String, (Severity, RuleCounts)>>,
}

impl RuleTally {
    fn add(&self, rules: &CompiledRules, counts: &[RuleCounts]) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (info, c) in rules.rules().zip(counts) {
            if c.fired > 0 {
                metrics::counter!(RULE_HITS, "rule" => info.name.clone(), "severity" => info.severity.as_str())
                    .increment(c.fired);
            }
            if c.late_dropped > 0 {
                metrics::counter!(RULE_LATE_EVENTS, "rule" => info.name.clone())
                    .increment(c.late_dropped);
            }
            map.entry(info.name.clone())
                .or_insert_with(|| (info.severity, RuleCounts::default()))
                .1
                .merge(c);
        }
    }

    /// Rule name → (severity, counts so far).
    pub fn snapshot(&self) -> BTreeMap<String, (Severity, RuleCounts)> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One compiled version of the stage; replaced whole on reload.
struct StageParts {
    script: Option<ScriptTransformFactory>,
    rules: Option<Arc<CompiledRules>>,
}

struct StageShared {
    source: Option<TransformConfig>,
    parts: RwLock<Arc<StageParts>>,
    /// Bumped on every successful reload; threads compare it once per batch.
    generation: AtomicU64,
    /// Outlives reloads, so sliding windows keep their events across rule changes.
    windows: Arc<dyn WindowStore>,
    tally: Arc<RuleTally>,
}

/// The transform stage as configured: an optional Rhai script, then optional fraud rules.
///
/// Built once; [`TransformFactory::create`] gives each pipeline thread its own script
/// scope while the compiled script, rules and tables are shared. [`reload`](Self::reload)
/// swaps in a new version atomically; threads pick it up at their next batch.
pub struct TransformStage {
    shared: Arc<StageShared>,
}

/// Adapts the per-record Rhai evaluator to the rule engine's fallback contract.
struct RhaiFallback(RhaiConditions);

impl ConditionFallback for RhaiFallback {
    fn eval(&self, rule: usize, batch: &RecordBatch, row: usize) -> ConditionOutcome {
        self.0.eval(rule, batch, row, &mut rhai::Scope::new())
    }
}

impl TransformStage {
    /// Loads the tables and compiles the script and rules of `source`.
    ///
    /// Rules outside the vectorized subset are evaluated per record by Rhai.
    pub fn load(source: TransformConfig) -> Result<Self> {
        Self::load_with_windows(source, Arc::new(MemoryWindowStore::new()))
    }

    /// Like [`load`](Self::load), with in-process windows that accept events up to
    /// `lateness` behind the newest of their key.
    pub fn load_with_lateness(source: TransformConfig, lateness: Duration) -> Result<Self> {
        let windows = MemoryWindowStore::with_options(MemoryWindowOptions {
            allowed_lateness: lateness,
            ..MemoryWindowOptions::default()
        });
        Self::load_with_windows(source, Arc::new(windows))
    }

    /// Like [`load`](Self::load), with window-rule state kept in `windows` (e.g. a store
    /// shared by every worker); it survives reloads like the in-process one.
    pub fn load_with_windows(
        source: TransformConfig,
        windows: Arc<dyn WindowStore>,
    ) -> Result<Self> {
        let parts = build_parts(&source, &windows)?;
        Ok(Self::with(Some(source), parts, windows))
    }

    /// A stage over already compiled parts (tests, benches); it cannot reload.
    pub fn from_parts(
        script: Option<ScriptTransformFactory>,
        rules: Option<Arc<CompiledRules>>,
    ) -> Self {
        Self::with(
            None,
            StageParts { script, rules },
            Arc::new(MemoryWindowStore::new()),
        )
    }

    fn with(
        source: Option<TransformConfig>,
        parts: StageParts,
        windows: Arc<dyn WindowStore>,
    ) -> Self {
        TransformStage {
            shared: Arc::new(StageShared {
                source,
                parts: RwLock::new(Arc::new(parts)),
                generation: AtomicU64::new(0),
                windows,
                tally: Arc::default(),
            }),
        }
    }

    /// Rebuilds the stage from its source files. On error the running version stays and
    /// the error says what is wrong with the new one.
    pub fn reload(&self) -> Result<()> {
        let Some(source) = &self.shared.source else {
            return Err(PfError::config(
                "transform",
                "this stage was not built from files",
            ));
        };
        let parts = build_parts(source, &self.shared.windows)?;
        *self.shared.parts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(parts);
        self.shared.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The files the stage was built from (empty for [`from_parts`](Self::from_parts)).
    pub fn source_files(&self) -> Vec<PathBuf> {
        self.shared
            .source
            .as_ref()
            .map(TransformConfig::files)
            .unwrap_or_default()
    }

    /// The run-wide per-rule counts.
    pub fn tally(&self) -> Arc<RuleTally> {
        self.shared.tally.clone()
    }

    /// True when the stage changes nothing (no script, no rules); reloads keep it so.
    pub fn is_identity(&self) -> bool {
        let parts = self.current();
        parts.script.is_none() && parts.rules.is_none()
    }

    fn current(&self) -> Arc<StageParts> {
        self.shared
            .parts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn build_parts(source: &TransformConfig, windows: &Arc<dyn WindowStore>) -> Result<StageParts> {
    let tables = EnrichmentTables::load(&source.tables)?;
    for table in tables.iter() {
        tracing::info!(
            table = table.name(),
            entries = table.len(),
            "enrichment table loaded"
        );
    }
    let engine = ScriptEngine::new(tables.clone(), source.limits())?;
    let script = source
        .script
        .as_deref()
        .map(|p| ScriptTransformFactory::from_file(&engine, p, ScriptOptions::default()))
        .transpose()
        .map_err(|e| at_key("transform.script", e))?;
    let rules = match &source.rules {
        None => None,
        Some(path) => {
            let compiled = RuleFile::load(path).and_then(|file| {
                compile_with(&file, &engine, &tables, false, Some(windows.clone()))
            });
            let compiled = compiled.map_err(|e| at_key("transform.rules", e))?;
            register_rule_metrics(&compiled);
            Some(Arc::new(compiled))
        }
    };
    Ok(StageParts { script, rules })
}

/// Creates each rule's series at zero, so a rule that has not fired yet shows.
fn register_rule_metrics(rules: &CompiledRules) {
    for info in rules.rules() {
        metrics::counter!(RULE_HITS, "rule" => info.name.clone(), "severity" => info.severity.as_str())
            .increment(0);
        if matches!(info.mode, RuleMode::Window(_)) {
            metrics::counter!(RULE_LATE_EVENTS, "rule" => info.name.clone()).increment(0);
        }
    }
}

/// Compiles a rule file with Rhai as the per-record fallback; `force_fallback` evaluates
/// every condition per record (to compare the two paths).
pub fn compile_rules(
    file: &RuleFile,
    engine: &ScriptEngine,
    tables: &EnrichmentTables,
    force_fallback: bool,
) -> Result<CompiledRules> {
    compile_with(file, engine, tables, force_fallback, None)
}

fn compile_with(
    file: &RuleFile,
    engine: &ScriptEngine,
    tables: &EnrichmentTables,
    force_fallback: bool,
    window_store: Option<Arc<dyn WindowStore>>,
) -> Result<CompiledRules> {
    // The fallback is indexed by position in the file, window and disabled rules included.
    let conditions: Vec<(String, String)> = file
        .rules
        .iter()
        .map(|r| {
            let expr = match (&r.condition, r.enabled) {
                (Some(c), true) => c.clone(),
                _ => "false".to_owned(),
            };
            (r.name.clone(), expr)
        })
        .collect();
    let fallback = RhaiConditions::compile(&conditions, engine)?;
    CompiledRules::compile(
        file,
        tables,
        CompileOptions {
            fallback: Some(Arc::new(RhaiFallback(fallback))),
            force_fallback,
            window_store,
            ..CompileOptions::default()
        },
    )
}

impl TransformFactory for TransformStage {
    fn create(&self) -> Result<Box<dyn Transform>> {
        if self.is_identity() {
            return IdentityTransform.create();
        }
        let generation = self.shared.generation.load(Ordering::Acquire);
        let parts = self.current();
        Ok(Box::new(StageTransform {
            script: parts.script.as_ref().map(ScriptTransformFactory::transform),
            parts,
            generation,
            shared: self.shared.clone(),
        }))
    }
}

/// One thread's instance of [`TransformStage`].
struct StageTransform {
    script: Option<ScriptTransform>,
    parts: Arc<StageParts>,
    generation: u64,
    shared: Arc<StageShared>,
}

impl StageTransform {
    /// Picks up a reloaded version between batches, never within one.
    fn refresh(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.parts = self
                .shared
                .parts
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            self.script = self
                .parts
                .script
                .as_ref()
                .map(ScriptTransformFactory::transform);
            self.generation = generation;
        }
    }
}

impl Transform for StageTransform {
    fn undelivered_alerts(&mut self, item: &WorkItem) -> Result<Vec<Alert>> {
        self.refresh();
        match &self.parts.rules {
            Some(rules) => rules.undelivered_alerts(&item.key()),
            None => Ok(Vec::new()),
        }
    }

    fn alerts_delivered(&mut self, item: &WorkItem) -> Result<()> {
        match &self.parts.rules {
            Some(rules) => rules.alerts_delivered(&item.key()),
            None => Ok(()),
        }
    }

    fn apply(&mut self, item: &WorkItem, input: DocBatch) -> Result<TransformOutput> {
        self.refresh();
        let mut out = match self.script.as_mut() {
            Some(s) => s.apply(item, input)?,
            None => TransformOutput {
                docs: input,
                dropped: 0,
                failures: Vec::new(),
                fraud_rows: 0,
                alerts: Vec::new(),
            },
        };
        let Some(rules) = &self.parts.rules else {
            return Ok(out);
        };
        let docs = &out.docs;
        let claim = item.key();
        let meta = BatchMeta {
            uri: &item.uri,
            first_row: docs.first_row,
            ordinals: docs.ordinals.as_deref(),
            item: &claim,
        };
        let eval = rules.evaluate(&docs.batch, &meta)?;
        self.shared.tally.add(rules, &eval.counts);
        let scored = append_fraud_columns(&docs.batch, &eval)?;
        let failed = eval.failed_rows();
        let docs = if failed.is_empty() {
            DocBatch {
                batch: scored,
                first_row: docs.first_row,
                ordinals: docs.ordinals.clone(),
            }
        } else {
            // Records whose rule evaluation failed go to the record DLQ, not the index:
            // one failure per record, carrying every rule's reason, so a record that
            // fails two rules is still one failed record.
            for group in eval.errors.chunk_by(|a, b| a.row == b.row) {
                out.failures.push(RecordFailure {
                    uri: item.uri.clone(),
                    line: None,
                    row: Some(docs.ordinal(group[0].row)),
                    stage: Stage::Transform,
                    class: ErrorClass::Record,
                    error: group
                        .iter()
                        .map(|e| e.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    record: None,
                });
            }
            let mut keep = vec![true; scored.num_rows()];
            for r in &failed {
                keep[*r] = false;
            }
            let ordinals = (0..keep.len())
                .filter(|i| keep[*i])
                .map(|i| docs.ordinal(i))
                .collect();
            let batch = filter_record_batch(&scored, &BooleanArray::from(keep)).map_err(|e| {
                PfError::Schema {
                    location: item.uri.clone(),
                    message: format!("cannot filter failed records: {e}"),
                }
            })?;
            DocBatch {
                batch,
                first_row: docs.first_row,
                ordinals: Some(ordinals),
            }
        };
        out.fraud_rows += fraud_count(&docs.batch);
        out.alerts.extend(eval.alerts);
        out.docs = docs;
        Ok(out)
    }
}

fn fraud_count(batch: &RecordBatch) -> u64 {
    batch
        .column_by_name(pf_rules::IS_FRAUD)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .map_or(0, |a| a.true_count() as u64)
}

/// A failure to load the file named by `key` (`transform.script`, `transform.rules`),
/// reported as an error of that key with the file's own message (which carries the
/// file, line and what is wrong).
fn at_key(key: &str, err: PfError) -> PfError {
    PfError::config(key, err)
}
