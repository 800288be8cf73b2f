//! Vectorized evaluation: conditions compiled into one shared DAG of column operations.
//!
//! Every node yields a typed column plus a "bad" mask: rows for which the kernels cannot
//! stand in for per-record evaluation (the record's evaluation fails in Rhai, or needs a
//! type combination the kernels do not implement). The engine sends exactly those rows to
//! the per-record fallback, so the kernels only ever need to be right on the rows they do
//! not mark. Identical sub-expressions across all rules are one node, evaluated once per
//! batch (`hour(timestamp)` twice in a rule, the same lookup in two rules).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{ArrowNativeType, DataType};
use pf_enrichment::{EnrichmentTable, EnrichmentTables};

use crate::expr::{BinaryOp, Expr, ExprKind, Literal, TimeFn, UnaryOp};
use crate::semantics::{self, ColumnValues, Value};

pub(crate) type NodeId = usize;

#[derive(Debug)]
pub(crate) enum Node {
    Lit(Literal),
    Field {
        name: String,
        record: bool,
    },
    Neg(NodeId),
    Not(NodeId),
    Arith(BinaryOp, NodeId, NodeId),
    Cmp(BinaryOp, NodeId, NodeId),
    Logic(BinaryOp, NodeId, NodeId),
    InList(NodeId, Vec<Literal>),
    Time(TimeFn, NodeId),
    Rows {
        table: Arc<EnrichmentTable>,
        key: NodeId,
    },
    Value {
        table: Arc<EnrichmentTable>,
        rows: NodeId,
        column: usize,
    },
    InTable {
        rows: NodeId,
    },
    /// `==` / `!=` (when `ne`) of string lookup values (or one and a constant), compared
    /// by numbering every distinct string of the columns once at compile time: per row
    /// two array reads instead of copying and comparing strings.
    CodedEq {
        ne: bool,
        a: Coded,
        b: Coded,
    },
}

/// All vectorized conditions of a rule set, with shared sub-expressions.
#[derive(Debug, Default)]
pub(crate) struct Program {
    nodes: Vec<Node>,
    ids: HashMap<String, NodeId>,
    /// Every distinct string of the table columns compared by [`Node::CodedEq`], numbered.
    strings: HashMap<String, u32>,
    /// Per (table, column) compared that way: the number of each row's string.
    codes: HashMap<(String, usize), CodeArray>,
}

/// The string numbers of one table column, as narrow as the number of distinct strings
/// allows (the narrower, the more of it stays in cache under random row access). The
/// largest value of the type stands for `()`.
#[derive(Debug, Clone)]
pub(crate) enum CodeArray {
    U8(Arc<[u8]>),
    U16(Arc<[u16]>),
    U32(Arc<[u32]>),
}

impl CodeArray {
    fn id(&self) -> *const () {
        match self {
            CodeArray::U8(a) => a.as_ptr().cast(),
            CodeArray::U16(a) => a.as_ptr().cast(),
            CodeArray::U32(a) => a.as_ptr().cast(),
        }
    }

    /// Narrowed for `distinct` numbered strings.
    fn narrowed(&self, distinct: usize) -> CodeArray {
        let CodeArray::U32(wide) = self else {
            return self.clone();
        };
        if distinct < usize::from(u8::MAX) {
            CodeArray::U8(
                wide.iter()
                    .map(|&c| if c == NULL_CODE { u8::MAX } else { c as u8 })
                    .collect(),
            )
        } else if distinct < usize::from(u16::MAX) {
            CodeArray::U16(
                wide.iter()
                    .map(|&c| if c == NULL_CODE { u16::MAX } else { c as u16 })
                    .collect(),
            )
        } else {
            self.clone()
        }
    }

    /// The code of each looked-up row ([`NULL_CODE`] for a miss or a null value).
    fn gather(&self, rows: &UInt32Array) -> Vec<u32> {
        match self {
            CodeArray::U8(c) => gather(c, u8::MAX, rows),
            CodeArray::U16(c) => gather(c, u16::MAX, rows),
            CodeArray::U32(c) => gather(c, NULL_CODE, rows),
        }
    }
}

fn gather<T: Copy + PartialEq + Into<u32>>(codes: &[T], null: T, rows: &UInt32Array) -> Vec<u32> {
    let get = |r: u32| match codes.get(r as usize) {
        Some(&c) if c != null => c.into(),
        _ => NULL_CODE,
    };
    let mut out: Vec<u32> = rows.values().iter().map(|&r| get(r)).collect();
    // Misses are few: patch them afterwards rather than test every row.
    if let Some(n) = real_nulls(rows.nulls()) {
        for i in (!n.inner()).set_indices() {
            if let Some(c) = out.get_mut(i) {
                *c = NULL_CODE;
            }
        }
    }
    out
}

/// The code of `()` (a miss or a null value) in [`Node::CodedEq`]: equal only to itself,
/// as `()` is.
const NULL_CODE: u32 = u32::MAX;

/// One side of a [`Node::CodedEq`].
#[derive(Debug)]
pub(crate) enum Coded {
    /// A lookup's value column: the rows node and the codes of the column.
    Lookup(NodeId, CodeArray),
    /// A constant: its code, or `None` for a string no compared column contains.
    Constant(Option<u32>),
}

impl Program {
    fn intern(&mut self, key: String, node: Node) -> NodeId {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        self.nodes.push(node);
        let id = self.nodes.len() - 1;
        self.ids.insert(key, id);
        id
    }

