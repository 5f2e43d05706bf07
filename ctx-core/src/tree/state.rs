//! A node's state in one byte: how it ended (the reason, and whether by a handle's drop), and
//! whether its subtree has ended too (invariants 1 and 6 of `tree`).

use crate::error::Error;

/// The node has not ended.
pub(crate) const LIVE: u8 = 0;
/// The reason of an end by a cancel ([`Error::Canceled`]).
pub(crate) const CANCELED: u8 = 1;
/// The reason of an end by a deadline ([`Error::DeadlineExceeded`]).
pub(crate) const DEADLINE: u8 = 2;
/// The reason bits of a node's state.
pub(crate) const REASON: u8 = 0b11;
/// Set once the node's whole subtree has ended (invariant 6 of `tree`).
pub(crate) const SETTLED: u8 = 0b100;
/// With [`CANCELED`]: the cancel was a handle's drop, not a call (`crate::OriginKind::Drop`).
pub(crate) const DROPPED: u8 = 0b1000;
/// The bits of a node's state that say how it ended: the reason, and whether by a drop.
pub(crate) const HOW: u8 = REASON | DROPPED;

impl Error {
    /// The error of an ended state; `None` for [`LIVE`].
    #[inline]
    pub(crate) fn from_code(code: u8) -> Option<Error> {
        match code & REASON {
            LIVE => None,
            CANCELED => Some(Error::Canceled),
            _ => Some(Error::DeadlineExceeded),
        }
    }
}
