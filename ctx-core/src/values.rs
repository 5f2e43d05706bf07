//! Request-scoped values: an immutable linked list shared by every context derived below the
//! `with_value` that added it.

use std::any::{Any, TypeId};
use std::sync::Arc;

pub(crate) type Values = Arc<ValueNode<dyn Any + Send + Sync>>;

pub(crate) struct ValueNode<T: ?Sized> {
    key: TypeId,
    next: Option<Values>,
    value: T,
}

pub(crate) fn push<T: Send + Sync + 'static>(next: Option<Values>, value: T) -> Values {
    Arc::new(ValueNode {
        key: TypeId::of::<T>(),
        next,
        value,
    })
}

/// The nearest value of type `T` in the list.
#[inline]
pub(crate) fn find<T: 'static>(mut values: Option<&Values>) -> Option<&T> {
    let key = TypeId::of::<T>();
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
