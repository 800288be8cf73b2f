//! The parsed forms of `indexer.elasticsearch`: index names, credentials, set-up.

use pf_error::{PfError, Result};
use pf_traits::BulkLimits;
use pf_types::{Backoff, Secret};

use crate::config::ElasticsearchConfig;

/// A target index name, fixed or formatted from a record's time.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexName {
    /// Every document goes to this index (or alias / data stream).
    Fixed(String),
    /// `transactions-{yyyy.MM.dd}`: one index per period of the record's time.
    Template(IndexTemplate),
}

impl IndexName {
    /// A fixed name, or a template when `pattern` holds `{…}`; `time_field` names the
    /// column the template's date comes from.
    pub fn parse(pattern: &str, time_field: &str) -> Result<Self> {
        if pattern.contains('{') {
            return Ok(IndexName::Template(IndexTemplate::parse(
                pattern, time_field,
            )?));
        }
        check_index_chars(pattern, pattern)?;
        Ok(IndexName::Fixed(pattern.to_owned()))
    }

    /// The name with any template shown as written, for logs and index patterns.
    pub fn pattern(&self) -> &str {
        match self {
            IndexName::Fixed(n) => n,
            IndexName::Template(t) => &t.pattern,
        }
    }

    /// The wildcard matching every index this name produces (`transactions-*`).
    pub fn wildcard(&self) -> String {
        match self {
            IndexName::Fixed(n) => n.clone(),
            IndexName::Template(t) => format!("{}*{}", t.prefix, t.suffix),
        }
    }
}

/// Index names are lower-case and exclude these (Elasticsearch's rules), so a typo
/// fails at start-up rather than on every document.
fn check_index_chars(name: &str, pattern: &str) -> Result<()> {
    const BAD: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];
    if name.contains(BAD)
        || name.chars().any(|c| c.is_uppercase())
        || name.starts_with(['-', '_', '+'])
    {
        return Err(PfError::config(
            "indexer.elasticsearch.index",
            format!(
                "`{pattern}` is not a valid index name: lower case, no \\ / * ? \" < > | space , # :, not starting with - _ +"
            ),
        ));
    }
    Ok(())
}

/// One element of a date pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Year,
    Month,
    Day,
    Hour,
    Literal(char),
}

/// `prefix{pattern}suffix` with `yyyy`, `MM`, `dd`, `HH` in the pattern (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexTemplate {
    /// The template as written.
    pub pattern: String,
    /// The column holding each record's time.
    pub time_field: String,
    prefix: String,
    tokens: Vec<Token>,
    suffix: String,
}

impl IndexTemplate {
    /// Parses `transactions-{yyyy.MM.dd}`-style names.
    pub fn parse(pattern: &str, time_field: &str) -> Result<Self> {
        let err =
            |m: &str| PfError::config("indexer.elasticsearch.index", format!("`{pattern}`: {m}"));
        let (prefix, rest) = pattern.split_once('{').ok_or_else(|| err("no `{`"))?;
        let (inner, suffix) = rest
            .split_once('}')
            .ok_or_else(|| err("`{` without a closing `}`"))?;
        if suffix.contains(['{', '}']) {
            return Err(err("only one `{…}` date pattern is supported"));
        }
        let mut tokens = Vec::new();
        let mut s = inner;
        while !s.is_empty() {
            let (tok, len) = if s.starts_with("yyyy") {
                (Token::Year, 4)
            } else if s.starts_with("MM") {
                (Token::Month, 2)
            } else if s.starts_with("dd") {
                (Token::Day, 2)
            } else if s.starts_with("HH") {
                (Token::Hour, 2)
            } else {
                let c = s.chars().next().unwrap_or('.');
                if c.is_ascii_alphanumeric() {
                    return Err(err(&format!(
                        "unknown date field at `{s}`; use yyyy, MM, dd, HH and separators"
                    )));
                }
                (Token::Literal(c), c.len_utf8())
            };
            tokens.push(tok);
            s = &s[len..];
        }
        if tokens.is_empty() {
            return Err(err("empty date pattern"));
        }
        if time_field.trim().is_empty() {
            return Err(PfError::config(
                "indexer.elasticsearch.index_time_field",
                "must name the column holding each record's time",
            ));
        }
        let t = IndexTemplate {
            pattern: pattern.to_owned(),
            time_field: time_field.to_owned(),
            prefix: prefix.to_owned(),
            tokens,
            suffix: suffix.to_owned(),
        };
        check_index_chars(&t.render(0), pattern)?;
        Ok(t)
    }

