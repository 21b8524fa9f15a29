//! The driver and the userspace face over real UDP on loopback, against clients made of boringtun's `Tunn` and a
//! smoltcp TCP client: no root needed. The system test `wireguard_go.rs` does the same against wireguard-go.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use simpul_tunnel::netstack::{self, NetstackConfig, TcpStream};
use simpul_tunnel::{Engine, EngineConfig, PeerConfig, PrivateKey, PublicKey, TunnelHandle};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 77, 0, 1);

/// A WireGuard client with its own TCP/IP stack: boringtun for the tunnel, smoltcp for TCP, one UDP socket.
struct Client {
    key: PublicKey,
    tunn: Tunn,
    udp: std::net::UdpSocket,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    device: Queues,
    epoch: Instant,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

impl Client {
    /// `source` is the tunnel address the client's stack uses, which need not be one the gateway allows it.
    fn connect(gateway: &TunnelHandle, secret: [u8; 32], source: Ipv4Address, local_port: u16) -> Self {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.connect(gateway.local_addr()).unwrap();
        udp.set_nonblocking(true).unwrap();
        let tunn = Tunn::new(
            x25519::StaticSecret::from(secret),
            x25519::PublicKey::from(*gateway.public_key().as_bytes()),
            None,
            None,
            7,
            None,
        );

        let mut device = Queues::default();
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(source), 16)).unwrap());
        let mut sockets = SocketSet::new(Vec::new());
        let socket =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 256 << 10]), tcp::SocketBuffer::new(vec![0; 256 << 10]));
        let tcp = sockets.add(socket);
        sockets.get_mut::<tcp::Socket>(tcp).connect(iface.context(), (GATEWAY, 8000), local_port).unwrap();
        Self {
            key: PrivateKey::from_bytes(secret).public_key(),
            tunn,
            udp,
            iface,
            sockets,
            tcp,
            device,
            epoch: Instant::now(),
            buf: vec![0; 65_536 + 148],
        }
    }

    /// Moves everything one step: datagrams in, the stack, datagrams out.
    fn step(&mut self) {
        let mut datagram = vec![0u8; 65_536];
        while let Ok(n) = self.udp.recv(&mut datagram) {
            match self.tunn.decapsulate(None, &datagram[..n], &mut self.buf) {
                TunnResult::WriteToNetwork(reply) => {
                    self.udp.send(reply).unwrap();
                    while let TunnResult::WriteToNetwork(queued) = self.tunn.decapsulate(None, &[], &mut self.buf) {
                        self.udp.send(queued).unwrap();
                    }
                }
                TunnResult::WriteToTunnelV4(packet, _) => self.device.rx.push_back(packet.to_vec()),
                _ => {}
            }
        }
        let now = SmolInstant::from_micros(self.epoch.elapsed().as_micros() as i64);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        while let Some(packet) = self.device.tx.pop_front() {
            if let TunnResult::WriteToNetwork(datagram) = self.tunn.encapsulate(&packet, &mut self.buf) {
                self.udp.send(datagram).unwrap();
            }
        }
        if let TunnResult::WriteToNetwork(datagram) = self.tunn.update_timers(&mut self.buf) {
            self.udp.send(datagram).unwrap();
        }
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }

    /// Steps until `done` says so, polling every 5 ms; false if `timeout` passes first.
    async fn step_until(&mut self, timeout: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.step();
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends `data` and reads `expect` bytes back, in whatever pieces the windows allow.
    async fn exchange(&mut self, data: &[u8], expect: usize) -> Vec<u8> {
        let mut sent = 0;
        let mut received = Vec::new();
        let done = self
            .step_until(WAIT * 3, |c| {
                let socket = c.socket();
                if sent < data.len() && socket.can_send() {
                    sent += socket.send_slice(&data[sent..]).unwrap();
                }
                while socket.can_recv() {
                    socket.recv(|d| (d.len(), received.extend_from_slice(d))).unwrap();
                }
                received.len() >= expect
            })
            .await;
        assert!(done, "exchanged {sent}/{} bytes out, {}/{expect} back", data.len(), received.len());
        received
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((Rx(packet), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1420;
        caps
    }
}

struct Rx(Vec<u8>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let result = f(&mut packet);
        self.0.push_back(packet);
        result
    }
}

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

/// Configures the peer whose private key is `secret` and returns its public key.
async fn allow(gateway: &Gateway, secret: [u8; 32], net: &str) -> PublicKey {
    let key = PrivateKey::from_bytes(secret).public_key();
    gateway.handle.set_peer(PeerConfig::new(key, [net.parse().unwrap()])).await.unwrap();
    key
}

fn greeting_of(client: &Client, address: &str) -> String {
    format!("peer={} address={address}\n", client.key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_tagged_with_the_peer_that_opened_it() {
    let mut gw = gateway().await;
    let (a_secret, b_secret) = (rand::random(), rand::random());
    let a_key = allow(&gw, a_secret, "10.77.0.2/32").await;
    let b_key = allow(&gw, b_secret, "10.77.0.3/32").await;

    let mut a = Client::connect(&gw.handle, a_secret, Ipv4Address::new(10, 77, 0, 2), 40000);
    let mut b = Client::connect(&gw.handle, b_secret, Ipv4Address::new(10, 77, 0, 3), 40000);
    let a_greeting = greeting_of(&a, "10.77.0.2");
    let b_greeting = greeting_of(&b, "10.77.0.3");
    assert_eq!(a.exchange(b"", a_greeting.len()).await, a_greeting.as_bytes());
    assert_eq!(b.exchange(b"", b_greeting.len()).await, b_greeting.as_bytes());

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_carries_bulk_data_both_ways_intact() {
    let gw = gateway().await;
    let secret = rand::random();
    allow(&gw, secret, "10.77.0.2/32").await;
    let mut client = Client::connect(&gw.handle, secret, Ipv4Address::new(10, 77, 0, 2), 40001);
    let greeting = greeting_of(&client, "10.77.0.2");

    // Several times both windows, so that reads and writes on each side wait for the other.
    let data: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 7 % 253) as u8).collect();
    let back = client.exchange(&data, greeting.len() + data.len()).await;
    assert_eq!(&back[..greeting.len()], greeting.as_bytes());
    assert!(back[greeting.len()..] == data[..], "the echo differs");

    // Closing our side ends the server's echo loop, which closes its side.
    client.socket().close();
    let closed = client.step_until(WAIT, |c| !c.socket().may_recv() && !c.socket().may_send()).await;
    assert!(closed, "the server closed its half: {}", client.socket().state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_connect_from_another_peers_address() {
    let mut gw = gateway().await;
    let (a_secret, b_secret) = (rand::random(), rand::random());
    let a_key = allow(&gw, a_secret, "10.77.0.2/32").await;
    let b_key = allow(&gw, b_secret, "10.77.0.3/32").await;

    // a's key, b's address: the handshake succeeds, the SYN is dropped, no connection appears.
    let mut forger = Client::connect(&gw.handle, a_secret, Ipv4Address::new(10, 77, 0, 3), 40002);
    let deadline = Instant::now() + WAIT;
    let forger_status = loop {
        forger.step();
        let status = gw.handle.peer(a_key).await.unwrap().unwrap();
        if status.stats.spoofed + status.stats.delivered > 0 {
            break status;
        }
        assert!(Instant::now() < deadline, "the SYN never arrived: {status:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(forger_status.stats.handshakes > 0, "{forger_status:?}");
    assert_eq!(forger_status.stats.delivered, 0);
    // Had the stack seen the SYN, its SYN-ACK would have been routed to b, who has no endpoint yet.
    let b_status = gw.handle.peer(b_key).await.unwrap().unwrap();
    assert_eq!((b_status.stats.no_endpoint, b_status.stats.tx_bytes), (0, 0), "{b_status:?}");
    assert_eq!(forger.socket().state(), tcp::State::SynSent);
    assert!(gw.accepted.try_recv().is_err(), "no connection was accepted");
}
