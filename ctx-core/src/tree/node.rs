//! The node of the cancellation tree (see the module docs of `tree` for the invariants).

use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::Location;
use std::ptr::NonNull;
use std::task::Waker;

use slab::Slab;
use smallvec::SmallVec;
use tokio::time::Instant;

use super::clock::Now;
#[cfg(doc)]
use super::state::CANCELED;
use super::state::{DEADLINE, DROPPED, HOW, LIVE, REASON, SETTLED};
use crate::error::{Cause, Error};
use crate::origin::{Origin, OriginKind};
use crate::sync::{Arc, AtomicBool, AtomicU8, AtomicU32, Mutex, Ordering, lock};

pub(super) type Children = SmallVec<[Arc<Node>; 1]>;

/// A source location compiled into the binary (`#[track_caller]`'s): 8 bytes, no allocation.
pub(crate) type Loc = &'static Location<'static>;

/// A merged node's second parent and its key in that parent's `Extra::merged`.
pub(super) type Second = (Arc<Node>, usize);

/// The node owns its deadline (see "Deadlines" in the docs of `tree`).
pub(super) const OWNS_DEADLINE: u8 = 1;
/// The node was made by `merge`: it has a second parent (see "Merged nodes" in the docs of `tree`).
pub(super) const MERGED: u8 = 2;

pub(crate) struct Node {
    /// [`LIVE`], [`CANCELED`] (with [`DROPPED`] for a handle's drop) or [`DEADLINE`], plus
    /// [`SETTLED`]; written only under `shared`'s lock.
    pub(super) state: AtomicU8,
    /// An after-func was registered: ending this node may run user code, so it must not be
    /// skipped even when nobody else holds the node (see `release`).
    pub(super) has_afters: AtomicBool,
    /// A lazy child (`crate::lazy`) with a deadline of its own may need to know when this node
    /// was cancelled: its end records the clock reading (`Extra::cancelled_at`). Set only while
    /// live, under `shared`'s lock, and never cleared, so the end (which holds the lock) sees it.
    pub(super) watched: AtomicBool,
    /// [`OWNS_DEADLINE`] and [`MERGED`]; fixed at construction.
    pub(super) flags: u8,
    /// The effective (earliest) deadline of the chain.
    pub(super) deadline: Option<Instant>,
    /// Index in the parent's `children`; read and written only under the parent's lock. (A
    /// parent with 2^32 live children would need over 300 GiB for them.)
    pub(super) slot: AtomicU32,
    pub(super) parent: Option<Arc<Node>>,
    pub(super) shared: Mutex<Shared>,
}

pub(super) struct Shared {
    pub(super) children: Children,
    /// Allocated the first time something besides children needs room.
    pub(super) extra: Option<Box<Extra>>,
    /// While live, where the node was made (the origin of an end by its handle's drop or its
    /// own deadline); once ended, where the end came from (`Origin`'s location, with the kind
    /// in `state`). Written once more at most, by the end, in `finish`.
    pub(super) origin: Loc,
}

#[derive(Default)]
pub(super) struct Extra {
    /// The cause given with `with_deadline_cause`, used if the deadline ends the node.
    pub(super) deadline_cause: Option<Cause>,
    /// The cause the node ended with, when one was given (else `cause()` is the `Error`).
    pub(super) cause: Option<Cause>,
    pub(super) waiters: Waiters,
    pub(super) afters: Slab<AfterEntry>,
    /// The task that fires the deadline for after-funcs, if one was spawned (see
    /// [`Node::register_after`]).
    pub(super) timer: Option<TimerTask>,
    /// The clock reading of the end, if it was a cancel (not a deadline) of a `watched` node.
    pub(super) cancelled_at: Option<Instant>,
    /// The merged children of which this node is the *second* parent (`Node::merge`), at keys
    /// that never move; guarded, like `children`, by this node's lock, and taken by its end.
    pub(super) merged: Slab<Arc<Node>>,
    /// Of a live merged node: its second parent and its key in that parent's `merged`. Taken
    /// by the node's end, which then takes the entry out.
    pub(super) second: Option<Second>,
}

