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
//! | `g, ctx := errgroup.WithContext(parent)` | [`Group::new(&parent)`](Group::new) |
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
//! - The first end wins, in wall-clock order, and is fixed forever.
//! - Cancelling and dropping are iterative: chains and fan-outs of millions of contexts are fine.
//! - A context that is dropped leaves nothing behind in its parent, and so does a dropped
//!   [`Done`].
//! - Nothing here blocks on I/O, and everything but waiting works outside a tokio runtime.
//!
//! # Databases
//!
//! With the `sqlite` feature, `ctx_core::sqlite::Db::call` runs rusqlite work under a context
//! and interrupts it inside SQLite when the context ends. With the `postgres` feature,
//! `ctx_core::postgres::Client` runs tokio-postgres queries under a context and cancels them on
//! the server when it ends. Both leave the connection usable for the next query.
//!
//! Time is tokio's ([`tokio::time::Instant`]), so tests with a paused clock
//! (`#[tokio::test(start_paused = true)]`) see deadlines pass in virtual time.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `macros` | yes | [`#[cancellable]`](macro@cancellable) |
//! | `http` | no | `ctx_core::http`: a tower layer that gives every request of a hyper, axum or tonic server a context, ended with a cause that says why (client disconnected, timed out, caller's deadline exceeded, server shutting down); its deadline is the nearer of the layer's timeout and the caller's `grpc-timeout` header |
//! | `axum` | no | `http`, and `Context` as an axum extractor |
//! | `reqwest` | no | `ctx_core::reqwest`: reqwest calls that carry their context's deadline (`grpc-timeout`), and are not sent, or are aborted, when their context ends |
//! | `tonic` | no | `http`, and `ctx_core::tonic`: gRPC calls with tonic that carry their context's deadline and are reset when it ends; `Status` from a context error |
//! | `sqlite` | no | `ctx_core::sqlite`: rusqlite work under a context, off the async threads, interrupted inside SQLite when the context ends (SQLite is bundled) |
//! | `postgres` | no | `ctx_core::postgres`: tokio-postgres queries under a context, cancelled on the server when the context ends |
//!
//! Always present: [`propagate`], the `grpc-timeout` codec that carries a deadline across
//! process boundaries. With `reqwest` or `tonic` on the calling side and `http`'s layer on the
//! serving side, one deadline and one hang-up reach the bottom of a chain of services.

#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets code generated by `#[cancellable]` name `::ctx_core` inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as ctx_core;

mod after_func;
mod context;
mod done;
mod error;
mod group;
mod handle;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod lazy;
pub mod propagate;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
mod sync;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;
mod tree;
mod values;

pub use after_func::AfterFunc;
pub use context::Context;
pub use done::{Done, Run};
pub use error::{Cause, Error};
pub use group::Group;
pub use handle::CancelHandle;

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
pub use ctx_macros::cancellable;

/// Not public API: what `#[cancellable]` expands to calls these.
#[doc(hidden)]
pub mod __private {
    use std::future::IntoFuture;

    pub use crate::lazy::Lazy;
    pub use crate::{Context, Error, Run};
    pub use core::pin::pin;
    pub use tokio::time::{Duration, Instant};

    /// Races the body of a `#[cancellable]` fn against the child context derived for it (a
    /// [`Lazy`]'s).
    ///
    /// The child was derived an instant ago, so the first poll checks its state with the clock
    /// reading its timeout was computed from, without reading the clock again: it is polled once
    /// if the context was live when derived, even if a timeout of a few nanoseconds ran out in
    /// between. Nothing is registered unless the body is pending.
    #[inline]
    pub fn race<F: IntoFuture>(ctx: &Context, fut: F) -> Run<'_, F::IntoFuture> {
        crate::done::run(ctx, fut, false)
    }

    /// Races the body of a `#[cancellable]` fn without options against the caller's context
    /// itself (no child is derived).
    ///
    /// Unlike [`race`], the first poll reads the clock: the caller's context may have been
    /// derived long ago, and a deadline that has passed unobserved must keep the body from
    /// ever being polled. Same as [`Context::run`].
    #[inline]
    pub fn race_parent<F: IntoFuture>(ctx: &Context, fut: F) -> Run<'_, F::IntoFuture> {
        crate::done::run(ctx, fut, true)
    }

    /// The parent context of a `#[cancellable]` fn: its `ctx` parameter, `&Context` or
    /// `Context`.
    #[diagnostic::on_unimplemented(
        message = "the context parameter of a `#[cancellable]` fn must be `&ctx_core::Context` or `ctx_core::Context`, not `{Self}`",
        label = "expected `&ctx_core::Context` or `ctx_core::Context`",
        note = "write `ctx: &ctx_core::Context`, or rename this parameter and let `#[cancellable]` add `ctx` itself"
    )]
    pub trait Parent {
        /// The context itself.
        fn parent(&self) -> &Context;
    }

    impl Parent for Context {
        #[inline]
        fn parent(&self) -> &Context {
            self
        }
    }

    impl Parent for &Context {
        #[inline]
        fn parent(&self) -> &Context {
            self
        }
    }

    impl Parent for &mut Context {
        #[inline]
        fn parent(&self) -> &Context {
            self
        }
    }

    /// The declared return type of a `#[cancellable]` fn that returns a `Result`: says how a
    /// context error becomes that type.
    #[diagnostic::on_unimplemented(
        message = "`#[cancellable]` cannot return a context error as `{Self}`",
        label = "the error type of this `Result` needs `From<ctx_core::Error>`",
        note = "add `impl From<ctx_core::Error> for YourError`, or return a type that is not a `Result` to get `Result<T, ctx_core::Error>`"
    )]
    pub trait CancelReturn: Sized {
        /// The value returned when the context ends before the body completes.
        fn from_context_error(err: Error) -> Self;
    }

    impl<T, E: IntoError> CancelReturn for Result<T, E> {
        #[inline]
        fn from_context_error(err: Error) -> Self {
            Err(E::into_error(err))
        }
    }

    /// An error type that a context error converts into.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no `From<ctx_core::Error>`, so `#[cancellable]` cannot return a context error as it",
        label = "the error type of this `Result` needs `From<ctx_core::Error>`",
        note = "add `impl From<ctx_core::Error> for {Self}` (for example a `Cancelled(ctx_core::Error)` variant)"
    )]
    pub trait IntoError {
        /// Converts the context error.
        fn into_error(err: Error) -> Self;
    }

    #[diagnostic::do_not_recommend]
    impl<E: From<Error>> IntoError for E {
        #[inline]
        fn into_error(err: Error) -> Self {
            E::from(err)
        }
    }

    /// The value of a `#[cancellable]` fn that returns `R: CancelReturn`.
    #[inline]
    pub fn finish<R: CancelReturn>(raced: Result<R, Error>) -> R {
        match raced {
            Ok(value) => value,
            Err(err) => R::from_context_error(err),
        }
    }
}
