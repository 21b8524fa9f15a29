//! System test against an independent WireGuard implementation: `wireguard-go`, configured with `wg`, in a network
//! namespace, reaches the gateway's userspace face through the tunnel with `curl`. Needs root.

mod common;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use common::{eventually, Netns};
use simpul_tunnel::netstack::{self, NetstackConfig, TcpListener, TcpStream};
use simpul_tunnel::{Engine, EngineConfig, PeerConfig, PrivateKey, PublicKey, TunnelHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIG: usize = 4 << 20;
const WAIT: Duration = Duration::from_secs(10);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn serve(listener: TcpListener) {
    while let Ok(stream) = listener.accept().await {
        tokio::spawn(answer(stream));
    }
}

/// A tiny HTTP/1.1 responder: `/` names the caller's peer and address, `/big` sends a known pattern, `/upload` counts
/// and sums what it receives.
async fn answer(mut stream: TcpStream) -> io::Result<()> {
    let mut request = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(pos) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if request.len() > 16 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = match path.as_str() {
        "/big" => pattern(BIG),
        "/upload" => {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut received = request[head_end..].to_vec();
            while received.len() < length {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&chunk[..n]);
            }
            let sum: u64 = received.iter().map(|&b| u64::from(b)).sum();
            format!("received={} sum={sum}\n", received.len()).into_bytes()
        }
        _ => format!("peer={} address={}\n", stream.peer(), stream.peer_addr().ip()).into_bytes(),
    };
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
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

    // The client: keys from `wg`, so key handling is checked against wireguard-tools too.
    let client_private = common::run("wg", &["genkey"]);
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, &client_private.stdout).unwrap();
    let client_public: PublicKey = {
        let mut pubkey = std::process::Command::new("wg")
            .arg("pubkey")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(pubkey.stdin.as_mut().unwrap(), &client_private.stdout).unwrap();
        stdout(&pubkey.wait_with_output().unwrap()).parse().unwrap()
    };
    let iface = format!("wgs{}", ns.tag);
    ns.spawn(&["wireguard-go", "-f", &iface], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")]);
    let up = eventually(WAIT, async || ns.output(&["ip", "link", "show", &iface]).await.status.success().then_some(()));
    assert!(up.await.is_some(), "wireguard-go created {iface}");
    let endpoint = tunnel.local_addr().to_string();
    let gateway_public = gateway_key.public_key().to_string();
    ns.exec(&[
        "wg",
        "set",
        &iface,
        "private-key",
        key_file.to_str().unwrap(),
        "peer",
        &gateway_public,
        "endpoint",
        &endpoint,
        "allowed-ips",
        "10.77.0.0/16",
    ]);
    ns.exec(&["ip", "addr", "add", "10.77.0.2/16", "dev", &iface]);
    // A second address inside the tunnel prefix but outside the peer's AllowedIPs, to spoof from.
    ns.exec(&["ip", "addr", "add", "10.77.9.9/16", "dev", &iface]);
    ns.exec(&["ip", "link", "set", &iface, "up"]);
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

    // Bulk in both directions: many segments, windows filling and draining, data intact.
    let big = ns.output(&["curl", "-sS", "--max-time", "30", "http://10.77.0.1:8000/big"]).await;
    assert!(big.status.success(), "curl /big: {}", String::from_utf8_lossy(&big.stderr));
    assert!(big.stdout == pattern(BIG), "downloaded {} bytes, not the pattern", big.stdout.len());
    let upload: Vec<u8> = (0..BIG).map(|_| rand::random()).collect();
    let upload_file = dir.path().join("upload.bin");
    std::fs::write(&upload_file, &upload).unwrap();
    let sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();
    let data = format!("@{}", upload_file.display());
    let up =
        ns.output(&["curl", "-sS", "--max-time", "30", "--data-binary", &data, "http://10.77.0.1:8000/upload"]).await;
    assert!(up.status.success(), "curl /upload: {}", String::from_utf8_lossy(&up.stderr));
    assert_eq!(stdout(&up), format!("received={BIG} sum={sum}"));

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
