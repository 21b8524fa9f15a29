//! simpul-gateway: the appliance a regency runs. It terminates operator tunnels (simpul-tunnel), keeps the devices
//! that may open them (sled), guards the tunnel interface with nftables, answers on the tunnel address, and takes
//! admin commands on a root-only unix socket.

pub mod admin;
pub mod api;
pub mod cache;
pub mod chores;
pub mod cli;
pub mod config;
pub mod control;
pub mod devices;
pub mod directory;
pub mod export;
pub mod firewall;
pub mod limits;
pub mod platform;
pub mod run;
pub mod seal;
pub mod service;
pub mod snapshot;
pub mod state_dir;
pub mod store;
pub mod upstream;

/// Whether the process has root's user id: where state lives by default and whether TUN mode is the default.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}