/// The wakers of a node's `done()` waiters: the first one inline, any others in a slab. Most
/// nodes that are waited on have one waiter (a request's context, a task's own context), whose
/// registration then allocates nothing beyond `Extra` (a slab allocates room for four at its
/// first insert). Key 0 is the inline one, key `k + 1` the slab's key `k`; a key stays valid
/// until its waker is removed or the end takes them all, as a slab's does.
#[derive(Default)]
pub(super) struct Waiters {
    first: Option<Waker>,
    rest: Slab<Waker>,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        if self.first.is_none() {
            self.first = Some(waker);
            0
        } else {
            self.rest.insert(waker) + 1
        }
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut Waker> {
        match key {
            0 => self.first.as_mut(),
            key => self.rest.get_mut(key - 1),
        }
    }

    fn try_remove(&mut self, key: usize) -> Option<Waker> {
        match key {
            0 => self.first.take(),
            key => self.rest.try_remove(key - 1),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    /// Wakes every waiter (no lock is held: a waker is user code).
    pub(super) fn wake_all(self) {
        if let Some(first) = self.first {
            first.wake();
        }
        for (_, waker) in self.rest {
            waker.wake();
        }
    }
}

/// The task that fires a node's deadline for its after-funcs: the runtime it runs on, and a
/// token that the task holds, so that a task dropped with its runtime (or that panicked, on a
/// runtime without a time driver) is seen to be gone.
pub(super) struct TimerTask {
    runtime: tokio::runtime::Id,
    alive: std::sync::Weak<()>,
}

/// An after-func as the tree sees it; see [`crate::after_func`].
pub(crate) type AfterEntry = std::sync::Arc<dyn AfterRun>;

pub(crate) trait AfterRun: Send + Sync {
    /// Runs the function unless it already started or was stopped.
    fn run(&self);
}

/// A node borrowed for `'a` through the pointer of an `Arc<Node>` (from `Arc::into_raw`) that
/// somebody keeps alive at least that long: a [`Context`](crate::Context) or a lazy child
/// (`crate::lazy`). Unlike a `&Node`, it can make a new `Arc` (the pointer keeps the provenance
/// of the whole allocation, reference counts included).
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    ptr: NonNull<Node>,
    _node: PhantomData<&'a Node>,
}

impl<'a> NodeRef<'a> {
    /// # Safety
    ///
    /// `ptr` is null or came from `Arc::into_raw` of an `Arc<Node>`, and that reference is not
    /// given up during `'a` (invariant 9 of `tree`).
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: *const Node) -> Option<NodeRef<'a>> {
        NonNull::new(ptr.cast_mut()).map(|ptr| NodeRef {
            ptr,
            _node: PhantomData,
        })
    }

    /// # Safety
    ///
    /// As for [`from_raw`](Self::from_raw), and `ptr` is not null.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked(ptr: *const Node) -> NodeRef<'a> {
        NodeRef {
            // SAFETY: not null, as the caller promises (`# Safety`); the rest is invariant 9.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) },
            _node: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn get(self) -> &'a Node {
        // SAFETY: invariant 9 (`from_raw`'s contract): the node is alive for `'a`.
        unsafe { self.ptr.as_ref() }
    }

    /// The pointer, as `Arc::into_raw` gave it.
    #[inline]
    pub(crate) fn as_ptr(self) -> *const Node {
        self.ptr.as_ptr()
    }

    /// A new strong reference to the node.
    #[inline]
    pub(crate) fn to_arc(self) -> Arc<Node> {
        // SAFETY: invariants 7 and 9: the pointer came from `Arc::into_raw` and its reference is
        // alive (`from_raw`'s contract), so the count is at least 1 while it is incremented, and
        // the new count is the one the returned `Arc` gives back.
        unsafe {
            Arc::increment_strong_count(self.as_ptr());
            Arc::from_raw(self.as_ptr())
        }
    }
}

impl Deref for NodeRef<'_> {
    type Target = Node;

    #[inline]
    fn deref(&self) -> &Node {
        self.get()
    }
}

