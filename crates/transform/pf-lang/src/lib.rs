//! The rule language's one front end, shared by the vectorized rules and the Rhai script
//! stage: Rhai's own parser and syntax tree, read in two ways.
//!
//! * [`condition`] turns a rule condition into the vectorizable [`condition::Expr`]
//!   subset (or says why it is outside it);
//! * [`analysis`] tells what a compiled script or condition refers to: the record fields
//!   it reads, the enrichment tables it names, the functions it calls;
//! * [`semantics`] is the one statement of what a record field is as a value (the Arrow
//!   → value mapping both evaluators read columns with) and of what every operator does
//!   on values, which the vectorized kernels and the Rhai engine are tested against.
//!
//! The vectorized compiler lives in `pf-rules`, the per-record evaluator in
//! `pf-transform`; both read the language through this crate.

pub mod analysis;
pub mod condition;
pub mod semantics;

pub use analysis::{Analysis, TableUse};
pub use condition::{Expr, ExprKind, ParseError, ParseErrorKind, Position, parse};
