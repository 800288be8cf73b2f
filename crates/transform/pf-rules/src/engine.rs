//! Compiling a rule file and evaluating it over record batches.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema};
use pf_enrichment::EnrichmentTables;
use pf_error::{PfError, Result};
use pf_types::{Alert, Severity};

use crate::config::{RuleFile, RuleKind, WindowSpec};
use crate::expr::{self, ParseErrorKind};
use crate::interp::{ReferenceInterpreter, check_tables};
use crate::semantics::{self, ColumnValues, Value};
use crate::vector::{Evaluator, NodeId, Program};
use crate::window::{MemoryWindowStore, WindowAlert, WindowRequest, WindowStore};
use crate::{BatchMeta, ConditionFallback};

/// Name of the score column added by [`append_fraud_columns`].
pub const FRAUD_SCORE: &str = "fraud_score";
/// Name of the fired-rules column added by [`append_fraud_columns`].
pub const FRAUD_RULES: &str = "fraud_rules";
/// Name of the verdict column added by [`append_fraud_columns`].
pub const IS_FRAUD: &str = "is_fraud";
/// The ground-truth column read for [`RuleCounts::labelled`]: comma-separated names of
/// the patterns present in the record (as written by `pf-datagen`).
pub const LABEL_RULES: &str = "label_rules";

/// How [`CompiledRules::compile`] wires a rule set. The default: no fallback, kernels
/// for every row, an in-process window store, lean alerts.
#[derive(Clone, Default)]
pub struct CompileOptions {
    /// The per-record evaluator (the Rhai engine) for rules outside the vectorized subset
    /// and for rows the kernels leave undecided. Without one, every condition rule must
    /// vectorize (compiling fails naming the rule otherwise) and undecided rows go to the
    /// built-in [`ReferenceInterpreter`].
    pub fallback: Option<Arc<dyn ConditionFallback>>,
    /// Evaluate every condition rule for every row through the fallback (or, without one,
    /// the [`ReferenceInterpreter`]) instead of the kernels: for comparing the two paths.
    pub force_fallback: bool,
    /// Where window rules keep their state; shared by every thread (and, Valkey-backed,
    /// every worker). Default: a [`MemoryWindowStore`] owned by the compiled rules.
    pub window_store: Option<Arc<dyn WindowStore>>,
    /// Give condition alerts `details` of `{"score": …, "fields": {…}}` with the values
    /// of the fields the condition reads. Default `false`: `details` is null (the record
    /// is identified by the alert's `uri` and `row`), because building a JSON object per
    /// alert costs more than evaluating the rules when a rule fires on many rows.
    pub alert_fields: bool,
}

impl fmt::Debug for CompileOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompileOptions")
            .field("fallback", &self.fallback.is_some())
            .field("force_fallback", &self.force_fallback)
            .field("window_store", &self.window_store.is_some())
            .field("alert_fields", &self.alert_fields)
            .finish()
    }
}

/// How a compiled rule is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleMode {
    /// Its condition runs as Arrow kernels over whole batches.
    Vectorized,
    /// Its condition is outside the vectorized subset; the fallback evaluates it per
    /// record.
    Fallback {
        /// Why it did not vectorize (with the position in the condition).
        reason: String,
    },
    /// A sliding-window rule, evaluated by the [`WindowStore`].
    Window(WindowSpec),
}

/// One enabled rule as compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// Position in the rule file (disabled rules included): the index given to
    /// [`ConditionFallback::eval`].
    pub index: usize,
    /// The rule's name.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Score added when it fires.
    pub score: f64,
    /// How it is evaluated.
    pub mode: RuleMode,
}

#[derive(Debug)]
enum Exec {
    Vector {
        root: NodeId,
        /// Every field read, for alert details.
        fields: Vec<String>,
        /// Fields read as bare variables (an error per record when missing).
        bare: Vec<String>,
    },
    Fallback {
        fields: Vec<String>,
    },
    Window(WindowSpec),
}

#[derive(Debug)]
struct CompiledRule {
    info: RuleInfo,
    exec: Exec,
}

