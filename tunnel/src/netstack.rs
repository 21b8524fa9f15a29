//! The userspace face: a smoltcp TCP/IP stack on the tunnel address, inside the process. On the gateway every
//! accepted connection is an async stream tagged with the public key of the peer whose authenticated packet opened it,
//! so the application knows the device without trusting an address; on a client, [`Netstack::connect`] opens a
//! connection through the tunnel, tagged with the peer whose authenticated packet answered it. No root, no TUN device.
//!
//! The stack sits behind one mutex shared by the driver (which feeds it packets and runs its timers) and the streams
//! (which move bytes in and out of its socket buffers); every critical section is a copy or a state check.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, AnySocket};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpCidr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::driver::Face;
use crate::keys::PublicKey;

/// Packets waiting between `deliver` and `poll`; beyond this they are dropped and TCP retransmits them.
const RX_QUEUE: usize = 256;
/// A connection whose data goes unacknowledged this long is aborted, so a vanished peer frees its sockets.
const TCP_TIMEOUT: SmolDuration = SmolDuration::from_secs(60);
/// Probes idle connections, so that the timeout above also catches a peer that vanished while idle.
const TCP_KEEP_ALIVE: SmolDuration = SmolDuration::from_secs(30);
/// How long a socket whose stream was dropped may take to finish closing before it is aborted.
const LINGER: SmolDuration = SmolDuration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetstackConfig {
    /// The gateway's address inside the tunnel.
    pub address: IpAddr,
    pub prefix_len: u8,
    /// The tunnel MTU; TCP's segment size follows from it.
    pub mtu: usize,
    /// Receive and send buffer of each connection in bytes; the receive buffer is the TCP window.
    pub socket_buffer: usize,
    /// Sockets of every kind (listening, opening, open, closing); SYNs beyond it are refused.
    pub max_sockets: usize,
    /// Listening sockets per port: how many handshakes may be half-open at once.
    pub backlog: usize,
}

impl Default for NetstackConfig {
    fn default() -> Self {
        Self {
            address: IpAddr::from([10, 77, 0, 1]),
            prefix_len: 16,
            mtu: 1420,
            socket_buffer: 64 * 1024,
            max_sockets: 1024,
            backlog: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetstackError {
    #[error("{0}/{1} is not a usable interface address")]
    Address(IpAddr, u8),
    #[error("an MTU of {0} cannot carry TCP")]
    Mtu(usize),
}

/// Creates the stack: the face goes to the tunnel driver, the [`Netstack`] handle to the application.
pub fn new(config: NetstackConfig) -> Result<(NetstackFace, Netstack), NetstackError> {
    let max_prefix = if config.address.is_ipv4() { 32 } else { 128 };
    if config.address.is_unspecified() || config.address.is_multicast() || config.prefix_len > max_prefix {
        return Err(NetstackError::Address(config.address, config.prefix_len));
    }
    let min_mtu = if config.address.is_ipv4() { 576 } else { 1280 };
    if config.mtu < min_mtu || config.mtu > 65_535 {
        return Err(NetstackError::Mtu(config.mtu));
    }

    let epoch = Instant::now();
    let mut tx_buf = Vec::new();
    let mut device = PacketDevice { rx: None, tx: &mut tx_buf, send: &mut |_| {}, mtu: config.mtu };
    let mut iface_config = Config::new(HardwareAddress::Ip);
    iface_config.random_seed = rand::random();
    let mut iface = Interface::new(iface_config, &mut device, SmolInstant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(config.address.into(), config.prefix_len)).expect("one address fits");
    });
    // Peers may own networks outside the tunnel prefix. On an IP-only medium the next hop is never resolved, so a
    // default route through our own address just says "send it to the tunnel".
    match config.address {
        IpAddr::V4(a) => iface.routes_mut().add_default_ipv4_route(a).map(drop),
        IpAddr::V6(a) => iface.routes_mut().add_default_ipv6_route(a).map(drop),
    }
    .expect("an empty route table has room");

    let shared = Arc::new(Shared {
        stack: Mutex::new(Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            socket_count: 0,
            listeners: HashMap::new(),
            connecting: HashMap::new(),
            closing: Vec::new(),
            driver: None,
            needs_poll: false,
            face_gone: false,
            now: SmolInstant::ZERO,
            config: config.clone(),
        }),
    });
    let face = NetstackFace {
        shared: shared.clone(),
        epoch,
        rx: VecDeque::with_capacity(RX_QUEUE),
        pool: Vec::new(),
        tx_buf,
        mtu: config.mtu,
        deadline: None,
        sleep: None,
    };
    Ok((face, Netstack { shared }))
}

