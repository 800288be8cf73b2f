//! Schema inference from the head lines of a file.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef, Fields, Schema};
use arrow::error::ArrowError;
use arrow::json::reader::infer_json_schema_from_iterator;
use serde_json::Value;

/// What the head lines told us.
pub(crate) enum Inferred {
    /// At least one line was a JSON object.
    Schema(Schema),
    /// No line was a JSON object: why each line was rejected, in line order.
    NoObject(Vec<String>),
}

/// Infers a schema from `lines`, ignoring lines that are not JSON objects; those will
/// fail again, as records, when decoded.
pub(crate) fn infer<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Inferred {
    let mut objects = Vec::new();
    let mut rejected = Vec::new();
    for line in lines {
        match serde_json::from_slice::<Value>(line) {
            Ok(value @ Value::Object(_)) => objects.push(value),
            Ok(other) => {
                rejected.push(format!("expected a JSON object, found {}", kind_of(&other)))
            }
            Err(e) => rejected.push(format!("invalid JSON: {e}")),
        }
    }
    if objects.is_empty() {
        return Inferred::NoObject(rejected);
    }
    let schema = infer_tolerant(&objects);
    Inferred::Schema(normalize(schema, &objects))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// arrow's inference gives up on the whole set when two objects disagree in shape (a
/// field that is an object in one line and a number in another). One odd line must not
/// cost the file its schema, so the first conflicting object is found by bisection
/// (a prefix that infers cleanly stays clean), left out, and inference goes on.
fn infer_tolerant(objects: &[Value]) -> Schema {
    let mut accepted: Vec<&Value> = Vec::new();
    let mut rest = objects;
    loop {
        let attempt = |accepted: &[&Value], take: usize| -> Result<Schema, ArrowError> {
            infer_json_schema_from_iterator(
                accepted
                    .iter()
                    .copied()
                    .chain(rest[..take].iter())
                    .map(Ok::<_, ArrowError>),
            )
        };
        if let Ok(schema) = attempt(&accepted, rest.len()) {
            return schema;
        }
        // attempt(lo) succeeds and attempt(hi) fails; rest[hi - 1] is the first conflict.
        let (mut lo, mut hi) = (0, rest.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if attempt(&accepted, mid).is_ok() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        accepted.extend(rest[..hi - 1].iter());
        rest = &rest[hi..];
    }
}

/// Makes the inferred schema deterministic and tolerant of what a head cannot show.
///
/// * Top-level fields follow their first appearance in the head (arrow returns them in
///   hash order, which would differ from run to run); nested fields are sorted by name.
/// * A field that was always `null` in the head is inferred as `Null`, which would
///   reject every later non-null value; it becomes a nullable string instead.
fn normalize(schema: Schema, objects: &[Value]) -> Schema {
    let mut order: HashMap<&str, usize> = HashMap::new();
    for object in objects {
        if let Value::Object(map) = object {
            for key in map.keys() {
                let next = order.len();
                order.entry(key.as_str()).or_insert(next);
            }
        }
    }
    let mut fields: Vec<FieldRef> = schema.fields().iter().map(widen_field).collect();
    fields.sort_by_key(|f| order.get(f.name().as_str()).copied().unwrap_or(usize::MAX));
    Schema::new(fields)
}

fn widen_field(field: &FieldRef) -> FieldRef {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(widen(field.data_type()))
            .with_nullable(true),
    )
}

fn widen(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Null => DataType::Utf8,
        DataType::List(item) => DataType::List(widen_field(item)),
        DataType::Struct(fields) => {
            let mut fields: Vec<FieldRef> = fields.iter().map(widen_field).collect();
            fields.sort_by(|a, b| a.name().cmp(b.name()));
            DataType::Struct(Fields::from(fields))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn schema_of(lines: &[&str]) -> Schema {
        match infer(lines.iter().map(|l| l.as_bytes())) {
            Inferred::Schema(s) => s,
            Inferred::NoObject(why) => panic!("no schema: {why:?}"),
        }
    }

    #[test]
    fn conflicting_objects_are_left_out() {
        let s = schema_of(&[r#"{"a":{"x":1},"b":1}"#, r#"{"a":5}"#, r#"{"c":"z"}"#]);
        let a = s.field_with_name("a").expect("a");
        assert!(matches!(a.data_type(), DataType::Struct(_)));
        assert!(s.field_with_name("c").is_ok());
    }

    #[test]
    fn null_only_fields_become_strings_and_order_is_stable() {
        let s = schema_of(&[r#"{"z":null,"a":[]}"#]);
        let z = s.field_with_name("z").expect("z");
        assert_eq!(z.data_type(), &DataType::Utf8);
        let a = s.field_with_name("a").expect("a");
        assert_eq!(
            a.data_type(),
            &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        );
    }

    #[test]
    fn no_object_reports_each_line() {
        match infer([b"[1]".as_slice(), b"{oops".as_slice()].into_iter()) {
            Inferred::NoObject(why) => {
                assert_eq!(why.len(), 2);
                assert!(why[0].contains("an array"), "{why:?}");
                assert!(why[1].starts_with("invalid JSON"), "{why:?}");
            }
            Inferred::Schema(s) => panic!("unexpected schema {s:?}"),
        }
    }
}
