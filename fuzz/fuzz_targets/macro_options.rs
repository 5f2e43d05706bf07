//! `#[cancellable]`'s option parser and expansion on arbitrary text. The first line of the
//! input is the attribute's arguments, the rest the item (a plain `async fn` if there is no
//! second line); text that does not lex as Rust tokens is skipped, as rustc would reject it
//! before any macro runs. Checks: nothing panics; a literal `timeout`/`min_remaining` the parser
//! keeps is a valid, non-zero duration, and a `min_remaining` never longer than a `timeout` it
//! accepts; `timeout` with `deadline` is always an error; every problem the option parser
//! reports reaches the output as a `compile_error!`; and the output lexes again.
//!
//! A proc-macro crate exports only its macros, so this target compiles ctx-macros' own source
//! files by path: the same code the macro runs, with nothing added to it.

#![no_main]

#[allow(dead_code)]
#[path = "../../ctx-macros/src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../ctx-macros/src/expand.rs"]
mod expand;
#[allow(dead_code)]
#[path = "../../ctx-macros/src/sig.rs"]
mod sig;

use libfuzzer_sys::fuzz_target;
use proc_macro2::TokenStream;

use args::{Given, Options, Timeout};

const DEFAULT_ITEM: &str = "async fn f(x: u8) -> u8 { x }";

/// A literal duration as `(secs, nanos)`, checked to be one.
fn literal(option: &Option<Given<Timeout>>) -> Option<(u64, u32)> {
    match option {
        Some(Given {
            value: Timeout::Literal { secs, nanos, .. },
            ..
        }) => {
            assert!(*nanos < 1_000_000_000, "nanos out of range: {nanos}");
            assert!((*secs, *nanos) != (0, 0), "a zero duration was accepted");
            Some((*secs, *nanos))
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (args, item) = text.split_once('\n').unwrap_or((text, DEFAULT_ITEM));
    let (Ok(args), Ok(item)) = (args.parse::<TokenStream>(), item.parse::<TokenStream>()) else {
        return;
    };

    let mut errors = Vec::new();
    let options = Options::parse(args.clone(), &mut errors);
    let timeout = literal(&options.timeout);
    let min_remaining = literal(&options.min_remaining);
    if errors.is_empty() {
        assert!(
            options.timeout.is_none() || options.deadline.is_none(),
            "`timeout` and `deadline` accepted together"
        );
        if let (Some(timeout), Some(min)) = (timeout, min_remaining) {
            assert!(
                min <= timeout,
                "`min_remaining` {min:?} accepted above `timeout` {timeout:?}"
            );
        }
    }

    let out = expand::cancellable(args, item);
    assert!(!out.is_empty());
    let written = out.to_string();
    if !errors.is_empty() {
        assert!(
            written.contains("compile_error"),
            "an option error was dropped: {written}"
        );
    }
    assert!(
        written.parse::<TokenStream>().is_ok(),
        "the output does not lex: {written}"
    );
});
