//! The functions registered on the engine, and the per-thread alert collector.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use pf_enrichment::{EnrichmentTable, EnrichmentTables, TableKind};
use pf_types::Severity;
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Map};

use crate::convert::{self, Reader};

type NativeResult<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(message: impl Into<String>) -> NativeResult<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        message.into().into(),
        rhai::Position::NONE,
    )))
}

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// RFC 3339 text → µs since the epoch; `None` when it does not parse.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_micros())
}

/// µs since the epoch → RFC 3339 in UTC with `Z`, fractional seconds only when non-zero;
/// `None` outside chrono's range (about ±262,000 years).
pub(crate) fn format_rfc3339(micros: i64) -> Option<String> {
    DateTime::from_timestamp_micros(micros).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Hour of the day (0–23, UTC).
pub(crate) fn hour_of(micros: i64) -> i64 {
    micros.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR
}

/// Minute of the hour (0–59).
pub(crate) fn minute_of(micros: i64) -> i64 {
    micros.rem_euclid(MICROS_PER_HOUR) / MICROS_PER_MINUTE
}

/// Day of the week, 0 = Monday … 6 = Sunday (ISO order, zero-based), UTC.
pub(crate) fn day_of_week_of(micros: i64) -> i64 {
    // 1970-01-01 was a Thursday (3).
    (micros.div_euclid(MICROS_PER_DAY) + 3).rem_euclid(7)
}

/// The timestamp a time helper was given: integers are µs, strings RFC 3339; `None` for
/// `()` and unparsable strings (so a null or malformed timestamp compares false instead
/// of failing the record); other types are script errors.
fn timestamp_arg(value: &Dynamic, function: &str) -> NativeResult<Option<i64>> {
    if value.is_unit() {
        return Ok(None);
    }
    if let Ok(i) = value.as_int() {
        return Ok(Some(i));
    }
    if let Ok(s) = value.as_immutable_string_ref() {
        return Ok(parse_rfc3339(&s));
    }
    fail(format!(
        "{function}() expects a timestamp (integer microseconds since the epoch or an RFC 3339 \
         string), got {}",
        value.type_name()
    ))
}

fn time_part(value: Dynamic, function: &str, part: fn(i64) -> i64) -> NativeResult<Dynamic> {
    Ok(timestamp_arg(&value, function)?.map_or(Dynamic::UNIT, |us| Dynamic::from_int(part(us))))
}

/// A string helper that maps `()` to `()` and rejects other non-strings.
fn string_fn(value: Dynamic, function: &str, f: fn(&str) -> String) -> NativeResult<Dynamic> {
    if value.is_unit() {
        return Ok(Dynamic::UNIT);
    }
    match value.as_immutable_string_ref() {
        Ok(s) => Ok(Dynamic::from(ImmutableString::from(f(&s)))),
        Err(t) => fail(format!("{function}() expects a string, got {t}")),
    }
}

/// One enrichment table as the script sees it: a lookup returns a map of its value
/// columns, built from this template.
struct Binding {
    table: Arc<EnrichmentTable>,
    template: Map,
    readers: Vec<Reader>,
}

impl Binding {
    fn new(table: &Arc<EnrichmentTable>) -> Binding {
        let values = table.values();
        let schema = values.schema();
        let mut columns: Vec<(&str, usize)> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().as_str(), i))
            .collect();
        // Map keys iterate sorted; readers follow the same order.
        columns.sort_unstable();
        columns.dedup_by(|a, b| a.0 == b.0);
        Binding {
            table: table.clone(),
            template: convert::template(columns.iter().map(|c| c.0)),
            readers: columns
                .iter()
                .map(|&(_, i)| Reader::new(values.column(i)))
                .collect(),
        }
    }

    fn row(&self, row: u32) -> Map {
        let mut map = self.template.clone();
        for (slot, reader) in map.values_mut().zip(&self.readers) {
            *slot = reader.get(row as usize);
        }
        map
    }
}

