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

/// The option names, in the order the messages list them.
const NAMES: &str = "`timeout`, `deadline`, `ctx`, `crate`";

/// How each option is written, for "write this instead" messages.
fn form(name: &str) -> &'static str {
    match name {
        "timeout" => "`timeout = \"5s\"` (a humantime duration) or `timeout = EXPR` (a `Duration`)",
        "deadline" => "`deadline = EXPR` (a `tokio::time::Instant`)",
        "ctx" => "`ctx = name` (the name of the context parameter)",
        _ => "`crate = \"path\"` (the path of `ctx_core`, as a string)",
    }
}

/// What `timeout = …` says.
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
        let known = matches!(name.as_str(), "timeout" | "deadline" | "ctx" | "crate");

        // `timeout`, `timeout(...)`: not the `name = value` form.
        if !meta.input.peek(Token![=]) {
            if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            errors.push(if known {
                meta.error(format_args!(
                    "malformed option `{name}`: write {}",
                    form(&name)
                ))
            } else {
                unknown(meta, &name)
            });
            return Ok(());
        }

        let eq: Token![=] = meta.input.parse()?;
        let value: Expr = meta.input.parse().map_err(|err| {
            let wanted = if known {
                format!("write {}", form(&name))
            } else {
                format!("the options are {NAMES}")
            };
            syn::Error::new(
                err.span(),
                format_args!("expected a value after `{name} =`; {wanted}"),
            )
        })?;
        let path = &meta.path;
        let tokens = quote::quote!(#path #eq #value);

        let duplicate = match name.as_str() {
            "timeout" => self.timeout.is_some(),
            "deadline" => self.deadline.is_some(),
            "ctx" => self.ctx.is_some(),
            "crate" => self.krate.is_some(),
            _ => {
                errors.push(unknown(meta, &name));
                return Ok(());
            }
        };
        if duplicate {
            errors.push(meta.error(format_args!(
                "duplicate option `{name}`: give each option at most once; remove this one"
            )));
            return Ok(());
        }

        let result = match name.as_str() {
            "timeout" => timeout(value).map(|t| {
                self.timeout = Some(Given {
                    tokens,
                    position,
                    value: t,
                })
            }),
            "deadline" => {
                self.deadline = Some(Given {
                    tokens,
                    position,
                    value,
                });
                Ok(())
            }
            "ctx" => ctx_name(value).map(|i| {
                self.ctx = Some(Given {
                    tokens,
                    position,
                    value: i,
                })
            }),
            _ => crate_path(value).map(|p| {
                self.krate = Some(Given {
                    tokens,
                    position,
                    value: p,
                })
            }),
        };
        if let Err(err) = result {
            errors.push(err);
        }
        Ok(())
    }

    /// Checks how the options go together, once all are read.
    fn check(&self, errors: &mut Vec<syn::Error>) {
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
        format_args!("unknown option `{name}`; expected one of: {NAMES}"),
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

/// `timeout = "5s"` or `timeout = EXPR`.
fn timeout(value: Expr) -> syn::Result<Timeout> {
    match literal(&value) {
        Some(Lit::Str(lit)) => duration(lit).map(|d| Timeout::Literal {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
            span: lit.span(),
        }),
        Some(lit @ (Lit::Int(_) | Lit::Float(_))) => Err(syn::Error::new_spanned(
            lit,
            "a timeout needs a unit: write it as a string, such as `timeout = \"5s\"` or \
             `timeout = \"250ms\"`, or as a `Duration` expression",
        )),
        _ => Ok(Timeout::Expr(value)),
    }
}

/// Parses a humantime literal; zero and overflow are errors at the literal.
fn duration(lit: &LitStr) -> syn::Result<Duration> {
    const EXAMPLES: &str = "such as \"250ms\", \"5s\", \"1m 30s\" or \"2h\"";
    let text = lit.value();
    match humantime::parse_duration(&text) {
        Ok(d) if d.is_zero() => Err(syn::Error::new(
            lit.span(),
            format_args!(
                "`timeout = {text:?}` would end the context before the body starts; write a \
                 duration greater than zero, {EXAMPLES}, or remove `timeout` to keep only the \
                 caller's deadline"
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
