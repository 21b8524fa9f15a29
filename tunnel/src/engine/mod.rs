//! The WireGuard engine: the peer table, handshake routing and limits, and cryptokey routing over boringtun's
//! `noise::Tunn`. It does no I/O: the caller hands in datagrams, IP packets and the current time, and the engine hands
//! back what to send and what to deliver through [`Output`].

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519;
use ipnet::IpNet;

use crate::allowed_ips::AllowedIps;
use crate::keys::{PrivateKey, PublicKey};

#[cfg(test)]
mod tests;

/// boringtun keeps the low byte of a session index for its own rotation; a peer owns the upper 24 bits.
const INDEX_MASK: u32 = (1 << 24) - 1;
/// Large enough for any IP packet plus WireGuard's overhead, so neither `encapsulate` nor `decapsulate` can run short.
const BUF_LEN: usize = 65_536 + 148;
/// WireGuard's data-message overhead (header and AEAD tag), which `encapsulate` needs beyond the packet.
const DATA_OVERHEAD: usize = 32;
/// Message type of a cookie reply, the first byte of the datagram.
const COOKIE_REPLY: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Handshake messages per second, across all peers, before the engine answers initiations with cookie replies
    /// instead of doing Diffie-Hellman. boringtun counts most initiations twice (once in our routing step, once inside
    /// `decapsulate`), so this is about twice the number of initiations per second it answers without cookies.
    pub handshake_load_limit: u64,
    /// Initiations accepted from one peer per second, so that one key cannot starve the others.
    pub initiations_per_peer: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { handshake_load_limit: 1_000, initiations_per_peer: 5 }
    }
}

/// One peer as the control plane describes it; applying it again with other values changes the peer live.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: PublicKey,
    pub preshared_key: Option<[u8; 32]>,
    /// The inner source addresses the peer may use, and the destinations routed to it.
    pub allowed_ips: Vec<IpNet>,
    /// Where to send before the peer has spoken; afterwards the last authenticated source address wins.
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    pub fn new(public_key: PublicKey, allowed_ips: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            public_key,
            preshared_key: None,
            allowed_ips: allowed_ips.into_iter().collect(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("public_key", &self.public_key)
            .field("preshared_key", &self.preshared_key.map(|_| "***"))
            .field("allowed_ips", &self.allowed_ips)
            .field("endpoint", &self.endpoint)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    Added,
    Updated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the gateway's own public key cannot be one of its peers")]
    OwnKey,
    #[error("all 2^24 peer indices are in use")]
    IndicesExhausted,
}

/// Per-peer counters. Bytes are whole datagrams on the wire, as `wg show` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Bytes of authenticated datagrams received from the peer.
    pub rx_bytes: u64,
    /// Bytes of datagrams sent to the peer.
    pub tx_bytes: u64,
    /// Inner IP packets delivered to the face.
    pub delivered: u64,
    /// Authenticated inner packets whose source address is outside the peer's AllowedIPs: dropped.
    pub spoofed: u64,
    /// Handshake messages answered: a response as responder, a keepalive as initiator.
    pub handshakes: u64,
    /// Initiations ignored because the peer exceeded its per-second cap.
    pub initiations_capped: u64,
    /// Packets for the peer dropped because it has never spoken and has no configured endpoint.
    pub no_endpoint: u64,
}

/// Engine-wide counters for what could not be attributed to a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Datagrams that are not WireGuard messages or fail their MAC.
    pub invalid: u64,
    /// Initiations whose static key is not a peer: dropped without an answer.
    pub unknown_key: u64,
    /// Messages naming a receiver index that belongs to no peer.
    pub unknown_index: u64,
    /// Messages of a known peer that boringtun refused (replay, bad tag, stale session).
    pub rejected: u64,
    pub cookie_replies: u64,
    /// Outbound IP packets whose destination no peer's AllowedIPs contain.
    pub no_route: u64,
    /// Outbound IP packets too large to encapsulate.
    pub oversized: u64,
}

/// A peer's state for the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub public_key: PublicKey,
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    /// Age of the current session's handshake; `None` without a session.
    pub last_handshake: Option<Duration>,
    pub stats: PeerStats,
}

