//! Property test of the whole expansion on arbitrary input: no attribute arguments and no item,
//! however malformed, make `#[cancellable]` panic. Every bad input must become a compile error.

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use proptest::prelude::*;

/// Words the parser gives meaning to, and some it must reject.
const WORDS: &[&str] = &[
    "timeout", "deadline", "ctx", "crate", "async", "fn", "pub", "unsafe", "self", "Self", "mut",
    "impl", "where", "Result", "Context", "io", "u8", "return", "await", "dyn", "for", "loop",
    "timout", "r#async", "_", "x",
];

/// Literals, including durations humantime accepts, rejects, or overflows on.
const LITERALS: &[&str] = &[
    "\"5s\"",
    "\"0s\"",
    "\"250ms\"",
    "\"1m 30s\"",
    "\"2h\"",
    "\"\"",
    "\"5\"",
    "\"abc\"",
    "\"18446744073709551616s\"",
    "\"999999999999999999h\"",
    "\"1ns\"",
    "\"::ctx_core\"",
    "\"not a path\"",
    "5",
    "0",
    "1.5",
    "b'x'",
    "'c'",
    "\"5s\"suffix",
];

const PUNCTS: &[char] = &[
    '=', ',', ':', '&', '-', '>', '<', '#', '!', '?', ';', '.', '\'', '*',
];

fn token() -> impl Strategy<Value = TokenTree> {
    let leaf = prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(|w| {
            let ident = match w.strip_prefix("r#") {
                Some(raw) => Ident::new_raw(raw, Span::call_site()),
                None => Ident::new(w, Span::call_site()),
            };
            TokenTree::Ident(ident)
        }),
        2 => prop::sample::select(LITERALS)
            .prop_map(|l| TokenTree::Literal(l.parse::<Literal>().expect("a valid literal"))),
        3 => (prop::sample::select(PUNCTS), any::<bool>()).prop_map(|(c, joint)| {
            let spacing = if joint { Spacing::Joint } else { Spacing::Alone };
            TokenTree::Punct(Punct::new(c, spacing))
        }),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        (
            prop::sample::select(
                &[Delimiter::Parenthesis, Delimiter::Brace, Delimiter::Bracket][..],
            ),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(delimiter, tokens)| {
                TokenTree::Group(Group::new(delimiter, tokens.into_iter().collect()))
            })
    })
}

fn tokens(max: usize) -> impl Strategy<Value = TokenStream> {
    prop::collection::vec(token(), 0..max).prop_map(|t| t.into_iter().collect())
}

/// A valid item to splice random tokens into.
fn item() -> impl Strategy<Value = TokenStream> {
    const VALID: &[&str] = &[
        "async fn f(x: u8) -> u8 { x }",
        "pub async fn g(&self, ctx: &Context) -> io::Result<()> { Ok(()) }",
        "async fn h<T: Send>((a, b): (T, T)) -> Result<T, E> where T: Clone { return Ok(a); }",
        "fn not_async() {}",
        "struct NotAFn;",
    ];
    (
        prop::sample::select(VALID),
        tokens(8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(source, noise, at)| {
            let mut trees: Vec<TokenTree> =
                source.parse::<TokenStream>().unwrap().into_iter().collect();
            let at = at.index(trees.len() + 1);
            trees.splice(at..at, noise);
            trees.into_iter().collect()
        })
}

/// An option's value: mostly a single literal or word (what users write), sometimes noise.
fn value() -> impl Strategy<Value = TokenStream> {
    prop_oneof![
        3 => prop::sample::select(LITERALS)
            .prop_map(|l| l.parse::<TokenStream>().expect("a valid literal")),
        1 => prop::sample::select(WORDS).prop_map(|w| w.parse::<TokenStream>().unwrap_or_default()),
        1 => tokens(3),
    ]
}

/// Attribute arguments: random tokens, or well-formed options with random values.
fn args() -> impl Strategy<Value = TokenStream> {
    prop_oneof![
        tokens(10),
        prop::collection::vec((prop::sample::select(&WORDS[..5]), value()), 0..4).prop_map(
            |options| {
                let mut out = TokenStream::new();
                for (i, (name, value)) in options.into_iter().enumerate() {
                    if i > 0 {
                        out.extend([TokenTree::Punct(Punct::new(',', Spacing::Alone))]);
                    }
                    out.extend([
                        TokenTree::Ident(Ident::new(name, Span::call_site())),
                        TokenTree::Punct(Punct::new('=', Spacing::Alone)),
                    ]);
                    out.extend(value);
                }
                out
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_input_makes_the_macro_panic(args in args(), item in prop_oneof![item(), tokens(20)]) {
        // Any panic fails the property; the output is always a token stream (the item and/or a
        // compile error).
        let out = crate::expand::cancellable(args, item);
        prop_assert!(!out.is_empty());
    }
}
