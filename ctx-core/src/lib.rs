//! Go's `context` for async Rust on tokio: cancellation, deadlines and request-scoped values
//! that flow from a caller to everything it starts.
//!
//! A [`Context`] is passed down a call tree. Whoever holds its [`CancelHandle`] can end it, its
//! deadline can pass, and either way every context derived from it ends too, so that all the
//! work below a request stops when the request does. With the default `macros` feature,
//! [`#[cancellable]`](macro@cancellable) makes any `async fn` take a context and stop when it
//! ends.
//!
//! # From Go
//!
//! | Go | ctx |
//! | --- | --- |
//! | `context.Background()`, `context.TODO()` | [`Context::background()`], [`Context::todo()`] |
//! | `ctx, cancel := context.WithCancel(parent)` | `let (ctx, cancel) = parent.with_cancel();` |
//! | `context.WithTimeout(parent, d)` | [`parent.with_timeout(d)`](Context::with_timeout) |
//! | `context.WithDeadline(parent, t)` | [`parent.with_deadline(t)`](Context::with_deadline) |
//! | `context.WithCancelCause`, `cancel(cause)` | [`cancel.cancel_with_cause(cause)`](CancelHandle::cancel_with_cause) |
//! | `context.WithTimeoutCause`, `WithDeadlineCause` | [`with_timeout_cause`](Context::with_timeout_cause), [`with_deadline_cause`](Context::with_deadline_cause) |
//! | `defer cancel()` | nothing: dropping the [`CancelHandle`] cancels |
//! | `context.WithValue(ctx, key, v)`, `ctx.Value(key)` | [`ctx.with_value(v)`](Context::with_value), [`ctx.value::<T>()`](Context::value) (the type is the key) |
//! | `context.WithoutCancel(ctx)` | [`ctx.without_cancel()`](Context::without_cancel) |
//! | `ctx.Err()`, `context.Cause(ctx)` | [`ctx.err()`](Context::err), [`ctx.cause()`](Context::cause) |
//! | `<-ctx.Done()` | [`ctx.done().await`](Context::done) |
//! | `select { case <-ctx.Done(): default: }` | [`ctx.is_done()`](Context::is_done) |
//! | `select { case <-ctx.Done(): case v := <-work: }` | [`ctx.run(work).await`](Context::run) |
//! | `go f(ctx)` | [`ctx.spawn(f)`](Context::spawn) |
//! | `stop := context.AfterFunc(ctx, f)` | [`let stop = ctx.after_func(f);`](Context::after_func) |
//! | `g, ctx := errgroup.WithContext(parent)` | [`Group::new(&parent)`](Group::new), or [`Group::with_cause`] for the first error as the context's cause |
//! | `g.SetLimit(n)`, `g.Go(f)`, `g.TryGo(f)`, `g.Wait()` | [`set_limit`](Group::set_limit), [`spawn`](Group::spawn), [`try_spawn`](Group::try_spawn), [`wait`](Group::wait) |
//! | `dl, ok := ctx.Deadline(); time.Until(dl)` | [`ctx.remaining()`](Context::remaining); [`ctx.ensure_remaining(min)`](Context::ensure_remaining) refuses work that cannot finish in time |
//! | `context.WithTimeout(context.WithoutCancel(ctx), d)` | [`ctx.shield(d)`](Context::shield): clean-up after an end |
//! | `context.Canceled`, `context.DeadlineExceeded` | [`Error::Canceled`], [`Error::DeadlineExceeded`] |
//!
//! # An operation bounded by a timeout
//!
//! Go: `ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond); defer cancel()`, then a
//! call that gives up when `ctx.Done()` closes.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::{Context, Error};
//!
//! async fn lookup(ctx: &Context, key: &str) -> Result<String, Error> {
//!     let (ctx, _cancel) = ctx.with_timeout(Duration::from_millis(50));
//!     // A lookup that takes 10 s: far too long.
//!     ctx.run(async {
//!         tokio::time::sleep(Duration::from_secs(10)).await;
//!         format!("value of {key}")
//!     })
//!     .await
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let err = lookup(&Context::background(), "album:7").await.unwrap_err();
//! assert_eq!(err, Error::DeadlineExceeded);
//! assert_eq!(err.to_string(), "context deadline exceeded");
//! # }
//! ```
//!
//! # Two dependent operations: the failure of one stops the other
//!
//! Go: `g, ctx := errgroup.WithContext(ctx)`, two `g.Go(...)`, then `g.Wait()`.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::{Context, Group};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut group = Group::<String>::new(&Context::background());
//!
//! let ctx = group.context().clone();
//! group.spawn(async move {
//!     // The slow half: stops as soon as its sibling fails.
//!     match ctx.run(tokio::time::sleep(Duration::from_secs(60))).await {
//!         Ok(()) => Ok(()),
//!         Err(stopped) => Err(format!("albums: {stopped}")),
//!     }
//! });
//! group.spawn(async {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     Err("artists: connection refused".to_string())
//! });
//!
//! // The first error wins; the sleeper was stopped after 10 ms, not 60 s.
//! assert_eq!(group.wait().await, Err("artists: connection refused".to_string()));
//! # }
//! ```
//!
//! # Guarantees
//!
//! - `err()` and `is_done()` are one atomic load (plus a clock reading on a chain with a
//!   deadline); deriving a child is one allocation; a deadline starts no timer until somebody
//!   waits for it. The child of a `#[cancellable]` call is allocated only if its body needs it
//!   (is pending, clones or derives from it): a call that completes at once allocates nothing.
//!
//! Every path keeps these six rules (the tests name them by number):
//!
//! 1. **The first end wins.** Whichever comes first of the handle's cancel, the deadline
//!    instant or the parent's end fixes `err()` and `cause()` forever. A context whose deadline
//!    has passed reports `DeadlineExceeded` even if nothing was awaiting it and even if
//!    `cancel()` is called afterwards. A deadline is reached once `Instant::now() >= deadline`,
//!    as in Go: `with_timeout(Duration::ZERO)` returns a context that has already ended.
//! 2. **A child of an ended context ends at once**, with the parent's `err()` and `cause()`.
//! 3. **Ending a context ends its whole subtree**, however deep or wide: cancelling and
//!    dropping are iterative, so chains and fan-outs of millions of contexts are fine.
//! 4. **A dropped child leaves nothing behind in its parent** (nor does a dropped [`Done`],
//!    polled or not): a long-lived parent that sees ten million short-lived children holds
//!    constant memory. A live child costs at most 256 bytes, its entry in the parent included.
//! 5. **Nothing blocks on I/O**, and everything but waiting (`done()`, `run`, after-funcs
//!    fired by a deadline) works outside a tokio runtime.
//! 6. **Nothing panics on any input**: a deadline in the past, `Duration::MAX`, `Instant`
//!    overflow, cancels from many threads at once, a cancel from inside an after-func or a
//!    `Drop`.
//!
//! Time is tokio's ([`tokio::time::Instant`]), so tests with a paused clock
//! (`#[tokio::test(start_paused = true)]`) see deadlines pass in virtual time.
//!
//! # Integrations
//!
//! This crate is the runtime only: its dependencies are tokio and three small crates, whatever
//! you integrate with. Each integration is a crate of its own, built on it; when a context
//! stops their work, their errors wrap one [`ContextError`] (the context's error and cause).
//!
//! | crate | what it stops |
//! | --- | --- |
//! | `ctx-http` | a tower layer giving every request of a hyper, axum or tonic server a context, ended with a cause that says why (client disconnected, timed out, caller's deadline exceeded, server shutting down); the axum extractor (`axum` feature); graceful shutdown on SIGINT/SIGTERM (`signal` feature); the `grpc-timeout` codec that carries a deadline across processes |
//! | `ctx-reqwest` | reqwest calls that carry their context's deadline, not sent or aborted when it ends |
//! | `ctx-tonic` | tonic gRPC calls that carry their context's deadline and are reset when it ends |
//! | `ctx-rusqlite` | rusqlite work, interrupted inside SQLite when its context ends |
//! | `ctx-postgres` | tokio-postgres queries, cancelled in the server when their context ends |
//! | `ctx-retry` | retries and hedged attempts: none starts, and no backoff sleep either, that cannot finish before the deadline |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `macros` | yes | [`#[cancellable]`](macro@cancellable) |

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets code generated by `#[cancellable]` name `::ctx_core` inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as ctx_core;

mod after_func;
mod context;
mod context_error;
mod done;
mod error;
mod group;
mod handle;
mod into_error;
mod lazy;
mod link;
mod origin;
mod sync;
mod tree;
mod values;

pub use after_func::AfterFunc;
pub use context::Context;
pub use context_error::ContextError;
pub use done::{Done, Run};
pub use error::{Cause, Error};
pub use group::{Group, Shutdown};
pub use handle::CancelHandle;
pub use into_error::{FromImpl, IntoCancelError};
pub use origin::{Origin, OriginKind};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
pub use ctx_macros::cancellable;

/// Not public API: what `#[cancellable]` expands to calls these. Named with this crate's
/// version (`.` as `_`), which `ctx-macros` of the same version writes in every expansion: a
/// `ctx-macros` that does not match this `ctx-core` fails to compile with "could not find
/// `__private_<its version>` in `ctx_core`".
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private_0_1_0;
