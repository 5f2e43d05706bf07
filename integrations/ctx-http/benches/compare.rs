//! What `ContextLayer` costs a request: `http_request_in_process`, one GET through an axum
//! `Router` called as a tower `Service` in-process (no socket: the router's and the layers' own
//! work, which a socket's would hide), its body read to the end, for three servers
//! (`apps/mod.rs`):
//!
//! - `axum`: the plain router;
//! - `tower-http-timeout`: the same router in tower-http's `TimeoutLayer` (30 s);
//! - `ctx`: the router in `ContextLayer` with a 30 s timeout, the handler extracting
//!   `RequestContext`.
//!
//! ```text
//! cargo bench -p ctx-http --features axum --bench compare             # a table with ratios
//! cargo bench -p ctx-http --features axum --bench compare -- --json   # JSON lines
//! ```
//!
//! Measured as ctx-core's `compare` measures its loop cases (the same JSON line format): the
//! batch size calibrated to 20 ms, the median ns/op of 15 batches, bytes and allocations per op
//! from one more batch with a counting allocator on. The three are interleaved batch by batch
//! (a batch of axum, one of tower-http, one of ctx, and again), so that the load of a shared
//! machine falls on the three alike, in rounds (`--rounds`, 2 by default) of which each
//! reports its best.

#[path = "apps/mod.rs"]
mod apps;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Allocation counting.

/// The system allocator, plus counters updated only while [`count`] has switched them on (timed
/// batches leave them off: one relaxed load per allocation).
struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn grew(bytes: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
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
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            // Counted as one new allocation of the new size.
            grew(new_size);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with allocation counting on; returns its result, the allocations and their bytes.
fn count<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    ALLOCS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    let r = f();
    ON.store(false, Ordering::SeqCst);
    (
        r,
        ALLOCS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    )
}

// ---------------------------------------------------------------------------------------------
// The loop: calibrated batches, the median.

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// How long a case is measured.
#[derive(Clone, Copy)]
struct Budget {
    /// Target length of one timed batch.
    batch: Duration,
    /// Timed batches per round; the median of their ns/op is the round's.
    samples: usize,
    /// Interleaved rounds; each implementation reports its best.
    rounds: usize,
}

/// One implementation's round.
#[derive(Clone, Copy)]
struct Looped {
    ns_per_op: f64,
    min: f64,
    max: f64,
    bytes_per_op: f64,
    allocs_per_op: f64,
    iterations: u64,
    batch: u64,
}

