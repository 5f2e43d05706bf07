//! The comparison benchmark: every case of the Go baseline (`bench/go/`, same names, same op
//! definitions) measured for ctx and,
//! where the peer has the operation, for `tokio_util::sync::CancellationToken` and for
//! hand-written tokio; plus our own cases.
//!
//! ```text
//! cargo bench -p ctx-core --bench compare                      # a table
//! cargo bench -p ctx-core --bench compare -- --go go.jsonl     # ... with ours/Go
//! cargo bench -p ctx-core --bench compare -- --json            # JSON lines
//! cargo bench -p ctx-core --bench compare -- --scaling --json  # the series of docs/scaling.svg
//! ```
//!
//! See `BENCHMARKS.md` for the results and how each case is measured.

// A crate root looks for its modules beside itself; these live in `benches/compare/`.
#[path = "compare/fan_out.rs"]
mod fan_out;
#[path = "compare/harness.rs"]
mod harness;
#[path = "compare/manual.rs"]
mod manual;
#[path = "compare/micro.rs"]
mod micro;

#[global_allocator]
static ALLOCATOR: harness::Counting = harness::Counting;

fn main() {
    let opts = harness::Options::from_args();
    let budget = opts.budget();
    let mut out = harness::Reporter::new(&opts);
    if opts.scaling {
        manual::scaling(&mut out, &budget);
    } else {
        micro::run(&mut out, &budget);
        manual::run(&mut out, &budget);
    }
    out.finish();
}