struct Shared {
    stack: Mutex<Stack>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stack> {
        // A panic under the lock leaves socket buffers at worst half-copied; carrying on beats a second panic in Drop.
        self.stack.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    socket_count: usize,
    listeners: HashMap<u16, Listener>,
    /// Outbound connections not yet handed to their caller, with the peer whose packet moved each out of SYN-SENT.
    connecting: HashMap<SocketHandle, Option<PublicKey>>,
    /// Sockets whose stream is gone, removed once closed or past their deadline.
    closing: Vec<(SocketHandle, SmolInstant)>,
    driver: Option<Waker>,
    needs_poll: bool,
    face_gone: bool,
    /// The time of the last poll, for deadlines set outside it.
    now: SmolInstant,
    config: NetstackConfig,
}

#[derive(Default)]
struct Listener {
    /// Sockets in LISTEN: smoltcp has no accept queue, so each half-open connection takes one.
    backlog: Vec<SocketHandle>,
    /// Connections past their SYN, tagged with the peer that sent it, not yet established.
    opening: Vec<Incoming>,
    ready: VecDeque<Incoming>,
    acceptor: Option<Waker>,
}

#[derive(Clone, Copy)]
struct Incoming {
    handle: SocketHandle,
    peer: PublicKey,
    remote: SocketAddr,
}

impl Stack {
    fn request_poll(&mut self) {
        self.needs_poll = true;
        if let Some(waker) = self.driver.take() {
            waker.wake();
        }
    }

    fn remove_socket(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.socket_count -= 1;
    }

    /// Tags every listening socket that the packet just processed took out of LISTEN, and every outbound one it took
    /// out of SYN-SENT, with that packet's peer. Only a SYN (or a SYN-ACK) does that, and the driver feeds one packet
    /// at a time, so the tag is exact.
    fn claim(&mut self, peer: PublicKey) {
        for (&handle, tag) in self.connecting.iter_mut() {
            if tag.is_none() && self.sockets.get::<tcp::Socket>(handle).state() != tcp::State::SynSent {
                *tag = Some(peer);
            }
        }
        for listener in self.listeners.values_mut() {
            let mut i = 0;
            while i < listener.backlog.len() {
                let handle = listener.backlog[i];
                let socket = self.sockets.get::<tcp::Socket>(handle);
                if socket.state() == tcp::State::Listen {
                    i += 1;
                    continue;
                }
                listener.backlog.swap_remove(i);
                let (local, remote) = (socket.local_endpoint(), socket.remote_endpoint());
                // A retransmitted SYN can reach a spare listener before the socket that took the first one; that
                // duplicate has sent nothing yet, so it is dropped silently.
                let duplicate = self.sockets.iter().any(|(other, s)| {
                    other != handle
                        && tcp::Socket::downcast(s)
                            .is_some_and(|s| s.local_endpoint() == local && s.remote_endpoint() == remote)
                });
                match remote {
                    Some(remote) if !duplicate => {
                        listener.opening.push(Incoming { handle, peer, remote: remote.into() });
                    }
                    _ => {
                        self.sockets.remove(handle);
                        self.socket_count -= 1;
                    }
                }
            }
        }
        // At once, not after the batch: a burst of SYNs in one batch must each find a socket in LISTEN, or smoltcp
        // resets the ones beyond the backlog.
        self.refill();
    }

    /// Tops every listener's spare sockets up to the backlog, within the socket limit.
    fn refill(&mut self) {
        for (&port, listener) in self.listeners.iter_mut() {
            while listener.backlog.len() < self.config.backlog && self.socket_count < self.config.max_sockets {
                listener.backlog.push(self.sockets.add(listen_socket(&self.config, port)));
                self.socket_count += 1;
            }
        }
    }

