//! Ending a node and its subtree: the handle's cancel, a passed deadline's end, and the walk
//! that ends every descendant (invariants 1, 2 and 4 to 6 of `tree`).

use std::ptr;

use slab::Slab;
use smallvec::SmallVec;

use super::clock::Now;
use super::node::{
    AfterEntry, Children, Extra, Loc, MERGED, Node, OWNS_DEADLINE, Second, Shared, Waiters,
};
use super::state::{CANCELED, DEADLINE, DROPPED, HOW, LIVE, REASON, SETTLED};
use crate::error::{Cause, Error};
use crate::sync::{Arc, Ordering, lock, yield_now};

/// What an end takes out of a node under its lock, to be handled after the lock is released.
struct Taken {
    /// The reason, with [`DROPPED`] if it was a handle's drop.
    code: u8,
    cause: Option<Cause>,
    origin: Loc,
    /// `None` when there were none: most nodes end childless. The merged children of which
    /// the node is the second parent are among them.
    children: Option<Children>,
    /// A merged node's second parent and its key there.
    second: Option<Second>,
    /// `None` when there were none: most nodes end with nobody waiting.
    told: Option<Told>,
}

/// What an end's critical section found.
enum Finished {
    /// The node had already ended (another end came first).
    Already,
    /// It ended with no child, no waiter and no after-func: nothing to tell or walk, only (for
    /// a merged node) its second parent to leave.
    Quiet(Option<Second>),
    /// It ended with something to tell or walk.
    Taken(Taken),
}

/// The waiters and after-funcs of an ended node.
struct Told {
    waiters: Waiters,
    afters: Slab<AfterEntry>,
}

/// Work for the iterative subtree walk: children to end with their parent's reason, cause and
/// origin.
type Work = (Children, u8, Option<Cause>, Loc);

/// Whether this thread is inside a subtree walk, and how deep. A walk can drop the last
/// reference to a node, which drops its cause, which is user code and may cancel another
/// context. Such a nested cancel must not wait for a walk that this very thread is suspended
/// in, so only the outermost walk (and a cancel outside any walk) waits for other threads.
struct Walk;

