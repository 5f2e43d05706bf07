//! Compile-time behaviour of `#[cancellable]`: every shape it must accept (`tests/ui/pass`) and
//! every misuse it must reject with a message at the user's tokens (`tests/ui/fail`, checked
//! against the committed `.stderr` files). See `tests/README.md` for the workflow.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    // Paths are relative to this package (`tests/`), so these are `tests/ui/{pass,fail}`.
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
