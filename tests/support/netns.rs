//! Network fault injection between the daemon and its broker.
//!
//! A [`FaultyLink`] is a network namespace of the test's own with a real mosquitto inside it,
//! reached from the host namespace, where the daemon and the test run, over two veth pairs:
//!
//! - the **faulty link**, whose namespace end is the broker address in [`FaultyLink::url`]. This is
//!   the daemon's path to the broker, and every fault applies to it and only to it: the iptables
//!   rules in the namespace match its interface (`-i faulty` / `-o faulty`), and the rate limit is
//!   a tbf qdisc on both of its ends, so both directions are capped.
//! - the **bypass**, a second veth pair to a second listener of the same broker
//!   ([`FaultyLink::bypass_host`], [`FaultyLink::consumer`]). No rule or qdisc ever touches it, so
//!   a test's consumer sees what the broker received, not what the faults did on the way back,
//!   and can keep watching while the daemon's path is down.
//!
//! Both listeners use port 1883: the namespace is private, so nothing else can hold it.
//!
//! Addresses: each link takes one /29 of 10.213.0.0/16, the faulty /30 first (host .1, broker .2),
//! the bypass /30 second (host .5, broker .6). The search for a free /29 starts at a point derived
//! from the process id and a per-process counter; a /29 is skipped if any host address falls in it,
//! and claimed by creating the host-side interfaces named after it (`eif<n>`, `eib<n>`): creating an
//! interface is atomic, so two tests, in one process or in several, never get the same /29.
//!
//! Namespaces are named `edgeinfer-test-<pid>-<counter>`. Dropping a link kills its broker and
//! deletes its interfaces and namespace, also when the test panics. Namespaces left behind by a test
//! process that died without unwinding (SIGKILL, abort) are removed by the next one: those of a
//! process that no longer exists, and those with the new process's own id (a reused pid).
//!
//! Needs root (network namespaces, interfaces, firewall rules) and `ip`, `tc` (iproute2),
//! `iptables` and `mosquitto`; a missing one fails the test with the package to install.

use super::broker::{mosquitto_path, open_to_broker, write_mosquitto_conf};
use super::recorder::Recorder;
use super::wait::{signal, wait_until};
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

/// The broker's port on both listeners.
pub const PORT: u16 = 1883;

const NAME_PREFIX: &str = "edgeinfer-test-";
/// Interface names inside the namespace; the host-side ends carry the /29's number instead.
const FAULTY: &str = "faulty";
const BYPASS: &str = "bypass";
/// The number of /29 blocks in 10.213.0.0/16.
const BLOCKS: u32 = 1 << 13;
const BASE: u32 = u32::from_be_bytes([10, 213, 0, 0]);

static COUNTER: AtomicU32 = AtomicU32::new(0);
static REMOVE_OWN_LEFTOVERS: Once = Once::new();

/// How the daemon's connections to the broker are blocked, if they are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Drop,
    Reject,
}

/// The faults in force; every control edits this and applies it whole, so each is idempotent.
#[derive(Clone, Copy, Default)]
struct Faults {
    block: Option<Block>,
    loss_percent: u32,
    rate_kbit: Option<u32>,
}

/// A broker in a network namespace of its own, behind a link whose faults the test controls.
pub struct FaultyLink {
    ns: String,
    /// The /29 this link holds; `None` until it is claimed.
    block: Option<u32>,
    tools: Tools,
    dir: tempfile::TempDir,
    broker: Option<Child>,
    faults: Faults,
    /// Whether tbf qdiscs are installed, so that `heal` knows there is something to delete.
    qdiscs: bool,
}

impl FaultyLink {
    /// Creates the namespace, both veth pairs and the broker; panics naming what is missing.
    pub fn start() -> FaultyLink {
        let tools = Tools::find();
        remove_leftovers(&tools.ip);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = format!("{NAME_PREFIX}{}-{n}", std::process::id());
        delete_namespace(&tools.ip, &ns);
        must(Command::new(&tools.ip).args(["netns", "add", &ns]));
        // Named after the namespace, so that whoever removes a leftover namespace finds it too.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{ns}."))
            .tempdir()
            .unwrap();
        open_to_broker(dir.path());
        // From here on, Drop cleans up whatever exists if a later step panics.
        let mut link = FaultyLink {
            ns,
            block: None,
            tools,
            dir,
            broker: None,
            faults: Faults::default(),
            qdiscs: false,
        };
        link.claim_block(n);
        link.configure_addresses();
        write_mosquitto_conf(
            link.dir.path(),
            &[(link.broker_host(), PORT), (link.bypass_host(), PORT)],
        );
        link.start_broker();
        link
    }

