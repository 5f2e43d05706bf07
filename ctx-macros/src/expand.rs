//! Emits the rewritten fn (or, on a misuse, the fn with only its new parameter plus the errors).
//! No parsing happens here beyond calling `args` and `sig`.
//!
//! Spans: glue that should blame a user token (the return type, a `timeout`/`deadline`
//! expression, an adopted `ctx` parameter) is *located* at that token but *resolves* like
//! `call_site`, so errors point at the user's code while lints still see macro output. Locals of
//! the glue are `mixed_site`, invisible to the body; the `ctx` the body sees is `call_site` (or
//! the user's own `ctx = name` token).

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Signature, Type};

use crate::args::{Given, Options, Timeout};
use crate::sig::{self, Analysis, Body, MaybeFn, Output, Parent};

/// `#[cancellable(args)] item`. Never panics: every problem becomes a `compile_error!`.
pub(crate) fn cancellable(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let options = Options::parse(args, &mut errors);

    let func = match syn::parse2::<MaybeFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => {
            let (head, looks_like_fn) = sig::item_head(&item);
            errors.push(if looks_like_fn { err } else { not_a_fn(head) });
            return with_errors(item, errors);
        }
    };
    let Some(body) = &func.body else {
        errors.push(no_body(&func));
        return with_errors(item, errors);
    };

    let names = Names::new(&options);
    let analysis = sig::analyse(&func.sig, &names.ctx, &mut errors);
    if errors.is_empty() {
        expand(&func, body, &analysis, &options, &names)
    } else {
        let fallback = fallback(&func, body, &analysis, &names);
        with_errors(fallback, errors)
    }
}

/// The name of ctx-core's module for the expansion: `__private_` and this crate's version
/// (letters and digits kept, anything else as `_`), which ctx-core of the same version defines.
/// A mismatched pair fails to compile with "could not find `__private_0_1_1` in `ctx_core`".
fn private_module() -> Ident {
    let version: String = env!("CARGO_PKG_VERSION")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Ident::new(&format!("__private_{version}"), Span::call_site())
}

/// The names the expansion writes: the context's and the crate's.
struct Names {
    /// The parameter and, in the body, the derived child: `ctx` or the `ctx = name` token.
    ctx: Ident,
    /// `::ctx_core` or the `crate = "path"` path, located at the attribute (or the literal).
    krate: TokenStream,
    /// ctx-core's module for the expansion (see [`private_module`]).
    private: Ident,
}

impl Names {
    fn new(options: &Options) -> Names {
        let ctx = match &options.ctx {
            Some(Given { value, .. }) => value.clone(),
            None => Ident::new("ctx", Span::call_site()),
        };
        let krate = match &options.krate {
            Some(Given { value, .. }) => respan(value.to_token_stream(), blame),
            None => quote!(::ctx_core),
        };
        Names {
            ctx,
            krate,
            private: private_module(),
        }
    }

    /// The crate's path, located at `span` (the user token its use should blame).
    fn krate_at(&self, span: Span) -> TokenStream {
        respan(self.krate.clone(), |_| blame(span))
    }

    /// ctx-core's module for the expansion, located at `span`.
    fn private_at(&self, span: Span) -> TokenStream {
        let krate = self.krate_at(span);
        let mut private = self.private.clone();
        private.set_span(blame(span));
        quote_spanned!(blame(span)=> #krate::#private)
    }
}

/// A span that points at the user's token `at` but resolves names like `call_site`, and that
/// lints treat as macro output.
fn blame(at: Span) -> Span {
    Span::call_site().located_at(at)
}

/// An identifier the user's code cannot see.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn respan(tokens: TokenStream, span: impl Fn(Span) -> Span + Copy) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span(group.span()));
                TokenTree::Group(new)
            }
            mut tt => {
                tt.set_span(span(tt.span()));
                tt
            }
        })
        .collect()
}

