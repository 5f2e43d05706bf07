//! The timing harness of the comparison benchmark: a counting allocator, a `testing.Benchmark`
//! style loop, statistics, the command line, and the output (JSON lines or a table with ratios).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Allocation counting.

/// The global allocator of the benchmark binary: the system allocator, plus counters that are
/// updated only while [`count`] (or [`Counter`]) has switched them on. Timed runs leave them off,
/// so they cost one relaxed load per allocation.
pub(crate) struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grew(bytes: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    let live = LIVE.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics
// and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            // Counted like Go's runtime counts a grow: one new allocation of the new size.
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
            grew(new_size);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What the allocator saw between [`Counter::start`] and [`Counter::stop`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counted {
    pub(crate) allocs: u64,
    pub(crate) bytes: u64,
    /// Highest net growth of live heap bytes since the start.
    pub(crate) peak_live: i64,
}

/// Switches allocation counting on until [`Counter::stop`]. One at a time.
pub(crate) struct Counter;

impl Counter {
    pub(crate) fn start() -> Counter {
        ALLOCS.store(0, Ordering::SeqCst);
        BYTES.store(0, Ordering::SeqCst);
        LIVE.store(0, Ordering::SeqCst);
        PEAK.store(0, Ordering::SeqCst);
        ON.store(true, Ordering::SeqCst);
        Counter
    }

    pub(crate) fn stop(self) -> Counted {
        ON.store(false, Ordering::SeqCst);
        counted()
    }
}

/// The counts so far (since the last [`Counter::start`]).
pub(crate) fn counted() -> Counted {
    Counted {
        allocs: ALLOCS.load(Ordering::SeqCst),
        bytes: BYTES.load(Ordering::SeqCst),
        peak_live: PEAK.load(Ordering::SeqCst),
    }
}

/// Net growth of live heap bytes since the last [`Counter::start`].
pub(crate) fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

/// Runs `f` with allocation counting on.
pub(crate) fn count<R>(f: impl FnOnce() -> R) -> (R, Counted) {
    let counter = Counter::start();
    let r = f();
    (r, counter.stop())
}

/// Bytes of heap in use as glibc's malloc accounts them (`mallinfo2`: chunks in use, their
/// headers and rounding included, plus mmapped blocks): what the process really pays, where the
/// counting allocator sees only the sizes asked for. 0 where glibc is not the allocator.
pub(crate) fn malloc_in_use() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's `struct mallinfo2` (glibc 2.33+): ten `size_t`s.
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        unsafe extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: `mallinfo2` takes nothing and returns a struct by value; it only reads the
        // allocator's statistics under its own locks.
        let info = unsafe { mallinfo2() };
        (info.uordblks + info.hblkhd) as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

pub(crate) fn median(xs: &[f64]) -> f64 {
    let s = sorted(xs);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Go's `percentile`: the element at `p * (n - 1)`, rounded down.
pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    let s = sorted(xs);
    if s.is_empty() {
        return f64::NAN;
    }
    s[(p * (s.len() - 1) as f64) as usize]
}

pub(crate) fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

pub(crate) fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

pub(crate) fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

// ---------------------------------------------------------------------------------------------
// Results.

/// One line of output: one case measured for one implementation.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) name: String,
    /// `ctx`, `tokio-util` or `tokio` (hand-written tokio).
    pub(crate) imp: &'static str,
    pub(crate) ns_per_op: f64,
    pub(crate) bytes_per_op: f64,
    pub(crate) allocs_per_op: f64,
    pub(crate) iterations: u64,
    /// `loop` (a `testing.Benchmark`-style loop, median of batches) or `manual`.
    pub(crate) method: &'static str,
    pub(crate) note: String,
    pub(crate) extra: BTreeMap<String, f64>,
}

impl Record {
    pub(crate) fn new(name: impl Into<String>, imp: &'static str, note: impl Into<String>) -> Self {
        Record {
            name: name.into(),
            imp,
            ns_per_op: f64::NAN,
            bytes_per_op: f64::NAN,
            allocs_per_op: f64::NAN,
            iterations: 0,
            method: "manual",
            note: note.into(),
            extra: BTreeMap::new(),
        }
    }

    pub(crate) fn extra(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    fn to_json(&self) -> String {
        let num = |x: f64| serde_json::Value::from(x).to_string();
        let extra: serde_json::Map<String, serde_json::Value> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
            .collect();
        format!(
            "{{\"name\":{},\"impl\":{},\"ns_per_op\":{},\"bytes_per_op\":{},\"allocs_per_op\":{},\"iterations\":{},\"method\":{},\"extra\":{},\"note\":{}}}",
            serde_json::Value::from(self.name.as_str()),
            serde_json::Value::from(self.imp),
            num(self.ns_per_op),
            num(self.bytes_per_op),
            num(self.allocs_per_op),
            self.iterations,
            serde_json::Value::from(self.method),
            serde_json::Value::Object(extra),
            serde_json::Value::from(self.note.as_str()),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The loop harness.

/// How long the loop harness measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Target length of one timed batch.
    pub(crate) batch: Duration,
    /// Timed batches per case; the median of their ns/op is reported.
    pub(crate) samples: usize,
    /// Divides the sizes of the big manual cases (1 for a real run).
    pub(crate) shrink: usize,
}

/// A case measured like Go's `testing.Benchmark`: `run(n)` performs `n` ops (its setup outside
/// the returned duration) and returns how long the ops took. The batch size is calibrated to
/// `budget.batch`; the result is the median ns/op of `budget.samples` batches, and bytes and
/// allocations per op come from one more batch with counting on.
pub(crate) fn looped(budget: &Budget, mut run: impl FnMut(u64) -> Duration) -> Looped {
    // Calibrate (this also warms up): grow n until a batch takes a tenth of the target.
    let mut n = 1u64;
    let mut took = run(n);
    while took < budget.batch / 10 && n < 1 << 40 {
        n *= 10;
        took = run(n);
    }
    let per_op = ns(took).max(1.0) / n as f64;
    let n = ((ns(budget.batch) / per_op) as u64).max(1);
    let mut samples = Vec::with_capacity(budget.samples);
    for _ in 0..budget.samples {
        samples.push(ns(run(n)) / n as f64);
    }
    let (_, counted) = count(|| run(n));
    Looped {
        ns_per_op: median(&samples),
        min: min(&samples),
        max: max(&samples),
        bytes_per_op: counted.bytes as f64 / n as f64,
        allocs_per_op: counted.allocs as f64 / n as f64,
        iterations: n * budget.samples as u64,
        batch: n,
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Looped {
    pub(crate) ns_per_op: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) bytes_per_op: f64,
    pub(crate) allocs_per_op: f64,
    pub(crate) iterations: u64,
    pub(crate) batch: u64,
}

impl Looped {
    pub(crate) fn record(
        self,
        name: impl Into<String>,
        imp: &'static str,
        note: impl Into<String>,
    ) -> Record {
        let mut r = Record::new(name, imp, note);
        r.ns_per_op = self.ns_per_op;
        r.bytes_per_op = self.bytes_per_op;
        r.allocs_per_op = self.allocs_per_op;
        r.iterations = self.iterations;
        r.method = "loop";
        r.extra("ns_per_op_min", self.min)
            .extra("ns_per_op_max", self.max)
            .extra("batch", self.batch as f64)
    }
}

/// Times `n` runs of `f` with `std::time::Instant`.
pub(crate) fn timed(n: u64, mut f: impl FnMut()) -> Duration {
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    t0.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Command line and output.

const USAGE: &str = "\
usage: cargo bench -p ctx-core --bench compare -- [options]
  --json          print one JSON object per line instead of a table
  --go FILE       a JSON-lines file from the Go baseline (run.sh): adds ours/Go to the table
  --only PATS     run only cases whose name contains one of the comma-separated PATS
  --scaling       run the scaling series (chain depth and fan-out, 10 to 1,000,000) instead
  --quick         tiny batches and sizes: checks that every case runs, measures nothing
";

#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) json: bool,
    pub(crate) go: Option<String>,
    pub(crate) only: Vec<String>,
    pub(crate) scaling: bool,
    pub(crate) quick: bool,
}

impl Options {
    pub(crate) fn from_args() -> Options {
        let mut opts = Options::default();
        let mut bench = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => opts.json = true,
                "--scaling" => opts.scaling = true,
                "--quick" => opts.quick = true,
                "--bench" => bench = true,
                "--go" => opts.go = Some(args.next().unwrap_or_else(|| usage("--go needs a file"))),
                "--only" => {
                    let pats = args
                        .next()
                        .unwrap_or_else(|| usage("--only needs patterns"));
                    opts.only = pats.split(',').map(str::to_string).collect();
                }
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => usage(&format!("unknown argument {other:?}")),
            }
        }
        // `cargo bench` passes `--bench`; without it we were started by `cargo test --benches`
        // (or by hand), where a full run would take minutes: just check every case runs.
        if !bench {
            opts.quick = true;
        }
        opts
    }

    pub(crate) fn budget(&self) -> Budget {
        if self.quick {
            Budget {
                batch: Duration::from_millis(1),
                samples: 3,
                shrink: 100,
            }
        } else {
            Budget {
                batch: Duration::from_millis(20),
                samples: 15,
                shrink: 1,
            }
        }
    }
}

fn usage(problem: &str) -> ! {
    eprint!("compare: {problem}\n{USAGE}");
    std::process::exit(2);
}

/// Prints records as they come (`--json`) or collects them for a table.
pub(crate) struct Reporter {
    json: bool,
    only: Vec<String>,
    go: BTreeMap<String, f64>,
    records: Vec<Record>,
}

impl Reporter {
    pub(crate) fn new(opts: &Options) -> Reporter {
        let go = opts.go.as_deref().map(read_go).unwrap_or_default();
        Reporter {
            json: opts.json,
            only: opts.only.clone(),
            go,
            records: Vec::new(),
        }
    }

    /// Whether the case `name` is to be run; says so on stderr if it is.
    pub(crate) fn wants(&self, name: &str) -> bool {
        let yes = self.only.is_empty() || self.only.iter().any(|p| name.contains(p.as_str()));
        if yes {
            eprintln!("running {name} ...");
        }
        yes
    }

    pub(crate) fn emit(&mut self, record: Record) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", record.to_json());
            let _ = out.flush();
        }
        self.records.push(record);
    }

    /// Prints the table (unless `--json`).
    pub(crate) fn finish(self) {
        if self.json {
            return;
        }
        println!(
            "{:<40} {:<10} {:>14} {:>12} {:>10} {:>11} {:>14} {:>9}",
            "case", "impl", "ns/op", "B/op", "allocs/op", "ctx/this", "Go ns/op", "ctx/Go"
        );
        for r in &self.records {
            let ours = self
                .records
                .iter()
                .find(|o| o.name == r.name && o.imp == "ctx")
                .map(|o| o.ns_per_op);
            let vs_peer = match ours {
                Some(ours) if r.imp != "ctx" => format!("{:.2}", ours / r.ns_per_op),
                _ => String::new(),
            };
            let (go, vs_go) = match self.go.get(&r.name) {
                Some(&go) if r.imp == "ctx" => (fmt_ns(go), format!("{:.2}", r.ns_per_op / go)),
                _ => (String::new(), String::new()),
            };
            println!(
                "{:<40} {:<10} {:>14} {:>12.1} {:>10.2} {:>11} {:>14} {:>9}",
                r.name,
                r.imp,
                fmt_ns(r.ns_per_op),
                r.bytes_per_op,
                r.allocs_per_op,
                vs_peer,
                go,
                vs_go
            );
        }
    }
}

fn fmt_ns(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `name -> ns_per_op` from the Go baseline's JSON lines.
fn read_go(path: &str) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| usage(&format!("cannot read {path}: {err}")));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            Some((v["name"].as_str()?.to_string(), v["ns_per_op"].as_f64()?))
        })
        .collect()
}