    fn housekeep(&mut self, now: SmolInstant) {
        for listener in self.listeners.values_mut() {
            let mut i = 0;
            while i < listener.opening.len() {
                let incoming = listener.opening[i];
                match self.sockets.get::<tcp::Socket>(incoming.handle).state() {
                    tcp::State::SynReceived => i += 1,
                    // smoltcp returns a reset half-open socket to LISTEN: it is a spare again.
                    tcp::State::Listen => {
                        listener.opening.swap_remove(i);
                        listener.backlog.push(incoming.handle);
                    }
                    tcp::State::Established | tcp::State::CloseWait => {
                        listener.opening.swap_remove(i);
                        listener.ready.push_back(incoming);
                        if let Some(waker) = listener.acceptor.take() {
                            waker.wake();
                        }
                    }
                    _ => {
                        listener.opening.swap_remove(i);
                        self.sockets.remove(incoming.handle);
                        self.socket_count -= 1;
                    }
                }
            }
        }
        self.refill();

        let mut i = 0;
        while i < self.closing.len() {
            let (handle, deadline) = self.closing[i];
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            let closed = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if closed || now >= deadline {
                self.closing.swap_remove(i);
                self.remove_socket(handle);
            } else {
                i += 1;
            }
        }
    }

    /// An ephemeral port (RFC 6335's range) that no socket of the stack uses.
    fn free_port(&self) -> u16 {
        loop {
            let port = rand::random::<u16>() | 0xc000;
            let used = self.listeners.contains_key(&port)
                || self.sockets.iter().any(|(_, s)| {
                    tcp::Socket::downcast(s).is_some_and(|s| s.local_endpoint().is_some_and(|e| e.port == port))
                });
            if !used {
                return port;
            }
        }
    }
}

fn listen_socket(config: &NetstackConfig, port: u16) -> tcp::Socket<'static> {
    let mut socket = new_socket(config);
    socket.listen((config.address, port)).expect("a fresh socket with a non-zero port can listen");
    socket
}

fn new_socket(config: &NetstackConfig) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; config.socket_buffer]),
        tcp::SocketBuffer::new(vec![0; config.socket_buffer]),
    );
    socket.set_timeout(Some(TCP_TIMEOUT));
    socket.set_keep_alive(Some(TCP_KEEP_ALIVE));
    // Request/response traffic: an answer's last segment should not wait for an ACK.
    socket.set_nagle_enabled(false);
    socket
}

/// The driver's side of the stack.
pub struct NetstackFace {
    shared: Arc<Shared>,
    epoch: Instant,
    rx: VecDeque<(PublicKey, Vec<u8>)>,
    /// Buffers of packets already processed, reused so that steady traffic allocates nothing.
    pool: Vec<Vec<u8>>,
    tx_buf: Vec<u8>,
    mtu: usize,
    deadline: Option<tokio::time::Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl fmt::Debug for NetstackFace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetstackFace").field("queued", &self.rx.len()).field("deadline", &self.deadline).finish()
    }
}

impl Face for NetstackFace {
    fn deliver(&mut self, peer: &PublicKey, packet: &[u8]) {
        if self.rx.len() >= RX_QUEUE {
            return;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        self.rx.push_back((*peer, buf));
    }

    fn poll(&mut self, now: Instant, send: &mut dyn FnMut(&[u8])) {
        let ts = SmolInstant::from_micros(now.saturating_duration_since(self.epoch).as_micros() as i64);
        let mut guard = self.shared.lock();
        let stack = &mut *guard;
        stack.now = ts;
        stack.needs_poll = false;
        while let Some((peer, packet)) = self.rx.pop_front() {
            let mut device = PacketDevice { rx: Some(&packet), tx: &mut self.tx_buf, send: &mut *send, mtu: self.mtu };
            if stack.iface.poll_ingress_single(ts, &mut device, &mut stack.sockets)
                == PollIngressSingleResult::SocketStateChanged
            {
                stack.claim(peer);
            }
            self.pool.push(packet);
        }
        let mut device = PacketDevice { rx: None, tx: &mut self.tx_buf, send, mtu: self.mtu };
        stack.iface.poll(ts, &mut device, &mut stack.sockets);
        stack.housekeep(ts);
        self.deadline = stack
            .iface
            .poll_delay(ts, &stack.sockets)
            .map(|delay| tokio::time::Instant::from_std(now + Duration::from_micros(delay.total_micros())));
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut stack = self.shared.lock();
            if stack.needs_poll {
                return Poll::Ready(());
            }
            if !stack.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                stack.driver = Some(cx.waker().clone());
            }
        }
        let Some(deadline) = self.deadline else { return Poll::Pending };
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

impl Drop for NetstackFace {
    fn drop(&mut self) {
        let mut guard = self.shared.lock();
        let stack = &mut *guard;
        stack.face_gone = true;
        // Aborting wakes every stream waiting on its socket, so readers see the end instead of waiting forever.
        for (_, socket) in stack.sockets.iter_mut() {
            if let Some(socket) = tcp::Socket::downcast_mut(socket) {
                socket.abort();
            }
        }
        for listener in stack.listeners.values_mut() {
            if let Some(waker) = listener.acceptor.take() {
                waker.wake();
            }
        }
    }
}

/// The application's side of the stack: it opens listeners.
#[derive(Clone)]
pub struct Netstack {
    shared: Arc<Shared>,
}

impl fmt::Debug for Netstack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stack = self.shared.lock();
        f.debug_struct("Netstack")
            .field("address", &stack.config.address)
            .field("sockets", &stack.socket_count)
            .finish_non_exhaustive()
    }
}