/// The full rewrite of a well-formed `async fn`.
fn expand(
    func: &MaybeFn,
    body: &Group,
    analysis: &Analysis<'_>,
    options: &Options,
    names: &Names,
) -> TokenStream {
    let Names { ctx, krate, .. } = names;
    let private = {
        let module = &names.private;
        quote!(#krate::#module)
    };
    let Body { inner_attrs, stmts } = Body::split(body);

    // The parent: blamed on the declared type of an adopted `ctx` (a `Parent` bound error).
    let parent = match &analysis.parent {
        Parent::Injected { .. } => quote!(#private::Parent::parent(&#ctx)),
        Parent::Adopted { ty } => {
            let private = names.private_at(ty.span());
            // The parameter, resolved as written but located at its type, so that the whole
            // call (the argument included) is blamed on the type.
            let mut param = ctx.clone();
            param.set_span(ty.span().resolved_at(ctx.span()));
            quote_spanned!(blame(ty.span())=> #private::Parent::parent(&#param))
        }
    };

    // The child context (kept on the stack, made a node of the tree only if the body needs
    // one), and the `race` that suits it.
    let lazy = local("__ctx_lazy");
    let derive = |call: TokenStream| {
        quote! {
            let #lazy = #private::pin!(#call);
            let #ctx: &#krate::Context = #private::Lazy::context(#lazy);
        }
    };
    // `Lazy::timeout(parent, d)` / `Lazy::deadline(parent, at)`, the call located (and
    // resolved) at the fn's name: the functions are `#[track_caller]`, so the fn is the origin
    // of the child's end (`ctx.origin()`), as `with_timeout`'s caller is for an ordinary child.
    let at_fn = func.sig.ident.span();
    let lazy_call = |name: &str, arg: &dyn ToTokens| {
        // Exactly the fn name's span, not `blame`'s: a location inside the macro's expansion
        // would be reported at the attribute instead.
        let private = respan(names.private_at(at_fn), |_| at_fn);
        let name = Ident::new(name, at_fn);
        quote_spanned!(at_fn=> #private::Lazy::#name(#parent, #arg))
    };
    let (setup, race) = match (&options.timeout, &options.deadline) {
        (Some(Given { value: timeout, .. }), _) => match timeout {
            Timeout::Literal { secs, nanos, span } => {
                let private = names.private_at(*span);
                let duration =
                    quote_spanned!(blame(*span)=> #private::Duration::new(#secs, #nanos));
                (derive(lazy_call("timeout", &duration)), quote!(race))
            }
            Timeout::Expr(expr) => {
                let var = local("__ctx_timeout");
                let private = names.private_at(expr.span());
                let eval = quote_spanned!(blame(expr.span())=>
                    let #var: #private::Duration = #expr;
                );
                let derive = derive(lazy_call("timeout", &var));
                (quote!(#eval #derive), quote!(race))
            }
        },
        (None, Some(Given { value: expr, .. })) => {
            let var = local("__ctx_deadline");
            let private = names.private_at(expr.span());
            let eval = quote_spanned!(blame(expr.span())=>
                let #var: #private::Instant = #expr;
            );
            let derive = derive(lazy_call("deadline", &var));
            (quote!(#eval #derive), quote!(race))
        }
        // No option: the body races the caller's context itself.
        (None, None) => (
            quote!(let #ctx: &#krate::Context = #parent;),
            quote!(race_parent),
        ),
    };

    // The body's value type, pinned first thing (so `?` and `return` are checked against the
    // signature), and the fn's value.
    let ret_span = blame(sig::output_span(&func.sig));
    let (body_output, tail_of) = match &analysis.output {
        Output::Result(ty) => (erase_impl_trait(ty), Some(ty)),
        Output::Wrapped(Some(ty)) => (erase_impl_trait(ty), None),
        Output::Wrapped(None) => (quote_spanned!(ret_span=> ()), None),
    };
    // Invisible to the body, but located at the return type: rustc's "return type inferred to
    // be `T` here" note points at this `return`.
    let ret_var = Ident::new("__ctx_ret", Span::mixed_site().located_at(ret_span));
    let fake_return = quote_spanned! {ret_span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #ret_var: #body_output = loop {};
            return #ret_var;
        }
    };
    let mut raced = quote! {
        #private::#race(#ctx, async move { #fake_return #stmts }).await
    };
    // `min_remaining`: the body does not start unless the child has that much time left.
    let mut setup = setup;
    if let Some(Given { value: min, .. }) = &options.min_remaining {
        let var = local("__ctx_min_remaining");
        setup = match min {
            Timeout::Literal { secs, nanos, span } => {
                let private = names.private_at(*span);
                let duration =
                    quote_spanned!(blame(*span)=> #private::Duration::new(#secs, #nanos));
                quote!(let #var = #duration; #setup)
            }
            Timeout::Expr(expr) => {
                let private = names.private_at(expr.span());
                let eval = quote_spanned!(blame(expr.span())=>
                    let #var: #private::Duration = #expr;
                );
                quote!(#eval #setup)
            }
        };
        let err = local("__ctx_err");
        raced = quote! {
            match #krate::Context::ensure_remaining(#ctx, #var) {
                ::core::result::Result::Ok(()) => #raced,
                ::core::result::Result::Err(#err) => ::core::result::Result::Err(#err),
            }
        };
    }
    let tail = match tail_of {
        // `CancelReturn` of the declared type: its bound is checked at the type, and blamed on
        // it.
        Some(ty) => match error_type(ty) {
            // `E` written out: its `IntoCancelError` is checked at the user's `E`.
            Some(error) => {
                let private = names.private_at(ty.span());
                let krate = names.krate_at(error.span());
                let err = local("__ctx_err");
                let call = quote_spanned!(blame(error.span())=>
                    <#error as #krate::IntoCancelError<_>>::into_cancel_error
                );
                let convert = quote!(|#err| #call(#err));
                quote_spanned!(ret_span=> #private::finish_with(#raced, #convert))
            }
            None => {
                let private = names.private_at(ty.span());
                let erased = erase_impl_trait(ty);
                quote_spanned!(ret_span=> <#erased as #private::CancelReturn<_>>::finish(#raced))
            }
        },
        None => raced,
    };

    let attrs = &func.attrs;
    let vis = &func.vis;
    let signature = signature(func, analysis, names, false);
    let mut out = quote!(#(#attrs)* #vis #signature);
    let mut new_body = Group::new(
        Delimiter::Brace,
        quote! {
            #(#inner_attrs)*
            #setup
            #tail
        },
    );
    new_body.set_span(body.span());
    out.extend([TokenTree::Group(new_body)]);
    out
}

/// The fn with only its new parameter, and its body untouched: what callers should see while
/// the user fixes the errors that follow it.
fn fallback(func: &MaybeFn, body: &Group, analysis: &Analysis<'_>, names: &Names) -> TokenStream {
    let attrs = &func.attrs;
    let vis = &func.vis;
    let signature = signature(func, analysis, names, true);
    quote!(#(#attrs)* #vis #signature #body)
}

/// The signature, piece by piece with the user's tokens, plus the injected parameter and the
/// new return type (`fallback`: the injected parameter only).
fn signature(
    func: &MaybeFn,
    analysis: &Analysis<'_>,
    names: &Names,
    fallback: bool,
) -> TokenStream {
    let sig: &Signature = &func.sig;
    let Names { ctx, krate, .. } = names;

    let injected = match analysis.parent {
        Parent::Injected { index } => {
            let allow = fallback.then(|| quote!(#[allow(unused_variables)]));
            Some((index, quote!(#allow #ctx: &#krate::Context)))
        }
        Parent::Adopted { .. } => None,
    };

    let mut tokens = TokenStream::new();
    sig.constness.to_tokens(&mut tokens);
    sig.asyncness.to_tokens(&mut tokens);
    sig.safety.to_tokens(&mut tokens);
    sig.abi.to_tokens(&mut tokens);
    sig.fn_token.to_tokens(&mut tokens);
    sig.ident.to_tokens(&mut tokens);
    sig.generics.to_tokens(&mut tokens);
    sig.paren_token.surround(&mut tokens, |tokens| {
        let mut pending = injected;
        for (i, pair) in sig.inputs.pairs().enumerate() {
            if let Some((_, param)) = pending.take_if(|(index, _)| *index == i) {
                tokens.extend(quote!(#param,));
            }
            pair.to_tokens(tokens);
        }
        if let Some((_, param)) = pending {
            if !sig.inputs.empty_or_trailing() {
                tokens.extend(quote!(,));
            }
            param.to_tokens(tokens);
            if sig.variadic.is_some() {
                tokens.extend(quote!(,));
            }
        }
        sig.variadic.to_tokens(tokens);
    });

    match (&analysis.output, &sig.output) {
        (Output::Wrapped(ty), output) if !fallback => {
            let (arrow, ty, span) = match (output, ty) {
                (syn::ReturnType::Type(arrow, _), Some(ty)) => {
                    (quote!(#arrow), ty.to_token_stream(), ty.span())
                }
                _ => (quote!(->), quote!(()), Span::call_site()),
            };
            let krate = names.krate_at(span);
            tokens.extend(arrow);
            tokens.extend(quote_spanned!(blame(span)=>
                ::core::result::Result<#ty, #krate::Error>
            ));
        }
        (_, output) => output.to_tokens(&mut tokens),
    }
    sig.generics.where_clause.to_tokens(&mut tokens);
    tokens
}

/// The `E` of a return type written `...Result<T, E>`, unless it holds an `impl Trait` (which
/// cannot be named in a path).
fn error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let (Some(_), Some(error), None) = (types.next(), types.next(), types.next()) else {
        return None;
    };
    (!has_impl_trait(error)).then_some(error)
}

fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

/// The type with every `impl Trait` replaced by `_`, for the places (a `let` type, a turbofish)
/// where `impl Trait` is not allowed.
fn erase_impl_trait(ty: &Type) -> TokenStream {
    struct Eraser;
    impl VisitMut for Eraser {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(impl_trait) = ty {
                let span = impl_trait.impl_token.span;
                *ty = Type::Infer(syn::TypeInfer {
                    attrs: Vec::new(),
                    underscore_token: syn::Token![_](span),
                });
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    Eraser.visit_type_mut(&mut ty);
    ty.into_token_stream()
}

fn not_a_fn(head: Option<TokenTree>) -> syn::Error {
    let span = head.as_ref().map_or_else(Span::call_site, TokenTree::span);
    let container = matches!(&head, Some(TokenTree::Ident(i)) if i == "impl" || i == "trait");
    let message = if container {
        "`#[cancellable]` applies to an `async fn`, not to a whole block: put it on each \
         `async fn` method that should take a context"
    } else {
        "`#[cancellable]` applies to an `async fn` only: put it on an `async fn name(..) { .. }`"
    };
    syn::Error::new(span, message)
}

fn no_body(func: &MaybeFn) -> syn::Error {
    let span = func.semi.map_or_else(|| func.sig.span(), |semi| semi.span);
    syn::Error::new(
        span,
        "`#[cancellable]` rewrites a body and this fn has none: in a trait, declare \
         `ctx: &Context` in the method without `#[cancellable]` and put `#[cancellable]` on the \
         method of each impl (or give this method a default body)",
    )
}

fn with_errors(mut tokens: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let combined = errors.into_iter().reduce(|mut all, err| {
        all.combine(err);
        all
    });
    if let Some(err) = combined {
        tokens.extend(err.into_compile_error());
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        cancellable(args, item).to_string()
    }

    #[test]
    fn the_expansion_has_the_documented_shape() {
        let out = expand(
            quote!(timeout = "5s"),
            quote!(
                pub async fn load(db: &Db) -> Result<Row, AppError> {
                    #![allow(unused)]
                    db.get().await?
                }
            ),
        );
        let expected = quote! {
            pub async fn load(ctx: &::ctx_core::Context, db: &Db) -> Result<Row, AppError> {
                #![allow(unused)]
                let __ctx_lazy = ::ctx_core::__private_0_1_0::pin!(::ctx_core::__private_0_1_0::Lazy::timeout(
                    ::ctx_core::__private_0_1_0::Parent::parent(&ctx),
                    ::ctx_core::__private_0_1_0::Duration::new(5u64, 0u32)
                ));
                let ctx: &::ctx_core::Context = ::ctx_core::__private_0_1_0::Lazy::context(__ctx_lazy);
                ::ctx_core::__private_0_1_0::finish_with(
                    ::ctx_core::__private_0_1_0::race(ctx, async move {
                        #[allow(
                            unknown_lints,
                            unreachable_code,
                            clippy::diverging_sub_expression,
                            clippy::empty_loop,
                            clippy::let_unit_value,
                            clippy::let_with_type_underscore,
                            clippy::needless_return,
                            clippy::unreachable
                        )]
                        if false {
                            let __ctx_ret: Result<Row, AppError> = loop {};
                            return __ctx_ret;
                        }
                        db.get().await?
                    }).await,
                    |__ctx_err| <AppError as ::ctx_core::IntoCancelError<_>>::into_cancel_error(__ctx_err)
                )
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn a_plain_return_type_is_wrapped_and_a_crate_path_replaces_ctx_core() {
        let out = expand(
            quote!(crate = "my::ctx"),
            quote!(
                async fn f(&self) -> u8 {
                    1
                }
            ),
        );
        assert!(out.starts_with(
            "async fn f (& self , ctx : & my :: ctx :: Context) -> :: core :: result :: Result < u8 , my :: ctx :: Error >"
        ), "{out}");
        assert!(
            out.contains("my :: ctx :: __private_0_1_0 :: race_parent (ctx"),
            "{out}"
        );
        assert!(!out.contains("ctx_core"), "{out}");
    }

    #[test]
    fn misuse_keeps_the_fn_with_its_new_parameter() {
        let out = expand(
            quote!(timeout = "0s"),
            quote!(
                fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(out.starts_with(
            "fn f (# [allow (unused_variables)] ctx : & :: ctx_core :: Context , x : u8) -> u8 { x }"
        ), "{out}");
        assert!(out.contains("greater than zero"), "{out}");
        assert!(out.contains("requires an `async fn`"), "{out}");
    }

    #[test]
    fn anything_else_is_returned_unchanged_with_an_error() {
        let out = expand(
            quote!(),
            quote!(
                pub struct S;
            ),
        );
        assert!(out.starts_with("pub struct S ;"), "{out}");
        assert!(out.contains("applies to an `async fn` only"), "{out}");
        for junk in [
            quote!(),
            quote!(async fn),
            quote!({}),
            quote!(#[x] pub),
            quote!(fn f() -> {}),
        ] {
            let out = expand(quote!(=, timeout ==, "x"), junk);
            assert!(out.contains("compile_error"), "{out}");
        }
    }
}
