//! Parses the options of `#[cancellable(...)]`: nothing here emits code.
//!
//! Every problem is pushed onto the caller's error list and parsing goes on, so an unknown option,
//! a bad duration and a misplaced attribute are all reported by one build. Only a structural
//! error (a missing `,`, a missing value after `=`) stops the parse.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

/// The options `#[cancellable]` knows: the one list that the parser, the messages and the
/// duplicate check are driven by.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Opt {
    Timeout,
    Deadline,
    MinRemaining,
    Ctx,
    Crate,
}

impl Opt {
    /// Every option, in the order the messages list them.
    const ALL: [Opt; 5] = [
        Opt::Timeout,
        Opt::Deadline,
        Opt::MinRemaining,
        Opt::Ctx,
        Opt::Crate,
    ];

    /// The option's name as written.
    fn name(self) -> &'static str {
        match self {
            Opt::Timeout => "timeout",
            Opt::Deadline => "deadline",
            Opt::MinRemaining => "min_remaining",
            Opt::Ctx => "ctx",
            Opt::Crate => "crate",
        }
    }

    fn from_name(name: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|opt| opt.name() == name)
    }

    /// How the option is written, for "write this instead" messages.
    fn form(self) -> &'static str {
        match self {
            Opt::Timeout => {
                "`timeout = \"5s\"` (a humantime duration) or `timeout = EXPR` (a `Duration`)"
            }
            Opt::Deadline => "`deadline = EXPR` (a `tokio::time::Instant`)",
            Opt::MinRemaining => {
                "`min_remaining = \"50ms\"` (a humantime duration) or `min_remaining = EXPR` (a \
                 `Duration`)"
            }
            Opt::Ctx => "`ctx = name` (the name of the context parameter)",
            Opt::Crate => "`crate = \"path\"` (the path of `ctx_core`, as a string)",
        }
    }
}

/// The option names, as the messages list them: `` `timeout`, `deadline`, … ``.
fn names() -> String {
    Opt::ALL.map(|opt| format!("`{}`", opt.name())).join(", ")
}

/// What `timeout = …` or `min_remaining = …` says.
pub(crate) enum Timeout {
    /// `timeout = "5s"`: checked and converted at compile time.
    Literal {
        /// Whole seconds.
        secs: u64,
        /// The rest, in nanoseconds (`< 1_000_000_000`).
        nanos: u32,
        /// The literal, which the generated `Duration::new` is blamed on.
        span: Span,
    },
    /// `timeout = EXPR`: a `Duration` evaluated on every call.
    Expr(Expr),
}

/// One option as written, `name = value`: kept to point errors at it.
pub(crate) struct Given<T> {
    /// The option's tokens, `name = value`.
    pub(crate) tokens: TokenStream,
    /// Its position among the options, from 0.
    pub(crate) position: usize,
    /// What it says.
    pub(crate) value: T,
}

/// The options of one `#[cancellable(...)]`; each is `None` when not given (or not valid).
#[derive(Default)]
pub(crate) struct Options {
    /// `timeout = "5s"` or `timeout = EXPR`.
    pub(crate) timeout: Option<Given<Timeout>>,
    /// `deadline = EXPR`.
    pub(crate) deadline: Option<Given<Expr>>,
    /// `min_remaining = "50ms"` or `min_remaining = EXPR`.
    pub(crate) min_remaining: Option<Given<Timeout>>,
    /// `ctx = name`.
    pub(crate) ctx: Option<Given<Ident>>,
    /// `crate = "path"`.
    pub(crate) krate: Option<Given<Path>>,
    /// How many options were read so far.
    read: usize,
}