/// A runner of `n` ops that returns how long they took.
type Run<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// One round over every implementation at once. Each one's batch size is calibrated first:
/// grown by tens until a batch takes a tenth of the target (this also warms up), then set to
/// the target. The timed batches are then taken in turn, one of each implementation after
/// another, so that the load of a shared machine falls on all of them alike; each reports the
/// median ns/op of its batches, and bytes and allocations per op from one more batch with the
/// counting allocator on.
fn interleaved(budget: &Budget, runs: &mut [Run<'_>]) -> Vec<Looped> {
    let batches: Vec<u64> = runs
        .iter_mut()
        .map(|run| {
            let mut n = 1u64;
            let mut took = run(n);
            while took < budget.batch / 10 && n < 1 << 40 {
                n *= 10;
                took = run(n);
            }
            let per_op = ns(took).max(1.0) / n as f64;
            ((ns(budget.batch) / per_op) as u64).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(budget.samples); runs.len()];
    for _ in 0..budget.samples {
        for (i, run) in runs.iter_mut().enumerate() {
            samples[i].push(ns(run(batches[i])) / batches[i] as f64);
        }
    }
    runs.iter_mut()
        .zip(batches)
        .zip(samples)
        .map(|((run, n), samples)| {
            let (_, allocs, bytes) = count(|| run(n));
            Looped {
                ns_per_op: median(&samples),
                min: samples.iter().copied().fold(f64::INFINITY, f64::min),
                max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                bytes_per_op: bytes as f64 / n as f64,
                allocs_per_op: allocs as f64 / n as f64,
                iterations: n * budget.samples as u64,
                batch: n,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Output: ctx-core's `compare` JSON lines, or a table.

struct Record {
    name: &'static str,
    imp: &'static str,
    best: Looped,
    /// Every round's median, in order.
    rounds: Vec<f64>,
    note: &'static str,
}

impl Record {
    fn to_json(&self) -> String {
        let mut extra = BTreeMap::new();
        extra.insert("ns_per_op_min".to_string(), self.best.min);
        extra.insert("ns_per_op_max".to_string(), self.best.max);
        extra.insert("batch".to_string(), self.best.batch as f64);
        for (i, round) in self.rounds.iter().enumerate() {
            extra.insert(format!("round_{}_ns_per_op", i + 1), *round);
        }
        let extra: serde_json::Map<String, serde_json::Value> = extra
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect();
        let num = |x: f64| serde_json::Value::from(x).to_string();
        format!(
            "{{\"name\":{},\"impl\":{},\"ns_per_op\":{},\"bytes_per_op\":{},\"allocs_per_op\":{},\"iterations\":{},\"method\":{},\"extra\":{},\"note\":{}}}",
            serde_json::Value::from(self.name),
            serde_json::Value::from(self.imp),
            num(self.best.ns_per_op),
            num(self.best.bytes_per_op),
            num(self.best.allocs_per_op),
            self.best.iterations,
            serde_json::Value::from("loop"),
            serde_json::Value::Object(extra),
            serde_json::Value::from(self.note),
        )
    }
}

const USAGE: &str = "\
usage: cargo bench -p ctx-http --features axum --bench compare -- [options]
  --json     print one JSON object per line instead of a table
  --rounds N interleaved rounds, the best of which each impl reports (default 2)
  --quick    tiny batches: checks that every impl runs, measures nothing
";

fn main() {
    let mut json = false;
    let mut quick = false;
    let mut bench = false;
    let mut rounds = 2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--rounds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => rounds = n,
                _ => {
                    eprint!("compare: --rounds needs a positive number\n{USAGE}");
                    std::process::exit(2);
                }
            },
            "--quick" => quick = true,
            "--bench" => bench = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            other => {
                eprint!("compare: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    // `cargo bench` passes `--bench`; without it we were started by `cargo test --benches`:
    // just check that every impl runs.
    let budget = if quick || !bench {
        Budget {
            batch: Duration::from_millis(1),
            samples: 3,
            rounds: 1,
        }
    } else {
        Budget {
            batch: Duration::from_millis(20),
            samples: 15,
            rounds,
        }
    };

    let name = "http_request_in_process";
    let rt = apps::runtime();
    let mut apps: Vec<apps::App> = apps::IMPLS.iter().map(|imp| apps::app(imp)).collect();
    let mut results: Vec<Vec<Looped>> = vec![Vec::new(); apps::IMPLS.len()];
    for round in 0..budget.rounds {
        eprintln!("running {name}, round {} ...", round + 1);
        let rt = &rt;
        let mut runs: Vec<Run<'_>> = apps
            .iter_mut()
            .map(|app| {
                let router = &mut app.router;
                Box::new(move |n: u64| {
                    rt.block_on(async {
                        let t0 = Instant::now();
                        for _ in 0..n {
                            apps::request(router).await;
                        }
                        t0.elapsed()
                    })
                }) as Run<'_>
            })
            .collect();
        for (i, m) in interleaved(&budget, &mut runs).into_iter().enumerate() {
            results[i].push(m);
        }
    }

    let notes = [
        "GET / through Router::new().route(\"/\", get(handler)) called in-process, body read to its end",
        "the same router .layer(tower_http::timeout::TimeoutLayer::with_status_code(504, 30s))",
        "the same router .layer(ContextLayer::new(root).timeout(30s)), root = background().with_cancel(); the handler extracts RequestContext",
    ];
    let records: Vec<Record> = apps::IMPLS
        .iter()
        .zip(results)
        .zip(notes)
        .map(|((imp, rounds), note)| {
            let best = *rounds
                .iter()
                .min_by(|a, b| a.ns_per_op.total_cmp(&b.ns_per_op))
                .expect("a round");
            Record {
                name,
                imp,
                best,
                rounds: rounds.iter().map(|r| r.ns_per_op).collect(),
                note,
            }
        })
        .collect();

    let mut out = std::io::stdout().lock();
    if json {
        for r in &records {
            let _ = writeln!(out, "{}", r.to_json());
        }
        return;
    }
    let ctx = records.iter().find(|r| r.imp == "ctx").map(|r| r.best);
    let _ = writeln!(
        out,
        "{:<26} {:<20} {:>10} {:>10} {:>10} {:>10}",
        "case", "impl", "ns/op", "B/op", "allocs/op", "ctx/this"
    );
    for r in &records {
        let ratio = match ctx {
            Some(ctx) if r.imp != "ctx" => format!("{:.3}", ctx.ns_per_op / r.best.ns_per_op),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<26} {:<20} {:>10.0} {:>10.1} {:>10.2} {:>10}",
            r.name, r.imp, r.best.ns_per_op, r.best.bytes_per_op, r.best.allocs_per_op, ratio
        );
    }
}
