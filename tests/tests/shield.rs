//! `ctx.shield(d)`: clean-up after an end, with the parent's values and a deadline of its own.

use std::time::Duration;

use ctx_core::{Context, Error};
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
struct TraceId(&'static str);

#[tokio::test(start_paused = true)]
async fn a_shield_outlives_its_parents_end_and_keeps_its_values() {
    let (parent, handle) = Context::background()
        .with_value(TraceId("t-1"))
        .with_cancel();
    let (shield, _h) = parent.shield(Duration::from_secs(2));
    handle.cancel_with_cause("client hung up");
    assert_eq!(parent.err(), Some(Error::Canceled));
    assert_eq!(shield.err(), None);
    assert_eq!(shield.cause().map(|c| c.to_string()), None);
    assert_eq!(shield.value::<TraceId>(), Some(&TraceId("t-1")));
    // A shield made after the end is live too.
    let (late, _h) = parent.shield(Duration::from_secs(2));
    assert_eq!(late.err(), None);
    assert_eq!(late.value::<TraceId>(), Some(&TraceId("t-1")));
}

#[tokio::test(start_paused = true)]
async fn a_shield_ends_with_deadline_exceeded_after_its_timeout() {
    let (parent, _p) = Context::background().with_cancel();
    let start = Instant::now();
    let (shield, _h) = parent.shield(Duration::from_secs(2));
    assert_eq!(shield.deadline(), Some(start + Duration::from_secs(2)));
    assert_eq!(shield.done().await, Error::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(
        shield.cause().unwrap().downcast_ref::<Error>(),
        Some(&Error::DeadlineExceeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_shield_ignores_the_parents_deadline_even_a_nearer_one() {
    let (parent, _p) = Context::background().with_timeout(Duration::from_millis(10));
    let (shield, _h) = parent.shield(Duration::from_secs(1));
    assert_eq!(shield.remaining(), Some(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
    assert_eq!(shield.err(), None);
}

#[test]
fn a_shield_ends_with_its_handle_and_its_children_with_it() {
    let (parent, _p) = Context::background().with_cancel();
    let (shield, handle) = parent.shield(Duration::from_secs(60));
    let (child, _c) = shield.with_cancel();
    drop(handle);
    assert_eq!(shield.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(
        parent.err(),
        None,
        "a shield's end does not reach its parent"
    );
}

#[test]
fn a_shield_with_an_unrepresentable_timeout_has_no_deadline() {
    let (shield, handle) = Context::background().shield(Duration::MAX);
    assert_eq!(shield.deadline(), None);
    assert_eq!(shield.err(), None);
    handle.cancel();
    assert_eq!(shield.err(), Some(Error::Canceled));
}

#[test]
fn a_zero_shield_has_already_ended() {
    let (shield, _h) = Context::background().shield(Duration::ZERO);
    assert_eq!(shield.err(), Some(Error::DeadlineExceeded));
}
