//! The script stage: `fn transform(record)` over every record of a batch.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{FilterBuilder, FilterPredicate, cast};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{DocBatch, Transform, TransformFactory, TransformOutput};
use pf_types::{Alert, RecordFailure, Stage, WorkItem};
use rhai::{AST, CallFnOptions, Dynamic, Map, Scope};

use crate::builtins::AlertScope;
use crate::convert::{self, Kind, Reader};
use crate::engine::ScriptEngine;
use crate::error;
use pf_lang::Analysis;
use pf_lang::analysis::hoist_transform_body;

/// The configuration key compile errors are reported under.
const CONFIG_KEY: &str = "transform.script";

/// How a script's output becomes Arrow columns.
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// Name used in start-up errors (`<name>:<line>:<col>: …`), usually the script's path;
    /// [`ScriptTransformFactory::from_file`] fills it in when empty.
    pub source_name: String,
    /// Arrow types for fields the script sets, instead of inferring them. Timestamps are
    /// taken as µs and dates as days, like the values the script reads. A value that does
    /// not convert fails its record (a record-level failure naming the field).
    pub output_types: HashMap<String, DataType>,
    /// Convert every column into the record map, not only the names that appear in the
    /// script. Needed by scripts that look at the record as a whole (`record.keys()`,
    /// `for k in record.keys()`, `record.to_json()`, building field names at run time).
    pub convert_all_fields: bool,
}

/// Compiles a transform script once and builds a [`ScriptTransform`] per pipeline thread.
///
/// # The script
///
/// It must define `fn transform(record)`, taking the record as an object map and
/// returning it (changed or not), or `()` to drop the record. Top-level statements are
/// not run: define everything the function needs inside functions.
///
/// # Which fields the record map holds
///
/// Converting every column of every row into Rhai values would dominate the cost of
/// simple scripts, so only columns the script can name are converted: a column is in
/// the map when its name appears in the source as an identifier or as the whole content
/// of a string literal (`record.amount`, `record["card no"]`). This over-approximates
/// (a comment is ignored, but a local variable named like a column converts that column)
/// and never drops a field the script can name literally. Scripts that enumerate the
/// record or build field names at run time need [`ScriptOptions::convert_all_fields`].
///
/// # What comes out
///
/// * Columns the script cannot see, or saw but did not change on any row, are the input
///   arrays themselves (the same [`Arc`]s), filtered when rows were dropped.
/// * A column changed on some rows keeps its input value on the others. Its type stays
///   the same when every new value is of the type the script read it as (an integer for
///   an integer or timestamp column, a number for a float column, …) and converts back
///   (an out-of-range `Int8`, say, does not); otherwise the whole column is rebuilt from
///   Rhai values with an inferred type (below). Dictionary columns come back as their
///   value type.
/// * New fields get the type declared in [`ScriptOptions::output_types`], or the type of
///   their first non-null value: `i64` → Int64, `f64` → Float64, `bool` → Boolean,
///   string → Utf8, anything else → Utf8 holding its JSON text. Integers and floats mixed
///   in one field give Float64; other mixtures give Utf8 holding each value's text.
/// * A field set to `()` is null on that row; a field the script removes from the map is
///   null on that row, and the column is left out when it was removed from every kept
///   row.
/// * Dropped and failed rows are filtered out; the output carries per-row ordinals.
///
/// # Failures
///
/// A runtime error in one record (a thrown error, a type error, the operation limit,
/// `record.no_such_field.len()`, a panic in native code) excludes that record and reports
/// it as a record-level failure `script error at line L, column C: <message>` with the
/// record as JSON; the rest of the batch carries on. The position is where the error
/// happened; for limit errors (operations, call depth, data size), which Rhai reports
/// without a usable position, it is found by running the failed record once more
/// through the body of `transform` as top-level code, and is then the statement in that
/// body (or the call of the helper function) that ran away. Alerts raised by a failed record are
/// discarded (the record may be replayed from the DLQ); those raised by a record the
/// script then drops are kept.
#[derive(Clone)]
pub struct ScriptTransformFactory {
    shared: Arc<Shared>,
}

