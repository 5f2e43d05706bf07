//! The cancellation tree: one [`Node`] per context made by `with_cancel`, `with_deadline` or
//! `with_timeout`. Contexts made by `with_value` and `without_cancel` share their nearest node
//! (or have none), so they cost no node of their own.
//!
//! # Invariants
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
//! # Deadlock safety
//!
//! At most one lock is held at any time.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::task::Waker;

use slab::Slab;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::error::{CANCELED, Cause, DEADLINE, Error, LIVE, REASON, SETTLED};
use crate::sync::{Arc, AtomicBool, AtomicU8, AtomicU32, Mutex, Ordering, lock, yield_now};

type Children = SmallVec<[Arc<Node>; 1]>;

pub(crate) struct Node {
    /// [`LIVE`], [`CANCELED`] or [`DEADLINE`]; written only under `shared`'s lock.
    state: AtomicU8,
    /// An after-func was registered: ending this node may run user code, so it must not be
    /// skipped even when nobody else holds the node (see `CancelHandle`'s `Drop`).
    has_afters: AtomicBool,
    /// A lazy child (`crate::lazy`) with a deadline of its own may need to know when this node
    /// was cancelled: its end records the clock reading (`Extra::cancelled_at`). Set only while
    /// live, under `shared`'s lock, and never cleared, so the end (which holds the lock) sees it.
    watched: AtomicBool,
    owns_deadline: bool,
    /// The effective (earliest) deadline of the chain.
    deadline: Option<Instant>,
    /// Index in the parent's `children`; read and written only under the parent's lock. (A
    /// parent with 2^32 live children would need over 300 GiB for them.)
    slot: AtomicU32,
    parent: Option<Arc<Node>>,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    children: Children,
    /// Allocated the first time something besides children needs room.
    extra: Option<Box<Extra>>,
}

#[derive(Default)]
struct Extra {
    /// The cause given with `with_deadline_cause`, used if the deadline ends the node.
    deadline_cause: Option<Cause>,
    /// The cause the node ended with, when one was given (else `cause()` is the `Error`).
    cause: Option<Cause>,
    waiters: Slab<Waker>,
    afters: Slab<AfterEntry>,
    /// The task that fires the deadline for after-funcs, if one was spawned (see
    /// [`Node::register_after`]).
    timer: Option<TimerTask>,
    /// The clock reading of the end, if it was a cancel (not a deadline) of a `watched` node.
    cancelled_at: Option<Instant>,
}

/// The task that fires a node's deadline for its after-funcs: the runtime it runs on, and a
/// token that the task holds, so that a task dropped with its runtime (or that panicked, on a
/// runtime without a time driver) is seen to be gone.
struct TimerTask {
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
    /// given up during `'a`.
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
            // SAFETY: not null (the caller's word).
            ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) },
            _node: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn get(self) -> &'a Node {
        // SAFETY: `from_raw`'s contract: the node is alive for `'a`.
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
        // SAFETY: the pointer came from `Arc::into_raw` and its reference is alive (`from_raw`'s
        // contract), so the count is at least 1 while it is incremented, and the new count is
        // the one the returned `Arc` gives back.
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

/// One clock reading per operation, taken only if a deadline needs it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Now(Option<Instant>);

impl Now {
    /// A reading taken just now.
    pub(crate) fn reading(now: Instant) -> Now {
        Now(Some(now))
    }

    /// `reading` if one was taken, else a reading taken when first needed.
    pub(crate) fn maybe(reading: Option<Instant>) -> Now {
        Now(reading)
    }

    /// A reading known to be no earlier than `at` (a timer for `at` has fired).
    pub(crate) fn at_least(at: Instant) -> Now {
        Now(Some(Instant::now().max(at)))
    }

