//! Property test: random trees of contexts, built and mutated by random operations (derive,
//! merge, cancel, drop, the paused clock passing deadlines, after-funcs added and stopped), checked
//! after every step against a small reference model of Go's semantics: who has ended, with which
//! `err` and `cause`, what `deadline()` and `value()` say, which after-funcs ran. When
//! everything is dropped, the live heap is back where it started (this binary counts
//! allocations, and has this one test so that nothing else allocates meanwhile). The model and
//! its checker are in `support/model.rs`, which the tree fuzz target shares.

use proptest::prelude::*;

mod support;

#[path = "support/model.rs"]
mod model;

use model::{Derive, Op, run_ops};

fn op() -> impl Strategy<Value = Op> {
    let derive = prop_oneof![
        3 => Just(Derive::Cancel),
        2 => (0u64..40).prop_map(Derive::Timeout),
        2 => (0u64..40).prop_map(Derive::TimeoutCause),
        1 => (0u32..4).prop_map(Derive::Value),
        1 => Just(Derive::WithoutCancel),
    ];
    prop_oneof![
        6 => (any::<usize>(), derive).prop_map(|(parent, how)| Op::Derive { parent, how }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(first, second)| Op::Merge { first, second }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(target, with_cause)| Op::Cancel { target, with_cause }),
        1 => any::<usize>().prop_map(|target| Op::Drop { target }),
        2 => (1u64..25).prop_map(Op::Advance),
        2 => any::<usize>().prop_map(|target| Op::AfterFunc { target }),
        1 => any::<usize>().prop_map(|after| Op::Stop { after }),
    ]
}

proptest! {
    // 1000 cases unless PROPTEST_CASES says otherwise (scripts/valgrind.sh asks for fewer).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run_ops(ops));
    }
}
