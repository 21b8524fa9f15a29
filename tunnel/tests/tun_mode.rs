//! System test of the kernel TUN face: the gateway's UDP socket and TUN device live in a network namespace of their
//! own (created from a thread that entered it, so the device and its 10.77.0.1 never touch the root namespace), a
//! `wireguard-go` client in a second namespace reaches a TCP server on the gateway's tunnel address with `curl`, and
//! the server learns the client's key from the connection's source address. Needs root.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, stdout, Netns};
use simpul_tunnel::tun::{TunConfig, TunFace};
use simpul_tunnel::{Engine, EngineConfig, Face, PeerConfig, PrivateKey, PublicKey, TunnelHandle};

const WAIT: Duration = Duration::from_secs(10);

/// The TUN face, noting the inner source address of every IPv4 packet the engine delivers to it: what the kernel was
/// given, whatever other traffic does to the counters.
struct Recording {
    face: TunFace,
    sources: Arc<Mutex<HashSet<IpAddr>>>,
}

impl Face for Recording {
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]) {
        if packet.len() >= 20 && packet[0] >> 4 == 4 {
            let source: [u8; 4] = packet[12..16].try_into().unwrap();
            self.sources.lock().unwrap().insert(IpAddr::from(source));
        }
        self.face.deliver(peer, packet);
    }

    fn poll(&mut self, now: std::time::Instant, send: &mut dyn FnMut(&[u8])) {
        self.face.poll(now, send);
    }

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.face.poll_ready(cx)
    }
}

/// Answers each connection with the key of the peer owning its source address, as the API will.
async fn serve(listener: tokio::net::TcpListener, tunnel: TunnelHandle, sources: Arc<Mutex<HashSet<IpAddr>>>) {
    while let Ok((stream, from)) = listener.accept().await {
        sources.lock().unwrap().insert(from.ip());
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            let peer = tunnel.peer_for_address(from.ip()).await.ok().flatten();
            let greeting = match peer {
                Some(key) => format!("peer={key} address={}", from.ip()),
                None => format!("peer=none address={}", from.ip()),
            };
            common::answer(stream, greeting).await
        });
    }
}

