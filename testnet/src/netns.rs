//! A network namespace per node, for process-mode testnets whose scenario
//! cuts links (`disconnect`). Each node's CometBFT and sequencer run inside
//! `seqnet-<base>-<i>` with one veth interface (`eth0`, `10.A.B.(i+2)/24`)
//! whose host end (`sqn<base>v<i>`) is a port of the bridge `sqn<base>`
//! (`10.A.B.1`, the host). Nodes reach each other through the bridge and
//! the host's tools (load generator, status, checker, provers) reach them
//! at their addresses. Disconnecting a node sets its host end down: every
//! packet to and from it is dropped while its processes keep running, as a
//! pulled cable or a `docker network disconnect` looks to the peers.
//!
//! `A.B` are the two bytes of the testnet's base port, so testnets with
//! different port ranges get different subnets. Setting up needs root and
//! iproute2; [`probe`] says whether this machine can. Everything is
//! idempotent and [`teardown`] removes the namespaces, veths, bridge and
//! the iptables rule (docker's `FORWARD` policy drops bridged traffic).

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TestnetError};

/// Where a testnet's nodes live when each has its own namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsLayout {
    /// Bridge on the host (`sqn<base>`); its address is `.1` of the subnet.
    pub bridge: String,
    /// First three octets of the `/24` subnet.
    pub subnet: [u8; 3],
    /// Namespace of node `i` is `<prefix>-<i>`.
    pub prefix: String,
}

impl NetnsLayout {
    /// The layout of a testnet whose ports start at `base_port`.
    pub fn for_base_port(base_port: u16) -> NetnsLayout {
        let [hi, lo] = base_port.to_be_bytes();
        NetnsLayout {
            bridge: format!("sqn{base_port}"),
            subnet: [10, hi, lo],
            prefix: format!("seqnet-{base_port}"),
        }
    }

    /// The host's address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Node `index`'s address (`None` past the 253 a `/24` holds).
    pub fn node_ip(&self, index: usize) -> Option<Ipv4Addr> {
        let [a, b, c] = self.subnet;
        let last = u8::try_from(index.checked_add(2)?).ok()?;
        (last < 255).then_some(Ipv4Addr::new(a, b, c, last))
    }

    /// Node `index`'s namespace.
    pub fn namespace(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix)
    }

    /// Host end of node `index`'s veth pair (at most 15 bytes: `sqn65535v252`).
    pub fn host_veth(&self, index: usize) -> String {
        format!("{}v{index}", self.bridge)
    }

    fn subnet_cidr(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    fn forward_rule(&self) -> [String; 6] {
        [
            "FORWARD".into(),
            "-i".into(),
            self.bridge.clone(),
            "-o".into(),
            self.bridge.clone(),
            "-j".into(),
        ]
    }
}

/// Runs `program args`; its stdout ([`crate::process::run_checked`]).
fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = crate::process::run_checked(Command::new(program).args(args))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether the host has a network interface `name` (no process spawned:
/// `pick_free_base_port` asks this for every candidate).
fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Whether the bridge of `layout` exists (a testnet with these ports runs
/// or ran in namespaces).
pub fn bridge_exists(layout: &NetnsLayout) -> bool {
    link_exists(&layout.bridge)
}

fn namespace_exists(name: &str) -> bool {
    run("ip", &["netns", "list"])
        .map(|list| {
            list.lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        })
        .unwrap_or(false)
}

/// Whether this machine can give nodes their own namespaces (root and
/// iproute2 that can create one); the reason when it cannot.
pub fn probe(layout: &NetnsLayout) -> std::result::Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".into());
    }
    run("ip", &["netns", "list"]).map_err(|e| e.to_string())?;
    // A subnet some other interface already uses would shadow ours.
    let addrs = run("ip", &["-o", "-4", "addr", "show"]).map_err(|e| e.to_string())?;
    let [a, b, c] = layout.subnet;
    let prefix = format!("inet {a}.{b}.{c}.");
    if let Some(line) = addrs
        .lines()
        .find(|l| l.contains(&prefix) && !l.contains(&layout.bridge))
    {
        return Err(format!(
            "subnet {} is in use: {}",
            layout.subnet_cidr(),
            line.trim()
        ));
    }
    Ok(())
}