struct Shared {
    engine: ScriptEngine,
    ast: AST,
    /// The script with the body of `transform` as top-level code, and the name of its
    /// parameter; see [`locate`].
    locator: Option<(AST, String)>,
    words: HashSet<String>,
    options: ScriptOptions,
}

impl std::fmt::Debug for ScriptTransformFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptTransformFactory")
            .field("source_name", &self.shared.options.source_name)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl ScriptTransformFactory {
    /// Compiles `source`. Syntax errors, a missing `fn transform(record)` and unknown
    /// table names in literal lookups fail with
    /// `PfError::Config { key: "transform.script", message: "<name>:<line>:<col>: <error>" }`.
    pub fn new(
        engine: &ScriptEngine,
        source: &str,
        options: ScriptOptions,
    ) -> Result<ScriptTransformFactory> {
        let name = if options.source_name.is_empty() {
            "<script>"
        } else {
            options.source_name.as_str()
        };
        let config_error = |line: usize, col: usize, message: &str| {
            PfError::config(CONFIG_KEY, format!("{name}:{line}:{col}: {message}"))
        };
        let ast = engine.engine().compile(source).map_err(|e| {
            let (pos, message) = error::describe_parse(&e);
            let (l, c) = pos.unwrap_or((1, 1));
            config_error(l, c, &message)
        })?;
        let transform = ast.iter_functions().find(|f| f.name == "transform");
        match transform {
            None => {
                return Err(config_error(
                    1,
                    1,
                    "the script must define `fn transform(record)`",
                ));
            }
            Some(f) if f.params.len() != 1 => {
                return Err(config_error(
                    1,
                    1,
                    &format!(
                        "`fn transform` must take exactly one parameter (the record), not {}",
                        f.params.len()
                    ),
                ));
            }
            Some(_) => {}
        }
        let analysis = Analysis::of(&ast);
        engine
            .check_table_literals(&analysis.tables)
            .map_err(|(l, c, m)| config_error(l, c, &m))?;
        let locator = hoist_transform_body(source).and_then(|(text, param)| {
            let ast = engine.engine().compile(text).ok()?;
            Some((ast, param))
        });
        Ok(ScriptTransformFactory {
            shared: Arc::new(Shared {
                engine: engine.clone(),
                ast,
                locator,
                words: analysis.words,
                options,
            }),
        })
    }

    /// Reads and compiles the script at `path`; the path names it in errors unless
    /// `options.source_name` is set.
    pub fn from_file(
        engine: &ScriptEngine,
        path: &Path,
        mut options: ScriptOptions,
    ) -> Result<ScriptTransformFactory> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            PfError::config(CONFIG_KEY, format!("cannot read `{}`: {e}", path.display()))
        })?;
        if options.source_name.is_empty() {
            options.source_name = path.display().to_string();
        }
        Self::new(engine, &source, options)
    }

    /// A transform for one pipeline thread.
    pub fn transform(&self) -> ScriptTransform {
        ScriptTransform {
            shared: self.shared.clone(),
            scope: Scope::new(),
            plan: None,
        }
    }

    /// The columns of `schema` converted into the record map (see the type docs).
    pub fn referenced_fields(&self, schema: &Schema) -> Vec<String> {
        Plan::new(&self.shared, schema)
            .fields
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    }
}

impl TransformFactory for ScriptTransformFactory {
    fn create(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(self.transform()))
    }
}

/// Which columns go into the record map, for one schema.
struct Plan {
    schema: SchemaRef,
    /// (column index, name), sorted by name: the order map keys iterate in.
    fields: Vec<(usize, String)>,
    template: Map,
}

