//! Placeholder until the real `#[cancellable]` lands.
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_attribute]
pub fn cancellable(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