/// Where the engine sends datagrams.
pub trait Transmit {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]);
}

/// Where the engine sends datagrams and delivers authenticated inner packets.
pub trait Output: Transmit {
    /// An inner IP packet from `peer`, whose source address passed the AllowedIPs check.
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]);
}

pub struct Engine {
    private_key: PrivateKey,
    public_key: x25519::PublicKey,
    config: EngineConfig,
    limiter: Arc<RateLimiter>,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<PublicKey, u32>,
    routes: AllowedIps<u32>,
    next_index: u32,
    buf: Box<[u8]>,
    stats: EngineStats,
}

struct Peer {
    key: PublicKey,
    tunn: Tunn,
    preshared_key: Option<[u8; 32]>,
    persistent_keepalive: Option<u16>,
    allowed_ips: Vec<IpNet>,
    endpoint: Option<SocketAddr>,
    initiations: InitiationWindow,
    stats: PeerStats,
}

impl Peer {
    fn authenticated(&mut self, from: SocketAddr, len: usize) {
        self.endpoint = Some(from);
        self.stats.rx_bytes += len as u64;
    }

    /// Sends a datagram to the peer's endpoint; one it cannot have (it never spoke, none configured) is counted.
    fn transmit(&mut self, datagram: &[u8], out: &mut impl Transmit) -> bool {
        match self.endpoint {
            Some(endpoint) => {
                self.stats.tx_bytes += datagram.len() as u64;
                out.send(endpoint, datagram);
                true
            }
            None => {
                self.stats.no_endpoint += 1;
                false
            }
        }
    }

    fn status(&self) -> PeerStatus {
        PeerStatus {
            public_key: self.key,
            allowed_ips: self.allowed_ips.clone(),
            endpoint: self.endpoint,
            persistent_keepalive: self.persistent_keepalive,
            last_handshake: self.tunn.time_since_last_handshake(),
            stats: self.stats,
        }
    }
}

/// A fixed one-second window; coarse, but it only has to stop one key from monopolising the handshake path.
#[derive(Debug, Default)]
struct InitiationWindow {
    start: Option<Instant>,
    count: u32,
}

