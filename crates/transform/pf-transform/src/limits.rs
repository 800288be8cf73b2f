//! The sandbox limits applied to every script and condition.

use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

/// Resource limits of the Rhai sandbox, applied per evaluation (one record of a transform,
/// one condition of one record). Exceeding one is a record-level failure.
///
/// Every limit must be positive: Rhai reads 0 as "unlimited", which would let one bad
/// record hang a pipeline thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Rhai operations (roughly: expression nodes evaluated) per evaluation; stops
    /// infinite loops. Default 100,000, about a millisecond of work.
    pub max_operations: u64,
    /// Nesting of function calls; stops runaway recursion before the native stack
    /// overflows. Default 32.
    pub max_call_levels: usize,
    /// Nesting of expressions at the top level of a script. Default 64.
    pub max_expr_depth: usize,
    /// Nesting of expressions inside functions. Default 32.
    pub max_function_expr_depth: usize,
    /// Length of any string a script builds, in bytes. Default 1 MiB.
    pub max_string_size: usize,
    /// Elements of any array a script builds. Default 10,000.
    pub max_array_size: usize,
    /// Entries of any object map a script builds. Default 10,000.
    pub max_map_size: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
        }
    }
}

impl ScriptLimits {
    /// Rejects zero limits, naming the key under `transform.limits`.
    pub fn validate(&self) -> Result<()> {
        let checks: [(&str, u64); 7] = [
            ("max_operations", self.max_operations),
            ("max_call_levels", self.max_call_levels as u64),
            ("max_expr_depth", self.max_expr_depth as u64),
            (
                "max_function_expr_depth",
                self.max_function_expr_depth as u64,
            ),
            ("max_string_size", self.max_string_size as u64),
            ("max_array_size", self.max_array_size as u64),
            ("max_map_size", self.max_map_size as u64),
        ];
        for (name, value) in checks {
            if value == 0 {
                return Err(PfError::config(
                    format!("transform.limits.{name}"),
                    "must be positive (0 would mean unlimited)",
                ));
            }
        }
        Ok(())
    }
}
