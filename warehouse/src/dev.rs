//! `serve --dev`: a warehouse that needs no configuration, for trying Simpul on a laptop.
//!
//! One consumer, `DEV` (user `dev`, password `dev`), may call every method for every element from any address. Its
//! daily quota is 10 million, so that a benchmark at tens of thousands of requests a second measures answers rather
//! than code 05. It also answers the regional route style as region `33-74`, userset `dev`. The TLS certificate is
//! generated into the state directory on first start and reused after, so its fingerprint stays the same (it is
//! made again when it does not name the address the server listens on, so that the printed `try:` line works); the
//! population is seed 1, like the default config, so NIKs from `sample --seed 1` are found.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use simpul_core::element::ElementSet;
use simpul_core::password::PasswordHash;
use simpul_core::wire::code::Dialect;
use simpul_core::wire::method::Method;

use crate::config::WarehouseConfig;
use crate::consumer::ConsumerConfig;

pub const DEV_CONSUMER: &str = "DEV";
pub const DEV_USER: &str = "dev";
pub const DEV_PASSWORD: &str = "dev";
pub const DEV_QUOTA: u64 = 10_000_000;

/// The dev config, listening on `listen`. The password hash is made on each start (a few tens of milliseconds).
pub fn dev_config(listen: SocketAddr) -> WarehouseConfig {
    let mut config: WarehouseConfig = toml::from_str("").expect("an empty config is valid");
    config.listen = listen;
    config.consumers = vec![ConsumerConfig {
        id: DEV_CONSUMER.to_owned(),
        user_id: DEV_USER.to_owned(),
        password_hash: PasswordHash::hash(DEV_PASSWORD),
        allowed_addresses: vec!["0.0.0.0/0".parse().expect("a network"), "::/0".parse().expect("a network")],
        methods: Method::ALL.iter().copied().collect(),
        elements: ElementSet::all(),
        daily_quota: DEV_QUOTA,
        access_hours: None,
        dialect: Dialect::Coded,
        require_client_cert: false,
        client_cert_sha256: None,
        region: Some("33-74".to_owned()),
        userset: Some("dev".to_owned()),
        method_names: BTreeMap::new(),
        valid_from: None,
        valid_until: None,
        suspended: false,
        user_disabled: false,
    }];
    config
}

/// A command that works as soon as the server is ready: `CALL_NIK` for a resident who is alive.
pub fn curl_command(addr: SocketAddr, cert: &Path, nik: &str) -> String {
    format!(
        "curl --cacert {} -X POST https://{}/dukcapil/get_json/{DEV_CONSUMER}/CALL_NIK -d '{{\"user_id\":\"{DEV_USER}\",\"password\":\"{DEV_PASSWORD}\",\"NIK\":\"{nik}\"}}'",
        shell_quote(&cert.display().to_string()),
        url_host(addr),
    )
}

/// The address a client on this machine reaches a server listening on `ip` at: an unspecified address (listening on
/// all) is reached through loopback. The generated certificate names it (see `serve`).
pub fn url_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    }
}

/// `127.0.0.1:8100` as a URL authority.
fn url_host(addr: SocketAddr) -> String {
    match url_ip(addr.ip()) {
        IpAddr::V6(v6) => format!("[{v6}]:{}", addr.port()),
        ip => format!("{ip}:{}", addr.port()),
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::Consumers;

    #[test]
    fn dev_config_is_valid_and_grants_everything() {
        let config = dev_config("127.0.0.1:8100".parse().unwrap());
        config.validate().unwrap();
        let consumers = Consumers::new(config.consumers.clone()).unwrap();
        let dev = consumers.by_id("DEV").unwrap();
        assert_eq!(dev.config.elements, ElementSet::all());
        assert_eq!(dev.config.methods.len(), Method::ALL.len());
        assert!(consumers.by_region("33-74", "dev").is_some());
        assert!(dev.config.allowed_addresses.iter().all(|a| a.0.prefix_len() == 0));
    }

    #[test]
    fn curl_command_is_ready_to_paste() {
        let table = [
            ("127.0.0.1:8100", "/s/cert.pem", "curl --cacert /s/cert.pem -X POST https://127.0.0.1:8100/"),
            ("0.0.0.0:9000", "/my dir/c.pem", "curl --cacert '/my dir/c.pem' -X POST https://127.0.0.1:9000/"),
            ("[::]:8100", "/c", "https://[::1]:8100/"),
            ("[::1]:8100", "/c", "https://[::1]:8100/"),
            ("198.51.100.1:8100", "/c", "https://198.51.100.1:8100/"),
        ];
        for (addr, cert, want) in table {
            let cmd = curl_command(addr.parse().unwrap(), Path::new(cert), "3374041003870006");
            assert!(cmd.contains(want), "{cmd}");
            assert!(cmd.ends_with(r#"-d '{"user_id":"dev","password":"dev","NIK":"3374041003870006"}'"#), "{cmd}");
        }
    }
}
