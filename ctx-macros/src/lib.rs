//! The `#[cancellable]` attribute of [ctx-core](https://docs.rs/ctx-core).
//!
//! Use it through ctx-core, which re-exports it as `ctx_core::cancellable` (feature `macros`, on
//! by default), so that the code it generates finds `ctx_core`. Everything about it is in the
//! documentation of [`macro@cancellable`].
//!
//! The crate is three steps: `args` reads the options, `sig` reads the fn (its signature through
//! syn, its body as the user's own tokens), `expand` writes the result. The behaviour of the
//! generated code lives in ctx-core (`ctx_core::__private_<version>`, in its `private.rs`), where
//! it is plain, tested Rust.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod args;
mod expand;
mod sig;

#[cfg(test)]
mod fuzz;

use proc_macro::TokenStream;

/// Makes an `async fn` take a context, and stop when that context ends.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error, cancellable};
///
/// #[cancellable(timeout = "5s")]
/// async fn query_album(id: u32) -> Result<String, Error> {
///     // A slow database: far more than the 5 s this call may take.
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok(format!("album {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // Callers now pass a context first.
/// let album = query_album(&Context::background(), 7).await;
/// assert_eq!(album, Err(Error::DeadlineExceeded));
/// # }
/// ```
///
/// For its callers the fn becomes
/// `async fn query_album(ctx: &Context, id: u32) -> Result<String, Error>`, and:
///
/// - The caller's context is the new first parameter `ctx: &Context` (after `self` in a method).
///   If the fn already has a parameter named `ctx` of type `&Context` or `Context`, that one is
///   the caller's context and nothing is added.
/// - Inside the body, `ctx` names a *child* of the caller's context, which also ends at the
///   fn's own deadline (the nearer of the two wins). Pass `ctx` on to the fns you call, and
///   they stop with yours.
/// - The body only starts if the child has not already ended. When the child ends, the body is
///   dropped at the `.await` where it waits, and the fn returns the context's error (see
///   [Return types](#return-types)). When the fn returns, the child is cancelled, as Go's
///   `defer cancel()` would do.
/// - The child costs what `tokio::time::timeout` costs when the body is ready at once (a clock
///   reading, no allocation): it becomes a node of the context tree, one allocation, only when
///   the body is pending, clones `ctx` or derives from it, or finds it ended. It behaves the
///   same either way.
/// - Everything else about the fn stays: visibility, attributes and doc comments, generics,
///   lifetimes, `where` clauses, `impl Trait` and pattern parameters, `self` in every form,
///   `unsafe`, and `return` and `?` in the body. The future is `Send` exactly when the body's
///   is. It works on free fns, on inherent and trait-impl methods, and on `async fn`s with a
///   body in traits.
///
/// # How it expands
///
/// This fn:
///
/// ```
/// # use ctx_core::cancellable;
/// # pub struct Db;
/// # impl Db { async fn get(&self) -> Result<Row, AppError> { Ok(Row) } }
/// # pub struct Row;
/// # pub enum AppError { Stopped }
/// # impl From<ctx_core::Error> for AppError { fn from(_: ctx_core::Error) -> Self { AppError::Stopped } }
/// #[cancellable(timeout = "5s")]
/// pub async fn load(db: &Db) -> Result<Row, AppError> {
///     let row = db.get().await?;
///     Ok(row)
/// }
/// # fn main() { let _ = load(&ctx_core::Context::background(), &Db); }
/// ```
///
/// becomes this one (the names that start with `__ctx_` are hygienic: the body cannot see them,
/// and they clash with nothing of yours):
///
/// ```
/// # pub struct Db;
/// # impl Db { async fn get(&self) -> Result<Row, AppError> { Ok(Row) } }
/// # pub struct Row;
/// # pub enum AppError { Stopped }
/// # impl From<ctx_core::Error> for AppError { fn from(_: ctx_core::Error) -> Self { AppError::Stopped } }
/// pub async fn load(ctx: &::ctx_core::Context, db: &Db) -> Result<Row, AppError> {
///     // The child context, on this fn's stack: it becomes a node of the context tree (one
///     // allocation) only if the body needs one, and it is cancelled when the fn returns.
///     let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::timeout(
///         ::ctx_core::__private_0_1_0::Parent::parent(&ctx),    // `&Context` or `Context`
///         ::ctx_core::__private_0_1_0::Duration::new(5, 0),     // "5s", parsed at compile time
///     ));
///     // From here on, `ctx` is the child.
///     let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
///     // `race`: `Ok(body's value)`, or `Err(ctx_core::Error)` if `ctx` ends first (the body
///     // never starts if it already has). `finish_with`: that error as `AppError::from(err)`,
///     // through a conversion checked at `AppError` (the error of a type without `From` is
///     // reported there).
///     ::ctx_core::__private_0_1_0::finish_with(
///         ::ctx_core::__private_0_1_0::race(ctx, async move {
///             // Tells rustc the body's type up front, so that `?` and `return` in it work as
///             // they did before.
///             #[allow(unreachable_code)]
///             if false {
///                 let __ctx_ret: Result<Row, AppError> = loop {};
///                 return __ctx_ret;
///             }
///             // The body, as written.
///             let row = db.get().await?;
///             Ok(row)
///         })
///         .await,
///         |__ctx_err| <AppError as ::ctx_core::IntoCancelError<_>>::into_cancel_error(__ctx_err),
///     )
/// }
/// # fn main() { let _ = load(&ctx_core::Context::background(), &Db); }
/// ```
///
/// Inner attributes of the body (`#![allow(…)]`) move to the top of the new body, where they
/// cover the whole fn. Errors in the body are reported at your tokens, as without the attribute;
/// errors about the attribute (a bad option, a wrong `ctx` type, an error type without
/// `From<ctx_core::Error>`) are reported at the option, the parameter's type or the return type.
///
/// # Options
///
/// Options go in any order, each at most once: `#[cancellable(timeout = "2s", ctx = parent)]`.
///
/// ## No option
///
/// No deadline of its own: the body races the caller's context as it is, and `ctx` in the body
/// is the caller's.
///
/// ```
/// use ctx_core::{Context, Error, cancellable};
///
/// #[cancellable]
/// async fn ping() -> &'static str {
///     "pong"
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(ping(&ctx).await, Ok("pong"));
/// cancel.cancel();
/// assert_eq!(ping(&ctx).await, Err(Error::Canceled));
/// # }
/// ```
///
/// expands to (body and pinning of its type left out)
///
/// ```
/// # const _: &str = stringify! {
/// async fn ping(ctx: &::ctx_core::Context) -> ::core::result::Result<&'static str, ::ctx_core::Error> {
///     let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Parent::parent(&ctx);
///     ::ctx_core::__private_0_1_0::race_parent(ctx, async move { "pong" }).await
/// }
/// # };
/// ```
///
/// ## `timeout = "5s"`
///
/// A deadline that far from the call, written as a [humantime] duration: `"250ms"`, `"5s"`,
/// `"1m 30s"`, `"2h"`, `"1.5s"`. The literal is checked when the fn compiles; a zero, an
/// overflowing or an unparsable duration is an error at the literal.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, cancellable};
/// use tokio::time::Instant;
///
/// #[cancellable(timeout = "1m 30s")]
/// async fn budget() -> Option<Instant> {
///     ctx.deadline()
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let start = Instant::now();
/// assert_eq!(budget(&Context::background()).await, Ok(Some(start + Duration::from_secs(90))));
/// # }
/// ```
///
/// expands to
///
/// ```
/// # const _: &str = stringify! {
/// let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::timeout(
///     ::ctx_core::__private_0_1_0::Parent::parent(&ctx),
///     ::ctx_core::__private_0_1_0::Duration::new(90u64, 0u32),
/// ));
/// let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
/// # };
/// ```
///
/// [humantime]: https://docs.rs/humantime/latest/humantime/fn.parse_duration.html
///
/// ## `timeout = EXPR`
///
/// Any expression of type `Duration` (std's, which tokio's is), evaluated on every call; it may
/// use the arguments and `self`.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, cancellable};
/// use tokio::time::Instant;
///
/// struct Client {
///     limit: Duration,
/// }
///
/// impl Client {
///     #[cancellable(timeout = self.limit * attempts)]
///     async fn call(&self, attempts: u32) -> Option<Instant> {
///         ctx.deadline()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let client = Client { limit: Duration::from_secs(2) };
/// let start = Instant::now();
/// let deadline = client.call(&Context::background(), 3).await;
/// assert_eq!(deadline, Ok(Some(start + Duration::from_secs(6))));
/// # }
/// ```
///
/// expands to (an expression of another type is an error at the expression)
///
/// ```
/// # const _: &str = stringify! {
/// let __ctx_timeout: ::ctx_core::__private_0_1_0::Duration = self.limit * attempts;
/// let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::timeout(
///     ::ctx_core::__private_0_1_0::Parent::parent(&ctx),
///     __ctx_timeout,
/// ));
/// let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
/// # };
/// ```
///
/// ## `deadline = EXPR`
///
/// An instant, as an expression of type `tokio::time::Instant` evaluated on every call; it may
/// use the arguments. Not together with `timeout`.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, cancellable};
/// use tokio::time::Instant;
///
/// #[cancellable(deadline = started + Duration::from_secs(30))]
/// async fn step(started: Instant) -> Option<Instant> {
///     ctx.deadline()
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let started = Instant::now();
/// let deadline = step(&Context::background(), started).await;
/// assert_eq!(deadline, Ok(Some(started + Duration::from_secs(30))));
/// # }
/// ```
///
/// expands to
///
/// ```
/// # const _: &str = stringify! {
/// let __ctx_deadline: ::ctx_core::__private_0_1_0::Instant = started + Duration::from_secs(30);
/// let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::deadline(
///     ::ctx_core::__private_0_1_0::Parent::parent(&ctx),
///     __ctx_deadline,
/// ));
/// let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
/// # };
/// ```
///
/// ## `min_remaining = "50ms"` or `min_remaining = EXPR`
///
/// The least time the body needs: it does not start unless that much is left before the
/// child's deadline (its own `timeout`/`deadline`, or the caller's). The call then returns as
/// if cancelled, with `DeadlineExceeded`, at once: work that cannot finish in time is not
/// started. A humantime literal (checked at compile time; not zero, not longer than a literal
/// `timeout`), or an expression of type `Duration` evaluated on every call, before the child is
/// derived (so a `ctx` in it is the caller's context). Without a deadline on the chain there is
/// always time left.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error, cancellable};
///
/// #[cancellable(min_remaining = "50ms")]
/// async fn expensive_query() -> Result<u32, Error> {
///     Ok(42)
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (plenty, _h) = Context::background().with_timeout(Duration::from_secs(1));
/// assert_eq!(expensive_query(&plenty).await, Ok(42));
///
/// let (almost_over, _h) = Context::background().with_timeout(Duration::from_millis(20));
/// assert_eq!(expensive_query(&almost_over).await, Err(Error::DeadlineExceeded));
/// assert_eq!(almost_over.err(), None); // the caller's context goes on
/// # }
/// ```
///
/// expands to (the race of the body as without the option, behind a check)
///
/// ```
/// # const _: &str = stringify! {
/// let __ctx_min_remaining = ::ctx_core::__private_0_1_0::Duration::new(0u64, 50000000u32);
/// let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Parent::parent(&ctx);
/// ::ctx_core::__private_0_1_0::finish_with(
///     match ::ctx_core::Context::ensure_remaining(ctx, __ctx_min_remaining) {
///         ::core::result::Result::Ok(()) => ::ctx_core::__private_0_1_0::race_parent(ctx, async move { /* … */ }).await,
///         ::core::result::Result::Err(__ctx_err) => ::core::result::Result::Err(__ctx_err),
///     },
///     |__ctx_err| <Error as ::ctx_core::IntoCancelError<_>>::into_cancel_error(__ctx_err),
/// )
/// # };
/// ```
///
/// ## `ctx = name`
///
/// The context parameter's name, instead of `ctx`: it is added under that name, or adopted if
/// the fn declares it; in the body, the name is the child.
///
/// ```
/// use ctx_core::{Context, cancellable};
///
/// #[cancellable(ctx = parent, timeout = "1s")]
/// async fn has_deadline(parent: &Context) -> bool {
///     parent.deadline().is_some()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(has_deadline(&Context::background()).await, Ok(true));
/// # }
/// ```
///
/// expands to
///
/// ```
/// # const _: &str = stringify! {
/// async fn has_deadline(parent: &Context) -> ::core::result::Result<bool, ::ctx_core::Error> {
///     let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::timeout(
///         ::ctx_core::__private_0_1_0::Parent::parent(&parent),
///         ::ctx_core::__private_0_1_0::Duration::new(1u64, 0u32),
///     ));
///     let parent: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
///     ::ctx_core::__private_0_1_0::race(parent, async move { parent.deadline().is_some() }).await
/// }
/// # };
/// ```
///
/// ## `crate = "path"`
///
/// Where ctx-core is, for crates that re-export it (or rename it): every `::ctx_core` of the
/// expansion becomes `path`.
///
/// ```
/// mod runtime {
///     pub use ctx_core as ctx;
/// }
///
/// use runtime::ctx::{Context, cancellable};
///
/// #[cancellable(crate = "runtime::ctx", timeout = "1s")]
/// async fn answer() -> u8 {
///     42
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(answer(&Context::background()).await, Ok(42));
/// # }
/// ```
///
/// expands to
///
/// ```
/// # const _: &str = stringify! {
/// async fn answer(ctx: &runtime::ctx::Context) -> ::core::result::Result<u8, runtime::ctx::Error> {
///     let __ctx_lazy = runtime::ctx::__private_0_1_0::pin!(runtime::ctx::__private_0_1_0::Lazy::timeout(
///         runtime::ctx::__private_0_1_0::Parent::parent(&ctx),
///         runtime::ctx::__private_0_1_0::Duration::new(1u64, 0u32),
///     ));
///     let ctx: &runtime::ctx::Context = runtime::ctx::__private_0_1_0::Lazy::context(__ctx_lazy);
///     runtime::ctx::__private_0_1_0::race(ctx, async move { 42 }).await
/// }
/// # };
/// ```
///
/// # Return types
///
/// A return type written as a path that ends in `Result` (`Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`, your own `Result<T>` alias) stays as it is. When the context ends, the fn
/// returns `Err(E::from(err))` with the [`ctx_core::Error`](https://docs.rs/ctx-core/latest/ctx_core/enum.Error.html),
/// so `E` needs `From<ctx_core::Error>` (`std::io::Error`, `anyhow::Error` and
/// `Box<dyn std::error::Error + Send + Sync>` have it):
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, cancellable};
///
/// #[derive(Debug, PartialEq)]
/// enum AppError {
///     NotFound,
///     Stopped(ctx_core::Error),
/// }
///
/// impl From<ctx_core::Error> for AppError {
///     fn from(err: ctx_core::Error) -> Self {
///         AppError::Stopped(err)
///     }
/// }
///
/// #[cancellable(timeout = "1s")]
/// async fn find(id: u32) -> Result<u32, AppError> {
///     tokio::time::sleep(Duration::from_millis(u64::from(id))).await;
///     if id > 10_000 { Err(AppError::NotFound) } else { Ok(id) }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = Context::background();
/// assert_eq!(find(&ctx, 7).await, Ok(7));
/// assert_eq!(find(&ctx, 5_000).await, Err(AppError::Stopped(ctx_core::Error::DeadlineExceeded)));
/// # }
/// ```
///
/// Without it, the error is at the return type:
///
/// ```compile_fail,E0277
/// use ctx_core::cancellable;
///
/// struct AppError;
///
/// #[cancellable(timeout = "1s")]
/// async fn find(id: u32) -> Result<u32, AppError> {
///     Ok(id)
/// }
/// # fn main() {}
/// ```
///
/// ```text
/// error[E0277]: `AppError` has no `From<ctx_core::Error>`, so `#[cancellable]` cannot return a context error as it
///  --> src/lib.rs:6:27
///   |
/// 6 | async fn find(id: u32) -> Result<u32, AppError> {
///   |                           ^^^^^^^^^^^^^^^^^^^^^ the error type of this `Result` needs `From<ctx_core::Error>`
///   |
///   = note: add `impl From<ctx_core::Error> for AppError` (for example a `Cancelled(ctx_core::Error)` variant)
/// ```
///
/// **Any other return type `T` becomes `Result<T, ctx_core::Error>`**, and no return type becomes
/// `Result<(), ctx_core::Error>`. This changes what callers see: they must handle (or `?`) the
/// context's error, and since `Result` is `#[must_use]`, a call whose value used to be ignored
/// now warns. Rustdoc shows the new signature, with `ctx`.
///
/// ```
/// use ctx_core::{Context, Error, cancellable};
///
/// #[cancellable]
/// async fn count(items: &[u8]) -> usize {
///     items.len()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counted: Result<usize, Error> = count(&Context::background(), b"abc").await;
/// assert_eq!(counted, Ok(3));
/// # }
/// ```
///
/// A fn that returns `!` cannot be wrapped: write `-> Result<std::convert::Infallible, ctx_core::Error>`.
///
/// # Trait methods
///
/// The attribute rewrites a fn that has a body, so in a trait it goes on the impls' methods or
/// on a default body, not on a declaration. An impl's method must keep the trait's signature,
/// so **the trait declares `ctx: &Context`** (and the `Result` return type), and the attribute
/// adopts that parameter instead of adding one:
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error, cancellable};
///
/// trait Store {
///     async fn load(&self, ctx: &Context, key: u32) -> Result<u32, Error>;
///
///     // A default body gets the usual treatment: `ctx` is added after `&self`.
///     #[cancellable(timeout = "1s")]
///     async fn load_two(&self, a: u32, b: u32) -> Result<u32, Error> {
///         Ok(self.load(ctx, a).await? + self.load(ctx, b).await?)
///     }
/// }
///
/// struct Slow;
///
/// impl Store for Slow {
///     #[cancellable(timeout = "10s")]
///     async fn load(&self, ctx: &Context, key: u32) -> Result<u32, Error> {
///         tokio::time::sleep(Duration::from_millis(600)).await;
///         Ok(key)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = Context::background();
/// assert_eq!(Slow.load(&ctx, 1).await, Ok(1));
/// // 2 × 600 ms do not fit in `load_two`'s second.
/// assert_eq!(Slow.load_two(&ctx, 1, 2).await, Err(Error::DeadlineExceeded));
/// # }
/// ```
///
/// `#[async_trait]` turns methods into non-`async` fns that return a boxed future before
/// `#[cancellable]` sees them, which it rejects (with a note saying so): use native `async fn`s
/// in traits, as above.
///
/// # With `#[tracing::instrument]`
///
/// Attributes expand from the outside in, and each passes the other through untouched:
///
/// - with `#[instrument]` **above** `#[cancellable]`, it sees the fn as written, without `ctx`;
/// - with `#[instrument]` **below**, it sees the added `ctx: &Context` and records it as a span
///   field like any argument: add `skip(ctx)` if you do not want that.
///
/// ```
/// use ctx_core::{Context, Error, cancellable};
///
/// #[tracing::instrument]
/// #[cancellable(timeout = "1s")]
/// async fn above(id: u32) -> Result<u32, Error> {
///     Ok(id)
/// }
///
/// #[cancellable(timeout = "1s")]
/// #[tracing::instrument(skip(ctx))]
/// async fn below(id: u32) -> Result<u32, Error> {
///     tracing::info!(deadline = ?ctx.deadline(), "loading");
///     Ok(id)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = Context::background();
/// assert_eq!(above(&ctx, 1).await, Ok(1));
/// assert_eq!(below(&ctx, 2).await, Ok(2));
/// # }
/// ```
///
/// # Misuse
///
/// Every misuse is a compile error at the tokens to change, saying what to write instead: a fn
/// that is not `async` (at `fn`), an item that is not a fn, a bad duration, an unknown,
/// repeated or malformed option, `timeout` with `deadline`, a `ctx` parameter of another type
/// (at its type), an error type without `From<ctx_core::Error>` (at the return type).
///
/// ```compile_fail
/// use ctx_core::cancellable;
///
/// #[cancellable(timout = "5s")]
/// fn load() {}
/// # fn main() {}
/// ```
///
/// ```text
/// error: unknown option `timout`; expected one of: `timeout`, `deadline`, `ctx`, `crate`
///  --> src/lib.rs:3:15
///   |
/// 3 | #[cancellable(timout = "5s")]
///   |               ^^^^^^
///
/// error: `#[cancellable]` requires an `async fn`: write `async fn load(..)`
///  --> src/lib.rs:4:1
///   |
/// 4 | fn load() {}
///   | ^^
/// ```
///
/// While there is an error, the fn is kept as written plus its `ctx` parameter, so that its
/// callers do not report errors of their own.
///
/// # Limitations
///
/// - **Elided lifetimes in the return type.** In a fn without `self`, the added `&Context` is
///   one more input lifetime, so `async fn first(s: &str) -> &str` no longer knows which input
///   it borrows from (error E0106, "missing lifetime specifier"). Name the lifetime:
///   `async fn first<'a>(s: &'a str) -> &'a str`. Methods with `&self` are not affected.
///
///   ```compile_fail,E0106
///   #[ctx_core::cancellable]
///   async fn first(s: &str) -> &str {
///       s
///   }
///   # fn main() {}
///   ```
/// - A `ctx` parameter is recognised by its type's last path segment, whose name ends in
///   `Context` (`Context`, `ctx_http::RequestContext`, …), behind at most one `&`/`&mut`, and
///   must be `AsRef<ctx_core::Context>`: a type alias with another name is rejected; write
///   `&Context`. In the body, `ctx` is then the `&Context` of the call, whatever the
///   parameter's type.
/// - A `ctx` bound inside a pattern parameter (`(ctx, x): (Context, u8)`) is not adopted.
#[proc_macro_attribute]
pub fn cancellable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cancellable(args.into(), item.into()).into()
}
