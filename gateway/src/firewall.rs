//! The gateway's own nftables table, `inet simpul`: the tunnel may reach only the API port on the gateway's tunnel
//! address, nothing is forwarded to or from the tunnel, and suspended devices sit in a drop set.
//!
//! Every change is one `nft -j -f -` run, which nft commits as one kernel transaction: a batch that nft or the kernel
//! refuses changes nothing, so the host is never left with half a firewall.
//!
//! The nftables crate supplies the JSON schema, but nft is run here rather than through `nftables::helper`: the
//! helper does not capture nft's stderr (it leaks to ours and its error carries an empty `stderr`, nftables-rs issue
//! #209), and an admin needs nft's reason in the error.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, ExitStatus, Stdio};

use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, Element, NfListObject, Nftables, Rule, Set, SetType, SetTypeValue, Table};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

const FAMILY: NfFamily = NfFamily::INet;
const TABLE: &str = "simpul";
const SUSPENDED: &str = "suspended";

/// PATH first; then /usr/sbin and /sbin, which Debian leaves off the PATH of some root shells (`su` without `-`)
/// from which the gateway may be started by hand.
const NFT: [&str; 3] = ["nft", "/usr/sbin/nft", "/sbin/nft"];

/// What the table protects, taken from the gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallPlan {
    /// The TUN device. Rules match it by name (`iifname`), not by index, so the table can be loaded before the device
    /// exists and keeps holding when the device is re-created.
    pub interface: String,
    /// The gateway's own address on the tunnel, the only one the API answers on.
    pub gateway: Ipv4Addr,
    pub api_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("nft is not on PATH, in /usr/sbin or in /sbin: TUN mode needs the nftables package")]
    NftMissing,
    #[error("running nft to {0}: {1}")]
    Run(String, io::Error),
    #[error("nft failed to {action} ({status}): {stderr}")]
    Nft { action: String, status: ExitStatus, stderr: String },
}

/// Owns the table `inet simpul` and nothing else: the distribution's firewall, docker's or an admin's tables are
/// never read or touched.
#[derive(Debug, Clone)]
pub struct Firewall {
    plan: FirewallPlan,
}

impl Firewall {
    pub fn new(plan: FirewallPlan) -> Self {
        Self { plan }
    }

    /// The whole table as one batch. It opens with add, delete, add table: the first add makes the delete valid when
    /// there is no table yet, and the delete drops whatever a crashed run or an older version left, in the same
    /// transaction that declares the new table. A `flush table` would not do: it keeps chains, sets and even set
    /// elements, and a flushed base chain still applies its policy. So the set holds exactly `suspended` afterwards,
    /// whatever it held before, and the rule counters start again from zero.
    pub fn ruleset(&self, suspended: &[Ipv4Addr]) -> Nftables<'static> {
        let suspended: BTreeSet<Ipv4Addr> = suspended.iter().copied().collect();
        let mut batch = Batch::new();
        batch.add(table());
        batch.delete(table());
        batch.add(table());
        batch.add(NfListObject::Set(Box::new(Set {
            family: FAMILY,
            table: TABLE.into(),
            name: SUSPENDED.into(),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            elem: (!suspended.is_empty()).then(|| elements(suspended)),
            ..Set::default()
        })));

        batch.add(base_chain("input", NfHook::Input));
        batch.add(self.rule(
            "input",
            MetaKey::Iifname,
            vec![equals(payload("ip", "saddr"), Expression::String(format!("@{SUSPENDED}").into()))],
            Statement::Drop(None),
            "simpul: a suspended device reaches nothing",
        ));
        batch.add(self.rule(
            "input",
            MetaKey::Iifname,
            vec![
                equals(payload("ip", "daddr"), address(self.plan.gateway)),
                equals(payload("tcp", "dport"), Expression::Number(self.plan.api_port.into())),
            ],
            Statement::Accept(None),
            "simpul: devices reach the API on the gateway's tunnel address",
        ));
        batch.add(self.rule(
            "input",
            MetaKey::Iifname,
            Vec::new(),
            Statement::Drop(None),
            "simpul: nothing else from the tunnel (other ports, ICMP, IPv6, other host addresses)",
        ));