/// Creates the bridge (with the host's address) and node `index`'s
/// namespace and veth pair, if missing, and brings them up.
pub fn setup_node(layout: &NetnsLayout, index: usize) -> Result<()> {
    let node_ip = layout
        .node_ip(index)
        .ok_or_else(|| TestnetError::InvalidOption {
            name: "netns node",
            value: index.to_string(),
            reason: "a /24 holds nodes 0..=252".into(),
        })?;
    let bridge = layout.bridge.as_str();
    if !link_exists(bridge) {
        run("ip", &["link", "add", "name", bridge, "type", "bridge"])?;
        let host = format!("{}/24", layout.host_ip());
        run("ip", &["addr", "add", &host, "dev", bridge])?;
    }
    run("ip", &["link", "set", bridge, "up"])?;
    allow_forwarding(layout)?;

    let ns = layout.namespace(index);
    if !namespace_exists(&ns) {
        run("ip", &["netns", "add", &ns])?;
    }
    run(
        "ip",
        &["netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
    )?;
    let veth = layout.host_veth(index);
    if !link_exists(&veth) {
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        let addr = format!("{node_ip}/24");
        run(
            "ip",
            &[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", "eth0",
            ],
        )?;
    }
    run(
        "ip",
        &["netns", "exec", &ns, "ip", "link", "set", "eth0", "up"],
    )?;
    run("ip", &["link", "set", &veth, "master", bridge])?;
    run("ip", &["link", "set", &veth, "up"])?;
    Ok(())
}

/// Docker sets the `FORWARD` policy to DROP and makes bridged frames pass
/// iptables: accept whatever stays on our bridge.
fn allow_forwarding(layout: &NetnsLayout) -> Result<()> {
    if Command::new("iptables").arg("--version").output().is_err() {
        return Ok(());
    }
    let rule = layout.forward_rule();
    let mut check: Vec<&str> = vec!["-C"];
    check.extend(rule.iter().map(String::as_str));
    check.push("ACCEPT");
    if run("iptables", &check).is_ok() {
        return Ok(());
    }
    let mut insert: Vec<&str> = vec!["-I"];
    insert.extend(rule.iter().map(String::as_str));
    insert.push("ACCEPT");
    run("iptables", &insert).map(drop)
}

/// Cuts (`connected = false`) or restores node `index`'s link to the bridge.
pub fn set_connected(layout: &NetnsLayout, index: usize, connected: bool) -> Result<()> {
    let state = if connected { "up" } else { "down" };
    run("ip", &["link", "set", &layout.host_veth(index), state]).map(drop)
}

/// `ip netns exec <namespace of index> program`: the command to start a
/// node's process in its namespace (the exec keeps the pid).
pub fn command_in(layout: &NetnsLayout, index: usize, program: &std::path::Path) -> Command {
    let mut command = Command::new("ip");
    command
        .arg("netns")
        .arg("exec")
        .arg(layout.namespace(index))
        .arg(program);
    command
}

/// Removes the namespaces of nodes `0..nodes` (their veths go with them),
/// the bridge and the iptables rule. Missing pieces are skipped.
pub fn teardown(layout: &NetnsLayout, nodes: usize) {
    for index in 0..nodes {
        let ns = layout.namespace(index);
        if namespace_exists(&ns) {
            if let Err(e) = run("ip", &["netns", "delete", &ns]) {
                tracing::warn!("removing namespace {ns}: {e}");
            }
        }
        let veth = layout.host_veth(index);
        if link_exists(&veth) {
            let _ = run("ip", &["link", "delete", &veth]);
        }
    }
    if link_exists(&layout.bridge) {
        if let Err(e) = run("ip", &["link", "delete", &layout.bridge]) {
            tracing::warn!("removing bridge {}: {e}", layout.bridge);
        }
    }
    let rule = layout.forward_rule();
    let mut delete: Vec<&str> = vec!["-D"];
    delete.extend(rule.iter().map(String::as_str));
    delete.push("ACCEPT");
    let _ = run("iptables", &delete);
}

/// How old a namespace without a process must be before [`sweep_stale`]
/// takes it for left behind (younger ones may be a testnet starting).
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Removes what testnets that died without stopping (a killed test, a
/// crash) left behind: for each base port whose `seqnet-<base>-<i>`
/// namespaces all hold no process and are older than `min_age`, its
/// namespaces, bridge and rule. Returns the base ports swept. A running
/// testnet keeps its processes in its namespaces and is left alone.
pub fn sweep_stale(min_age: Duration) -> Vec<u16> {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return Vec::new();
    };
    // base port -> (highest node index, whether any namespace holds a process)
    let mut bases: std::collections::BTreeMap<u16, (usize, bool)> = Default::default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some((base, index)) = name
            .strip_prefix("seqnet-")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let (Ok(base), Ok(index)) = (base.parse::<u16>(), index.parse::<usize>()) else {
            continue;
        };
        let young = std::fs::metadata(format!("/run/netns/{name}"))
            .and_then(|m| m.modified())
            .map_or(true, |t| t.elapsed().unwrap_or_default() < min_age);
        let busy = young
            || run("ip", &["netns", "pids", name]).map_or(true, |pids| !pids.trim().is_empty());
        let entry = bases.entry(base).or_insert((0, false));
        entry.0 = entry.0.max(index);
        entry.1 |= busy;
    }
    let mut swept = Vec::new();
    for (base, (highest, busy)) in bases {
        if !busy {
            tracing::info!(
                base_port = base,
                "removing namespaces a dead testnet left behind"
            );
            teardown(&NetnsLayout::for_base_port(base), highest + 1);
            swept.push(base);
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweep removes any idle namespace: the namespace tests take turns.
    static NETNS_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The layout for `base` and this test's turn, or `None` (said on
    /// stderr) where namespaces cannot be made.
    fn namespaces_or_skip(base: u16) -> Option<(NetnsLayout, std::sync::MutexGuard<'static, ()>)> {
        let layout = NetnsLayout::for_base_port(base);
        if let Err(why) = probe(&layout) {
            eprintln!("skipped: network namespaces unavailable ({why})");
            return None;
        }
        let turn = NETNS_TESTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some((layout, turn))
    }

    #[test]
    fn layout_names_fit_and_subnets_follow_the_base_port() {
        let layout = NetnsLayout::for_base_port(27000);
        assert_eq!(layout.bridge, "sqn27000");
        assert_eq!(layout.subnet, [10, 105, 120]);
        assert_eq!(layout.host_ip(), Ipv4Addr::new(10, 105, 120, 1));
        assert_eq!(layout.node_ip(0), Some(Ipv4Addr::new(10, 105, 120, 2)));
        assert_eq!(layout.node_ip(252), Some(Ipv4Addr::new(10, 105, 120, 254)));
        assert_eq!(layout.node_ip(253), None);
        assert_eq!(layout.namespace(3), "seqnet-27000-3");
        // Linux interface names hold at most 15 bytes.
        let widest = NetnsLayout::for_base_port(u16::MAX);
        assert!(widest.host_veth(252).len() <= 15);
        assert_ne!(
            NetnsLayout::for_base_port(27000).subnet,
            NetnsLayout::for_base_port(27040).subnet
        );
    }

    /// Each node reaches the host through its veth and the bridge until
    /// its link is cut. Needs root; says so and passes where it cannot run.
    #[test]
    fn nodes_reach_the_host_until_cut() {
        // A base port no real testnet here uses (below the ranges
        // `pick_free_base_port` hands out).
        let Some((layout, _one_at_a_time)) = namespaces_or_skip(1999) else {
            return;
        };
        teardown(&layout, 2);
        let result = (|| -> Result<()> {
            setup_node(&layout, 0)?;
            setup_node(&layout, 1)?;
            // Set up twice: idempotent.
            setup_node(&layout, 1)?;
            let listener = std::net::TcpListener::bind((layout.host_ip(), 0))
                .map_err(|e| TestnetError::io("listener", e))?;
            let port = listener
                .local_addr()
                .map_err(|e| TestnetError::io("listener", e))?
                .port();
            let connects = |from: usize| {
                let script = format!("exec 3<>/dev/tcp/{}/{port}", layout.host_ip());
                let ns = layout.namespace(from);
                run(
                    "ip",
                    &["netns", "exec", &ns, "timeout", "2", "bash", "-c", &script],
                )
                .is_ok()
            };
            assert!(connects(0), "node0 cannot reach the host");
            assert!(connects(1), "node1 cannot reach the host");
            set_connected(&layout, 1, false)?;
            assert!(!connects(1), "node1 reaches the host while cut");
            assert!(connects(0), "cutting node1 cut node0");
            set_connected(&layout, 1, true)?;
            assert!(
                connects(1),
                "node1 cannot reach the host after reconnecting"
            );
            Ok(())
        })();
        teardown(&layout, 2);
        assert!(!link_exists(&layout.bridge), "bridge left behind");
        assert!(
            !namespace_exists(&layout.namespace(0)),
            "namespace left behind"
        );
        result.unwrap();
    }

    /// Namespaces without a process are swept, with their bridge; needs root.
    #[test]
    fn stale_namespaces_are_swept() {
        let Some((layout, _one_at_a_time)) = namespaces_or_skip(1998) else {
            return;
        };
        setup_node(&layout, 0).unwrap();
        setup_node(&layout, 1).unwrap();
        assert!(
            !sweep_stale(Duration::from_secs(3600)).contains(&1998),
            "too young"
        );
        assert!(sweep_stale(Duration::ZERO).contains(&1998));
        assert!(
            !namespace_exists(&layout.namespace(1)),
            "namespace left behind"
        );
        assert!(!link_exists(&layout.bridge), "bridge left behind");
    }
}
