//! A global allocator that keeps hostile length prefixes from aborting the
//! process.
//!
//! `kafka-protocol`'s decoders size a `Vec` from an array length read off
//! the wire before reading the elements. A frame claiming two billion
//! elements asks for tens of gigabytes; the system allocator refuses, and
//! Rust aborts the whole process (an allocation failure is not a panic that
//! `catch_unwind` could stop). The decode itself would fail a moment later,
//! when the frame runs out of bytes.
//!
//! [`LargeAllocGuard`] serves allocations of 256 MiB and more with
//! `mmap(MAP_NORESERVE)`: address space only, no memory committed until it
//! is touched. The doomed `Vec` costs nothing and is unmapped when the
//! decode fails. Everything smaller goes to the system allocator.
//!
//! The `runnel` binary installs it; a program that embeds
//! [`super::KafkaServer`] and serves untrusted clients should too:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: runnel_core::server::LargeAllocGuard = runnel_core::server::LargeAllocGuard;
//!
//! fn main() {
//!     let v: Vec<u64> = Vec::with_capacity(1 << 33); // 64 GiB of address space, nothing committed
//!     assert!(v.capacity() >= 1 << 33);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are mapped, not malloc'd.
const LARGE: usize = 256 << 20;

/// See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct LargeAllocGuard;

fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: small requests are forwarded to `System` unchanged. Large ones
// get fresh page-aligned anonymous mappings (alignment up to a page is
// honoured; larger alignments go to `System`), released with `munmap` of
// the same size, which `dealloc` receives through the layout.
unsafe impl GlobalAlloc for LargeAllocGuard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && layout.align() <= 4096 {
            map(layout.size())
        } else {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && layout.align() <= 4096 {
            // Anonymous mappings are zero-filled.
            map(layout.size())
        } else {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE && layout.align() <= 4096 {
            // SAFETY: `ptr` came from `map(layout.size())` above.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let mapped = |size: usize| size >= LARGE && layout.align() <= 4096;
        if !mapped(layout.size()) && !mapped(new_size) {
            // SAFETY: both sides are `System`'s; the contract is passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is non-zero and valid with this alignment (the
        // caller's contract for realloc).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both regions are valid for the smaller size and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_mapped_lazily_and_small_ones_round_trip() {
        let a = LargeAllocGuard;
        // 64 GiB of address space: far more than this machine has, and
        // harmless because nothing is touched but the first page.
        let big = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: a non-zero layout; the block is written within bounds and freed with the same layout.
        unsafe {
            let p = a.alloc(big);
            assert!(!p.is_null());
            *p = 7;
            assert_eq!(*p, 7);
            let q = a.realloc(p, big, 1 << 10);
            assert_eq!(*q, 7);
            let small = Layout::from_size_align(1 << 10, 8).unwrap();
            let r = a.realloc(q, small, LARGE);
            assert_eq!(*r, 7);
            a.dealloc(r, Layout::from_size_align(LARGE, 8).unwrap());
        }
    }
}