        batch.add(base_chain("forward", NfHook::Forward));
        batch.add(self.rule(
            "forward",
            MetaKey::Iifname,
            Vec::new(),
            Statement::Drop(None),
            "simpul: nothing from the tunnel is forwarded, even with ip_forward on",
        ));
        batch.add(self.rule(
            "forward",
            MetaKey::Oifname,
            Vec::new(),
            Statement::Drop(None),
            "simpul: nothing is forwarded into the tunnel, even with ip_forward on",
        ));
        batch.to_nftables()
    }

    pub fn apply(&self, suspended: &[Ipv4Addr]) -> Result<(), FirewallError> {
        submit("apply the ruleset", &self.ruleset(suspended))
    }

    /// Suspending an address that is already suspended is not an error (`add`, unlike `create`, accepts it).
    pub fn suspend(&self, addr: Ipv4Addr) -> Result<(), FirewallError> {
        let mut batch = Batch::new();
        batch.add(element(addr));
        submit(&format!("suspend {addr}"), &batch.to_nftables())
    }

    /// nft refuses to delete an element that is not in the set; adding it first in the same transaction makes
    /// resuming an address that is not suspended a no-op instead of an error.
    pub fn resume(&self, addr: Ipv4Addr) -> Result<(), FirewallError> {
        let mut batch = Batch::new();
        batch.add(element(addr));
        batch.delete(element(addr));
        submit(&format!("resume {addr}"), &batch.to_nftables())
    }

    /// Adding the table first in the same transaction makes removing an absent table a no-op instead of an error.
    pub fn remove(&self) -> Result<(), FirewallError> {
        let mut batch = Batch::new();
        batch.add(table());
        batch.delete(table());
        submit("remove the table", &batch.to_nftables())
    }

    /// For `simpul-gateway nft --print-ruleset`: the exact batch `apply` would send, so an admin can review it or
    /// feed it to `nft -j -f` by hand.
    pub fn print(&self, suspended: &[Ipv4Addr]) -> String {
        serde_json::to_string_pretty(&self.ruleset(suspended)).expect("the nftables schema serializes to JSON")
    }

    /// Every rule first matches the tunnel by name, so the table constrains that interface and nothing else.
    fn rule(
        &self,
        chain: &'static str,
        interface: MetaKey,
        matches: Vec<Statement<'static>>,
        verdict: Statement<'static>,
        comment: &'static str,
    ) -> NfListObject<'static> {
        let tunnel = equals(Expression::Named(NamedExpression::Meta(Meta { key: interface })), self.interface());
        let expr: Vec<Statement<'static>> = std::iter::once(tunnel)
            .chain(matches)
            .chain([Statement::Counter(Counter::Anonymous(None)), verdict])
            .collect();
        NfListObject::Rule(Rule {
            family: FAMILY,
            table: TABLE.into(),
            chain: chain.into(),
            expr: expr.into(),
            comment: Some(comment.into()),
            ..Rule::default()
        })
    }

    fn interface(&self) -> Expression<'static> {
        Expression::String(self.plan.interface.clone().into())
    }
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table { family: FAMILY, name: TABLE.into(), handle: None })
}

/// Policy accept is deliberate. The table is there to constrain the tunnel, and every rule matches the tunnel
/// interface first; a drop policy would also cut the host off from everything else, the admin's SSH included, the
/// moment the table loads. An accept here is not final either: the packet still meets other tables' base chains on
/// the same hook, so this table can only take reachability away, never grant what another firewall refuses.
fn base_chain(name: &'static str, hook: NfHook) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn element(addr: Ipv4Addr) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: FAMILY,
        table: TABLE.into(),
        name: SUSPENDED.into(),
        elem: elements([addr]),
    })
}

fn elements(addrs: impl IntoIterator<Item = Ipv4Addr>) -> std::borrow::Cow<'static, [Expression<'static>]> {
    addrs.into_iter().map(address).collect::<Vec<_>>().into()
}

