//! Which line of a YAML file a key path was written on, so an error found long after
//! parsing (a table file that does not exist, an unreachable endpoint) can still point
//! at `worker.yaml:14`.
//!
//! Block-style YAML (the style of every shipped configuration) is indexed line by line;
//! keys inside flow collections (`{a: 1}`, `[x, y]`) are attributed to the line of the
//! key that holds the collection.

use std::collections::HashMap;

/// Key path (`transform.tables[0].path`, as serde_path_to_error writes it) → 1-based line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines(HashMap<String, usize>);

/// One open mapping key or sequence item, by its column.
struct Frame {
    indent: usize,
    path: String,
    /// Items seen so far when this frame holds a sequence.
    items: usize,
    /// A sequence item (`- `) rather than a mapping key.
    is_item: bool,
}

impl KeyLines {
    /// Indexes `text`.
    pub fn index(text: &str) -> Self {
        let mut lines = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let content = raw.trim_start();
            if content.is_empty() || content.starts_with('#') || content.starts_with("---") {
                continue;
            }
            let mut col = raw.len() - content.len();
            let mut rest = content;
            while rest == "-" || rest.starts_with("- ") {
                // A sequence item: its parent is the nearest shallower frame, or a key at
                // the same column (YAML lets `key:` and its `- ` items share a column).
                while let Some(top) = stack.last() {
                    if top.indent > col || (top.indent == col && top.is_item) {
                        stack.pop();
                    } else {
                        break;
                    }
                }
                let (parent, index) = match stack.last_mut() {
                    Some(top) => {
                        top.items += 1;
                        (top.path.clone(), top.items - 1)
                    }
                    None => (String::new(), 0),
                };
                let path = format!("{parent}[{index}]");
                lines.entry(path.clone()).or_insert(line_no);
                stack.push(Frame {
                    indent: col,
                    path,
                    items: 0,
                    is_item: true,
                });
                let after = rest[1..].trim_start();
                col += rest.len() - after.len();
                rest = after;
            }
            let Some(key) = mapping_key(rest) else {
                continue;
            };
            while stack.last().is_some_and(|top| top.indent >= col) {
                stack.pop();
            }
            let path = match stack.last() {
                Some(top) => format!("{}.{key}", top.path),
                None => key.to_owned(),
            };
            lines.entry(path.clone()).or_insert(line_no);
            stack.push(Frame {
                indent: col,
                path,
                items: 0,
                is_item: false,
            });
        }
        KeyLines(lines)
    }

    /// The line of `key`, or of its nearest enclosing key that was written on a line of
    /// its own (`endpoints[1]` of `endpoints: [a, b]` is the line of `endpoints`).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.0.get(key) {
                return Some(*line);
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }
}

/// The key of a `key: value` or `key:` line, unquoted; `None` for anything else.
fn mapping_key(text: &str) -> Option<&str> {
    let (key, after) = if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted.find('"')?;
        (&quoted[..end], &quoted[end + 1..])
    } else if let Some(quoted) = text.strip_prefix('\'') {
        let end = quoted.find('\'')?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        if text.starts_with(['{', '[', '&', '*', '!', '|', '>']) {
            return None;
        }
        let end = text
            .find(": ")
            .or_else(|| text.strip_suffix(':').map(str::len))?;
        let key = &text[..end];
        (key, &text[end..])
    };
    (after.starts_with(':') && !key.is_empty()).then_some(key.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_yaml_keys_and_items_get_their_lines() {
        let text = "\
# comment
worker:
  threads: 2

transform:
  rules: fraud.yaml
  tables:
    - name: geo
      path: /nonexistent/geo.csv
    - name: users
      key: id
indexer:
  elasticsearch:
    endpoints: [http://a:9200, http://b:9200]
queue:
  sqs:
    queue_url: \"http://q\"
list:
- a: 1
  b: 2
- a: 3
";
        assert_lines(
            text,
            &[
                ("worker", Some(2)),
                ("worker.threads", Some(3)),
                ("transform.rules", Some(6)),
                ("transform.tables[0]", Some(8)),
                ("transform.tables[0].path", Some(9)),
                ("transform.tables[1].key", Some(11)),
                ("indexer.elasticsearch.endpoints[1]", Some(14)),
                ("queue.sqs.queue_url", Some(17)),
                ("list[0].b", Some(20)),
                ("list[1].a", Some(21)),
                // Not written at all: the nearest enclosing key that was.
                ("transform.tables[0].format", Some(8)),
                ("reader.batch_size", None),
            ],
        );
    }

    #[test]
    fn values_with_colons_and_quoted_keys() {
        assert_lines(
            "a:\n  url: \"redis://h:1\"\n  'q k': x\n  t: 'a: b'\n",
            &[("a.url", Some(2)), ("a.q k", Some(3)), ("a.t", Some(4))],
        );
    }

    /// Each `(key, line)`: indexing `text` puts `key` at `line`.
    fn assert_lines(text: &str, expected: &[(&str, Option<usize>)]) {
        let k = KeyLines::index(text);
        for &(key, line) in expected {
            assert_eq!(k.line_of(key), line, "{key}");
        }
    }
}
