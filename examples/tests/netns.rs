//! The three-service chain (`ctx_examples::chain`) across a faulty network: A, B and C each in
//! a network namespace of its own, made by the test, linked A–B and B–C by point-to-point links
//! whose IP packets the test carries itself, late or not at all.
//!
//! The kernel's `netem` qdisc (`tc qdisc add dev … root netem delay 50ms loss 20%`) does that
//! on a veth pair, but it is not in every kernel (`CONFIG_NET_SCH_NETEM`; not in the one this
//! suite was written on), so each link here is a pair of TUN devices, one in each namespace,
//! and two threads per direction: one reads every packet the sending side's kernel routes to
//! its device and drops a share of them (a seeded generator, so the same packets in the same
//! order of each run), the other writes the rest into the receiving side's device once the
//! link's delay has passed. Connections are reset with `ss -K`, which aborts a socket as a
//! crashed host or a middlebox would: its own end fails, the peer gets a RST.
//!
//! - with 50 ms each way on both links, the deadline set at A holds end to end: A answers by
//!   its deadline; C's request is given less than A's budget, and its deadline is A's, later
//!   by the time the request spent on the links, here their two 50 ms (`grpc-timeout` carries
//!   the time *left*, and the time a request spends on the wire is counted by nobody); C's
//!   query stops by that deadline;
//! - with 20 % of the packets lost each way, every call answers or fails by A's deadline, and
//!   every request C got ends by its own;
//! - a reset of the connection between B and C, or between A and B, in the middle of a call
//!   reaches C as a hang-up: its request ends with `client disconnected`, and its query stops.
//!
//! Needs root, `ip` and `ss` (iproute2) and `/dev/net/tun`: without them it prints "skipped"
//! and passes, and under `CI=true` fails.

mod common;

use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use common::{HARD_BOUND, sqlite_app, wait_until};
use ctx_core::{CancelHandle, Context};
use ctx_examples::chain::{Catalog, catalog_channel, edge_router, serve_catalog, serve_http};
use ctx_examples::{Album, App, AuditRow, ServiceSpan, router};
use ctx_http::RequestEnd;
use ctx_http::grpc_timeout::{GRPC_TIMEOUT, parse_timeout};

/// What a loaded 2-core machine may add to anything that should take no time at all: a timer
/// firing, a thread waking up, a packet handed on. (With a load average of 23, A's timer was
/// seen firing 70 ms late and its answer reaching the client 350 ms after that; at a load of 2
/// A's 504 came 2.5 ms after its budget.) What the suite catches is longer: C's own timeout is
/// 5 s, the slow queries 30 s.
const SLACK: Duration = Duration::from_secs(1);

/// A, in A's namespace (the test's client is there too: no link between them).
const EDGE: &str = "127.0.0.1:8090";
/// A's end of the A–B link, and B's, where B listens.
const AB: [[u8; 4]; 2] = [[10, 77, 1, 1], [10, 77, 1, 2]];
const CATALOG_PORT: u16 = 50051;
/// B's end of the B–C link, and C's, where C listens.
const BC: [[u8; 4]; 2] = [[10, 77, 2, 1], [10, 77, 2, 2]];
const ALBUMS_PORT: u16 = 8091;

fn catalog_addr() -> SocketAddr {
    SocketAddr::from((AB[1], CATALOG_PORT))
}

fn albums_addr() -> SocketAddr {
    SocketAddr::from((BC[1], ALBUMS_PORT))
}

fn edge_url(seconds: f64) -> String {
    format!("http://{EDGE}/albums/slow?seconds={seconds}")
}

// ---------------------------------------------------------------------------------------------
// Namespaces.

/// The start of the names of this suite's namespaces: `ctx-netns-<pid>-<test>-<a|b|c>`.
const PREFIX: &str = "ctx-netns-";

/// Runs `program` and returns its output, or what it said on failure.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("{program}: {err}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `ip …`, which must succeed: the namespaces exist by then, so a failure is a bug.
fn ip(args: &[&str]) {
    if let Err(err) = run("ip", args) {
        panic!("{err}");
    }
}

/// Why this machine cannot run the suite, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and TUN devices need CAP_NET_ADMIN)".into());
    }
    for (program, arg) in [("ip", "-V"), ("ss", "-V")] {
        if run(program, &[arg]).is_err() {
            return Some(format!("no `{program}` (apt-get install iproute2)"));
        }
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun");
    if let Err(err) = tun {
        return Some(format!("cannot open /dev/net/tun: {err}"));
    }
    None
}