    /// Adds `e` (whose tables were checked) and returns its node.
    pub(crate) fn add(&mut self, e: &Expr, tables: &EnrichmentTables) -> Option<NodeId> {
        Some(match &e.kind {
            ExprKind::Literal(l) => self.intern(format!("lit:{l}"), Node::Lit(l.clone())),
            ExprKind::Field(n) => self.intern(
                format!("field:{n}"),
                Node::Field {
                    name: n.clone(),
                    record: false,
                },
            ),
            ExprKind::RecordField(n) => self.intern(
                format!("record:{n}"),
                Node::Field {
                    name: n.clone(),
                    record: true,
                },
            ),
            ExprKind::Unary(UnaryOp::Neg, a) => {
                let a = self.add(a, tables)?;
                self.intern(format!("neg:{a}"), Node::Neg(a))
            }
            ExprKind::Unary(UnaryOp::Not, a) => {
                let a = self.add(a, tables)?;
                self.intern(format!("not:{a}"), Node::Not(a))
            }
            ExprKind::Binary(op @ (BinaryOp::Eq | BinaryOp::Ne), a, b)
                if self.codable(a, tables) && (self.codable(b, tables) || is_constant(b))
                    || self.codable(b, tables) && is_constant(a) =>
            {
                // Number the columns' strings before resolving a constant against them.
                let (a, b) = if is_constant(a) {
                    let b = self.coded(b, tables)?;
                    (self.coded(a, tables)?, b)
                } else {
                    let a = self.coded(a, tables)?;
                    (a, self.coded(b, tables)?)
                };
                let side = |c: &Coded| match c {
                    Coded::Lookup(rows, codes) => format!("{rows}@{:p}", codes.id()),
                    Coded::Constant(code) => format!("{code:?}"),
                };
                let key = format!("coded:{}:{}:{}", op.symbol(), side(&a), side(&b));
                self.intern(
                    key,
                    Node::CodedEq {
                        ne: *op == BinaryOp::Ne,
                        a,
                        b,
                    },
                )
            }
            ExprKind::Binary(op, a, b) => {
                let a = self.add(a, tables)?;
                let b = self.add(b, tables)?;
                let key = format!("bin:{}:{a}:{b}", op.symbol());
                let node = match op {
                    BinaryOp::And | BinaryOp::Or => Node::Logic(*op, a, b),
                    BinaryOp::Lt
                    | BinaryOp::Le
                    | BinaryOp::Gt
                    | BinaryOp::Ge
                    | BinaryOp::Eq
                    | BinaryOp::Ne => Node::Cmp(*op, a, b),
                    _ => Node::Arith(*op, a, b),
                };
                self.intern(key, node)
            }
            ExprKind::InList(a, items) => {
                let a = self.add(a, tables)?;
                let mut key = format!("in:{a}");
                for l in items {
                    key.push(':');
                    key.push_str(&l.to_string());
                }
                self.intern(key, Node::InList(a, items.clone()))
            }
            ExprKind::Time(f, a) => {
                let a = self.add(a, tables)?;
                self.intern(format!("time:{}:{a}", f.name()), Node::Time(*f, a))
            }
            ExprKind::Lookup {
                table, key, column, ..
            } => {
                let t = tables.get(table)?.clone();
                let col = t.column_index(column)?;
                let rows = self.rows(table, t.clone(), key, tables)?;
                self.intern(
                    format!("value:{rows}:{col}"),
                    Node::Value {
                        table: t,
                        rows,
                        column: col,
                    },
                )
            }
            ExprKind::InTable { table, key } => {
                let t = tables.get(table)?.clone();
                let rows = self.rows(table, t, key, tables)?;
                self.intern(format!("in_table:{rows}"), Node::InTable { rows })
            }
        })
    }

    /// Narrows the string codes once every rule is added (the number of distinct strings
    /// is only known then).
    pub(crate) fn finish(&mut self) {
        let distinct = self.strings.len();
        let mut done: HashMap<*const (), CodeArray> = HashMap::new();
        for node in &mut self.nodes {
            if let Node::CodedEq { a, b, .. } = node {
                for side in [a, b] {
                    if let Coded::Lookup(_, codes) = side {
                        let narrow = done
                            .entry(codes.id())
                            .or_insert_with(|| codes.narrowed(distinct))
                            .clone();
                        *codes = narrow;
                    }
                }
            }
        }
        self.codes.clear();
    }

