//! The cancellation tree: one [`Node`] per context made by `with_cancel`, `with_deadline` or
//! `with_timeout`. Contexts made by `with_value` and `without_cancel` share their nearest node
//! (or have none), so they cost no node of their own.
//!
//! The files: `node.rs`, what a node holds and how it is made (`derive`, `merge`), read
//! (`check`, `cause`, `origin`) and registered with (waiters, after-funcs); `walk.rs`, how it
//! ends (`cancel`, a passed deadline's `expire`, the subtree walk, and `release`, the
//! cancel-on-drop shortcut); `state.rs`, the state byte and its codes; `clock.rs`, the one clock
//! reading of an operation (`Now`) and whether a check takes one (`Clock`).
//!
//! # Invariants
//!
//! Every `unsafe` block of the crate names, in its `SAFETY:` comment, the invariants below that
//! it relies on (7 and 9 to 12 are those of the pointers).
//!
//! 1. `Node::state` goes from [`LIVE`] to an ended state exactly once, under the node's own lock,
//!    in the same critical section that records the cause and takes out the children, the
//!    waiters and the after-funcs. Anyone who sees the node live under its lock may therefore
//!    register a child, a waiter or an after-func and is certain to be found by the end.
//! 2. A live node is in its parent's `children` list at index `slot` (both guarded by the
//!    parent's lock). When it ends on its own (cancel, its own deadline) it removes itself, in
//!    O(1) (`swap_remove`), once its own subtree has ended. When the parent ends it takes the
//!    whole list, and the children do not touch it again. So a parent holds an ended child only
//!    while that child's end is still under way.
//! 3. Every node ends at the latest when its [`CancelHandle`](crate::CancelHandle) is dropped,
//!    which breaks the parent ⇄ child reference cycle of invariant 2.
//! 4. Nothing the user wrote runs while a lock is held: wakers are woken, after-funcs run and
//!    causes are dropped after the lock is released.
//! 5. Cancelling walks the subtree with an explicit stack and dropping walks the parent chain
//!    with a loop, so neither depth nor width touches the call stack.
//! 6. A node is *settled* (the [`SETTLED`] bit) once its whole subtree has ended: a childless
//!    node as it ends, the others when the walk that ended them is over. `cancel()` returns
//!    only when its node is settled, even if another thread won the race to end it.
//! 7. A node is only ever inside an `Arc` (every constructor returns one), so a [`NodeRef`]
//!    made from `Arc::into_raw`'s pointer can make new references.
//! 8. `watched` is set only under the node's lock while it is live, and never cleared: an end
//!    (which holds the lock) that cancels a watched node records its clock reading, which the
//!    lazy children below it use (`derive_lazy`).
//! 9. A [`NodeRef<'a>`](NodeRef) is made only from null or from the pointer of an `Arc<Node>`
//!    (`Arc::into_raw`'s, with the provenance of the whole allocation, counts included) whose
//!    strong reference somebody keeps for all of `'a`: a `Link`, a lazy child's state, or an
//!    `Arc<Node>` borrowed for `'a`. So the node is alive for `'a`, and (by 7) the pointer can
//!    make new references.
//! 10. A `Link` (`crate::link`) is null (`background()`), or an untagged pointer from
//!     `Arc::into_raw` whose strong reference the link holds until it is dropped, or a pointer
//!     tagged in its low bit (which no node's or lazy state's pointer has: their alignment, checked
//!     at compile time, is more than 1) to the `LazyState` of a pinned `Lazy` (`crate::lazy`),
//!     holding no reference.
//! 11. A tagged `Link` lives only in the `Context` inside the `Lazy` whose state it points at, and
//!     that `Context` is reachable only as a `&Context` borrowed from the pinned `Lazy`
//!     (`Lazy::context`): it cannot be moved out (a clone makes the node and returns an ordinary
//!     `Context`), and the borrow ends before the `Lazy` can move or drop. So neither a tagged link
//!     nor a borrow of a `LazyState` made through one outlives its `Lazy`, which stays where it is
//!     meanwhile.
//! 12. While a `LazyState` can be reached (11), what its pointers point at is alive: its parent
//!     `Context`, borrowed by the `Lazy` for `'a` (and so the parent's values); its anchor and
//!     root, nodes of the parent or of an ancestor (or of an ancestor's `Lazy`), which outlive it;
//!     and its node once made, installed once from `Arc::into_raw`, whose reference the `Lazy`
//!     holds until its `Drop`, when no borrow of the child is left.
//!
//! # Deadlines
//!
//! `deadline` is the node's *effective* deadline, the earliest on its chain. A node either owns
//! it (`owns_deadline`: it was given a deadline earlier than its parent's) or inherited it from
//! the ancestor that owns it. No timer exists until someone waits: a deadline that passes
//! unobserved is noticed by the next `err()`, `done()`, child derivation or cancel, which then
//! ends the owner with `DeadlineExceeded`. Every end takes one clock reading (`Now`) and checks
//! each node it ends against it, so a descendant whose own earlier deadline had already passed
//! reports `DeadlineExceeded`, not the later cancel: the first end wins, in wall-clock order.
//!
//! A lazy child (`crate::lazy`) is in no list, so no end checks its deadline against a clock
//! reading. One with a deadline of its own below a node that can be cancelled *watches* that
//! node, whose cancel then records the reading it ended the subtree with (`cancelled_at`); when
//! the child is given a node after its parent ended, `derive_lazy` decides with that reading
//! exactly as the walk would have.
//!
//! # Merged nodes
//!
//! A node made by `merge` ([`MERGED`]) has two parents: its `parent` (the first), in whose
//! `children` it is at `slot` as any child is, and a second one, in whose `Extra::merged` it
//! is at a key that never moves (a slab), so that the second parent's lock alone guards the
//! entry. The node keeps that parent and key (`Extra::second`) until its end takes them. An end
//! of either parent reaches it in its walk like any child; its own end, or a walk that reached
//! it through one parent, takes it out of the other parent's list once its subtree has ended
//! (as `unregister` does), so that no entry outlives it. The merged deadline is inherited from
//! the parent whose deadline is the earlier: `expire` follows `parent` while the deadline is
//! the parent's, else the second parent.
//!
//! With two parents the subtrees of two concurrent ends may overlap without one containing
//! the other, so a walk that finds a merged node already ended by another does not wait for
//! it (`wait_settled`): the other walk may have come through the other parent and be waiting
//! for a node this one ended. Every other wait is for a node whose only parent's list the
//! waiter took, which therefore is the root of the other walk, strictly below: no cycle. The
//! price is that a cancel racing the other parent's end may return while the merged node's
//! descendants are still being ended by the other walk.
//!
//! A walk that reaches a merged node whose deadline has passed unobserved (inherited through
//! either parent: the walk may have come through the other one, before the owner's own walk
//! got there) ends it as the deadline's owner ended, expiring that owner first if need be (a
//! nested end): the first end wins, as for a node's own deadline. The nesting is one level per
//! such owner on a path, not per node.
//!
//! # Deadlock safety
//!
//! At most one lock is held at any time.

mod clock;
mod node;
mod state;
mod walk;

pub(crate) use clock::{Clock, Now};
pub(crate) use node::{AfterEntry, AfterRun, Loc, Node, NodeRef};
pub(crate) use walk::release;

// Named by the docs above.
#[cfg(doc)]
use node::MERGED;
#[cfg(doc)]
use state::{LIVE, SETTLED};
