//! `with_value` / `value`: typed keys, shadowing, and values seen through every derivation.

use std::time::Duration;

use ctx_core::Context;
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
struct RequestId(u64);

#[derive(Debug, PartialEq)]
struct User(&'static str);

#[test]
fn a_value_is_found_by_its_type() {
    let ctx = Context::background()
        .with_value(RequestId(1))
        .with_value(User("ada"));
    assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(1)));
    assert_eq!(ctx.value::<User>(), Some(&User("ada")));
    assert_eq!(ctx.value::<u64>(), None);
}

#[test]
fn a_nearer_value_shadows_a_farther_one_without_changing_the_parent() {
    let outer = Context::background().with_value(RequestId(1));
    let inner = outer.with_value(User("x")).with_value(RequestId(2));
    assert_eq!(inner.value::<RequestId>(), Some(&RequestId(2)));
    assert_eq!(outer.value::<RequestId>(), Some(&RequestId(1)));
    assert_eq!(inner.value::<User>(), Some(&User("x")));
}

#[tokio::test(start_paused = true)]
async fn values_are_seen_through_every_kind_of_derived_context() {
    let base = Context::background().with_value(RequestId(7));
    let (cancel, _h1) = base.with_cancel();
    let (timeout, _h2) = cancel.with_timeout(Duration::from_secs(1));
    let (deadline, _h3) = timeout.with_deadline(Instant::now() + Duration::from_secs(2));
    let (cause, _h4) = deadline.with_timeout_cause(Duration::from_secs(3), "c");
    let (dcause, _h5) = cause.with_deadline_cause(Instant::now() + Duration::from_secs(4), "d");
    let detached = dcause.without_cancel();
    let other = detached.with_value(User("u"));
    let (last, _h6) = other.with_cancel();
    for ctx in [
        &cancel, &timeout, &deadline, &cause, &dcause, &detached, &other, &last,
    ] {
        assert_eq!(ctx.value::<RequestId>(), Some(&RequestId(7)));
    }
    // Shadowing works below every derivation too.
    let shadowed = last.with_value(RequestId(8));
    let (below, _h7) = shadowed.with_cancel();
    assert_eq!(below.value::<RequestId>(), Some(&RequestId(8)));
    assert_eq!(last.value::<RequestId>(), Some(&RequestId(7)));
}

#[test]
fn a_value_context_ends_with_its_parent() {
    let (ctx, handle) = Context::background().with_cancel();
    let valued = ctx.with_value(RequestId(1));
    handle.cancel();
    assert!(valued.is_done());
}

#[test]
fn without_cancel_keeps_values_and_never_ends() {
    let (ctx, handle) = Context::background()
        .with_value(User("kept"))
        .with_timeout(Duration::ZERO);
    assert!(ctx.is_done());
    let detached = ctx.without_cancel();
    drop(handle);
    assert_eq!(detached.err(), None);
    assert!(detached.cause().is_none());
    assert_eq!(detached.deadline(), None);
    assert_eq!(detached.value::<User>(), Some(&User("kept")));
    let (child, child_handle) = detached.with_cancel();
    assert_eq!(child.err(), None);
    child_handle.cancel();
    assert!(child.is_done());
    assert!(!detached.is_done());
}

#[test]
fn a_long_value_chain_drops_without_recursion() {
    // Run on a small stack: recursion per value would overflow it.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut ctx = Context::background();
            for i in 0..200_000u32 {
                ctx = ctx.with_value(i);
            }
            assert_eq!(ctx.value::<u32>(), Some(&199_999));
            drop(ctx);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn many_types_on_one_chain_are_all_found_and_misses_stay_misses() {
    // More key types than the 64 bits of the miss filter, so some share a bit.
    macro_rules! keys {
        ($($name:ident)*) => {
            $(#[derive(Debug, PartialEq)] struct $name(u32);)*
            let mut ctx = Context::background();
            let mut n = 0;
            $(n += 1; ctx = ctx.with_value($name(n));)*
            let mut n = 0;
            $(n += 1; assert_eq!(ctx.value::<$name>(), Some(&$name(n)));)*
            assert_eq!(ctx.value::<String>(), None);
            assert_eq!(ctx.value::<Vec<u8>>(), None);
        };
    }
    keys!(K1 K2 K3 K4 K5 K6 K7 K8 K9 K10 K11 K12 K13 K14 K15 K16 K17 K18 K19 K20
          K21 K22 K23 K24 K25 K26 K27 K28 K29 K30 K31 K32 K33 K34 K35 K36 K37 K38 K39 K40
          K41 K42 K43 K44 K45 K46 K47 K48 K49 K50 K51 K52 K53 K54 K55 K56 K57 K58 K59 K60
          K61 K62 K63 K64 K65 K66 K67 K68 K69 K70 K71 K72 K73 K74 K75 K76 K77 K78 K79 K80);
}
