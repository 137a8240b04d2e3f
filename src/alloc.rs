//! The global allocator: jemalloc for everything under [`BIG`], the C
//! library's allocator for large blocks.
//!
//! Why jemalloc: measured in one session on the load script's workload, the
//! gateway's worker CPU per request was ~20% lower than with mimalloc and
//! ~35% lower than with glibc alone.
//!
//! Why split: a large zero-filled allocation through jemalloc (or
//! mimalloc) is zero-filled by hand, so every page becomes resident. sled
//! zero-fills ~20 MiB of latency histograms at start even with its metrics
//! off; through `calloc`, which gets fresh zero pages from the kernel, those
//! pages are never touched. Large blocks are rare on the request path (the
//! body limit buffer aside), so they lose nothing by going to the C library.
//!
//! Ownership is decided by the layout's size alone, which Rust passes to
//! `dealloc` and `realloc` unchanged, so a block is always freed by the
//! allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System};

/// jemalloc's start-up options (read before `main`). It keeps freed pages
/// for 10 s by default, so RSS after a burst stayed at its peak (measured:
/// 335 MiB after the load test's c=32 run); a background thread now returns
/// them after 1 s of disuse, and lazily-purged pages are dropped at once.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: a C string literal is a valid, NUL-terminated, 'static string.
    Some(unsafe { &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr() });

/// Blocks of at least this many bytes go to the C library.
pub const BIG: usize = 256 * 1024;

/// Makes the C library map every block it is given (all are [`BIG`] or
/// larger) straight from the kernel and unmap it when freed.
///
/// Why: glibc raises its mmap threshold each time it frees a mapped block
/// (up to 32 MiB), after which blocks of that size come from its heaps and
/// stay resident when freed. sled's I/O buffers are such blocks, so RSS
/// grew with every flush. Measured with `benches/soak.sh` (c=32): 83.2 MiB
/// at 300 s without this, 64.4 MiB with it (76.8 MiB at 600 s, 71.6 MiB
/// idle after). Setting the threshold explicitly also turns off glibc's
/// adjustment. A no-op elsewhere (musl and others keep their own policy).
pub fn fix_large_block_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy (it takes the
    // allocator's own lock); no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, BIG as libc::c_int);
    }
}

/// See the module documentation.
pub struct SplitAlloc;

#[inline]
fn big(size: usize) -> bool {
    size >= BIG
}

// SAFETY: every method forwards to exactly one of two sound allocators, and
// the choice depends only on the layout size, which is the same for a
// block's allocation and its release (GlobalAlloc's contract).
unsafe impl GlobalAlloc for SplitAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if big(layout.size()) {
            System.alloc(layout)
        } else {
            tikv_jemallocator::Jemalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if big(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            tikv_jemallocator::Jemalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if big(layout.size()) {
            System.dealloc(ptr, layout)
        } else {
            tikv_jemallocator::Jemalloc.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (big(layout.size()), big(new_size)) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size),
            // Crossing the threshold moves the block to the other allocator.
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to
                // `layout.align()`, does not overflow `isize` (realloc's contract).
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_move_between_allocators_intact() {
        // Grow a vector across the threshold and back through realloc, then
        // check every byte survived both moves.
        let mut v: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        v.reserve_exact(BIG * 2);
        v.extend((0..BIG as u32).map(|i| (i % 13) as u8));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.capacity() < BIG);
        assert!(v.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        let z = vec![0u64; BIG];
        assert!(z.iter().all(|x| *x == 0));
    }
}