impl Plan {
    fn new(shared: &Shared, schema: &Schema) -> Plan {
        let mut fields: Vec<(usize, String)> = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let name = f.name();
            let wanted = shared.options.convert_all_fields || shared.words.contains(name);
            // A repeated name can only be one map key; the first column wins.
            if wanted && !fields.iter().any(|(_, n)| n == name) {
                fields.push((i, name.clone()));
            }
        }
        fields.sort_by(|a, b| a.1.cmp(&b.1));
        let template = convert::template(fields.iter().map(|(_, n)| n.as_str()));
        Plan {
            schema: Arc::new(schema.clone()),
            fields,
            template,
        }
    }
}

/// One pipeline thread's script stage; see [`ScriptTransformFactory`].
pub struct ScriptTransform {
    shared: Arc<Shared>,
    scope: Scope<'static>,
    plan: Option<Plan>,
}

impl std::fmt::Debug for ScriptTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptTransform")
            .field("source_name", &self.shared.options.source_name)
            .finish_non_exhaustive()
    }
}

/// Changes to one field over the kept rows of a batch.
struct FieldChanges {
    name: String,
    /// The input column, for fields the batch already has.
    column: Option<usize>,
    /// (kept position, new value); `()` is null.
    changes: Vec<(u32, Dynamic)>,
    /// Kept rows whose returned map lacked the field.
    removed: usize,
}

impl FieldChanges {
    fn new(name: String, column: Option<usize>) -> Self {
        FieldChanges {
            name,
            column,
            changes: Vec::new(),
            removed: 0,
        }
    }
}

impl ScriptTransform {
    fn plan_for(&mut self, schema: &SchemaRef) -> &Plan {
        let stale = match &self.plan {
            Some(p) => !(Arc::ptr_eq(&p.schema, schema) || *p.schema == **schema),
            None => true,
        };
        if stale {
            self.plan = None;
        }
        let shared = &self.shared;
        self.plan.get_or_insert_with(|| {
            let mut plan = Plan::new(shared, schema);
            plan.schema = schema.clone();
            plan
        })
    }
}

/// The position of a limit error (operations, call depth, data size) in one record.
///
/// Rhai reports these errors at the outermost script-function call, which for
/// `transform` called from Rust is no position at all. Running the record again through
/// the same body as top-level code (see [`hoist_transform_body`]) reports where it
/// happened, or the call site in the body of the helper function it happened in. Only
/// records that already failed pay for the second run.
fn locate(shared: &Shared, template: &Map, inputs: &[Dynamic]) -> Option<(usize, usize)> {
    let (ast, param) = shared.locator.as_ref()?;
    let mut record = template.clone();
    for (slot, value) in record.values_mut().zip(inputs) {
        *slot = value.clone();
    }
    let mut scope = Scope::new();
    scope.push_dynamic(param.as_str(), Dynamic::from_map(record));
    let engine = shared.engine.engine();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        engine.eval_ast_with_scope::<Dynamic>(&mut scope, ast)
    }));
    match outcome {
        Ok(Err(e)) => error::describe_eval(e).0,
        _ => None,
    }
}

fn ordinal(input: &DocBatch, row: usize) -> u64 {
    match &input.ordinals {
        Some(o) => o.get(row).copied().unwrap_or(input.first_row + row as u64),
        None => input.first_row + row as u64,
    }
}

fn failure(
    item: &WorkItem,
    batch: &RecordBatch,
    row: usize,
    ordinal: u64,
    error: String,
) -> RecordFailure {
    RecordFailure {
        uri: item.uri.clone(),
        line: None,
        row: Some(ordinal),
        stage: Stage::Transform,
        class: ErrorClass::Record,
        error,
        record: convert::row_json(batch, row),
    }
}

fn arrow_error(item: &WorkItem, e: impl std::fmt::Display) -> PfError {
    PfError::Schema {
        location: item.uri.clone(),
        message: format!("building the transform output: {e}"),
    }
}