impl InitiationWindow {
    fn admit(&mut self, now: Instant, cap: u32) -> bool {
        match self.start {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {
                if self.count >= cap {
                    return false;
                }
                self.count += 1;
            }
            _ => {
                self.start = Some(now);
                self.count = 1;
            }
        }
        true
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("public_key", &PublicKey::from_bytes(self.public_key.to_bytes()))
            .field("config", &self.config)
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(private_key: PrivateKey, config: EngineConfig) -> Self {
        let public_key = x25519::PublicKey::from(private_key.secret());
        Self {
            limiter: Arc::new(RateLimiter::new(&public_key, config.handshake_load_limit)),
            private_key,
            public_key,
            config,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            routes: AllowedIps::new(),
            // A random start keeps indices from saying how many peers came before.
            next_index: rand::random::<u32>() & INDEX_MASK,
            buf: vec![0; BUF_LEN].into_boxed_slice(),
            stats: EngineStats::default(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.public_key.to_bytes())
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn peer(&self, key: &PublicKey) -> Option<PeerStatus> {
        self.by_key.get(key).map(|index| self.peers[index].status())
    }

    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers.values().map(Peer::status).collect()
    }

    /// The peer whose AllowedIPs contain `addr`: in TUN mode, the device behind a connection's source address, which
    /// only that peer can use since inbound packets from any other peer with that source are dropped.
    pub fn peer_for_address(&self, addr: IpAddr) -> Option<PublicKey> {
        self.routes.lookup(addr).map(|index| self.peers[&index].key)
    }

    /// Adds a peer or changes one in place. Its session survives unless the preshared key or keepalive changes
    /// (boringtun fixes both at construction); other peers are not touched. A network that another peer held moves to
    /// this one, as with `wg set`.
    pub fn set_peer(&mut self, config: PeerConfig) -> Result<PeerChange, EngineError> {
        if config.public_key == self.public_key() {
            return Err(EngineError::OwnKey);
        }
        let mut allowed_ips: Vec<IpNet> = config.allowed_ips.iter().map(IpNet::trunc).collect();
        allowed_ips.sort_unstable();
        allowed_ips.dedup();

        let (index, change) = match self.by_key.get(&config.public_key) {
            Some(&index) => {
                let peer = self.peers.get_mut(&index).expect("by_key and peers agree");
                for net in &peer.allowed_ips {
                    self.routes.remove(*net, index);
                }
                if peer.preshared_key != config.preshared_key
                    || peer.persistent_keepalive != config.persistent_keepalive
                {
                    peer.tunn = new_tunn(&self.private_key, &self.limiter, &config, index);
                    peer.preshared_key = config.preshared_key;
                    peer.persistent_keepalive = config.persistent_keepalive;
                }
                if config.endpoint.is_some() {
                    peer.endpoint = config.endpoint;
                }
                peer.allowed_ips = allowed_ips;
                (index, PeerChange::Updated)
            }
            None => {
                let index = self.allocate_index()?;
                let peer = Peer {
                    key: config.public_key,
                    tunn: new_tunn(&self.private_key, &self.limiter, &config, index),
                    preshared_key: config.preshared_key,
                    persistent_keepalive: config.persistent_keepalive,
                    allowed_ips,
                    endpoint: config.endpoint,
                    initiations: InitiationWindow::default(),
                    stats: PeerStats::default(),
                };
                self.peers.insert(index, peer);
                self.by_key.insert(config.public_key, index);
                (index, PeerChange::Added)
            }
        };

        let nets = self.peers[&index].allowed_ips.clone();
        for net in nets {
            if let Some(previous) = self.routes.insert(net, index).filter(|&p| p != index) {
                if let Some(other) = self.peers.get_mut(&previous) {
                    other.allowed_ips.retain(|n| *n != net);
                }
            }
        }
        Ok(change)
    }

    /// Removes a peer; its sessions end at once, since no index routes to it any more.
    pub fn remove_peer(&mut self, key: &PublicKey) -> bool {
        let Some(index) = self.by_key.remove(key) else { return false };
        let peer = self.peers.remove(&index).expect("by_key and peers agree");
        for net in peer.allowed_ips {
            self.routes.remove(net, index);
        }
        true
    }

    fn allocate_index(&mut self) -> Result<u32, EngineError> {
        // Sequential from a random start: an index comes back only after all 2^24 others, so a removed peer's late
        // packets find nobody rather than its successor.
        for _ in 0..=INDEX_MASK {
            let index = self.next_index;
            self.next_index = (index + 1) & INDEX_MASK;
            if !self.peers.contains_key(&index) {
                return Ok(index);
            }
        }
        Err(EngineError::IndicesExhausted)
    }

    /// Handles one UDP datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], out: &mut impl Output) {
        let index = match self.limiter.verify_packet(Some(from.ip()), datagram, &mut self.buf) {
            Ok(Packet::HandshakeInit(init)) => {
                let Ok(half) = parse_handshake_anon(self.private_key.secret(), &self.public_key, &init) else {
                    self.stats.invalid += 1;
                    return;
                };
                let Some(&index) = self.by_key.get(&PublicKey::from_bytes(half.peer_static_public)) else {
                    self.stats.unknown_key += 1;
                    return;
                };
                let peer = self.peers.get_mut(&index).expect("by_key and peers agree");
                if !peer.initiations.admit(now, self.config.initiations_per_peer) {
                    peer.stats.initiations_capped += 1;
                    return;
                }
                index
            }
            Ok(Packet::HandshakeResponse(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketCookieReply(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketData(p)) => p.receiver_idx >> 8,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                self.stats.cookie_replies += 1;
                out.send(from, cookie);
                return;
            }
            Err(_) => {
                self.stats.invalid += 1;
                return;
            }
        };
        let Some(peer) = self.peers.get_mut(&index) else {
            self.stats.unknown_index += 1;
            return;
        };

        let (packet, src) = match peer.tunn.decapsulate(Some(from.ip()), datagram, &mut self.buf) {
            TunnResult::Done => {
                peer.authenticated(from, datagram.len());
                return;
            }
            TunnResult::WriteToNetwork(reply) if reply.first() == Some(&COOKIE_REPLY) => {
                // The limiter counted this initiation a second time inside `decapsulate` and found us under load.
                self.stats.cookie_replies += 1;
                out.send(from, reply);
                return;
            }
            TunnResult::WriteToNetwork(reply) => {
                peer.authenticated(from, datagram.len());
                peer.stats.handshakes += 1;
                peer.stats.tx_bytes += reply.len() as u64;
                out.send(from, reply);
                // A new session releases the packets boringtun queued while it had none.
                while let TunnResult::WriteToNetwork(queued) = peer.tunn.decapsulate(None, &[], &mut self.buf) {
                    peer.stats.tx_bytes += queued.len() as u64;
                    out.send(from, queued);
                }
                return;
            }
            TunnResult::WriteToTunnelV4(packet, src) => (packet, IpAddr::V4(src)),
            TunnResult::WriteToTunnelV6(packet, src) => (packet, IpAddr::V6(src)),
            TunnResult::Err(_) => {
                self.stats.rejected += 1;
                return;
            }
        };
        peer.authenticated(from, datagram.len());
        // boringtun does not check AllowedIPs; this is what lets the rest of Simpul trust an inner source address.
        if self.routes.lookup(src) == Some(index) {
            peer.stats.delivered += 1;
            out.deliver(&peer.key, packet);
        } else {
            peer.stats.spoofed += 1;
        }
    }

    /// Encrypts an IP packet for the peer whose AllowedIPs contain its destination. Without a session boringtun keeps
    /// the packet and starts a handshake; the packet leaves when the response arrives.
    pub fn send_ip(&mut self, packet: &[u8], out: &mut impl Transmit) {
        if packet.len() + DATA_OVERHEAD > self.buf.len() {
            self.stats.oversized += 1;
            return;
        }
        let Some(index) = Tunn::dst_address(packet).and_then(|dst| self.routes.lookup(dst)) else {
            self.stats.no_route += 1;
            return;
        };
        let peer = self.peers.get_mut(&index).expect("routes point at live peers");
        if let TunnResult::WriteToNetwork(datagram) = peer.tunn.encapsulate(packet, &mut self.buf) {
            peer.transmit(datagram, out);
        }
    }

    /// Starts a handshake with `key` now, as its initiator, rather than when the first packet for it is sent: what a
    /// client does on start, so that its first connection does not wait for a handshake. The peer must have an
    /// endpoint; false if it has none or is unknown.
    pub fn initiate(&mut self, key: &PublicKey, out: &mut impl Transmit) -> bool {
        let Some(peer) = self.by_key.get(key).and_then(|index| self.peers.get_mut(index)) else { return false };
        // Forced: asked for explicitly, a new initiation replaces one in progress rather than waiting out its retry.
        match peer.tunn.format_handshake_initiation(&mut self.buf, true) {
            TunnResult::WriteToNetwork(datagram) => peer.transmit(datagram, out),
            _ => false,
        }
    }

    /// Runs every peer's timers (keepalives, handshake retries, session expiry). Call it at least every 250 ms.
    pub fn tick(&mut self, out: &mut impl Transmit) {
        // The limiter resets only if a second has passed by its own clock, so calling it on every tick is enough.
        self.limiter.reset_count();
        for peer in self.peers.values_mut() {
            // `ConnectionExpired` needs nothing from us: the sessions are gone and the peer initiates again.
            if let TunnResult::WriteToNetwork(datagram) = peer.tunn.update_timers(&mut self.buf) {
                peer.transmit(datagram, out);
            }
        }
    }
}

fn new_tunn(private_key: &PrivateKey, limiter: &Arc<RateLimiter>, config: &PeerConfig, index: u32) -> Tunn {
    Tunn::new(
        private_key.secret().clone(),
        config.public_key.to_x25519(),
        config.preshared_key,
        config.persistent_keepalive,
        index,
        Some(limiter.clone()),
    )
}
