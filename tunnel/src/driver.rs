//! The async driver: one UDP socket, the [`Engine`] and a [`Face`], run by one tokio task. The control plane talks to
//! it through a [`TunnelHandle`], so peers change between two datagrams and never under a lock on the hot path.
//!
//! Socket I/O is batched through `quinn-udp`: `recvmmsg` with UDP GRO (the kernel hands over runs of a sender's
//! datagrams in one buffer) on the way in; on the way out, consecutive datagrams to the same address leave as one
//! `sendmsg` with UDP GSO. One task keeps each peer's packets in order, well inside boringtun's replay window.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::engine::{Engine, EngineError, EngineStats, Output, PeerChange, PeerConfig, PeerStatus, Transmit};
use crate::keys::PublicKey;

/// boringtun wants its timers run at least every 250 ms; the margin absorbs a busy loop's late ticks.
const TICK: Duration = Duration::from_millis(200);
/// `recvmmsg` calls per wake-up before the face runs, each taking up to `BATCH_SIZE` buffers: fewer wake-ups, bounded
/// latency.
const RECV_ROUNDS: usize = 2;
/// One receive buffer: the largest datagram, or a GRO run of a sender's datagrams, which the kernel keeps under 64 KiB.
const SLOT: usize = 65_536;
/// The most UDP payload one GSO send may carry (an IPv4 datagram's limit, rounded down).
const GSO_BYTES: usize = 65_000;
/// Socket buffers as wireguard-go sets them, so that a burst between two wake-ups is queued rather than dropped.
const SOCKET_BUFFER: usize = 7 << 20;

/// Where authenticated inner packets go and where the packets bound for peers come from: the kernel through TUN, or
/// the userspace network stack.
pub trait Face: Send + 'static {
    /// Takes an inner packet from `peer` whose source address passed the AllowedIPs check. It must not block: queue
    /// the packet or drop it.
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]);

    /// Does the face's pending work, including what `deliver` queued, and hands every IP packet it emits to `send`,
    /// which routes it to the peer owning the destination.
    fn poll(&mut self, now: Instant, send: &mut dyn FnMut(&[u8]));

    /// Ready when `poll` has work that did not come through `deliver`: the application's activity, or a timer.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// A face chosen at run time (TUN or userspace, by configuration).
impl<F: Face + ?Sized> Face for Box<F> {
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]) {
        (**self).deliver(peer, packet);
    }

    fn poll(&mut self, now: Instant, send: &mut dyn FnMut(&[u8])) {
        (**self).poll(now, send);
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        (**self).poll_ready(cx)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("the tunnel has stopped")]
    Stopped,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    pub engine: EngineStats,
    /// Datagrams the socket would not take (a full send buffer): dropped, as a router would.
    pub send_errors: u64,
}

enum Command {
    SetPeer(PeerConfig, oneshot::Sender<Result<PeerChange, EngineError>>),
    RemovePeer(PublicKey, oneshot::Sender<bool>),
    Peer(PublicKey, oneshot::Sender<Option<PeerStatus>>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    PeerFor(IpAddr, oneshot::Sender<Option<PublicKey>>),
    Initiate(PublicKey, oneshot::Sender<bool>),
    Stats(oneshot::Sender<TunnelStats>),
    Shutdown,
}

/// Controls a running tunnel. The tunnel stops on [`TunnelHandle::shutdown`] or when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct TunnelHandle {
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    public_key: PublicKey,
}