    /// `mqtt://ADDR:PORT` of the broker over the faulty link: the daemon's broker URL.
    pub fn url(&self) -> String {
        format!("mqtt://{}:{PORT}", self.broker_host())
    }

    /// The broker's address on the faulty link.
    pub fn broker_host(&self) -> String {
        self.addr(2).to_string()
    }

    /// The broker's address on the bypass, which no fault touches.
    pub fn bypass_host(&self) -> String {
        self.addr(6).to_string()
    }

    /// The network namespace's name.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The host-side interface names of the faulty link and of the bypass.
    pub fn host_interfaces(&self) -> [String; 2] {
        let block = self.block.expect("interfaces exist once started");
        [format!("eif{block}"), format!("eib{block}")]
    }

    /// The running broker's process id.
    pub fn broker_pid(&self) -> Option<u32> {
        self.broker.as_ref().map(Child::id)
    }

    /// A consumer ([`Recorder::consumer_at`]) subscribed to `filter` over the bypass.
    pub fn consumer(&self, filter: &str) -> Recorder {
        Recorder::consumer_at(&self.bypass_host(), PORT, filter)
    }

    /// Silently discards the daemon's traffic to and from the broker port: connects time out,
    /// open connections stall.
    pub fn drop_broker(&mut self) {
        self.faults.block = Some(Block::Drop);
        self.apply();
    }

    /// Answers the daemon's traffic to the broker port with a TCP reset: connects are refused at
    /// once, open connections are reset on their next packet.
    pub fn reject_broker(&mut self) {
        self.faults.block = Some(Block::Reject);
        self.apply();
    }

    /// Drops `percent` of the packets on the faulty link at random, in both directions; 0 stops it.
    pub fn loss(&mut self, percent: u32) {
        assert!(percent <= 100, "loss of {percent}%");
        self.faults.loss_percent = percent;
        self.apply();
    }

    /// Caps the faulty link at `kbit` kilobits per second in each direction.
    pub fn rate_limit(&mut self, kbit: u32) {
        assert!(kbit > 0, "a rate limit of 0 kbit/s");
        self.faults.rate_kbit = Some(kbit);
        self.apply();
    }

    /// Removes every fault: rules and qdiscs.
    pub fn heal(&mut self) {
        self.faults = Faults::default();
        self.apply();
    }

