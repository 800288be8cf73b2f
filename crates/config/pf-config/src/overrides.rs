//! Values set from outside the file: a CLI flag bound to a key, or `--set key=value`.
//!
//! Overrides are set on the configuration's document and the result is read again as a
//! [`Config`](crate::Config), so a flag and the key it stands for go through the same
//! deserialization and validation, and an error names both.

use serde_norway::{Mapping, Value};

use pf_error::PfError;

/// One value set outside the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The dotted key path, e.g. `worker.threads`.
    pub key: String,
    /// The value(s) as typed.
    pub values: Vec<String>,
    /// How the values make the key's value.
    pub form: ValueForm,
    /// Where it came from, for error messages: `--threads` or `--set worker.threads`.
    pub source: String,
}

/// How an [`Override`]'s values make a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    /// One scalar, typed by its key: `4` may set a number, `true` a flag, anything may
    /// set a string (`[x]`, `null` or `0123` included, kept as written). For flags.
    Scalar,
    /// A list of such scalars, however many were given. For repeatable flags.
    List,
    /// YAML text: `[a, b]` is a list, `null` unsets. For `--set`.
    Yaml,
}

impl Override {
    /// `key` set to the scalar `value` by `source`.
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Override {
            key: key.into(),
            values: vec![value.into()],
            form: ValueForm::Scalar,
            source: source.into(),
        }
    }

    /// Parses `--set key.path=value`.
    pub fn parse_set(text: &str) -> Result<Self, PfError> {
        let (key, value) = text.split_once('=').ok_or_else(|| {
            PfError::config(
                "--set",
                format!("`{text}` is not key.path=value (e.g. --set worker.threads=4)"),
            )
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(PfError::config(
                "--set",
                format!("`{key}` is not a dotted key path such as worker.threads"),
            ));
        }
        Ok(Override {
            form: ValueForm::Yaml,
            ..Override::new(key, value, format!("--set {key}"))
        })
    }

    /// The YAML value (see [`ValueForm`]).
    fn value(&self) -> Value {
        match (self.form, self.values.as_slice()) {
            (ValueForm::Yaml, [one]) => {
                serde_norway::from_str(one).unwrap_or_else(|_| Value::String(one.clone()))
            }
            (ValueForm::Scalar, [one]) => scalar(one),
            (_, many) => Value::Sequence(many.iter().map(|v| scalar(v)).collect()),
        }
    }

    /// Sets this override in `document`, creating mappings along the way.
    pub(crate) fn apply(&self, document: &mut Value) -> Result<(), PfError> {
        let mut node = document;
        let parts: Vec<&str> = self.key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(map) = node else {
                return Err(PfError::config(
                    parts[..i].join("."),
                    format!(
                        "is not a mapping, so {} cannot set `{}`",
                        self.source, self.key
                    ),
                ));
            };
            let key = Value::String((*part).to_owned());
            if i + 1 == parts.len() {
                map.insert(key, self.value());
                return Ok(());
            }
            node = map.entry(key).or_insert(Value::Null);
        }
        Ok(())
    }
}

/// `text` as a number or boolean when YAML reads it so and writes it back with the same
/// spelling (`4`, `true`), so the key's type decides what it becomes; anything else is a
/// string, kept as written.
fn scalar(text: &str) -> Value {
    match serde_norway::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_)))
            if serde_norway::to_string(&v).is_ok_and(|t| t.trim_end() == text) =>
        {
            v
        }
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_spelling() {
        let mut doc = Value::Null;
        for (k, v) in [
            ("a.n", "4"),
            ("a.s", "0123"),
            ("a.b", "true"),
            ("a.p", "[Summer24]"),
            ("a.z", "null"),
        ] {
            Override::new(k, v, "--flag").apply(&mut doc).unwrap();
        }
        Override::parse_set("a.l=[x, y]")
            .unwrap()
            .apply(&mut doc)
            .unwrap();
        let text = serde_norway::to_string(&doc).unwrap();
        // A flag's value is never read as YAML structure (`p`: a password stays a string);
        // `--set` takes YAML (`l`).
        for part in [
            "n: 4",
            "s: '0123'",
            "b: true",
            "p: '[Summer24]'",
            "z: 'null'",
            "- x",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

    #[test]
    fn bad_set_syntax_and_scalar_parents_are_errors() {
        assert!(Override::parse_set("worker.threads").is_err());
        assert!(Override::parse_set("worker..threads=1").is_err());
        let mut doc: Value = serde_norway::from_str("worker: 3").unwrap();
        let err = Override::new("worker.threads", "2", "--threads")
            .apply(&mut doc)
            .unwrap_err();
        assert!(err.to_string().contains("--threads"), "{err}");
    }
}