impl Transform for ScriptTransform {
    fn apply(&mut self, item: &WorkItem, input: DocBatch) -> Result<TransformOutput> {
        let shared = self.shared.clone();
        let schema = input.batch.schema();
        let n = input.batch.num_rows();
        let plan = self.plan_for(&schema);
        let template = plan.template.clone();
        let fields = plan.fields.clone();
        let batch = &input.batch;
        let readers: Vec<Reader> = fields
            .iter()
            .map(|(c, _)| Reader::new(batch.column(*c)))
            .collect();
        let mut referenced: Vec<FieldChanges> = fields
            .iter()
            .map(|(c, name)| FieldChanges::new(name.clone(), Some(*c)))
            .collect();
        let mut added: Vec<FieldChanges> = Vec::new();
        let mut added_index: HashMap<String, usize> = HashMap::new();

        let mut kept: Vec<u32> = Vec::with_capacity(n);
        let mut dropped = 0u64;
        let mut failures = Vec::new();
        // (kept position if the record was kept, alert)
        let mut alerts: Vec<(Option<u32>, Alert)> = Vec::new();
        let mut inputs: Vec<Dynamic> = Vec::with_capacity(readers.len());
        let alert_scope = AlertScope::enter();
        let engine = shared.engine.engine();

        for row in 0..n {
            inputs.clear();
            inputs.extend(readers.iter().map(|r| r.get(row)));
            let mut record = template.clone();
            for (slot, value) in record.values_mut().zip(&inputs) {
                *slot = value.clone();
            }
            let scope = &mut self.scope;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // Top-level statements are not re-run per record (`eval_ast(false)`).
                let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
                engine.call_fn_with_options::<Dynamic>(
                    options,
                    scope,
                    &shared.ast,
                    "transform",
                    (Dynamic::from_map(record),),
                )
            }));
            let ordinal = ordinal(&input, row);
            let keep_alerts = |pos: Option<u32>, alerts: &mut Vec<(Option<u32>, Alert)>| {
                for a in alert_scope.take() {
                    alerts.push((
                        pos,
                        Alert {
                            key: format!("{}|{}|{}", a.rule, item.uri, ordinal),
                            rule: a.rule,
                            severity: a.severity,
                            uri: item.uri.clone(),
                            row: ordinal,
                            details: a.details,
                        },
                    ));
                }
            };
            let error = match outcome {
                Ok(Ok(value)) if value.is_unit() => {
                    dropped += 1;
                    keep_alerts(None, &mut alerts);
                    continue;
                }
                Ok(Ok(value)) => {
                    let type_name = value.type_name();
                    match value.try_cast::<Map>() {
                        Some(map) => {
                            let pos = kept.len() as u32;
                            kept.push(row as u32);
                            merge(
                                pos,
                                map,
                                &inputs,
                                &mut referenced,
                                &mut added,
                                &mut added_index,
                                &schema,
                            );
                            keep_alerts(Some(pos), &mut alerts);
                            continue;
                        }
                        None => format!(
                            "script error: transform() must return the record map or (), \
                             got {type_name}"
                        ),
                    }
                }
                Ok(Err(e)) => {
                    let lost_position = e.is_system_exception();
                    let (mut pos, message) = error::describe_eval(e);
                    if pos.is_none() && lost_position {
                        pos = locate(&shared, &template, &inputs);
                    }
                    match pos {
                        Some((l, c)) => format!("script error at line {l}, column {c}: {message}"),
                        None => format!("script error: {message}"),
                    }
                }
                Err(panic) => {
                    // The unwound call did not rewind the scope.
                    scope.clear();
                    format!(
                        "script error: a built-in function panicked: {}",
                        error::panic_message(panic.as_ref())
                    )
                }
            };
            let _ = alert_scope.take();
            failures.push(failure(item, batch, row, ordinal, error));
        }
        drop(alert_scope);

        let built = Output::build(
            &shared.options,
            batch,
            &kept,
            referenced.into_iter().chain(added),
        )
        .map_err(|e| arrow_error(item, e))?;
        let Output {
            mut columns,
            fields,
            rejected,
        } = built;

        let mut kept_ordinals: Option<Vec<u64>> = None;
        if !rejected.is_empty() {
            // Values that do not convert to a declared type fail their records after the
            // fact; drop those rows from every output column.
            let mut keep = vec![true; kept.len()];
            let mut by_pos: HashMap<usize, String> = HashMap::new();
            for (pos, msg) in rejected {
                if let Some(k) = keep.get_mut(pos) {
                    *k = false;
                }
                by_pos.entry(pos).or_insert(msg);
            }
            let mut positions: Vec<_> = by_pos.into_iter().collect();
            positions.sort_unstable_by_key(|(p, _)| *p);
            for (pos, msg) in positions {
                if let Some(&row) = kept.get(pos) {
                    let row = row as usize;
                    failures.push(failure(item, batch, row, ordinal(&input, row), msg));
                }
            }
            let predicate = FilterBuilder::new(&BooleanArray::from(keep.clone())).build();
            for c in &mut columns {
                *c = predicate.filter(c).map_err(|e| arrow_error(item, e))?;
            }
            alerts.retain(|(pos, _)| pos.is_none_or(|p| keep.get(p as usize) == Some(&true)));
            let mut i = 0;
            kept.retain(|_| {
                let k = keep.get(i).copied().unwrap_or(false);
                i += 1;
                k
            });
        }
        if kept.len() != n {
            kept_ordinals = Some(kept.iter().map(|&r| ordinal(&input, r as usize)).collect());
        }
        let out_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let out = RecordBatch::try_new_with_options(
            out_schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(kept.len())),
        )
        .map_err(|e| arrow_error(item, e))?;
        let docs = match kept_ordinals {
            Some(ordinals) => DocBatch {
                batch: out,
                first_row: input.first_row,
                ordinals: Some(ordinals),
            },
            None => DocBatch {
                batch: out,
                first_row: input.first_row,
                ordinals: input.ordinals,
            },
        };
        Ok(TransformOutput {
            docs,
            dropped,
            failures,
            fraud_rows: 0,
            alerts: alerts.into_iter().map(|(_, a)| a).collect(),
        })
    }
}

