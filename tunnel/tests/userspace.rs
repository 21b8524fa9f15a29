//! The driver and the userspace face over real UDP on loopback, against the crate's own client side (the same engine
//! and netstack arranged as a client, `simpul_tunnel::client`): no root needed. The engine's own tests check it
//! against boringtun's bare `Tunn`; `wireguard_go.rs` checks both sides against wireguard-go.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use simpul_tunnel::client::Client;
use simpul_tunnel::netstack::{self, NetstackConfig, TcpStream};
use simpul_tunnel::wg_quick::{self, ClientConfig};
use simpul_tunnel::{Engine, EngineConfig, PeerConfig, PrivateKey, PublicKey, TunnelHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const WAIT: Duration = Duration::from_secs(10);
const API: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), 8000);

/// Greets each connection with the identity the tunnel gave it, then echoes until the client closes.
async fn echo(mut stream: TcpStream) {
    let greeting = format!("peer={} address={}\n", stream.peer(), stream.peer_addr().ip());
    stream.write_all(greeting.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => stream.write_all(&buf[..n]).await.unwrap(),
        }
    }
    stream.shutdown().await.unwrap();
}

struct Gateway {
    handle: TunnelHandle,
    driver: tokio::task::JoinHandle<()>,
    accepted: tokio::sync::mpsc::UnboundedReceiver<(PublicKey, SocketAddr)>,
}

async fn gateway() -> Gateway {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (face, stack) = netstack::new(NetstackConfig::default()).unwrap();
    let listener = stack.listen(8000).unwrap();
    let engine = Engine::new(PrivateKey::generate(), EngineConfig::default());
    let (handle, driver) = TunnelHandle::spawn(socket, engine, face).unwrap();
    let (report, accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(stream) = listener.accept().await {
            let _ = report.send((stream.peer(), stream.peer_addr()));
            tokio::spawn(echo(stream));
        }
    });
    Gateway { handle, driver, accepted }
}

/// A device of the gateway: its key configured there with `allowed`, and the wg-quick file it would be given, with
/// `address` as the client's own tunnel address (which need not be the one the gateway allows it).
async fn device(gateway: &Gateway, allowed: &str, address: &str) -> (PublicKey, ClientConfig) {
    let private = PrivateKey::generate();
    let key = private.public_key();
    gateway.handle.set_peer(PeerConfig::new(key, [allowed.parse().unwrap()])).await.unwrap();
    let config = ClientConfig {
        device: format!("laptop {address}"),
        private_key: private.to_base64(),
        address: address.parse().unwrap(),
        gateway_public_key: gateway.handle.public_key().to_string(),
        endpoint: gateway.handle.local_addr().to_string(),
        allowed_ips: vec!["10.77.0.1/32".parse().unwrap()],
        persistent_keepalive: Some(25),
        mtu: None,
    };
    (key, config)
}

