//! The lazily made child of a `#[cancellable]` call ([`Lazy`]).
//!
//! # The lazy child
//!
//! `#[cancellable(timeout = "5s")]` derives a child for every call, but most calls never need it
//! as a node of the tree: the body completes in its first poll, asks `ctx.err()` or
//! `ctx.deadline()`, or passes `ctx` down by reference. A [`Lazy`] holds the child as a parent
//! reference and a deadline, on the stack of the call, and makes the node (one allocation, a
//! registration in a live parent) only when something needs one: a clone, a derivation, a
//! `done()`, an after-func, a waiter (the body is pending), or an end to record. The context the
//! body sees is a [`Context`] inside the `Lazy` whose [`Link`] points back at the `Lazy`'s state
//! (a tagged pointer).
//!
//! Until it is made, the child's state is a function of its parent's and its own deadline: it
//! is live exactly when its *anchor* (the nearest ancestor that has a node) is live and no
//! deadline of the lazy children between the anchor and it (its own included) has passed. A
//! check that finds it live costs what an eager child's check costs (a load and, with a
//! deadline, a clock reading). A check that finds it ended makes the node (born ended, by
//! `Node::derive`, from the same clock reading), so that the end is recorded once, by the
//! tree's code, and every later observer sees the same reason and cause.
//!
//! # A parent that can be cancelled
//!
//! A lazy child knows its parent's state, not *when* the parent ended. That decides nothing as
//! long as the ancestors can end only at a deadline (`background()` and lazy children of it,
//! whose nodes are ended by their `Lazy`s only, after every lazy child below them is gone), or
//! the child has no deadline of its own earlier than its parent's (then its end is its parent's
//! end, whenever that was). But a child with an earlier deadline of its own below an ancestor
//! that can be *cancelled* (its *root*: the nearest one that is not a lazy child) must end with
//! `DeadlineExceeded` if its deadline came first and with the parent's reason otherwise (rule 1
//! of the crate docs: the first end wins), and finding both at one check would not say which came first. Such a child
//! *watches* its root (`Node::watch`: a flag, set under the root's lock the first time only),
//! whose cancel then records the clock reading it ended its subtree with, the one an eager
//! child would have been checked against; the child's node, made later, is derived with it
//! (`Node::derive_lazy`). A root that has already ended when the child is made is an ended
//! parent: the node is made at once, as an eager child's.
//!
//! # When the node is made at once
//!
//! When the child has already ended at birth (its parent has, or a zero timeout), checked with
//! the clock reading of the timeout as an eager child's derivation checks, or when its root has
//! ended before the child could watch it. A `race`'s first poll then needs no check of its own:
//! a child without a node was live at birth.
//!
//! # Soundness
//!
//! A lazy `Link` points into the `Lazy` that holds the `Context` carrying it. That `Context` is
//! reachable only as `&Context`, borrowed from the pinned `Lazy` ([`Lazy::context`]): it cannot
//! be moved out (a clone makes the node and returns an ordinary `Context`), and the borrow ends
//! before the `Lazy` can move or drop. So no lazy `Link` outlives its `Lazy`, and every
//! reference reached through one (the parent, whose borrow the `Lazy` holds for `'a`; the
//! nodes, kept alive by the parent or by the `Lazy` itself) is alive while it is used. Two
//! threads may race to make one child's node (both hold `&Context`; `LazyState::install`); a
//! making racing the `Lazy`'s drop cannot happen, as the drop needs the borrow to have ended.
//! These are invariants 11 and 12 of `crate::tree`, which the `SAFETY:` comments cite.

use std::fmt;
use std::marker::{PhantomData, PhantomPinned};
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::ptr;

use smallvec::SmallVec;
use tokio::time::{Duration, Instant};

use crate::context::Context;
use crate::error::Error;
use crate::link::{Link, Target};
use crate::sync::{Arc, AtomicPtr, Ordering};
use crate::tree::{Loc, Node, NodeRef, Now, release};

