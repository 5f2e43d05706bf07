use crate::error::Error;

/// An error type that a `#[cancellable]` fn returning `Result<T, Self>` can stop with: how a
/// context [`Error`] becomes `Self`.
///
/// Implemented for every type with `From<ctx_core::Error>` (marker [`FromImpl`]), which is all
/// an application's own error types need. The marker `M` exists for integration crates: Rust's
/// orphan rule keeps them from writing `impl From<ctx_core::Error> for tonic::Status` (neither
/// type is theirs), but they may implement this trait for a foreign error type with a marker
/// type of their own, as `ctx-tonic` does for `tonic::Status`. The marker is inferred: users
/// never name it.
///
/// ```
/// use ctx_core::{cancellable, Context, Error, IntoCancelError};
///
/// /// An error type from a crate that is not yours (here: one without `From<Error>`).
/// #[derive(Debug)]
/// struct ForeignStatus(&'static str);
///
/// /// The marker: a type of your crate, so the impl below is allowed.
/// enum ViaStatus {}
///
/// impl IntoCancelError<ViaStatus> for ForeignStatus {
///     fn into_cancel_error(err: Error) -> ForeignStatus {
///         ForeignStatus(if err.is_deadline_exceeded() { "deadline" } else { "canceled" })
///     }
/// }
///
/// #[cancellable]
/// async fn lookup() -> Result<u32, ForeignStatus> {
///     Ok(7)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, handle) = Context::background().with_cancel();
/// handle.cancel();
/// assert_eq!(lookup(&ctx).await.unwrap_err().0, "canceled");
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `From<ctx_core::Error>`, so `#[cancellable]` cannot return a context error as it",
    label = "the error type of this `Result` needs `From<ctx_core::Error>`",
    note = "add `impl From<ctx_core::Error> for {Self}` (for example a `Cancelled(ctx_core::Error)` variant)"
)]
pub trait IntoCancelError<M>: Sized {
    /// Converts the context error.
    fn into_cancel_error(err: Error) -> Self;
}

/// The marker of [`IntoCancelError`]'s impl for every `E: From<ctx_core::Error>`.
#[derive(Debug)]
pub enum FromImpl {}

#[diagnostic::do_not_recommend]
impl<E: From<Error>> IntoCancelError<FromImpl> for E {
    #[inline]
    fn into_cancel_error(err: Error) -> E {
        E::from(err)
    }
}