impl Options {
    /// Parses the attribute's arguments. Always returns options (those that could be read) and
    /// pushes every problem onto `errors`.
    pub(crate) fn parse(args: TokenStream, errors: &mut Vec<syn::Error>) -> Options {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| options.parse_one(&meta, errors));
        if let Err(err) = parser.parse2(args) {
            errors.push(err);
        }
        options.check(errors);
        options
    }

    /// Whether `opt` was given already.
    fn given(&self, opt: Opt) -> bool {
        match opt {
            Opt::Timeout => self.timeout.is_some(),
            Opt::Deadline => self.deadline.is_some(),
            Opt::MinRemaining => self.min_remaining.is_some(),
            Opt::Ctx => self.ctx.is_some(),
            Opt::Crate => self.krate.is_some(),
        }
    }

    /// Reads the value of `opt` and keeps it.
    fn set(
        &mut self,
        opt: Opt,
        tokens: TokenStream,
        position: usize,
        value: Expr,
    ) -> syn::Result<()> {
        fn given<T>(tokens: TokenStream, position: usize, value: T) -> Option<Given<T>> {
            Some(Given {
                tokens,
                position,
                value,
            })
        }
        match opt {
            Opt::Timeout => self.timeout = given(tokens, position, duration_option(opt, value)?),
            Opt::Deadline => self.deadline = given(tokens, position, value),
            Opt::MinRemaining => {
                self.min_remaining = given(tokens, position, duration_option(opt, value)?)
            }
            Opt::Ctx => self.ctx = given(tokens, position, ctx_name(value)?),
            Opt::Crate => self.krate = given(tokens, position, crate_path(value)?),
        }
        Ok(())
    }

    /// Parses one `name = value`. Returns `Err` only when the rest cannot be parsed.
    fn parse_one(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        errors: &mut Vec<syn::Error>,
    ) -> syn::Result<()> {
        let name = match meta.path.get_ident() {
            Some(ident) => ident.to_string(),
            None => meta.path.to_token_stream().to_string().replace(' ', ""),
        };
        let position = self.read;
        self.read += 1;
        let opt = Opt::from_name(&name);

        // `timeout`, `timeout(...)`: not the `name = value` form.
        if !meta.input.peek(Token![=]) {
            if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            errors.push(match opt {
                Some(opt) => meta.error(format_args!(
                    "malformed option `{name}`: write {}",
                    opt.form()
                )),
                None => unknown(meta, &name),
            });
            return Ok(());
        }

        let eq: Token![=] = meta.input.parse()?;
        let value: Expr = meta.input.parse().map_err(|err| {
            let wanted = match opt {
                Some(opt) => format!("write {}", opt.form()),
                None => format!("the options are {}", names()),
            };
            syn::Error::new(
                err.span(),
                format_args!("expected a value after `{name} =`; {wanted}"),
            )
        })?;
        let Some(opt) = opt else {
            errors.push(unknown(meta, &name));
            return Ok(());
        };
        if self.given(opt) {
            errors.push(meta.error(format_args!(
                "duplicate option `{name}`: give each option at most once; remove this one"
            )));
            return Ok(());
        }
        let path = &meta.path;
        let tokens = quote::quote!(#path #eq #value);
        if let Err(err) = self.set(opt, tokens, position, value) {
            errors.push(err);
        }
        Ok(())
    }

    /// Checks how the options go together, once all are read.
    fn check(&self, errors: &mut Vec<syn::Error>) {
        if let (
            Some(Given {
                value: Timeout::Literal { secs, nanos, .. },
                ..
            }),
            Some(Given {
                value:
                    Timeout::Literal {
                        secs: min_secs,
                        nanos: min_nanos,
                        ..
                    },
                tokens,
                ..
            }),
        ) = (&self.timeout, &self.min_remaining)
            && (min_secs, min_nanos) > (secs, nanos)
        {
            errors.push(syn::Error::new_spanned(
                tokens,
                "`min_remaining` is longer than `timeout`, so the body could never start: \
                 make `min_remaining` at most the timeout, or the timeout longer",
            ));
        }
        if let (Some(timeout), Some(deadline)) = (&self.timeout, &self.deadline) {
            // Blame the later one: it is the one to remove.
            let later = if timeout.position > deadline.position {
                &timeout.tokens
            } else {
                &deadline.tokens
            };
            errors.push(syn::Error::new_spanned(
                later,
                "`timeout` and `deadline` cannot be used together: keep one, \
                 `timeout = …` for a time from the call or `deadline = …` for an instant",
            ));
        }
    }
}

fn unknown(meta: &ParseNestedMeta<'_>, name: &str) -> syn::Error {
    syn::Error::new_spanned(
        &meta.path,
        format_args!("unknown option `{name}`; expected one of: {}", names()),
    )
}

