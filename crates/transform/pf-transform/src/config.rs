//! `transform`: the one declaration of the transform stage's settings.

use std::path::{Path, PathBuf};

use pf_enrichment::TableConfig;
use pf_error::{PfError, Result};
use serde::{Deserialize, Serialize};

use crate::ScriptLimits;

/// `transform`: what every record passes through between reading and indexing. Relative
/// paths are resolved against the directory of the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformConfig {
    /// `script`: a Rhai script defining `fn transform(record)`, which returns the record
    /// (possibly changed) or `()` to drop it. Default `null`: records pass through
    /// unchanged.
    pub script: Option<PathBuf>,
    /// `rules`: fraud rules YAML (see `config/rules/fraud.yaml`). Default `null`: no
    /// fraud scoring.
    pub rules: Option<PathBuf>,
    /// `max_operations`: Rhai operations allowed per record before the record fails
    /// (stops runaway loops). Default `100000`.
    pub max_operations: u64,
    /// `watch`: reload rules and tables when their files change (SIGHUP always reloads).
    /// Default `false`.
    pub watch: bool,
    /// `tables`: enrichment tables, loaded once and shared by every thread. Default `[]`.
    pub tables: Vec<TableConfig>,
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            script: None,
            rules: None,
            max_operations: 100_000,
            watch: false,
            tables: Vec::new(),
        }
    }
}

impl TransformConfig {
    /// Every file the stage reads: what `watch` mode polls for changes.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.script.iter().chain(&self.rules).cloned().collect();
        files.extend(self.tables.iter().map(|t| t.path.clone()));
        files
    }

    /// The sandbox limits of the script engine.
    pub fn limits(&self) -> ScriptLimits {
        ScriptLimits {
            max_operations: self.max_operations,
            ..ScriptLimits::default()
        }
    }

    /// Makes relative paths (script, rules, tables) relative to `base`, so a
    /// configuration file works from any working directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.script.iter_mut().for_each(resolve);
        self.rules.iter_mut().for_each(resolve);
        self.tables.iter_mut().for_each(|t| resolve(&mut t.path));
    }

    /// Checks what needs no file; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.max_operations == 0 {
            return Err(PfError::config(
                "transform.max_operations",
                "must be at least 1",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, table) in self.tables.iter().enumerate() {
            if table.name.trim().is_empty() {
                return Err(PfError::config(
                    format!("transform.tables[{i}].name"),
                    "must not be empty",
                ));
            }
            if !names.insert(table.name.as_str()) {
                return Err(PfError::config(
                    format!("transform.tables[{i}].name"),
                    format!("duplicate table name `{}`", table.name),
                ));
            }
            if table.key.trim().is_empty() {
                return Err(PfError::config(
                    format!("transform.tables[{i}].key"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}