/// The state of a lazy child: everything its checks need, and the node once it is made.
pub(crate) struct LazyState {
    /// The parent context (`Lazy<'a>`'s `&'a Context`).
    parent: *const Context,
    /// The nearest ancestor that had a node when this state was created (null: none). Its
    /// state and the deadlines of `chain` decide whether the child is live.
    anchor: *const Node,
    /// The earliest own deadline of the lazy children from the one below `anchor` down to this
    /// one. The effective deadline is the earlier of it and the anchor's. It is also the
    /// deadline the node is derived with: when it is a lazy ancestor's rather than this child's
    /// own, the parent's node has that one or an earlier one, and the node inherits it, exactly
    /// as with the child's own.
    chain: Option<Instant>,
    /// The node of the nearest ancestor that is not a lazy child (null: `background()`): the
    /// only kind of node that can be *cancelled* while this child exists (a lazy child's node is
    /// ended by its `Lazy` only, after every lazy child below it is gone), and whose cancel
    /// therefore ends this child if its parent is cancelled. Watched (`Node::watch`) if this
    /// child has a deadline of its own.
    root: *const Node,
    /// The node, once made: a pointer from `Arc::into_raw`, whose reference the `Lazy` holds.
    node: AtomicPtr<Node>,
    /// Where the child was made: the `#[cancellable]` fn (the origin of its end).
    origin: Loc,
}

// SAFETY: the pointers stand for `&Context` and `&Node` (both `Sync`, so the references are
// `Send` and `Sync`), alive as invariant 12 says; the only field written after construction
// is an atomic.
unsafe impl Send for LazyState {}
// SAFETY: as for `Send` (invariant 12).
unsafe impl Sync for LazyState {}

impl LazyState {
    #[inline]
    fn parent(&self) -> &Context {
        // SAFETY: invariant 12: the parent is borrowed by the `Lazy` holding this state for
        // longer than the state can be reached.
        unsafe { &*self.parent }
    }