/// A rule set ready to evaluate batches: compile once, share (it is `Send + Sync`) and
/// call [`evaluate`](Self::evaluate) from every pipeline thread.
pub struct CompiledRules {
    threshold: f64,
    rules: Vec<CompiledRule>,
    program: Program,
    interpreter: ReferenceInterpreter,
    fallback: Option<Arc<dyn ConditionFallback>>,
    force_fallback: bool,
    store: Option<Arc<dyn WindowStore>>,
    alert_fields: bool,
}

impl fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledRules")
            .field("threshold", &self.threshold)
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.info).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .field("force_fallback", &self.force_fallback)
            .finish_non_exhaustive()
    }
}

/// A record-level failure: evaluating `rule` on `row` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Row within the batch.
    pub row: usize,
    /// Position of the rule in [`CompiledRules::rules`].
    pub rule: usize,
    /// `rule <name>: <what went wrong>`.
    pub message: String,
}

/// Per-rule counts for one batch (add them up with [`merge`](Self::merge)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// The rule's name.
    pub rule: String,
    /// Rows it fired on.
    pub fired: u64,
    /// Rows evaluated per record by the fallback.
    pub fallback_rows: u64,
    /// Rows whose evaluation failed (see [`RuleEvaluation::errors`]).
    pub errors: u64,
    /// Window rules: rows ignored as later than the allowed lateness.
    pub late_dropped: u64,
    /// Rows whose `label_rules` names this rule; `None` when the batch has no labels.
    pub labelled: Option<u64>,
    /// Rows it fired on that are labelled with it; `None` without labels.
    pub true_positives: Option<u64>,
}

impl RuleCounts {
    fn new(rule: &str) -> Self {
        RuleCounts {
            rule: rule.to_owned(),
            ..RuleCounts::default()
        }
    }

    /// Adds another batch's counts of the same rule.
    pub fn merge(&mut self, other: &RuleCounts) {
        self.fired += other.fired;
        self.fallback_rows += other.fallback_rows;
        self.errors += other.errors;
        self.late_dropped += other.late_dropped;
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.labelled = add(self.labelled, other.labelled);
        self.true_positives = add(self.true_positives, other.true_positives);
    }

    /// Share of fired rows that are labelled with the rule.
    pub fn precision(&self) -> Option<f64> {
        let tp = self.true_positives?;
        (self.fired > 0).then(|| tp as f64 / self.fired as f64)
    }

    /// Share of labelled rows the rule fired on.
    pub fn recall(&self) -> Option<f64> {
        let (tp, labelled) = (self.true_positives?, self.labelled?);
        (labelled > 0).then(|| tp as f64 / labelled as f64)
    }
}

/// What the rules made of one batch.
#[derive(Debug, Clone)]
pub struct RuleEvaluation {
    /// Per compiled rule (same order as [`CompiledRules::rules`]): the rows it fired on.
    /// A row whose evaluation of the rule failed is `false` here.
    pub fired: Vec<BooleanArray>,
    /// Sum of the scores of the rules each row fired (0.0 when none; never null).
    pub fraud_score: Float64Array,
    /// Names of the rules each row fired, comma-joined in rule order; null when none.
    pub fraud_rules: StringArray,
    /// `fraud_score >= threshold`.
    pub is_fraud: BooleanArray,
    /// One alert per fired row of each condition rule (key `rule|uri|row`), and the
    /// window alerts newly raised (key `rule|key|t_end`, `t_end` in µs); in rule order.
    pub alerts: Vec<Alert>,
    /// Record-level failures, by row then rule (a row fails once per failing rule): the
    /// caller sends those records to the record DLQ.
    pub errors: Vec<RecordError>,
    /// Per compiled rule, same order as `fired`.
    pub counts: Vec<RuleCounts>,
}

impl RuleEvaluation {
    /// Rows with at least one record error, ascending, each once.
    pub fn failed_rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self.errors.iter().map(|e| e.row).collect();
        rows.dedup();
        rows
    }

    /// Rows flagged as fraud.
    pub fn fraud_rows(&self) -> usize {
        self.is_fraud.true_count()
    }
}