    /// Stops the broker gracefully (it saves its persistence file); does nothing if it is stopped.
    pub fn stop_broker(&mut self) {
        if let Some(mut child) = self.broker.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Starts the broker on the same addresses with the same persistence; does nothing if it runs.
    pub fn start_broker(&mut self) {
        if self.broker.is_some() {
            return;
        }
        let conf = self.dir.path().join("mosquitto.conf");
        let mut child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.ns])
            .arg(&self.tools.mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.tools.ip.display()));
        // The bypass answers whatever faults are in force.
        let addr = (self.addr(6), PORT);
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok()
                || matches!(child.try_wait(), Ok(Some(_)))
        });
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("mosquitto in {} exited with {status}: {err}", self.ns);
        }
        // Nothing reads it from here on; a full pipe must not block the broker.
        drop(child.stderr.take());
        self.broker = Some(child);
        assert!(up, "mosquitto in {} did not listen on {addr:?}", self.ns);
    }

    fn addr(&self, host: u32) -> Ipv4Addr {
        let block = self.block.expect("addresses exist once started");
        Ipv4Addr::from(BASE + block * 8 + host)
    }

    /// Finds a free /29 and creates both veth pairs for it, with their namespace ends in place.
    fn claim_block(&mut self, n: u32) {
        let ip = &self.tools.ip;
        let taken = host_addresses(ip);
        let pid = std::process::id();
        let first = (pid.wrapping_mul(2_654_435_761) ^ n.wrapping_mul(40_503)) % BLOCKS;
        for i in 0..BLOCKS {
            let block = (first + i) % BLOCKS;
            let start = BASE + block * 8;
            if taken.iter().any(|a| (start..start + 8).contains(a)) {
                continue;
            }
            if !create_veth(ip, &format!("eif{block}"), FAULTY, &self.ns) {
                continue;
            }
            self.block = Some(block);
            if !create_veth(ip, &format!("eib{block}"), BYPASS, &self.ns) {
                // Someone holds the bypass name of this block; give the whole block back.
                let _ = run(Command::new(ip).args(["link", "del", &format!("eif{block}")]));
                self.block = None;
                continue;
            }
            return;
        }
        panic!("no free /29 left in 10.213.0.0/16 for {}", self.ns);
    }

    fn configure_addresses(&self) {
        let [faulty, bypass] = self.host_interfaces();
        let host = format!(
            "addr add {}/30 dev {faulty}\nlink set {faulty} up\naddr add {}/30 dev {bypass}\nlink set {bypass} up\n",
            self.addr(1),
            self.addr(5),
        );
        must_with_input(Command::new(&self.tools.ip).args(["-batch", "-"]), &host);
        let inside = format!(
            "addr add {}/30 dev {FAULTY}\nlink set {FAULTY} up\naddr add {}/30 dev {BYPASS}\nlink set {BYPASS} up\nlink set lo up\n",
            self.addr(2),
            self.addr(6),
        );
        must_with_input(
            Command::new(&self.tools.ip).args(["-n", &self.ns, "-batch", "-"]),
            &inside,
        );
    }

    /// Replaces the namespace's rules and the link's qdiscs with those `self.faults` asks for.
    fn apply(&mut self) {
        let mut rules = String::from(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
        );
        match self.faults.block {
            Some(Block::Drop) => rules.push_str(&format!(
                "-A INPUT -i {FAULTY} -p tcp --dport {PORT} -j DROP\n-A OUTPUT -o {FAULTY} -p tcp --sport {PORT} -j DROP\n"
            )),
            Some(Block::Reject) => rules.push_str(&format!(
                "-A INPUT -i {FAULTY} -p tcp --dport {PORT} -j REJECT --reject-with tcp-reset\n"
            )),
            None => {}
        }
        if self.faults.loss_percent > 0 {
            let p = f64::from(self.faults.loss_percent) / 100.0;
            rules.push_str(&format!(
                "-A INPUT -i {FAULTY} -m statistic --mode random --probability {p} -j DROP\n-A OUTPUT -o {FAULTY} -m statistic --mode random --probability {p} -j DROP\n"
            ));
        }
        rules.push_str("COMMIT\n");
        // iptables-restore swaps the whole table at once, so no packet sees half a change.
        must_with_input(
            Command::new(&self.tools.ip)
                .args(["netns", "exec", &self.ns])
                .arg(&self.tools.iptables_restore),
            &rules,
        );

        let [faulty, _] = self.host_interfaces();
        match self.faults.rate_kbit {
            Some(kbit) => {
                let bytes_per_s = u64::from(kbit) * 1000 / 8;
                // At least a few full-size packets (tbf drops anything larger than its burst), at
                // most a tenth of a second's worth, so the cap holds over short windows too.
                let burst = (bytes_per_s / 10).max(4 * 1514).to_string();
                let rate = format!("{kbit}kbit");
                let tbf = [
                    "root", "tbf", "rate", &rate, "burst", &burst, "latency", "300ms",
                ];
                must(
                    Command::new(&self.tools.tc)
                        .args(["qdisc", "replace", "dev", &faulty])
                        .args(tbf),
                );
                must(
                    Command::new(&self.tools.tc)
                        .args(["-n", &self.ns, "qdisc", "replace", "dev", FAULTY])
                        .args(tbf),
                );
                self.qdiscs = true;
            }
            None if self.qdiscs => {
                must(Command::new(&self.tools.tc).args(["qdisc", "del", "dev", &faulty, "root"]));
                must(
                    Command::new(&self.tools.tc)
                        .args(["-n", &self.ns, "qdisc", "del", "dev", FAULTY, "root"]),
                );
                self.qdiscs = false;
            }
            None => {}
        }
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        if let Some(mut child) = self.broker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the host ends removes the pairs at once; the namespace would take them along
        // too, but asynchronously, and the names and addresses are then briefly still taken.
        if self.block.is_some() {
            for name in self.host_interfaces() {
                let _ = run(Command::new(&self.tools.ip).args(["link", "del", &name]));
            }
        }
        delete_namespace(&self.tools.ip, &self.ns);
    }
}

