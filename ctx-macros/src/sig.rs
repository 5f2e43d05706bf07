//! Reads the annotated item: the fn's signature goes through syn, its body stays tokens; then
//! finds the parent context parameter and classifies the return type. Nothing here emits code.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Pat, ReturnType, Signature, Token, Type, Visibility};

/// A fn as `#[cancellable]` sees it: attributes, visibility and signature parsed, the body
/// kept as the user's tokens (so a syntax error in it is rustc's to report, at its token).
pub(crate) struct MaybeFn {
    /// Outer attributes, in their order (doc comments included).
    pub(crate) attrs: Vec<Attribute>,
    /// `pub`, `pub(crate)`, or nothing.
    pub(crate) vis: Visibility,
    /// Everything from `const`/`async`/`unsafe` to the `where` clause.
    pub(crate) sig: Signature,
    /// The `{ … }` body; `None` for a declaration ending in `;` (a trait method without body).
    pub(crate) body: Option<Group>,
    /// The `;` of a declaration.
    pub(crate) semi: Option<Token![;]>,
}

impl Parse for MaybeFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let (body, semi) = if input.peek(Token![;]) {
            (None, Some(input.parse()?))
        } else {
            let group: Group = input.parse()?;
            if group.delimiter() != Delimiter::Brace {
                return Err(syn::Error::new(
                    group.span(),
                    "expected the fn body `{ … }`",
                ));
            }
            (Some(group), None)
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the fn"));
        }
        Ok(MaybeFn {
            attrs,
            vis,
            sig,
            body,
            semi,
        })
    }
}

/// The body split into its inner attributes (`#![…]`, re-emitted at the top of the new body)
/// and the rest, which becomes the raced `async` block.
pub(crate) struct Body {
    /// `#![…]` at the top of the body, in order.
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The statements, as written.
    pub(crate) stmts: TokenStream,
}

impl Body {
    pub(crate) fn split(group: &Group) -> Body {
        let parser = |input: ParseStream<'_>| {
            let inner_attrs = input.call(Attribute::parse_inner)?;
            let stmts: TokenStream = input.parse()?;
            Ok(Body { inner_attrs, stmts })
        };
        // Parsing attributes and then any tokens fails only on a malformed `#![`; the whole
        // body then goes into the `async` block and rustc reports the problem there.
        parser.parse2(group.stream()).unwrap_or_else(|_| Body {
            inner_attrs: Vec::new(),
            stmts: group.stream(),
        })
    }
}

/// Where the parent context comes from.
pub(crate) enum Parent<'a> {
    /// No parameter has the context's name: `ctx: &Context` is added, at this index of the
    /// inputs (after a `self` receiver).
    Injected { index: usize },
    /// The fn declares it; its type, to blame for a type that is not a context.
    Adopted { ty: &'a Type },
}

/// What the fn returns.
pub(crate) enum Output<'a> {
    /// A type whose path ends in `Result`: kept, and a context error becomes its `Err`.
    Result(&'a Type),
    /// Any other type (`None`: no return type, `()`): becomes `Result<T, ctx_core::Error>`.
    Wrapped(Option<&'a Type>),
}

/// What the signature says about the parent context and the return type.
pub(crate) struct Analysis<'a> {
    pub(crate) parent: Parent<'a>,
    pub(crate) output: Output<'a>,
}

/// Analyses the signature, pushing every misuse onto `errors`.
pub(crate) fn analyse<'a>(
    sig: &'a Signature,
    ctx: &syn::Ident,
    errors: &mut Vec<syn::Error>,
) -> Analysis<'a> {
    if sig.asyncness.is_none() {
        let name = &sig.ident;
        let mut message =
            format!("`#[cancellable]` requires an `async fn`: write `async fn {name}(..)`");
        if returns_pinned_box(&sig.output) {
            message.push_str(
                "; if `#[async_trait]` rewrote this method, use a native `async fn` in the \
                 trait instead",
            );
        }
        errors.push(syn::Error::new(sig.fn_token.span, message));
    }

    let parent = match find_param(sig, ctx) {
        Some(ty) => {
            if !is_context(ty) {
                errors.push(syn::Error::new_spanned(
                    ty,
                    format_args!(
                        "the `{ctx}` parameter of a `#[cancellable]` fn is its parent context and \
                         must be `&Context`, `Context` or an extractor that holds one (such as `RequestContext`); write `{ctx}: &ctx_core::Context`, or \
                         rename this parameter and let `#[cancellable]` add `{ctx}: &Context`"
                    ),
                ));
            }
            Parent::Adopted { ty }
        }
        None => Parent::Injected {
            index: usize::from(sig.receiver().is_some()),
        },
    };

    let output = match &sig.output {
        ReturnType::Default => Output::Wrapped(None),
        ReturnType::Type(_, ty) => match strip(ty) {
            Type::Never(never) => {
                errors.push(syn::Error::new_spanned(
                    never,
                    "a `#[cancellable]` fn returns early when its context ends, so it cannot \
                     return `!`; write `-> Result<std::convert::Infallible, ctx_core::Error>`",
                ));
                Output::Wrapped(Some(ty))
            }
            inner if is_result(inner) => Output::Result(ty),
            _ => Output::Wrapped(Some(ty)),
        },
    };

    Analysis { parent, output }
}

/// The type of the parameter bound to the name `ctx` (`ctx`, `mut ctx`, `ref ctx`), if any.
fn find_param<'a>(sig: &'a Signature, ctx: &syn::Ident) -> Option<&'a Type> {
    sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(pat) if pat.ident == *ctx && pat.subpat.is_none() => Some(&*typed.ty),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    })
}