/// A literal without the `Expr::Group` that `macro_rules!` may wrap around it.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// `timeout = "5s"` or `timeout = EXPR` (and the same for `min_remaining`).
fn duration_option(opt: Opt, value: Expr) -> syn::Result<Timeout> {
    let name = opt.name();
    match literal(&value) {
        Some(Lit::Str(lit)) => duration(opt, lit).map(|d| Timeout::Literal {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
            span: lit.span(),
        }),
        Some(lit @ (Lit::Int(_) | Lit::Float(_))) => Err(syn::Error::new_spanned(
            lit,
            format_args!(
                "a duration needs a unit: write it as a string, such as `{name} = \"5s\"` or \
                 `{name} = \"250ms\"`, or as a `Duration` expression"
            ),
        )),
        _ => Ok(Timeout::Expr(value)),
    }
}

/// Parses a humantime literal; zero and overflow are errors at the literal.
fn duration(opt: Opt, lit: &LitStr) -> syn::Result<Duration> {
    const EXAMPLES: &str = "such as \"250ms\", \"5s\", \"1m 30s\" or \"2h\"";
    let text = lit.value();
    let name = opt.name();
    let zero_means = match opt {
        Opt::MinRemaining => "asks for no time at all, so it checks nothing",
        _ => "would end the context before the body starts",
    };
    let zero_instead = match opt {
        Opt::MinRemaining => "remove `min_remaining` to start the body whatever time is left",
        _ => "remove `timeout` to keep only the caller's deadline",
    };
    match humantime::parse_duration(&text) {
        Ok(d) if d.is_zero() => Err(syn::Error::new(
            lit.span(),
            format_args!(
                "`{name} = {text:?}` {zero_means}; write a duration greater than zero, \
                 {EXAMPLES}, or {zero_instead}"
            ),
        )),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(syn::Error::new(
            lit.span(),
            format_args!(
                "the duration {text:?} is too large or finer than a nanosecond; write a \
                 duration from 1ns up to u64::MAX seconds (about 584 billion years), \
                 {EXAMPLES}"
            ),
        )),
        Err(err) => Err(syn::Error::new(
            lit.span(),
            format_args!(
                "cannot parse {text:?} as a duration ({err}); write a humantime duration, \
                 {EXAMPLES}"
            ),
        )),
    }
}

/// `ctx = name`.
fn ctx_name(value: Expr) -> syn::Result<Ident> {
    match &value {
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => {
            if let Some(ident) = path.path.get_ident() {
                if ["self", "Self", "crate", "super"]
                    .iter()
                    .any(|kw| ident == kw)
                {
                    return Err(syn::Error::new_spanned(
                        ident,
                        format_args!(
                            "`{ident}` is a keyword, not a parameter name; write `ctx = name` \
                             with the name of the context parameter, such as `ctx = parent`"
                        ),
                    ));
                }
                return Ok(ident.clone());
            }
        }
        Expr::Group(group) => return ctx_name(*group.expr.clone()),
        _ => {}
    }
    let hint = match literal(&value) {
        Some(Lit::Str(lit)) => format!(" without quotes: `ctx = {}`", lit.value()),
        _ => String::from(", a plain identifier such as `ctx = parent`"),
    };
    Err(syn::Error::new_spanned(
        value,
        format_args!("`ctx` takes the name of the context parameter; write it{hint}"),
    ))
}