/// The programs a link runs, found once per link.
struct Tools {
    ip: PathBuf,
    tc: PathBuf,
    iptables_restore: PathBuf,
    mosquitto: PathBuf,
}

impl Tools {
    fn find() -> Tools {
        let tools = Tools {
            ip: find_tool("ip", "iproute2"),
            tc: find_tool("tc", "iproute2"),
            // `iptables` itself is not run, but its absence is what a reader will recognise.
            iptables_restore: {
                find_tool("iptables", "iptables");
                find_tool("iptables-restore", "iptables")
            },
            mosquitto: match mosquitto_path() {
                p if p.is_absolute() => p,
                p => find_tool(&p.to_string_lossy(), "mosquitto"),
            },
        };
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
            })
            .unwrap_or(false);
        assert!(
            root,
            "network fault injection needs root (it creates network namespaces, interfaces and firewall rules)"
        );
        tools
    }
}

/// The path of `name` on PATH or in the sbin directories, which are not on every user's PATH;
/// panics naming the tool and the Debian package that provides it.
pub fn find_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "network fault injection needs `{name}`, which is not installed (apt-get install -y {package})"
            )
        })
}

/// Creates a veth pair, `host` here and `inside` in `ns`; false if `host` exists already.
fn create_veth(ip: &Path, host: &str, inside: &str, ns: &str) -> bool {
    let mut cmd = Command::new(ip);
    cmd.args([
        "link", "add", host, "type", "veth", "peer", "name", inside, "netns", ns,
    ]);
    match run(&mut cmd) {
        Ok(_) => true,
        Err(e) if e.contains("File exists") => false,
        Err(e) => panic!("{e}"),
    }
}

/// Every IPv4 address on the host's interfaces.
fn host_addresses(ip: &Path) -> Vec<u32> {
    must(Command::new(ip).args(["-o", "-4", "addr", "show"]))
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            let addr = words.next()?.split('/').next()?;
            addr.parse::<Ipv4Addr>().ok().map(u32::from)
        })
        .collect()
}

/// Removes the namespaces of test processes that are gone, and, once per process, those that carry
/// this process's id: they were left by an earlier process that had the same id.
fn remove_leftovers(ip: &Path) {
    let me = std::process::id();
    // Inside `call_once`, so that no other link of this process exists yet while it runs.
    REMOVE_OWN_LEFTOVERS.call_once(|| remove_namespaces_of(ip, |pid| pid == me));
    remove_namespaces_of(ip, |pid| {
        pid != me && !Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// Removes the link namespaces, with their brokers' directories, whose process id `stale` accepts.
fn remove_namespaces_of(ip: &Path, stale: impl Fn(u32) -> bool) {
    let list = must(Command::new(ip).args(["netns", "list"]));
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = ns
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(&stale) {
            delete_namespace(ip, ns);
            remove_broker_dirs(ns);
        }
    }
}

/// Removes the persistence directories of the brokers of namespace `ns`.
fn remove_broker_dirs(ns: &str) {
    let prefix = format!("{ns}.");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Kills whatever runs in `ns` and deletes it, with the interfaces and rules in it; quiet if it
/// does not exist.
fn delete_namespace(ip: &Path, ns: &str) {
    if let Ok(pids) = run(Command::new(ip).args(["netns", "pids", ns])) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            signal(pid, "KILL");
        }
    }
    let _ = run(Command::new(ip).args(["netns", "del", ns]));
}

/// Runs `cmd`; its stdout, or a message naming the command with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    run_with_input(cmd, None)
}

fn must(cmd: &mut Command) -> String {
    run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

fn must_with_input(cmd: &mut Command, input: &str) -> String {
    run_with_input(cmd, Some(input)).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with_input(cmd: &mut Command, input: Option<&str>) -> Result<String, String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{shown}: writing its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let input = input.map(|i| format!("\ninput:\n{i}")).unwrap_or_default();
        Err(format!(
            "{shown} failed ({}): {}{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
