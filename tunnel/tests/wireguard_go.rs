//! System test against an independent WireGuard implementation: `wireguard-go`, configured with `wg`, in a network
//! namespace, reaches the gateway's userspace face through the tunnel with `curl`. Needs root.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{eventually, stdout, Netns};
use simpul_tunnel::netstack::{self, NetstackConfig, TcpListener};
use simpul_tunnel::{Engine, EngineConfig, PeerConfig, PrivateKey, TunnelHandle};

const WAIT: Duration = Duration::from_secs(10);

async fn serve(listener: TcpListener) {
    while let Ok(stream) = listener.accept().await {
        let greeting = format!("peer={} address={}", stream.peer(), stream.peer_addr().ip());
        tokio::spawn(common::answer(stream, greeting));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wireguard_go_client_reaches_the_userspace_face_as_itself() {
    const NAME: &str = "a_wireguard_go_client_reaches_the_userspace_face_as_itself";
    if common::missing_prerequisite(NAME, &["wireguard-go", "wg", "ip", "curl"]) {
        return;
    }
    let mut ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();

    // The gateway, on the root side of the veth.
    let gateway_key = PrivateKey::generate();
    let host_ip: IpAddr = ns.host_ip.parse().unwrap();
    let socket = std::net::UdpSocket::bind((host_ip, 0)).unwrap();
    let (face, stack) = netstack::new(NetstackConfig::default()).unwrap();
    let listener = stack.listen(8000).unwrap();
    let engine = Engine::new(gateway_key.clone(), EngineConfig::default());
    let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face).unwrap();
    let server = tokio::spawn(serve(listener));

    // The client, with a second address inside the tunnel prefix but outside its AllowedIPs, to spoof from.
    let (iface, client_public) = common::wireguard_go(
        &mut ns,
        dir.path(),
        gateway_key.public_key(),
        tunnel.local_addr(),
        &["10.77.0.2", "10.77.9.9"],
    )
    .await;
    let gateway_public = gateway_key.public_key().to_string();
    tunnel.set_peer(PeerConfig::new(client_public, ["10.77.0.2/32".parse().unwrap()])).await.unwrap();

    // The answer names the peer that wireguard-go authenticated as, and its tunnel address.
    let curl = ns.output(&["curl", "-sS", "--max-time", "10", "http://10.77.0.1:8000/"]).await;
    assert!(curl.status.success(), "curl: {}", String::from_utf8_lossy(&curl.stderr));
    assert_eq!(stdout(&curl), format!("peer={client_public} address=10.77.0.2"));

    // Both implementations agree a handshake happened, and the gateway learned the client's endpoint.
    let handshakes = stdout(&ns.exec(&["wg", "show", &iface, "latest-handshakes"]));
    let (peer, when) = handshakes.split_once('\t').expect("one peer");
    assert_eq!(peer, gateway_public);
    assert_ne!(when, "0", "wireguard-go completed a handshake");
    let status = tunnel.peer(client_public).await.unwrap().expect("the peer exists");
    assert_eq!(status.endpoint.map(|e| e.ip().to_string()), Some(ns.ns_ip.clone()));
    assert!(status.stats.handshakes >= 1);
    assert!(status.last_handshake.is_some());

    common::bulk_both_ways(&ns, dir.path()).await;

    // A source outside the peer's AllowedIPs is authenticated but dropped, and counted against that peer.
    let spoofed =
        ns.output(&["curl", "-sS", "--max-time", "3", "--interface", "10.77.9.9", "http://10.77.0.1:8000/"]).await;
    assert!(!spoofed.status.success(), "a spoofed source got an answer: {}", stdout(&spoofed));
    let counted = eventually(WAIT, async || {
        let spoofed = tunnel.peer(client_public).await.unwrap()?.stats.spoofed;
        (spoofed > 0).then_some(spoofed)
    });
    assert!(counted.await.is_some(), "the gateway counted the spoofed packets");
    // Had a spoofed SYN reached the stack, its answer would have found no route back.
    assert_eq!(tunnel.stats().await.unwrap().engine.no_route, 0);

    // A removed peer is cut off at once, session and all.
    assert!(tunnel.remove_peer(client_public).await.unwrap());
    let removed = ns.output(&["curl", "-sS", "--max-time", "3", "http://10.77.0.1:8000/"]).await;
    assert!(!removed.status.success(), "a removed peer got an answer: {}", stdout(&removed));
    let stats = tunnel.stats().await.unwrap();
    assert!(stats.engine.unknown_index + stats.engine.unknown_key > 0, "{stats:?}");

    tunnel.shutdown().await;
    driver.await.unwrap();
    tokio::time::timeout(WAIT, server).await.expect("the server stops with the tunnel").unwrap();
}