/// Records one returned map: compares referenced fields with their inputs and collects
/// new fields. Both `map` and `referenced` are sorted by name, so one merge pass pairs
/// them without hashing.
#[allow(clippy::too_many_arguments)]
fn merge(
    pos: u32,
    map: Map,
    inputs: &[Dynamic],
    referenced: &mut [FieldChanges],
    added: &mut Vec<FieldChanges>,
    added_index: &mut HashMap<String, usize>,
    schema: &Schema,
) {
    let mut r = 0;
    let removed = |f: &mut FieldChanges| {
        f.removed += 1;
        f.changes.push((pos, Dynamic::UNIT));
    };
    for (key, value) in map {
        let key = key.as_str();
        while let Some(f) = referenced.get_mut(r) {
            if f.name.as_str() < key {
                removed(f);
                r += 1;
            } else {
                break;
            }
        }
        if let Some(f) = referenced.get_mut(r)
            && f.name == key
        {
            let value = value.flatten();
            let same = inputs
                .get(r)
                .is_some_and(|before| convert::same_value(before, &value));
            if !same {
                f.changes.push((pos, value));
            }
            r += 1;
            continue;
        }
        let i = match added_index.get(key) {
            Some(&i) => i,
            None => {
                // A name the script built at run time may match a column it could not see.
                let column = schema.index_of(key).ok();
                added.push(FieldChanges::new(key.to_owned(), column));
                added_index.insert(key.to_owned(), added.len() - 1);
                added.len() - 1
            }
        };
        if let Some(f) = added.get_mut(i) {
            f.changes.push((pos, value.flatten()));
        }
    }
    for f in referenced.iter_mut().skip(r) {
        removed(f);
    }
}