    /// Length of the period one index covers: an hour when the pattern has `HH`.
    pub(crate) fn bucket_secs(&self) -> i64 {
        if self.tokens.contains(&Token::Hour) {
            3600
        } else {
            86_400
        }
    }

    /// The index name for a record at `secs` since the epoch (UTC).
    pub fn render(&self, secs: i64) -> String {
        let (y, m, d) = pf_doc_json::json::civil_from_days(secs.div_euclid(86_400));
        let h = secs.rem_euclid(86_400) / 3600;
        let mut out = self.prefix.clone();
        for t in &self.tokens {
            match t {
                Token::Year => out.push_str(&format!("{y:04}")),
                Token::Month => out.push_str(&format!("{m:02}")),
                Token::Day => out.push_str(&format!("{d:02}")),
                Token::Hour => out.push_str(&format!("{h:02}")),
                Token::Literal(c) => out.push(*c),
            }
        }
        out.push_str(&self.suffix);
        out
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EsAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: ApiKey <base64 id:key>`.
    ApiKey(Secret),
}

/// Optional start-up set-up of the target index (`--es-setup`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexSetup {
    /// The `mappings` object; `None` lets Elasticsearch map dynamically.
    pub mappings: Option<serde_json::Value>,
    /// The `settings` object (shards, replicas, refresh interval).
    pub settings: Option<serde_json::Value>,
}

/// `indexer.elasticsearch` parsed once at start-up, with the shared bulk limits.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The configuration as written.
    pub config: ElasticsearchConfig,
    /// `index`, parsed.
    pub index: IndexName,
    /// The index fraud alerts go to.
    pub alerts_index: String,
    /// Request size limits (`indexer.bulk_max_docs`, `indexer.bulk_max_bytes`).
    pub bulk: BulkLimits,
    /// Retry policy of requests and throttled items.
    pub retry: Backoff,
}

impl Resolved {
    pub(crate) fn new(config: &ElasticsearchConfig, bulk: BulkLimits) -> Result<Self> {
        if bulk.max_docs == 0 || bulk.max_bytes == 0 {
            return Err(PfError::config(
                "indexer.bulk_max_docs",
                "bulk limits must be at least 1",
            ));
        }
        Ok(Resolved {
            index: config.index_name()?,
            alerts_index: config.alerts_index(),
            retry: config.retry(),
            config: config.clone(),
            bulk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_from_the_record_time() {
        let t = IndexTemplate::parse("tx-{yyyy.MM.dd}", "timestamp").unwrap();
        assert_eq!(t.render(1_700_000_000), "tx-2023.11.14");
        let h = IndexTemplate::parse("tx-{yyyy-MM-dd-HH}-v1", "ts").unwrap();
        assert_eq!(h.render(1_700_000_000), "tx-2023-11-14-22-v1");
        assert_eq!(h.bucket_secs(), 3600);
        assert!(IndexTemplate::parse("tx-{yyyy.Q}", "ts").is_err());
        assert!(IndexTemplate::parse("tx-{yyyy", "ts").is_err());
        assert_eq!(
            IndexName::parse("tx-{yyyy}", "ts").unwrap().wildcard(),
            "tx-*"
        );
        assert!(IndexName::parse("Bad Name", "ts").is_err());
    }
}