impl TunnelHandle {
    /// Starts the driver task on the current tokio runtime, with a bound UDP socket.
    pub fn spawn<F: Face>(socket: std::net::UdpSocket, engine: Engine, face: F) -> io::Result<(Self, JoinHandle<()>)> {
        let state = UdpSocketState::new((&socket).into())?;
        grow_buffers(&socket, &state);
        let socket = UdpSocket::from_std(socket)?;
        let (commands, command_rx) = mpsc::channel(64);
        let handle = Self { commands, local_addr: socket.local_addr()?, public_key: engine.public_key() };
        let driver = Driver {
            socket,
            state,
            engine,
            face,
            commands: command_rx,
            rx: vec![0; SLOT * BATCH_SIZE].into(),
            meta: [RecvMeta::default(); BATCH_SIZE],
            tx: Batch::default(),
            send_errors: 0,
        };
        Ok((handle, tokio::spawn(driver.run())))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    pub async fn set_peer(&self, config: PeerConfig) -> Result<PeerChange, TunnelError> {
        Ok(self.ask(|reply| Command::SetPeer(config, reply)).await??)
    }

    pub async fn remove_peer(&self, key: PublicKey) -> Result<bool, TunnelError> {
        self.ask(|reply| Command::RemovePeer(key, reply)).await
    }

    pub async fn peer(&self, key: PublicKey) -> Result<Option<PeerStatus>, TunnelError> {
        self.ask(|reply| Command::Peer(key, reply)).await
    }

    pub async fn peers(&self) -> Result<Vec<PeerStatus>, TunnelError> {
        self.ask(Command::Peers).await
    }

    /// The peer that owns a tunnel address: who is behind a connection's source address in TUN mode.
    pub async fn peer_for_address(&self, addr: IpAddr) -> Result<Option<PublicKey>, TunnelError> {
        self.ask(|reply| Command::PeerFor(addr, reply)).await
    }

    /// Starts a handshake with the peer now (see [`Engine::initiate`]); false if it is unknown or has no endpoint.
    pub async fn initiate(&self, key: PublicKey) -> Result<bool, TunnelError> {
        self.ask(|reply| Command::Initiate(key, reply)).await
    }

    pub async fn stats(&self) -> Result<TunnelStats, TunnelError> {
        self.ask(Command::Stats).await
    }

    /// Asks the driver to stop; await its `JoinHandle` to know it has.
    pub async fn shutdown(&self) {
        // An error means the driver is gone already, which is what was asked.
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| TunnelError::Stopped)?;
        answer.await.map_err(|_| TunnelError::Stopped)
    }
}

/// Asks for wireguard-go's socket buffers, past the system's limit where allowed (CAP_NET_ADMIN); without the
/// privilege the kernel caps the request, which only costs drops under bursts.
fn grow_buffers(socket: &std::net::UdpSocket, state: &UdpSocketState) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER);
    }
    if setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = state.set_send_buffer_size(socket.into(), SOCKET_BUFFER);
    }
}

struct Driver<F> {
    socket: UdpSocket,
    state: UdpSocketState,
    engine: Engine,
    face: F,
    commands: mpsc::Receiver<Command>,
    /// `BATCH_SIZE` receive buffers of `SLOT` bytes, one per message of a `recvmmsg`.
    rx: Box<[u8]>,
    meta: [RecvMeta; BATCH_SIZE],
    tx: Batch,
    send_errors: u64,
}

impl<F: Face> Driver<F> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ready = self.socket.readable() => match ready {
                    Ok(()) => self.datagrams(),
                    Err(e) => tracing::warn!(error = %e, "waiting on the tunnel socket"),
                },
                _ = ticker.tick() => {
                    let Self { socket, state, engine, tx, send_errors, .. } = &mut self;
                    engine.tick(&mut Net { socket, state, batch: tx, errors: send_errors });
                }
                command = self.commands.recv() => match command {
                    Some(command) => if self.command(command).is_break() { return },
                    None => return,
                },
                () = poll_fn(|cx| self.face.poll_ready(cx)) => {}
            }
            let Self { socket, state, engine, face, tx, send_errors, .. } = &mut self;
            let mut net = Net { socket, state, batch: tx, errors: send_errors };
            face.poll(Instant::now(), &mut |packet| engine.send_ip(packet, &mut net));
            net.flush();
        }
    }

    /// Takes what the socket holds, up to `RECV_ROUNDS` batches, and hands every datagram to the engine.
    fn datagrams(&mut self) {
        let now = Instant::now();
        let Self { socket, state, engine, face, rx, meta, tx, send_errors, .. } = self;
        let (socket, state) = (&*socket, &*state);
        let mut io = Io { net: Net { socket, state, batch: tx, errors: send_errors }, face };
        for _ in 0..RECV_ROUNDS {
            let received = {
                let mut slots = rx.chunks_mut(SLOT);
                let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                    std::array::from_fn(|_| IoSliceMut::new(slots.next().expect("BATCH_SIZE slots")));
                socket.try_io(Interest::READABLE, || state.recv(socket.into(), &mut bufs, meta))
            };
            let count = match received {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "receiving from the tunnel socket");
                    break;
                }
            };
            for (slot, meta) in rx.chunks(SLOT).zip(meta.iter()).take(count) {
                // A GRO run holds several datagrams of one sender, each `stride` bytes but the last.
                for datagram in slot[..meta.len].chunks(meta.stride.max(1)) {
                    engine.handle_datagram(now, meta.addr, datagram, &mut io);
                }
            }
        }
        io.net.flush();
    }

    fn command(&mut self, command: Command) -> ControlFlow<()> {
        // A requester that stopped waiting does not care for the answer, so failed replies are ignored.
        match command {
            Command::SetPeer(config, reply) => {
                let _ = reply.send(self.engine.set_peer(config));
            }
            Command::RemovePeer(key, reply) => {
                let _ = reply.send(self.engine.remove_peer(&key));
            }
            Command::Peer(key, reply) => {
                let _ = reply.send(self.engine.peer(&key));
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.engine.peers());
            }
            Command::PeerFor(addr, reply) => {
                let _ = reply.send(self.engine.peer_for_address(addr));
            }
            Command::Initiate(key, reply) => {
                let Self { socket, state, engine, tx, send_errors, .. } = self;
                let mut net = Net { socket, state, batch: tx, errors: send_errors };
                let _ = reply.send(engine.initiate(&key, &mut net));
                net.flush();
            }
            Command::Stats(reply) => {
                let _ = reply.send(TunnelStats { engine: self.engine.stats(), send_errors: self.send_errors });
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }
}