/// Text of a lookup key: strings as they are, integers in decimal; `None` for `()`
/// (matches nothing). Other types are script errors rather than silently matching
/// their display text.
fn key_text(key: &Dynamic, function: &str) -> NativeResult<Option<String>> {
    if key.is_unit() {
        return Ok(None);
    }
    if let Ok(s) = key.as_immutable_string_ref() {
        return Ok(Some(s.to_string()));
    }
    if let Ok(i) = key.as_int() {
        return Ok(Some(i.to_string()));
    }
    fail(format!(
        "{function}(): the key must be a string, an integer or (), got {}",
        key.type_name()
    ))
}

struct Tables {
    by_name: HashMap<String, Binding>,
}

impl Tables {
    fn get(&self, name: &str, function: &str, need_cidr: bool) -> NativeResult<&Binding> {
        let Some(b) = self.by_name.get(name) else {
            let mut known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            known.sort_unstable();
            return fail(unknown_table_message(name, function, &known));
        };
        if need_cidr && b.table.kind() != TableKind::Cidr {
            return fail(format!(
                "{function}(): table `{name}` is an exact-key table; use lookup()"
            ));
        }
        Ok(b)
    }

    fn lookup(&self, name: &str, key: &Dynamic, function: &str, cidr: bool) -> NativeResult<Map> {
        let b = self.get(name, function, cidr)?;
        Ok(
            match key_text(key, function)?.and_then(|k| b.table.lookup_row(&k)) {
                Some(row) => b.row(row),
                None => Map::new(),
            },
        )
    }

    fn contains(&self, name: &str, key: &Dynamic) -> NativeResult<bool> {
        let b = self.get(name, "in_table", false)?;
        Ok(key_text(key, "in_table")?.is_some_and(|k| b.table.lookup_row(&k).is_some()))
    }
}

/// The message for a table name that is not configured (run time and start-up).
pub(crate) fn unknown_table_message(name: &str, function: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!("{function}(): unknown enrichment table `{name}` (no tables are configured)")
    } else {
        format!(
            "{function}(): unknown enrichment table `{name}` (configured: {})",
            known.join(", ")
        )
    }
}

/// An alert raised by the current record, completed with uri and ordinal by the caller.
pub(crate) struct PendingAlert {
    pub rule: String,
    pub severity: Severity,
    pub details: serde_json::Value,
}

thread_local! {
    /// Alerts of the record being transformed on this thread. A thread-local rather than
    /// state in the engine: the engine is shared by every pipeline thread, and the hot
    /// path must not take a lock. `None` outside a transform (rule conditions), where
    /// `alert()` is an error.
    static ALERTS: RefCell<Option<Vec<PendingAlert>>> = const { RefCell::new(None) };
}

/// Enables `alert()` on this thread while alive; collects what the script raises.
pub(crate) struct AlertScope(());

impl AlertScope {
    pub(crate) fn enter() -> AlertScope {
        ALERTS.with_borrow_mut(|a| *a = Some(Vec::new()));
        AlertScope(())
    }

    /// The alerts raised since the last call.
    pub(crate) fn take(&self) -> Vec<PendingAlert> {
        ALERTS.with_borrow_mut(|a| a.as_mut().map(std::mem::take).unwrap_or_default())
    }
}

impl Drop for AlertScope {
    fn drop(&mut self) {
        let _ = ALERTS.try_with(|a| {
            if let Ok(mut a) = a.try_borrow_mut() {
                *a = None;
            }
        });
    }
}

fn parse_severity(text: &str) -> NativeResult<Severity> {
    match text.to_ascii_lowercase().as_str() {
        "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        _ => fail(format!(
            "alert(): severity must be \"low\", \"medium\" or \"high\", got \"{text}\""
        )),
    }
}

fn raise_alert(rule: &str, severity: &str, details: &Dynamic) -> NativeResult<()> {
    let severity = parse_severity(severity)?;
    let alert = PendingAlert {
        rule: rule.to_owned(),
        severity,
        details: convert::to_json(details),
    };
    let stored = ALERTS.with_borrow_mut(|a| match a {
        Some(list) => {
            list.push(alert);
            true
        }
        None => false,
    });
    if stored {
        Ok(())
    } else {
        fail("alert() can only be called from a transform script")
    }
}

