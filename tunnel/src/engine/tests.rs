//! The engine against plain boringtun `Tunn` clients, with no sockets: datagrams are passed by hand.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};

use super::*;

#[derive(Default)]
struct Captured {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    delivered: Vec<(PublicKey, Vec<u8>)>,
}

impl Captured {
    fn take_sent(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }
}

impl Transmit for Captured {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.sent.push((to, datagram.to_vec()));
    }
}

impl Output for Captured {
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]) {
        self.delivered.push((*peer, packet.to_vec()));
    }
}

/// A stock WireGuard peer: boringtun's `Tunn` driven by hand, at a fixed UDP address.
struct Client {
    private: PrivateKey,
    key: PublicKey,
    tunn: Tunn,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Client {
    fn new(gateway: &Engine, port: u16) -> Self {
        let private = PrivateKey::generate();
        let tunn =
            Tunn::new(private.secret().clone(), gateway.public_key().to_x25519(), None, None, rand::random(), None);
        Self {
            key: private.public_key(),
            private,
            tunn,
            addr: SocketAddr::from(([192, 0, 2, 10], port)),
            buf: vec![0; BUF_LEN],
        }
    }

    fn config(&self, allowed: &str) -> PeerConfig {
        PeerConfig::new(self.key, allowed.split(',').map(|n| n.parse().unwrap()))
    }

    fn initiation(&mut self) -> Vec<u8> {
        match self.tunn.format_handshake_initiation(&mut self.buf, true) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            other => panic!("no initiation: {other:?}"),
        }
    }

    /// Feeds a datagram from the gateway; returns what the client sends back and what it decrypted.
    fn receive(&mut self, datagram: &[u8]) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let mut replies = Vec::new();
        let mut packet = None;
        match self.tunn.decapsulate(None, datagram, &mut self.buf) {
            TunnResult::WriteToNetwork(d) => {
                replies.push(d.to_vec());
                while let TunnResult::WriteToNetwork(d) = self.tunn.decapsulate(None, &[], &mut self.buf) {
                    replies.push(d.to_vec());
                }
            }
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => packet = Some(p.to_vec()),
            TunnResult::Done => {}
            TunnResult::Err(e) => panic!("client rejected a datagram: {e:?}"),
        }
        (replies, packet)
    }

    fn encrypt(&mut self, packet: &[u8]) -> Vec<u8> {
        match self.tunn.encapsulate(packet, &mut self.buf) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            other => panic!("client has no session: {other:?}"),
        }
    }
}

fn engine() -> Engine {
    Engine::new(PrivateKey::generate(), EngineConfig::default())
}

