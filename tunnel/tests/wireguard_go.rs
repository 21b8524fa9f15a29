//! System tests against an independent WireGuard implementation, `wireguard-go` configured with `wg`, in a network
//! namespace (root: namespaces, and wireguard-go's TUN device): as a client it reaches the gateway's userspace face
//! with `curl`; as a server it is reached by Simpul's own client side.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{eventually, stdout, Netns};
use simpul_tunnel::client::Client;
use simpul_tunnel::netstack::{self, NetstackConfig, TcpListener};
use simpul_tunnel::wg_quick::{self, ClientConfig};
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

/// One HTTP/1.1 exchange on a connection the client opened; the body of the answer.
async fn http(stream: &mut simpul_tunnel::netstack::TcpStream, request: &str, body: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT * 3, stream.read_to_end(&mut answer)).await.expect("in time").unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP head") + 4;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..head_end]));
    answer.split_off(head_end)
}

/// The other way round: Simpul's client side, configured from a wg-quick file, reaches a `wireguard-go` server (keys
/// from `wg genkey`/`wg pubkey`, configured with `wg set`) in a namespace and a kernel TCP server behind it, from the
/// root namespace, all of it in this process's userspace: 4 MiB down and up intact, and both sides agree on the
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_side_reaches_a_wireguard_go_server() {
    const NAME: &str = "the_client_side_reaches_a_wireguard_go_server";
    if common::missing_prerequisite(NAME, &["wireguard-go", "wg", "ip"]) {
        return;
    }
    let mut ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let server_private = simpul_integration::netns::run("wg", &["genkey"]);
    let key_file = dir.path().join("server.key");
    std::fs::write(&key_file, &server_private.stdout).unwrap();
    let server_public = stdout(&simpul_integration::netns::run_with_stdin("wg", &["pubkey"], &server_private.stdout));
    let client_key = PrivateKey::generate();

    let iface = simpul_integration::netns::start_wireguard_go(&mut ns).await;
    let client_public = client_key.public_key().to_string();
    #[rustfmt::skip]
    ns.exec(&[
        "wg", "set", &iface, "private-key", key_file.to_str().unwrap(), "listen-port", "51820",
        "peer", &client_public, "allowed-ips", "10.77.0.2/32",
    ]);
    ns.exec(&["ip", "addr", "add", "10.77.0.1/16", "dev", &iface]);
    ns.exec(&["ip", "link", "set", &iface, "up"]);
    let listener = ns.enter(|| std::net::TcpListener::bind("10.77.0.1:8000")).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            tokio::spawn(common::answer(stream, format!("address={}", from.ip())));
        }
    });

    let file = wg_quick::render(&ClientConfig {
        device: "agent-laptop".into(),
        private_key: client_key.to_base64(),
        address: "10.77.0.2".parse().unwrap(),
        gateway_public_key: server_public.clone(),
        endpoint: format!("{}:51820", ns.ns_ip),
        allowed_ips: vec!["10.77.0.1/32".parse().unwrap()],
        persistent_keepalive: Some(25),
        mtu: Some(1420),
    })
    .unwrap();
    let client = Client::start(&wg_quick::parse(&file).unwrap()).await.unwrap();
    let api: std::net::SocketAddr = "10.77.0.1:8000".parse().unwrap();

    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 10.77.0.1\r\nConnection: close\r\n\r\n");
    let mut stream = client.connect(api).await.unwrap();
    assert_eq!(stream.peer().to_string(), server_public, "the connection is tagged with the server's key");
    assert_eq!(http(&mut stream, &get("/"), b"").await, b"address=10.77.0.2\n", "the server saw the client's address");
    let big = http(&mut client.connect(api).await.unwrap(), &get("/big"), b"").await;
    assert!(big == common::pattern(common::BIG), "downloaded {} bytes, not the pattern", big.len());
    let upload: Vec<u8> = (0..common::BIG).map(|_| rand::random()).collect();
    let sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();
    let post = format!(
        "POST /upload HTTP/1.1\r\nHost: 10.77.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        upload.len()
    );
    let answer = http(&mut client.connect(api).await.unwrap(), &post, &upload).await;
    assert_eq!(String::from_utf8_lossy(&answer), format!("received={} sum={sum}\n", common::BIG));

    let handshakes = stdout(&ns.exec(&["wg", "show", &iface, "latest-handshakes"]));
    let (peer, when) = handshakes.split_once('\t').expect("one peer");
    assert_eq!((peer, when != "0"), (client_public.as_str(), true), "wireguard-go completed a handshake");
    let status = client.tunnel().peer(client.gateway()).await.unwrap().expect("the server is the client's peer");
    assert!(status.last_handshake.is_some() && status.stats.delivered > 0, "{status:?}");
    assert_eq!(status.stats.spoofed, 0, "{status:?}");
    client.shutdown().await;
}