/// Datagrams waiting to leave as one GSO send: the same destination, all of one size but possibly a shorter last.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    to: Option<SocketAddr>,
    segment: usize,
    count: usize,
}

/// The engine's way out: datagrams gather in the batch until one cannot join it, and leave on `flush`.
struct Net<'a> {
    socket: &'a UdpSocket,
    state: &'a UdpSocketState,
    batch: &'a mut Batch,
    errors: &'a mut u64,
}

impl Net<'_> {
    fn flush(&mut self) {
        let batch = &mut *self.batch;
        let Some(to) = batch.to.take() else { return };
        let transmit = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents: &batch.buf,
            segment_size: (batch.count > 1).then_some(batch.segment),
            src_ip: None,
        };
        // A full send buffer drops the datagrams, as a router would; WireGuard and TCP inside recover.
        if self.state.try_send(self.socket.into(), &transmit).is_err() {
            *self.errors += batch.count as u64;
        }
        batch.buf.clear();
        batch.count = 0;
    }
}

impl Transmit for Net<'_> {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        if !self.batch.takes(to, datagram.len(), self.state.max_gso_segments()) {
            self.flush();
        }
        self.batch.push(to, datagram);
    }
}

impl Batch {
    /// Whether a datagram can join the batch in one GSO send, which the kernel cuts at every `segment` bytes.
    fn takes(&self, to: SocketAddr, len: usize, max_segments: usize) -> bool {
        self.to == Some(to)
            && len <= self.segment
            // Only the last segment may be short: once one is, the batch is closed.
            && self.buf.len().is_multiple_of(self.segment)
            && self.count < max_segments
            && self.buf.len() + len <= GSO_BYTES
    }

    fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.to.is_none() {
            self.to = Some(to);
            self.segment = datagram.len().max(1);
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
    }
}

struct Io<'a, F> {
    net: Net<'a>,
    face: &'a mut F,
}

impl<F> Transmit for Io<'_, F> {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.net.send(to, datagram);
    }
}

impl<F: Face> Output for Io<'_, F> {
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]) {
        self.face.deliver(peer, packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gso_batch_takes_equal_datagrams_for_one_address_and_one_short_last() {
        let (a, b): (SocketAddr, SocketAddr) = ("192.0.2.1:51820".parse().unwrap(), "192.0.2.2:51820".parse().unwrap());
        let mut batch = Batch::default();
        assert!(!batch.takes(a, 100, 64), "an empty batch is flushed (a no-op) before the first datagram");
        batch.push(a, &[0; 100]);
        assert!(batch.takes(a, 100, 64));
        assert!(!batch.takes(b, 100, 64), "another address");
        assert!(!batch.takes(a, 101, 64), "a longer datagram");
        assert!(!batch.takes(a, 100, 1), "the kernel's segment limit");
        assert!(batch.takes(a, 60, 64), "a shorter one may close the batch");
        batch.push(a, &[0; 60]);
        assert!(!batch.takes(a, 60, 64), "nothing follows a short one");
        assert!(!batch.takes(a, 100, 64));

        let mut full = Batch::default();
        for _ in 0..GSO_BYTES / 1452 {
            full.push(a, &[0; 1452]);
        }
        assert!(!full.takes(a, 1452, usize::MAX), "one send carries at most {GSO_BYTES} bytes");
    }
}