/// A minimal IPv4/UDP packet; nothing on this path checks checksums.
fn ipv4(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&8000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// Runs the client-initiated handshake to completion.
fn handshake(engine: &mut Engine, client: &mut Client, now: Instant) {
    let mut out = Captured::default();
    let init = client.initiation();
    engine.handle_datagram(now, client.addr, &init, &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1, "one handshake response");
    assert_eq!(sent[0].0, client.addr);
    let (replies, _) = client.receive(&sent[0].1);
    for reply in replies {
        engine.handle_datagram(now, client.addr, &reply, &mut out);
    }
    assert!(out.sent.is_empty() && out.delivered.is_empty(), "a keepalive produces nothing");
}

/// Clients `a` (port 1001, owning `a_ips`) and `b` (port 1002, owning `b_ips`) configured as peers of `gw`.
fn two_peers(mut gw: Engine, a_ips: &str, b_ips: &str) -> (Engine, Client, Client) {
    let a = Client::new(&gw, 1001);
    let b = Client::new(&gw, 1002);
    gw.set_peer(a.config(a_ips)).unwrap();
    gw.set_peer(b.config(b_ips)).unwrap();
    (gw, a, b)
}

/// A default engine with two peers as in `two_peers`, each with a session from a completed handshake at the
/// returned instant.
fn two_connected_peers(a_ips: &str, b_ips: &str) -> (Engine, Client, Client, Instant) {
    let now = Instant::now();
    let (mut gw, mut a, mut b) = two_peers(engine(), a_ips, b_ips);
    handshake(&mut gw, &mut a, now);
    handshake(&mut gw, &mut b, now);
    (gw, a, b, now)
}

#[test]
fn data_is_delivered_tagged_with_the_peer_that_sent_it() {
    let (mut gw, mut a, mut b, now) = two_connected_peers("10.77.0.2/32", "10.77.0.3/32");

    let mut out = Captured::default();
    let from_a = ipv4("10.77.0.2", "10.77.0.1", b"from a");
    let from_b = ipv4("10.77.0.3", "10.77.0.1", b"from b");
    gw.handle_datagram(now, b.addr, &b.encrypt(&from_b), &mut out);
    gw.handle_datagram(now, a.addr, &a.encrypt(&from_a), &mut out);

    assert_eq!(out.delivered, vec![(b.key, from_b), (a.key, from_a)]);
    let status = gw.peer(&a.key).unwrap();
    assert_eq!(status.endpoint, Some(a.addr));
    assert_eq!(status.stats.handshakes, 1);
    assert_eq!(status.stats.delivered, 1);
    assert!(status.stats.rx_bytes > 0 && status.stats.tx_bytes > 0);
    assert!(status.last_handshake.is_some());
}

#[test]
fn an_inner_source_outside_allowed_ips_is_dropped_and_counted() {
    let now = Instant::now();
    let (mut gw, mut a, b) = two_peers(engine(), "10.77.0.2/32", "10.77.0.3/32");
    handshake(&mut gw, &mut a, now);

    let mut out = Captured::default();
    // Another peer's address, and an address nobody owns.
    for src in ["10.77.0.3", "10.77.9.9"] {
        gw.handle_datagram(now, a.addr, &a.encrypt(&ipv4(src, "10.77.0.1", b"spoof")), &mut out);
    }
    assert!(out.delivered.is_empty());
    assert_eq!(gw.peer(&a.key).unwrap().stats.spoofed, 2);
    assert_eq!(gw.peer(&b.key).unwrap().stats, PeerStats::default());
}

#[test]
fn an_initiation_from_an_unknown_key_gets_no_answer() {
    let mut gw = engine();
    let mut stranger = Client::new(&gw, 1001);
    let mut out = Captured::default();
    gw.handle_datagram(Instant::now(), stranger.addr, &stranger.initiation(), &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(gw.stats().unknown_key, 1);
}

#[test]
fn garbage_and_unknown_indices_are_counted_not_answered() {
    let mut gw = engine();
    let now = Instant::now();
    let mut a = Client::new(&gw, 1001);
    gw.set_peer(a.config("10.77.0.2/32")).unwrap();
    handshake(&mut gw, &mut a, now);
    let data = a.encrypt(&ipv4("10.77.0.2", "10.77.0.1", b"x"));
    gw.remove_peer(&a.key);

    let mut out = Captured::default();
    gw.handle_datagram(now, a.addr, b"hello", &mut out);
    gw.handle_datagram(now, a.addr, &data, &mut out);
    assert!(out.sent.is_empty() && out.delivered.is_empty());
    assert_eq!(gw.stats().invalid, 1);
    assert_eq!(gw.stats().unknown_index, 1);
}

#[test]
fn outbound_packets_go_to_the_peer_owning_the_destination() {
    let (mut gw, _a, mut b, _now) = two_connected_peers("10.77.0.2/32", "10.77.0.3/32,192.168.50.0/24");

    let mut out = Captured::default();
    let to_b = ipv4("10.77.0.1", "192.168.50.7", b"to b's site");
    gw.send_ip(&to_b, &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, b.addr);
    assert_eq!(b.receive(&sent[0].1).1, Some(to_b));

    gw.send_ip(&ipv4("10.77.0.1", "10.99.0.1", b"nowhere"), &mut out);
    gw.send_ip(b"not ip", &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(gw.stats().no_route, 2);
}

#[test]
fn a_packet_for_a_peer_without_a_session_waits_for_the_handshake_the_gateway_starts() {
    let mut gw = engine();
    let now = Instant::now();
    let mut a = Client::new(&gw, 1001);
    let mut config = a.config("10.77.0.2/32");
    config.endpoint = Some(a.addr);
    gw.set_peer(config).unwrap();

    let mut out = Captured::default();
    let packet = ipv4("10.77.0.1", "10.77.0.2", b"queued");
    gw.send_ip(&packet, &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1, "an initiation, not the packet");
    let (replies, delivered) = a.receive(&sent[0].1);
    assert_eq!(delivered, None);
    assert_eq!(replies.len(), 1, "a handshake response");

    gw.handle_datagram(now, a.addr, &replies[0], &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 2, "a keepalive, then the queued packet");
    assert_eq!(a.receive(&sent[0].1).1, None);
    assert_eq!(a.receive(&sent[1].1).1, Some(packet));
}

#[test]
fn initiate_starts_a_handshake_a_stock_peer_completes_before_any_packet() {
    let mut gw = engine();
    let now = Instant::now();
    let mut a = Client::new(&gw, 1001);
    let mut out = Captured::default();
    assert!(!gw.initiate(&a.key, &mut out), "an unknown key");
    gw.set_peer(a.config("10.77.0.2/32")).unwrap();
    assert!(!gw.initiate(&a.key, &mut out), "nowhere to send it");
    assert_eq!(gw.peer(&a.key).unwrap().stats.no_endpoint, 1);
    assert!(out.sent.is_empty());

    let mut config = a.config("10.77.0.2/32");
    config.endpoint = Some(a.addr);
    gw.set_peer(config).unwrap();
    assert!(gw.initiate(&a.key, &mut out));
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, a.addr);
    // boringtun, as the responder, answers the initiation; the response gives the engine a session at once.
    let (replies, delivered) = a.receive(&sent[0].1);
    assert_eq!((replies.len(), delivered), (1, None), "a handshake response");
    gw.handle_datagram(now, a.addr, &replies[0], &mut out);
    assert_eq!(out.take_sent().len(), 1, "the initiator's keepalive confirms the session");
    let status = gw.peer(&a.key).unwrap();
    assert!(status.last_handshake.is_some() && status.stats.handshakes == 1, "{status:?}");
    // The first packet then leaves as data, with no handshake before it.
    let packet = ipv4("10.77.0.1", "10.77.0.2", b"first");
    gw.send_ip(&packet, &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(a.receive(&sent[0].1).1, Some(packet));
}

#[test]
fn a_peer_without_an_endpoint_cannot_be_sent_to() {
    let mut gw = engine();
    let a = Client::new(&gw, 1001);
    gw.set_peer(a.config("10.77.0.2/32")).unwrap();
    let mut out = Captured::default();
    gw.send_ip(&ipv4("10.77.0.1", "10.77.0.2", b"x"), &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(gw.peer(&a.key).unwrap().stats.no_endpoint, 1);
}

#[test]
fn initiations_above_the_per_peer_cap_wait_for_the_next_second() {
    let gw = Engine::new(PrivateKey::generate(), EngineConfig { initiations_per_peer: 3, ..EngineConfig::default() });
    let (mut gw, mut a, mut b) = two_peers(gw, "10.77.0.2/32", "10.77.0.3/32");
    let t0 = Instant::now();
    let mut out = Captured::default();

    for _ in 0..5 {
        gw.handle_datagram(t0, a.addr, &a.initiation(), &mut out);
    }
    assert_eq!(out.take_sent().len(), 3);
    assert_eq!(gw.peer(&a.key).unwrap().stats.initiations_capped, 2);

    // Another key is not held back by the first one's flood.
    gw.handle_datagram(t0, b.addr, &b.initiation(), &mut out);
    assert_eq!(out.take_sent().len(), 1);

    gw.handle_datagram(t0 + Duration::from_millis(999), a.addr, &a.initiation(), &mut out);
    assert!(out.take_sent().is_empty());
    gw.handle_datagram(t0 + Duration::from_secs(1), a.addr, &a.initiation(), &mut out);
    assert_eq!(out.take_sent().len(), 1);
}

#[test]
fn under_load_initiations_get_a_cookie_and_a_retry_with_it_gets_through() {
    // Each answered initiation counts twice against the shared limiter, so the second one finds it under load.
    let gw = Engine::new(PrivateKey::generate(), EngineConfig { handshake_load_limit: 2, ..EngineConfig::default() });
    let now = Instant::now();
    let (mut gw, mut a, mut b) = two_peers(gw, "10.77.0.2/32", "10.77.0.3/32");
    handshake(&mut gw, &mut a, now);

    let mut out = Captured::default();
    gw.handle_datagram(now, b.addr, &b.initiation(), &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1[0], COOKIE_REPLY);
    assert_eq!(sent[0].1.len(), 64);
    assert_eq!(gw.stats().cookie_replies, 1);
    assert_eq!(gw.peer(&b.key).unwrap().endpoint, None, "a cookie reply proves nothing about the sender");

    // The client takes the cookie; its next initiation carries a valid mac2 for its address.
    assert_eq!(b.receive(&sent[0].1), (vec![], None));
    gw.handle_datagram(now, b.addr, &b.initiation(), &mut out);
    let sent = out.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1[0], 2, "a handshake response");

    // The same cookie is bound to the address: from elsewhere it earns only another cookie.
    b.addr = SocketAddr::from(([192, 0, 2, 99], 1002));
    gw.handle_datagram(now, b.addr, &b.initiation(), &mut out);
    assert_eq!(out.take_sent()[0].1[0], COOKIE_REPLY);
}

#[test]
fn peers_change_live_without_disturbing_sessions() {
    let mut gw = engine();
    let now = Instant::now();
    let mut a = Client::new(&gw, 1001);
    let mut b = Client::new(&gw, 1002);
    assert_eq!(gw.set_peer(a.config("10.77.0.2/32")), Ok(PeerChange::Added));
    gw.set_peer(b.config("10.77.0.3/32")).unwrap();
    handshake(&mut gw, &mut a, now);
    handshake(&mut gw, &mut b, now);
    let mut out = Captured::default();

    // Widen a's AllowedIPs: its existing session carries the new source at once.
    assert_eq!(gw.set_peer(a.config("10.77.0.2/32,10.77.5.0/24")), Ok(PeerChange::Updated));
    let wide = ipv4("10.77.5.9", "10.77.0.1", b"new range");
    gw.handle_datagram(now, a.addr, &a.encrypt(&wide), &mut out);
    assert_eq!(out.delivered.len(), 1);

    // Give a's /32 to b, as `wg set` would: a may no longer use it, and replies go to b.
    gw.set_peer(b.config("10.77.0.3/32,10.77.0.2/32")).unwrap();
    assert_eq!(gw.peer(&a.key).unwrap().allowed_ips, vec!["10.77.5.0/24".parse::<IpNet>().unwrap()]);
    gw.handle_datagram(now, a.addr, &a.encrypt(&ipv4("10.77.0.2", "10.77.0.1", b"old")), &mut out);
    assert_eq!(gw.peer(&a.key).unwrap().stats.spoofed, 1);
    gw.send_ip(&ipv4("10.77.0.1", "10.77.0.2", b"to b now"), &mut out);
    assert_eq!(out.take_sent()[0].0, b.addr);

    // Removing a leaves b working.
    assert!(gw.remove_peer(&a.key));
    assert!(!gw.remove_peer(&a.key));
    gw.handle_datagram(now, a.addr, &a.encrypt(&wide), &mut out);
    gw.handle_datagram(now, b.addr, &b.encrypt(&ipv4("10.77.0.3", "10.77.0.1", b"still")), &mut out);
    assert_eq!(out.delivered.len(), 2);
    assert_eq!(out.delivered[1].0, b.key);
    gw.send_ip(&ipv4("10.77.0.1", "10.77.5.9", b"gone"), &mut out);
    assert_eq!(gw.stats().no_route, 1, "a removed peer's routes go with it");
}

#[test]
fn a_new_preshared_key_takes_effect_with_a_fresh_session() {
    let mut gw = engine();
    let now = Instant::now();
    let mut a = Client::new(&gw, 1001);
    gw.set_peer(a.config("10.77.0.2/32")).unwrap();
    handshake(&mut gw, &mut a, now);

    let mut config = a.config("10.77.0.2/32");
    config.preshared_key = Some([7; 32]);
    gw.set_peer(config).unwrap();
    let mut out = Captured::default();
    let packet = ipv4("10.77.0.2", "10.77.0.1", b"x");
    gw.handle_datagram(now, a.addr, &a.encrypt(&packet), &mut out);
    assert!(out.delivered.is_empty(), "the old session is gone");
    assert_eq!(gw.stats().rejected, 1);

    // The key enters the handshake only at the response, which a client without it cannot complete.
    gw.handle_datagram(now, a.addr, &a.initiation(), &mut out);
    let response = out.take_sent().remove(0).1;
    assert!(matches!(a.tunn.decapsulate(None, &response, &mut a.buf), TunnResult::Err(_)));

    a.tunn = Tunn::new(a.private.secret().clone(), gw.public_key().to_x25519(), Some([7; 32]), None, 1, None);
    handshake(&mut gw, &mut a, now);
    gw.handle_datagram(now, a.addr, &a.encrypt(&packet), &mut out);
    assert_eq!(out.delivered, vec![(a.key, packet)]);
}

#[test]
fn the_gateway_cannot_peer_with_itself() {
    let private = PrivateKey::generate();
    let mut gw = Engine::new(private.clone(), EngineConfig::default());
    assert_eq!(gw.set_peer(PeerConfig::new(private.public_key(), [])), Err(EngineError::OwnKey));
    assert_eq!(gw.peer_count(), 0);
}

#[test]
fn every_peer_gets_its_own_index_and_data_routes_by_it() {
    let mut gw = engine();
    let now = Instant::now();
    let mut clients: Vec<Client> = (0..50).map(|i| Client::new(&gw, 2000 + i)).collect();
    for (i, c) in clients.iter().enumerate() {
        gw.set_peer(c.config(&format!("10.77.1.{}/32", i + 1))).unwrap();
    }
    for c in &mut clients {
        handshake(&mut gw, c, now);
    }
    let mut out = Captured::default();
    for (i, c) in clients.iter_mut().enumerate().rev() {
        let packet = ipv4(&format!("10.77.1.{}", i + 1), "10.77.0.1", b"hi");
        gw.handle_datagram(now, c.addr, &c.encrypt(&packet), &mut out);
    }
    let tags: Vec<PublicKey> = out.delivered.iter().map(|(k, _)| *k).collect();
    let expected: Vec<PublicKey> = clients.iter().rev().map(|c| c.key).collect();
    assert_eq!(tags, expected);
}

#[test]
fn a_tunnel_address_names_the_peer_that_owns_it_and_follows_changes() {
    let mut engine = engine();
    let (a, b) = (Client::new(&engine, 1), Client::new(&engine, 2));
    engine.set_peer(a.config("10.77.0.2/32,10.77.8.0/24")).unwrap();
    engine.set_peer(b.config("10.77.0.3/32")).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(engine.peer_for_address(ip("10.77.0.2")), Some(a.key));
    assert_eq!(engine.peer_for_address(ip("10.77.8.77")), Some(a.key));
    assert_eq!(engine.peer_for_address(ip("10.77.0.3")), Some(b.key));
    assert_eq!(engine.peer_for_address(ip("10.77.0.4")), None);
    engine.set_peer(b.config("10.77.0.3/32,10.77.8.77/32")).unwrap();
    assert_eq!(engine.peer_for_address(ip("10.77.8.77")), Some(b.key), "the longer prefix wins");
    engine.remove_peer(&a.key);
    assert_eq!(engine.peer_for_address(ip("10.77.0.2")), None);
}
