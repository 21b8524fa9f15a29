//! Longest-prefix match over the peers' AllowedIPs: one hash map per prefix length in use, longest first.
//!
//! A gateway's peers mostly hold one /32 each, so a lookup is usually a single hash probe; a trie would pay a pointer
//! chase per bit for the same answer.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug)]
pub(crate) struct AllowedIps<T> {
    v4: PrefixTable<T>,
    v6: PrefixTable<T>,
}

impl<T: Copy + PartialEq> AllowedIps<T> {
    pub(crate) fn new() -> Self {
        Self { v4: PrefixTable::new(32), v6: PrefixTable::new(128) }
    }

    /// Routes `net` to `value`; returns the previous owner of exactly this network, if any.
    pub(crate) fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        let (table, key) = self.table_mut(net.addr());
        table.insert(key, net.prefix_len(), value)
    }

    /// Removes `net` if `value` owns it.
    pub(crate) fn remove(&mut self, net: IpNet, value: T) {
        let (table, key) = self.table_mut(net.addr());
        table.remove(key, net.prefix_len(), value);
    }

    pub(crate) fn lookup(&self, addr: IpAddr) -> Option<T> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a).into()),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    fn table_mut(&mut self, addr: IpAddr) -> (&mut PrefixTable<T>, u128) {
        match addr {
            IpAddr::V4(a) => (&mut self.v4, u32::from(a).into()),
            IpAddr::V6(a) => (&mut self.v6, u128::from(a)),
        }
    }
}

#[derive(Debug)]
struct PrefixTable<T> {
    bits: u8,
    /// Sorted by prefix length, longest first; empty maps are removed so lookups skip them.
    by_len: Vec<(u8, HashMap<u128, T>)>,
}

impl<T: Copy + PartialEq> PrefixTable<T> {
    fn new(bits: u8) -> Self {
        Self { bits, by_len: Vec::new() }
    }

    fn mask(&self, len: u8) -> u128 {
        if len == 0 {
            return 0;
        }
        let full = if self.bits == 128 { u128::MAX } else { (1u128 << self.bits) - 1 };
        full & (full << (self.bits - len))
    }

    fn insert(&mut self, addr: u128, len: u8, value: T) -> Option<T> {
        let key = addr & self.mask(len);
        let pos = match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(pos) => pos,
            Err(pos) => {
                self.by_len.insert(pos, (len, HashMap::new()));
                pos
            }
        };
        self.by_len[pos].1.insert(key, value)
    }

    fn remove(&mut self, addr: u128, len: u8, value: T) {
        let key = addr & self.mask(len);
        let Ok(pos) = self.by_len.binary_search_by(|(l, _)| len.cmp(l)) else { return };
        let map = &mut self.by_len[pos].1;
        if map.get(&key) == Some(&value) {
            map.remove(&key);
        }
        if map.is_empty() {
            self.by_len.remove(pos);
        }
    }

    fn lookup(&self, addr: u128) -> Option<T> {
        self.by_len.iter().find_map(|(len, map)| map.get(&(addr & self.mask(*len))).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::new();
        t.insert(net("10.77.0.0/16"), 1);
        t.insert(net("10.77.3.0/24"), 2);
        t.insert(net("10.77.3.7/32"), 3);
        t.insert(net("0.0.0.0/0"), 4);
        assert_eq!(t.lookup(ip("10.77.3.7")), Some(3));
        assert_eq!(t.lookup(ip("10.77.3.8")), Some(2));
        assert_eq!(t.lookup(ip("10.77.200.1")), Some(1));
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(4));
        assert_eq!(t.lookup(ip("fd00::1")), None);
    }

    #[test]
    fn host_bits_of_a_network_are_ignored() {
        let mut t = AllowedIps::new();
        t.insert(net("10.77.3.9/24"), 1);
        assert_eq!(t.lookup(ip("10.77.3.200")), Some(1));
        assert_eq!(t.lookup(ip("10.77.4.1")), None);
    }

    #[test]
    fn ipv6_prefixes() {
        let mut t = AllowedIps::new();
        t.insert(net("fd77::/64"), 1);
        t.insert(net("fd77::2/128"), 2);
        t.insert(net("::/0"), 3);
        assert_eq!(t.lookup(ip("fd77::2")), Some(2));
        assert_eq!(t.lookup(ip("fd77::3")), Some(1));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(3));
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
    }

    #[test]
    fn insert_reports_the_previous_owner_and_remove_respects_ownership() {
        let mut t = AllowedIps::new();
        assert_eq!(t.insert(net("10.77.0.2/32"), 1), None);
        assert_eq!(t.insert(net("10.77.0.2/32"), 2), Some(1));
        t.remove(net("10.77.0.2/32"), 1);
        assert_eq!(t.lookup(ip("10.77.0.2")), Some(2), "a stale owner cannot remove a moved network");
        t.remove(net("10.77.0.2/32"), 2);
        assert_eq!(t.lookup(ip("10.77.0.2")), None);
        assert!(t.v4.by_len.is_empty());
    }
}