/// `crate = "path"`.
fn crate_path(value: Expr) -> syn::Result<Path> {
    match literal(&value) {
        Some(Lit::Str(lit)) => lit.parse_with(Path::parse_mod_style).map_err(|_| {
            syn::Error::new(
                lit.span(),
                format_args!(
                    "{:?} is not a path; write the path where `ctx_core` can be found, such \
                     as `crate = \"my_crate::ctx\"`",
                    lit.value()
                ),
            )
        }),
        _ => {
            let written = value.to_token_stream().to_string().replace(' ', "");
            Err(syn::Error::new_spanned(
                value,
                format_args!("write the path as a string: `crate = \"{written}\"`"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(args: TokenStream) -> (Options, Vec<String>) {
        let mut errors = Vec::new();
        let options = Options::parse(args, &mut errors);
        (options, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn no_options() {
        let (options, errors) = parse(quote!());
        assert!(errors.is_empty());
        assert!(options.timeout.is_none() && options.deadline.is_none());
        assert!(options.ctx.is_none() && options.krate.is_none());
    }

    #[test]
    fn every_option() {
        let (options, errors) = parse(quote!(timeout = "1m 30.5s", ctx = parent, crate = "a::b",));
        assert!(errors.is_empty(), "{errors:?}");
        match options.timeout.map(|t| t.value) {
            Some(Timeout::Literal { secs, nanos, .. }) => {
                assert_eq!((secs, nanos), (90, 5e8 as u32))
            }
            _ => panic!("expected a literal timeout"),
        }
        assert_eq!(options.ctx.unwrap().value, "parent");
        let krate = options.krate.unwrap().value;
        assert_eq!(quote!(#krate).to_string(), "a :: b");
    }

    #[test]
    fn expressions() {
        let (options, errors) = parse(quote!(timeout = self.limit * 2));
        assert!(errors.is_empty());
        assert!(matches!(options.timeout.unwrap().value, Timeout::Expr(_)));
        let (options, errors) = parse(quote!(deadline = start + Duration::from_secs(1)));
        assert!(errors.is_empty());
        assert!(options.deadline.is_some());
    }

    #[test]
    fn errors_accumulate() {
        let (_, errors) = parse(quote!(
            timout = "1s",
            timeout = "0s",
            ctx = "c",
            crate = a::b
        ));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("unknown option `timout`; expected one of"));
        assert!(errors[1].contains("greater than zero"));
        assert!(errors[2].contains("without quotes: `ctx = c`"));
        assert!(errors[3].contains("`crate = \"a::b\"`"));
    }

    #[test]
    fn duration_errors() {
        let (_, errors) = parse(quote!(timeout = "5 parsecs"));
        assert!(errors[0].starts_with("cannot parse \"5 parsecs\" as a duration"));
        let (_, errors) = parse(quote!(timeout = "99999999999999999999s"));
        assert!(errors[0].contains("too large"));
        let (_, errors) = parse(quote!(timeout = 5));
        assert!(errors[0].contains("needs a unit"));
    }

    #[test]
    fn duplicates_and_conflicts() {
        let (options, errors) = parse(quote!(ctx = a, ctx = b));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("duplicate option `ctx`"));
        assert_eq!(options.ctx.unwrap().value, "a");
        let (_, errors) = parse(quote!(timeout = "1s", deadline = at));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("cannot be used together"));
    }

    #[test]
    fn min_remaining() {
        let (options, errors) = parse(quote!(min_remaining = "50ms", timeout = "1s"));
        assert!(errors.is_empty(), "{errors:?}");
        match options.min_remaining.map(|m| m.value) {
            Some(Timeout::Literal { secs, nanos, .. }) => {
                assert_eq!((secs, nanos), (0, 50_000_000))
            }
            _ => panic!("expected a literal"),
        }
        let (options, errors) = parse(quote!(min_remaining = self.budget));
        assert!(errors.is_empty());
        assert!(matches!(
            options.min_remaining.unwrap().value,
            Timeout::Expr(_)
        ));
        let (_, errors) = parse(quote!(min_remaining = "0s"));
        assert!(
            errors[0].starts_with("`min_remaining = \"0s\"` asks for no time"),
            "{errors:?}"
        );
        let (_, errors) = parse(quote!(min_remaining = 50));
        assert!(errors[0].contains("`min_remaining = \"5s\"`"), "{errors:?}");
        let (_, errors) = parse(quote!(timeout = "1s", min_remaining = "2s"));
        assert!(errors[0].contains("could never start"), "{errors:?}");
        let (_, errors) = parse(quote!(min_remaining = "1s", min_remaining = "2s"));
        assert!(
            errors[0].starts_with("duplicate option `min_remaining`"),
            "{errors:?}"
        );
        let (_, errors) = parse(quote!(min_remaining));
        assert!(
            errors[0]
                .starts_with("malformed option `min_remaining`: write `min_remaining = \"50ms\"`")
        );
    }

    #[test]
    fn every_name_is_listed_once() {
        assert_eq!(
            names(),
            "`timeout`, `deadline`, `min_remaining`, `ctx`, `crate`"
        );
        for opt in Opt::ALL {
            assert_eq!(Opt::from_name(opt.name()), Some(opt));
        }
    }

    #[test]
    fn malformed() {
        let (_, errors) = parse(quote!(timeout, deadline(x), other));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("malformed option `timeout`: write `timeout = \"5s\"`"));
        assert!(errors[1].starts_with("malformed option `deadline`"));
        assert!(errors[2].starts_with("unknown option `other`"));
        let (_, errors) = parse(quote!(ctx = self));
        assert!(errors[0].starts_with("`self` is a keyword"), "{errors:?}");
        let (_, errors) = parse(quote!(timeout = ));
        assert!(errors[0].starts_with("expected a value after `timeout =`"));
    }
}