    /// Whether `e` is a lookup of a string column (so it can be compared by codes).
    fn codable(&self, e: &Expr, tables: &EnrichmentTables) -> bool {
        let ExprKind::Lookup { table, column, .. } = &e.kind else {
            return false;
        };
        let Some(t) = tables.get(table) else {
            return false;
        };
        let Some(c) = t.column_index(column) else {
            return false;
        };
        matches!(
            t.values().column(c).data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    }

    /// One side of a coded comparison (`e` is [`codable`](Self::codable) or a constant).
    fn coded(&mut self, e: &Expr, tables: &EnrichmentTables) -> Option<Coded> {
        match &e.kind {
            ExprKind::Lookup {
                table, key, column, ..
            } => {
                let t = tables.get(table)?.clone();
                let col = t.column_index(column)?;
                let codes = match self.codes.get(&(table.clone(), col)) {
                    Some(c) => c.clone(),
                    None => {
                        let ColumnValues::Str(values) =
                            semantics::column_value(t.values().column(col).as_ref()).ok()?
                        else {
                            return None;
                        };
                        // Codes must stay below NULL_CODE; beyond that, compare strings.
                        if self.strings.len() + values.len() >= NULL_CODE as usize {
                            return None;
                        }
                        let codes: Arc<[u32]> = values
                            .iter()
                            .map(|v| match v {
                                None => NULL_CODE,
                                Some(v) => {
                                    let next = self.strings.len() as u32;
                                    *self.strings.entry(v.to_owned()).or_insert(next)
                                }
                            })
                            .collect();
                        let codes = CodeArray::U32(codes);
                        self.codes.insert((table.clone(), col), codes.clone());
                        codes
                    }
                };
                let rows = self.rows(table, t, key, tables)?;
                Some(Coded::Lookup(rows, codes))
            }
            // The compared column's strings are numbered by now (see the caller).
            ExprKind::Literal(Literal::Unit) => Some(Coded::Constant(Some(NULL_CODE))),
            ExprKind::Literal(Literal::Str(s)) => {
                Some(Coded::Constant(self.strings.get(s).copied()))
            }
            // Other constants (numbers, booleans) never equal a string or `()`.
            ExprKind::Literal(_) => Some(Coded::Constant(None)),
            _ => None,
        }
    }

    fn rows(
        &mut self,
        name: &str,
        table: Arc<EnrichmentTable>,
        key: &Expr,
        tables: &EnrichmentTables,
    ) -> Option<NodeId> {
        let key = self.add(key, tables)?;
        Some(self.intern(format!("rows:{name:?}:{key}"), Node::Rows { table, key }))
    }
}

fn is_constant(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Literal(_))
}

/// Numbers: one value for every row, or a column whose nulls are `()`.
#[derive(Debug, Clone)]
pub(crate) enum Num<T: ArrowNativeType> {
    Scalar(T),
    Array(ScalarBuffer<T>, Option<NullBuffer>),
}

#[derive(Debug, Clone)]
pub(crate) enum Strs {
    Scalar(String),
    Array(StringArray),
}

#[derive(Debug, Clone)]
pub(crate) enum Bools {
    Scalar(bool),
    Array(BooleanBuffer, Option<NullBuffer>),
}

/// A node's column in one of the rule value types (see [`crate::semantics`]).
#[derive(Debug, Clone)]
pub(crate) enum Data {
    Unit,
    Bool(Bools),
    Int(Num<i64>),
    Float(Num<f64>),
    Str(Strs),
    /// Matching table rows of a lookup (null: no match); only lookups consume it.
    Rows(UInt32Array),
}

#[derive(Debug, Clone)]
pub(crate) struct Evaluated {
    pub(crate) data: Data,
    /// Rows the kernels leave to the per-record fallback; `None` when there are none.
    pub(crate) bad: Option<BooleanBuffer>,
}

/// What an arithmetic, time or lookup kernel gives: its values, and the rows it leaves
/// to the per-record fallback (`None` when there are none).
type KernelOutput = (Data, Option<BooleanBuffer>);

fn real_nulls(n: Option<&NullBuffer>) -> Option<NullBuffer> {
    n.filter(|n| n.null_count() > 0).cloned()
}

fn union(a: Option<BooleanBuffer>, b: Option<BooleanBuffer>) -> Option<BooleanBuffer> {
    match (a, b) {
        (Some(a), Some(b)) => Some(&a | &b),
        (a, None) => a,
        (None, b) => b,
    }
}

fn nulls_as_bad(n: Option<&NullBuffer>) -> Option<BooleanBuffer> {
    n.filter(|n| n.null_count() > 0).map(|n| !n.inner())
}

fn constant(len: usize, v: bool) -> BooleanBuffer {
    if v {
        BooleanBuffer::new_set(len)
    } else {
        BooleanBuffer::new_unset(len)
    }
}

fn everything_bad(len: usize) -> Evaluated {
    Evaluated {
        data: Data::Unit,
        bad: Some(BooleanBuffer::new_set(len)),
    }
}

impl Data {
    fn from_values(v: ColumnValues) -> Data {
        match v {
            ColumnValues::Unit(_) => Data::Unit,
            ColumnValues::Bool(a) => {
                let (values, nulls) = a.into_parts();
                Data::Bool(Bools::Array(values, real_nulls(nulls.as_ref())))
            }
            ColumnValues::Int(a) => {
                let nulls = real_nulls(a.nulls());
                Data::Int(Num::Array(a.values().clone(), nulls))
            }
            ColumnValues::Float(a) => {
                let nulls = real_nulls(a.nulls());
                Data::Float(Num::Array(a.values().clone(), nulls))
            }
            ColumnValues::Str(a) => Data::Str(Strs::Array(a)),
        }
    }

    fn literal(l: &Literal) -> Data {
        match l {
            Literal::Unit => Data::Unit,
            Literal::Bool(b) => Data::Bool(Bools::Scalar(*b)),
            Literal::Int(i) => Data::Int(Num::Scalar(*i)),
            Literal::Float(x) => Data::Float(Num::Scalar(*x)),
            Literal::Str(s) => Data::Str(Strs::Scalar(s.clone())),
        }
    }