async fn a_wireguard_go_client_reaches_a_kernel_socket_through_tun(name: &str, offload: bool) {
    if common::missing_prerequisite(name, &["wireguard-go", "wg", "ip", "curl"]) {
        return;
    }
    let (gw, mut client) = Netns::pair();
    let dir = tempfile::tempdir().unwrap();

    // Without IPv6 the kernel sends the device nothing of its own (router solicitations), so every packet the engine
    // fails to route below comes from the test.
    gw.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    let gateway_key = PrivateKey::generate();
    let config = TunConfig { offload, ..TunConfig::default() };
    let runtime = tokio::runtime::Handle::current();
    let (socket, face, listener) = gw.enter(|| {
        let _runtime = runtime.enter();
        let socket = std::net::UdpSocket::bind((gw.ns_ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
        let face = TunFace::new(&config).expect("the TUN device is created");
        // The address exists now, so a socket can bind to it.
        let listener = std::net::TcpListener::bind("10.77.0.1:8000").unwrap();
        listener.set_nonblocking(true).unwrap();
        (socket, face, listener)
    });
    let link = stdout(&gw.exec(&["ip", "-o", "link", "show", "simpul0"]));
    assert!(link.contains("mtu 1420") && link.contains(",UP"), "{link}");
    let addr = stdout(&gw.exec(&["ip", "-o", "addr", "show", "dev", "simpul0"]));
    assert!(addr.contains("inet 10.77.0.1/16"), "{addr}");

    let engine = Engine::new(gateway_key.clone(), EngineConfig::default());
    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let face = Recording { face, sources: delivered.clone() };
    let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face).unwrap();
    let sources = Arc::new(Mutex::new(HashSet::new()));
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let server = tokio::spawn(serve(listener, tunnel.clone(), sources.clone()));

    let endpoint = SocketAddr::new(gw.ns_ip.parse().unwrap(), tunnel.local_addr().port());
    // A second address inside the tunnel prefix but outside the client's AllowedIPs, to spoof from.
    let (_iface, client_public) =
        common::wireguard_go(&mut client, dir.path(), gateway_key.public_key(), endpoint, &["10.77.0.2", "10.77.9.9"])
            .await;
    tunnel.set_peer(PeerConfig::new(client_public, ["10.77.0.2/32".parse().unwrap()])).await.unwrap();

    // The kernel socket's peer address names the device through the engine's table.
    let curl = client.output(&["curl", "-sS", "--max-time", "10", "http://10.77.0.1:8000/"]).await;
    assert!(curl.status.success(), "curl: {}", String::from_utf8_lossy(&curl.stderr));
    assert_eq!(stdout(&curl), format!("peer={client_public} address=10.77.0.2"));
    let status = tunnel.peer(client_public).await.unwrap().expect("the peer exists");
    assert_eq!(status.endpoint.map(|e| e.ip().to_string()), Some(client.ns_ip.clone()));

    // With offload on, the kernel hands the face TSO super-packets to split and takes coalesced writes.
    common::bulk_both_ways(&client, dir.path()).await;

    // The spoofed source is authenticated, then dropped before the kernel sees it: nothing from it delivered, no
    // connection, no SYN-ACK.
    let spoofed =
        client.output(&["curl", "-sS", "--max-time", "3", "--interface", "10.77.9.9", "http://10.77.0.1:8000/"]).await;
    assert!(!spoofed.status.success(), "a spoofed source got an answer: {}", stdout(&spoofed));
    let counted = eventually(WAIT, async || {
        let spoofed = tunnel.peer(client_public).await.unwrap()?.stats.spoofed;
        (spoofed > 0).then_some(spoofed)
    });
    assert!(counted.await.is_some(), "the gateway counted the spoofed packets");
    assert!(!sources.lock().unwrap().contains(&"10.77.9.9".parse::<IpAddr>().unwrap()));
    let delivered_from = delivered.lock().unwrap().clone();
    let (legitimate, forged) = ("10.77.0.2".parse::<IpAddr>().unwrap(), "10.77.9.9".parse::<IpAddr>().unwrap());
    assert!(delivered_from.contains(&legitimate) && !delivered_from.contains(&forged), "{delivered_from:?}");
    assert_eq!(tunnel.stats().await.unwrap().engine.no_route, 0, "the kernel never answered the spoofed SYN");

    // Packets the kernel routes to an address no peer owns go nowhere and are counted.
    let no_route = tunnel.stats().await.unwrap().engine.no_route;
    gw.enter(|| std::net::UdpSocket::bind("10.77.0.1:0").unwrap().send_to(b"anyone?", "10.77.0.3:9").unwrap());
    let counted = eventually(WAIT, async || (tunnel.stats().await.unwrap().engine.no_route > no_route).then_some(()));
    assert!(counted.await.is_some(), "a packet for an address no peer owns was counted");

    // A removed peer is cut off at once, and its address names nobody.
    assert!(tunnel.remove_peer(client_public).await.unwrap());
    assert_eq!(tunnel.peer_for_address("10.77.0.2".parse().unwrap()).await.unwrap(), None);
    let removed = client.output(&["curl", "-sS", "--max-time", "3", "http://10.77.0.1:8000/"]).await;
    assert!(!removed.status.success(), "a removed peer got an answer: {}", stdout(&removed));

    // The device belongs to the face: it disappears with the tunnel.
    tunnel.shutdown().await;
    driver.await.unwrap();
    server.abort();
    let gone = eventually(WAIT, async || {
        (!gw.output(&["ip", "link", "show", "simpul0"]).await.status.success()).then_some(())
    });
    assert!(gone.await.is_some(), "simpul0 was removed when the tunnel stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tun_mode_with_offload_serves_a_wireguard_go_client_as_itself() {
    a_wireguard_go_client_reaches_a_kernel_socket_through_tun(
        "tun_mode_with_offload_serves_a_wireguard_go_client_as_itself",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tun_mode_without_offload_serves_a_wireguard_go_client_as_itself() {
    a_wireguard_go_client_reaches_a_kernel_socket_through_tun(
        "tun_mode_without_offload_serves_a_wireguard_go_client_as_itself",
        false,
    )
    .await;
}
