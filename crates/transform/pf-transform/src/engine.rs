//! The shared, sandboxed Rhai engine.

use std::fmt;
use std::sync::Arc;

use pf_enrichment::{EnrichmentTables, TableKind};
use pf_error::Result;
use rhai::Engine;

use crate::builtins;
use crate::limits::ScriptLimits;
use pf_lang::TableUse;

struct Inner {
    engine: Engine,
    tables: EnrichmentTables,
    limits: ScriptLimits,
}

/// One Rhai engine, configured once with the sandbox limits and Paraflow's built-ins,
/// shared by every pipeline thread. Cloning is cheap (an [`Arc`]).
///
/// # Sandbox
///
/// The limits of [`ScriptLimits`] apply to every evaluation. Rhai has no file, network
/// or process access of its own; `import` is compiled out (the `no_module` feature) and
/// `eval` is disabled, so a script can only run the code it was given; `sleep` (which
/// would block without counting operations) is an error. `print` and
/// `debug` go to `tracing` at debug level (target `pf_transform::script`), never to
/// stdout, which may be carrying documents.
///
/// Reading a property a map does not have (`record.no_such_field`, `lookup(…).country`
/// on a miss) yields `()`, Rhai's default; using that `()` where a value is needed
/// (`record.no_such_field.len()`, `() + 1`) is a script error.
///
/// # Built-ins
///
/// | Function | Result |
/// |---|---|
/// | `lookup(table, key)` | map of the table's value columns for the matching row; `#{}` when nothing matches, the key is `()` or (for CIDR tables) not an IP address. The key is a string, an integer (matched as its decimal text, `42` → `"42"`) or `()`; other types are script errors. Works on both table kinds. |
/// | `lookup_cidr(table, ip)` | as `lookup`, but the table must be a CIDR table |
/// | `in_table(table, key)` | whether `lookup` would find a row |
/// | `hour(ts)`, `minute(ts)` | 0–23 / 0–59, UTC |
/// | `day_of_week(ts)` | 0 = Monday … 6 = Sunday, UTC |
/// | `parse_ts(s)` | RFC 3339 text → `i64` µs since the epoch; `()` when unparsable |
/// | `format_ts(ts)` | RFC 3339 in UTC with `Z` (`2026-01-01T03:30:00Z`, fraction only when non-zero) |
/// | `hash64(v)` | xxh3-64 of the text form of `v` (strings as they are, `42`, `1.5`, `true`, JSON for maps and arrays) as `i64`; `()` for `()` |
/// | `lower(s)`, `upper(s)`, `trim(s)` | new string; `()` for `()`. `s.trim()` still also trims `s` in place |
/// | `alert(rule, severity)`, `alert(rule, severity, details)` | records an alert for the current record; severity `"low"`, `"medium"` or `"high"` (any case) |
///
/// Table values keep their column types (CSV columns are strings). An unknown table
/// name is a script error naming the table; when the name is a string literal it is
/// already a start-up error. Time helpers take `i64` µs (how Arrow timestamps arrive) or
/// RFC 3339 strings (how schema-less NDJSON carries them); `()` and unparsable strings
/// give `()`, so a missing timestamp makes a comparison false rather than failing the
/// record; other types are script errors.
#[derive(Clone)]
pub struct ScriptEngine {
    inner: Arc<Inner>,
}

impl ScriptEngine {
    /// Builds the engine over `tables` with `limits`; fails on a zero limit.
    pub fn new(tables: EnrichmentTables, limits: ScriptLimits) -> Result<ScriptEngine> {
        Self::with_extra(tables, limits, |_| {})
    }

    /// [`new`](Self::new), then `extra` on the engine (tests register misbehaving
    /// functions this way).
    pub(crate) fn with_extra(
        tables: EnrichmentTables,
        limits: ScriptLimits,
        extra: impl FnOnce(&mut Engine),
    ) -> Result<ScriptEngine> {
        limits.validate()?;
        let mut engine = Self::build(&tables, &limits);
        extra(&mut engine);
        Ok(ScriptEngine {
            inner: Arc::new(Inner {
                engine,
                tables,
                limits,
            }),
        })
    }

    fn build(tables: &EnrichmentTables, limits: &ScriptLimits) -> Engine {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .disable_symbol("eval");
        engine.on_print(|text| tracing::debug!(target: "pf_transform::script", "{text}"));
        engine.on_debug(|text, source, pos| {
            tracing::debug!(target: "pf_transform::script", ?source, %pos, "{text}")
        });
        builtins::register(&mut engine, tables);
        engine
    }

    /// The configured Rhai engine, for callers that evaluate their own ASTs.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The enrichment tables the lookup built-ins see.
    pub fn tables(&self) -> &EnrichmentTables {
        &self.inner.tables
    }

    /// The sandbox limits.
    pub fn limits(&self) -> &ScriptLimits {
        &self.inner.limits
    }

    /// Checks the table names a script passes as string literals: `Err((line, column,
    /// message))` for an unknown table, or a non-CIDR table given to `lookup_cidr`.
    pub(crate) fn check_table_literals(
        &self,
        uses: &[TableUse],
    ) -> std::result::Result<(), (usize, usize, String)> {
        let tables = self.tables();
        for u in uses {
            let (line, col) = (u.position.line as usize, u.position.column as usize);
            match tables.get(&u.table) {
                None => {
                    let known: Vec<&str> = tables.names().collect();
                    return Err((
                        line,
                        col,
                        builtins::unknown_table_message(&u.table, &u.function, &known),
                    ));
                }
                Some(t) if u.function == "lookup_cidr" && t.kind() != TableKind::Cidr => {
                    return Err((
                        line,
                        col,
                        format!(
                            "lookup_cidr(): table `{}` is an exact-key table; use lookup()",
                            u.table
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("tables", &self.inner.tables.names().collect::<Vec<_>>())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}