    #[inline]
    fn anchor(&self) -> Option<NodeRef<'_>> {
        // SAFETY: invariants 9 and 12: the anchor is the node of the parent (or of an ancestor),
        // or of the `Lazy` of an ancestor: it outlives this state, and its pointer came from
        // `Arc::into_raw`.
        unsafe { NodeRef::from_raw(self.anchor) }
    }

    #[inline]
    fn root(&self) -> Option<NodeRef<'_>> {
        // SAFETY: invariants 9 and 12: the node of the parent or of an ancestor, as for
        // `anchor`.
        unsafe { NodeRef::from_raw(self.root) }
    }

    /// The node, if it has been made.
    #[inline]
    pub(crate) fn made(&self) -> Option<NodeRef<'_>> {
        // SAFETY: invariants 9 and 12: set once, from `Arc::into_raw`; the `Lazy` gives its
        // reference up only when it is dropped, after every borrow of this state.
        unsafe { NodeRef::from_raw(self.node.load(Ordering::Acquire)) }
    }

    /// The effective deadline.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        earlier(
            self.chain,
            self.anchor().and_then(|anchor| anchor.deadline()),
        )
    }

    /// The child's error (`Context::err`), made into a node first if it has ended.
    pub(crate) fn check(&self, now: &mut Now) -> Option<Error> {
        if let Some(node) = self.made() {
            return node.check(now);
        }
        let anchor_live = self
            .anchor()
            .is_none_or(|anchor| anchor.check(now).is_none());
        if anchor_live && self.chain.is_none_or(|d| now.get() < d) {
            return None;
        }
        // Ended: the tree records how, once, for every observer.
        self.node(*now).check(now)
    }

    /// The check of a `race`'s first poll, just after the child was made: its state at birth,
    /// without reading the clock. A child that had ended at birth was made a node then.
    #[inline]
    pub(crate) fn state_at_birth(&self) -> Option<Error> {
        self.made()?.state()
    }

    /// The error without reading the clock (`Debug`).
    pub(crate) fn state(&self) -> Option<Error> {
        if let Some(node) = self.made() {
            return node.state();
        }
        self.anchor()?.state()?;
        self.node(Now::default()).state()
    }

    /// The node, made first (with `now` for the checks of the derivation) if need be.
    #[inline]
    pub(crate) fn node(&self, now: Now) -> NodeRef<'_> {
        match self.made() {
            Some(node) => node,
            None => self.make(now),
        }
    }

    /// Makes the node, and first those of the lazy ancestors that have none (nested
    /// `#[cancellable]` calls), top down, without recursion.
    #[cold]
    fn make(&self, now: Now) -> NodeRef<'_> {
        let mut pending: SmallVec<[&LazyState; 4]> = SmallVec::new();
        let mut lazy = self;
        let mut parent = loop {
            pending.push(lazy);
            match lazy.parent().node.target() {
                Target::Background => break None,
                Target::Node(node) => break Some(node),
                Target::Lazy(up) => match up.made() {
                    Some(node) => break Some(node),
                    None => lazy = up,
                },
            }
        };
        let mut made = None;
        while let Some(lazy) = pending.pop() {
            let node = lazy.install(parent, now);
            parent = Some(node);
            made = Some(node);
        }
        // `pending` held `self` at least.
        made.unwrap_or_else(|| unreachable!("a lazy child without a node after making it"))
    }

    /// Derives this child's node below `parent` and installs it, unless another thread did
    /// first (then this one's is ended, unobserved, and the winner's returned).
    fn install<'s>(&'s self, parent: Option<NodeRef<'_>>, now: Now) -> NodeRef<'s> {
        if let Some(node) = self.made() {
            return node;
        }
        let node = Node::derive_lazy(parent, self.chain, self.root(), self.origin, now);
        let mine = Arc::into_raw(node).cast_mut();
        match self
            .node
            .compare_exchange(ptr::null_mut(), mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: invariants 9 and 12: from `Arc::into_raw` just now; its reference is the
                // `Lazy`'s from now on, given up only when the `Lazy` is dropped.
                unsafe { NodeRef::from_raw(mine) }
            }
            Err(theirs) => {
                // SAFETY: invariant 12 (only an installed node's reference is the `Lazy`'s): `mine`
                // was not installed, so its reference is still ours to give back.
                let mine = unsafe { Arc::from_raw(mine) };
                // Nobody saw it, but it may be in its parent's list: end it like a handle does.
                release(&mine);
                drop(mine);
                // SAFETY: invariants 9 and 12: the winner's node, installed from `Arc::into_raw`
                // (as in `made`).
                unsafe { NodeRef::from_raw(theirs) }
            }
        }
        .unwrap_or_else(|| unreachable!("a null node pointer"))
    }
}

/// The child context of a `#[cancellable]` call with a `timeout` or a `deadline`, made into a node
/// of the tree only if the body needs one. Not public API: `#[cancellable]` expands to
///
/// ```text
/// let lazy = pin!(Lazy::timeout(parent, duration));
/// let ctx: &Context = Lazy::context(lazy);
/// ```
///
/// Dropping it ends the child (and every clone of it) as dropping a [`CancelHandle`] does: Go's
/// `defer cancel()`.
///
/// [`CancelHandle`]: crate::CancelHandle
pub struct Lazy<'a> {
    state: LazyState,
    /// The child as a `Context` (its link is set by `context`); shares the parent's values
    /// without a reference of its own, so it is never dropped.
    ctx: ManuallyDrop<Context>,
    _parent: PhantomData<&'a Context>,
    /// `ctx`'s link points at `state`.
    _pinned: PhantomPinned,
}