    /// Valid (non-`()`) rows.
    fn validity_len(&self, len: usize) -> BooleanBuffer {
        let nulls = match self {
            Data::Unit => return BooleanBuffer::new_unset(len),
            Data::Int(Num::Array(_, n)) | Data::Float(Num::Array(_, n)) => n.clone(),
            Data::Bool(Bools::Array(_, n)) => n.clone(),
            Data::Str(Strs::Array(a)) => real_nulls(a.nulls()),
            Data::Rows(r) => real_nulls(r.nulls()),
            Data::Int(Num::Scalar(_))
            | Data::Float(Num::Scalar(_))
            | Data::Bool(Bools::Scalar(_))
            | Data::Str(Strs::Scalar(_)) => None,
        };
        match nulls {
            Some(n) => n.inner().clone(),
            None => BooleanBuffer::new_set(len),
        }
    }
}

fn to_float(n: &Num<i64>) -> Num<f64> {
    match n {
        Num::Scalar(i) => Num::Scalar(*i as f64),
        Num::Array(v, nulls) => Num::Array(v.iter().map(|&i| i as f64).collect(), nulls.clone()),
    }
}

/// Evaluates a [`Program`] over one batch, each node at most once.
pub(crate) struct Evaluator<'a> {
    program: &'a Program,
    batch: &'a RecordBatch,
    len: usize,
    memo: Vec<Option<Evaluated>>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(program: &'a Program, batch: &'a RecordBatch) -> Self {
        Evaluator {
            program,
            batch,
            len: batch.num_rows(),
            memo: vec![None; program.nodes.len()],
        }
    }

    pub(crate) fn eval(&mut self, id: NodeId) -> Evaluated {
        if let Some(Some(done)) = self.memo.get(id) {
            return done.clone();
        }
        let result = self.compute(id);
        if let Some(slot) = self.memo.get_mut(id) {
            *slot = Some(result.clone());
        }
        result
    }

    /// A condition's outcome: (rows that fired, rows left to the fallback).
    pub(crate) fn condition(&mut self, id: NodeId) -> (BooleanBuffer, Option<BooleanBuffer>) {
        let len = self.len;
        let e = self.eval(id);
        match e.data {
            Data::Bool(b) => {
                let (values, nulls) = materialize_bool(&b, len);
                let bad = union(e.bad, nulls_as_bad(nulls.as_ref()));
                let fired = match &bad {
                    Some(bad) => &values & &!bad,
                    None => values,
                };
                (fired, bad)
            }
            _ => (
                BooleanBuffer::new_unset(len),
                Some(BooleanBuffer::new_set(len)),
            ),
        }
    }

    fn compute(&mut self, id: NodeId) -> Evaluated {
        let len = self.len;
        let Some(node) = self.program.nodes.get(id) else {
            return everything_bad(len);
        };
        match node {
            Node::Lit(l) => Evaluated {
                data: Data::literal(l),
                bad: None,
            },
            Node::Field { name, record } => self.field(name, *record),
            Node::Neg(a) => {
                let a = self.eval(*a);
                let (data, bad) = negate(&a.data, len);
                Evaluated {
                    data,
                    bad: union(a.bad, bad),
                }
            }
            Node::Not(a) => {
                let a = self.eval(*a);
                match &a.data {
                    Data::Bool(b) => {
                        let (values, nulls) = materialize_bool(b, len);
                        Evaluated {
                            data: Data::Bool(Bools::Array(!&values, None)),
                            bad: union(a.bad, nulls_as_bad(nulls.as_ref())),
                        }
                    }
                    _ => everything_bad(len),
                }
            }
            Node::Arith(op, a, b) => {
                let a = self.eval(*a);
                let b = self.eval(*b);
                let (data, bad) = arithmetic(*op, &a.data, &b.data, len);
                Evaluated {
                    data,
                    bad: union(union(a.bad, b.bad), bad),
                }
            }
            Node::Cmp(op, a, b) => {
                let a = self.eval(*a);
                let b = self.eval(*b);
                match compare(*op, &a.data, &b.data, len) {
                    Some(values) => Evaluated {
                        data: Data::Bool(Bools::Array(values, None)),
                        bad: union(a.bad, b.bad),
                    },
                    None => everything_bad(len),
                }
            }
            Node::Logic(op, a, b) => {
                let a = self.eval(*a);
                let b = self.eval(*b);
                logic(*op == BinaryOp::And, &a, &b, len)
            }
            Node::InList(a, items) => {
                let a = self.eval(*a);
                let mut any = BooleanBuffer::new_unset(len);
                for item in items {
                    match compare(BinaryOp::Eq, &a.data, &Data::literal(item), len) {
                        Some(eq) => any = &any | &eq,
                        None => return everything_bad(len),
                    }
                }
                Evaluated {
                    data: Data::Bool(Bools::Array(any, None)),
                    bad: a.bad,
                }
            }
            Node::Time(f, a) => {
                let a = self.eval(*a);
                let (data, bad) = time_part(*f, &a.data, len);
                Evaluated {
                    data,
                    bad: union(a.bad, bad),
                }
            }
            Node::Rows { table, key } => {
                let key = self.eval(*key);
                let (data, bad) = lookup_rows(table, &key.data, len);
                Evaluated {
                    data,
                    bad: union(key.bad, bad),
                }
            }
            Node::Value {
                table,
                rows,
                column,
            } => {
                let rows = self.eval(*rows);
                let Data::Rows(r) = &rows.data else {
                    return everything_bad(len);
                };
                let Some(values) = table.values().columns().get(*column) else {
                    return everything_bad(len);
                };
                let data = arrow::compute::take(values.as_ref(), r, None)
                    .map_err(|e| e.to_string())
                    .and_then(|taken| semantics::column_value(taken.as_ref()));
                match data {
                    Ok(v) => Evaluated {
                        data: Data::from_values(v),
                        bad: rows.bad,
                    },
                    Err(_) => everything_bad(len),
                }
            }
            Node::CodedEq { ne, a, b } => {
                let (a_codes, a_bad) = self.codes_of(a);
                let (b_codes, b_bad) = self.codes_of(b);
                let eq = match (&a_codes, &b_codes) {
                    (Codes::Rows(x), Codes::Rows(y)) if x.len() == len && y.len() == len => {
                        BooleanBuffer::collect_bool(len, |i| x[i] == y[i])
                    }
                    (Codes::Rows(x), Codes::Constant(k)) | (Codes::Constant(k), Codes::Rows(x))
                        if x.len() == len =>
                    {
                        match k {
                            Some(k) => BooleanBuffer::collect_bool(len, |i| x[i] == *k),
                            None => BooleanBuffer::new_unset(len),
                        }
                    }
                    (Codes::Constant(x), Codes::Constant(y)) => {
                        constant(len, x.is_some() && x == y)
                    }
                    _ => return everything_bad(len),
                };
                Evaluated {
                    data: Data::Bool(Bools::Array(if *ne { !&eq } else { eq }, None)),
                    bad: union(a_bad, b_bad),
                }
            }
            Node::InTable { rows } => {
                let rows = self.eval(*rows);
                let Data::Rows(r) = &rows.data else {
                    return everything_bad(len);
                };
                let hit = match real_nulls(r.nulls()) {
                    Some(n) => n.inner().clone(),
                    None => BooleanBuffer::new_set(len),
                };
                Evaluated {
                    data: Data::Bool(Bools::Array(hit, None)),
                    bad: rows.bad,
                }
            }
        }
    }

    fn codes_of(&mut self, side: &Coded) -> (Codes, Option<BooleanBuffer>) {
        match side {
            Coded::Constant(k) => (Codes::Constant(*k), None),
            Coded::Lookup(rows, codes) => {
                let rows = self.eval(*rows);
                match rows.data {
                    Data::Rows(r) if r.len() == self.len => {
                        (Codes::Rows(codes.gather(&r)), rows.bad)
                    }
                    _ => (Codes::Invalid, Some(BooleanBuffer::new_set(self.len))),
                }
            }
        }
    }

    fn field(&self, name: &str, record: bool) -> Evaluated {
        let len = self.len;
        match self.batch.schema_ref().index_of(name) {
            Ok(i) => match semantics::column_value(self.batch.column(i).as_ref()) {
                Ok(v) => Evaluated {
                    data: Data::from_values(v),
                    bad: None,
                },
                Err(_) => everything_bad(len),
            },
            Err(_) if record => Evaluated {
                data: Data::Unit,
                bad: None,
            },
            // A missing variable is an error for every record; the fallback reports it.
            Err(_) => everything_bad(len),
        }
    }
}

