//! The rule file: what operators write in `config/rules/*.yaml`.

use std::path::Path;

use pf_error::{PfError, Result};
use pf_types::Severity;
use serde::{Deserialize, Serialize};

/// Longest window accepted, in seconds (366 days): longer ones are almost certainly a
/// unit mistake, and their state would not fit any sensible memory budget.
pub const MAX_WINDOW_SECONDS: u64 = 366 * 86_400;

/// A fraud rule file.
///
/// ```yaml
/// threshold: 50            # is_fraud = fraud_score >= threshold
/// rules:
///   - name: high_value
///     condition: "amount > 10000.0"
///     severity: high
///     score: 50
///   - name: rapid_activity
///     window: { key: account_id, time: timestamp, seconds: 60, min_count: 5 }
///     severity: medium
///     score: 30
/// ```
///
/// Unknown keys are errors (a misspelt `enabeld: false` must not leave a rule on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// `threshold`: a record is fraud when its `fraud_score` (the sum of the scores of
    /// the rules it fired) is at least this. Default 50.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `rules`: evaluated in this order; the order of names in `fraud_rules` and the
    /// rule index given to [`crate::ConditionFallback::eval`] follow it (disabled rules
    /// included).
    pub rules: Vec<RuleSpec>,
}

fn default_threshold() -> f64 {
    50.0
}

fn yes() -> bool {
    true
}

/// One rule: a per-record `condition` or a stateful `window`, never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `name`: unique; letters, digits, `_`, `-` and `.` only, since it is joined with
    /// `,` in `fraud_rules` and with `|` in alert keys.
    pub name: String,
    /// `description`: free text for people; not used by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `condition`: a Rhai expression over the record's fields (fields are variables,
    /// also reachable as `record.field`) that yields a bool. See [`crate::expr`] for
    /// the part the engine vectorizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `window`: a sliding-window count rule instead of a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// `severity`: `low`, `medium` or `high`; copied to the rule's alerts.
    pub severity: Severity,
    /// `score`: added to the record's `fraud_score` when the rule fires (any finite
    /// number; a negative score lowers it).
    pub score: f64,
    /// `enabled`: a disabled rule is neither compiled nor evaluated. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `window`: fires for a record when its key has at least `min_count` events (this one
/// included) with times in `[t - seconds, t]`, `t` being the record's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `key`: the field grouping events (e.g. `account_id`); read as text.
    pub key: String,
    /// `time`: the event time field (a timestamp, i64 µs, or RFC 3339 text).
    pub time: String,
    /// `seconds`: the window length (inclusive at both ends), 1 to [`MAX_WINDOW_SECONDS`].
    pub seconds: u64,
    /// `min_count`: events needed in the window, at least 1.
    pub min_count: u32,
}

impl WindowSpec {
    /// The window length in microseconds.
    pub fn micros(&self) -> i64 {
        // Validation caps `seconds`, so this cannot overflow for a validated spec.
        i64::try_from(self.seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000)
    }
}

/// What a rule evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind<'a> {
    /// A per-record condition.
    Condition(&'a str),
    /// A sliding-window count.
    Window(&'a WindowSpec),
}

impl RuleSpec {
    /// The condition or window of a validated rule (`None` if it has neither or both).
    pub fn kind(&self) -> Option<RuleKind<'_>> {
        match (&self.condition, &self.window) {
            (Some(c), None) => Some(RuleKind::Condition(c)),
            (None, Some(w)) => Some(RuleKind::Window(w)),
            _ => None,
        }
    }
}

/// Key prefix of rule `index` in error messages: by name when it has a usable one.
fn rule_key(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("rules.{n}"),
        _ => format!("rules[{index}]"),
    }
}

impl RuleFile {
    /// Reads and validates the rule file at `path`.
    pub fn load(path: &Path) -> Result<RuleFile> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PfError::io(&location, e))?;
        Self::from_yaml(&text, &location)
    }

    /// Parses and validates rule-file text; `origin` (a path) prefixes error messages.
    ///
    /// Errors are [`PfError::Config`] whose key names the rule and field
    /// (`rules.high_value.severity`, or `rules[3].score` for a rule without a name).
    pub fn from_yaml(text: &str, origin: &str) -> Result<RuleFile> {
        // Syntax first: a syntax error late in the file otherwise surfaces as a confusing
        // type error on an earlier key.
        let doc: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| PfError::config("rules", format!("{origin}: {e}")))?;
        let deserializer = serde_norway::Deserializer::from_str(text);
        let file: RuleFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            PfError::config(readable_path(&path, &doc), format!("{origin}: {inner}"))
        })?;
        file.validate().map_err(|e| match e {
            PfError::Config { key, message } => {
                PfError::config(key, format!("{origin}: {message}"))
            }
            other => other,
        })?;
        Ok(file)
    }

    /// Checks what serde cannot: unique valid names, exactly one of `condition` and
    /// `window`, sane numbers.
    pub fn validate(&self) -> Result<()> {
        if !self.threshold.is_finite() {
            return Err(PfError::config("threshold", "must be a finite number"));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let key = rule_key(i, Some(&rule.name));
            let field = |f: &str| format!("{key}.{f}");
            if rule.name.is_empty() {
                return Err(PfError::config(field("name"), "a rule needs a name"));
            }
            if let Some(bad) = rule
                .name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            {
                return Err(PfError::config(
                    field("name"),
                    format!(
                        "rule name `{}` contains {bad:?}; use letters, digits, `_`, `-`, `.`",
                        rule.name
                    ),
                ));
            }
            if self.rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(PfError::config(
                    field("name"),
                    format!("rule name `{}` is used more than once", rule.name),
                ));
            }
            if !rule.score.is_finite() {
                return Err(PfError::config(field("score"), "must be a finite number"));
            }
            match (&rule.condition, &rule.window) {
                (None, None) => {
                    return Err(PfError::config(
                        key,
                        "a rule needs either `condition` or `window`",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(PfError::config(
                        key,
                        "a rule has either `condition` or `window`, not both",
                    ));
                }
                (Some(c), None) if c.trim().is_empty() => {
                    return Err(PfError::config(field("condition"), "must not be empty"));
                }
                (Some(_), None) => {}
                (None, Some(w)) => {
                    if w.key.is_empty() {
                        return Err(PfError::config(field("window.key"), "must name a field"));
                    }
                    if w.time.is_empty() {
                        return Err(PfError::config(field("window.time"), "must name a field"));
                    }
                    if !(1..=MAX_WINDOW_SECONDS).contains(&w.seconds) {
                        return Err(PfError::config(
                            field("window.seconds"),
                            format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
                        ));
                    }
                    if w.min_count == 0 {
                        return Err(PfError::config(
                            field("window.min_count"),
                            "must be at least 1",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `rules[1].severity` → `rules.high_value.severity` when rule 1 has a name.
fn readable_path(path: &str, doc: &serde_norway::Value) -> String {
    if path == "." {
        // The document itself (e.g. a missing `rules` key).
        return "rules".to_owned();
    }
    let Some(rest) = path.strip_prefix("rules[") else {
        return path.to_owned();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_owned();
    };
    let Ok(index) = index.parse::<usize>() else {
        return path.to_owned();
    };
    let name = doc
        .get("rules")
        .and_then(|r| r.get(index))
        .and_then(|r| r.get("name"))
        .and_then(|n| n.as_str());
    format!("{}{tail}", rule_key(index, name))
}
