//! The async driver: one UDP socket, the [`Engine`] and a [`Face`], run by one tokio task. The control plane talks to
//! it through a [`TunnelHandle`], so peers change between two datagrams and never under a lock on the hot path.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::engine::{Engine, EngineError, EngineStats, Output, PeerChange, PeerConfig, PeerStatus, Transmit};
use crate::keys::PublicKey;

/// boringtun wants its timers run at least every 250 ms; the margin absorbs a busy loop's late ticks.
const TICK: Duration = Duration::from_millis(200);
/// Datagrams taken from the socket per wake-up before the face runs: fewer wake-ups, bounded latency.
const RECV_BATCH: usize = 64;
const MAX_DATAGRAM: usize = 65_536;

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
        socket.set_nonblocking(true)?;
        // Sends go straight to the socket: tokio's `try_send_to` refuses whenever its cached readiness says not
        // writable, even when the kernel would take the datagram.
        let sender = socket.try_clone()?;
        let receiver = UdpSocket::from_std(socket)?;
        let (commands, command_rx) = mpsc::channel(64);
        let handle = Self { commands, local_addr: receiver.local_addr()?, public_key: engine.public_key() };
        let driver = Driver {
            receiver,
            sender,
            engine,
            face,
            commands: command_rx,
            rx: vec![0; MAX_DATAGRAM].into(),
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

struct Driver<F> {
    receiver: UdpSocket,
    sender: std::net::UdpSocket,
    engine: Engine,
    face: F,
    commands: mpsc::Receiver<Command>,
    rx: Box<[u8]>,
    send_errors: u64,
}

impl<F: Face> Driver<F> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = self.receiver.recv_from(&mut self.rx) => match received {
                    Ok((len, from)) => self.datagrams(len, from),
                    Err(e) => tracing::warn!(error = %e, "receiving from the tunnel socket"),
                },
                _ = ticker.tick() => {
                    let mut net = Net { socket: &self.sender, errors: &mut self.send_errors };
                    self.engine.tick(&mut net);
                }
                command = self.commands.recv() => match command {
                    Some(command) => if self.command(command).is_break() { return },
                    None => return,
                },
                () = poll_fn(|cx| self.face.poll_ready(cx)) => {}
            }
            let Self { sender, engine, face, send_errors, .. } = &mut self;
            let mut net = Net { socket: sender, errors: send_errors };
            face.poll(Instant::now(), &mut |packet| engine.send_ip(packet, &mut net));
        }
    }

    /// Handles the datagram already in `rx`, then whatever else the socket holds, up to a batch.
    fn datagrams(&mut self, len: usize, from: SocketAddr) {
        let now = Instant::now();
        let Self { receiver, sender, engine, face, rx, send_errors, .. } = self;
        let mut io = Io { net: Net { socket: sender, errors: send_errors }, face };
        engine.handle_datagram(now, from, &rx[..len], &mut io);
        for _ in 1..RECV_BATCH {
            match receiver.try_recv_from(rx) {
                Ok((len, from)) => engine.handle_datagram(now, from, &rx[..len], &mut io),
                Err(_) => break,
            }
        }
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
            Command::Stats(reply) => {
                let _ = reply.send(TunnelStats { engine: self.engine.stats(), send_errors: self.send_errors });
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }
}

struct Net<'a> {
    socket: &'a std::net::UdpSocket,
    errors: &'a mut u64,
}

impl Transmit for Net<'_> {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.socket.send_to(datagram, to).is_err() {
            *self.errors += 1;
        }
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