/// A coded comparison side, evaluated: the code of every row, or a constant's.
enum Codes {
    Rows(Vec<u32>),
    Constant(Option<u32>),
    Invalid,
}

fn materialize_bool(b: &Bools, len: usize) -> (BooleanBuffer, Option<NullBuffer>) {
    match b {
        Bools::Scalar(v) => (constant(len, *v), None),
        Bools::Array(values, nulls) => (values.clone(), nulls.clone()),
    }
}

/// `&&` / `||`: operands must be non-null bools; the right operand only counts where the
/// left does not decide (short-circuit), so its failures only matter there.
fn logic(and: bool, a: &Evaluated, b: &Evaluated, len: usize) -> Evaluated {
    let operand = |e: &Evaluated| -> (BooleanBuffer, Option<BooleanBuffer>) {
        match &e.data {
            Data::Bool(b) => {
                let (values, nulls) = materialize_bool(b, len);
                (values, union(e.bad.clone(), nulls_as_bad(nulls.as_ref())))
            }
            _ => (
                BooleanBuffer::new_unset(len),
                Some(BooleanBuffer::new_set(len)),
            ),
        }
    };
    let (av, abad) = operand(a);
    let (bv, bbad) = operand(b);
    let values = if and { &av & &bv } else { &av | &bv };
    let right_evaluated = if and { av } else { !&av };
    let right_bad = bbad.map(|bb| {
        let evaluated = match &abad {
            Some(ab) => &right_evaluated & &!ab,
            None => right_evaluated,
        };
        &evaluated & &bb
    });
    Evaluated {
        data: Data::Bool(Bools::Array(values, None)),
        bad: union(abad, right_bad),
    }
}

/// One side of a binary kernel.
#[derive(Clone, Copy)]
enum Side<'a, T> {
    Scalar(T),
    Slice(&'a [T]),
}

fn side<T: ArrowNativeType>(n: &Num<T>, len: usize) -> Side<'_, T> {
    match n {
        Num::Scalar(v) => Side::Scalar(*v),
        Num::Array(v, _) => Side::Slice(&v[..len.min(v.len())]),
    }
}

fn num_nulls<T: ArrowNativeType>(n: &Num<T>) -> Option<&NullBuffer> {
    match n {
        Num::Scalar(_) => None,
        Num::Array(_, nulls) => nulls.as_ref(),
    }
}