/// `batch` with [`FRAUD_SCORE`] (Float64), [`FRAUD_RULES`] (Utf8, null when no rule
/// fired) and [`IS_FRAUD`] (Boolean) from `evaluation`; columns of those names already
/// in the batch (a re-processed output) are replaced in place.
pub fn append_fraud_columns(
    batch: &RecordBatch,
    evaluation: &RuleEvaluation,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let new: [(Field, ArrayRef); 3] = [
        (
            Field::new(FRAUD_SCORE, DataType::Float64, false),
            Arc::new(evaluation.fraud_score.clone()),
        ),
        (
            Field::new(FRAUD_RULES, DataType::Utf8, true),
            Arc::new(evaluation.fraud_rules.clone()),
        ),
        (
            Field::new(IS_FRAUD, DataType::Boolean, false),
            Arc::new(evaluation.is_fraud.clone()),
        ),
    ];
    for (field, column) in new {
        match fields.iter().position(|f| f.name() == field.name()) {
            Some(i) => {
                fields[i] = Arc::new(field);
                columns[i] = column;
            }
            None => {
                fields.push(Arc::new(field));
                columns.push(column);
            }
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new(schema, columns).map_err(|e| PfError::Schema {
        location: "fraud columns".into(),
        message: e.to_string(),
    })
}

impl CompiledRules {
    /// Compiles the enabled rules of `file` against the loaded `tables`.
    ///
    /// Configuration errors ([`PfError::Config`], key `rules.<name>.<field>`): syntax
    /// errors in a condition (with the position), unknown tables, a lookup function that
    /// does not match the table's kind, unknown table columns, and — when no
    /// [`CompileOptions::fallback`] is given — a condition outside the vectorized subset.
    pub fn compile(
        file: &RuleFile,
        tables: &EnrichmentTables,
        options: CompileOptions,
    ) -> Result<CompiledRules> {
        file.validate()?;
        let mut program = Program::default();
        let mut rules = Vec::new();
        let mut parsed = Vec::with_capacity(file.rules.len());
        let mut needs_store = false;
        for (index, spec) in file.rules.iter().enumerate() {
            let key = format!("rules.{}.condition", spec.name);
            let mut this = Err("not an enabled condition rule".to_owned());
            if spec.enabled {
                let (mode, exec) = match spec.kind() {
                    Some(RuleKind::Condition(src)) => match expr::parse(src) {
                        Ok(e) => {
                            check_tables(&e, tables).map_err(|(pos, m)| {
                                PfError::config(&key, format!("{m} at {pos}"))
                            })?;
                            let root = program.add(&e, tables).ok_or_else(|| {
                                PfError::config(&key, "refers to a table that is not loaded")
                            })?;
                            let fields = e.fields().into_iter().map(str::to_owned).collect();
                            let mut bare: Vec<String> = Vec::new();
                            e.visit(&mut |x| {
                                if let expr::ExprKind::Field(n) = &x.kind
                                    && !bare.contains(n)
                                {
                                    bare.push(n.clone());
                                }
                            });
                            this = Ok(e);
                            (RuleMode::Vectorized, Exec::Vector { root, fields, bare })
                        }
                        Err(e) if e.kind == ParseErrorKind::Syntax => {
                            return Err(PfError::config(&key, format!("`{src}`: {e}")));
                        }
                        Err(e) => {
                            if options.fallback.is_none() {
                                return Err(PfError::config(
                                    &key,
                                    format!(
                                        "`{src}` is {e}, and no script-engine fallback is \
                                         configured to evaluate it per record"
                                    ),
                                ));
                            }
                            (
                                RuleMode::Fallback {
                                    reason: e.to_string(),
                                },
                                Exec::Fallback { fields: Vec::new() },
                            )
                        }
                    },
                    Some(RuleKind::Window(w)) => {
                        needs_store = true;
                        (RuleMode::Window(w.clone()), Exec::Window(w.clone()))
                    }
                    None => {
                        return Err(PfError::config(
                            format!("rules.{}", spec.name),
                            "a rule needs exactly one of `condition` and `window`",
                        ));
                    }
                };
                rules.push(CompiledRule {
                    info: RuleInfo {
                        index,
                        name: spec.name.clone(),
                        severity: spec.severity,
                        score: spec.score,
                        mode,
                    },
                    exec,
                });
            }
            parsed.push(this);
        }
        program.finish();
        let store = match options.window_store {
            Some(s) => Some(s),
            None if needs_store => Some(Arc::new(MemoryWindowStore::new()) as Arc<dyn WindowStore>),
            None => None,
        };
        Ok(CompiledRules {
            threshold: file.threshold,
            rules,
            program,
            interpreter: ReferenceInterpreter::from_parts(parsed, tables.clone()),
            fallback: options.fallback,
            force_fallback: options.force_fallback,
            store,
            alert_fields: options.alert_fields,
        })
    }

    /// The compiled (enabled) rules, in file order; positions match
    /// [`RuleEvaluation::fired`] and [`RuleEvaluation::counts`].
    pub fn rules(&self) -> impl ExactSizeIterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    /// The `is_fraud` threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Whether the rule called `name` runs vectorized (`None`: no such enabled rule).
    pub fn is_vectorized(&self, name: &str) -> Option<bool> {
        self.rules
            .iter()
            .find(|r| r.info.name == name)
            .map(|r| r.info.mode == RuleMode::Vectorized)
    }

    /// Checks up front that batches of `schema` have every field the vectorized rules
    /// read as bare variables and every window key and time field, in types rules can
    /// read. Without this check such problems show as record errors of every record.
    pub fn check_schema(&self, schema: &Schema) -> Result<()> {
        for rule in &self.rules {
            let (required, optional, what): (Vec<&String>, Vec<&String>, &str) = match &rule.exec {
                Exec::Vector { fields, bare, .. } => {
                    (bare.iter().collect(), fields.iter().collect(), "condition")
                }
                Exec::Fallback { .. } => continue,
                Exec::Window(w) => (vec![&w.key, &w.time], Vec::new(), "window"),
            };
            let key = format!("rules.{}.{what}", rule.info.name);
            for name in required.iter().chain(&optional) {
                match schema.field_with_name(name) {
                    Ok(field) => {
                        let empty = arrow::array::new_empty_array(field.data_type());
                        semantics::column_value(empty.as_ref())
                            .map_err(|m| PfError::config(&key, format!("field `{name}`: {m}")))?;
                    }
                    Err(_) if required.contains(name) => {
                        return Err(PfError::config(
                            &key,
                            format!("field `{name}` is not in the input schema"),
                        ));
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The window alerts raised for `item` (a work item's claim key) that the window
    /// store holds as undelivered, as alerts: a worker taking the item over sends them
    /// before processing it (see [`WindowStore::undelivered`]).
    pub fn undelivered_alerts(&self, item: &str) -> Result<Vec<Alert>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let mut alerts = Vec::new();
        for rule in &self.rules {
            if let Exec::Window(spec) = &rule.exec {
                alerts.extend(
                    store
                        .undelivered(&rule.info.name, item)?
                        .into_iter()
                        .map(|a| window_alert(&rule.info, spec, a)),
                );
            }
        }
        Ok(alerts)
    }

    /// Every alert raised for `item` has reached the alert destination (it was flushed).
    pub fn alerts_delivered(&self, item: &str) -> Result<()> {
        match &self.store {
            Some(store) => store.delivered(item),
            None => Ok(()),
        }
    }

    /// Evaluates every rule over `batch`.
    ///
    /// Fails only for the batch as a whole: `meta.ordinals` of the wrong length, or a
    /// [`WindowStore`] error (whose class says whether to retry). Problems of single
    /// records are in [`RuleEvaluation::errors`].
    pub fn evaluate(&self, batch: &RecordBatch, meta: &BatchMeta<'_>) -> Result<RuleEvaluation> {
        let len = batch.num_rows();
        if let Some(o) = meta.ordinals
            && o.len() != len
        {
            return Err(PfError::Schema {
                location: meta.uri.to_owned(),
                message: format!("{} ordinals for a batch of {len} rows", o.len()),
            });
        }
        let mut ev = Evaluator::new(&self.program, batch);
        let mut fired = Vec::with_capacity(self.rules.len());
        let mut counts = Vec::with_capacity(self.rules.len());
        let mut errors = Vec::new();
        let mut alerts = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let mut count = RuleCounts::new(&rule.info.name);
            let mut failures = Failures {
                rule: i,
                name: &rule.info.name,
                errors: &mut errors,
                count: &mut count,
            };
            let f = match &rule.exec {
                Exec::Vector { root, .. } if !self.force_fallback => {
                    let (f, bad) = ev.condition(*root);
                    match bad {
                        Some(bad) if bad.count_set_bits() > 0 => {
                            let fallback = self.fallback.as_deref().unwrap_or(&self.interpreter);
                            let yes =
                                per_record(fallback, rule, batch, bad.set_indices(), &mut failures);
                            &f | &yes
                        }
                        _ => f,
                    }
                }
                Exec::Vector { .. } | Exec::Fallback { .. } => {
                    let fallback = self.fallback.as_deref().unwrap_or(&self.interpreter);
                    per_record(fallback, rule, batch, 0..len, &mut failures)
                }
                Exec::Window(spec) => {
                    self.window(rule, spec, batch, meta, &mut alerts, &mut failures)?
                }
            };
            count.fired = f.count_set_bits() as u64;
            if !matches!(rule.exec, Exec::Window(_)) {
                self.condition_alerts(rule, &f, batch, meta, &mut alerts);
            }
            fired.push(f);
            counts.push(count);
        }
        errors.sort_by_key(|e| (e.row, e.rule));
        self.count_labels(batch, &fired, &mut counts);

        let mut score = vec![0.0f64; len];
        for (rule, f) in self.rules.iter().zip(&fired) {
            for row in f.set_indices() {
                if let Some(s) = score.get_mut(row) {
                    *s += rule.info.score;
                }
            }
        }
        let is_fraud = BooleanBuffer::collect_bool(len, |i| score[i] >= self.threshold);
        let fraud_rules = self
            .rule_names(&fired, len)
            .map_err(|message| PfError::Schema {
                location: meta.uri.to_owned(),
                message,
            })?;
        Ok(RuleEvaluation {
            fired: fired
                .into_iter()
                .map(|f| BooleanArray::new(f, None))
                .collect(),
            fraud_score: Float64Array::from(score),
            fraud_rules,
            is_fraud: BooleanArray::new(is_fraud, None),
            alerts,
            errors,
            counts,
        })
    }

    fn rule_names(
        &self,
        fired: &[BooleanBuffer],
        len: usize,
    ) -> std::result::Result<StringArray, String> {
        // Rows usually fire the same few combinations: with up to MASK_RULES rules, each
        // combination's text is joined once per batch and copied for every row.
        const MASK_RULES: usize = 10;
        if fired.len() <= MASK_RULES {
            let mut masks = vec![0u16; len];
            for (r, f) in fired.iter().enumerate() {
                for row in f.set_indices() {
                    if let Some(m) = masks.get_mut(row) {
                        *m |= 1 << r;
                    }
                }
            }
            let mut texts: Vec<Option<String>> = vec![None; 1 << fired.len()];
            // Offsets, bytes and validity written directly: most rows are null.
            let mut offsets: Vec<i32> = Vec::with_capacity(len + 1);
            let mut bytes: Vec<u8> = Vec::new();
            offsets.push(0);
            for &m in &masks {
                if m != 0 {
                    let text = texts[usize::from(m)].get_or_insert_with(|| {
                        let names: Vec<&str> = self
                            .rules
                            .iter()
                            .enumerate()
                            .filter(|(r, _)| m & (1 << r) != 0)
                            .map(|(_, rule)| rule.info.name.as_str())
                            .collect();
                        names.join(",")
                    });
                    bytes.extend_from_slice(text.as_bytes());
                }
                let end = i32::try_from(bytes.len())
                    .map_err(|_| "the batch's fraud_rules text exceeds 2 GiB".to_owned())?;
                offsets.push(end);
            }
            let valid = BooleanBuffer::collect_bool(len, |i| masks[i] != 0);
            let nulls = NullBuffer::new(valid);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            return StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_vec(bytes),
                nulls,
            )
            .map_err(|e| e.to_string());
        }
        let mut any = BooleanBuffer::new_unset(len);
        for f in fired {
            any = &any | f;
        }
        let most = self
            .rules
            .iter()
            .map(|r| r.info.name.len() + 1)
            .sum::<usize>();
        if any.count_set_bits().saturating_mul(most) > i32::MAX as usize {
            return Err("the batch's fraud_rules text may exceed 2 GiB".to_owned());
        }
        let mut out = StringBuilder::with_capacity(len, any.count_set_bits() * 12);
        let mut text = String::new();
        let mut next = 0;
        for row in any.set_indices() {
            for _ in next..row {
                out.append_null();
            }
            text.clear();
            for (rule, f) in self.rules.iter().zip(fired) {
                if f.value(row) {
                    if !text.is_empty() {
                        text.push(',');
                    }
                    text.push_str(&rule.info.name);
                }
            }
            out.append_value(&text);
            next = row + 1;
        }
        for _ in next..len {
            out.append_null();
        }
        Ok(out.finish())
    }

    fn condition_alerts(
        &self,
        rule: &CompiledRule,
        fired: &BooleanBuffer,
        batch: &RecordBatch,
        meta: &BatchMeta<'_>,
        alerts: &mut Vec<Alert>,
    ) {
        let fields: &[String] = match &rule.exec {
            Exec::Vector { fields, .. } | Exec::Fallback { fields } => fields,
            Exec::Window(_) => &[],
        };
        let columns: Vec<(&str, &ArrayRef)> = if self.alert_fields {
            fields
                .iter()
                .filter_map(|n| batch.column_by_name(n).map(|c| (n.as_str(), c)))
                .collect()
        } else {
            Vec::new()
        };
        let name = &rule.info.name;
        alerts.reserve(fired.count_set_bits());
        let mut digits = itoa::Buffer::new();
        for row in fired.set_indices() {
            let ordinal = meta.ordinal(row);
            let ordinal_text = digits.format(ordinal);
            let mut key =
                String::with_capacity(name.len() + meta.uri.len() + ordinal_text.len() + 2);
            key.push_str(name);
            key.push('|');
            key.push_str(meta.uri);
            key.push('|');
            key.push_str(ordinal_text);
            let details = if columns.is_empty() {
                serde_json::Value::Null
            } else {
                let mut values = serde_json::Map::new();
                for (n, c) in &columns {
                    let v = semantics::value_at(c, row).unwrap_or(Value::Unit);
                    values.insert((*n).to_owned(), json_value(v));
                }
                let mut details = serde_json::Map::new();
                details.insert("score".into(), json_number(rule.info.score));
                details.insert("fields".into(), serde_json::Value::Object(values));
                serde_json::Value::Object(details)
            };
            alerts.push(Alert {
                rule: name.clone(),
                severity: rule.info.severity,
                uri: meta.uri.to_owned(),
                row: ordinal,
                key,
                details,
            });
        }
    }

    fn window(
        &self,
        rule: &CompiledRule,
        spec: &WindowSpec,
        batch: &RecordBatch,
        meta: &BatchMeta<'_>,
        alerts: &mut Vec<Alert>,
        failures: &mut Failures<'_>,
    ) -> Result<BooleanBuffer> {
        let len = batch.num_rows();
        let none = BooleanBuffer::new_unset(len);
        let Some(store) = &self.store else {
            failures.all(len, "no window store is configured");
            return Ok(none);
        };
        let keys = match window_keys(batch, &spec.key) {
            Ok(k) => k,
            Err(m) => {
                failures.all(len, &m);
                return Ok(none);
            }
        };
        let times = match window_times(batch, &spec.time) {
            Ok(t) => t,
            Err(m) => {
                failures.all(len, &m);
                return Ok(none);
            }
        };
        let outcome = store.observe(&WindowRequest {
            rule: &rule.info.name,
            keys: &keys,
            times: &times,
            seconds: spec.seconds,
            min_count: spec.min_count,
            meta,
        })?;
        if outcome.fired.len() != len {
            return Err(PfError::Schema {
                location: meta.uri.to_owned(),
                message: format!(
                    "window store answered {} flags for {len} rows",
                    outcome.fired.len()
                ),
            });
        }
        failures.count.late_dropped = outcome.late_dropped;
        alerts.extend(
            outcome
                .alerts
                .into_iter()
                .map(|a| window_alert(&rule.info, spec, a)),
        );
        Ok(outcome.fired)
    }

    fn count_labels(
        &self,
        batch: &RecordBatch,
        fired: &[BooleanBuffer],
        counts: &mut [RuleCounts],
    ) {
        let Some(labels) = batch.column_by_name(LABEL_RULES) else {
            return;
        };
        let Ok(ColumnValues::Str(labels)) = semantics::column_value(labels.as_ref()) else {
            return;
        };
        let mut labelled = vec![0u64; self.rules.len()];
        let mut tp = vec![0u64; self.rules.len()];
        // Most rows carry no label: visit only the non-null ones.
        let valid: Box<dyn Iterator<Item = usize>> = match labels.nulls() {
            Some(n) => Box::new(n.valid_indices()),
            None => Box::new(0..labels.len()),
        };
        for row in valid {
            for name in labels.value(row).split(',') {
                if let Some(r) = self.rules.iter().position(|r| r.info.name == name) {
                    labelled[r] += 1;
                    if fired.get(r).is_some_and(|f| row < f.len() && f.value(row)) {
                        tp[r] += 1;
                    }
                }
            }
        }
        for (r, c) in counts.iter_mut().enumerate() {
            c.labelled = Some(labelled[r]);
            c.true_positives = Some(tp[r]);
        }
    }
}

/// Collects record errors of one rule.
struct Failures<'a> {
    rule: usize,
    name: &'a str,
    errors: &'a mut Vec<RecordError>,
    count: &'a mut RuleCounts,
}

impl Failures<'_> {
    fn push(&mut self, row: usize, message: &str) {
        self.count.errors += 1;
        self.errors.push(RecordError {
            row,
            rule: self.rule,
            message: format!("rule {}: {message}", self.name),
        });
    }

    fn all(&mut self, len: usize, message: &str) {
        for row in 0..len {
            self.push(row, message);
        }
    }
}

/// Evaluates `rows` through the fallback; returns the rows that fired.
fn per_record(
    fallback: &dyn ConditionFallback,
    rule: &CompiledRule,
    batch: &RecordBatch,
    rows: impl Iterator<Item = usize>,
    failures: &mut Failures<'_>,
) -> BooleanBuffer {
    let len = batch.num_rows();
    let mut yes = BooleanBufferBuilder::new(len);
    yes.append_n(len, false);
    for row in rows {
        failures.count.fallback_rows += 1;
        match fallback.eval(rule.info.index, batch, row) {
            Ok(true) if row < len => yes.set_bit(row, true),
            Ok(_) => {}
            Err(m) => failures.push(row, &m),
        }
    }
    yes.finish()
}

fn window_keys(batch: &RecordBatch, name: &str) -> std::result::Result<StringArray, String> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| format!("window key field `{name}` not found"))?;
    if let Some(s) = column.as_string_opt::<i32>() {
        return Ok(s.clone());
    }
    let cast = arrow::compute::cast(column.as_ref(), &DataType::Utf8)
        .map_err(|e| format!("window key field `{name}` cannot be read as text: {e}"))?;
    cast.as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| format!("window key field `{name}` cannot be read as text"))
}