impl<'a> Lazy<'a> {
    /// `parent.with_timeout(timeout)`: a deadline `timeout` from now (none if that is too far
    /// to represent).
    ///
    /// The caller's location (the macro puts the call at the fn's name) is the origin of the
    /// child's end.
    #[inline]
    #[track_caller]
    pub fn timeout(parent: &'a Context, timeout: Duration) -> Lazy<'a> {
        let now = Instant::now();
        Lazy::new(
            parent,
            now.checked_add(timeout),
            Some(now),
            Location::caller(),
        )
    }

    /// `parent.with_deadline(deadline)`; the caller's location as for [`timeout`](Self::timeout).
    #[inline]
    #[track_caller]
    pub fn deadline(parent: &'a Context, deadline: Instant) -> Lazy<'a> {
        Lazy::new(parent, Some(deadline), None, Location::caller())
    }

    #[inline]
    fn new(
        parent: &'a Context,
        own: Option<Instant>,
        born: Option<Instant>,
        origin: Loc,
    ) -> Lazy<'a> {
        let (anchor, root, chain, parent_deadline) = match parent.node.target() {
            Target::Background => (None, None, own, None),
            Target::Node(node) => (Some(node), Some(node), own, node.deadline()),
            Target::Lazy(up) => match up.made() {
                Some(node) => (Some(node), up.root(), own, node.deadline()),
                None => (
                    up.anchor(),
                    up.root(),
                    earlier(own, up.chain),
                    up.deadline(),
                ),
            },
        };
        let owns = own.is_some_and(|own| parent_deadline.is_none_or(|inherited| own < inherited));
        // A deadline of its own below an ancestor that can be cancelled: that ancestor records
        // when it is cancelled, from now on (module docs). One that has ended already is as if
        // the child were derived from an ended parent: the node is made now.
        let root_ended = owns && root.is_some_and(|root| !root.watch());
        // The node is also made now if the child has ended at birth (checked with the clock
        // reading of the timeout, as an eager child's derivation checks), so that a `race`'s
        // first poll needs no check.
        let mut now = Now::maybe(born);
        let make = root_ended
            || anchor.is_some_and(|anchor| anchor.check(&mut now).is_some())
            || chain.is_some_and(|d| now.get() >= d);
        let node = if make {
            let node = Node::derive(parent.node.node(), chain, None, origin, now);
            Arc::into_raw(node).cast_mut()
        } else {
            ptr::null_mut()
        };
        Lazy {
            state: LazyState {
                parent,
                anchor: anchor.map_or(ptr::null(), NodeRef::as_ptr),
                root: root.map_or(ptr::null(), NodeRef::as_ptr),
                chain,
                node: AtomicPtr::new(node),
                origin,
            },
            ctx: ManuallyDrop::new(Context {
                node: Link::NONE,
                // SAFETY: invariant 12: a copy of the parent's values without a reference count
                // of its own: `ctx` is never dropped, and the parent (and so its values) outlives
                // it.
                values: unsafe { ptr::read(&parent.values) },
            }),
            _parent: PhantomData,
            _pinned: PhantomPinned,
        }
    }

    /// The child, as the `ctx` of the body.
    #[inline]
    pub fn context(self: Pin<&mut Self>) -> &Context {
        // SAFETY: invariants 10 and 11: nothing is moved out of the pinned value; `ctx`'s link
        // is pointed at `state`, which stays where it is until the `Lazy` is dropped (it is
        // pinned), and the returned borrow ends before that.
        let this = unsafe { self.get_unchecked_mut() };
        this.ctx.node = Link::lazy(&this.state);
        &this.ctx
    }
}

impl Drop for Lazy<'_> {
    #[inline]
    fn drop(&mut self) {
        let node = self.state.node.load(Ordering::Acquire);
        if !node.is_null() {
            // SAFETY: invariant 12: installed once from `Arc::into_raw`; this is the `Lazy`'s
            // reference, and no borrow of the child is left (`&mut self`).
            let node = unsafe { Arc::from_raw(node) };
            release(&node);
        }
    }
}

impl fmt::Debug for Lazy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy")
            .field("made", &self.state.made().is_some())
            .field("deadline", &self.state.deadline())
            .finish()
    }
}

/// The earlier of two optional deadlines (`None` is no deadline).
#[inline]
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