/// `f` over both sides, row by row, packed 64 rows at a time.
#[inline]
fn zip_bool<T: Copy>(
    a: Side<'_, T>,
    b: Side<'_, T>,
    len: usize,
    f: impl Fn(T, T) -> bool,
) -> BooleanBuffer {
    match (a, b) {
        (Side::Scalar(x), Side::Scalar(y)) => constant(len, f(x, y)),
        (Side::Slice(xs), Side::Scalar(y)) if xs.len() == len => {
            BooleanBuffer::collect_bool(len, |i| f(xs[i], y))
        }
        (Side::Scalar(x), Side::Slice(ys)) if ys.len() == len => {
            BooleanBuffer::collect_bool(len, |i| f(x, ys[i]))
        }
        (Side::Slice(xs), Side::Slice(ys)) if xs.len() == len && ys.len() == len => {
            BooleanBuffer::collect_bool(len, |i| f(xs[i], ys[i]))
        }
        _ => BooleanBuffer::new_unset(len),
    }
}

/// Raw comparison of valid values (integers: exact; floats go through
/// [`compare_float`] instead). `Ne` is computed as `Eq` and negated by the caller.
fn compare_values<T: Copy + PartialOrd>(
    op: BinaryOp,
    a: Side<'_, T>,
    b: Side<'_, T>,
    len: usize,
) -> BooleanBuffer {
    match op {
        BinaryOp::Lt => zip_bool(a, b, len, |x, y| x < y),
        BinaryOp::Le => zip_bool(a, b, len, |x, y| x <= y),
        BinaryOp::Gt => zip_bool(a, b, len, |x, y| x > y),
        BinaryOp::Ge => zip_bool(a, b, len, |x, y| x >= y),
        _ => zip_bool(a, b, len, |x, y| x == y),
    }
}

/// Applies the null rules to raw comparison results: `()` equals only `()`, and ordering
/// with a `()` is false.
fn with_nulls(
    op: BinaryOp,
    values: BooleanBuffer,
    va: Option<&NullBuffer>,
    vb: Option<&NullBuffer>,
) -> BooleanBuffer {
    let both_valid = |v: BooleanBuffer| match (va, vb) {
        (None, None) => v,
        (Some(a), None) => &v & a.inner(),
        (None, Some(b)) => &v & b.inner(),
        (Some(a), Some(b)) => &(&v & a.inner()) & b.inner(),
    };
    match op {
        BinaryOp::Eq | BinaryOp::Ne => {
            let eq = match (va, vb) {
                (Some(a), Some(b)) => {
                    let both_null = &!a.inner() & &!b.inner();
                    &both_valid(values) | &both_null
                }
                _ => both_valid(values),
            };
            if op == BinaryOp::Ne { !&eq } else { eq }
        }
        _ => both_valid(values),
    }
}

fn compare_num<T: ArrowNativeType + PartialOrd>(
    op: BinaryOp,
    a: &Num<T>,
    b: &Num<T>,
    len: usize,
) -> BooleanBuffer {
    let values = compare_values(op, side(a, len), side(b, len), len);
    with_nulls(op, values, num_nulls(a), num_nulls(b))
}

/// Float comparison with Rhai's relative epsilon ([`semantics::float_compare`]), one
/// pass over the values. Unlike the other types, `!=` is not `!(==)` (NaN and infinities
/// are false under both), so it is computed directly: true where both are valid and
/// [`semantics::float_compare`] says so, or where exactly one side is `()`.
fn compare_float(op: BinaryOp, a: &Num<f64>, b: &Num<f64>, len: usize) -> BooleanBuffer {
    let (sa, sb) = (side(a, len), side(b, len));
    // One monomorphic kernel per operator, so the operator match is not in the loop.
    macro_rules! kernel_per_operator {
        ($($op:ident),+) => {
            match op {
                $(BinaryOp::$op => zip_bool(sa, sb, len, |x, y| {
                    semantics::float_compare(BinaryOp::$op, x, y)
                }),)+
                _ => BooleanBuffer::new_unset(len),
            }
        };
    }
    let values = kernel_per_operator!(Eq, Ne, Lt, Le, Gt, Ge);
    let (va, vb) = (num_nulls(a), num_nulls(b));
    if op != BinaryOp::Ne {
        return with_nulls(op, values, va, vb);
    }
    match (va, vb) {
        (None, None) => values,
        (Some(a), None) | (None, Some(a)) => &(&values & a.inner()) | &!a.inner(),
        (Some(a), Some(b)) => {
            let both = &(&values & a.inner()) & b.inner();
            &both | &(a.inner() ^ b.inner())
        }
    }
}

fn bools_side(b: &Bools, len: usize) -> (BooleanBuffer, Option<NullBuffer>) {
    materialize_bool(b, len)
}