#[cfg(not(loom))]
std::thread_local! {
    static WALK_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

// loom's `thread_local!` has no `const` form.
#[cfg(loom)]
loom::thread_local! {
    static WALK_DEPTH: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

impl Walk {
    fn enter() -> Walk {
        WALK_DEPTH.with(|depth| depth.set(depth.get() + 1));
        Walk
    }

    /// Whether a thread at walk depth `depth` (its own walk included) may wait for others.
    fn may_wait(depth: u32) -> bool {
        WALK_DEPTH.with(|d| d.get()) <= depth
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        WALK_DEPTH.with(|depth| depth.set(depth.get() - 1));
    }
}

/// What the owner of a node's end does when it lets go (a dropped
/// [`CancelHandle`](crate::CancelHandle), or a lazy child going out of scope): cancels the node,
/// Go's deferred `cancel()`.
pub(crate) fn release(node: &Arc<Node>) {
    // The only owner of the node: no context, `Done`, `AfterFunc` handle, child or parent list
    // refers to it, and no after-func was registered, so nobody can ever observe how it ends.
    // Freeing it is the whole job (no lock, no clock reading). Nobody can gain a new reference
    // meanwhile: every reference is made from an existing one, and there are no weak ones. (A
    // registered after-func holds no reference, hence the extra check.)
    if Arc::strong_count(node) == 1 && node.end_unobservable() {
        return;
    }
    node.cancel(None, None);
}

impl Node {
    /// The handle's cancel: ends the node and its subtree with `Canceled` and `cause`, unless it
    /// has already ended or its deadline has already passed (then it ends by the deadline).
    ///
    /// `at` is the cancel call's location, or `None` for the handle's drop (whose origin is
    /// where the node was made).
    pub(crate) fn cancel(&self, cause: Option<Cause>, at: Option<Loc>) {
        let state = self.state.load(Ordering::Acquire);
        if state != LIVE {
            if state & SETTLED == 0 && Walk::may_wait(0) {
                self.wait_settled();
            }
            return;
        }
        let mut now = Now::default();
        if self.deadline.is_some_and(|d| now.get() >= d) {
            self.expire(&mut now);
        } else {
            let code = if at.is_some() {
                CANCELED
            } else {
                CANCELED | DROPPED
            };
            self.end(code, cause, at, &mut now, true);
        }
    }

    /// The effective deadline has passed (`now` is at or past it): ends the node that owns it,
    /// which ends this one with it, and returns the error this node ended with.
    pub(crate) fn expire(&self, now: &mut Now) -> Error {
        self.with_deadline_owner(|owner| owner.end(DEADLINE, None, None, now, true));
        match self.state() {
            Some(err) => err,
            // Still live: the owner had already ended, and the walk of that end, suspended on
            // this thread in user code (a waker, a cause's `Drop`) or not waited for from
            // inside another walk, has not reached this node yet. It will end it with the
            // reason of the nearest ended ancestor (nothing between them owns a deadline), so
            // that is the answer now too: the reason is fixed from the first answer on.
            None => self
                .ending_ancestor()
                .and_then(Node::state)
                .unwrap_or(Error::DeadlineExceeded),
        }
    }

    /// Calls `f` with the node that owns this node's (effective) deadline.
    fn with_deadline_owner<R>(&self, f: impl FnOnce(&Node) -> R) -> R {
        // A second parent of a merged node on the way, held while its chain is walked.
        let mut held: Option<Arc<Node>>;
        let mut owner = self;
        while owner.flags & OWNS_DEADLINE == 0 {
            match owner.parent.as_deref() {
                // An inherited deadline is the parent's, exactly.
                Some(parent) if parent.deadline == owner.deadline => owner = parent,
                // Else a merged node's deadline is its second parent's. Without one (a merged
                // node that has just ended, or, unreachable by invariant, no owner above),
                // ending this node is still the right outcome.
                _ => match owner.second_parent() {
                    Some(second) => {
                        held = Some(second);
                        owner = held.as_deref().unwrap_or(self);
                    }
                    None => break,
                },
            }
        }
        f(owner)
    }

    /// Ends this node (unless it already ended) and then its whole subtree. When it returns,
    /// the subtree has ended, whichever thread ended it (see [`Node::wait_settled`]).
    ///
    /// `unregister` is false only when the parent has already taken this node out of its list.
    /// `at` is the origin's location, `None` for where the node was made (see `finish`).
    pub(super) fn end(
        &self,
        code: u8,
        cause: Option<Cause>,
        at: Option<Loc>,
        now: &mut Now,
        unregister: bool,
    ) {
        let mut taken = match self.finish(code, cause, at, now) {
            Finished::Taken(taken) => taken,
            Finished::Quiet(second) => {
                // The common end (a request's context, ended by its own handle): nobody to tell
                // and nothing below, so no walk.
                if unregister {
                    self.unregister();
                }
                if let Some(second) = second {
                    self.leave_second(second);
                }
                return;
            }
            Finished::Already => {
                if Walk::may_wait(0) {
                    self.wait_settled();
                }
                return;
            }
        };
        if taken.children.is_none() {
            return self.end_leaf(taken, unregister);
        }
        let second = taken.second.take();
        let walk = Walk::enter();
        let may_wait = Walk::may_wait(1);
        let mut afters: Vec<AfterEntry> = Vec::new();
        // On the call stack while small (a subtree a few levels deep: most), so that a walk
        // allocates nothing for itself unless the subtree is large.
        let mut stack: SmallVec<[Work; 4]> = SmallVec::new();
        // The nodes of the subtree that had children: they are settled once the whole walk is
        // over, which is after each one's own subtree has ended (8 bytes each, where a
        // post-order marker on the stack would take a whole `Work`).
        let mut inner: SmallVec<[Arc<Node>; 16]> = SmallVec::new();
        // The merged nodes of the subtree: reached through one parent's list, each is still in
        // its other parent's, to be left once the walk is over (as `unregister` below).
        let mut merged: Vec<(Arc<Node>, Option<Second>)> = Vec::new();
        let has_children = taken.children.is_some();
        if has_children {
            // The clock reading the descendants' own deadlines are checked against is the one
            // of this end, taken now that it is decided, not when the walk first meets a
            // deadline: user code run in the walk (wakers, below) or a wide subtree can take
            // long, and a deadline that passes meanwhile came after this end.
            now.get();
        }
        taken.release(&mut afters, &mut stack);
        while let Some((children, code, cause, origin)) = stack.pop() {
            for child in children {
                let end = if child.flags & MERGED != 0
                    && child.deadline.is_some_and(|d| now.get() >= d)
                {
                    // Its deadline, inherited through one of its parents, passed unobserved
                    // before this end, and so came first: the node ends as that deadline's
                    // owner did (ending it first), as `finish` lets a node's own passed
                    // deadline win (see "Merged nodes").
                    child.with_deadline_owner(|owner| {
                        owner.end(DEADLINE, None, None, now, true);
                        owner.ended_with()
                    })
                } else {
                    (code, cause.clone(), origin)
                };
                match child.finish(end.0, end.1, Some(end.2), now) {
                    Finished::Quiet(second) => {
                        if child.flags & MERGED != 0 {
                            merged.push((child.clone(), second));
                        }
                    }
                    Finished::Taken(mut taken) => {
                        let has_children = taken.children.is_some();
                        let second = taken.second.take();
                        taken.release(&mut afters, &mut stack);
                        if child.flags & MERGED != 0 {
                            merged.push((child.clone(), second));
                        }
                        if has_children {
                            inner.push(child);
                        }
                    }
                    // Another thread ended this child first and is ending its subtree. Not
                    // waited for if it is merged: that thread may have come through its other
                    // parent and be waiting, in turn, for a node this walk ended (see "Merged
                    // nodes").
                    Finished::Already if may_wait && child.flags & MERGED == 0 => {
                        child.wait_settled()
                    }
                    Finished::Already => {}
                }
            }
        }
        for node in inner.iter().rev() {
            node.settle();
        }
        drop(inner);
        if has_children {
            self.settle();
        }
        // Only now: until its subtree has ended, a parent that ends concurrently must find this
        // node in its list and wait for it (found by the loom model
        // `a_child_dropped_while_its_parent_cancels`).
        if unregister {
            self.unregister();
        }
        if let Some(second) = second {
            self.leave_second(second);
        }
        for (node, second) in merged {
            node.unregister();
            if let Some(second) = second {
                node.leave_second(second);
            }
        }
        drop(walk);
        // Every node of the subtree has ended before any after-func runs.
        for after in afters {
            after.run();
        }
    }

    /// The rest of the end of a node without children that somebody was told of (waiters, or
    /// after-funcs): as the walk below does for such a node, minus the walk. `finish` settled
    /// it, so no other end waits for this thread, and this thread holds no lock and no node it
    /// has not settled: waking the waiters (a waker is user code) and running the after-funcs
    /// need none of the walk's guards. Same order as the walk: waiters woken, the node out of
    /// its parents' lists, then the after-funcs started.
    ///
    /// Ending such a leaf without the walk's stacks, lists and moves of `Taken` is about a
    /// fifth of a `with_cancel` + one `done()` waiter + `cancel` (callgrind). Not inlined, so
    /// that the other ends keep their code as it was.
    #[inline(never)]
    fn end_leaf(&self, taken: Taken, unregister: bool) {
        let Taken { second, told, .. } = taken;
        let afters = told.map(|told| {
            told.waiters.wake_all();
            told.afters
        });
        if unregister {
            self.unregister();
        }
        if let Some(second) = second {
            self.leave_second(second);
        }
        for (_, after) in afters.into_iter().flatten() {
            after.run();
        }
    }

    /// The critical section of an end: under the lock, if the node is still live, fix its
    /// reason, cause and origin and take out everything that must be told.
    ///
    /// `code` may carry [`DROPPED`]; `at` is the origin's location, `None` for where the node
    /// was made (a handle's drop, a deadline). A node's own deadline that has passed wins over
    /// `code`, and its origin is then where the node was made.
    ///
    /// Inlined into its two callers: `Taken` is some 160 bytes, which returned and then moved
    /// cost two `memcpy` calls per end (about 60 instructions of a 700-instruction
    /// `with_cancel` + `cancel`, by callgrind).
    #[inline(always)]
    fn finish(&self, code: u8, cause: Option<Cause>, at: Option<Loc>, now: &mut Now) -> Finished {
        // Read before locking: the clock is not to be read under the lock.
        let own_deadline_passed =
            self.flags & OWNS_DEADLINE != 0 && self.deadline.is_some_and(|d| now.get() >= d);
        let mut shared = lock(&self.shared);
        if self.state.load(Ordering::Relaxed) != LIVE {
            return Finished::Already;
        }
        let (code, cause) = if own_deadline_passed {
            // This node's own deadline came first: it wins over whatever ends it now.
            let cause = shared.extra.as_mut().and_then(|e| e.deadline_cause.take());
            (DEADLINE, cause)
        } else {
            (code & HOW, cause)
        };
        let origin = match at {
            Some(at) if !own_deadline_passed => at,
            _ => shared.origin,
        };
        shared.origin = origin;
        if code & REASON == CANCELED && self.watched.load(Ordering::Relaxed) {
            record_cancel(&mut shared, now);
        }
        let told = shared.extra.as_mut().and_then(|extra| {
            (!extra.waiters.is_empty() || !extra.afters.is_empty()).then(|| Told {
                waiters: std::mem::take(&mut extra.waiters),
                afters: std::mem::take(&mut extra.afters),
            })
        });
        let mut children =
            (!shared.children.is_empty()).then(|| std::mem::take(&mut shared.children));
        let mut second = None;
        if let Some(extra) = shared.extra.as_mut() {
            second = extra.second.take();
            if !extra.merged.is_empty() {
                let merged = std::mem::take(&mut extra.merged);
                let list = children.get_or_insert_with(Children::new);
                list.extend(merged.into_iter().map(|(_, child)| child));
            }
        }
        let quiet = children.is_none() && told.is_none();
        // The cause is kept by the node (moved there if nothing below or waiting needs it).
        let (kept, cause) = if quiet {
            (cause, None)
        } else {
            (cause.clone(), cause)
        };
        match (shared.extra.as_mut(), kept) {
            (Some(extra), kept) => extra.cause = kept,
            // Most nodes end with no cause, waiter or after-func: they never allocate `Extra`.
            (None, Some(kept)) => {
                shared.extra = Some(Box::new(Extra {
                    cause: Some(kept),
                    ..Extra::default()
                }));
            }
            (None, None) => {}
        }
        // A node without children has nothing more to end: it is settled at once.
        let settled = if children.is_none() { SETTLED } else { 0 };
        self.state.store(code | settled, Ordering::Release);
        drop(shared);
        if quiet {
            return Finished::Quiet(second);
        }
        Finished::Taken(Taken {
            code,
            cause,
            origin,
            children,
            second,
            told,
        })
    }

    fn settle(&self) {
        self.state.fetch_or(SETTLED, Ordering::Release);
    }

    /// Waits until the thread that ended this node has ended its whole subtree, so that a
    /// cancel that lost the race still returns only once every descendant has ended (Go gives
    /// the same guarantee by holding each node's mutex while it cancels the children).
    ///
    /// The wait is short: the other thread is walking the subtree, which runs no user code.
    fn wait_settled(&self) {
        let mut spins = 0u32;
        while self.state.load(Ordering::Acquire) & SETTLED == 0 {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                yield_now();
            }
        }
    }

    /// Removes this (ended) node from its parent's list.
    fn unregister(&self) {
        let Some(parent) = self.parent.as_deref() else {
            return;
        };
        let removed = {
            let mut shared = lock(&parent.shared);
            let slot = self.slot.load(Ordering::Relaxed) as usize;
            if shared
                .children
                .get(slot)
                .is_some_and(|child| ptr::eq(Arc::as_ptr(child), self))
            {
                let me = shared.children.swap_remove(slot);
                if let Some(moved) = shared.children.get(slot) {
                    moved.slot.store(slot as u32, Ordering::Relaxed);
                }
                Some(me)
            } else {
                None
            }
        };
        drop(removed);
    }

    /// Takes this (ended) merged node out of its second parent's `merged`, if it is still there.
    fn leave_second(&self, (second, key): Second) {
        let removed = {
            let mut shared = lock(&second.shared);
            match shared.extra.as_mut() {
                Some(extra)
                    if extra
                        .merged
                        .get(key)
                        .is_some_and(|child| ptr::eq(Arc::as_ptr(child), self)) =>
                {
                    Some(extra.merged.remove(key))
                }
                _ => None,
            }
        };
        drop(removed);
        // May be the last reference to `second`: dropped with no lock held.
        drop(second);
    }
}

/// Records the clock reading of the cancel that ends a watched node (under its lock): the one
/// clock reading under a lock, at most once per node, and only for a node below which a lazy
/// child with a deadline of its own was made.
#[cold]
#[inline(never)]
fn record_cancel(shared: &mut Shared, now: &mut Now) {
    let at = now.get();
    shared.extra.get_or_insert_with(Box::default).cancelled_at = Some(at);
}

impl Taken {
    /// Wakes the waiters, queues the after-funcs and the children. No lock is held.
    #[inline(always)]
    fn release(self, afters: &mut Vec<AfterEntry>, stack: &mut SmallVec<[Work; 4]>) {
        if let Some(told) = self.told {
            told.waiters.wake_all();
            afters.extend(told.afters.into_iter().map(|(_, after)| after));
        }
        if let Some(children) = self.children {
            stack.push((children, self.code, self.cause, self.origin));
        }
    }
}