fn address(addr: Ipv4Addr) -> Expression<'static> {
    Expression::String(addr.to_string().into())
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: protocol.into(),
        field: field.into(),
    })))
}

fn equals(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op: Operator::EQ })
}

fn submit(action: &str, batch: &Nftables) -> Result<(), FirewallError> {
    let payload = serde_json::to_string(batch).expect("the nftables schema serializes to JSON");
    run_nft(&NFT, action, &payload)
}

fn run_nft(candidates: &[&str], action: &str, payload: &str) -> Result<(), FirewallError> {
    let run_error = |e| FirewallError::Run(action.to_string(), e);
    let spawned = candidates.iter().find_map(|program| {
        let child = Command::new(program)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            other => Some(other),
        }
    });
    let mut child = spawned.ok_or(FirewallError::NftMissing)?.map_err(run_error)?;
    // Dropping stdin after the write closes it, which tells nft the batch is complete.
    let written = child.stdin.take().expect("stdin is piped").write_all(payload.as_bytes());
    let output = child.wait_with_output().map_err(run_error)?;
    // If nft dies before reading the whole batch, the write fails with a broken pipe; its status and stderr say why.
    if !output.status.success() {
        return Err(FirewallError::Nft {
            action: action.to_string(),
            status: output.status,
            stderr: tidy(&output.stderr),
        });
    }
    written.map_err(run_error)
}

