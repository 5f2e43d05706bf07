//! What the `request ended early` event costs a layer nobody listens to: N requests through
//! `ContextLayer` to a service that answers at once, their bodies read to the end, with no
//! subscriber. Count instructions with callgrind (timings on a shared machine are noise):
//!
//! ```sh
//! cargo build --release -p ctx-http --example event_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/event_cost 10000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/event_cost 20000
//! ```
//!
//! Instructions per request = (second total − first total) / 10,000. Measured: 3,663 (3,630
//! before the event existed); 3,468 since the layer no longer parses the `grpc-timeout` name,
//! reads the clock to ask whether a new context has ended, nor makes a `Done` for a request
//! answered at once.

use std::convert::Infallible;
use std::task::Poll;

use ctx_core::Context;
use ctx_http::ContextLayer;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// Answers every request at once, with an empty body.
struct Answer;

impl Service<Request<String>> for Answer {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |arg| arg.parse().expect("N: a number of requests"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut service = ContextLayer::new(Context::background()).layer(Answer);
        let start = std::time::Instant::now();
        for _ in 0..n {
            let request = Request::get("/albums/slow?seconds=1")
                .body(String::new())
                .unwrap();
            let response = service.call(request).await.unwrap();
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        }
        println!("{n} requests, {:?} per request", start.elapsed() / n as u32);
    });
}