/// The output columns of one batch.
struct Output {
    columns: Vec<ArrayRef>,
    fields: Vec<FieldRef>,
    /// (kept position, message) of values that do not convert to their declared type.
    rejected: Vec<(usize, String)>,
}

impl Output {
    fn build(
        options: &ScriptOptions,
        batch: &RecordBatch,
        kept: &[u32],
        changes: impl Iterator<Item = FieldChanges>,
    ) -> std::result::Result<Output, arrow::error::ArrowError> {
        let schema = batch.schema();
        let n = batch.num_rows();
        let len = kept.len();
        let predicate: Option<FilterPredicate> = (len != n).then(|| {
            let mut mask = vec![false; n];
            for &r in kept {
                if let Some(m) = mask.get_mut(r as usize) {
                    *m = true;
                }
            }
            FilterBuilder::new(&BooleanArray::from(mask))
                .optimize()
                .build()
        });
        let filtered = |a: &ArrayRef| match &predicate {
            Some(p) => p.filter(a),
            None => Ok(a.clone()),
        };

        let mut by_column: HashMap<usize, FieldChanges> = HashMap::new();
        let mut new_fields: Vec<FieldChanges> = Vec::new();
        for f in changes {
            match f.column {
                Some(c) if !by_column.contains_key(&c) => {
                    by_column.insert(c, f);
                }
                Some(_) => new_fields.push(FieldChanges { column: None, ..f }),
                None => new_fields.push(f),
            }
        }

        let mut out = Output {
            columns: Vec::with_capacity(schema.fields().len() + new_fields.len()),
            fields: Vec::with_capacity(schema.fields().len() + new_fields.len()),
            rejected: Vec::new(),
        };
        for (c, field) in schema.fields().iter().enumerate() {
            let column = batch.column(c);
            let Some(f) = by_column.get(&c).filter(|f| !f.changes.is_empty()) else {
                out.fields.push(field.clone());
                out.columns.push(filtered(column)?);
                continue;
            };
            if len > 0 && f.removed == len {
                continue;
            }
            let declared = options.output_types.get(field.name());
            let array = match declared {
                None => changed_in_place(column, kept, &f.changes, &filtered)?,
                Some(_) => None,
            };
            let array = match array {
                Some(a) => a,
                None => {
                    let reader = Reader::new(column);
                    let mut values: Vec<(u32, Dynamic)> = Vec::with_capacity(len);
                    let mut changes = f.changes.iter().peekable();
                    for (pos, &row) in kept.iter().enumerate() {
                        let pos = pos as u32;
                        match changes.peek() {
                            Some((p, v)) if *p == pos => {
                                values.push((pos, v.clone()));
                                changes.next();
                            }
                            _ => values.push((pos, reader.get(row as usize))),
                        }
                    }
                    out.rebuilt(&f.name, len, &values, declared)?
                }
            };
            let nullable = field.is_nullable() || array.null_count() > 0;
            out.fields.push(Arc::new(
                Field::new(field.name(), array.data_type().clone(), nullable)
                    .with_metadata(field.metadata().clone()),
            ));
            out.columns.push(array);
        }
        for f in new_fields {
            let declared = options.output_types.get(&f.name);
            let array = out.rebuilt(&f.name, len, &f.changes, declared)?;
            out.fields.push(Arc::new(Field::new(
                &f.name,
                array.data_type().clone(),
                true,
            )));
            out.columns.push(array);
        }
        Ok(out)
    }

