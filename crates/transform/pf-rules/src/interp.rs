//! A per-record interpreter of parsed conditions, following [`crate::semantics`] to the
//! letter.
//!
//! It is the reference the vectorized kernels are tested against, the fallback for the
//! rows the kernels leave undecided when no script engine is configured, and a
//! [`ConditionFallback`] that can stand in for the script engine in tests.

use arrow::array::RecordBatch;
use pf_enrichment::{EnrichmentTables, TableKind};
use pf_error::{PfError, Result};

use crate::config::{RuleFile, RuleKind};
use crate::expr::{self, BinaryOp, Expr, ExprKind, Literal, ParseErrorKind, Position, UnaryOp};
use crate::semantics::{self, Value};
use crate::{ConditionFallback, ConditionOutcome};

/// Evaluates parsed conditions one record at a time, following [`crate::semantics`] to
/// the letter: the reference the vectorized kernels are tested against, the evaluator of
/// the rows the kernels leave undecided when no script engine is configured, and a
/// [`ConditionFallback`] that can stand in for the script engine in tests.
#[derive(Debug, Clone)]
pub struct ReferenceInterpreter {
    /// By rule index: the parsed condition, or why there is none.
    rules: Vec<std::result::Result<Expr, String>>,
    tables: EnrichmentTables,
}

impl ReferenceInterpreter {
    /// Parses every enabled condition rule of `file`. Syntax errors and table mistakes
    /// are configuration errors (as for [`crate::CompiledRules::compile`]); rules outside
    /// the parsed subset make [`eval`](ConditionFallback::eval) fail for every record.
    pub fn new(file: &RuleFile, tables: &EnrichmentTables) -> Result<ReferenceInterpreter> {
        file.validate()?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for spec in &file.rules {
            let parsed = match spec.kind() {
                Some(RuleKind::Condition(src)) if spec.enabled => match expr::parse(src) {
                    Ok(e) => {
                        check_tables(&e, tables).map_err(|(pos, m)| {
                            PfError::config(
                                format!("rules.{}.condition", spec.name),
                                format!("{m} at {pos}"),
                            )
                        })?;
                        Ok(e)
                    }
                    Err(e) if e.kind == ParseErrorKind::Syntax => {
                        return Err(PfError::config(
                            format!("rules.{}.condition", spec.name),
                            format!("`{src}`: {e}"),
                        ));
                    }
                    Err(e) => Err(format!("the reference interpreter cannot evaluate it: {e}")),
                },
                _ => Err("not an enabled condition rule".to_owned()),
            };
            rules.push(parsed);
        }
        Ok(ReferenceInterpreter {
            rules,
            tables: tables.clone(),
        })
    }

    pub(crate) fn from_parts(
        rules: Vec<std::result::Result<Expr, String>>,
        tables: EnrichmentTables,
    ) -> Self {
        ReferenceInterpreter { rules, tables }
    }

    /// The value of `expr` for row `row` of `batch`.
    pub fn eval_expr(
        &self,
        expr: &Expr,
        batch: &RecordBatch,
        row: usize,
    ) -> std::result::Result<Value, String> {
        eval(expr, &Row { batch, row }, &self.tables)
    }
}

impl ConditionFallback for ReferenceInterpreter {
    fn eval(&self, rule: usize, batch: &RecordBatch, row: usize) -> ConditionOutcome {
        match self.rules.get(rule) {
            Some(Ok(expr)) => {
                let v = eval(expr, &Row { batch, row }, &self.tables)?;
                semantics::as_bool(&v, "the condition's result")
            }
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("there is no rule number {rule}")),
        }
    }
}

