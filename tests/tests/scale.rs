//! Rule 3 of ctx-core's docs: ending a context ends its whole subtree however deep or wide, with no stack
//! overflow on cancel or on drop. Each case runs on a thread with a 2 MiB stack (a test
//! thread's default), so recursion per level would overflow it.

use ctx_core::{CancelHandle, Context, Error};

const N: usize = 1_000_000;

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// A chain of `n` contexts below `root`; returns the leaf and every handle.
fn chain(root: &Context, n: usize) -> (Context, Vec<CancelHandle>) {
    let mut handles = Vec::with_capacity(n);
    let mut ctx = root.clone();
    for _ in 0..n {
        let (child, handle) = ctx.with_cancel();
        handles.push(handle);
        ctx = child;
    }
    (ctx, handles)
}

#[test]
fn a_million_deep_chain_cancelled_at_the_root_then_dropped() {
    on_small_stack(|| {
        let (root, root_handle) = Context::background().with_cancel();
        let (leaf, handles) = chain(&root, N);
        root_handle.cancel_with_cause("root");
        assert_eq!(leaf.err(), Some(Error::Canceled));
        assert_eq!(leaf.cause().unwrap().to_string(), "root");
        drop(root);
        drop(handles);
        drop(leaf);
    });
}

#[test]
fn a_million_deep_chain_dropped_without_cancel_leaf_first() {
    on_small_stack(|| {
        let (leaf, mut handles) = chain(&Context::background(), N);
        let probe = leaf.clone();
        drop(leaf);
        // Leaf handles first: each cancel unregisters one node from its parent.
        while let Some(handle) = handles.pop() {
            drop(handle);
        }
        assert!(probe.is_done());
        drop(probe);
    });
}

#[test]
fn a_million_deep_chain_dropped_root_handle_first() {
    on_small_stack(|| {
        let (leaf, handles) = chain(&Context::background(), N);
        // Vec drops in order: the root's handle first, which walks the whole chain.
        drop(handles);
        assert_eq!(leaf.err(), Some(Error::Canceled));
        drop(leaf);
    });
}

#[test]
fn a_cancel_in_the_middle_of_a_deep_chain_ends_only_below_it() {
    on_small_stack(|| {
        let (root, _root_handle) = Context::background().with_cancel();
        let (upper, upper_handles) = chain(&root, N / 2);
        let (lower, lower_handles) = chain(&upper, N / 2);
        lower_handles[0].cancel();
        assert!(lower.is_done());
        assert!(!upper.is_done());
        assert!(!root.is_done());
        drop((lower_handles, upper_handles));
        assert!(upper.is_done());
    });
}

#[test]
fn a_million_wide_fan_out_cancelled_then_dropped() {
    on_small_stack(|| {
        let (parent, handle) = Context::background().with_cancel();
        let children: Vec<(Context, CancelHandle)> = (0..N).map(|_| parent.with_cancel()).collect();
        handle.cancel();
        assert!(
            children
                .iter()
                .all(|(child, _)| child.err() == Some(Error::Canceled))
        );
        drop(children);
        drop(parent);
    });
}

#[test]
fn a_million_wide_fan_out_whose_children_end_first() {
    on_small_stack(|| {
        let (parent, handle) = Context::background().with_cancel();
        let mut children: Vec<(Context, CancelHandle)> =
            (0..N).map(|_| parent.with_cancel()).collect();
        // Every other child ends on its own: each removal from the parent is O(1).
        for (_, child_handle) in children.iter().step_by(2) {
            child_handle.cancel();
        }
        children.retain(|(child, _)| !child.is_done());
        assert_eq!(children.len(), N / 2);
        drop(handle);
        assert!(children.iter().all(|(child, _)| child.is_done()));
    });
}
