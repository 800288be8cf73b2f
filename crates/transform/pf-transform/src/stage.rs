use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use pf_enrichment::EnrichmentTables;
use pf_error::{ErrorClass, PfError, Result};
use pf_rules::{
    BatchMeta, CompileOptions, CompiledRules, ConditionFallback, RuleCounts, RuleFile,
    append_fraud_columns,
};
use pf_traits::{DocBatch, IdentityTransform, Transform, TransformFactory, TransformOutput};
use pf_types::{RecordFailure, Severity, Stage, WorkItem};

use crate::{RhaiConditions, ScriptEngine, ScriptOptions, ScriptTransform, ScriptTransformFactory};

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

/// The transform stage as configured: an optional Rhai script, then optional fraud rules.
///
/// Built once; [`TransformFactory::create`] gives each pipeline thread its own script
/// scope while the compiled script, rules and tables are shared.
pub struct TransformStage {
    script: Option<ScriptTransformFactory>,
    rules: Option<Arc<CompiledRules>>,
    tally: Arc<RuleTally>,
}

/// Adapts the per-record Rhai evaluator to the rule engine's fallback contract.
struct RhaiFallback(RhaiConditions);

impl ConditionFallback for RhaiFallback {
    fn eval(
        &self,
        rule: usize,
        batch: &RecordBatch,
        row: usize,
    ) -> std::result::Result<bool, String> {
        self.0.eval(rule, batch, row, &mut rhai::Scope::new())
    }
}

impl TransformStage {
    /// Compiles `script` and `rules` (either may be absent) against `tables`.
    ///
    /// Rules outside the vectorized subset are evaluated per record by Rhai.
    pub fn new(
        engine: &ScriptEngine,
        script: Option<&Path>,
        rules: Option<&Path>,
        tables: &EnrichmentTables,
    ) -> Result<Self> {
        let script = script
            .map(|p| ScriptTransformFactory::from_file(engine, p, ScriptOptions::default()))
            .transpose()?;
        let rules = match rules {
            None => None,
            Some(path) => {
                let file = RuleFile::load(path)?;
                Some(Arc::new(compile_rules(&file, engine, tables, false)?))
            }
        };
        Ok(TransformStage {
            script,
            rules,
            tally: Arc::default(),
        })
    }

    /// A stage over already compiled parts (tests, benches).
    pub fn from_parts(
        script: Option<ScriptTransformFactory>,
        rules: Option<Arc<CompiledRules>>,
    ) -> Self {
        TransformStage {
            script,
            rules,
            tally: Arc::default(),
        }
    }

    /// The run-wide per-rule counts.
    pub fn tally(&self) -> Arc<RuleTally> {
        self.tally.clone()
    }

    /// True when the stage changes nothing (no script, no rules).
    pub fn is_identity(&self) -> bool {
        self.script.is_none() && self.rules.is_none()
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
            ..CompileOptions::default()
        },
    )
}

impl TransformFactory for TransformStage {
    fn create(&self) -> Result<Box<dyn Transform>> {
        if self.is_identity() {
            return IdentityTransform.create();
        }
        Ok(Box::new(StageTransform {
            script: self.script.as_ref().map(ScriptTransformFactory::transform),
            rules: self.rules.clone(),
            tally: self.tally.clone(),
        }))
    }
}

/// One thread's instance of [`TransformStage`].
struct StageTransform {
    script: Option<ScriptTransform>,
    rules: Option<Arc<CompiledRules>>,
    tally: Arc<RuleTally>,
}

impl Transform for StageTransform {
    fn apply(&mut self, item: &WorkItem, input: DocBatch) -> Result<TransformOutput> {
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
        let Some(rules) = &self.rules else {
            return Ok(out);
        };
        let docs = &out.docs;
        let meta = BatchMeta {
            uri: &item.uri,
            first_row: docs.first_row,
            ordinals: docs.ordinals.as_deref(),
        };
        let eval = rules.evaluate(&docs.batch, &meta)?;
        self.tally.add(rules, &eval.counts);
        let scored = append_fraud_columns(&docs.batch, &eval)?;
        let failed = eval.failed_rows();
        let docs = if failed.is_empty() {
            DocBatch {
                batch: scored,
                first_row: docs.first_row,
                ordinals: docs.ordinals.clone(),
            }
        } else {
            // Records whose rule evaluation failed go to the record DLQ, not the index.
            for e in &eval.errors {
                out.failures.push(RecordFailure {
                    uri: item.uri.clone(),
                    line: None,
                    row: Some(docs.ordinal(e.row)),
                    stage: Stage::Transform,
                    class: ErrorClass::Record,
                    error: e.message.clone(),
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