/// Checks that every table a condition names exists, has the right kind for the lookup
/// function, and has the columns read from it.
pub(crate) fn check_tables(
    expr: &Expr,
    tables: &EnrichmentTables,
) -> std::result::Result<(), (Position, String)> {
    let mut problem = None;
    expr.visit(&mut |e| {
        if problem.is_some() {
            return;
        }
        let (table, cidr, column) = match &e.kind {
            ExprKind::Lookup {
                table,
                cidr,
                column,
                ..
            } => (table, Some(*cidr), Some(column)),
            ExprKind::InTable { table, .. } => (table, None, None),
            _ => return,
        };
        let Some(t) = tables.get(table) else {
            let known = comma_list(tables.names());
            problem = Some((
                e.pos,
                format!("unknown enrichment table `{table}` (tables: {known})"),
            ));
            return;
        };
        match (cidr, t.kind()) {
            (Some(true), TableKind::Exact) => {
                problem = Some((
                    e.pos,
                    format!("table `{table}` is an exact table: use lookup(), not lookup_cidr()"),
                ));
                return;
            }
            (Some(false), TableKind::Cidr) => {
                problem = Some((
                    e.pos,
                    format!("table `{table}` is a cidr table: use lookup_cidr(), not lookup()"),
                ));
                return;
            }
            _ => {}
        }
        if let Some(column) = column
            && t.column_index(column).is_none()
        {
            let fields = t.values().schema_ref().fields();
            let names = comma_list(fields.iter().map(|f| f.name().as_str()));
            problem = Some((
                e.pos,
                format!("table `{table}` has no column `{column}` (columns: {names})"),
            ));
        }
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// `names` separated by `, `.
fn comma_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

struct Row<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Unit => Value::Unit,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(x) => Value::Float(*x),
        Literal::Str(s) => Value::Str(s.clone()),
    }
}

fn at(pos: Position) -> impl Fn(String) -> String {
    move |m| format!("{m} ({pos})")
}

fn field(r: &Row<'_>, name: &str) -> Option<std::result::Result<Value, String>> {
    let idx = r.batch.schema_ref().index_of(name).ok()?;
    Some(semantics::value_at(r.batch.column(idx), r.row))
}

fn eval(e: &Expr, r: &Row<'_>, tables: &EnrichmentTables) -> std::result::Result<Value, String> {
    match &e.kind {
        ExprKind::Literal(l) => Ok(literal(l)),
        ExprKind::Field(name) => match field(r, name) {
            Some(v) => v.map_err(at(e.pos)),
            None => Err(format!("variable `{name}` not found ({})", e.pos)),
        },
        ExprKind::RecordField(name) => field(r, name).unwrap_or(Ok(Value::Unit)).map_err(at(e.pos)),
        ExprKind::Unary(UnaryOp::Not, a) => {
            let v = eval(a, r, tables)?;
            semantics::as_bool(&v, "the operand of `!`")
                .map(|b| Value::Bool(!b))
                .map_err(at(e.pos))
        }
        ExprKind::Unary(UnaryOp::Neg, a) => {
            semantics::negate(&eval(a, r, tables)?).map_err(at(e.pos))
        }
        ExprKind::Binary(op @ (BinaryOp::And | BinaryOp::Or), a, b) => {
            let role = format!("the left operand of `{}`", op.symbol());
            let left = semantics::as_bool(&eval(a, r, tables)?, &role).map_err(at(e.pos))?;
            // Short-circuit: the right operand is not evaluated, so it cannot fail.
            if left == (*op == BinaryOp::Or) {
                return Ok(Value::Bool(left));
            }
            let role = format!("the right operand of `{}`", op.symbol());
            semantics::as_bool(&eval(b, r, tables)?, &role)
                .map(Value::Bool)
                .map_err(at(b.pos))
        }
        ExprKind::Binary(op, a, b) => {
            let x = eval(a, r, tables)?;
            let y = eval(b, r, tables)?;
            match op {
                BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::Eq
                | BinaryOp::Ne => Ok(Value::Bool(semantics::compare(*op, &x, &y))),
                _ => semantics::arithmetic(*op, &x, &y).map_err(at(e.pos)),
            }
        }
        ExprKind::InList(a, items) => {
            let x = eval(a, r, tables)?;
            Ok(Value::Bool(
                items.iter().any(|l| semantics::equals(&x, &literal(l))),
            ))
        }
        ExprKind::Time(f, a) => semantics::time_part(*f, &eval(a, r, tables)?).map_err(at(e.pos)),
        ExprKind::Lookup {
            table, key, column, ..
        } => {
            let key = semantics::lookup_key(&eval(key, r, tables)?).map_err(at(e.pos))?;
            let (Some(key), Some(t)) = (key, tables.get(table)) else {
                return Ok(Value::Unit);
            };
            let (Some(row), Some(col)) = (t.lookup_row(&key), t.column_index(column)) else {
                return Ok(Value::Unit);
            };
            semantics::value_at(t.values().column(col), row as usize).map_err(at(e.pos))
        }
        ExprKind::InTable { table, key } => {
            let key = semantics::lookup_key(&eval(key, r, tables)?).map_err(at(e.pos))?;
            let hit = match (key, tables.get(table)) {
                (Some(key), Some(t)) => t.lookup_row(&key).is_some(),
                _ => false,
            };
            Ok(Value::Bool(hit))
        }
    }
}
