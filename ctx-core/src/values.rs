//! Request-scoped values: an immutable linked list shared by every context derived below the
//! `with_value` that added it.

use std::any::{Any, TypeId};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub(crate) type Values = Arc<ValueNode<dyn Any + Send + Sync>>;

pub(crate) struct ValueNode<T: ?Sized> {
    key: TypeId,
    /// One bit per key type on the list from here down (a 64-bit Bloom filter): a type whose
    /// bit is clear is not on the list, so most misses cost one load, however long the list.
    mask: u64,
    next: Option<Values>,
    value: T,
}

/// The bit of a key type in `ValueNode::mask`.
#[inline]
fn bit(key: TypeId) -> u64 {
    /// Keeps what `TypeId`'s `Hash` writes (already a hash of the type).
    struct Keep(u64);
    impl Hasher for Keep {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 ^= n;
        }
    }
    let mut hasher = Keep(0);
    key.hash(&mut hasher);
    // The top 6 bits of a multiplicative hash pick one of 64 bits.
    1 << (hasher.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

pub(crate) fn push<T: Send + Sync + 'static>(next: Option<Values>, value: T) -> Values {
    let key = TypeId::of::<T>();
    let mask = bit(key) | next.as_ref().map_or(0, |next| next.mask);
    Arc::new(ValueNode {
        key,
        mask,
        next,
        value,
    })
}

/// The nearest value of type `T` in the list.
#[inline]
pub(crate) fn find<T: 'static>(mut values: Option<&Values>) -> Option<&T> {
    let key = TypeId::of::<T>();
    if values?.mask & bit(key) == 0 {
        return None;
    }
    while let Some(node) = values {
        if node.key == key {
            return (&node.value as &dyn Any).downcast_ref::<T>();
        }
        values = node.next.as_ref();
    }
    None
}

/// How many values the list holds (for `Debug`).
pub(crate) fn len(mut values: Option<&Values>) -> usize {
    let mut n = 0;
    while let Some(node) = values {
        n += 1;
        values = node.next.as_ref();
    }
    n
}

impl<T: ?Sized> Drop for ValueNode<T> {
    fn drop(&mut self) {
        // Unlink in a loop so that a very long list does not recurse on drop.
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = match Arc::get_mut(&mut node) {
                Some(unique) => unique.next.take(),
                None => None,
            };
        }
    }
}