impl Netstack {
    /// Listens on `port` of the tunnel address.
    pub fn listen(&self, port: u16) -> io::Result<TcpListener> {
        let mut stack = self.shared.lock();
        if stack.face_gone {
            return Err(stopped());
        }
        if port == 0 || stack.listeners.contains_key(&port) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("port {port} is taken")));
        }
        stack.listeners.insert(port, Listener::default());
        // Spare sockets appear at the next poll; ask for one now so the port answers right away.
        stack.request_poll();
        let local = SocketAddr::new(stack.config.address, port);
        Ok(TcpListener { shared: self.shared.clone(), port, local })
    }

    /// Opens a TCP connection from the tunnel address to `remote` through the tunnel: the client's side of what
    /// [`TcpListener::accept`] serves. It fails once the stack gives up (a reset, or the 60 s TCP timeout) or the
    /// tunnel stops.
    pub async fn connect(&self, remote: SocketAddr) -> io::Result<TcpStream> {
        let mut pending = {
            let mut guard = self.shared.lock();
            let stack = &mut *guard;
            if stack.face_gone {
                return Err(stopped());
            }
            if stack.socket_count >= stack.config.max_sockets {
                return Err(io::Error::new(io::ErrorKind::OutOfMemory, "every socket of the stack is in use"));
            }
            let local = SocketAddr::new(stack.config.address, stack.free_port());
            let mut socket = new_socket(&stack.config);
            socket
                .connect(stack.iface.context(), (remote.ip(), remote.port()), (local.ip(), local.port()))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("connecting to {remote}: {e}")))?;
            let handle = stack.sockets.add(socket);
            stack.socket_count += 1;
            stack.connecting.insert(handle, None);
            stack.request_poll();
            Connecting { shared: self.shared.clone(), handle: Some(handle), remote, local }
        };
        poll_fn(|cx| pending.poll(cx)).await
    }
}

/// An outbound connection on its way; dropped before it is open, its socket is aborted.
struct Connecting {
    shared: Arc<Shared>,
    /// Taken once the connection is handed over or has failed.
    handle: Option<SocketHandle>,
    remote: SocketAddr,
    local: SocketAddr,
}

impl Connecting {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        let Some(handle) = self.handle else { return Poll::Ready(Err(stopped())) };
        let mut guard = self.shared.lock();
        let stack = &mut *guard;
        if stack.face_gone {
            return Poll::Ready(Err(stopped()));
        }
        let socket = stack.sockets.get_mut::<tcp::Socket>(handle);
        match (socket.state(), stack.connecting.get(&handle).copied().flatten()) {
            (tcp::State::SynSent, _) => {
                socket.register_send_waker(cx.waker());
                Poll::Pending
            }
            (tcp::State::Closed, _) => {
                self.handle = None;
                stack.connecting.remove(&handle);
                stack.remove_socket(handle);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("{} refused the connection or never answered", self.remote),
                )))
            }
            // Out of SYN-SENT only by a packet, which `claim` tagged with its peer.
            (_, Some(peer)) => {
                self.handle = None;
                stack.connecting.remove(&handle);
                Poll::Ready(Ok(TcpStream {
                    shared: self.shared.clone(),
                    handle,
                    peer,
                    remote: self.remote,
                    local: self.local,
                }))
            }
            // `claim` runs under the same lock right after every packet that changes a socket's state, so this means
            // a socket left SYN-SENT without a packet: refused rather than handed over untagged.
            (state, None) => Poll::Ready(Err(io::Error::other(format!(
                "the connection to {} reached {state} unanswered",
                self.remote
            )))),
        }
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else { return };
        let mut guard = self.shared.lock();
        let stack = &mut *guard;
        stack.connecting.remove(&handle);
        stack.sockets.get_mut::<tcp::Socket>(handle).abort();
        let deadline = stack.now + LINGER;
        stack.closing.push((handle, deadline));
        stack.request_poll();
    }
}

