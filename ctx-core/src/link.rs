//! What a [`Context`](crate::Context) refers to ([`Link`]): nothing, a node of the tree, or the
//! state of a lazy child (`crate::lazy`), in one tagged pointer.

use std::ptr;

use tokio::time::Instant;

use crate::error::{Cause, Error};
use crate::lazy::LazyState;
use crate::origin::Origin;
use crate::sync::Arc;
use crate::tree::{Clock, Node, NodeRef, Now};

/// The low bit of a lazy [`Link`]. A node pointer never has it: `Node`'s alignment is at least 8
/// (it holds an `Instant` and an `Arc`), and so is `LazyState`'s.
const LAZY: usize = 1;

const _: () = assert!(align_of::<Node>() > LAZY && align_of::<LazyState>() > LAZY);

/// What a [`Context`](crate::Context) refers to, in one pointer: nothing (`background()`,
/// `without_cancel()`), a node it holds a strong reference to (a pointer from `Arc::into_raw`),
/// or a lazy child's state (tagged with [`LAZY`]; holds nothing). See invariant 10 of `tree`.
pub(crate) struct Link(*const ());

/// A [`Link`], decoded.
pub(crate) enum Target<'a> {
    Background,
    Node(NodeRef<'a>),
    Lazy(&'a LazyState),
}

// SAFETY: invariants 10 and 11: a `Link` is an `Arc<Node>` (`Send + Sync`, as `Node` is),
// nothing, or a pointer to a `LazyState` (`Sync`, see its impl), reached only while the `Lazy`
// holding it is borrowed.
unsafe impl Send for Link {}
// SAFETY: as for `Send` (invariants 10 and 11).
unsafe impl Sync for Link {}

impl Link {
    /// Refers to nothing: `background()`.
    pub(crate) const NONE: Link = Link(ptr::null());

    /// Holds `node`'s strong reference.
    #[inline]
    pub(crate) fn from_arc(node: Arc<Node>) -> Link {
        Link(Arc::into_raw(node).cast())
    }

    pub(crate) fn lazy(state: &LazyState) -> Link {
        Link(
            ptr::from_ref(state)
                .cast::<()>()
                .map_addr(|addr| addr | LAZY),
        )
    }

    #[inline(always)]
    pub(crate) fn target(&self) -> Target<'_> {
        if self.0.addr() & LAZY != 0 {
            let state = self.0.map_addr(|addr| addr & !LAZY).cast::<LazyState>();
            // SAFETY: invariants 10 and 11: a tagged pointer points into the pinned `Lazy` whose
            // `Context` holds this link, and that `Context` is only ever borrowed from the `Lazy`.
            Target::Lazy(unsafe { &*state })
        } else if self.0.is_null() {
            Target::Background
        } else {
            // SAFETY: invariants 9 and 10: an untagged pointer that is not null came from
            // `Arc::into_raw`, and this link holds its reference until it is dropped, after this
            // borrow.
            Target::Node(unsafe { NodeRef::new_unchecked(self.0.cast()) })
        }
    }

    /// The node, made first if the link is a lazy child's.
    #[inline]
    pub(crate) fn node(&self) -> Option<NodeRef<'_>> {
        match self.target() {
            Target::Background => None,
            Target::Node(node) => Some(node),
            Target::Lazy(lazy) => Some(lazy.node(Now::default())),
        }
    }

    /// A link of an ordinary `Context` to the same node (made first if this is a lazy child's).
    #[inline]
    pub(crate) fn to_owned(&self) -> Link {
        match self.node() {
            Some(node) => Link::from_arc(node.to_arc()),
            None => Link::NONE,
        }
    }

    /// The error (`Context::err`): with a clock reading (`Clock::Read`), or without one on the
    /// first poll of a `race` just after the child was derived (which checked it with its own
    /// reading).
    #[inline(always)]
    pub(crate) fn check(&self, clock: Clock) -> Option<Error> {
        match self.target() {
            Target::Background => None,
            Target::Node(node) if clock == Clock::Read => node.check(&mut Now::default()),
            Target::Node(node) => node.state(),
            Target::Lazy(lazy) if clock == Clock::Read => lazy.check(&mut Now::default()),
            Target::Lazy(lazy) => lazy.state_at_birth(),
        }
    }

    /// The error without reading the clock (`Debug`).
    pub(crate) fn state(&self) -> Option<Error> {
        match self.target() {
            Target::Background => None,
            Target::Node(node) => node.state(),
            Target::Lazy(lazy) => lazy.state(),
        }
    }

    /// The node that records the end, once checked (with a clock reading) to have ended;
    /// `None` while live.
    fn ended(&self) -> Option<NodeRef<'_>> {
        let mut now = Now::default();
        match self.target() {
            Target::Background => None,
            Target::Node(node) => node.check(&mut now).map(|_| node),
            Target::Lazy(lazy) => {
                lazy.check(&mut now)?;
                lazy.made()
            }
        }
    }

    /// `Context::cause`.
    pub(crate) fn cause(&self) -> Option<Cause> {
        self.ended()?.cause()
    }

    /// `Context::origin`.
    pub(crate) fn origin(&self) -> Option<Origin> {
        self.ended()?.origin()
    }

    /// The effective deadline (`Context::deadline`).
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.target() {
            Target::Background => None,
            Target::Node(node) => node.deadline(),
            Target::Lazy(lazy) => lazy.deadline(),
        }
    }
}

impl Drop for Link {
    #[inline]
    fn drop(&mut self) {
        if let Target::Node(node) = self.target() {
            // SAFETY: invariant 10: the strong reference this link holds, given back once.
            drop(unsafe { Arc::from_raw(node.as_ptr()) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::lazy::Lazy;

    #[test]
    fn a_context_is_still_a_node_pointer_and_the_values() {
        // The link is one pointer, as `Option<Arc<Node>>` was; the values are a fat pointer.
        assert_eq!(size_of::<Link>(), size_of::<usize>());
        assert_eq!(size_of::<Context>(), 3 * size_of::<usize>());
        println!(
            "Lazy: {} bytes (its state: {})",
            size_of::<Lazy<'_>>(),
            size_of::<LazyState>()
        );
    }
}