/// Reads until `len` bytes have come or the stream ends.
async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    tokio::time::timeout(WAIT * 3, stream.read_exact(&mut got)).await.expect("in time").expect("all of it");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_tagged_with_the_peer_that_opened_it() {
    let mut gw = gateway().await;
    let (a_key, a_config) = device(&gw, "10.77.0.2/32", "10.77.0.2").await;
    let (b_key, b_config) = device(&gw, "10.77.0.3/32", "10.77.0.3").await;
    // The client reads the file as the gateway would have written it.
    let a = Client::start(&wg_quick::parse(&wg_quick::render(&a_config).unwrap()).unwrap()).await.unwrap();
    let b = Client::start(&b_config).await.unwrap();

    for (client, key, address) in [(&a, a_key, "10.77.0.2"), (&b, b_key, "10.77.0.3")] {
        let mut stream = client.connect(API).await.unwrap();
        // The client's stream names the peer that answered it: the gateway.
        assert_eq!(stream.peer(), gw.handle.public_key());
        assert_eq!(stream.peer_addr(), API);
        assert_eq!(stream.local_addr().ip().to_string(), address);
        let greeting = format!("peer={key} address={address}\n");
        assert_eq!(read_exactly(&mut stream, greeting.len()).await, greeting.as_bytes());
    }

    let mut tags = [gw.accepted.recv().await.unwrap(), gw.accepted.recv().await.unwrap()];
    tags.sort_by_key(|(_, addr)| addr.ip());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        tags.iter().map(|(k, a)| (*k, a.ip())).collect::<Vec<_>>(),
        [(a_key, ip("10.77.0.2")), (b_key, ip("10.77.0.3"))]
    );

    gw.handle.shutdown().await;
    gw.driver.await.unwrap();
    let end = tokio::time::timeout(WAIT, gw.accepted.recv()).await.expect("accept returns once the tunnel stops");
    assert!(end.is_none(), "the accept loop ended");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_carries_bulk_data_both_ways_intact() {
    let gw = gateway().await;
    let (key, config) = device(&gw, "10.77.0.2/32", "10.77.0.2").await;
    let client = Client::start(&config).await.unwrap();
    let mut stream = client.connect(API).await.unwrap();
    let greeting = format!("peer={key} address=10.77.0.2\n");
    assert_eq!(read_exactly(&mut stream, greeting.len()).await, greeting.as_bytes());

    // Several times both windows, so that reads and writes on each side wait for the other.
    let data: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 7 % 253) as u8).collect();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let sent = data.clone();
    let writing = tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        // Closing our side ends the server's echo loop, which closes its side.
        writer.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(WAIT * 3, reader.read_to_end(&mut back)).await.expect("in time").unwrap();
    writing.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_shakes_hands_at_start_and_keeps_the_path_alive() {
    let gw = gateway().await;
    let (key, config) = device(&gw, "10.77.0.2/32", "10.77.0.2").await;
    let client = Client::start(&ClientConfig { persistent_keepalive: Some(1), ..config }).await.unwrap();
    // No connection yet: the handshake came from `start` itself.
    let shaken = common::eventually(WAIT, async || {
        let status = gw.handle.peer(key).await.unwrap()?;
        status.last_handshake.map(|_| status.stats.rx_bytes)
    });
    let after_handshake = shaken.await.expect("the gateway saw a handshake");
    // Then keepalives, with no traffic at all: the gateway keeps hearing from the client.
    let kept = common::eventually(WAIT, async || {
        let rx = gw.handle.peer(key).await.unwrap()?.stats.rx_bytes;
        (rx > after_handshake).then_some(rx)
    });
    assert!(kept.await.is_some(), "a keepalive arrived");
    let gateway_peer = client.tunnel().peer(client.gateway()).await.unwrap().unwrap();
    assert!(gateway_peer.last_handshake.is_some() && gateway_peer.stats.handshakes > 0, "{gateway_peer:?}");
    assert!(gw.accepted.is_empty(), "no connection was opened");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nobody_listens_on_refuses_the_connection() {
    let gw = gateway().await;
    let (_, config) = device(&gw, "10.77.0.2/32", "10.77.0.2").await;
    let client = Client::start(&config).await.unwrap();
    let refused = tokio::time::timeout(WAIT, client.connect("10.77.0.1:9".parse().unwrap())).await.expect("in time");
    assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
    // A destination outside the gateway's AllowedIPs has no route in the client's engine: nothing leaves, and the
    // connection waits (until TCP's timeout) rather than opening.
    let client = std::sync::Arc::new(client);
    let nowhere = tokio::spawn({
        let client = client.clone();
        async move { client.connect("192.0.2.1:80".parse().unwrap()).await }
    });
    let unrouted = common::eventually(WAIT, async || {
        let no_route = client.tunnel().stats().await.unwrap().engine.no_route;
        (no_route > 0).then_some(no_route)
    });
    assert!(unrouted.await.is_some(), "the SYN found no route");
    assert!(!nowhere.is_finished(), "no answer can come");
    nowhere.abort();
    // The same client still connects.
    client.connect(API).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_connect_from_another_peers_address() {
    let mut gw = gateway().await;
    // a's key, b's address: the handshake succeeds, the SYN is dropped, no connection appears.
    let (a_key, forger) = device(&gw, "10.77.0.2/32", "10.77.0.3").await;
    let (b_key, _) = device(&gw, "10.77.0.3/32", "10.77.0.3").await;
    let forger = Client::start(&forger).await.unwrap();
    let connecting = tokio::spawn(async move { forger.connect(API).await });
    let counted = common::eventually(WAIT, async || {
        let status = gw.handle.peer(a_key).await.unwrap()?;
        (status.stats.spoofed > 0).then_some(status)
    });
    let status = counted.await.expect("the forged SYN arrived and was counted");
    assert!(status.stats.handshakes > 0, "{status:?}");
    assert_eq!(status.stats.delivered, 0, "{status:?}");
    // Had the stack seen the SYN, its SYN-ACK would have been routed to b, who has no endpoint yet.
    let b_status = gw.handle.peer(b_key).await.unwrap().unwrap();
    assert_eq!((b_status.stats.no_endpoint, b_status.stats.tx_bytes), (0, 0), "{b_status:?}");
    assert!(!connecting.is_finished(), "the forger's connection never opened");
    connecting.abort();
    assert!(gw.accepted.try_recv().is_err(), "no connection was accepted");
}
