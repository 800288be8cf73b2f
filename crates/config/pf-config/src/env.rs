//! `${VAR}` / `${VAR:-default}` substitution on the raw configuration text.

use pf_error::PfError;

/// Replaces environment references in `text`, looking variables up with `env`.
///
/// * `${VAR}` — the value of `VAR`; an error if `VAR` is unset (an empty value is kept).
/// * `${VAR:-default}` — `default` when `VAR` is unset *or empty*, as in the shell.
/// * `$$` — a literal `$`.
/// * A `$` not followed by `{` or `$` is kept as is.
///
/// `VAR` must match `[A-Za-z_][A-Za-z0-9_]*`. A reference must close on the line it
/// opens on, and defaults cannot nest further references.
///
/// Lines whose first non-blank character is `#` are copied unchanged: commenting out a
/// key must not make its variable mandatory, and comments may document the syntax.
/// Values are inserted verbatim, so a value containing YAML syntax (`: `, ` #`, a
/// leading `*` or `&`, a newline) changes the document's structure; quote such
/// placeholders in the YAML file.
///
/// Errors are [`PfError::Config`] with key `env.VAR` for an unset variable and `env`
/// for malformed references; the message carries the 1-based line number.
pub fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, PfError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            substitute_line(line, index + 1, env, &mut out)?;
        }
    }
    Ok(out)
}

fn substitute_line(
    line: &str,
    line_no: usize,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), PfError> {
    let mut rest = line;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(close) = tail.find('}') else {
                return Err(PfError::config(
                    "env",
                    format!(
                        "unterminated `${{` (line {line_no}); expected ${{VAR}} or ${{VAR:-default}} \
                         closed on the same line (write $$ for a literal $)"
                    ),
                ));
            };
            out.push_str(&resolve(&tail[..close], line_no, env)?);
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

/// The value of one `${…}` expression (the text between the braces).
fn resolve(
    expr: &str,
    line_no: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PfError> {
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expr, None),
    };
    if !is_valid_name(name) {
        return Err(PfError::config(
            "env",
            format!(
                "invalid reference `${{{expr}}}` (line {line_no}); expected ${{VAR}} or \
                 ${{VAR:-default}} where VAR is letters, digits and underscores, not starting \
                 with a digit"
            ),
        ));
    }
    if let Some(default) = default
        && default.contains("${")
    {
        return Err(PfError::config(
            format!("env.{name}"),
            format!("nested `${{` in the default of ${{{name}}} (line {line_no}) is not supported"),
        ));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(PfError::config(
            format!("env.{name}"),
            format!(
                "environment variable {name} is not set (line {line_no}); use ${{{name}:-default}} for a default"
            ),
        )),
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::config_err;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("es.internal".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(text: &str) -> Result<String, PfError> {
        substitute_env(text, &env)
    }

    #[test]
    fn references_dollars_and_comments_are_substituted() {
        for (text, expected) in [
            // A set variable.
            (
                "url: http://${HOST}:9200\n",
                "url: http://es.internal:9200\n",
            ),
            ("a: ${HOST:-fallback}", "a: es.internal"),
            // The default applies when unset or empty.
            ("a: ${MISSING:-5}", "a: 5"),
            ("a: ${EMPTY:-5}", "a: 5"),
            ("a: ${MISSING:-}", "a: "),
            ("a: ${MISSING:-x:-y}", "a: x:-y"),
            // An empty value without a default is kept empty.
            ("a: ${EMPTY}", "a: "),
            // Dollars.
            ("p: a$$b", "p: a$b"),
            ("p: $$${HOST}", "p: $es.internal"),
            ("p: $$$${X}", "p: $${X}"),
            ("p: 5$ and $x $", "p: 5$ and $x $"),
            // Comment lines are left alone.
            (
                "# use ${ES_URL} here, $$ stays\n  # password: ${PW}\na: ${HOST} # ${HOST}\n",
                "# use ${ES_URL} here, $$ stays\n  # password: ${PW}\na: es.internal # es.internal\n",
            ),
            // Non-ASCII text is preserved.
            ("név: ${HOST} – ünïcode $", "név: es.internal – ünïcode $"),
        ] {
            assert_eq!(sub(text).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn unset_without_default_names_variable_and_line() {
        let (key, message) = config_err(sub("a: 1\nb: 2\nc: ${ES_URL}\n"));
        assert_eq!(key, "env.ES_URL");
        assert_eq!(
            message,
            "environment variable ES_URL is not set (line 3); use ${ES_URL:-default} for a default"
        );
    }

    #[test]
    fn unterminated_reference_is_an_error_with_line() {
        let (key, message) = config_err(sub("a: 1\nb: ${HOST\nc: }\n"));
        assert_eq!(key, "env");
        assert!(
            message.starts_with("unterminated `${` (line 2)"),
            "{message}"
        );
    }

    #[test]
    fn invalid_names_are_errors() {
        for text in ["${}", "${1A}", "${A-B}", "${A:?err}", "${ A}", "${:-x}"] {
            let (key, message) = config_err(sub(text));
            assert_eq!(key, "env", "{text}");
            assert!(message.contains("(line 1)"), "{message}");
        }
        let (key, _) = config_err(sub("${A:-${B}}"));
        assert_eq!(key, "env.A");
    }
}
