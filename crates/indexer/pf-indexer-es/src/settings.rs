//! What the indexer needs to know about the cluster and the documents.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pf_error::{PfError, Result};

/// `index` overwrites a document with the same `_id`; `create` refuses it (409), which
/// this indexer counts as already indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpType {
    /// Create or overwrite.
    #[default]
    Index,
    /// Create only.
    Create,
}

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
        let (y, m, d) = crate::json::civil_from_days(secs.div_euclid(86_400));
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
#[derive(Clone, PartialEq, Eq, Default)]
pub enum EsAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: ApiKey <base64 id:key>`.
    ApiKey(String),
}

impl fmt::Debug for EsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EsAuth::None => f.write_str("None"),
            EsAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            EsAuth::ApiKey(_) => f.write_str("ApiKey(***)"),
        }
    }
}

/// Optional start-up set-up of the target index (`--es-setup`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexSetup {
    /// The `mappings` object; `None` lets Elasticsearch map dynamically.
    pub mappings: Option<serde_json::Value>,
    /// The `settings` object (shards, replicas, refresh interval).
    pub settings: Option<serde_json::Value>,
}

/// Everything the Elasticsearch indexer is configured with.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// Node URLs, used round-robin.
    pub endpoints: Vec<String>,
    /// Target index name (fixed or templated).
    pub index: IndexName,
    /// Column whose value is the `_id`; `None` hashes uri + etag + row ordinal.
    pub id_field: Option<String>,
    /// `index` or `create`.
    pub op_type: OpType,
    /// Credentials.
    pub auth: EsAuth,
    /// PEM file of the CA that signed the cluster's certificate.
    pub ca_cert: Option<PathBuf>,
    /// Gzip request bodies.
    pub compression: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of a whole request, and rounds of retrying 429/5xx items, before the
    /// file fails as transient.
    pub max_retries: u32,
    /// First backoff delay (doubled per retry, with jitter).
    pub retry_base: Duration,
    /// Longest backoff delay.
    pub retry_max: Duration,
    /// Documents per bulk request.
    pub bulk_max_docs: usize,
    /// Body bytes per bulk request (uncompressed).
    pub bulk_max_bytes: usize,
    /// Create the index or index template at start-up, when set.
    pub setup: Option<IndexSetup>,
    /// Index for fraud alerts (see [`crate::EsAlertSink`]).
    pub alerts_index: String,
}

impl EsSettings {
    /// Defaults for one endpoint and a fixed index, as tests and benches start from.
    pub fn new(endpoint: impl Into<String>, index: &str) -> Result<Self> {
        Ok(EsSettings {
            endpoints: vec![endpoint.into()],
            index: IndexName::parse(index, "timestamp")?,
            id_field: None,
            op_type: OpType::Index,
            auth: EsAuth::None,
            ca_cert: None,
            compression: false,
            timeout: Duration::from_secs(30),
            max_retries: 5,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            bulk_max_docs: 5000,
            bulk_max_bytes: 5 << 20,
            setup: None,
            alerts_index: format!(
                "{}-alerts",
                index
                    .split('{')
                    .next()
                    .unwrap_or(index)
                    .trim_end_matches(['-', '_', '.'])
            ),
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
