//! A driver for instruction counts under callgrind, where the timed benchmark (`compare`) is too
//! noisy on a shared machine: sends exactly `N` requests to one implementation and exits.
//!
//! ```text
//! cargo bench -p ctx-http --features axum --bench instructions --no-run   # prints the binary
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY IMPL 10000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY IMPL 20000
//! ```
//!
//! Instructions per request = (second total − first total) / 10,000: the difference cancels the
//! start-up, the router's construction and everything else outside the loop. `IMPL` is `axum`,
//! `tower-http-timeout` or `ctx`; the request is `compare`'s `http_request_in_process` (see
//! `apps/mod.rs`).

#[path = "apps/mod.rs"]
mod apps;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (imp, n) = match args.as_slice() {
        [imp, n] => (imp.as_str(), n.parse::<u64>().expect("N is a number")),
        // `cargo bench` runs every bench target with `--bench`: nothing to time here.
        _ => {
            eprintln!("usage: instructions IMPL N (IMPL: axum, tower-http-timeout or ctx)");
            return;
        }
    };
    assert!(apps::IMPLS.contains(&imp), "unknown impl {imp:?}");
    let rt = apps::runtime();
    let mut app = apps::app(imp);
    rt.block_on(async {
        for _ in 0..n {
            apps::request(&mut app.router).await;
        }
    });
}