fn window_times(
    batch: &RecordBatch,
    name: &str,
) -> std::result::Result<TimestampMicrosecondArray, String> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| format!("window time field `{name}` not found"))?;
    match semantics::column_value(column.as_ref())
        .map_err(|m| format!("window time field `{name}`: {m}"))?
    {
        ColumnValues::Int(a) => Ok(TimestampMicrosecondArray::new(
            a.values().clone(),
            a.nulls().cloned(),
        )),
        ColumnValues::Str(s) => Ok(s
            .iter()
            .map(|v| v.and_then(semantics::parse_rfc3339_micros))
            .collect()),
        ColumnValues::Unit(n) => Ok(TimestampMicrosecondArray::new_null(n)),
        _ => Err(format!(
            "window time field `{name}` must be a timestamp, an integer (µs) or RFC 3339 text"
        )),
    }
}

fn window_alert(info: &RuleInfo, spec: &WindowSpec, a: WindowAlert) -> Alert {
    let start = a.window_end.saturating_sub(spec.micros());
    let details = serde_json::json!({
        "key_field": spec.key,
        "key": a.key,
        "window_start": rfc3339(start),
        "window_end": rfc3339(a.window_end),
        "window_end_us": a.window_end,
        "count": a.count,
        "min_count": spec.min_count,
        "seconds": spec.seconds,
        "late": a.late,
    });
    Alert {
        rule: info.name.clone(),
        severity: info.severity,
        key: format!("{}|{}|{}", info.name, a.key, a.window_end),
        uri: a.uri,
        row: a.row,
        details,
    }
}

fn rfc3339(us: i64) -> serde_json::Value {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        None => serde_json::Value::Null,
    }
}

fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn json_value(v: Value) -> serde_json::Value {
    match v {
        Value::Unit => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Int(i) => serde_json::Value::from(i),
        Value::Float(x) => json_number(x),
        Value::Str(s) => serde_json::Value::String(s),
    }
}