pub struct TcpListener {
    shared: Arc<Shared>,
    port: u16,
    local: SocketAddr,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.local).finish()
    }
}

impl TcpListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next established connection. Fails once the tunnel has stopped.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        let mut stack = self.shared.lock();
        if stack.face_gone {
            return Poll::Ready(Err(stopped()));
        }
        let listener = stack.listeners.get_mut(&self.port).expect("a listener owns its port until dropped");
        match listener.ready.pop_front() {
            Some(incoming) => Poll::Ready(Ok(TcpStream {
                shared: self.shared.clone(),
                handle: incoming.handle,
                peer: incoming.peer,
                remote: incoming.remote,
                local: self.local,
            })),
            None => {
                listener.acceptor = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut guard = self.shared.lock();
        let stack = &mut *guard;
        let Some(listener) = stack.listeners.remove(&self.port) else { return };
        for handle in listener.backlog {
            stack.remove_socket(handle);
        }
        let deadline = stack.now + LINGER;
        for incoming in listener.opening.into_iter().chain(listener.ready) {
            stack.sockets.get_mut::<tcp::Socket>(incoming.handle).abort();
            stack.closing.push((incoming.handle, deadline));
        }
        stack.request_poll();
    }
}

/// A TCP connection through the tunnel, tagged with the authenticated peer that opened it.
pub struct TcpStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    peer: PublicKey,
    remote: SocketAddr,
    local: SocketAddr,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .field("local", &self.local)
            .finish()
    }
}

impl TcpStream {
    /// The public key of the peer whose authenticated packets carry this connection.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// The peer's tunnel address and port; the address passed the peer's AllowedIPs check.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut stack = self.shared.lock();
        let socket = stack.sockets.get_mut::<tcp::Socket>(self.handle);
        if !socket.can_recv() {
            if socket.may_recv() {
                socket.register_recv_waker(cx.waker());
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        // The receive buffer is a ring: a second pass picks up the part that wrapped around.
        while buf.remaining() > 0 {
            let copied = socket.recv(|data| {
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                (n, n)
            });
            if !matches!(copied, Ok(n) if n > 0) {
                break;
            }
        }
        // Space freed in the window may need announcing.
        stack.request_poll();
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut stack = self.shared.lock();
        let socket = stack.sockets.get_mut::<tcp::Socket>(self.handle);
        if !socket.may_send() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if !socket.can_send() {
            socket.register_send_waker(cx.waker());
            return Poll::Pending;
        }
        let sent = socket.send_slice(data).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe));
        stack.request_poll();
        Poll::Ready(sent)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the stack already; it sends them as the window allows, like a kernel socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stack = self.shared.lock();
        stack.sockets.get_mut::<tcp::Socket>(self.handle).close();
        stack.request_poll();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut stack = self.shared.lock();
        stack.sockets.get_mut::<tcp::Socket>(self.handle).close();
        let deadline = stack.now + LINGER;
        stack.closing.push((self.handle, deadline));
        stack.request_poll();
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the tunnel has stopped")
}

/// A view that lends smoltcp one received packet and passes what it transmits straight to the engine.
struct PacketDevice<'a> {
    rx: Option<&'a [u8]>,
    tx: &'a mut Vec<u8>,
    send: &'a mut dyn FnMut(&[u8]),
    mtu: usize,
}

impl Device for PacketDevice<'_> {
    type RxToken<'b>
        = RxOnce<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxOut<'b>
    where
        Self: 'b;

    fn receive(&mut self, _timestamp: SmolInstant) -> Option<(RxOnce<'_>, TxOut<'_>)> {
        let packet = self.rx.take()?;
        Some((RxOnce(packet), TxOut { buf: self.tx, send: self.send }))
    }

    fn transmit(&mut self, _timestamp: SmolInstant) -> Option<TxOut<'_>> {
        Some(TxOut { buf: self.tx, send: self.send })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

struct RxOnce<'a>(&'a [u8]);

impl phy::RxToken for RxOnce<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