/// A type without the invisible groups and parentheses around it.
fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip(&group.elem),
        Type::Paren(paren) => strip(&paren.elem),
        _ => ty,
    }
}

/// The last segment of a type path.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match strip(ty) {
        Type::Path(path) => path.path.segments.last(),
        _ => None,
    }
}

/// `Context`, `&Context`, `&'a mut ctx_core::Context`, `RequestContext`, …: a path whose last
/// segment's name ends in `Context`, at most behind one reference. (An alias of another name is
/// rejected; a type so named that does not hold a ctx-core `Context` is caught by the `Parent`
/// trait bound in the expansion, which asks for `AsRef<Context>`.)
fn is_context(ty: &Type) -> bool {
    let ty = match strip(ty) {
        Type::Reference(reference) => &*reference.elem,
        ty => ty,
    };
    last_segment(ty).is_some_and(|segment| segment.ident.to_string().ends_with("Context"))
}

/// `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`, a local alias named `Result`.
fn is_result(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|segment| segment.ident == "Result")
}

/// `Pin<Box<…>>`: the shape `#[async_trait]` gives a method before `#[cancellable]` sees it.
fn returns_pinned_box(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Some(pin) = last_segment(ty) else {
        return false;
    };
    pin.ident == "Pin"
        && matches!(&pin.arguments, syn::PathArguments::AngleBracketed(args)
            if args.args.iter().any(|arg| matches!(arg, syn::GenericArgument::Type(inner)
                if last_segment(inner).is_some_and(|s| s.ident == "Box"))))
}

/// The span to blame for the return type: the type, or the fn's name when there is none.
pub(crate) fn output_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    }
}

/// The first token after the outer attributes and the visibility: what to blame when the item
/// is not a fn. Also says whether an `fn` keyword appears at the top level, i.e. whether the
/// item is a fn that syn could not parse.
pub(crate) fn item_head(item: &TokenStream) -> (Option<TokenTree>, bool) {
    let parser = |input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let rest: TokenStream = input.parse()?;
        Ok(rest)
    };
    let rest = parser.parse2(item.clone()).unwrap_or_else(|_| item.clone());
    let looks_like_fn = rest
        .clone()
        .into_iter()
        .take_while(|tt| !matches!(tt, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        .any(|tt| matches!(&tt, TokenTree::Ident(ident) if ident == "fn"));
    (rest.into_iter().next(), looks_like_fn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn run(sig: Signature) -> (Analysis<'static>, Vec<String>) {
        let sig = Box::leak(Box::new(sig));
        let mut errors = Vec::new();
        let ctx = syn::Ident::new("ctx", Span::call_site());
        let analysis = analyse(sig, &ctx, &mut errors);
        (analysis, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn injection_goes_after_self() {
        let (a, _) = run(parse_quote!(async fn f(x: u8)));
        assert!(matches!(a.parent, Parent::Injected { index: 0 }));
        let (a, _) = run(parse_quote!(async fn f(self: Arc<Self>, x: u8)));
        assert!(matches!(a.parent, Parent::Injected { index: 1 }));
        let (a, _) = run(parse_quote!(async fn f(&mut self)));
        assert!(matches!(a.parent, Parent::Injected { index: 1 }));
    }

    #[test]
    fn adoption() {
        for sig in [
            parse_quote!(async fn f(ctx: &Context)),
            parse_quote!(async fn f(x: u8, mut ctx: ctx_core::Context)),
            parse_quote!(async fn f(&self, ctx: &'a mut ::ctx_core::Context)),
        ] {
            let (a, errors) = run(sig);
            assert!(matches!(a.parent, Parent::Adopted { .. }));
            assert!(errors.is_empty());
        }
        let (_, errors) = run(parse_quote!(async fn f(ctx: Option<&Context>)));
        assert!(errors[0].starts_with("the `ctx` parameter of a `#[cancellable]` fn"));
        let (_, errors) = run(parse_quote!(async fn f(ctx: &&Context)));
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn outputs() {
        for sig in [
            parse_quote!(async fn f() -> Result<u8, E>),
            parse_quote!(async fn f() -> io::Result<u8>),
            parse_quote!(async fn f() -> (::anyhow::Result<()>)),
        ] {
            assert!(matches!(run(sig).0.output, Output::Result(_)));
        }
        assert!(matches!(
            run(parse_quote!(async fn f())).0.output,
            Output::Wrapped(None)
        ));
        let wrapped = run(parse_quote!(async fn f() -> Option<Result<u8, E>>))
            .0
            .output;
        assert!(matches!(wrapped, Output::Wrapped(Some(_))));
        let (_, errors) = run(parse_quote!(async fn f() -> !));
        assert!(errors[0].contains("cannot return `!`"));
    }

    #[test]
    fn not_async() {
        let (_, errors) = run(parse_quote!(fn load(x: u8)));
        assert_eq!(
            errors[0],
            "`#[cancellable]` requires an `async fn`: write `async fn load(..)`"
        );
        let (_, errors) = run(parse_quote!(fn load() -> Pin<Box<dyn Future<Output = ()> + Send>>));
        assert!(errors[0].contains("#[async_trait]"));
    }

    #[test]
    fn heads() {
        let (head, is_fn) = item_head(&quote::quote!(
            #[doc = "x"]
            pub(crate) struct S;
        ));
        assert_eq!(head.unwrap().to_string(), "struct");
        assert!(!is_fn);
        let (_, is_fn) = item_head(&quote::quote!(pub async fn f(x: ) {}));
        assert!(is_fn);
    }
}
