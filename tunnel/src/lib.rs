//! Simpul's WireGuard tunnel: an [`Engine`] over boringtun's `noise::Tunn` (peer table, handshake routing and limits,
//! AllowedIPs, timers) with no I/O of its own, an async UDP [`driver`] around it, and faces that carry the inner
//! packets: the kernel [`tun`] device (tun-rs) for production as root, where a connection's source address names the
//! peer (`TunnelHandle::peer_for_address`), and the userspace [`netstack`] (smoltcp), which terminates TCP in the
//! process and yields streams tagged with the authenticated peer. The same parts make the [`client`] side, which opens
//! connections through a tunnel to the gateway from a [`wg_quick`] file, without root.

mod allowed_ips;
pub mod client;
pub mod driver;
mod engine;
mod keys;
pub mod netstack;
pub mod tun;
pub mod wg_quick;

pub use driver::{Face, TunnelError, TunnelHandle, TunnelStats};
pub use engine::{
    Engine, EngineConfig, EngineError, EngineStats, Output, PeerChange, PeerConfig, PeerStats, PeerStatus, Transmit,
};
pub use keys::{KeyError, PrivateKey, PublicKey};
