//! A driver of the context tree: arbitrary sequences of derive (cancel, timeout, timeout with
//! a cause, value, without-cancel), merge, cancel, drop, after-func, stop and clock steps on a
//! paused runtime, checked after every step against the reference model of the property test
//! (`tests/tests/support/model.rs`, included here by path: the same model, the same checks of
//! `err`, `cause`, `deadline`, `value` and which after-funcs ran, and the live heap back at its
//! baseline once everything is dropped). The property test draws its operations at random;
//! here libFuzzer steers them by coverage. A few bytes make each operation, in the ranges the
//! property test uses.

#![no_main]

#[path = "../../tests/tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../../tests/tests/support/model.rs"]
mod model;

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::{Derive, Op, run_ops};

/// One operation, weighted as the property test's strategy weighs them.
fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let index = |u: &mut Unstructured<'_>| u.int_in_range(0..=63u8).map(usize::from);
    Ok(match u.int_in_range(0..=15u8)? {
        0..=5 => Op::Derive {
            parent: index(u)?,
            how: match u.int_in_range(0..=8u8)? {
                0..=2 => Derive::Cancel,
                3 | 4 => Derive::Timeout(u.int_in_range(0..=39)?),
                5 | 6 => Derive::TimeoutCause(u.int_in_range(0..=39)?),
                7 => Derive::Value(u.int_in_range(0..=3)?),
                _ => Derive::WithoutCancel,
            },
        },
        6 | 7 => Op::Merge {
            first: index(u)?,
            second: index(u)?,
        },
        8 | 9 => Op::Cancel {
            target: index(u)?,
            with_cause: u.arbitrary()?,
        },
        10 => Op::Drop { target: index(u)? },
        11 | 12 => Op::Advance(u.int_in_range(1..=24)?),
        13 | 14 => Op::AfterFunc { target: index(u)? },
        _ => Op::Stop { after: index(u)? },
    })
}

/// The operations of one run (a crash report prints them with `Debug`).
#[derive(Debug)]
struct Ops(Vec<Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Ops> {
        let mut ops = Vec::new();
        // As many as the bytes give, up to 200 (the property test draws up to 59).
        while ops.len() < 200 && !u.is_empty() {
            match op(u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Ok(Ops(ops))
    }
}

fuzz_target!(|ops: Ops| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(run_ops(ops.0));
});
