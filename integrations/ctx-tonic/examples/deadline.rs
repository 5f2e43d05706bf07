//! A gRPC call under a context, without a network: what the server is sent (the time left as
//! `grpc-timeout`), what the caller gets when the deadline passes first, and the `Status` a
//! `#[cancellable]` helper returns.
//!
//! Run it with `cargo run -p ctx-tonic --example deadline`.

use std::time::Duration;

use ctx_core::{Context, cancellable};
use tonic::{Request, Response, Status};

/// A helper of a handler, stopped with its context.
#[cancellable(timeout = "50ms")]
async fn lookup(id: u32) -> Result<u32, Status> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(id)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(300));

    // `send` stands for a generated client's method, such as `|req| client.get_album(req)`.
    let send = |req: Request<u32>| async move {
        println!(
            "sent: grpc-timeout {:?}",
            req.metadata().get("grpc-timeout").expect("the time left")
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Response::new(*req.get_ref()))
    };
    let status = ctx_tonic::call(&ctx, 7, send).await.unwrap_err();
    println!("the call: {:?} {:?}", status.code(), status.message());

    let status = lookup(&Context::background(), 7).await.unwrap_err();
    println!("the helper: {:?} {:?}", status.code(), status.message());
    // `ctx_tonic` is used above, so its `Status` conversion applies to `lookup`.
}
