//! Loading from each format, the errors operators see, the registry and the sample tables.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use parquet::arrow::ArrowWriter;
use pf_enrichment::{EnrichmentTable, EnrichmentTables, TableConfig, TableFormat, TableKind};
use pf_error::PfError;

fn config(name: &str, kind: TableKind, path: &Path, key: &str, values: &[&str]) -> TableConfig {
    TableConfig {
        name: name.to_owned(),
        kind,
        path: path.to_owned(),
        format: None,
        key: key.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// Loads the table [`config`] describes.
fn load_table(
    name: &str,
    kind: TableKind,
    path: &Path,
    key: &str,
    values: &[&str],
) -> pf_error::Result<EnrichmentTable> {
    EnrichmentTable::load(&config(name, kind, path, key, values))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// A fresh directory holding `text` as `name`, and that file's path; the directory
/// lives as long as the handle.
fn dir_with(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, text);
    (dir, p)
}

/// Writes one batch of `(name, values, nullable)` columns as a Parquet file.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef, bool)>) {
    let batch = RecordBatch::try_from_iter_with_nullable(columns).unwrap();
    let mut w =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(values: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn value_names(t: &EnrichmentTable) -> Vec<String> {
    let schema = t.values().schema();
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn load_err(cfg: &TableConfig) -> String {
    EnrichmentTable::load(cfg).unwrap_err().to_string()
}

/// Loading `cfg` fails with a message that contains every one of `parts`.
fn assert_load_err(cfg: &TableConfig, parts: &[&str]) {
    let msg = load_err(cfg);
    assert!(parts.iter().all(|p| msg.contains(p)), "{msg}");
}

#[test]
fn csv_cidr_table_with_selected_values() {
    let (_dir, p) = dir_with(
        "geo.csv",
        "network,country,city,asn\n10.0.0.0/8,US,,64500\n10.1.0.0/16,\"GB\",\"London, City\",64501\n",
    );
    let t = load_table("geo", TableKind::Cidr, &p, "network", &["city", "country"]).unwrap();
    assert_eq!(t.name(), "geo");
    assert_eq!(t.kind(), TableKind::Cidr);
    assert_eq!(t.len(), 2);
    assert_eq!(value_names(&t), ["city", "country"]);
    assert_eq!(t.values().num_rows(), 2);
    assert_eq!(t.lookup_value("10.1.2.3", "city"), Some("London, City"));
    assert_eq!(
        t.lookup_value("10.2.2.3", "city"),
        None,
        "empty cell is null"
    );
    assert_eq!(t.lookup_value("10.2.2.3", "country"), Some("US"));
    assert_eq!(t.lookup_value("10.2.2.3", "asn"), None, "not selected");
    assert_eq!(t.keys().value(1), "10.1.0.0/16");
    assert_eq!(t.column_index("country"), Some(1));

    // No values configured: every other column, in file order.
    let t = load_table("geo", TableKind::Cidr, &p, "network", &[]).unwrap();
    assert_eq!(value_names(&t), ["country", "city", "asn"]);
    assert_eq!(t.lookup_value("10.1.0.1", "asn"), Some("64501"));
}

#[test]
fn ndjson_exact_table_infers_types() {
    let (_dir, p) = dir_with(
        "users.jsonl",
        concat!(
            r#"{"id":"acct-0000001","score":1,"ratio":0.5,"vip":true,"tier":"low","extra":[1]}"#,
            "\n\n",
            r#"{"tier":2,"id":7,"score":null,"ratio":2,"vip":false,"extra":{"a":1}}"#,
            "\n",
            r#"{"id":"acct-0000003","score":-4,"vip":null}"#,
            "\n"
        ),
    );
    let t = load_table("users", TableKind::Exact, &p, "id", &[]).unwrap();
    assert_eq!(t.len(), 3);
    let v = t.values();
    assert_eq!(value_names(&t), ["score", "ratio", "vip", "tier", "extra"]);
    assert_eq!(v.column(0).data_type(), &DataType::Int64);
    assert_eq!(v.column(1).data_type(), &DataType::Float64);
    assert_eq!(v.column(2).data_type(), &DataType::Boolean);
    assert_eq!(v.column(3).data_type(), &DataType::Utf8);
    assert_eq!(v.column(4).data_type(), &DataType::Utf8);
    let score = v.column(0).as_primitive::<Int64Type>();
    assert_eq!(
        score.iter().collect::<Vec<_>>(),
        vec![Some(1), None, Some(-4)]
    );
    let ratio = v.column(1).as_primitive::<Float64Type>();
    assert_eq!(
        ratio.iter().collect::<Vec<_>>(),
        vec![Some(0.5), Some(2.0), None]
    );
    assert_eq!(
        t.lookup_row("7"),
        Some(1),
        "numeric keys are matched as text"
    );
    assert_eq!(t.lookup_value("7", "tier"), Some("2"));
    assert_eq!(t.lookup_value("7", "extra"), Some(r#"{"a":1}"#));
    assert_eq!(t.lookup_value("acct-0000001", "vip"), Some("true"));
    assert_eq!(t.lookup_value("acct-0000001", "score"), Some("1"));
    assert_eq!(t.lookup_value("acct-0000003", "ratio"), None);

    // Configured values pick and order columns.
    let t = load_table("users", TableKind::Exact, &p, "id", &["tier", "score"]).unwrap();
    assert_eq!(value_names(&t), ["tier", "score"]);
}

#[test]
fn parquet_keeps_types_and_accepts_integer_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    let score = Float64Array::from(vec![Some(1.5), None, Some(3.0)]);
    write_parquet(
        &p,
        vec![
            (
                "unused",
                strings(vec![Some("x"), Some("y"), Some("z")]),
                true,
            ),
            ("id", Arc::new(Int64Array::from(vec![10, 20, 10])), false),
            ("score", Arc::new(score), true),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![true, false, true])),
                true,
            ),
            ("label", strings(vec![Some("a"), Some("b"), None]), true),
        ],
    );
    let t = load_table("p", TableKind::Exact, &p, "id", &["label", "score", "flag"]).unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t.values().column(1).data_type(), &DataType::Float64);
    assert_eq!(t.lookup_row("10"), Some(2), "last duplicate wins");
    assert_eq!(t.lookup_value("10", "score"), Some("3.0"));
    assert_eq!(t.lookup_value("10", "label"), None);
    assert_eq!(t.lookup_value("20", "label"), Some("b"));
    assert_eq!(t.lookup_value("20", "flag"), Some("false"));
    assert_eq!(t.duplicate_keys(), 1);

    let rows = t.lookup_rows(&StringArray::from(vec![Some("20"), Some("30"), None]));
    let taken = t.take_values(&rows).unwrap();
    let score = taken.column(1).as_primitive::<Float64Type>();
    assert_eq!(score.iter().collect::<Vec<_>>(), vec![None, None, None]);
    let label = taken.column(0).as_string::<i32>();
    assert_eq!(
        label.iter().collect::<Vec<_>>(),
        vec![Some("b"), None, None]
    );

    // Everything but the key, in file order.
    let t = load_table("p", TableKind::Exact, &p, "id", &[]).unwrap();
    assert_eq!(value_names(&t), ["unused", "score", "flag", "label"]);
}

#[test]
fn explicit_format_overrides_extension() {
    let (_dir, p) = dir_with("threats.txt", "ip,cat\n1.2.3.4,bad\n");
    let mut cfg = config("t", TableKind::Cidr, &p, "ip", &[]);
    let err = EnrichmentTable::load(&cfg).unwrap_err();
    assert!(matches!(err, PfError::Config { .. }), "{err}");
    cfg.format = Some(TableFormat::Csv);
    let t = EnrichmentTable::load(&cfg).unwrap();
    assert_eq!(t.lookup_value("1.2.3.4", "cat"), Some("bad"));
}

#[test]
fn empty_tables_are_allowed() {
    let (dir, header_only) = dir_with("h.csv", "network,country\n");
    let zero_bytes = write(dir.path(), "z.csv", "");
    let empty_ndjson = write(dir.path(), "e.ndjson", "\n\n");
    let parquet = dir.path().join("e.parquet");
    write_parquet(
        &parquet,
        vec![
            ("network", strings(vec![]), false),
            ("country", strings(vec![]), false),
        ],
    );
    for p in [&header_only, &zero_bytes, &empty_ndjson, &parquet] {
        for kind in [TableKind::Cidr, TableKind::Exact] {
            let t = load_table("e", kind, p, "network", &["country"])
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(t.is_empty());
            assert_eq!(t.len(), 0);
            assert_eq!(t.values().num_rows(), 0);
            assert_eq!(t.values().num_columns(), 1);
            assert_eq!(t.lookup_row("1.2.3.4"), None);
            assert_eq!(t.lookup_value("1.2.3.4", "country"), None);
            assert_eq!(
                t.lookup_rows(&StringArray::from(vec!["1.2.3.4"]))
                    .null_count(),
                1
            );
        }
    }
}

#[test]
fn missing_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = load_table("g", TableKind::Cidr, &missing, "network", &[]).unwrap_err();
    assert!(matches!(err, PfError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.csv"), "{err}");

    // A directory opens on Unix but cannot be read.
    for name in ["dir.csv", "dir.ndjson"] {
        let as_dir = dir.path().join(name);
        fs::create_dir(&as_dir).unwrap();
        assert_load_err(
            &config("g", TableKind::Cidr, &as_dir, "network", &[]),
            &[name],
        );
    }

    let not_parquet = write(dir.path(), "bad.parquet", "network,country\n1.2.3.4,US\n");
    let err = load_table("g", TableKind::Cidr, &not_parquet, "network", &[]).unwrap_err();
    assert!(matches!(err, PfError::InvalidData { .. }), "{err}");
    assert!(err.to_string().contains("bad.parquet"), "{err}");
}

#[test]
fn missing_key_and_unknown_value_columns_name_file_and_column() {
    let (dir, csv) = dir_with("geo.csv", "net,country\n1.2.3.4,US\n");
    let err = load_table("geo", TableKind::Cidr, &csv, "network", &[]).unwrap_err();
    assert!(matches!(err, PfError::Schema { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("geo.csv") && msg.contains("`network`"),
        "{msg}"
    );
    assert!(
        msg.contains("`net`") && msg.contains("`country`"),
        "lists the columns: {msg}"
    );

    let nd = write(
        dir.path(),
        "geo.ndjson",
        "{\"net\":\"1.2.3.4\",\"country\":\"US\"}\n",
    );
    let pq = dir.path().join("geo.parquet");
    write_parquet(&pq, vec![("net", strings(vec![Some("1.2.3.4")]), false)]);
    for (path, key, values, file, column) in [
        (
            &csv,
            "net",
            &["country", "city"][..],
            "geo.csv",
            "unknown value column `city`",
        ),
        (
            &nd,
            "net",
            &["country", "city"],
            "geo.ndjson",
            "unknown value column `city`",
        ),
        (&nd, "network", &[], "geo.ndjson:1", "`network`"),
        (&pq, "network", &[], "geo.parquet", "`network`"),
        (&pq, "net", &["country"], "geo.parquet", "`country`"),
    ] {
        assert_load_err(
            &config("geo", TableKind::Cidr, path, key, values),
            &[file, column],
        );
    }

    let msg = load_err(&config(
        "geo",
        TableKind::Cidr,
        &csv,
        "net",
        &["country", "country"],
    ));
    assert!(msg.contains("transform.tables.geo.values"), "{msg}");
}

#[test]
fn bad_rows_name_file_line_and_column() {
    let (dir, csv) = dir_with(
        "geo.csv",
        "network,country\n10.0.0.0/8,US\n\"11.0.0.0/8\",GB\n10.0.0.300/8,FR\n",
    );
    let err = load_table("geo", TableKind::Cidr, &csv, "network", &[]).unwrap_err();
    assert!(matches!(err, PfError::InvalidData { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("geo.csv:4") && msg.contains("`network`") && msg.contains("10.0.0.300/8"),
        "{msg}"
    );
    // The same file is a fine exact table.
    assert!(load_table("geo", TableKind::Exact, &csv, "network", &[]).is_ok());

    let nd = write(
        dir.path(),
        "threats.ndjson",
        "{\"ip\":\"1.2.3.4\"}\n\n{\"ip\":\"1.2.3.0/24\"}\n{\"ip\":\"1.2.3\"}\n",
    );
    assert_load_err(
        &config("t", TableKind::Cidr, &nd, "ip", &[]),
        &["threats.ndjson:4", "`ip`"],
    );

    // (file, table, key, first line): each case writes the first line and the rest.
    let bad_csv = ("bad.csv", "geo", "network", "network,country\n");
    let bad_ndjson = ("bad.ndjson", "t", "ip", "{\"ip\":\"1.2.3.4\"}\n");
    for ((file, name, key, first), rest, line, what) in [
        (bad_csv, "10.0.0.0/33,US\n", 2, "0..=32"),
        (bad_csv, "10.0.0.0/8,US\n,GB\n", 3, "empty key"),
        (bad_csv, "10.0.0.0/8,US\n1.2.3.4,GB,extra\n", 3, "field"),
        (bad_csv, "2001:db8::/129,US\n", 2, "0..=128"),
        (bad_ndjson, "{\"ip\":\"1.2.3.5\"\n", 2, "ndjson"),
        (bad_ndjson, "[1]\n", 2, "object"),
        (bad_ndjson, "{\"ip\":true}\n", 2, "string or a number"),
        (bad_ndjson, "{\"ip\":null}\n", 2, "string or a number"),
        (bad_ndjson, "{\"IP\":\"1.2.3.4\"}\n", 2, "missing"),
    ] {
        let p = write(dir.path(), file, &format!("{first}{rest}"));
        let cfg = config(name, TableKind::Cidr, &p, key, &[]);
        assert_load_err(&cfg, &[&format!("{file}:{line}"), what]);
    }

    let pq = dir.path().join("threats.parquet");
    let ip = |second| vec![("ip", strings(vec![Some("1.2.3.4"), second]), true)];
    write_parquet(&pq, ip(Some("nope")));
    assert_load_err(
        &config("t", TableKind::Cidr, &pq, "ip", &[]),
        &["threats.parquet row 2", "`ip`"],
    );
    write_parquet(&pq, ip(None));
    assert_load_err(
        &config("t", TableKind::Exact, &pq, "ip", &[]),
        &["threats.parquet row 2", "empty key"],
    );
}

#[test]
fn byte_order_marks_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("bom.csv", "\u{feff}network,country\r\n10.0.0.0/8,US\r\n"),
        (
            "bom.ndjson",
            "\u{feff}{\"network\":\"10.0.0.0/8\",\"country\":\"US\"}\r\n",
        ),
    ] {
        let p = write(dir.path(), file, text);
        let t = load_table("g", TableKind::Cidr, &p, "network", &[])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(t.lookup_value("10.1.1.1", "country"), Some("US"), "{file}");
    }
}

#[test]
fn non_utf8_csv_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.csv");
    fs::write(&p, b"network,country\n1.2.3.4,\xff\xfe\n").unwrap();
    let msg = load_err(&config("g", TableKind::Cidr, &p, "network", &[]));
    assert!(msg.contains("bin.csv:2"), "{msg}");
}

#[test]
fn registry_loads_in_parallel_and_rejects_duplicates() {
    let (dir, a) = dir_with("a.csv", "k,v\nx,1\n");
    let b = write(dir.path(), "b.ndjson", "{\"k\":\"10.0.0.0/8\",\"v\":2}\n");
    let c = write(dir.path(), "c.csv", "k,v\ny,3\n");
    let tables = EnrichmentTables::load(&[
        config("a", TableKind::Exact, &a, "k", &[]),
        config("b", TableKind::Cidr, &b, "k", &[]),
        config("c", TableKind::Exact, &c, "k", &[]),
    ])
    .unwrap();
    assert_eq!(tables.len(), 3);
    assert_eq!(tables.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(tables.get("a").unwrap().lookup_value("x", "v"), Some("1"));
    assert_eq!(
        tables.get("b").unwrap().lookup_value("10.2.3.4", "v"),
        Some("2")
    );
    assert!(tables.get("d").is_none());
    let shared = Arc::clone(tables.get("c").unwrap());
    assert_eq!(shared.lookup_row("y"), Some(0));

    let err = EnrichmentTables::load(&[
        config("a", TableKind::Exact, &a, "k", &[]),
        config("a", TableKind::Exact, &c, "k", &[]),
    ])
    .unwrap_err();
    assert!(matches!(err, PfError::Config { .. }), "{err}");
    assert!(err.to_string().contains("`a`"), "{err}");

    // The first failing table in configuration order is reported.
    let err = EnrichmentTables::load(&[
        config("a", TableKind::Exact, &a, "k", &[]),
        config(
            "m1",
            TableKind::Exact,
            &dir.path().join("missing1.csv"),
            "k",
            &[],
        ),
        config(
            "m2",
            TableKind::Exact,
            &dir.path().join("missing2.csv"),
            "k",
            &[],
        ),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("missing1.csv"), "{err}");

    assert!(EnrichmentTables::load(&[]).unwrap().is_empty());
    let t = load_table("a", TableKind::Exact, &a, "k", &[]).unwrap();
    let err = EnrichmentTables::from_tables([t.clone(), t]).unwrap_err();
    assert!(matches!(err, PfError::Config { .. }), "{err}");
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../config/enrichment")
}

fn sample_configs() -> Vec<TableConfig> {
    let dir = samples();
    vec![
        config("geo", TableKind::Cidr, &dir.join("geo.csv"), "network", &[]),
        config(
            "threats",
            TableKind::Cidr,
            &dir.join("threats.csv"),
            "network",
            &[],
        ),
        config(
            "users",
            TableKind::Exact,
            &dir.join("users.csv"),
            "account_id",
            &[],
        ),
    ]
}

#[test]
fn sample_tables_load_and_answer() {
    let tables = EnrichmentTables::load(&sample_configs()).unwrap();
    let geo = tables.get("geo").unwrap();
    let threats = tables.get("threats").unwrap();
    let users = tables.get("users").unwrap();
    for t in [geo, threats, users] {
        assert!((30..=80).contains(&t.len()), "{}: {}", t.name(), t.len());
        assert_eq!(t.duplicate_keys(), 0, "{}", t.name());
    }

    for (t, key, column, want) in [
        (geo, "81.2.69.161", "city", Some("Glasgow")),
        (geo, "81.2.69.170", "city", Some("Leeds")),
        (geo, "81.2.69.1", "city", Some("Manchester")),
        (geo, "81.200.1.1", "city", Some("London")),
        (geo, "::ffff:81.2.69.161", "country", Some("GB")),
        (geo, "2a02:c7f:8000::1", "city", Some("Birmingham")),
        (geo, "10.0.0.1", "country", None),
        (geo, "8.8.8.8", "asn", Some("15169")),
        (threats, "95.214.53.17", "category", Some("malware_c2")),
        (threats, "95.214.53.18", "category", Some("tor_exit")),
        (threats, "81.2.69.161", "category", None),
        (users, "acct-0000000", "home_country", Some("SE")),
    ] {
        let name = t.name();
        assert_eq!(t.lookup_value(key, column), want, "{name}: {key} {column}");
    }
    assert!(users.lookup_value("acct-0000039", "risk_tier").is_some());
    assert!(users.lookup_row("acct-0000040").is_none());

    // The samples follow the generators' layout: every geo row has its block's country,
    // every threat lies in threat space, and users match the generator for seed 42.
    let countries = geo.column("country").unwrap().as_string::<i32>().clone();
    for (key, country) in geo.keys().iter().zip(countries.iter()) {
        let addr = key.unwrap().split('/').next().unwrap().parse().unwrap();
        assert_eq!(pf_datagen::layout::geo_country(addr), country, "{key:?}");
    }
    for key in threats.keys().iter().flatten() {
        let addr: std::net::IpAddr = key.split('/').next().unwrap().parse().unwrap();
        let home = match addr {
            std::net::IpAddr::V4(v4) => {
                !pf_datagen::layout::THREAT_V4_OCTETS.contains(&v4.octets()[0])
            }
            std::net::IpAddr::V6(v6) => v6.segments()[0] != pf_datagen::layout::THREAT_V6_GROUP,
        };
        assert!(!home, "{key} is outside threat space");
    }
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("users.csv");
    pf_datagen::layout::write_users_table(&generated, 40, 42).unwrap();
    assert_eq!(
        fs::read_to_string(generated).unwrap(),
        fs::read_to_string(samples().join("users.csv")).unwrap(),
        "config/enrichment/users.csv is the first 40 generated users of seed 42"
    );
}

#[test]
fn config_deserializes_from_yaml_like_json() {
    let cfgs: Vec<TableConfig> = serde_json::from_str(
        r#"[{"name":"geo","kind":"cidr","path":"geo.parquet","key":"network","values":["country"]},
            {"name":"users","kind":"exact","path":"u.data","format":"ndjson","key":"account_id"}]"#,
    )
    .unwrap();
    assert_eq!(cfgs[0].resolved_format().unwrap(), TableFormat::Parquet);
    assert_eq!(cfgs[1].resolved_format().unwrap(), TableFormat::Ndjson);
    assert_eq!(cfgs[0].values, ["country"]);
}
