//! What `#[cancellable]` expands to, and nothing else: each item here is named by the
//! expansion (in `ctx-macros/src/expand.rs`), and each type the expansion names has one path.
//! Public types it writes (`Context`, `Error`) are named at the crate's root instead.

use std::future::IntoFuture;

use crate::{Context, Error, Run};

pub use crate::lazy::Lazy;
pub use core::pin::pin;
pub use tokio::time::{Duration, Instant};

/// This module's name says the crate's version; a version bump must rename it (and the
/// `#[path]` module in `lib.rs`), so that the macro of the same version finds it.
const _: () = assert!(
    names_version("0_1_0", env!("CARGO_PKG_VERSION")),
    "rename `__private_0_1_0` after the crate's version"
);

/// Whether `name` is `version` with every character but letters and digits (`.`, `-`, `+`)
/// written as `_`, as `ctx-macros` writes it.
const fn names_version(name: &str, version: &str) -> bool {
    let (name, version) = (name.as_bytes(), version.as_bytes());
    if name.len() != version.len() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        let expected = if version[i].is_ascii_alphanumeric() {
            version[i]
        } else {
            b'_'
        };
        if name[i] != expected {
            return false;
        }
        i += 1;
    }
    true
}

/// Races the body of a `#[cancellable]` fn against the child context derived for it (a
/// [`Lazy`]'s).
///
/// The child was derived an instant ago, so the first poll checks its state with the clock
/// reading its timeout was computed from, without reading the clock again: it is polled once
/// if the context was live when derived, even if a timeout of a few nanoseconds ran out in
/// between. Nothing is registered unless the body is pending.
#[inline]
pub fn race<F: IntoFuture>(ctx: &Context, fut: F) -> Run<'_, F::IntoFuture> {
    crate::done::run(ctx, fut, crate::tree::Clock::Skip)
}

/// Races the body of a `#[cancellable]` fn without options against the caller's context
/// itself (no child is derived).
///
/// Unlike [`race`], the first poll reads the clock: the caller's context may have been
/// derived long ago, and a deadline that has passed unobserved must keep the body from
/// ever being polled. Same as [`Context::run`].
#[inline]
pub fn race_parent<F: IntoFuture>(ctx: &Context, fut: F) -> Run<'_, F::IntoFuture> {
    crate::done::run(ctx, fut, crate::tree::Clock::Read)
}

/// The parent context of a `#[cancellable]` fn: its `ctx` parameter, `&Context`,
/// `Context`, or an extractor that holds one (anything `AsRef<Context>`, such as
/// `ctx_http::RequestContext`).
#[diagnostic::on_unimplemented(
    message = "the context parameter of a `#[cancellable]` fn must be `&ctx_core::Context` or `ctx_core::Context`, not `{Self}`",
    label = "expected `&ctx_core::Context` or `ctx_core::Context`",
    note = "write `ctx: &ctx_core::Context`, or rename this parameter and let `#[cancellable]` add `ctx` itself"
)]
pub trait Parent {
    /// The context itself.
    fn parent(&self) -> &Context;
}

impl<T: AsRef<Context> + ?Sized> Parent for T {
    #[inline]
    fn parent(&self) -> &Context {
        self.as_ref()
    }
}

/// The value of a `#[cancellable]` fn that returns `Result<T, E>` with `E` written out: the
/// body's, or the context error as `E` (`convert` is `<E as IntoCancelError<_>>::into_cancel_error`,
/// written by the expansion at the user's `E`, so that an `E` without `From<ctx_core::Error>`
/// is reported there, in the user's code).
#[inline]
pub fn finish_with<T, E>(
    raced: Result<Result<T, E>, Error>,
    convert: impl FnOnce(Error) -> E,
) -> Result<T, E> {
    match raced {
        Ok(value) => value,
        Err(err) => Err(convert(err)),
    }
}

/// The declared return type of a `#[cancellable]` fn that returns a `Result` whose error type
/// is not written out (`io::Result<T>`, an alias): says how a context error becomes that type. `M` is the marker of the
/// [`IntoCancelError`](crate::IntoCancelError) impl, inferred.
#[diagnostic::on_unimplemented(
    message = "`#[cancellable]` cannot return a context error as `{Self}`",
    label = "the error type of this `Result` needs `From<ctx_core::Error>`",
    note = "add `impl From<ctx_core::Error> for YourError`, or return a type that is not a `Result` to get `Result<T, ctx_core::Error>`"
)]
pub trait CancelReturn<M>: Sized {
    /// The value of the fn: the body's, or the context error as `Self`.
    fn finish(raced: Result<Self, Error>) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T, E: crate::IntoCancelError<M>, M> CancelReturn<M> for Result<T, E> {
    #[inline]
    fn finish(raced: Result<Self, Error>) -> Self {
        match raced {
            Ok(value) => value,
            Err(err) => Err(E::into_cancel_error(err)),
        }
    }
}
