//! `pf-flight-test-server`: the Flight test server by hand. Prints its endpoint, serves
//! until standard input closes (Ctrl-D), then prints the rows received per descriptor.

fn main() -> std::io::Result<()> {
    let server = pf_flight_test_server::FlightTestServer::start()?;
    println!("{}", server.endpoint());
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    let got = server.received();
    for (descriptor, rows) in &got.rows {
        println!("{descriptor}\t{rows} rows");
    }
    println!("calls {}, refused {}", got.calls, got.refused);
    for schema in &got.schemas {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        println!("schema: {}", names.join(", "));
    }
    Ok(())
}
