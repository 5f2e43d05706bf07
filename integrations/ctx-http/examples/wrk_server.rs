//! A server for `scripts/wrk_http.sh`: one of `compare`'s three routers (`benches/apps/mod.rs`:
//! `axum`, `tower-http-timeout`, `ctx`) served with `axum::serve` on a current-thread runtime,
//! on 127.0.0.1:PORT, until killed. Prints `listening` once it accepts connections.
//!
//! ```sh
//! cargo build --profile bench -p ctx-http --features axum --example wrk_server
//! target/release/examples/wrk_server ctx 8090
//! ```

// Only the routers are used here (not the in-process request).
#[allow(dead_code)]
#[path = "../benches/apps/mod.rs"]
mod apps;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [imp, port] = args.as_slice() else {
        eprintln!("usage: wrk_server IMPL PORT (IMPL: axum, tower-http-timeout or ctx)");
        std::process::exit(2);
    };
    assert!(apps::IMPLS.contains(&imp.as_str()), "unknown impl {imp:?}");
    let port: u16 = port.parse().expect("PORT is a number");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let app = apps::app(imp);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the port is free");
        println!("listening");
        axum::serve(listener, app.router).await.expect("serve");
    });
}