impl Node {
    fn with_state(
        code: u8,
        cause: Option<Cause>,
        origin: Loc,
        deadline: Option<Instant>,
    ) -> Arc<Node> {
        Arc::new(Node {
            state: AtomicU8::new(code | SETTLED),
            has_afters: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            flags: 0,
            deadline,
            slot: AtomicU32::new(0),
            parent: None,
            shared: Mutex::new(Shared {
                children: Children::new(),
                extra: cause.map(|cause| {
                    Box::new(Extra {
                        cause: Some(cause),
                        ..Extra::default()
                    })
                }),
                origin,
            }),
        })
    }

    /// Derives a node below `parent` (or a root), with an optional own deadline.
    ///
    /// `now` may already hold a clock reading (`with_timeout` took one to compute the deadline).
    /// `origin` is where the node is made (the user's call).
    pub(crate) fn derive(
        parent: Option<NodeRef<'_>>,
        own_deadline: Option<Instant>,
        deadline_cause: Option<Cause>,
        origin: Loc,
        mut now: Now,
    ) -> Arc<Node> {
        let inherited = parent.and_then(|p| p.deadline);
        let (deadline, owns_deadline) = match (own_deadline, inherited) {
            // The parent's deadline is no later: the child ends with the parent.
            (Some(own), Some(inherited)) if inherited <= own => (Some(inherited), false),
            (Some(own), _) => (Some(own), true),
            (None, inherited) => (inherited, false),
        };
        if let Some(parent) = parent
            && parent.check(&mut now).is_some()
        {
            // Born ended as the parent did; or, when the parent is still live because the end
            // of an ancestor is walking down to it (this runs inside that walk: a waker, a
            // cause's `Drop`), as that ancestor did, which is how the walk will end the parent.
            let (how, cause, origin) = match (parent.state(), parent.ending_ancestor()) {
                (None, Some(ancestor)) => ancestor.ended_with(),
                _ => parent.ended_with(),
            };
            return Node::with_state(how, cause, origin, deadline);
        }
        if owns_deadline && deadline.is_some_and(|d| now.get() >= d) {
            return Node::with_state(DEADLINE, deadline_cause, origin, deadline);
        }
        let node = Arc::new(Node {
            state: AtomicU8::new(LIVE),
            has_afters: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            flags: if owns_deadline { OWNS_DEADLINE } else { 0 },
            deadline,
            slot: AtomicU32::new(0),
            parent: parent.map(NodeRef::to_arc),
            shared: Mutex::new(Shared {
                children: Children::new(),
                extra: deadline_cause.filter(|_| owns_deadline).map(|cause| {
                    Box::new(Extra {
                        deadline_cause: Some(cause),
                        ..Extra::default()
                    })
                }),
                origin,
            }),
        });
        if let Some(parent) = parent {
            parent.adopt(&node, &mut now);
        }
        node
    }

    /// Makes `node`, just made with `self` as its parent, an entry in `self`'s children; or,
    /// if `self` ended between the caller's check and this lock, ends `node` as `self` ended.
    #[inline]
    fn adopt(&self, node: &Arc<Node>, now: &mut Now) {
        let mut shared = lock(&self.shared);
        if self.state.load(Ordering::Relaxed) == LIVE {
            node.slot
                .store(shared.children.len() as u32, Ordering::Relaxed);
            shared.children.push(node.clone());
        } else {
            let code = self.state.load(Ordering::Relaxed) & HOW;
            let cause = shared.extra.as_ref().and_then(|e| e.cause.clone());
            let origin = shared.origin;
            drop(shared);
            node.end(code, cause, Some(origin), now, false);
        }
    }