/// nft repeats its error once per command it refuses, with blank lines between: the distinct messages on one line
/// read better in a log.
fn tidy(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let mut messages: Vec<&str> = Vec::new();
    for line in stderr.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !messages.contains(&line) {
            messages.push(line);
        }
    }
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::Output;
    use std::time::Duration;

    use serde_json::{json, Value};
    use simpul_integration::netns::{missing_prerequisite, Netns};

    use super::*;

    const DEVICE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);

    fn plan() -> FirewallPlan {
        FirewallPlan { interface: "simpul0".to_string(), gateway: Ipv4Addr::new(10, 77, 0, 1), api_port: 8000 }
    }

    fn commands(firewall: &Firewall, suspended: &[Ipv4Addr]) -> Vec<Value> {
        let value = serde_json::to_value(firewall.ruleset(suspended)).unwrap();
        value["nftables"].as_array().expect("an nftables array").clone()
    }

    fn tunnel(key: &str) -> Value {
        json!({"match": {"op": "==", "left": {"meta": {"key": key}}, "right": "simpul0"}})
    }

    fn field(protocol: &str, field: &str, right: Value) -> Value {
        json!({"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}})
    }

    fn rule(chain: &str, expr: Vec<Value>, comment: &str) -> Value {
        json!({"add": {"rule": {"family": "inet", "table": "simpul", "chain": chain, "expr": expr, "comment": comment}}})
    }

    fn chain(name: &str) -> Value {
        json!({"add": {"chain": {
            "family": "inet", "table": "simpul", "name": name,
            "type": "filter", "hook": name, "prio": 0, "policy": "accept"
        }}})
    }

    #[test]
    fn ruleset_replaces_the_table_then_declares_set_chains_and_rules_in_order() {
        let table = json!({"table": {"family": "inet", "name": "simpul"}});
        let counter = json!({"counter": null});
        let expected = vec![
            json!({"add": table}),
            json!({"delete": table}),
            json!({"add": table}),
            json!({"add": {"set": {"family": "inet", "table": "simpul", "name": "suspended", "type": "ipv4_addr"}}}),
            chain("input"),
            rule(
                "input",
                vec![
                    tunnel("iifname"),
                    field("ip", "saddr", json!("@suspended")),
                    counter.clone(),
                    json!({"drop": null}),
                ],
                "simpul: a suspended device reaches nothing",
            ),
            rule(
                "input",
                vec![
                    tunnel("iifname"),
                    field("ip", "daddr", json!("10.77.0.1")),
                    field("tcp", "dport", json!(8000)),
                    counter.clone(),
                    json!({"accept": null}),
                ],
                "simpul: devices reach the API on the gateway's tunnel address",
            ),
            rule(
                "input",
                vec![tunnel("iifname"), counter.clone(), json!({"drop": null})],
                "simpul: nothing else from the tunnel (other ports, ICMP, IPv6, other host addresses)",
            ),
            chain("forward"),
            rule(
                "forward",
                vec![tunnel("iifname"), counter.clone(), json!({"drop": null})],
                "simpul: nothing from the tunnel is forwarded, even with ip_forward on",
            ),
            rule(
                "forward",
                vec![tunnel("oifname"), counter, json!({"drop": null})],
                "simpul: nothing is forwarded into the tunnel, even with ip_forward on",
            ),
        ];
        assert_eq!(commands(&Firewall::new(plan()), &[]), expected);
    }

    #[test]
    fn suspended_addresses_become_set_elements_once_each() {
        let commands = commands(&Firewall::new(plan()), &[OTHER, DEVICE, OTHER]);
        assert_eq!(commands[3]["add"]["set"]["elem"], json!(["10.77.0.2", "10.77.0.9"]));
    }

    #[test]
    fn plan_values_reach_the_rules() {
        let firewall = Firewall::new(FirewallPlan {
            interface: "wg-simpul".to_string(),
            gateway: Ipv4Addr::new(192, 168, 7, 1),
            api_port: 8443,
        });
        let text = serde_json::to_string(&firewall.ruleset(&[])).unwrap();
        assert!(!text.contains("simpul0") && !text.contains("10.77.0.1") && !text.contains("8000"), "{text}");
        assert!(text.contains(r#""right":"wg-simpul""#) && text.contains(r#""right":"192.168.7.1""#), "{text}");
        assert!(text.contains(r#""right":8443"#), "{text}");
    }

    #[test]
    fn print_is_the_ruleset_as_pretty_json() {
        let firewall = Firewall::new(plan());
        let printed = firewall.print(&[DEVICE]);
        assert!(printed.contains('\n'), "not pretty: {printed}");
        let parsed: Value = serde_json::from_str(&printed).expect("print() is JSON");
        assert_eq!(parsed, serde_json::to_value(firewall.ruleset(&[DEVICE])).unwrap());
    }

    #[test]
    fn a_missing_nft_is_reported_as_such() {
        let error = run_nft(&["/nonexistent/nft"], "apply the ruleset", "{}").unwrap_err();
        assert!(matches!(error, FirewallError::NftMissing), "{error:?}");
    }

    #[test]
    fn nft_errors_are_tidied_to_one_line_of_distinct_messages() {
        let stderr = b"internal:0:0-0: Error: A\n\ninternal:0:0-0: Error: A\n\ninternal:0:0-0: Error: B\n";
        assert_eq!(tidy(stderr), "internal:0:0-0: Error: A; internal:0:0-0: Error: B");
    }

    // Root tests: each runs the firewall in its own network namespace and reads the result back with nft.

    /// A network namespace of the test's own, `simpul-fw-…`, with only `lo` (up); deleted on drop so that a failing
    /// test leaves nothing behind.
    fn netns() -> Netns {
        Netns::isolated("simpul-fw")
    }

    /// `nft {args}` in the namespace, successful or not.
    fn nft(ns: &Netns, args: &[&str]) -> Output {
        let args: Vec<&str> = ["nft"].iter().chain(args).copied().collect();
        ns.command(&args).output().expect("ip netns exec nft")
    }

    /// The table as nft lists it, without handles and with counters blanked, grouped by kind of object in listing
    /// order; `None` when there is no table.
    fn table(ns: &Netns) -> Option<BTreeMap<String, Vec<Value>>> {
        let output = nft(ns, &["-j", "list", "table", "inet", "simpul"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("No such file or directory") {
            return None;
        }
        assert!(output.status.success(), "nft list table: {stderr}");
        let mut listed: Value = serde_json::from_slice(&output.stdout).expect("nft lists JSON");
        normalize(&mut listed);
        let objects = listed["nftables"].as_array().expect("an nftables array").iter().cloned();
        Some(group(objects.filter(|o| o.get("metainfo").is_none())))
    }

    fn tables(ns: &Netns) -> String {
        String::from_utf8(nft(ns, &["list", "tables"]).stdout).unwrap()
    }

    fn suspended(ns: &Netns) -> Value {
        let table = table(ns).expect("the table exists");
        table["set"][0]["set"].get("elem").cloned().unwrap_or(json!([]))
    }

    fn normalize(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("handle");
                if let Some(counter) = map.get_mut("counter") {
                    *counter = Value::Null;
                }
                map.values_mut().for_each(normalize);
            }
            Value::Array(items) => items.iter_mut().for_each(normalize),
            _ => {}
        }
    }

    fn group(objects: impl Iterator<Item = Value>) -> BTreeMap<String, Vec<Value>> {
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for object in objects {
            let kind = object.as_object().and_then(|o| o.keys().next()).expect("a one-key object").clone();
            groups.entry(kind).or_default().push(object);
        }
        groups
    }

    /// What the kernel should hold after `ruleset(suspended)`: everything the batch adds after its final
    /// `add table`.
    fn declared(firewall: &Firewall, suspended: &[Ipv4Addr]) -> BTreeMap<String, Vec<Value>> {
        group(commands(firewall, suspended).iter().skip(2).map(|command| command["add"].clone()))
    }

    #[test]
    fn apply_creates_exactly_the_declared_table() {
        if missing_prerequisite("apply_creates_exactly_the_declared_table", &[]) {
            return;
        }
        let ns = netns();
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[DEVICE])).expect("apply");
        let table = table(&ns).expect("the table exists");
        assert_eq!(table, declared(&firewall, &[DEVICE]));
        assert_eq!(table["rule"].len(), 5);
        assert_eq!(tables(&ns).trim(), "table inet simpul");
    }

    #[test]
    fn apply_again_replaces_the_table_without_duplicating_it() {
        if missing_prerequisite("apply_again_replaces_the_table_without_duplicating_it", &[]) {
            return;
        }
        let ns = netns();
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[DEVICE])).expect("first apply");
        ns.enter(|| firewall.apply(&[OTHER])).expect("second apply");
        assert_eq!(table(&ns).expect("the table exists"), declared(&firewall, &[OTHER]));
        assert_eq!(tables(&ns).trim(), "table inet simpul");
    }

    #[test]
    fn apply_replaces_a_leftover_table_whole() {
        if missing_prerequisite("apply_replaces_a_leftover_table_whole", &[]) {
            return;
        }
        let ns = netns();
        // What an older version might have left: a chain and a set this version does not declare. Flushed, the
        // output chain would still drop everything the host sends.
        let leftover = "add table inet simpul; \
            add chain inet simpul output { type filter hook output priority 0; policy drop; }; \
            add set inet simpul old { type ipv4_addr; elements = { 10.77.0.7 }; }";
        let output = nft(&ns, &[leftover]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[])).expect("apply");
        assert_eq!(table(&ns).expect("the table exists"), declared(&firewall, &[]));
    }

    #[test]
    fn suspend_and_resume_change_only_the_set() {
        if missing_prerequisite("suspend_and_resume_change_only_the_set", &[]) {
            return;
        }
        let ns = netns();
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[])).expect("apply");
        assert_eq!(suspended(&ns), json!([]));

        ns.enter(|| firewall.suspend(DEVICE)).expect("suspend");
        ns.enter(|| firewall.suspend(DEVICE)).expect("suspending twice is fine");
        ns.enter(|| firewall.suspend(OTHER)).expect("suspend another");
        assert_eq!(suspended(&ns), json!(["10.77.0.2", "10.77.0.9"]));
        assert_eq!(table(&ns).expect("the table exists"), declared(&firewall, &[DEVICE, OTHER]));

        ns.enter(|| firewall.resume(DEVICE)).expect("resume");
        assert_eq!(suspended(&ns), json!(["10.77.0.9"]));
        ns.enter(|| firewall.resume(DEVICE)).expect("resuming an address not in the set is fine");
        ns.enter(|| firewall.resume(OTHER)).expect("resume the other");
        assert_eq!(table(&ns).expect("the table exists"), declared(&firewall, &[]));
    }

    #[test]
    fn remove_deletes_the_table_and_is_idempotent() {
        if missing_prerequisite("remove_deletes_the_table_and_is_idempotent", &[]) {
            return;
        }
        let ns = netns();
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[DEVICE])).expect("apply");
        ns.enter(|| firewall.remove()).expect("remove");
        assert_eq!(table(&ns), None);
        assert_eq!(tables(&ns).trim(), "");
        ns.enter(|| firewall.remove()).expect("removing an absent table is fine");

        let error = ns.enter(|| firewall.suspend(DEVICE)).expect_err("suspending needs the table");
        assert!(matches!(&error, FirewallError::Nft { stderr, .. } if stderr.contains("No such file")), "{error}");
    }

    #[test]
    fn a_refused_batch_leaves_the_previous_table_untouched() {
        if missing_prerequisite("a_refused_batch_leaves_the_previous_table_untouched", &[]) {
            return;
        }
        let ns = netns();
        let firewall = Firewall::new(plan());
        ns.enter(|| firewall.apply(&[DEVICE])).expect("apply");
        ns.enter(|| firewall.suspend(OTHER)).expect("suspend");
        let before = table(&ns).expect("the table exists");

        // IFNAMSIZ is 16 bytes with the terminating NUL; nft refuses the name only after the batch's delete table.
        let long = Firewall::new(FirewallPlan { interface: "simpul-much-too-long".to_string(), ..plan() });
        let error = ns.enter(|| long.apply(&[])).expect_err("nft refuses a 20-byte interface name");
        let FirewallError::Nft { ref action, ref stderr, .. } = error else { panic!("not nft's refusal: {error:?}") };
        assert_eq!(action, "apply the ruleset");
        assert!(stderr.contains("exceeds maximum length"), "{stderr}");
        assert!(error.to_string().contains(stderr.as_str()), "{error}");

        assert_eq!(table(&ns).expect("the table survives"), before);
        assert_eq!(suspended(&ns), json!(["10.77.0.2", "10.77.0.9"]));
    }

    #[test]
    fn the_tunnel_reaches_only_the_api_port_and_suspension_cuts_it_off() {
        if missing_prerequisite("the_tunnel_reaches_only_the_api_port_and_suspension_cuts_it_off", &[]) {
            return;
        }
        let gateway = netns();
        let device = netns();
        // A veth pair stands in for the TUN device: the gateway's end carries the plan's interface name.
        gateway.exec(&["ip", "link", "add", "simpul0", "type", "veth", "peer", "name", "peer0", "netns", &device.name]);
        gateway.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "simpul0"]);
        gateway.exec(&["ip", "link", "set", "simpul0", "up"]);
        device.exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", "peer0"]);
        device.exec(&["ip", "link", "set", "peer0", "up"]);

        let api = SocketAddr::from((plan().gateway, 8000));
        let other_port = SocketAddr::from((plan().gateway, 8001));
        // Listening on both ports, so that a failed connection can only be the firewall's drop.
        let _listeners = gateway.enter(|| [api, other_port].map(|addr| TcpListener::bind(addr).expect("bind")));
        // A dropped SYN is answered by nothing; 500 ms is well past a veth round trip and before TCP's first retry.
        let connects =
            |ns: &Netns, addr: SocketAddr| ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)));
        assert!(connects(&device, other_port).is_ok(), "without the table every port is reachable");

        let firewall = Firewall::new(plan());
        gateway.enter(|| firewall.apply(&[])).expect("apply");
        assert!(connects(&device, api).is_ok(), "the API is reachable through the tunnel");
        let refused = connects(&device, other_port).expect_err("other ports are not reachable through the tunnel");
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut, "dropped, not rejected");
        assert!(connects(&gateway, other_port).is_ok(), "the host itself (like an admin's SSH) is not constrained");

        gateway.enter(|| firewall.suspend(DEVICE)).expect("suspend");
        assert!(connects(&device, api).is_err(), "a suspended device does not reach the API");
        gateway.enter(|| firewall.resume(DEVICE)).expect("resume");
        assert!(connects(&device, api).is_ok(), "a resumed device reaches the API again");
    }
}