/// Comparison kernels; `None` when the operands cannot be compared by the kernels.
fn compare(op: BinaryOp, a: &Data, b: &Data, len: usize) -> Option<BooleanBuffer> {
    Some(match (a, b) {
        (Data::Rows(_), _) | (_, Data::Rows(_)) => return None,
        (Data::Unit, Data::Unit) => constant(len, op == BinaryOp::Eq),
        (Data::Unit, x) | (x, Data::Unit) => {
            let valid = x.validity_len(len);
            match op {
                BinaryOp::Eq => !&valid,
                BinaryOp::Ne => valid,
                _ => BooleanBuffer::new_unset(len),
            }
        }
        (Data::Int(x), Data::Int(y)) => compare_num(op, x, y, len),
        (Data::Float(x), Data::Float(y)) => compare_float(op, x, y, len),
        (Data::Int(x), Data::Float(y)) => compare_float(op, &to_float(x), y, len),
        (Data::Float(x), Data::Int(y)) => compare_float(op, x, &to_float(y), len),
        (Data::Str(x), Data::Str(y)) => compare_str(op, x, y, len)?,
        (Data::Bool(x), Data::Bool(y)) => {
            let (xv, xn) = bools_side(x, len);
            let (yv, yn) = bools_side(y, len);
            let values = match op {
                BinaryOp::Lt => &!&xv & &yv,
                BinaryOp::Le => &!&xv | &yv,
                BinaryOp::Gt => &xv & &!&yv,
                BinaryOp::Ge => &xv | &!&yv,
                _ => !&(&xv ^ &yv),
            };
            with_nulls(op, values, xn.as_ref(), yn.as_ref())
        }
        // Different types: only `() == ()` holds, i.e. rows where both are null.
        (x, y) => {
            let both_null = &!&x.validity_len(len) & &!&y.validity_len(len);
            match op {
                BinaryOp::Eq => both_null,
                BinaryOp::Ne => !&both_null,
                _ => BooleanBuffer::new_unset(len),
            }
        }
    })
}

fn compare_str(op: BinaryOp, a: &Strs, b: &Strs, len: usize) -> Option<BooleanBuffer> {
    let scalar = |s: &String| StringArray::new_scalar(s.as_str());
    let result = match (a, b) {
        (Strs::Scalar(x), Strs::Scalar(y)) => {
            let v = semantics::compare(op, &Value::Str(x.clone()), &Value::Str(y.clone()));
            return Some(constant(len, v));
        }
        (Strs::Array(x), Strs::Scalar(y)) => str_kernel(op, x, &scalar(y)),
        (Strs::Scalar(x), Strs::Array(y)) => str_kernel(op, &scalar(x), y),
        (Strs::Array(x), Strs::Array(y)) => str_kernel(op, x, y),
    };
    let result = result.ok()?;
    // `distinct` / `not_distinct` already treat nulls as Rhai's `()`; ordering results
    // are null where an operand is, which counts as false.
    let (values, nulls) = result.into_parts();
    Some(match nulls {
        Some(n) => &values & n.inner(),
        None => values,
    })
}

fn str_kernel(
    op: BinaryOp,
    a: &dyn arrow::array::Datum,
    b: &dyn arrow::array::Datum,
) -> Result<BooleanArray, arrow::error::ArrowError> {
    match op {
        BinaryOp::Lt => cmp::lt(a, b),
        BinaryOp::Le => cmp::lt_eq(a, b),
        BinaryOp::Gt => cmp::gt(a, b),
        BinaryOp::Ge => cmp::gt_eq(a, b),
        BinaryOp::Ne => cmp::distinct(a, b),
        _ => cmp::not_distinct(a, b),
    }
}

/// Arithmetic; rows with a `()` operand, integer overflow or integer division by zero are
/// bad (they fail in Rhai).
fn arithmetic(op: BinaryOp, a: &Data, b: &Data, len: usize) -> KernelOutput {
    match (a, b) {
        (Data::Int(x), Data::Int(y)) => int_arithmetic(op, x, y, len),
        (Data::Int(_) | Data::Float(_), Data::Int(_) | Data::Float(_)) => {
            let x = match a {
                Data::Int(i) => to_float(i),
                Data::Float(f) => f.clone(),
                _ => return (Data::Unit, Some(BooleanBuffer::new_set(len))),
            };
            let y = match b {
                Data::Int(i) => to_float(i),
                Data::Float(f) => f.clone(),
                _ => return (Data::Unit, Some(BooleanBuffer::new_set(len))),
            };
            float_arithmetic(op, &x, &y, len)
        }
        _ => (Data::Unit, Some(BooleanBuffer::new_set(len))),
    }
}

fn null_rows<T: ArrowNativeType>(x: &Num<T>, y: &Num<T>) -> Option<BooleanBuffer> {
    union(nulls_as_bad(num_nulls(x)), nulls_as_bad(num_nulls(y)))
}

fn int_arithmetic(op: BinaryOp, x: &Num<i64>, y: &Num<i64>, len: usize) -> KernelOutput {
    if let (Num::Scalar(a), Num::Scalar(b)) = (x, y) {
        return match semantics::int_arithmetic(op, *a, *b) {
            Ok(v) => (Data::Int(Num::Scalar(v)), None),
            Err(_) => (Data::Unit, Some(BooleanBuffer::new_set(len))),
        };
    }
    let (xs, ys) = (side(x, len), side(y, len));
    let get = |s: Side<'_, i64>, i: usize| match s {
        Side::Scalar(v) => v,
        Side::Slice(v) => v.get(i).copied().unwrap_or(0),
    };
    let mut values = Vec::with_capacity(len);
    let mut failed = BooleanBufferBuilder::new(len);
    let mut any_failed = false;
    for i in 0..len {
        match semantics::int_arithmetic(op, get(xs, i), get(ys, i)) {
            Ok(v) => {
                values.push(v);
                failed.append(false);
            }
            Err(_) => {
                values.push(0);
                failed.append(true);
                any_failed = true;
            }
        }
    }
    let failed = any_failed.then(|| failed.finish());
    (
        Data::Int(Num::Array(ScalarBuffer::from(values), None)),
        union(failed, null_rows(x, y)),
    )
}