/// Passes with "skipped", or fails under `CI=true`, where the suite must run.
fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the network fault suite cannot run under CI=true: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Deletes the namespaces of earlier runs that were killed before they could.
fn delete_stale_namespaces() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "delete", name]);
        }
    }
}

/// Network namespaces, deleted when dropped, a failed test's included.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            if let Err(err) = run("ip", &["netns", "delete", name]) {
                eprintln!("{err}");
            }
        }
    }
}

/// Moves the calling thread (only it) into namespace `ns`.
fn enter(ns: &str) -> std::io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: a namespace file's descriptor, open for the call; CLONE_NEWNET moves only the
    // calling thread, whose sockets from then on are the namespace's.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `f`, run on a thread of its own inside namespace `ns`: the sockets and devices it makes are
/// the namespace's, whichever thread uses them later.
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns).unwrap_or_else(|err| panic!("entering namespace {ns}: {err}"));
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A tokio runtime whose every thread (its own and its blocking pool's) is in namespace `ns`.
fn runtime_in(ns: &str) -> tokio::runtime::Runtime {
    let ns = ns.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            enter(&ns).unwrap_or_else(|err| panic!("entering namespace {ns}: {err}"));
        })
        .build()
        .expect("a tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Links.

/// What a link does to the packets crossing it, in each direction.
#[derive(Clone, Copy, Debug)]
struct Fault {
    /// How long each packet takes.
    delay: Duration,
    /// The share of packets lost, from 0 to 1.
    loss: f64,
}

impl Fault {
    fn delay(delay: Duration) -> Fault {
        Fault { delay, loss: 0.0 }
    }
}

/// `_IOW('T', 202, int)`: makes a TUN file a device.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
/// Bare IP packets, without the 4-byte packet information header.
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` for TUNSETIFF: the name and the flags, padded to its 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// A TUN device `name` in namespace `ns`, there as long as the file is open.
fn open_tun(ns: &str, name: &'static str) -> std::io::Result<File> {
    in_namespace(ns, move || {
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; 16],
            flags: IFF_TUN | IFF_NO_PI,
            pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is laid out as,
        // on a descriptor open for the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(tun)
    })
}

/// A point-to-point link between two namespaces, carried by four threads; dropping it stops
/// them, which removes its devices.
struct Link {
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Link {
    /// A link between `ends` (namespace, device name, address), under `fault`.
    fn new(ends: [(&str, &'static str, [u8; 4]); 2], fault: Fault, seed: u64) -> Link {
        let tuns = ends.map(|(ns, dev, _)| {
            Arc::new(open_tun(ns, dev).unwrap_or_else(|err| panic!("TUN device in {ns}: {err}")))
        });
        for (i, (ns, dev, addr)) in ends.iter().enumerate() {
            let [a, b, c, d] = addr;
            let [pa, pb, pc, pd] = ends[1 - i].2;
            let peer = format!("{pa}.{pb}.{pc}.{pd}/32");
            let local = format!("{a}.{b}.{c}.{d}");
            ip(&["-n", ns, "addr", "add", &local, "peer", &peer, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for (from, to, seed) in [(0, 1, seed), (1, 0, !seed)] {
            let carrier = Carrier {
                fault,
                stop: stop.clone(),
                dropped: dropped.clone(),
            };
            threads.extend(carrier.start(tuns[from].clone(), tuns[to].clone(), seed));
        }
        Link {
            stop,
            dropped,
            threads,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One direction of a link.
struct Carrier {
    fault: Fault,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Carrier {
    /// Carries packets from `from` to `to`: a reader that drops or queues each packet with the
    /// time it is due, and a writer that hands it on then, in order (the delay is the same for
    /// every packet). The writer ends when the reader has.
    fn start(self, from: Arc<File>, to: Arc<File>, seed: u64) -> [JoinHandle<()>; 2] {
        let (queue, due) = mpsc::channel::<(Instant, Vec<u8>)>();
        let Carrier {
            fault,
            stop,
            dropped,
        } = self;
        let reader = std::thread::spawn(move || {
            let mut random = Xorshift(seed | 1);
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::SeqCst) {
                let mut poll = libc::pollfd {
                    fd: from.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd, of a descriptor open for the call; 20 ms at most, so
                // that the stop flag is seen.
                if unsafe { libc::poll(&mut poll, 1, 20) } <= 0 {
                    continue;
                }
                let n = match (&*from).read(&mut buf) {
                    Ok(n) => n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => panic!("reading a TUN device: {err}"),
                };
                if random.unit() < fault.loss {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if queue
                    .send((Instant::now() + fault.delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        });
        let writer = std::thread::spawn(move || {
            for (due, packet) in due {
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // A device on its way down refuses packets: they are lost, as on a real link.
                let _ = (&*to).write(&packet);
            }
        });
        [reader, writer]
    }
}

/// xorshift64: which packets are lost, the same in every run.
struct Xorshift(u64);

impl Xorshift {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A's, B's and C's namespaces, and the links A–B and B–C.
struct Net {
    // Fields drop in order: the links' devices go before their namespaces.
    links: Vec<Link>,
    namespaces: Namespaces,
}

impl Net {
    /// The network of test `test`, or `None` (after printing "skipped") if this machine
    /// cannot make one.
    fn new(test: &str, ab: Fault, bc: Fault) -> Option<Net> {
        if let Some(why) = missing() {
            skip(&why);
            return None;
        }
        // One test at a time: the first `ip netns add` on a machine sets up /run/netns, which
        // two at once can trip over.
        static ADDING: Mutex<()> = Mutex::new(());
        let _adding = ADDING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        delete_stale_namespaces();
        let pid = std::process::id();
        let mut namespaces = Namespaces(Vec::new());
        for side in ["a", "b", "c"] {
            let name = format!("{PREFIX}{pid}-{test}-{side}");
            if let Err(err) = run("ip", &["netns", "add", &name]) {
                if namespaces.0.is_empty() {
                    // Root without the right to make namespaces (a container, say).
                    skip(&err);
                    return None;
                }
                panic!("{err}");
            }
            namespaces.0.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
        }
        let [a, b, c] = [0, 1, 2].map(|i| namespaces.0[i].as_str());
        let links = vec![
            Link::new([(a, "ab", AB[0]), (b, "ba", AB[1])], ab, 0x5eed_0001),
            Link::new([(b, "bc", BC[0]), (c, "cb", BC[1])], bc, 0x5eed_0002),
        ];
        Some(Net { links, namespaces })
    }

    fn ns(&self, side: usize) -> &str {
        &self.namespaces.0[side]
    }

    /// Packets the links have lost so far.
    fn dropped(&self) -> u64 {
        self.links
            .iter()
            .map(|link| link.dropped.load(Ordering::SeqCst))
            .sum()
    }

    /// Runs `test` in A's namespace, where the client is, on a runtime of its own.
    fn client<T: Send + 'static>(&self, test: impl Future<Output = T> + Send + 'static) -> T {
        let ns = self.ns(0).to_string();
        in_namespace(&ns.clone(), move || runtime_in(&ns).block_on(test))
    }

    /// Kills, in the namespace on side `side`, the TCP connections to `dst`: their sockets
    /// there fail, their peers get a RST. Returns what `ss` listed as killed.
    fn reset(&self, side: usize, dst: SocketAddr) -> String {
        let (host, port) = (dst.ip().to_string(), format!(":{}", dst.port()));
        let args = [
            "netns",
            "exec",
            self.ns(side),
            "ss",
            "-K",
            "-t",
            "-n",
            "dst",
            &host,
            "dport",
            "=",
            &port,
        ];
        run("ip", &args).unwrap_or_else(|err| panic!("{err}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The services.

/// A service's host: a runtime on a thread of its own in a namespace, and the root context of
/// the service's requests. Dropping it ends them ("server shutting down") and stops it.
struct Host {
    root: Context,
    handle: tokio::runtime::Handle,
    stop: Option<CancelHandle>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn new(ns: &str) -> Host {
        let (root, stop) = Context::background().with_cancel();
        let (send, handle) = mpsc::channel();
        let (ns, stopped) = (ns.to_string(), root.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns).unwrap_or_else(|err| panic!("entering namespace {ns}: {err}"));
            let runtime = runtime_in(&ns);
            let _ = send.send(runtime.handle().clone());
            runtime.block_on(stopped.done());
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let handle = handle.recv().expect("the host's runtime started");
        Host {
            root,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel_with_cause(RequestEnd::ShuttingDown);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener on `addr` in namespace `ns`.
fn bind(ns: &str, addr: SocketAddr) -> std::net::TcpListener {
    let listener = in_namespace(ns, move || std::net::TcpListener::bind(addr))
        .unwrap_or_else(|err| panic!("binding {addr} in {ns}: {err}"));
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    listener
}

/// One request as it reached C, before C's `ContextLayer`: when, the time its caller gave it,
/// and when C was done with it (answered, or dropped on a hang-up).
#[derive(Clone, Debug)]
struct Arrival {
    at: Instant,
    timeout: Option<Duration>,
    ended: Option<Instant>,
}

impl Arrival {
    /// C's deadline for it: the time it arrived plus the time it was given.
    fn deadline(&self) -> Instant {
        self.at + self.timeout.expect("C's request carried no grpc-timeout")
    }
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

/// Sets the end of an arrival when C's handling of it ends, however it ends.
struct EndOf(Arrivals, usize);

impl Drop for EndOf {
    fn drop(&mut self) {
        self.0.lock().unwrap()[self.1].ended = Some(Instant::now());
    }
}

/// The three services, A in A's namespace and so on, and what the tests watch at C.
struct Chain {
    albums: Arc<App>,
    arrivals: Arrivals,
    _hosts: [Host; 3],
}

impl Chain {
    /// Starts C over SQLite, then B, then A with `budget` per request.
    fn start(net: &Net, budget: Duration, name: &str) -> Chain {
        let [a, b, c] = [0, 1, 2].map(|side| Host::new(net.ns(side)));

        // C's pool belongs to C's runtime (sqlx spawns its upkeep there).
        let albums = Arc::new(c.handle.block_on(sqlite_app(name)));
        let arrivals: Arrivals = Arc::default();
        let log = arrivals.clone();
        let routes = router(albums.clone(), c.root.clone(), None)
            .layer(ServiceSpan("C"))
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let log = log.clone();
                async move {
                    let at = Instant::now();
                    let timeout = request
                        .headers()
                        .get(GRPC_TIMEOUT)
                        .and_then(|value| parse_timeout(value.as_bytes()).ok());
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(Arrival {
                            at,
                            timeout,
                            ended: None,
                        });
                        log.len() - 1
                    };
                    let _end = EndOf(log, index);
                    next.run(request).await
                }
            }));
        let listener = bind(net.ns(2), albums_addr());
        let root = c.root.clone();
        c.handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("C's listener");
            serve_http(listener, routes, root).await;
        });

        let listener = bind(net.ns(1), catalog_addr());
        let root = b.root.clone();
        b.handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("B's listener");
            let catalog = Arc::new(Catalog::new(format!("http://{}", albums_addr())));
            serve_catalog(listener, catalog, root).await;
        });

        let listener = bind(net.ns(0), EDGE.parse().unwrap());
        let root = a.root.clone();
        a.handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("A's listener");
            let routes = edge_router(catalog_channel(catalog_addr()), root.clone(), budget)
                .layer(ServiceSpan("A"));
            serve_http(listener, routes, root).await;
        });

        Chain {
            albums,
            arrivals,
            _hosts: [a, b, c],
        }
    }

    /// What the client task needs to watch C.
    fn watch(&self) -> (Arc<App>, Arrivals) {
        (self.albums.clone(), self.arrivals.clone())
    }
}

/// C's audit trail once it holds `n` rows (they are written as C's handlers end).
async fn audit_at_c(albums: &App, n: usize) -> Vec<AuditRow> {
    let start = Instant::now();
    loop {
        let rows = albums.audit_rows(&Context::background()).await.unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(start.elapsed() < HARD_BOUND, "C's audit trail: {rows:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every request C got, once C is done with all of them and its queries have stopped.
async fn all_ended_at_c(albums: &App, arrivals: &Arrivals) -> Vec<Arrival> {
    wait_until(
        "C ends its requests and stops its queries",
        HARD_BOUND,
        || albums.nothing_running() && arrivals.lock().unwrap().iter().all(|a| a.ended.is_some()),
    )
    .await;
    arrivals.lock().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// 50 ms each way on both links, a 1.5 s budget at A: A answers by its deadline, C's request
/// has A's deadline, late by at most the two one-way delays, and its query stops by then.
#[test]
fn with_50_ms_each_way_the_deadline_set_at_a_holds_end_to_end() {
    let delay = Duration::from_millis(50);
    // Enough for the quick call's connections to be made on a loaded machine (it takes about
    // 450 ms on a quiet one: three handshakes and the call, each across the delayed links).
    let budget = Duration::from_millis(1500);
    let Some(net) = Net::new("delay", Fault::delay(delay), Fault::delay(delay)) else {
        return;
    };
    let chain = Chain::start(&net, budget, "netns-delay");
    let (albums, arrivals) = chain.watch();
    net.client(async move {
        let http = reqwest::Client::new();

        // A quick call: A → B → C and back crosses a link four times.
        let sent = Instant::now();
        let response = http.get(edge_url(0.0)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.json::<Vec<Album>>().await.unwrap(),
            ctx_examples::seed()
        );
        let took = sent.elapsed();
        eprintln!("a quick call took {took:?} across the delayed links");
        assert!(took >= 4 * delay, "{took:?}: the links do not delay");

        // A slow one: the budget runs out.
        let sent = Instant::now();
        let response = http.get(edge_url(30.0)).send().await.unwrap();
        let took = sent.elapsed();
        assert_eq!(response.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.text().await.unwrap(), "request timed out");
        eprintln!("the slow call ended after {took:?}, A's budget being {budget:?}");
        assert!(
            took >= budget,
            "answered before the budget ran out: {took:?}"
        );
        assert!(
            took <= budget + SLACK,
            "A answered {took:?} after the request, its budget being {budget:?}"
        );

        // A's deadline is no earlier than `sent + budget`: A got the request after it was
        // sent. C's is that, plus the time the request spent on the two links.
        let arrived = arrivals.lock().unwrap().clone();
        assert_eq!(arrived.len(), 2, "C's requests: {arrived:?}");
        let slow = &arrived[1];
        let given = slow.timeout.expect("C's request carried no grpc-timeout");
        let a_deadline = sent + budget;
        let c_deadline = slow.deadline();
        eprintln!(
            "C was given {given:?}; its deadline was {:?} after A's (links: {:?} one way)",
            c_deadline.saturating_duration_since(a_deadline),
            2 * delay
        );
        assert!(
            given < budget,
            "C was given {given:?}, A's budget is {budget:?}"
        );
        assert!(
            c_deadline <= a_deadline + 2 * delay + SLACK,
            "C's deadline was {:?} after A's: more than the links' {:?}",
            c_deadline.saturating_duration_since(a_deadline),
            2 * delay
        );

        // C's request ended, and its query stopped, by C's deadline.
        let ended = all_ended_at_c(&albums, &arrivals).await;
        let stopped = Instant::now();
        let end = ended[1].ended.unwrap();
        assert!(
            end <= c_deadline + SLACK,
            "C ended the request {:?} after its deadline",
            end - c_deadline
        );
        assert!(
            stopped <= c_deadline + SLACK,
            "C's query stopped {:?} after its deadline",
            stopped - c_deadline
        );
        let rows = audit_at_c(&albums, 2).await;
        assert_eq!(rows[0].outcome, "answered");
        assert_ne!(rows[1].outcome, "answered", "C answered the slow query");
    });
    drop(chain);
}

/// 20 % of the packets lost each way on both links (and 10 ms of delay): sixteen calls, four
/// at a time, of queries from 50 to 900 ms under a 1 s budget, each answers or fails by A's
/// deadline; every request C got has less than A's budget and ends by its own deadline, and no
/// query is left running.
#[test]
fn with_20_percent_loss_every_call_ends_by_its_deadline() {
    let fault = Fault {
        delay: Duration::from_millis(10),
        loss: 0.2,
    };
    let budget = Duration::from_millis(1000);
    let Some(net) = Net::new("loss", fault, fault) else {
        return;
    };
    let chain = Chain::start(&net, budget, "netns-loss");
    let (albums, arrivals) = chain.watch();
    let outcomes = net.client(async move {
        let http = reqwest::Client::new();
        let mut outcomes = std::collections::BTreeMap::<u16, usize>::new();
        for _round in 0..4 {
            // Queries of 50 to 900 ms: with the packets resent on the way, some outlast the
            // budget.
            let calls: Vec<_> = [0.05, 0.3, 0.6, 0.9]
                .into_iter()
                .map(|seconds| {
                    let http = http.clone();
                    tokio::spawn(async move {
                        let sent = Instant::now();
                        let response = http.get(edge_url(seconds)).send().await.unwrap();
                        let status = response.status();
                        let body = response.text().await.unwrap();
                        (status, body, sent.elapsed())
                    })
                })
                .collect();
            for call in calls {
                let (status, body, took) = call.await.unwrap();
                assert!(
                    took <= budget + SLACK,
                    "a call took {took:?} ({status}: {body}), A's budget being {budget:?}"
                );
                match status {
                    reqwest::StatusCode::OK => {
                        let albums: Vec<Album> = serde_json::from_str(&body).unwrap();
                        assert_eq!(albums, ctx_examples::seed());
                    }
                    // The deadline, or a connection that failed on the way.
                    reqwest::StatusCode::GATEWAY_TIMEOUT
                    | reqwest::StatusCode::SERVICE_UNAVAILABLE => {}
                    other => panic!("A answered {other}: {body}"),
                }
                *outcomes.entry(status.as_u16()).or_default() += 1;
            }
        }

        let arrived = all_ended_at_c(&albums, &arrivals).await;
        for arrival in &arrived {
            let given = arrival
                .timeout
                .expect("C's request carried no grpc-timeout");
            assert!(
                given < budget,
                "C was given {given:?}, A's budget is {budget:?}"
            );
            let deadline = arrival.deadline();
            let end = arrival.ended.unwrap();
            assert!(
                end <= deadline + SLACK,
                "C ended a request {:?} after its deadline",
                end - deadline
            );
        }
        eprintln!(
            "A answered {outcomes:?} (status: calls); C got {} requests",
            arrived.len()
        );
        outcomes
    });
    let dropped = net.dropped();
    eprintln!("the links lost {dropped} packets");
    assert!(dropped > 0, "the links lost nothing");
    assert_eq!(outcomes.values().sum::<usize>(), 16);
    drop(chain);
}

/// Starts a 30 s query through the chain, resets the connections to `dst` from namespace
/// `side` once C's query runs, and checks that C's request ends as hung up on, its query
/// stopped, and A answers with an error at once.
fn reset_mid_call(test: &str, side: usize, dst: SocketAddr) {
    let link = Fault::delay(Duration::from_millis(10));
    let Some(net) = Net::new(test, link, link) else {
        return;
    };
    let net = Arc::new(net);
    let chain = Chain::start(&net, Duration::from_secs(60), &format!("netns-{test}"));
    let (albums, _) = chain.watch();
    let killer = net.clone();
    net.client(async move {
        let call = tokio::spawn(async move {
            let response = reqwest::get(edge_url(30.0)).await.unwrap();
            let status = response.status();
            (status, response.text().await.unwrap(), Instant::now())
        });
        wait_until("C's query starts", HARD_BOUND, || {
            albums.connections_in_use() == 1
        })
        .await;

        let reset = Instant::now();
        let killed = tokio::task::spawn_blocking(move || killer.reset(side, dst))
            .await
            .unwrap();
        assert!(
            killed.contains(&dst.to_string()),
            "ss -K killed no connection to {dst}: {killed}"
        );
        let stopped = wait_until("C's query stops", HARD_BOUND, || albums.nothing_running()).await;
        eprintln!("C's query stopped {stopped:?} after the reset");
        let rows = audit_at_c(&albums, 1).await;
        assert_eq!(
            rows[0].outcome,
            RequestEnd::ClientDisconnected.to_string(),
            "C's request ended for another reason"
        );

        let (status, body, answered) = call.await.unwrap();
        eprintln!(
            "A answered {status} ({body}) {:?} after the reset",
            answered - reset
        );
        assert!(status.is_server_error(), "A answered {status}: {body}");
        assert!(answered - reset < HARD_BOUND);
    });
    drop(chain);
}

/// B's connection to C reset mid-call: C's request ends with "client disconnected", its query
/// stops, and A answers 503 at once, not after the query's 30 s or the budget's 60 s.
#[test]
fn a_reset_between_b_and_c_mid_call_stops_cs_query() {
    reset_mid_call("reset-bc", 1, albums_addr());
}

/// A's connection to B reset mid-call: B's call ends as hung up on, which B passes on to C.
#[test]
fn a_reset_between_a_and_b_mid_call_reaches_c_as_a_hang_up() {
    reset_mid_call("reset-ab", 0, catalog_addr());
}