/// Registers every Paraflow built-in on `engine`.
pub(crate) fn register(engine: &mut Engine, tables: &EnrichmentTables) {
    let tables = Arc::new(Tables {
        by_name: tables
            .iter()
            .map(|t| (t.name().to_owned(), Binding::new(t)))
            .collect(),
    });

    let t = tables.clone();
    engine.register_fn("lookup", move |table: &str, key: Dynamic| {
        t.lookup(table, &key, "lookup", false)
    });
    let t = tables.clone();
    engine.register_fn("lookup_cidr", move |table: &str, ip: Dynamic| {
        t.lookup(table, &ip, "lookup_cidr", true)
    });
    let t = tables;
    engine.register_fn("in_table", move |table: &str, key: Dynamic| {
        t.contains(table, &key)
    });

    engine.register_fn("hour", |ts: Dynamic| time_part(ts, "hour", hour_of));
    engine.register_fn("minute", |ts: Dynamic| time_part(ts, "minute", minute_of));
    engine.register_fn("day_of_week", |ts: Dynamic| {
        time_part(ts, "day_of_week", day_of_week_of)
    });
    engine.register_fn("parse_ts", |ts: Dynamic| -> NativeResult<Dynamic> {
        Ok(timestamp_arg(&ts, "parse_ts")?.map_or(Dynamic::UNIT, Dynamic::from_int))
    });
    engine.register_fn("format_ts", |ts: Dynamic| -> NativeResult<Dynamic> {
        Ok(timestamp_arg(&ts, "format_ts")?
            .and_then(format_rfc3339)
            .map_or(Dynamic::UNIT, |s| Dynamic::from(ImmutableString::from(s))))
    });

    engine.register_fn("hash64", |value: Dynamic| -> Dynamic {
        if value.is_unit() {
            return Dynamic::UNIT;
        }
        let text = convert::text(&value);
        Dynamic::from_int(xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as i64)
    });

    engine.register_fn("lower", |s: Dynamic| {
        string_fn(s, "lower", str::to_lowercase)
    });
    engine.register_fn("upper", |s: Dynamic| {
        string_fn(s, "upper", str::to_uppercase)
    });
    // Rhai's own `trim` trims in place and returns `()`, so `trim(x)` silently yields
    // `()`. This one still trims in place (method style keeps working) and also returns
    // the result, so the function style works too.
    engine.register_fn("trim", |s: &mut ImmutableString| -> ImmutableString {
        let trimmed = s.trim();
        if trimmed.len() != s.len() {
            *s = ImmutableString::from(trimmed);
        }
        s.clone()
    });
    engine.register_fn("trim", |_: ()| ());

    // Rhai's `sleep` blocks the thread without counting operations: a way around the
    // operation limit, so it fails instead.
    engine.register_fn("sleep", |_: i64| -> NativeResult<()> {
        fail("sleep() is not available in scripts")
    });
    engine.register_fn("sleep", |_: f64| -> NativeResult<()> {
        fail("sleep() is not available in scripts")
    });

    engine.register_fn(
        "alert",
        |rule: &str, severity: &str, details: Dynamic| -> NativeResult<()> {
            raise_alert(rule, severity, &details)
        },
    );
    engine.register_fn("alert", |rule: &str, severity: &str| -> NativeResult<()> {
        raise_alert(rule, severity, &Dynamic::UNIT)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parts_at_utc_edges() {
        // 2026-03-29 is the EU DST switch day; UTC has no DST, so hours are plain.
        let t = parse_rfc3339("2026-03-29T00:59:59.999999Z").unwrap();
        assert_eq!(hour_of(t), 0);
        assert_eq!(minute_of(t), 59);
        assert_eq!(hour_of(t + 1), 1);
        assert_eq!(day_of_week_of(t), 6, "Sunday");
        assert_eq!(day_of_week_of(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(hour_of(-1), 23, "one microsecond before the epoch");
        assert_eq!(day_of_week_of(-1), 2);
        assert_eq!(minute_of(-1), 59);
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339("2026-01-01T05:30:00+02:00").unwrap();
        assert_eq!(format_rfc3339(t).unwrap(), "2026-01-01T03:30:00Z");
        assert_eq!(
            format_rfc3339(t + 123_456).unwrap(),
            "2026-01-01T03:30:00.123456Z"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(format_rfc3339(i64::MAX), None);
    }
}
