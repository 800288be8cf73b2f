//! A small Arrow Flight server for tests — **not** a production Flight service: `DoPut`
//! decodes the record batches, counts rows per descriptor path, keeps every schema and
//! `app_metadata` seen, and answers one `PutResult` per call. Faults: fail the next N
//! calls with a status (`UNAVAILABLE` is transient for the client, `UNAUTHENTICATED`
//! permanent), or demand a bearer token.
//!
//! It runs on its own Tokio runtime thread, bound to a free loopback port, and stops
//! when dropped. [`FlightTestServer::start_tls`] serves TLS with a certificate made up
//! for the test ([`TestCertificates`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

/// gRPC status codes, for [`FlightTestServer::fail_next`].
pub use tonic::Code;

/// What the server received, by descriptor path (joined with `/`).
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Rows per descriptor path.
    pub rows: BTreeMap<String, u64>,
    /// Successful `DoPut` calls.
    pub calls: u64,
    /// Every distinct schema seen.
    pub schemas: Vec<SchemaRef>,
    /// The `app_metadata` of each call's first message, in arrival order.
    pub metadata: Vec<String>,
    /// Calls refused by an injected fault or a missing token.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct State {
    received: Received,
    /// The next calls to fail, with this code.
    fail_next: Option<(u64, Code)>,
    /// `authorization` value required, when set.
    token: Option<String>,
}

#[derive(Clone, Default)]
struct Service {
    state: Arc<Mutex<State>>,
}

/// A certificate authority and a `localhost` server certificate it signed, made up for
/// one test (PEM). Never use them outside tests.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate a client trusts.
    pub ca_pem: String,
    /// The server certificate, for `localhost`.
    pub cert_pem: String,
    /// The server certificate's private key.
    pub key_pem: String,
}

impl TestCertificates {
    /// A fresh CA and a `localhost` certificate signed by it.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let made_up = "generating test certificates";
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect(made_up);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect(made_up))
            .expect(made_up);
        let key = KeyPair::generate().expect(made_up);
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .and_then(|params| params.signed_by(&key, &ca))
            .expect(made_up);
        TestCertificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A running Flight test server.
pub struct FlightTestServer {
    addr: SocketAddr,
    /// Serves TLS (its endpoint is `grpc+tls://localhost:<port>`).
    tls: bool,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FlightTestServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(None)
    }

    /// Starts a server on a free loopback port that speaks TLS with `certs`' server
    /// certificate.
    pub fn start_tls(certs: &TestCertificates) -> std::io::Result<Self> {
        let identity = tonic::transport::Identity::from_pem(&certs.cert_pem, &certs.key_pem);
        Self::start_with(Some(
            tonic::transport::ServerTlsConfig::new().identity(identity),
        ))
    }

    fn start_with(tls: Option<tonic::transport::ServerTlsConfig>) -> std::io::Result<Self> {
        let serves_tls = tls.is_some();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(std::io::Error::other)?;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let service = Service::default();
        let state = service.state.clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tokio_stream_of(listener);
                let _ = builder
                    .add_service(FlightServiceServer::new(service))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        Ok(FlightTestServer {
            addr,
            tls: serves_tls,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `grpc://127.0.0.1:<port>`, or `grpc+tls://localhost:<port>` (the name its
    /// certificate is for) when it serves TLS.
    pub fn endpoint(&self) -> String {
        if self.tls {
            format!("grpc+tls://localhost:{}", self.addr.port())
        } else {
            format!("grpc://{}", self.addr)
        }
    }

    /// A copy of what was received so far.
    pub fn received(&self) -> Received {
        self.lock().received.clone()
    }

    /// Fails the next `calls` `DoPut` calls with `code`.
    pub fn fail_next(&self, calls: u64, code: Code) {
        self.lock().fail_next = Some((calls, code));
    }

    /// Requires `authorization: Bearer <token>` on every call.
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(format!("Bearer {token}"));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FlightTestServer {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The accepted connections of `listener` as the stream tonic serves.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    })
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

/// What a Flight call answers.
type Answer<T> = Result<Response<T>, Status>;

fn unimplemented<T>(what: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{what}: the test server only takes DoPut"
    )))
}

#[tonic::async_trait]
impl FlightService for Service {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;
    type DoExchangeStream = Stream<FlightData>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Answer<Self::HandshakeStream> {
        unimplemented("handshake")
    }

    async fn list_flights(&self, _: Request<Criteria>) -> Answer<Self::ListFlightsStream> {
        unimplemented("list_flights")
    }

    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> Answer<FlightInfo> {
        unimplemented("get_flight_info")
    }

    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Answer<PollInfo> {
        unimplemented("poll_flight_info")
    }

    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Answer<SchemaResult> {
        unimplemented("get_schema")
    }

    async fn do_get(&self, _: Request<Ticket>) -> Answer<Self::DoGetStream> {
        unimplemented("do_get")
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Answer<Self::DoPutStream> {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let token = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if state.token.is_some() && state.token != token {
                state.received.refused += 1;
                return Err(Status::unauthenticated("missing or wrong bearer token"));
            }
            if let Some((n, code)) = state.fail_next.as_mut()
                && *n > 0
            {
                *n -= 1;
                let code = *code;
                state.received.refused += 1;
                return Err(Status::new(code, "injected fault"));
            }
        }
        let messages: Vec<FlightData> = request.into_inner().try_collect().await?;
        let first = messages.first().cloned().unwrap_or_default();
        let path = first
            .flight_descriptor
            .as_ref()
            .map(|d| d.path.join("/"))
            .unwrap_or_default();
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            futures::stream::iter(messages.into_iter().map(Ok::<_, FlightError>)),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("undecodable record batches: {e}")))?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let received = &mut state.received;
        *received.rows.entry(path).or_default() += rows;
        received.calls += 1;
        received
            .metadata
            .push(String::from_utf8_lossy(&first.app_metadata).into_owned());
        for b in &batches {
            if !received.schemas.contains(b.schema_ref()) {
                received.schemas.push(b.schema());
            }
        }
        let ack = PutResult {
            app_metadata: format!("{rows}").into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(ack)]).boxed()))
    }

    async fn do_action(&self, _: Request<Action>) -> Answer<Self::DoActionStream> {
        unimplemented("do_action")
    }

    async fn list_actions(&self, _: Request<Empty>) -> Answer<Self::ListActionsStream> {
        unimplemented("list_actions")
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Answer<Self::DoExchangeStream> {
        unimplemented("do_exchange")
    }
}