struct TxOut<'a> {
    buf: &'a mut Vec<u8>,
    send: &'a mut dyn FnMut(&[u8]),
}

impl phy::TxToken for TxOut<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let result = f(self.buf);
        (self.send)(self.buf);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_has_one_listener_at_a_time() {
        let (_face, stack) = new(NetstackConfig::default()).unwrap();
        let listener = stack.listen(8000).unwrap();
        assert_eq!(listener.local_addr(), "10.77.0.1:8000".parse().unwrap());
        assert_eq!(stack.listen(8000).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert_eq!(stack.listen(0).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        assert!(stack.listen(8000).is_ok());
    }

    #[test]
    fn nothing_listens_once_the_face_is_gone() {
        let (face, stack) = new(NetstackConfig::default()).unwrap();
        drop(face);
        assert_eq!(stack.listen(8000).unwrap_err().kind(), io::ErrorKind::NotConnected);
    }

    #[tokio::test]
    async fn nothing_connects_once_the_face_is_gone() {
        let (face, stack) = new(NetstackConfig::default()).unwrap();
        let remote: SocketAddr = "10.77.0.2:80".parse().unwrap();
        let waiting = tokio::spawn({
            let stack = stack.clone();
            async move { stack.connect(remote).await }
        });
        // The SYN is queued for the driver, which never comes: the connection waits until the face goes.
        while stack.shared.lock().connecting.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(face);
        assert_eq!(waiting.await.unwrap().unwrap_err().kind(), io::ErrorKind::NotConnected);
        assert_eq!(stack.connect(remote).await.unwrap_err().kind(), io::ErrorKind::NotConnected);
    }

    /// The stack's time is what the driver passes to `poll`, so the timeout is reached without waiting for it.
    #[tokio::test]
    async fn a_connection_nobody_answers_gives_up_after_the_tcp_timeout() {
        let (mut face, stack) = new(NetstackConfig::default()).unwrap();
        let waiting = tokio::spawn({
            let stack = stack.clone();
            async move { stack.connect("10.77.0.2:80".parse().unwrap()).await }
        });
        while stack.shared.lock().connecting.is_empty() {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        let mut syns = 0;
        for second in 0..TCP_TIMEOUT.secs() {
            face.poll(start + Duration::from_secs(second), &mut |_| syns += 1);
            // The connecting task runs here if anything woke it.
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished(), "still trying at {second} s");
        }
        assert!(syns > 1, "the SYN was sent again: {syns}");
        face.poll(start + Duration::from_secs(TCP_TIMEOUT.secs() + 1), &mut |_| {});
        let failed = waiting.await.unwrap().unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::ConnectionRefused, "{failed}");
        assert_eq!(stack.shared.lock().socket_count, 0, "its socket is gone");
    }

    #[tokio::test]
    async fn an_abandoned_connection_gives_its_socket_back() {
        let (mut face, stack) = new(NetstackConfig { max_sockets: 1, ..NetstackConfig::default() }).unwrap();
        let remote: SocketAddr = "10.77.0.2:80".parse().unwrap();
        let mut sent = 0;
        let waiting = tokio::spawn({
            let stack = stack.clone();
            async move { stack.connect(remote).await }
        });
        while stack.shared.lock().connecting.is_empty() {
            tokio::task::yield_now().await;
        }
        face.poll(Instant::now(), &mut |packet| {
            assert_eq!(packet[0] >> 4, 4, "an IPv4 SYN");
            sent += 1;
        });
        assert_eq!(sent, 1);
        let full = stack.connect(remote).await.unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::OutOfMemory, "the one socket is taken");
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        face.poll(Instant::now(), &mut |_| {});
        let stack_state = stack.shared.lock();
        assert_eq!((stack_state.socket_count, stack_state.connecting.len()), (0, 0));
    }

    #[test]
    fn rejects_unusable_addresses_and_mtus() {
        let config = |address: &str, prefix_len, mtu| NetstackConfig {
            address: address.parse().unwrap(),
            prefix_len,
            mtu,
            ..NetstackConfig::default()
        };
        assert!(new(config("0.0.0.0", 16, 1420)).is_err());
        assert!(new(config("10.77.0.1", 33, 1420)).is_err());
        assert!(new(config("10.77.0.1", 16, 500)).is_err());
        assert!(new(config("fd77::1", 64, 1200)).is_err());
        assert!(new(config("fd77::1", 64, 1420)).is_ok());
    }
}
