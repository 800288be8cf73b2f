//! The S3 source against a real S3 emulator (moto).

use std::io::Read;

use pf_error::ErrorClass;
use pf_storage_s3::S3ObjectSource;
use pf_test_services::Moto;
use pf_traits::ObjectSource;

fn source(moto: &Moto) -> S3ObjectSource {
    let aws = pf_aws::AwsContext::connect(&moto.settings()).unwrap();
    S3ObjectSource::new(aws, false)
}

#[test]
fn stat_ranges_streams_and_missing_objects() {
    let moto = Moto::start();
    moto.create_bucket("data");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    moto.put_object("data", "dir/big file.bin", body.clone());
    let s3 = source(&moto);
    let uri = "s3://data/dir/big file.bin";

    let info = s3.stat(uri).unwrap();
    assert_eq!(info.size, body.len() as u64);
    assert!(
        info.etag
            .as_deref()
            .is_some_and(|e| !e.is_empty() && !e.contains('"'))
    );
    assert!(
        info.last_modified
            .as_deref()
            .is_some_and(|t| t.ends_with('Z'))
    );

    assert_eq!(&s3.read_range(uri, 10..20).unwrap()[..], &body[10..20]);
    let tail = s3.read_range(uri, 2_999_000..3_000_000).unwrap();
    assert_eq!(&tail[..], &body[2_999_000..]);
    let e = s3.read_range(uri, 2_999_990..3_000_010).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");

    let mut streamed = Vec::new();
    s3.read_from(uri, 1_000_000)
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert_eq!(streamed, &body[1_000_000..]);

    let e = s3.stat("s3://data/nope").unwrap_err();
    assert!(matches!(e, pf_error::PfError::NotFound { .. }), "{e}");
    let e = s3.read_range("s3://data/nope", 0..4).unwrap_err();
    assert!(matches!(e, pf_error::PfError::NotFound { .. }), "{e}");
    let e = s3.read_from("s3://data/nope", 0).err().unwrap();
    assert!(matches!(e, pf_error::PfError::NotFound { .. }), "{e}");
}

#[test]
fn listing_pages_lazily_and_respects_recursion() {
    let moto = Moto::start();
    moto.create_bucket("list");
    for i in 0..25 {
        moto.put_object("list", &format!("p/{i:03}.ndjson"), vec![b'x'; i + 1]);
    }
    moto.put_object("list", "p/sub/deep.parquet", vec![1, 2, 3]);
    moto.put_object("list", "other/x.ndjson", vec![1]);
    let s3 = source(&moto).with_page_size(7);

    let all: Vec<_> = s3
        .list("s3://list/p/", true)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 26);
    assert_eq!(all[0].uri, "s3://list/p/000.ndjson");
    assert_eq!(all[24].size, 25);
    assert!(all.iter().any(|o| o.uri == "s3://list/p/sub/deep.parquet"));

    let flat: Vec<_> = s3
        .list("s3://list/p/", false)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(flat.len(), 25, "non-recursive listing must not descend");

    let e = s3
        .list("s3://no-such-bucket/", true)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
}
