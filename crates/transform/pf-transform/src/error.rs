//! Turning Rhai errors into messages with a script position.

use rhai::{EvalAltResult, ParseError, Position};

/// A Rhai runtime error as (line, column, message without the position suffix).
///
/// Errors inside script functions arrive wrapped once per call level
/// (`ErrorInFunctionCall`); the innermost error is the one the user must fix, and its
/// position is where it happened. When it has none (an error raised by native code
/// with no call site), the nearest enclosing position is used.
pub(crate) fn describe_eval(err: Box<EvalAltResult>) -> (Option<(usize, usize)>, String) {
    let mut err = err;
    let mut fallback = Position::NONE;
    loop {
        match *err {
            EvalAltResult::ErrorInFunctionCall(_, _, inner, pos) => {
                if !pos.is_none() {
                    fallback = pos;
                }
                err = inner;
            }
            mut other => {
                let mut pos = other.take_position();
                if pos.is_none() {
                    pos = fallback;
                }
                return (line_col(pos), other.to_string());
            }
        }
    }
}

/// A parse error as (line, column, message without the position suffix).
pub(crate) fn describe_parse(err: &ParseError) -> (Option<(usize, usize)>, String) {
    (line_col(err.1), err.0.to_string())
}

fn line_col(pos: Position) -> Option<(usize, usize)> {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => Some((l, c)),
        (Some(l), None) => Some((l, 1)),
        _ => None,
    }
}

/// `line L, column C: message`, with the start of the text when Rhai gave no position.
pub(crate) fn at(pos: Option<(usize, usize)>, message: &str) -> String {
    let (l, c) = pos.unwrap_or((1, 1));
    format!("line {l}, column {c}: {message}")
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
