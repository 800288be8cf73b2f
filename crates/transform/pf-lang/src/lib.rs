//! The rule language's one front end, shared by the vectorized rules and the Rhai script
//! stage: Rhai's own parser and syntax tree, read in two ways.
//!
//! * [`condition`] turns a rule condition into the vectorizable [`condition::Expr`]
//!   subset (or says why it is outside it);
//! * [`analysis`] tells what a compiled script or condition refers to: the record fields
//!   it reads, the enrichment tables it names, the functions it calls.
//!
//! Nothing here evaluates anything: the vectorized compiler lives in `pf-rules`, the
//! per-record evaluator in `pf-transform`.

pub mod analysis;
pub mod condition;

pub use analysis::{Analysis, TableUse};
pub use condition::{Expr, ExprKind, ParseError, ParseErrorKind, Position, parse};
