//! `#[cancellable]`: see the attribute's documentation.

#![deny(missing_docs)]

mod args;
mod expand;
mod sig;

use proc_macro::TokenStream;

/// Makes an `async fn` take a context and stop when it ends.
#[proc_macro_attribute]
pub fn cancellable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cancellable(args.into(), item.into()).into()
}