    /// Derives the node of a lazy child (`crate::lazy`), which existed before it had a node:
    /// as `derive`, except when `parent` has already ended and the child has a deadline of its
    /// own earlier than the parent's (the only case where what an earlier node would have
    /// ended with depends on *when* the parent ended). The parent ended at its deadline, after
    /// the child's, if it ended with `DeadlineExceeded`; if it was cancelled, at `root`'s
    /// recorded cancel (the cancel of a lazy child's parent node comes from its root, which
    /// such a child watches). An own deadline that came first ends the child with
    /// `DeadlineExceeded` and no cause, as `finish` would have; else the parent's end.
    pub(crate) fn derive_lazy(
        parent: Option<NodeRef<'_>>,
        own_deadline: Option<Instant>,
        root: Option<NodeRef<'_>>,
        origin: Loc,
        mut now: Now,
    ) -> Arc<Node> {
        if let (Some(parent), Some(own)) = (parent, own_deadline)
            && parent.deadline.is_none_or(|inherited| own < inherited)
        {
            let own_came_first = match parent.check(&mut now) {
                None => false,
                Some(Error::DeadlineExceeded) => true,
                // Recorded, since the child watched its root while live (a root that had
                // ended by then made the child's node at birth, with `derive`). If it were not,
                // the parent's end is the answer for a child derived after it.
                Some(Error::Canceled) => root
                    .and_then(|root| root.cancelled_at())
                    .is_some_and(|at| own <= at),
            };
            if own_came_first {
                return Node::with_state(DEADLINE, None, origin, own_deadline);
            }
        }
        Node::derive(parent, own_deadline, None, origin, now)
    }

    /// Asks this node to record the clock reading of a cancel that ends it (see `watched`).
    /// False if it has ended without being asked before. Takes the lock the first time only.
    #[inline]
    pub(crate) fn watch(&self) -> bool {
        if self.watched.load(Ordering::Relaxed) {
            return true;
        }
        let _shared = lock(&self.shared);
        let live = self.state.load(Ordering::Relaxed) == LIVE;
        if live {
            self.watched.store(true, Ordering::Relaxed);
        }
        live
    }

    /// The clock reading of the cancel that ended this node, if it was watched by then.
    pub(crate) fn cancelled_at(&self) -> Option<Instant> {
        lock(&self.shared).extra.as_ref()?.cancelled_at
    }

    /// Whether ending this node can be skipped when the caller holds its only reference: no
    /// after-func was ever registered (waiters, children and parents all hold references).
    #[inline]
    pub(super) fn end_unobservable(&self) -> bool {
        !self.has_afters.load(Ordering::Relaxed)
    }

    /// The effective deadline of the chain.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The node's error, ending it first if its deadline has passed unobserved.
    #[inline]
    pub(crate) fn check(&self, now: &mut Now) -> Option<Error> {
        match self.state.load(Ordering::Acquire) {
            LIVE => match self.deadline {
                Some(deadline) if now.get() >= deadline => Some(self.expire(now)),
                _ => None,
            },
            code => Error::from_code(code),
        }
    }

    /// The error, without consulting the clock.
    #[inline]
    pub(crate) fn state(&self) -> Option<Error> {
        Error::from_code(self.state.load(Ordering::Acquire))
    }

    /// The cause the node ended with, if it has ended and one was recorded.
    pub(crate) fn stored_cause(&self) -> Option<Cause> {
        lock(&self.shared).extra.as_ref()?.cause.clone()
    }

    /// How an ended node ended (its state's [`HOW`] bits), its stored cause and its origin's
    /// location, read together: what a child derived after the end is born with.
    pub(super) fn ended_with(&self) -> (u8, Option<Cause>, Loc) {
        let shared = lock(&self.shared);
        let how = self.state.load(Ordering::Relaxed) & HOW;
        let cause = shared.extra.as_ref().and_then(|e| e.cause.clone());
        (how, cause, shared.origin)
    }

    /// `origin()`: `None` while live (as far as this node knows: check it first). A node still
    /// live while the end of an ancestor walks down to it (see [`Node::expire`]) answers with
    /// that ancestor's origin, as it answers with its reason and cause.
    pub(crate) fn origin(&self) -> Option<Origin> {
        let how = self.state.load(Ordering::Acquire) & HOW;
        let kind = match how & REASON {
            LIVE => return self.ending_ancestor().and_then(Node::origin),
            DEADLINE => OriginKind::Deadline,
            _ if how & DROPPED != 0 => OriginKind::Drop,
            _ => OriginKind::Cancel,
        };
        // Fixed by the end that set the state (under the lock, before the state was stored).
        Some(Origin::new(kind, lock(&self.shared).origin))
    }