fn float_arithmetic(op: BinaryOp, x: &Num<f64>, y: &Num<f64>, len: usize) -> KernelOutput {
    let f = |a: f64, b: f64| semantics::float_arithmetic(op, a, b).unwrap_or(f64::NAN);
    if let (Num::Scalar(a), Num::Scalar(b)) = (x, y) {
        return (Data::Float(Num::Scalar(f(*a, *b))), None);
    }
    let values: Vec<f64> = match (side(x, len), side(y, len)) {
        (Side::Slice(a), Side::Scalar(b)) => a.iter().map(|&a| f(a, b)).collect(),
        (Side::Scalar(a), Side::Slice(b)) => b.iter().map(|&b| f(a, b)).collect(),
        (Side::Slice(a), Side::Slice(b)) => a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect(),
        (Side::Scalar(a), Side::Scalar(b)) => vec![f(a, b); len],
    };
    if values.len() != len {
        return (Data::Unit, Some(BooleanBuffer::new_set(len)));
    }
    (
        Data::Float(Num::Array(ScalarBuffer::from(values), None)),
        null_rows(x, y),
    )
}

fn negate(a: &Data, len: usize) -> KernelOutput {
    match a {
        Data::Int(Num::Scalar(i)) => match i.checked_neg() {
            Some(v) => (Data::Int(Num::Scalar(v)), None),
            None => (Data::Unit, Some(BooleanBuffer::new_set(len))),
        },
        Data::Int(Num::Array(v, nulls)) => {
            let overflow = BooleanBuffer::collect_bool(v.len(), |i| v[i] == i64::MIN);
            let values: Vec<i64> = v.iter().map(|x| x.wrapping_neg()).collect();
            let overflow = (overflow.count_set_bits() > 0).then_some(overflow);
            (
                Data::Int(Num::Array(ScalarBuffer::from(values), None)),
                union(overflow, nulls_as_bad(nulls.as_ref())),
            )
        }
        Data::Float(Num::Scalar(x)) => (Data::Float(Num::Scalar(-x)), None),
        Data::Float(Num::Array(v, nulls)) => {
            let values: Vec<f64> = v.iter().map(|x| -x).collect();
            (
                Data::Float(Num::Array(ScalarBuffer::from(values), None)),
                nulls_as_bad(nulls.as_ref()),
            )
        }
        _ => (Data::Unit, Some(BooleanBuffer::new_set(len))),
    }
}

fn time_part(f: TimeFn, a: &Data, len: usize) -> KernelOutput {
    match a {
        Data::Unit => (Data::Unit, None),
        Data::Int(Num::Scalar(us)) => (
            Data::Int(Num::Scalar(semantics::time_of_micros(f, *us))),
            None,
        ),
        Data::Int(Num::Array(v, nulls)) => {
            let values: Vec<i64> = match f {
                TimeFn::Hour => v
                    .iter()
                    .map(|&us| semantics::time_of_micros(TimeFn::Hour, us))
                    .collect(),
                TimeFn::Minute => v
                    .iter()
                    .map(|&us| semantics::time_of_micros(TimeFn::Minute, us))
                    .collect(),
                TimeFn::DayOfWeek => v
                    .iter()
                    .map(|&us| semantics::time_of_micros(TimeFn::DayOfWeek, us))
                    .collect(),
            };
            (
                Data::Int(Num::Array(ScalarBuffer::from(values), nulls.clone())),
                None,
            )
        }
        Data::Str(Strs::Scalar(s)) => match semantics::parse_rfc3339_micros(s) {
            Some(us) => (
                Data::Int(Num::Scalar(semantics::time_of_micros(f, us))),
                None,
            ),
            None => (Data::Unit, None),
        },
        Data::Str(Strs::Array(s)) => {
            let parsed: Int64Array = s
                .iter()
                .map(|v| {
                    v.and_then(semantics::parse_rfc3339_micros)
                        .map(|us| semantics::time_of_micros(f, us))
                })
                .collect();
            let nulls = real_nulls(parsed.nulls());
            (Data::Int(Num::Array(parsed.values().clone(), nulls)), None)
        }
        _ => (Data::Unit, Some(BooleanBuffer::new_set(len))),
    }
}

fn lookup_rows(table: &EnrichmentTable, key: &Data, len: usize) -> KernelOutput {
    let broadcast = |row: Option<u32>| match row {
        Some(r) => UInt32Array::from(vec![r; len]),
        None => UInt32Array::new_null(len),
    };
    match key {
        Data::Unit => (Data::Rows(UInt32Array::new_null(len)), None),
        Data::Str(Strs::Array(a)) => (Data::Rows(table.lookup_rows(a)), None),
        Data::Str(Strs::Scalar(s)) => (Data::Rows(broadcast(table.lookup_row(s))), None),
        Data::Int(Num::Scalar(i)) => (
            Data::Rows(broadcast(table.lookup_row(&i.to_string()))),
            None,
        ),
        Data::Int(Num::Array(v, nulls)) => {
            let ints = Int64Array::new(v.clone(), nulls.clone());
            match table.lookup_array(&ints) {
                Ok(rows) => (Data::Rows(rows), None),
                Err(_) => (
                    Data::Rows(UInt32Array::new_null(len)),
                    Some(BooleanBuffer::new_set(len)),
                ),
            }
        }
        _ => (
            Data::Rows(UInt32Array::new_null(len)),
            Some(BooleanBuffer::new_set(len)),
        ),
    }
}
