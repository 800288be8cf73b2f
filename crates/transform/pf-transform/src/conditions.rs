//! Rule conditions evaluated one record at a time.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow::array::RecordBatch;
use pf_error::{PfError, Result};
use rhai::{AST, Dynamic, Map, Scope};

use crate::convert;
use crate::engine::ScriptEngine;
use crate::error;
use pf_lang::Analysis;

struct Rule {
    ast: AST,
    fields: Vec<String>,
}

/// Compiled rule conditions (Rhai expressions), evaluated per record; the vectorized
/// rule engine falls back to this for expressions it cannot compile.
///
/// A condition sees each record field it names both as a variable (`amount > 10000.0`)
/// and as `record.<field>`, read by the language's one mapping
/// ([`pf_lang::semantics::column_value`], as the vectorized rules read it; types it does
/// not read arrive as their display text). A field the batch lacks is not bound: a bare
/// use is the error
/// `Variable not found: <name>`, while `record.<name>` is `()`. A variable named
/// `record` is always the map.
///
/// What each operator does on these values is stated once, in [`pf_lang::semantics`];
/// `tests/semantics.rs` checks that statement against this engine point by point.
pub struct RhaiConditions {
    engine: ScriptEngine,
    rules: Vec<Rule>,
}

impl std::fmt::Debug for RhaiConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RhaiConditions")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

impl RhaiConditions {
    /// Compiles `(rule name, expression)` pairs; rule `i` is `conditions[i]`. A syntax
    /// error, or an unknown table named by a string literal, fails with
    /// `PfError::Config { key: "rules.<name>.condition", message: "rule `<name>`: line L,
    /// column C: <error>" }`.
    pub fn compile(
        conditions: &[(String, String)],
        engine: &ScriptEngine,
    ) -> Result<RhaiConditions> {
        let mut rules = Vec::with_capacity(conditions.len());
        for (name, expr) in conditions {
            let config_error = |pos: Option<(usize, usize)>, message: &str| {
                PfError::config(
                    format!("rules.{name}.condition"),
                    format!("rule `{name}`: {}", error::at(pos, message)),
                )
            };
            let ast = engine.engine().compile_expression(expr).map_err(|e| {
                let (pos, message) = error::describe_parse(&e);
                config_error(pos, &message)
            })?;
            let analysis = Analysis::of(&ast);
            engine
                .check_table_literals(&analysis.tables)
                .map_err(|(l, c, m)| config_error(Some((l, c)), &m))?;
            rules.push(Rule {
                ast,
                fields: analysis.fields,
            });
        }
        Ok(RhaiConditions {
            engine: engine.clone(),
            rules,
        })
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule was compiled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The record fields rule `rule` may read (an over-approximation: every bare name
    /// that is not a keyword, function name or property of something else, plus
    /// `record.<name>` and `record["<name>"]`), in order of first appearance; empty for
    /// an unknown rule.
    pub fn referenced_fields(&self, rule: usize) -> &[String] {
        self.rules.get(rule).map_or(&[], |r| r.fields.as_slice())
    }

    /// Evaluates rule `rule` on row `row` of `batch`. `scope` is the caller's reusable
    /// scratch space (one per thread); it is cleared first.
    ///
    /// Errors are `line L, column C: <message>` (position within the expression; 1, 1
    /// when Rhai gives none): runtime errors, the operation limit, and a result that is
    /// not a `bool`.
    pub fn eval(
        &self,
        rule: usize,
        batch: &RecordBatch,
        row: usize,
        scope: &mut Scope<'_>,
    ) -> std::result::Result<bool, String> {
        let Some(r) = self.rules.get(rule) else {
            return Err(error::at(
                None,
                &format!("no rule number {rule} ({} compiled)", self.rules.len()),
            ));
        };
        if row >= batch.num_rows() {
            return Err(error::at(
                None,
                &format!("row {row} is out of range ({} rows)", batch.num_rows()),
            ));
        }
        scope.clear();
        let schema = batch.schema_ref();
        let mut record = Map::new();
        for name in &r.fields {
            // A name the batch lacks stays unbound: a bare use is "Variable not found",
            // `record.<name>` is `()`.
            let Ok(c) = schema.index_of(name) else {
                continue;
            };
            let value = convert::value_at(batch.column(c), row);
            if name != "record" {
                scope.push_dynamic(name.as_str(), value.clone());
            }
            record.insert(name.as_str().into(), value);
        }
        scope.push_dynamic("record", Dynamic::from_map(record));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.engine
                .engine()
                .eval_ast_with_scope::<Dynamic>(scope, &r.ast)
        }));
        match outcome {
            Ok(Ok(value)) => value.as_bool().map_err(|t| {
                error::at(
                    None,
                    &format!("the condition must evaluate to a bool, got {t}"),
                )
            }),
            Ok(Err(e)) => {
                let (pos, message) = error::describe_eval(e);
                Err(error::at(pos, &message))
            }
            Err(panic) => Err(error::at(
                None,
                &format!(
                    "a built-in function panicked: {}",
                    error::panic_message(panic.as_ref())
                ),
            )),
        }
    }
}