    #[inline]
    pub(crate) fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// What an end takes out of a node under its lock, to be handled after the lock is released.
struct Taken {
    code: u8,
    cause: Option<Cause>,
    /// `None` when there were none: most nodes end childless.
    children: Option<Children>,
    /// `None` when there were none: most nodes end with nobody waiting.
    told: Option<Told>,
}

/// The waiters and after-funcs of an ended node.
struct Told {
    waiters: Slab<Waker>,
    afters: Slab<AfterEntry>,
}

/// Work for the iterative subtree walk: children to end with their parent's reason and cause.
type Work = (Children, u8, Option<Cause>);

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

impl Node {
    fn with_state(code: u8, cause: Option<Cause>, deadline: Option<Instant>) -> Arc<Node> {
        Arc::new(Node {
            state: AtomicU8::new(code | SETTLED),
            has_afters: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            owns_deadline: false,
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
            }),
        })
    }

    /// Derives a node below `parent` (or a root), with an optional own deadline.
    ///
    /// `now` may already hold a clock reading (`with_timeout` took one to compute the deadline).
    pub(crate) fn derive(
        parent: Option<NodeRef<'_>>,
        own_deadline: Option<Instant>,
        deadline_cause: Option<Cause>,
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
            && let Some(err) = parent.check(&mut now)
        {
            let cause = parent.end_cause();
            return Node::with_state(err.code(), cause, deadline);
        }
        if owns_deadline && deadline.is_some_and(|d| now.get() >= d) {
            return Node::with_state(DEADLINE, deadline_cause, deadline);
        }
        let node = Arc::new(Node {
            state: AtomicU8::new(LIVE),
            has_afters: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            owns_deadline,
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
            }),
        });
        if let Some(parent) = parent {
            let mut shared = lock(&parent.shared);
            if parent.state.load(Ordering::Relaxed) == LIVE {
                node.slot
                    .store(shared.children.len() as u32, Ordering::Relaxed);
                shared.children.push(node.clone());
            } else {
                // The parent ended between the check above and this lock: end with it.
                let code = parent.state.load(Ordering::Relaxed) & REASON;
                let cause = shared.extra.as_ref().and_then(|e| e.cause.clone());
                drop(shared);
                node.end(code, cause, &mut now, false);
            }
        }
        node
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
                return Node::with_state(DEADLINE, None, own_deadline);
            }
        }
        Node::derive(parent, own_deadline, None, now)
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
    pub(crate) fn end_unobservable(&self) -> bool {
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

    /// `cause()`: `None` while live.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let err = self.check(&mut Now::default())?;
        Some(self.end_cause().unwrap_or_else(|| std::sync::Arc::new(err)))
    }

    /// The handle's cancel: ends the node and its subtree with `Canceled` and `cause`, unless it
    /// has already ended or its deadline has already passed (then it ends by the deadline).
    pub(crate) fn cancel(&self, cause: Option<Cause>) {
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
            self.end(CANCELED, cause, &mut now, true);
        }
    }

    /// The effective deadline has passed (`now` is at or past it): ends the node that owns it,
    /// which ends this one with it, and returns the error this node ended with.
    pub(crate) fn expire(&self, now: &mut Now) -> Error {
        let mut owner = self;
        while !owner.owns_deadline {
            match owner.parent.as_deref() {
                Some(parent) => owner = parent,
                // Unreachable by invariant: an inherited deadline has an owner above. Ending
                // this node is still the right outcome.
                None => break,
            }
        }
        owner.end(DEADLINE, None, now, true);
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

    /// The nearest ancestor that has ended, while this node is still live: the one whose end
    /// is walking down to it.
    fn ending_ancestor(&self) -> Option<&Node> {
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

    /// Ends this node (unless it already ended) and then its whole subtree. When it returns,
    /// the subtree has ended, whichever thread ended it (see [`Node::wait_settled`]).
    ///
    /// `unregister` is false only when the parent has already taken this node out of its list.
    fn end(&self, code: u8, cause: Option<Cause>, now: &mut Now, unregister: bool) {
        let Some(taken) = self.finish(code, cause, now) else {
            if Walk::may_wait(0) {
                self.wait_settled();
            }
            return;
        };
        if taken.children.is_none() && taken.told.is_none() {
            // The common end (a request's context, ended by its own handle): nobody to tell and
            // nothing below, so no walk.
            drop(taken);
            if unregister {
                self.unregister();
            }
            return;
        }
        let walk = Walk::enter();
        let may_wait = Walk::may_wait(1);
        let mut afters: Vec<AfterEntry> = Vec::new();
        let mut stack: Vec<Work> = Vec::new();
        // The nodes of the subtree that had children: they are settled once the whole walk is
        // over, which is after each one's own subtree has ended (8 bytes each, where a
        // post-order marker on the stack would take a whole `Work`).
        let mut inner: Vec<Arc<Node>> = Vec::new();
        let has_children = taken.children.is_some();
        if has_children {
            // The clock reading the descendants' own deadlines are checked against is the one
            // of this end, taken now that it is decided, not when the walk first meets a
            // deadline: user code run in the walk (wakers, below) or a wide subtree can take
            // long, and a deadline that passes meanwhile came after this end.
            now.get();
        }
        taken.release(&mut afters, &mut stack);
        while let Some((children, code, cause)) = stack.pop() {
            for child in children {
                match child.finish(code, cause.clone(), now) {
                    Some(taken) => {
                        let has_children = taken.children.is_some();
                        taken.release(&mut afters, &mut stack);
                        if has_children {
                            inner.push(child);
                        }
                    }
                    // Another thread ended this child first and is ending its subtree.
                    None if may_wait => child.wait_settled(),
                    None => {}
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
        drop(walk);
        // Every node of the subtree has ended before any after-func runs.
        for after in afters {
            after.run();
        }
    }

    /// The critical section of an end: under the lock, if the node is still live, fix its
    /// reason and cause and take out everything that must be told.
    fn finish(&self, code: u8, cause: Option<Cause>, now: &mut Now) -> Option<Taken> {
        // Read before locking: the clock is not to be read under the lock.
        let own_deadline_passed =
            self.owns_deadline && self.deadline.is_some_and(|d| now.get() >= d);
        let mut shared = lock(&self.shared);
        if self.state.load(Ordering::Relaxed) != LIVE {
            return None;
        }
        let (code, cause) = if own_deadline_passed {
            // This node's own deadline came first: it wins over whatever ends it now.
            let cause = shared.extra.as_mut().and_then(|e| e.deadline_cause.take());
            (DEADLINE, cause)
        } else {
            (code & REASON, cause)
        };
        if code == CANCELED && self.watched.load(Ordering::Relaxed) {
            record_cancel(&mut shared, now);
        }
        // Most nodes end with no cause, waiter or after-func: they never allocate `Extra`.
        let told = match (shared.extra.as_mut(), &cause) {
            (Some(extra), _) => {
                extra.cause = cause.clone();
                (!extra.waiters.is_empty() || !extra.afters.is_empty()).then(|| Told {
                    waiters: std::mem::take(&mut extra.waiters),
                    afters: std::mem::take(&mut extra.afters),
                })
            }
            (None, Some(cause)) => {
                shared.extra = Some(Box::new(Extra {
                    cause: Some(cause.clone()),
                    ..Extra::default()
                }));
                None
            }
            (None, None) => None,
        };
        let children = (!shared.children.is_empty()).then(|| std::mem::take(&mut shared.children));
        // A node without children has nothing more to end: it is settled at once.
        let settled = if children.is_none() { SETTLED } else { 0 };
        self.state.store(code | settled, Ordering::Release);
        drop(shared);
        Some(Taken {
            code,
            cause,
            children,
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
    fn release(self, afters: &mut Vec<AfterEntry>, stack: &mut Vec<Work>) {
        if let Some(told) = self.told {
            for (_, waker) in told.waiters {
                waker.wake();
            }
            afters.extend(told.afters.into_iter().map(|(_, after)| after));
        }
        if let Some(children) = self.children {
            stack.push((children, self.code, self.cause));
        }
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
        // API rule 4 allows 256 bytes for a live child, its entry in the parent included; the
        // goal is under 96. The entry in the parent is one pointer (inline for the first child).
        let arc_inner = 2 * size_of::<usize>() + size_of::<Node>();
        println!(
            "Node: {} bytes, with Arc counts: {arc_inner}",
            size_of::<Node>()
        );
        assert!(arc_inner + size_of::<usize>() <= 96, "{arc_inner}");
    }
}
