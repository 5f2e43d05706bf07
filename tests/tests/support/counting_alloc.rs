//! A counting global allocator for the test binaries that measure memory (`memory.rs`,
//! `model.rs`, `stress.rs`): each includes this file with `mod support;`, so each binary gets
//! its own counters. Not every binary reads every counter.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Bytes allocated and not yet freed.
pub(crate) static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Allocations made (reallocations included).
pub(crate) static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// The live bytes now.
pub(crate) fn live() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are plain
// atomics and do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