    /// `cause()`: `None` while live.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let err = self.check(&mut Now::default())?;
        Some(self.end_cause().unwrap_or_else(|| std::sync::Arc::new(err)))
    }

    /// The nearest ancestor that has ended, while this node is still live: the one whose end
    /// is walking down to it.
    pub(super) fn ending_ancestor(&self) -> Option<&Node> {
        let mut node = self.parent.as_deref();
        while let Some(parent) = node {
            if parent.state().is_some() {
                return Some(parent);
            }
            node = parent.parent.as_deref();
        }
        None
    }

    /// The cause this node ended (or is ending) with, if one was recorded: its own, or, while
    /// an end is still walking down to it, that of the ancestor whose end it is.
    fn end_cause(&self) -> Option<Cause> {
        match self.state() {
            Some(_) => self.stored_cause(),
            None => self.ending_ancestor().and_then(Node::stored_cause),
        }
    }

    /// A live merged node's second parent.
    pub(super) fn second_parent(&self) -> Option<Arc<Node>> {
        let shared = lock(&self.shared);
        Some(shared.extra.as_ref()?.second.as_ref()?.0.clone())
    }

    /// Derives a node below two parents (`Context::merge`): a child of `first` (or a root)
    /// that is also a child of `second`, in `second`'s `merged`. Its deadline is the earlier of
    /// theirs, inherited (never its own): `expire` finds the owner through the parent whose
    /// deadline it is. Born ended if either parent has ended (`first` checked first).
    pub(crate) fn merge(
        first: Option<NodeRef<'_>>,
        second: NodeRef<'_>,
        origin: Loc,
        mut now: Now,
    ) -> Arc<Node> {
        let deadline = match (first.and_then(|p| p.deadline), second.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for parent in first.into_iter().chain([second]) {
            if parent.check(&mut now).is_some() {
                let (how, cause, origin) = parent.ended_with();
                return Node::with_state(how, cause, origin, deadline);
            }
        }
        let node = Arc::new(Node {
            state: AtomicU8::new(LIVE),
            has_afters: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            flags: MERGED,
            deadline,
            slot: AtomicU32::new(0),
            parent: first.map(NodeRef::to_arc),
            shared: Mutex::new(Shared {
                children: Children::new(),
                extra: None,
                origin,
            }),
        });
        // 1. The entry in the second parent: nobody else knows the node yet, so only the second
        // parent's end can reach it, through that entry.
        let key = {
            let mut shared = lock(&second.shared);
            if second.state.load(Ordering::Relaxed) == LIVE {
                let extra = shared.extra.get_or_insert_with(Box::default);
                Some(extra.merged.insert(node.clone()))
            } else {
                // Ended between the check above and this lock: end with it.
                let code = second.state.load(Ordering::Relaxed) & HOW;
                let cause = shared.extra.as_ref().and_then(|e| e.cause.clone());
                let origin = shared.origin;
                drop(shared);
                node.end(code, cause, Some(origin), &mut now, false);
                None
            }
        };
        let Some(key) = key else {
            return node;
        };
        // 2. Where that entry is, for the node's own end to take it out; unless the second
        // parent's end has already ended the node (and taken the entry).
        let live = {
            let mut shared = lock(&node.shared);
            let live = node.state.load(Ordering::Relaxed) == LIVE;
            if live {
                let extra = shared.extra.get_or_insert_with(Box::default);
                extra.second = Some((second.to_arc(), key));
            }
            live
        };
        if !live {
            return node;
        }
        // 3. The entry in the first parent, as `derive` makes it. From here on the node is an
        // ordinary child of both: whichever end comes first (a parent's, its own) ends it and
        // takes both entries out.
        if let Some(parent) = first {
            parent.adopt(&node, &mut now);
        }
        node
    }

    /// Registers a waker for `done()`; returns the error instead if the node has ended.
    ///
    /// `key` is the waiter's slot, kept by the waiter between polls.
    pub(crate) fn register_waiter(&self, key: &mut Option<usize>, waker: &Waker) -> Option<Error> {
        let waker = waker.clone();
        let mut shared = lock(&self.shared);
        if let Some(err) = self.state() {
            return Some(err);
        }
        let waiters = &mut shared.extra.get_or_insert_with(Box::default).waiters;
        let old = match key.and_then(|k| waiters.get_mut(k)) {
            Some(slot) if slot.will_wake(&waker) => Some(waker),
            Some(slot) => Some(std::mem::replace(slot, waker)),
            None => {
                *key = Some(waiters.insert(waker));
                None
            }
        };
        drop(shared);
        drop(old);
        None
    }

    /// Forgets a waiter (its `Done` was dropped or completed).
    pub(crate) fn remove_waiter(&self, key: usize) {
        let removed = lock(&self.shared)
            .extra
            .as_mut()
            .and_then(|extra| extra.waiters.try_remove(key));
        drop(removed);
    }

    /// Registers an after-func. Returns its key, or gives it back if the node has ended (the
    /// caller then runs it).
    ///
    /// `runtime` is the runtime current at the registration (looked up only for a node with a
    /// deadline). With it comes a token if a task that fires the deadline must be spawned on
    /// that runtime: none is known to be running there, because none was spawned yet, the last
    /// one is gone (its runtime was dropped, or it panicked on a runtime without a time
    /// driver), or it runs on another runtime, which may be dropped before the deadline. The
    /// task holds the token while it lives.
    pub(crate) fn register_after(
        &self,
        entry: AfterEntry,
        runtime: Option<tokio::runtime::Id>,
    ) -> Result<(usize, Option<std::sync::Arc<()>>), AfterEntry> {
        let mut shared = lock(&self.shared);
        if self.state().is_some() {
            return Err(entry);
        }
        self.has_afters.store(true, Ordering::Relaxed);
        let extra = shared.extra.get_or_insert_with(Box::default);
        let key = extra.afters.insert(entry);
        let token = match runtime {
            Some(runtime) if self.deadline.is_some() => {
                let running = extra.timer.as_ref().is_some_and(|timer| {
                    timer.runtime == runtime && timer.alive.strong_count() > 0
                });
                (!running).then(|| {
                    let token = std::sync::Arc::new(());
                    extra.timer = Some(TimerTask {
                        runtime,
                        alive: std::sync::Arc::downgrade(&token),
                    });
                    token
                })
            }
            _ => None,
        };
        Ok((key, token))
    }

    /// Forgets a stopped after-func.
    pub(crate) fn remove_after(&self, key: usize, entry: &AfterEntry) {
        let removed = {
            let mut shared = lock(&self.shared);
            match shared.extra.as_mut() {
                Some(extra)
                    if extra
                        .afters
                        .get(key)
                        .is_some_and(|e| std::sync::Arc::ptr_eq(e, entry)) =>
                {
                    Some(extra.afters.remove(key))
                }
                _ => None,
            }
        };
        drop(removed);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Unlink the parent chain in a loop, so that dropping the leaf of a chain of a million
        // contexts does not recurse a million times.
        let mut next = self.parent.take();
        while let Some(parent) = next {
            match Arc::try_unwrap(parent) {
                Ok(mut parent) => next = parent.parent.take(),
                Err(_) => break,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_node_fits_the_memory_budget() {
        // A live child may cost at most 256 bytes, its entry in the parent included (rule 4 of
        // the crate docs); the goal is 96 for the node (a chained context's whole cost, its
        // entry being inline in its parent) and 104 with a separate entry in the parent (one
        // pointer). The node was 72 bytes until it recorded its end's origin: one `&'static
        // Location` (8 bytes), since a cancel's call site is known only at the cancel and must
        // be kept without allocating; no field had room for it (the only padding is 3 bytes
        // inside `Mutex`).
        let arc_inner = 2 * size_of::<usize>() + size_of::<Node>();
        println!(
            "Node: {} bytes, with Arc counts: {arc_inner}",
            size_of::<Node>()
        );
        assert!(arc_inner <= 96, "{arc_inner}");
        assert!(arc_inner + size_of::<usize>() <= 104, "{arc_inner}");
    }
}
