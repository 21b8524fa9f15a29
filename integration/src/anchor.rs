//! Anchors for benchmarks that have no independent implementation to compare with: the bare stack's ceiling.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A hyper + rustls (TLS 1.3) server on 127.0.0.1 that answers every request with the same body and does no work:
/// what the HTTP/TLS stack alone costs. It runs on its own runtime thread until dropped with the process.
#[derive(Debug)]
pub struct StaticResponder {
    addr: SocketAddr,
}

impl StaticResponder {
    pub fn start(body: Vec<u8>) -> anyhow::Result<StaticResponder> {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let body = Bytes::from(body);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        std::thread::Builder::new().name("anchor".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let acceptor = acceptor.clone();
                    let body = body.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = service_fn(move |_req| {
                            let body = body.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(body))
                                        .expect("static response"),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            })
        })?;
        std::net::TcpStream::connect(addr).context("anchor did not start")?;
        Ok(StaticResponder { addr })
    }

    pub fn url(&self) -> String {
        format!("https://{}/dukcapil/get_json/DEV/CALL_NIK", self.addr)
    }
}
