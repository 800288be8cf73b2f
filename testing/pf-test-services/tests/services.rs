//! The harness starts real services and stops them again.

use std::net::TcpStream;

use pf_test_services::{Moto, Valkey};

#[test]
fn moto_serves_s3_and_sqs_and_stops_on_drop() {
    let moto = Moto::start();
    moto.create_bucket("harness");
    moto.put_object("harness", "a/b.txt", b"hello".to_vec());
    let listed = moto
        .aws()
        .block_on(moto.s3().list_objects_v2().bucket("harness").send())
        .unwrap();
    assert_eq!(listed.key_count(), Some(1));
    let url = moto.create_queue("harness-q", &[]);
    moto.send_message(&url, "{}");
    assert_eq!(moto.queue_depth(&url).0, 1);
    let addr = moto.endpoint().trim_start_matches("http://").to_owned();
    drop(moto);
    assert!(
        TcpStream::connect(&addr).is_err(),
        "moto still listening on {addr}"
    );
}

#[test]
fn valkey_answers_ping_and_stops_on_drop() {
    use std::io::{Read, Write};
    let valkey = Valkey::start();
    let addr = format!("127.0.0.1:{}", valkey.port());
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    drop(s);
    drop(valkey);
    assert!(
        TcpStream::connect(&addr).is_err(),
        "valkey still listening on {addr}"
    );
}
