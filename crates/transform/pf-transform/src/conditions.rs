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
/// and as `record.<field>`. Values are converted as in the script stage (see
/// [`ScriptTransformFactory`](crate::ScriptTransformFactory): integers and timestamps
/// are `i64` (timestamps in µs), `Date32` dates `i64` **days** (not µs: the rule engine
/// reads them as days too), decimals `f64` (as Arrow casts them, like the rule engine),
/// nulls `()`, other non-primitive types (`Date64` included) their display text). A field the batch lacks is not bound: a bare use is the error
/// `Variable not found: <name>`, while `record.<name>` is `()`. A variable named
/// `record` is always the map.
///
/// # Rhai semantics a vectorized evaluator must reproduce
///
/// Each point is checked against the engine by `tests/semantics.rs`.
///
/// * **Different types.** When the operand types differ and are not both numeric, `==`,
///   `<`, `>`, `<=`, `>=` are `false` and `!=` is `true`, never an error: `() == 0`,
///   `() < 5`, `"1" == 1`, `true == 1`, `#{} == 1` are false; `() != 5` is true. (A
///   character literal equals the one-character string: `'a' == "a"`.)
/// * **Unit with unit.** `() == ()` is `true`; `!=`, `<`, `>`, `<=`, `>=` are `false`.
/// * **Integers** compare exactly; arithmetic is checked: overflow and division or
///   remainder by zero are errors; `/` and `%` truncate toward zero (`-7 / 2 == -3`,
///   `-7 % 3 == -1`).
/// * **Floats, and integers mixed with floats** (the integer converted with `as f64`:
///   `9007199254740993 == 9007199254740992.0`). Arithmetic is IEEE 754 and never fails
///   (`1.0 / 0 == inf`, `0.0 / 0.0` is NaN). Comparisons are **not** IEEE: Rhai (without
///   its `unchecked` feature, which would also drop the sandbox limits) uses a relative
///   epsilon. With `ε = f64::EPSILON` and `m = 1.0` if `x * y == 0.0`, else
///   `max(|x|, |y|)` (Rust's `f64::max`, which ignores NaN):
///   - if `m == 0.0` (only NaN against ±0.0): `==`, `<=`, `>=` are true, the rest false;
///   - `x == y` ⇔ `|x − y| / m <= ε`, `x != y` ⇔ `|x − y| / m > ε`;
///   - `x > y` ⇔ `(x − y) / m > ε`, `x >= y` ⇔ `(x − y) / m > −ε`;
///   - `x < y` ⇔ `(y − x) / m > ε`, `x <= y` ⇔ `(y − x) / m > −ε`.
///
///   So `10000.000000000002 == 10000.0` and is not `> 10000.0`; `0.1 + 0.2 == 0.3`;
///   `1e-300 == 0.0` and `1e-17 > 0.0` is false (absolute ε near zero); NaN and ±inf
///   compare false under every operator including `!=` (even `inf == inf`), except that
///   NaN is "equal" to zero.
/// * **Unit in arithmetic** is an error (`() + 1`, `() * 2.0`, `-()`, `!()`), except
///   string concatenation: `() + "s"` and `"s" + ()` are `"s"`.
/// * **Strings**: `+` concatenates a string with anything (`"a" + 1 == "a1"`,
///   `1 + "a" == "1a"`, `"a" + true == "atrue"`); `-` removes every occurrence of a
///   string or character (`"abc" - "c" == "ab"`); comparisons are byte-wise
///   (`"B" < "a"`, `"é" > "z"`) and case-sensitive.
/// * **Booleans** order `false < true`.
/// * **Logic**: `&&`, `||`, `!` need `bool` operands (else `Data type incorrect: ()
///   (expecting bool)` at the operand); `&&` and `||` short-circuit, so the right side
///   is neither evaluated nor checked when the left decides (`false && x`, `n > 1 || x`).
///   The optimizer removes a literal `true` operand of `&&` and a literal `false` operand
///   of `||` at compile time, so `x && true` is just `x`; a literal `()` operand is a
///   compile error.
/// * **Missing map properties** are `()`: `record.absent`, `lookup("t", miss).col`,
///   `#{a: 1}["b"]`.
/// * **The result** must be a `bool`; anything else (including `()`) is an error.
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