    /// A column built from Rhai values: the declared type, else the inferred one.
    fn rebuilt(
        &mut self,
        name: &str,
        len: usize,
        values: &[(u32, Dynamic)],
        declared: Option<&DataType>,
    ) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
        let kind = convert::infer(values.iter().map(|(_, v)| v)).unwrap_or(Kind::Str);
        let native = convert::build_sparse(len, values, kind);
        let Some(target) = declared else {
            return Ok(native);
        };
        if let Ok(typed) = convert::to_type(&native, target, false) {
            return Ok(typed);
        }
        let typed = convert::to_type(&native, target, true)?;
        let shown = cast(&native, &DataType::Utf8).ok();
        for pos in convert::lost_in_cast(native.as_ref(), typed.as_ref()) {
            let value = shown
                .as_ref()
                .and_then(|s| {
                    s.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .map(|s| s.value(pos).to_owned())
                })
                .unwrap_or_default();
            self.rejected.push((
                pos,
                format!(
                    "script output error: field `{name}`: `{value}` cannot be converted to {target}"
                ),
            ));
        }
        Ok(typed)
    }
}

/// A changed column of its original type: new values where changed, the input array
/// elsewhere (exact: unchanged values never round-trip through Rhai). `None` when the
/// new values do not fit the column's type.
fn changed_in_place(
    column: &ArrayRef,
    kept: &[u32],
    changes: &[(u32, Dynamic)],
    filtered: &dyn Fn(&ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError>,
) -> std::result::Result<Option<ArrayRef>, arrow::error::ArrowError> {
    let column_kind = Reader::kind_of(column.data_type());
    let fits = match convert::infer(changes.iter().map(|(_, v)| v)) {
        None => true,
        Some(k) => k.fits(column_kind),
    };
    if !fits {
        return Ok(None);
    }
    let value_type = match column.data_type() {
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        t => t.clone(),
    };
    let native = convert::build_sparse(kept.len(), changes, column_kind);
    let Ok(typed) = convert::to_type(&native, &value_type, false) else {
        return Ok(None);
    };
    let mut base = filtered(column)?;
    if base.data_type() != &value_type {
        base = cast(&base, &value_type)?;
    }
    if typed.data_type() != base.data_type() {
        return Ok(None);
    }
    let mut mask = vec![false; kept.len()];
    for (p, _) in changes {
        if let Some(m) = mask.get_mut(*p as usize) {
            *m = true;
        }
    }
    let mask = BooleanArray::from(mask);
    Ok(Some(arrow::compute::kernels::zip::zip(
        &mask, &typed, &base,
    )?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use pf_traits::{DocBatch, Transform};
    use pf_types::WorkItem;

    use super::*;
    use crate::ScriptLimits;

    #[test]
    fn a_panicking_builtin_fails_only_its_record() {
        let engine = ScriptEngine::with_extra(Default::default(), ScriptLimits::default(), |e| {
            e.register_fn("boom", |x: i64| -> i64 {
                if x == 2 {
                    panic!("boom at {x}");
                }
                x
            });
        })
        .unwrap();
        let factory = ScriptTransformFactory::new(
            &engine,
            "fn transform(record) { record.y = boom(record.x); record }",
            ScriptOptions::default(),
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let item = WorkItem::from_uri("file:///x.ndjson").unwrap();
        let out = factory
            .transform()
            .apply(&item, DocBatch::contiguous(batch, 0))
            .unwrap();
        assert_eq!(out.docs.num_rows(), 2);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(
            out.failures[0].error,
            "script error: a built-in function panicked: boom at 2"
        );
        let conditions =
            crate::RhaiConditions::compile(&[("r".into(), "boom(x) > 0".into())], &engine).unwrap();
        let batch = out.docs.batch.clone();
        let mut scope = Scope::new();
        assert_eq!(conditions.eval(0, &batch, 0, &mut scope), Ok(true));
        let two = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![2]))],
        )
        .unwrap();
        let err = conditions.eval(0, &two, 0, &mut scope).unwrap_err();
        assert!(err.contains("panicked: boom at 2"), "{err}");
    }
}
