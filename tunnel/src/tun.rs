//! The kernel face: a TUN device (tun-rs) on the gateway's tunnel address. Authenticated inner packets are written to
//! the kernel, which routes them to local sockets (the API on the tunnel address) and applies the firewall; packets
//! the kernel routes into the device are read back and handed to the engine, which encrypts each for the peer owning
//! its destination. Needs CAP_NET_ADMIN.
//!
//! With offload on (`IFF_VNET_HDR`), the kernel's TCP hands the device super-packets of up to 64 KiB (TSO) and one
//! read returns what would otherwise take some 45, which tun-rs splits into MTU-sized segments: the per-packet system
//! calls, not the crypto, are what limit a tunnel (see TUNNEL-NOTES.md). Writes stay one per packet, behind a virtio
//! header that asks for nothing (the peer's checksums are complete): coalescing them (GRO, tun-rs `send_multiple`)
//! saved no CPU measurable on the 2-core benchmark machine, so the simpler path stays (see the crate README).
//!
//! The kernel identifies the sender of a connection by its inner source address, which the engine's AllowedIPs check
//! made trustworthy; use `TunnelHandle::peer_for_address` to turn it into the device's key.
//!
//! One queue, no `IFF_MULTI_QUEUE`: the engine and its peers' sessions live in one task, so a second queue would only
//! hand packets to the same core, and spreading a peer's packets over workers would reorder them past the replay
//! window.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Instant;

use tun_rs::{AsyncDevice, DeviceBuilder, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use crate::driver::Face;
use crate::keys::PublicKey;

/// Reads per `poll` before the driver gets to the UDP socket again: a busy kernel side cannot starve the other.
const READ_BUDGET: usize = 64;
/// The largest IP packet, and so the largest read without offload.
const MAX_PACKET: usize = 65_535;
/// A virtio header with no segmentation and no checksum to fill in: a packet as it is.
const PLAIN: [u8; VIRTIO_NET_HDR_LEN] = [0; VIRTIO_NET_HDR_LEN];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// The interface name, at most 15 bytes.
    pub name: String,
    /// The gateway's address inside the tunnel.
    pub address: IpAddr,
    pub prefix_len: u8,
    pub mtu: u16,
    /// `IFF_VNET_HDR` offload: the kernel sends TSO super-packets, split after one read.
    pub offload: bool,
}

impl Default for TunConfig {
    fn default() -> Self {
        Self { name: "simpul0".into(), address: IpAddr::from([10, 77, 0, 1]), prefix_len: 16, mtu: 1420, offload: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("{0}/{1} is not a usable interface address")]
    Address(IpAddr, u8),
    #[error("an MTU of {0} cannot carry IP")]
    Mtu(u16),
    #[error("creating TUN device {name}: {source}")]
    Create { name: String, source: io::Error },
}

/// The TUN device as a [`Face`]. Create it inside a tokio runtime, in the network namespace it should live in.
pub struct TunFace {
    device: AsyncDevice,
    /// The same device for writes, which go straight to the kernel: a TUN write takes the packet or drops it, never
    /// waits, so it needs no readiness.
    writer: File,
    name: String,
    offload: bool,
    /// A raw read (virtio header and a super-packet) before splitting; unused without offload.
    raw: Box<[u8]>,
    segments: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// The read budget ran out with packets possibly left in the device.
    more: bool,
    /// The device reported an error that reading does not clear (it was deleted): the face stops reading.
    failed: bool,
}

impl fmt::Debug for TunFace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunFace")
            .field("name", &self.name)
            .field("offload", &self.offload)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl TunFace {
    /// Creates the device, gives it its address and MTU and brings it up.
    pub fn new(config: &TunConfig) -> Result<Self, TunError> {
        let (address, prefix_len) = (config.address, config.prefix_len);
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        if address.is_unspecified() || address.is_multicast() || prefix_len > max_prefix {
            return Err(TunError::Address(address, prefix_len));
        }
        let min_mtu = if address.is_ipv4() { 576 } else { 1280 };
        if config.mtu < min_mtu {
            return Err(TunError::Mtu(config.mtu));
        }
        let builder = DeviceBuilder::new().name(&config.name).mtu(config.mtu).enable(true);
        let builder = match address {
            IpAddr::V4(a) => builder.ipv4(a, prefix_len, None),
            IpAddr::V6(a) => builder.ipv6(a, prefix_len),
        };
        let offload = config.offload;
        let device = builder
            .with(|b| {
                b.offload(offload);
            })
            .build_async()
            .map_err(|source| TunError::Create { name: config.name.clone(), source })?;

        let writer = device
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|source| TunError::Create { name: config.name.clone(), source })?;
        let mtu = usize::from(config.mtu);
        // Segments of a split super-packet are at most an MTU; without offload the one buffer takes any packet.
        let (raw, segments) = if offload {
            (vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET], vec![vec![0; mtu]; IDEAL_BATCH_SIZE])
        } else {
            (Vec::new(), vec![vec![0; MAX_PACKET]])
        };
        Ok(Self {
            device,
            writer,
            name: config.name.clone(),
            offload,
            raw: raw.into(),
            sizes: vec![0; segments.len()],
            segments,
            more: false,
            failed: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, send: &mut dyn FnMut(&[u8])) {
        self.more = false;
        for _ in 0..READ_BUDGET {
            match self.device.try_recv_multiple(&mut self.raw, &mut self.segments, &mut self.sizes, 0) {
                Ok(count) => {
                    for (segment, &size) in self.segments.iter().zip(&self.sizes).take(count) {
                        send(&segment[..size]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A malformed super-packet costs that read only.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::Other => {
                    tracing::debug!(device = %self.name, error = %e, "reading from the TUN device");
                }
                Err(e) => {
                    self.failed = true;
                    tracing::error!(device = %self.name, error = %e, "the TUN device failed; no more packets leave it");
                    return;
                }
            }
        }
        self.more = true;
    }
}

impl Face for TunFace {
    fn deliver(&mut self, _peer: &PublicKey, packet: &[u8]) {
        let written = if self.offload {
            (&self.writer).write_vectored(&[IoSlice::new(&PLAIN), IoSlice::new(packet)])
        } else {
            (&self.writer).write(packet)
        };
        // A refused write is a dropped packet, as on any interface: TCP retransmits it.
        if let Err(e) = written {
            tracing::debug!(device = %self.name, error = %e, "writing to the TUN device");
        }
    }

    fn poll(&mut self, _now: Instant, send: &mut dyn FnMut(&[u8])) {
        if !self.failed {
            self.read(send);
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.failed {
            return Poll::Pending;
        }
        if self.more {
            return Poll::Ready(());
        }
        match self.device.poll_readable(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            // The read that follows reports the error and stops the face.
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unusable_addresses_and_mtus_before_touching_the_kernel() {
        let config = |address: &str, prefix_len, mtu| TunConfig {
            address: address.parse().unwrap(),
            prefix_len,
            mtu,
            ..TunConfig::default()
        };
        assert!(matches!(TunFace::new(&config("0.0.0.0", 16, 1420)), Err(TunError::Address(..))));
        assert!(matches!(TunFace::new(&config("10.77.0.1", 33, 1420)), Err(TunError::Address(..))));
        assert!(matches!(TunFace::new(&config("10.77.0.1", 16, 500)), Err(TunError::Mtu(500))));
        assert!(matches!(TunFace::new(&config("fd77::1", 64, 1200)), Err(TunError::Mtu(1200))));
    }
}
